/* Collector for the latency experiment (paper Fig. 10): per-token times and memory samples
 * of every cell, latency / memory against cache size with the speedup, memory against
 * tokens processed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "eval/study_collect.h"

typedef struct {
    bool ok;
    double mean, p50, p99, rss, weights_mb;
    int64_t cache_bytes, tokens, warmup, threads;
    int64_t n_samples;
    int64_t *s_tokens, *s_cache;
    double *s_rss;
} lat_cell;

static const char *const arrays[] = {"step_ms", "warmup_ms", "sample_tokens", "sample_rss_mb", "sample_cache_bytes"};

static int load_cell(sb_collect *k, int i, lat_cell *lc) {
    sb_study_cell *c = &k->plan->cells[i];
    sb_h5 *f;
    int rc = sb_h5_open(&f, c->path);
    if (rc) return rc;
    lc->mean = sb_cell_attr_f64(f, "mean_ms");
    lc->p50 = sb_cell_attr_f64(f, "p50_ms");
    lc->p99 = sb_cell_attr_f64(f, "p99_ms");
    lc->rss = sb_cell_attr_f64(f, "peak_rss_mb");
    lc->weights_mb = sb_cell_attr_f64(f, "weights_mb");
    lc->cache_bytes = sb_cell_attr_i64(f, "cache_bytes");
    lc->tokens = sb_cell_attr_i64(f, "tokens");
    lc->warmup = sb_cell_attr_i64(f, "warmup");
    lc->threads = sb_cell_attr_i64(f, "threads");
    char hash[128] = "";
    if (sb_h5_attr_get_str(f, NULL, "model_sha256", hash, sizeof hash)) sb_clear_error();
    for (size_t a = 0; a < sizeof arrays / sizeof arrays[0] && !rc; a++) {
        void *data = NULL;
        int rank;
        int64_t dims[SB_H5_MAX_RANK];
        bool is_int = !strcmp(arrays[a], "sample_tokens") || !strcmp(arrays[a], "sample_cache_bytes");
        rc = sb_h5_read_alloc(f, arrays[a], is_int ? SB_H5_I64 : SB_H5_F64, &data, &rank, dims);
        if (rc) break;
        char name[700];
        sb_study_fmt(name, sizeof name, "cells/%s/%s", c->id, arrays[a]);
        rc = is_int ? sb_h5_write_i64(k->out, name, data, dims[0]) : sb_h5_write_f64(k->out, name, data, dims[0]);
        if (!strcmp(arrays[a], "sample_tokens")) {
            lc->s_tokens = data;
            lc->n_samples = dims[0];
        } else if (!strcmp(arrays[a], "sample_cache_bytes")) lc->s_cache = data;
        else if (!strcmp(arrays[a], "sample_rss_mb")) lc->s_rss = data;
        else free(data);
    }
    if (!rc) {
        char name[700];
        sb_study_fmt(name, sizeof name, "cells/%s/step_ms", c->id);
        rc = sb_h5_attr_str(k->out, name, "policy", c->spec);
        rc = rc ? rc : sb_h5_attr_str(k->out, name, "model", k->plan->models[c->model].name);
        rc = rc ? rc : sb_h5_attr_i64(k->out, name, "cache", c->cache_size);
        rc = rc ? rc : sb_h5_attr_f64(k->out, name, "mean_ms", lc->mean);
        rc = rc ? rc : sb_h5_attr_f64(k->out, name, "p50_ms", lc->p50);
        rc = rc ? rc : sb_h5_attr_f64(k->out, name, "p99_ms", lc->p99);
        rc = rc ? rc : sb_h5_attr_f64(k->out, name, "peak_rss_mb", lc->rss);
        rc = rc ? rc : sb_h5_attr_i64(k->out, name, "cache_bytes", lc->cache_bytes);
        rc = rc ? rc : sb_h5_attr_i64(k->out, name, "threads", lc->threads);
        rc = rc ? rc : sb_h5_attr_str(k->out, name, "model_sha256", hash);
    }
    lc->ok = !rc;
    sb_h5_close(f);
    return rc;
}

static bool is_memory_run(const sb_collect *k, int run) { return !strcmp(k->cfg->runs[run].role, "memory"); }

/* Cell of model m, run r, cache C; -1 if none finished. */
static int find(const sb_collect *k, const lat_cell *lc, int m, int r, int64_t C) {
    for (int i = 0; i < k->plan->n_cells; i++) {
        const sb_study_cell *c = &k->plan->cells[i];
        if (c->model == m && c->run == r && c->cache_size == C && lc[i].ok) return i;
    }
    return -1;
}

static int run_index(const sb_study_config *cfg, const char *name) {
    for (int r = 0; r < cfg->n_runs; r++)
        if (!strcmp(cfg->runs[r].name, name)) return r;
    return -1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void summary_table(sb_collect *k, const lat_cell *lc) {
    static const char *const head[] = {"model", "run", "policy", "cache", "tokens", "warmup", "mean_ms", "p50_ms",
                                       "p99_ms", "peak_rss_mb", "cache_alloc_mib", "weights_mib", "threads", "status", "note"};
    sb_study_table *t = &k->summary;
    sb_study_table_init(t, "every cell", 15, head);
    for (int i = 0; i < k->plan->n_cells; i++) {
        const sb_study_cell *c = &k->plan->cells[i];
        int r = sb_study_table_add_row(t);
        sb_study_table_set(t, r, 0, "%s", k->plan->models[c->model].name);
        sb_study_table_set(t, r, 1, "%s", k->cfg->runs[c->run].name);
        sb_study_table_set(t, r, 2, "%s", c->spec);
        sb_study_table_set(t, r, 3, "%lld", (long long)c->cache_size);
        if (lc[i].ok) {
            sb_study_table_set(t, r, 4, "%lld", (long long)lc[i].tokens);
            sb_study_table_set(t, r, 5, "%lld", (long long)lc[i].warmup);
            sb_study_table_set(t, r, 6, "%.4f", lc[i].mean);
            sb_study_table_set(t, r, 7, "%.4f", lc[i].p50);
            sb_study_table_set(t, r, 8, "%.4f", lc[i].p99);
            sb_study_table_set(t, r, 9, "%.1f", lc[i].rss);
            sb_study_table_set(t, r, 10, "%.3f", (double)lc[i].cache_bytes / 1048576.0);
            sb_study_table_set(t, r, 11, "%.1f", lc[i].weights_mb);
            sb_study_table_set(t, r, 12, "%lld", (long long)lc[i].threads);
        }
        sb_study_table_set(t, r, 13, "%s", lc[i].ok ? "ok" : c->state == SB_CELL_SKIP ? "not applicable" : c->state == SB_CELL_FAILED ? "failed" : "missing");
        sb_study_table_set(t, r, 14, "%s", c->why);
    }
}

/* Latency / memory against cache size for one model; returns the cache sizes found. */
static void sweep(sb_collect *k, const lat_cell *lc, int m, sb_study_buf *finding) {
    const sb_study_plan *plan = k->plan;
    const sb_study_config *cfg = k->cfg;
    int rn = run_index(cfg, cfg->speedup_num), rd = run_index(cfg, cfg->speedup_den);
    int64_t caches[4 * SB_STUDY_MAX_ITEMS];
    int nc = 0;
    for (int i = 0; i < plan->n_cells; i++) {
        const sb_study_cell *c = &plan->cells[i];
        if (c->model != m || !lc[i].ok || is_memory_run(k, c->run) || c->cache_size <= 0) continue;
        bool seen = false;
        for (int j = 0; j < nc; j++) seen |= caches[j] == c->cache_size;
        if (!seen && nc < (int)(sizeof caches / sizeof caches[0])) caches[nc++] = c->cache_size;
    }
    if (nc == 0) return;
    qsort(caches, (size_t)nc, sizeof caches[0], cmp_i64);
    const char *label = plan->models[m].label;

    /* table: every sweep run's mean / p50 / p99 / peak RSS, then the speedup */
    int runs[SB_STUDY_MAX_ITEMS], nr = 0;
    for (int r = 0; r < cfg->n_runs; r++)
        if (!is_memory_run(k, r)) runs[nr++] = r;
    int n_cols = 1 + 4 * nr + (rn >= 0 && rd >= 0 ? 1 : 0);
    char **head = calloc((size_t)n_cols, sizeof *head);
    head[0] = strdup("cache (tokens)");
    for (int j = 0; j < nr; j++) {
        const char *rname = cfg->runs[runs[j]].name;
        if (asprintf(&head[1 + 4 * j], "%s mean ms", rname) < 0) head[1 + 4 * j] = NULL;
        if (asprintf(&head[2 + 4 * j], "%s p50 ms", rname) < 0) head[2 + 4 * j] = NULL;
        if (asprintf(&head[3 + 4 * j], "%s p99 ms", rname) < 0) head[3 + 4 * j] = NULL;
        if (asprintf(&head[4 + 4 * j], "%s peak RSS MiB", rname) < 0) head[4 + 4 * j] = NULL;
    }
    if (n_cols > 1 + 4 * nr && asprintf(&head[n_cols - 1], "speedup (%s / %s)", cfg->speedup_num, cfg->speedup_den) < 0)
        head[n_cols - 1] = NULL;
    char caption[400];
    snprintf(caption, sizeof caption, "Ours, %s: per-token decode latency and peak memory against cache size", label);
    sb_study_table *t = sb_collect_table(k, caption, n_cols, (const char *const *)head);
    for (int c = 0; c < n_cols; c++) free(head[c]);
    free(head);

    sb_study_buf dat = {0};
    sb_study_buf_printf(&dat, "# cache num_mean num_p50 num_p99 num_rss den_mean den_p50 den_p99 den_rss speedup\n");
    double best_speedup = NAN;
    int64_t best_cache = 0;
    double num_lo = NAN, num_hi = NAN, den_lo = NAN, den_hi = NAN;
    for (int ci = 0; ci < nc; ci++) {
        int64_t C = caches[ci];
        int r = t ? sb_study_table_add_row(t) : -1;
        if (t) sb_study_table_set(t, r, 0, "%lld", (long long)C);
        for (int j = 0; j < nr && t; j++) {
            int i = find(k, lc, m, runs[j], C);
            if (i < 0) continue;
            sb_study_table_set(t, r, 1 + 4 * j, "%.3f", lc[i].mean);
            sb_study_table_set(t, r, 2 + 4 * j, "%.3f", lc[i].p50);
            sb_study_table_set(t, r, 3 + 4 * j, "%.3f", lc[i].p99);
            sb_study_table_set(t, r, 4 + 4 * j, "%.1f", lc[i].rss);
        }
        int in = rn >= 0 ? find(k, lc, m, rn, C) : -1, id = rd >= 0 ? find(k, lc, m, rd, C) : -1;
        double sp = in >= 0 && id >= 0 ? lc[in].mean / lc[id].mean : NAN;
        if (t && isfinite(sp)) sb_study_table_set(t, r, n_cols - 1, "%.2fx", sp);
        if (isfinite(sp)) {
            best_speedup = sp;
            best_cache = C;
        }
        if (in >= 0) {
            if (!isfinite(num_lo)) num_lo = lc[in].mean;
            num_hi = lc[in].mean;
        }
        if (id >= 0) {
            if (!isfinite(den_lo)) den_lo = lc[id].mean;
            den_hi = lc[id].mean;
        }
        sb_study_buf_printf(&dat, "%lld", (long long)C);
        const int sides[2] = {in, id};
        for (int s = 0; s < 2; s++) {
            int i = sides[s];
            if (i >= 0) sb_study_buf_printf(&dat, " %.6g %.6g %.6g %.6g", lc[i].mean, lc[i].p50, lc[i].p99, lc[i].rss);
            else sb_study_buf_printf(&dat, " ? ? ? ?");
        }
        if (isfinite(sp)) sb_study_buf_printf(&dat, " %.4g\n", sp);
        else sb_study_buf_printf(&dat, " ?\n");
    }
    if (sb_collect_wants(k, "latency") && rn >= 0 && rd >= 0) {
        char name[200], path[800], base[200], title[300], args[200], cap[700];
        snprintf(name, sizeof name, "%s_%s.dat", cfg->name, plan->models[m].name);
        sb_collect_data_path(k, name, path, sizeof path);
        if (sb_study_write_text(path, sb_study_buf_str(&dat)) == SB_OK) {
            snprintf(base, sizeof base, "%s_%s", cfg->name, plan->models[m].name);
            snprintf(title, sizeof title, "%s: decode latency and memory vs cache size", label);
            snprintf(args, sizeof args, "%s %s", cfg->speedup_num, cfg->speedup_den);
            snprintf(cap, sizeof cap,
                     "%s: per-token latency (solid: mean, dashed: p99; labels give the speedup) and peak "
                     "resident memory against cache size, for %s and %s.",
                     label, cfg->speedup_num, cfg->speedup_den);
            sb_collect_figure(k, "latency", path, base, title, args, cap);
        }
    }
    sb_study_buf_free(&dat);
    if (isfinite(best_speedup))
        sb_study_buf_printf(finding,
                            "%s%s: at cache %lld, %s takes %.3g ms per token and %s %.3g ms, a %.1fx speedup; from "
                            "the smallest to the largest cache %s latency grows %.1fx and %s %.1fx",
                            finding->n ? "; " : "", label, (long long)best_cache, cfg->speedup_den,
                            lc[find(k, lc, m, rd, best_cache)].mean, cfg->speedup_num,
                            lc[find(k, lc, m, rn, best_cache)].mean, best_speedup, cfg->speedup_num, num_hi / num_lo,
                            cfg->speedup_den, den_hi / den_lo);
}

/* Memory against tokens processed: one block per memory cell of the model. */
static void memory(sb_collect *k, const lat_cell *lc, int m, sb_study_table *t, sb_study_buf *finding) {
    const sb_study_plan *plan = k->plan;
    sb_study_buf dat = {0};
    int blocks = 0;
    for (int i = 0; i < plan->n_cells; i++) {
        const sb_study_cell *c = &plan->cells[i];
        if (c->model != m || !lc[i].ok || !is_memory_run(k, c->run) || lc[i].n_samples < 2) continue;
        char label[64];
        sb_study_policy_label(c->spec, label, sizeof label);
        if (blocks++) sb_study_buf_printf(&dat, "\n\n");
        sb_study_buf_printf(&dat, "\"tokens\" \"%s\" \"cache\"\n", label);
        for (int64_t s = 0; s < lc[i].n_samples; s++)
            sb_study_buf_printf(&dat, "%lld %.3f %.4f\n", (long long)lc[i].s_tokens[s], lc[i].s_rss[s],
                                (double)lc[i].s_cache[s] / 1048576.0);
        int64_t q = lc[i].n_samples / 4, e = lc[i].n_samples - 1;
        if (t) {
            int r = sb_study_table_add_row(t);
            sb_study_table_set(t, r, 0, "%s", plan->models[m].label);
            sb_study_table_set(t, r, 1, "%s", label);
            sb_study_table_set(t, r, 2, "%lld", (long long)lc[i].s_tokens[e]);
            sb_study_table_set(t, r, 3, "%.3f", (double)lc[i].s_cache[q] / 1048576.0);
            sb_study_table_set(t, r, 4, "%.3f", (double)lc[i].s_cache[e] / 1048576.0);
            sb_study_table_set(t, r, 5, "%.1f", lc[i].s_rss[q]);
            sb_study_table_set(t, r, 6, "%.1f", lc[i].s_rss[e]);
        }
        sb_study_buf_printf(finding, "%s%s %s: KV cache %.2f MiB after %lld tokens and %.2f MiB after %lld (RSS %.0f -> %.0f MiB)",
                            finding->n ? "; " : "", plan->models[m].label, label, (double)lc[i].s_cache[q] / 1048576.0,
                            (long long)lc[i].s_tokens[q], (double)lc[i].s_cache[e] / 1048576.0,
                            (long long)lc[i].s_tokens[e], lc[i].s_rss[q], lc[i].s_rss[e]);
    }
    if (blocks && sb_collect_wants(k, "memory")) {
        char name[200], path[800], base[200], title[300], args[32], cap[600];
        snprintf(name, sizeof name, "%s_memory_%s.dat", k->cfg->name, plan->models[m].name);
        sb_collect_data_path(k, name, path, sizeof path);
        if (sb_study_write_text(path, sb_study_buf_str(&dat)) == SB_OK) {
            snprintf(base, sizeof base, "%s_memory_%s", k->cfg->name, plan->models[m].name);
            snprintf(title, sizeof title, "%s: memory vs tokens processed", plan->models[m].label);
            snprintf(args, sizeof args, "%d", blocks);
            snprintf(cap, sizeof cap,
                     "%s: resident memory and KV-cache size against tokens decoded: dense attention grows without "
                     "bound, StreamingLLM's cache stops growing once full.",
                     plan->models[m].label);
            sb_collect_figure(k, "memory_tokens", path, base, title, args, cap);
        }
    }
    sb_study_buf_free(&dat);
}

int sb_collect_latency(sb_collect *k) {
    sb_study_plan *plan = k->plan;
    lat_cell *lc = calloc((size_t)(plan->n_cells > 0 ? plan->n_cells : 1), sizeof *lc);
    if (!lc) return sb_error("out of memory collecting %s", k->cfg->name);
    int rc = SB_OK;
    for (int i = 0; i < plan->n_cells && !rc; i++)
        if (plan->cells[i].state == SB_CELL_DONE) rc = load_cell(k, i, &lc[i]);
    if (!rc) {
        summary_table(k, lc);
        sb_study_buf speed = {0}, mem = {0};
        for (int m = 0; m < plan->n_models; m++) sweep(k, lc, m, &speed);
        static const char *const mh[] = {"model", "policy", "tokens fed", "cache MiB at 1/4", "cache MiB at end",
                                         "RSS MiB at 1/4", "RSS MiB at end"};
        sb_study_table *t = sb_collect_table(k, "Ours: memory against tokens processed (decode mode)", 7, mh);
        for (int m = 0; m < plan->n_models; m++) memory(k, lc, m, t, &mem);
        if (k->any_random)
            sb_study_buf_printf(&k->finding, "These are tiny smoke-test models: the timings only show that the "
                                             "measurement works. ");
        if (speed.n)
            sb_study_buf_printf(&k->finding,
                                "%s. The paper reports, on one GPU, re-computation growing quadratically with the "
                                "cache and StreamingLLM linearly, up to 22.2x faster at cache 4096 (Llama-2: 1411 vs "
                                "65 ms per token). ",
                                speed.s);
        if (mem.n) sb_study_buf_printf(&k->finding, "Memory against tokens: %s. ", mem.s);
        if (!k->finding.n) sb_study_buf_printf(&k->finding, "No cell finished, so there is nothing to compare yet. ");
        sb_study_buf_free(&speed);
        sb_study_buf_free(&mem);
    }
    for (int i = 0; i < plan->n_cells; i++) {
        free(lc[i].s_tokens);
        free(lc[i].s_cache);
        free(lc[i].s_rss);
    }
    free(lc);
    return rc;
}
