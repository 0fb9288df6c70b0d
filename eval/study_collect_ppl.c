/* Collector for perplexity experiments (ppl_stream, sink_ablation, cache_size): the per-token
 * NLL of every cell, a model x policy table, the same over a common prefix, plot data for
 * ppl-vs-tokens curves, ablation bars and ppl-vs-cache lines, and what the numbers show. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "eval/study_collect.h"
#include "eval/study_stats.h"

typedef struct {
    bool ok;
    float *nll;
    int64_t n;
    double ppl, mean_nll, tps, wall;
    sb_policy_spec p;
} ppl_cell;

/* exp(mean NLL over [from, to)), NAN for an empty range. */
static double range_ppl(const ppl_cell *c, int64_t from, int64_t to) {
    if (to > c->n) to = c->n;
    if (from < 0) from = 0;
    if (to <= from) return NAN;
    double s = 0;
    for (int64_t i = from; i < to; i++) s += c->nll[i];
    return exp(s / (double)(to - from));
}

static int load_cell(sb_collect *k, int i, ppl_cell *pc) {
    sb_study_cell *c = &k->plan->cells[i];
    sb_h5 *f;
    int rc = sb_h5_open(&f, c->path);
    if (rc) return rc;
    int rank;
    int64_t dims[SB_H5_MAX_RANK];
    void *data = NULL;
    rc = sb_h5_read_alloc(f, "nll", SB_H5_F32, &data, &rank, dims);
    if (!rc && rank != 1) rc = sb_error("%s: nll is not 1-D", c->path);
    if (!rc) {
        pc->nll = data;
        pc->n = dims[0];
        pc->ppl = sb_cell_attr_f64(f, "ppl");
        pc->mean_nll = sb_cell_attr_f64(f, "mean_nll");
        pc->tps = sb_cell_attr_f64(f, "tokens_per_s");
        pc->wall = sb_cell_attr_f64(f, "wall_s");
        sb_collect_note_data_hash(k, f);
        char name[700];
        sb_study_fmt(name, sizeof name, "cells/%s/nll", c->id);
        sb_h5 *o = k->out;
        rc = sb_h5_write_f32(o, name, pc->nll, pc->n);
        char hash[128] = "";
        if (sb_h5_attr_get_str(f, NULL, "model_sha256", hash, sizeof hash)) sb_clear_error();
        rc = rc ? rc : sb_h5_attr_str(o, name, "unit", "nats");
        rc = rc ? rc : sb_h5_attr_str(o, name, "model", k->plan->models[c->model].name);
        rc = rc ? rc : sb_h5_attr_str(o, name, "model_sha256", hash);
        rc = rc ? rc : sb_h5_attr_str(o, name, "policy", c->spec);
        rc = rc ? rc : sb_h5_attr_str(o, name, "run", k->cfg->runs[c->run].name);
        rc = rc ? rc : sb_h5_attr_f64(o, name, "ppl", pc->ppl);
        rc = rc ? rc : sb_h5_attr_f64(o, name, "mean_nll", pc->mean_nll);
        rc = rc ? rc : sb_h5_attr_f64(o, name, "tokens_per_s", pc->tps);
        rc = rc ? rc : sb_h5_attr_f64(o, name, "wall_s", pc->wall);
        pc->ok = !rc;
    } else free(data);
    sb_h5_close(f);
    if (!rc && sb_policy_parse(c->spec, &pc->p) != SB_OK) sb_clear_error();
    return rc;
}

/* Column of a cell in the model x policy table: runs' policies in config order. */
static int column_of(const sb_study_config *cfg, int run, int policy) {
    int col = 0;
    for (int r = 0; r < run; r++) col += cfg->runs[r].n_policies;
    return col + policy;
}

static int total_columns(const sb_study_config *cfg) { return column_of(cfg, cfg->n_runs, 0); }

/* ----------------------------------------------------------------- tables */

static void summary_table(sb_collect *k, const ppl_cell *pc) {
    static const char *const head[] = {"model", "run", "policy", "label", "tokens_scored", "ppl", "mean_nll",
                                       "tokens_per_s", "wall_s", "status", "note"};
    sb_study_table *t = &k->summary;
    sb_study_table_init(t, "every cell", 11, head);
    for (int i = 0; i < k->plan->n_cells; i++) {
        const sb_study_cell *c = &k->plan->cells[i];
        int r = sb_study_table_add_row(t);
        char label[64];
        sb_study_policy_label(c->spec, label, sizeof label);
        sb_study_table_set(t, r, 0, "%s", k->plan->models[c->model].name);
        sb_study_table_set(t, r, 1, "%s", k->cfg->runs[c->run].name);
        sb_study_table_set(t, r, 2, "%s", c->spec);
        sb_study_table_set(t, r, 3, "%s", label);
        if (pc[i].ok) {
            sb_study_table_set(t, r, 4, "%lld", (long long)pc[i].n);
            sb_study_table_set(t, r, 5, "%.4f", pc[i].ppl);
            sb_study_table_set(t, r, 6, "%.6f", pc[i].mean_nll);
            sb_study_table_set(t, r, 7, "%.1f", pc[i].tps);
            sb_study_table_set(t, r, 8, "%.2f", pc[i].wall);
        }
        const char *st = pc[i].ok ? "ok" : c->state == SB_CELL_SKIP ? "not applicable" : c->state == SB_CELL_FAILED ? "failed" : "missing";
        sb_study_table_set(t, r, 9, "%s", st);
        sb_study_table_set(t, r, 10, "%s", c->why);
    }
}

/* Model x policy table of ppl over [0, prefix) of each cell (prefix 0: the whole cell). */
static void matrix_table(sb_collect *k, const ppl_cell *pc, int64_t prefix, const char *caption) {
    const sb_study_config *cfg = k->cfg;
    const sb_study_plan *plan = k->plan;
    int n_cols = total_columns(cfg) + 1;
    char **head = calloc((size_t)n_cols, sizeof *head);
    head[0] = strdup("model");
    for (int i = 0; i < plan->n_cells; i++) {
        const sb_study_cell *c = &plan->cells[i];
        int col = column_of(cfg, c->run, c->policy) + 1;
        if (head[col]) continue;
        char label[64], count[32];
        sb_study_policy_label(c->spec, label, sizeof label);
        if (prefix > 0 || !pc[i].ok) {
            head[col] = strdup(label);
        } else {
            sb_fmt_count(pc[i].n, count, sizeof count);
            if (asprintf(&head[col], "%s (%s)", label, count) < 0) head[col] = NULL;
        }
    }
    for (int c = 0; c < n_cols; c++)
        if (!head[c]) head[c] = strdup("-");
    sb_study_table *t = sb_collect_table(k, caption, n_cols, (const char *const *)head);
    for (int c = 0; c < n_cols; c++) free(head[c]);
    free(head);
    if (!t) return;
    for (int m = 0; m < plan->n_models; m++) {
        int r = -1;
        for (int i = 0; i < plan->n_cells; i++) {
            const sb_study_cell *c = &plan->cells[i];
            if (c->model != m) continue;
            if (r < 0) {
                r = sb_study_table_add_row(t);
                sb_study_table_set(t, r, 0, "%s", plan->models[m].label);
            }
            int col = column_of(cfg, c->run, c->policy) + 1;
            if (pc[i].ok) sb_study_table_set(t, r, col, "%.2f", prefix > 0 ? range_ppl(&pc[i], 0, prefix) : pc[i].ppl);
            else sb_study_table_set(t, r, col, "%s", c->state == SB_CELL_SKIP ? "n/a" : c->state == SB_CELL_FAILED ? "failed" : "not run");
        }
    }
}

/* ----------------------------------------------------------------- plot data */

static void write_curves(sb_collect *k, const ppl_cell *pc) {
    const sb_study_plan *plan = k->plan;
    enum { BINS = 48 };
    double x[BINS], y[BINS];
    for (int m = 0; m < plan->n_models; m++) {
        sb_study_buf b = {0};
        int blocks = 0;
        int64_t longest = 0; /* every policy of the model shares the bins of its longest stream */
        for (int i = 0; i < plan->n_cells; i++)
            if (plan->cells[i].model == m && pc[i].ok && pc[i].n > longest) longest = pc[i].n;
        for (int i = 0; i < plan->n_cells; i++) {
            if (plan->cells[i].model != m || !pc[i].ok) continue;
            char label[64];
            sb_study_policy_label(plan->cells[i].spec, label, sizeof label);
            int n = sb_stats_ppl_curve(pc[i].nll, pc[i].n, longest, BINS, 32, x, y);
            if (blocks++) sb_study_buf_printf(&b, "\n\n");
            sb_study_buf_printf(&b, "\"tokens\" \"%s\"\n", label);
            for (int j = 0; j < n; j++) sb_study_buf_printf(&b, "%.1f %.6g\n", x[j], y[j]);
        }
        if (blocks) {
            char name[200], path[800], base[200], title[300], args[64], caption[600];
            snprintf(name, sizeof name, "%s_%s_curve.dat", k->cfg->name, plan->models[m].name);
            sb_collect_data_path(k, name, path, sizeof path);
            if (sb_study_write_text(path, sb_study_buf_str(&b)) == SB_OK) {
                snprintf(base, sizeof base, "%s_%s", k->cfg->name, plan->models[m].name);
                snprintf(title, sizeof title, "%s: perplexity along the held-out stream", plan->models[m].label);
                snprintf(args, sizeof args, "%d %d", plan->models[m].cfg.max_ctx, blocks);
                snprintf(caption, sizeof caption,
                         "%s: perplexity of each cache policy over windows of the stream (log-log; the dashed line is "
                         "the training context, %d tokens).",
                         plan->models[m].label, plan->models[m].cfg.max_ctx);
                sb_collect_figure(k, "ppl_vs_tokens", path, base, title, args, caption);
            }
        }
        sb_study_buf_free(&b);
    }
}

static void write_bars(sb_collect *k, const ppl_cell *pc) {
    /* the first matrix table holds exactly what the bars show */
    if (k->n_tables == 0) return;
    const sb_study_table *t = &k->tables[0];
    sb_study_buf b = {0};
    sb_study_buf_printf(&b, "model");
    for (int c = 1; c < t->n_cols; c++) {
        char label[64];
        /* drop the token count from the header: the bars compare policies */
        sb_study_copy(label, sizeof label, sb_study_table_get(t, 0, c));
        char *paren = strstr(label, " (");
        if (paren) *paren = '\0';
        sb_study_buf_printf(&b, " \"%s\"", label);
    }
    sb_study_buf_printf(&b, "\n");
    int values = 0;
    for (int r = 1; r < t->n_rows; r++) {
        sb_study_buf_printf(&b, "\"%s\"", sb_study_table_get(t, r, 0));
        for (int c = 1; c < t->n_cols; c++) {
            const char *v = sb_study_table_get(t, r, c);
            char *end;
            double d = strtod(v, &end);
            if (end != v && isfinite(d)) sb_study_buf_printf(&b, " %s", v), values++;
            else sb_study_buf_printf(&b, " ?");
        }
        sb_study_buf_printf(&b, "\n");
    }
    (void)pc;
    char name[200], path[800], args[32];
    snprintf(name, sizeof name, "%s_bars.dat", k->cfg->name);
    sb_collect_data_path(k, name, path, sizeof path);
    if (values > 0 && sb_study_write_text(path, sb_study_buf_str(&b)) == SB_OK) {
        snprintf(args, sizeof args, "%d", t->n_cols - 1);
        sb_collect_figure(k, "ablation_bars", path, k->cfg->name, k->cfg->title, args,
                          "Perplexity for each number of initial tokens kept (K+W: K initial tokens plus W recent "
                          "ones; nl: newline tokens as sinks; sink: the learned sink token), one bar per cache "
                          "policy, log scale.");
    }
    sb_study_buf_free(&b);
}

static void write_cache_lines(sb_collect *k, const ppl_cell *pc) {
    const sb_study_plan *plan = k->plan;
    sb_study_buf b = {0};
    int blocks = 0;
    for (int m = 0; m < plan->n_models; m++) {
        int rows = 0;
        for (int i = 0; i < plan->n_cells; i++) {
            if (plan->cells[i].model != m || !pc[i].ok) continue;
            int64_t entries = sb_study_policy_cache(plan->cells[i].spec);
            if (entries <= 0) continue;
            if (!rows++) {
                if (blocks++) sb_study_buf_printf(&b, "\n\n");
                sb_study_buf_printf(&b, "\"cache\" \"%s\"\n", plan->models[m].label);
            }
            sb_study_buf_printf(&b, "%lld %.6g\n", (long long)entries, pc[i].ppl);
        }
    }
    char name[200], path[800], args[32];
    snprintf(name, sizeof name, "%s_cache.dat", k->cfg->name);
    sb_collect_data_path(k, name, path, sizeof path);
    if (blocks && sb_study_write_text(path, sb_study_buf_str(&b)) == SB_OK) {
        int ctx = 0;
        for (int m = 0; m < plan->n_models && !ctx; m++)
            if (plan->models[m].status == SB_MODEL_OK) ctx = plan->models[m].cfg.max_ctx;
        snprintf(args, sizeof args, "%d %d", ctx, blocks);
        sb_collect_figure(k, "cache_size", path, k->cfg->name, k->cfg->title, args,
                          "Perplexity against cache size (4 initial tokens + W recent), one line per model; the "
                          "dashed line is the training context.");
    }
    sb_study_buf_free(&b);
}

/* ----------------------------------------------------------------- findings */

typedef bool (*cell_pred)(const sb_policy_spec *p);
static bool is_plain_sinks(const sb_policy_spec *p) {
    return (sb_policy_is(p, "sinks") || sb_policy_is(p, "window")) && p->prefix == SB_PREFIX_NONE;
}
static bool is_window(const sb_policy_spec *p) { return is_plain_sinks(p) && p->n_sinks == 0; }
static bool is_sinks4(const sb_policy_spec *p) { return is_plain_sinks(p) && p->n_sinks == 4; }
static bool is_newline(const sb_policy_spec *p) { return sb_policy_is(p, "sinks") && p->prefix == SB_PREFIX_NEWLINE; }
static bool is_learned(const sb_policy_spec *p) { return sb_policy_is(p, "learned") && p->n_sinks == 1; }
static bool is_learned4(const sb_policy_spec *p) { return sb_policy_is(p, "learned") && p->n_sinks == 4; }
static bool is_dense(const sb_policy_spec *p) { return sb_policy_is(p, "dense"); }
static bool is_recompute(const sb_policy_spec *p) { return sb_policy_is(p, "recompute"); }

/* The longest finished cell of model m matching pred whose cache is the model's training
 * context, if any (else any matching one). */
static int find(const sb_collect *k, const ppl_cell *pc, int m, cell_pred pred) {
    int best = -1;
    for (int i = 0; i < k->plan->n_cells; i++) {
        if (k->plan->cells[i].model != m || !pc[i].ok || !pred(&pc[i].p)) continue;
        bool at_ctx = sb_study_policy_cache(k->plan->cells[i].spec) == k->plan->models[m].cfg.max_ctx;
        bool best_at_ctx = best >= 0 && sb_study_policy_cache(k->plan->cells[best].spec) == k->plan->models[m].cfg.max_ctx;
        if (best < 0 || (at_ctx && !best_at_ctx) || (at_ctx == best_at_ctx && pc[i].n > pc[best].n)) best = i;
    }
    return best;
}

/* ppl of a and b over their common prefix. */
static void compare(const ppl_cell *a, const ppl_cell *b, double *pa, double *pb, int64_t *n) {
    *n = a->n < b->n ? a->n : b->n;
    *pa = range_ppl(a, 0, *n);
    *pb = range_ppl(b, 0, *n);
}

static void findings(sb_collect *k, const ppl_cell *pc) {
    const sb_study_plan *plan = k->plan;
    sb_study_buf *f = &k->finding;
    double worst = 1.0, dev = 0.0; /* largest window / 4-sink ratio, largest |ratio - 1| */
    double learned_gain = 0.0;     /* largest 0+W / sink+W ratio of a model with a sink token */
    sb_study_buf sink = {0}, dense = {0}, nl = {0}, learned = {0}, cache = {0}, rec = {0};
    for (int m = 0; m < plan->n_models; m++) {
        const char *name = plan->models[m].label;
        int W = plan->models[m].cfg.max_ctx;
        int iw = find(k, pc, m, is_window), is = find(k, pc, m, is_sinks4);
        double a, b;
        int64_t n;
        char cnt[32];
        if (iw >= 0 && is >= 0) {
            compare(&pc[iw], &pc[is], &a, &b, &n);
            sb_fmt_count(n, cnt, sizeof cnt);
            if (a / b > worst) worst = a / b;
            if (fabs(a / b - 1.0) > dev) dev = fabs(a / b - 1.0);
            sb_study_buf_printf(&sink, "%s%s: 0+W %.2f vs 4+W %.2f over %s tokens", sink.n ? "; " : "", name, a, b, cnt);
        }
        int id = find(k, pc, m, is_dense);
        if (id >= 0 && pc[id].n > 2 * (int64_t)W + 64) {
            a = range_ppl(&pc[id], 0, W);
            b = range_ppl(&pc[id], 2 * (int64_t)W, pc[id].n);
            sb_study_buf_printf(&dense, "%s%s: %.2f within the first %d tokens, %.2f beyond %d", dense.n ? "; " : "", name, a,
                                W, b, 2 * W);
        }
        int ir = find(k, pc, m, is_recompute);
        if (ir >= 0 && is >= 0) {
            compare(&pc[ir], &pc[is], &a, &b, &n);
            sb_fmt_count(n, cnt, sizeof cnt);
            sb_study_buf_printf(&rec, "%s%s: recompute %.2f vs 4+W %.2f over %s tokens", rec.n ? "; " : "", name, a, b, cnt);
        }
        int in = find(k, pc, m, is_newline);
        if (in >= 0 && is >= 0) {
            compare(&pc[in], &pc[is], &a, &b, &n);
            sb_study_buf_printf(&nl, "%s%s: %.2f with 4 newline sinks vs %.2f with the 4 first tokens", nl.n ? "; " : "", name, a, b);
        }
        int il = find(k, pc, m, is_learned), il4 = find(k, pc, m, is_learned4);
        if (il >= 0) {
            sb_study_buf_printf(&learned, "%s%s: sink token + W %.2f", learned.n ? "; " : "", name, pc[il].ppl);
            if (il4 >= 0) sb_study_buf_printf(&learned, " vs sink + 3 + W %.2f", pc[il4].ppl);
            if (is >= 0) sb_study_buf_printf(&learned, " vs 4+W %.2f", pc[is].ppl);
            if (iw >= 0) {
                compare(&pc[iw], &pc[il], &a, &b, &n);
                sb_study_buf_printf(&learned, " vs 0+W %.2f (%.2fx the sink token's, same tokens)", a, a / b);
                if (a / b > learned_gain) learned_gain = a / b;
            }
        }
        if (sb_collect_wants(k, "cache")) {
            int rows = 0;
            for (int i = 0; i < plan->n_cells; i++) {
                if (plan->cells[i].model != m || !pc[i].ok || !is_sinks4(&pc[i].p)) continue;
                if (!rows++) sb_study_buf_printf(&cache, "%s%s ", cache.n ? "; " : "", name);
                else sb_study_buf_printf(&cache, ", ");
                sb_study_buf_printf(&cache, "%lld: %.2f", (long long)sb_study_policy_cache(plan->cells[i].spec), pc[i].ppl);
            }
        }
    }
    if (k->any_random)
        sb_study_buf_printf(f, "The models here are tiny smoke-test models (random or trained for a few steps), so "
                               "these numbers only show that the pipeline runs; they say nothing about attention "
                               "sinks. ");
    if (sink.n) {
        const char *who = learned.n ? "apart from a learned sink token (below), " : "";
        if (worst > 1.5)
            sb_study_buf_printf(f, "Evicting the initial tokens raises perplexity up to %.1fx (%s), the attention-sink "
                                   "effect the paper reports (e.g. Llama-2-7B: 3359.95 with 0+4096 vs 9.59 with 4+4092). ",
                                worst, sink.s);
        else
            sb_study_buf_printf(f, "Keeping the first 4 tokens of the text changes perplexity by at most %.2f%% (%s): "
                                   "unlike the paper's 7B models (e.g. Llama-2-7B: 3359.95 with 0+4096 vs 9.59 with "
                                   "4+4092), %sthese small models have formed no attention sink on the stream's first "
                                   "tokens, as expected for models trained on far fewer than the billions of tokens after "
                                   "which natural sinks are reported to emerge. ",
                                100.0 * dev, sink.s, who);
    }
    if (dense.n)
        sb_study_buf_printf(f, "Dense attention past the training length: %s (the paper: dense perplexity explodes "
                               "once the text exceeds the pre-training window). ", dense.s);
    if (rec.n)
        sb_study_buf_printf(f, "Sliding window with re-computation vs StreamingLLM on the same tokens: %s (the paper "
                               "treats re-computation as the quality upper bound). ", rec.s);
    if (nl.n)
        sb_study_buf_printf(f, "Sink content: %s (paper, Table 1: 5.60 vs 5.40 for Llama-2-13B). ", nl.s);
    if (learned.n && learned_gain > 1.1)
        sb_study_buf_printf(f, "Learned sink token: %s. The model pre-trained with a sink token leans on it: evicting it "
                               "raises perplexity up to %.2fx, and initial text tokens do not stand in for it (paper, "
                               "Table 3: 1235 with 0+1024 vs 18.01 with the sink token, 68.6x). ", learned.s, learned_gain);
    else if (learned.n)
        sb_study_buf_printf(f, "Learned sink token: %s (paper, Table 3: the sink-token model needs only that one "
                               "token: 18.01 with 1+1023). ", learned.s);
    if (cache.n)
        sb_study_buf_printf(f, "Perplexity against cache size (4+W entries): %s; the paper finds larger caches do not "
                               "consistently help (Llama-2-7B: 9.73, 9.32, 9.08, 9.59 for 512 to 4096), and caches "
                               "beyond the training context place keys at distances never seen in training. ", cache.s);
    if (!f->n) sb_study_buf_printf(f, "No cell finished, so there is nothing to compare yet. ");
    sb_study_buf_free(&sink);
    sb_study_buf_free(&dense);
    sb_study_buf_free(&nl);
    sb_study_buf_free(&learned);
    sb_study_buf_free(&cache);
    sb_study_buf_free(&rec);
}

int sb_collect_ppl(sb_collect *k) {
    sb_study_plan *plan = k->plan;
    ppl_cell *pc = calloc((size_t)(plan->n_cells > 0 ? plan->n_cells : 1), sizeof *pc);
    if (!pc) return sb_error("out of memory collecting %s", k->cfg->name);
    int rc = SB_OK;
    int64_t common = INT64_MAX, longest = 0;
    for (int i = 0; i < plan->n_cells && !rc; i++) {
        if (plan->cells[i].state != SB_CELL_DONE) continue;
        rc = load_cell(k, i, &pc[i]);
        if (pc[i].ok) {
            if (pc[i].n < common) common = pc[i].n;
            if (pc[i].n > longest) longest = pc[i].n;
        }
    }
    if (!rc) {
        summary_table(k, pc);
        char caption[300], cnt[32];
        snprintf(caption, sizeof caption, "Ours: perplexity per model and cache policy (tokens scored in brackets)");
        matrix_table(k, pc, 0, caption);
        if (longest > common && common > 0) {
            sb_fmt_count(common, cnt, sizeof cnt);
            snprintf(caption, sizeof caption, "Ours: perplexity over the first %s tokens, common to every policy", cnt);
            matrix_table(k, pc, common, caption);
        }
        if (sb_collect_wants(k, "curve")) write_curves(k, pc);
        if (sb_collect_wants(k, "bars")) write_bars(k, pc);
        if (sb_collect_wants(k, "cache")) write_cache_lines(k, pc);
        findings(k, pc);
    }
    for (int i = 0; i < plan->n_cells; i++) free(pc[i].nll);
    free(pc);
    return rc;
}
