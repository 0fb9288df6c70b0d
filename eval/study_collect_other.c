/* Collectors for the attention experiment (maps and sink share per layer and head, paper
 * Fig. 2) and the training experiment (loss and sink-share curves from train_log.h5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "eval/study_collect.h"

/* ----------------------------------------------------------------- attention */

/* Copy one float array of a cell (rank 1..3) into the output; *data keeps it (free it). */
static int copy_array(sb_collect *k, sb_h5 *f, const char *id, const char *name, float **data, int *rank, int64_t *dims) {
    void *d = NULL;
    int rc = sb_h5_read_alloc(f, name, SB_H5_F32, &d, rank, dims);
    if (rc) return rc;
    char out[700];
    sb_study_fmt(out, sizeof out, "cells/%s/%s", id, name);
    rc = sb_h5_write(k->out, out, SB_H5_F32, *rank, dims, d);
    *data = d;
    return rc;
}

static void attention_model(sb_collect *k, int i, sb_study_table *t, sb_study_buf *finding) {
    sb_study_cell *c = &k->plan->cells[i];
    const sb_study_model *m = &k->plan->models[c->model];
    sb_h5 *f;
    if (sb_h5_open(&f, c->path)) return;
    float *maps = NULL, *share = NULL;
    int r1 = 0, r2 = 0;
    int64_t dm[SB_H5_MAX_RANK] = {0}, ds[SB_H5_MAX_RANK] = {0};
    int rc = copy_array(k, f, c->id, "maps", &maps, &r1, dm);
    rc = rc ? rc : copy_array(k, f, c->id, "sink_share", &share, &r2, ds);
    /* a sink-token model is probed with its <sink> at position 0 (sinkbench attention) */
    int64_t sink_first = 0;
    if (!rc && sb_h5_attr_has(f, NULL, "sink_token_prefixed")) rc = sb_h5_attr_get_i64(f, NULL, "sink_token_prefixed", &sink_first);
    const char *first = sink_first ? "its <sink> (position 0)" : "the first token";
    sb_h5_close(f);
    if (rc || r1 != 3 || r2 != 2 || dm[1] != dm[2]) {
        sb_study_note(k->plan, "%s: attention result has unexpected shapes (%s)", c->id, rc ? sb_last_error() : "rank");
        free(maps);
        free(share);
        return;
    }
    int64_t L = dm[0], n = dm[1], H = ds[1];
    /* table row: head-mean sink share per layer */
    sb_study_buf per = {0};
    double mx = 0;
    for (int64_t l = 0; l < ds[0]; l++) {
        double s = 0;
        for (int64_t h = 0; h < H; h++) s += share[l * H + h];
        s /= (double)(H > 0 ? H : 1);
        if (s > mx) mx = s;
        sb_study_buf_printf(&per, "%s%.3f", l ? " " : "", s);
    }
    int r = sb_study_table_add_row(t);
    sb_study_table_set(t, r, 0, "%s", m->label);
    sb_study_table_set(t, r, 1, "%lld", (long long)L);
    sb_study_table_set(t, r, 2, "%lld", (long long)H);
    sb_study_table_set(t, r, 3, "%s", sb_study_buf_str(&per));
    sb_study_table_set(t, r, 4, "%.3f", mx);
    sb_study_buf_printf(finding, "%s%s: largest head-mean share on %s %.3f", finding->n ? "; " : "", m->label, first, mx);
    sb_study_buf_free(&per);

    if (sb_collect_wants(k, "maps")) {
        sb_study_buf b = {0};
        for (int64_t l = 0; l < L; l++) {
            if (l) sb_study_buf_printf(&b, "\n\n");
            for (int64_t q = 0; q < n; q++) {
                for (int64_t j = 0; j < n; j++) sb_study_buf_printf(&b, "%s%.4g", j ? " " : "", maps[(l * n + q) * n + j]);
                sb_study_buf_printf(&b, "\n");
            }
        }
        char name[200], path[800], base[200], title[300], args[64], cap[600];
        snprintf(name, sizeof name, "%s_%s_maps.dat", k->cfg->name, m->name);
        sb_collect_data_path(k, name, path, sizeof path);
        if (sb_study_write_text(path, sb_study_buf_str(&b)) == SB_OK) {
            snprintf(base, sizeof base, "%s_%s_maps", k->cfg->name, m->name);
            snprintf(title, sizeof title, "%s: attention maps (head average)", m->label);
            snprintf(args, sizeof args, "%lld %lld", (long long)L, (long long)n);
            snprintf(cap, sizeof cap, "%s: attention of each query (row) on each key (column) over the first %lld tokens, averaged over heads, one panel per layer.",
                     m->label, (long long)n);
            sb_collect_figure(k, "attention_maps", path, base, title, args, cap);
        }
        b.n = 0;
        for (int64_t l = 0; l < ds[0]; l++) {
            for (int64_t h = 0; h < H; h++) sb_study_buf_printf(&b, "%s%.4g", h ? " " : "", share[l * H + h]);
            sb_study_buf_printf(&b, "\n");
        }
        snprintf(name, sizeof name, "%s_%s_share.dat", k->cfg->name, m->name);
        sb_collect_data_path(k, name, path, sizeof path);
        if (sb_study_write_text(path, sb_study_buf_str(&b)) == SB_OK) {
            snprintf(base, sizeof base, "%s_%s_share", k->cfg->name, m->name);
            snprintf(title, sizeof title, "%s: attention on %s per layer and head", m->label, sink_first ? "the <sink>" : "the first token");
            snprintf(args, sizeof args, "%lld %lld", (long long)ds[0], (long long)H);
            snprintf(cap, sizeof cap, "%s: share of attention that later queries put on %s, per layer and head.", m->label, first);
            sb_collect_figure(k, "sink_share", path, base, title, args, cap);
        }
        sb_study_buf_free(&b);
    }
    free(maps);
    free(share);
}

int sb_collect_attention(sb_collect *k) {
    static const char *const head[] = {"model", "layers", "heads", "sink share per layer (head mean)", "max"};
    sb_study_table *t = sb_collect_table(k, "Ours: attention on the first token (the sink share)", 5, head);
    static const char *const sh[] = {"model", "status", "note"};
    sb_study_table_init(&k->summary, "every cell", 3, sh);
    sb_study_buf finding = {0};
    for (int i = 0; i < k->plan->n_cells; i++) {
        sb_study_cell *c = &k->plan->cells[i];
        int r = sb_study_table_add_row(&k->summary);
        sb_study_table_set(&k->summary, r, 0, "%s", k->plan->models[c->model].name);
        sb_study_table_set(&k->summary, r, 1, "%s", c->state == SB_CELL_DONE ? "ok" : c->state == SB_CELL_SKIP ? "not run" : "failed");
        sb_study_table_set(&k->summary, r, 2, "%s", c->why);
        if (c->state == SB_CELL_DONE && t) attention_model(k, i, t, &finding);
    }
    if (finding.n)
        sb_study_buf_printf(&k->finding, "%s. In the paper's Llama-2-7B most layers beyond the first two put the bulk "
                                         "of their attention on the first token. ", finding.s);
    else
        sb_study_buf_printf(&k->finding, "Not available yet: the engine has no attention-probe API, so no attention "
                                         "maps were recorded. ");
    sb_study_buf_free(&finding);
    return SB_OK;
}

/* ----------------------------------------------------------------- training */

static bool find_log(const char *dir, char *out, size_t cap) {
    struct stat st;
    sb_study_fmt(out, cap, "%s/train_log.h5", dir);
    if (stat(out, &st) == 0) return true;
    sb_study_fmt(out, cap, "%s/../train_log.h5", dir);
    return stat(out, &st) == 0;
}

int sb_collect_training(sb_collect *k) {
    const sb_study_plan *plan = k->plan;
    static const char *const head[] = {"model", "variant", "steps", "final train loss", "final held-out loss",
                                       "held-out ppl", "sink share (mean over layers)", "sink share (max layer)"};
    sb_study_table *t = sb_collect_table(k, "Ours: end of training (sink share: attention of queries past position 16 on position 0)", 8, head);
    static const char *const sh[] = {"model", "step", "train_loss", "heldout_loss", "sink_share_mean", "sink_share_max"};
    sb_study_table_init(&k->summary, "training curves", 6, sh);
    sb_study_buf dat = {0}, finding = {0};
    int blocks = 0;
    for (int mi = 0; mi < plan->n_models; mi++) {
        const sb_study_model *m = &plan->models[mi];
        char path[700];
        if (!find_log(m->dir, path, sizeof path)) {
            sb_study_note(k->plan, "no training log for %s (looked for %s/train_log.h5)", m->name, m->dir);
            continue;
        }
        sb_h5 *f;
        if (sb_h5_open(&f, path)) {
            sb_study_note(k->plan, "%s: %s", m->name, sb_last_error());
            continue;
        }
        int64_t *step = NULL;
        double *tl = NULL, *hl = NULL, *share = NULL;
        int rank = 0, r3 = 0;
        int64_t d1[SB_H5_MAX_RANK] = {0}, d3[SB_H5_MAX_RANK] = {0}, d2[SB_H5_MAX_RANK] = {0};
        int rc = sb_h5_read_alloc(f, "step", SB_H5_I64, (void **)&step, &rank, d1);
        rc = rc ? rc : sb_h5_read_alloc(f, "train_loss", SB_H5_F64, (void **)&tl, &rank, d2);
        rc = rc ? rc : sb_h5_read_alloc(f, "heldout_loss", SB_H5_F64, (void **)&hl, &rank, d2);
        rc = rc ? rc : sb_h5_read_alloc(f, "sink_share", SB_H5_F64, (void **)&share, &r3, d3);
        char variant[64] = "?";
        if (sb_h5_attr_has(f, NULL, "variant")) sb_h5_attr_get_str(f, NULL, "variant", variant, sizeof variant);
        sb_h5_close(f);
        int64_t n = d1[0];
        if (!rc && (r3 != 3 || d3[0] != n || d2[0] != n)) rc = sb_error("%s: arrays of different lengths", path);
        if (rc) {
            sb_study_note(k->plan, "%s: %s", m->name, sb_last_error());
        } else if (n > 0) {
            int64_t L = d3[1], H = d3[2];
            char name[300];
            int64_t dims[3] = {n, L, H};
            sb_study_fmt(name, sizeof name, "models/%s/step", m->name);
            rc = sb_h5_write_i64(k->out, name, step, n);
            sb_study_fmt(name, sizeof name, "models/%s/train_loss", m->name);
            rc = rc ? rc : sb_h5_write_f64(k->out, name, tl, n);
            sb_study_fmt(name, sizeof name, "models/%s/heldout_loss", m->name);
            rc = rc ? rc : sb_h5_write_f64(k->out, name, hl, n);
            sb_study_fmt(name, sizeof name, "models/%s/sink_share", m->name);
            rc = rc ? rc : sb_h5_write(k->out, name, SB_H5_F64, 3, dims, share);
            rc = rc ? rc : sb_h5_attr_str(k->out, name, "variant", variant);
            if (blocks++) sb_study_buf_printf(&dat, "\n\n");
            sb_study_buf_printf(&dat, "\"step\" \"%s\" \"heldout\" \"mean\" \"max\"\n", m->label);
            double mean_end = 0, max_end = 0;
            for (int64_t s = 0; s < n; s++) {
                double mean = 0, mx = 0;
                for (int64_t l = 0; l < L; l++) {
                    double hs = 0;
                    for (int64_t h = 0; h < H; h++) hs += share[(s * L + l) * H + h];
                    hs /= (double)(H > 0 ? H : 1);
                    mean += hs;
                    if (hs > mx) mx = hs;
                }
                mean /= (double)(L > 0 ? L : 1);
                sb_study_buf_printf(&dat, "%lld %.6g %.6g %.6g %.6g\n", (long long)step[s], tl[s], hl[s], mean, mx);
                int r = sb_study_table_add_row(&k->summary);
                sb_study_table_set(&k->summary, r, 0, "%s", m->name);
                sb_study_table_set(&k->summary, r, 1, "%lld", (long long)step[s]);
                sb_study_table_set(&k->summary, r, 2, "%.6f", tl[s]);
                sb_study_table_set(&k->summary, r, 3, "%.6f", hl[s]);
                sb_study_table_set(&k->summary, r, 4, "%.6f", mean);
                sb_study_table_set(&k->summary, r, 5, "%.6f", mx);
                mean_end = mean;
                max_end = mx;
            }
            if (t) {
                int r = sb_study_table_add_row(t);
                sb_study_table_set(t, r, 0, "%s", m->label);
                sb_study_table_set(t, r, 1, "%s", variant);
                sb_study_table_set(t, r, 2, "%lld", (long long)step[n - 1]);
                sb_study_table_set(t, r, 3, "%.4f", tl[n - 1]);
                sb_study_table_set(t, r, 4, "%.4f", hl[n - 1]);
                sb_study_table_set(t, r, 5, "%.2f", exp(hl[n - 1]));
                sb_study_table_set(t, r, 6, "%.4f", mean_end);
                sb_study_table_set(t, r, 7, "%.4f", max_end);
            }
            sb_study_buf_printf(&finding, "%s%s (%s) ends at held-out loss %.3f with a sink share of %.3f (max layer %.3f)",
                                finding.n ? "; " : "", m->label, variant, hl[n - 1], mean_end, max_end);
            if (rc) sb_study_note(k->plan, "%s: %s", m->name, sb_last_error());
        }
        free(step);
        free(tl);
        free(hl);
        free(share);
    }
    if (blocks && sb_collect_wants(k, "training")) {
        char path[800], args[32];
        sb_collect_data_path(k, "training.dat", path, sizeof path);
        snprintf(args, sizeof args, "%d", blocks);
        if (sb_study_write_text(path, sb_study_buf_str(&dat)) == SB_OK)
            sb_collect_figure(k, "training", path, k->cfg->name, k->cfg->title, args,
                              "Training curves: training and held-out loss (left) and the sink share, the attention "
                              "that queries past position 16 put on position 0, mean and max over layers (right).");
    }
    if (finding.n && k->any_random)
        sb_study_buf_printf(&k->finding, "These are tiny smoke-test models trained for a few steps: the curves only "
                                         "show that the logs are read. ");
    if (finding.n)
        sb_study_buf_printf(&k->finding, "%s. A sink would show as a share close to 1 in most layers; uniform attention "
                                         "over a 512-token window gives below 0.01. ", finding.s);
    else
        sb_study_buf_printf(&k->finding, "No training logs were found, so there are no training curves. ");
    sb_study_buf_free(&dat);
    sb_study_buf_free(&finding);
    sb_clear_error();
    return SB_OK;
}
