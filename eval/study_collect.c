/* Collection: finished cells -> results/<experiment>.h5 (every array, the tables as CSV
 * text, the finding, notes, models and provenance as attributes), results/<experiment>.csv
 * and the plot data + figure list in results/data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/policy.h"
#include "eval/study_collect.h"
#include "util/provenance.h"

sb_study_table *sb_collect_table(sb_collect *k, const char *caption, int n_cols, const char *const *header) {
    if (k->n_tables == SB_COLLECT_MAX_TABLES) return NULL;
    sb_study_table *t = &k->tables[k->n_tables++];
    sb_study_table_init(t, caption, n_cols, header);
    return t;
}

void sb_collect_figure(sb_collect *k, const char *script, const char *data, const char *base, const char *title,
                       const char *args, const char *caption) {
    sb_study_buf_printf(&k->plots, "%s\t%s\t%s/%s\t%s\t%s\n", script, data, k->fig_dir, base, title, args ? args : "");
    sb_study_buf_printf(&k->figures, "%s|%s\n", base, caption);
}

bool sb_collect_wants(const sb_collect *k, const char *figure) {
    for (int i = 0; i < k->cfg->n_figures; i++)
        if (!strcmp(k->cfg->figures[i], figure)) return true;
    return false;
}

void sb_collect_data_path(const sb_collect *k, const char *name, char *out, size_t cap) {
    sb_study_fmt(out, cap, "%s/%s", k->data_dir, name);
}

void sb_study_policy_label(const char *spec, char *out, size_t cap) {
    sb_policy_spec p;
    if (sb_policy_parse(spec, &p) != SB_OK) {
        sb_clear_error();
        sb_study_copy(out, cap, spec);
        return;
    }
    sb_policy_label(&p, out, cap);
}

int64_t sb_study_policy_cache(const char *spec) {
    sb_policy_spec p;
    if (sb_policy_parse(spec, &p) != SB_OK) {
        sb_clear_error();
        return 0;
    }
    return sb_policy_cache_size(&p);
}

void sb_fmt_count(int64_t n, char *out, size_t cap) {
    if (n >= 1000000) snprintf(out, cap, "%.*fM", n % 1000000 ? 1 : 0, (double)n / 1e6);
    else if (n >= 1000) snprintf(out, cap, "%.*fk", n % 1000 ? 1 : 0, (double)n / 1e3);
    else snprintf(out, cap, "%lld", (long long)n);
}

double sb_cell_attr_f64(sb_h5 *f, const char *key) {
    double v = NAN;
    if (!sb_h5_attr_has(f, NULL, key) || sb_h5_attr_get_f64(f, NULL, key, &v) != SB_OK) v = NAN;
    sb_clear_error();
    return v;
}

int64_t sb_cell_attr_i64(sb_h5 *f, const char *key) {
    int64_t v = -1;
    if (!sb_h5_attr_has(f, NULL, key) || sb_h5_attr_get_i64(f, NULL, key, &v) != SB_OK) v = -1;
    sb_clear_error();
    return v;
}

void sb_collect_note_data_hash(sb_collect *k, sb_h5 *f) {
    if (k->data_sha256[0]) return;
    char h[128] = "";
    if (sb_h5_attr_has(f, NULL, "data_sha256") && sb_h5_attr_get_str(f, NULL, "data_sha256", h, sizeof h) == SB_OK)
        sb_study_copy(k->data_sha256, sizeof k->data_sha256, h);
    sb_clear_error();
}

/* "name|label|kind|dir|params|layers|dim|heads|kv_heads|ctx|softmax|sink_token|status|why" lines. */
static void models_info(const sb_study_plan *plan, sb_study_buf *b) {
    for (int i = 0; i < plan->n_models; i++) {
        const sb_study_model *m = &plan->models[i];
        const char *status = m->status == SB_MODEL_OK ? "ok" : m->status == SB_MODEL_MISSING ? "missing" : "unloadable";
        if (m->status == SB_MODEL_OK) {
            const sb_model_config *c = &m->cfg;
            sb_study_buf_printf(b, "%s|%s|%s|%s|%zu|%d|%d|%d|%d|%d|%s|%d|%s|\n", m->name, m->label, m->kind, m->dir,
                                sb_model_param_count(c), c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->max_ctx,
                                sb_softmax_kind_name(c->softmax), (int)c->sink_token_id, status);
        } else {
            sb_study_buf_printf(b, "%s|%s|%s|%s|||||||||%s|%s\n", m->name, m->label, m->kind, m->dir, status, m->why);
        }
    }
}

static int write_tables(sb_collect *k) {
    int rc = sb_h5_attr_i64(k->out, NULL, "n_tables", k->n_tables);
    for (int i = 0; i < k->n_tables && !rc; i++) {
        char key[32];
        char *csv = sb_study_table_to_csv(&k->tables[i]);
        snprintf(key, sizeof key, "table%d_caption", i);
        rc = sb_h5_attr_str(k->out, NULL, key, k->tables[i].caption);
        snprintf(key, sizeof key, "table%d_csv", i);
        rc = rc ? rc : sb_h5_attr_str(k->out, NULL, key, csv);
        free(csv);
    }
    return rc;
}

static void cell_notes(const sb_study_plan *plan, sb_study_buf *b) {
    b->n = 0;
    sb_study_buf_printf(b, "%s", plan->notes);
    for (int i = 0; i < plan->n_cells; i++) {
        const sb_study_cell *c = &plan->cells[i];
        if (c->state == SB_CELL_SKIP) sb_study_buf_printf(b, "%s not run: %s\n", c->id, c->why);
        else if (c->state == SB_CELL_FAILED) sb_study_buf_printf(b, "%s FAILED: %s\n", c->id, c->why);
        else if (c->state == SB_CELL_TODO) sb_study_buf_printf(b, "%s not run yet\n", c->id);
    }
}

/* cells_machines and cells_machines_csv: where the finished cells ran, which the aggregation
 * provenance written beside them cannot tell once cells come from several machines. */
static int write_cells_machines(const sb_study_plan *plan, sb_h5 *f) {
    const char **paths = malloc((size_t)(plan->n_cells ? plan->n_cells : 1) * sizeof *paths);
    if (!paths) return sb_error("out of memory");
    int n = 0;
    for (int i = 0; i < plan->n_cells; i++)
        if (plan->cells[i].state == SB_CELL_DONE) paths[n++] = plan->cells[i].path;
    char *text, *csv;
    int rc = sb_study_cells_machines(paths, n, &text, &csv);
    free(paths);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "cells_machines", text);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "cells_machines_csv", csv);
    free(text);
    free(csv);
    return rc;
}

int sb_study_collect(sb_study_plan *plan, const sb_study_opts *o) {
    const sb_study_config *cfg = plan->cfg;
    sb_collect k;
    memset(&k, 0, sizeof k);
    k.plan = plan;
    k.cfg = cfg;
    k.o = o;
    sb_study_fmt(k.data_dir, sizeof k.data_dir, "%s/data", plan->results_dir);
    sb_study_fmt(k.fig_dir, sizeof k.fig_dir, "%s/figures", plan->results_dir);
    int rc = sb_study_mkdirs(k.data_dir);
    rc = rc ? rc : sb_study_mkdirs(k.fig_dir);
    if (rc) return rc;
    /* random inits and smoke models: their quality numbers mean nothing */
    for (int i = 0; i < plan->n_models; i++)
        k.any_random |= !plan->models[i].extra &&
                        (strstr(plan->models[i].kind, "random") || strstr(plan->models[i].kind, "smoke"));

    char path[700];
    sb_study_fmt(path, sizeof path, "%s/%s.h5", plan->results_dir, cfg->name);
    if ((rc = sb_h5_create(&k.out, path))) return rc;

    switch (cfg->command) {
    case SB_STUDY_CMD_PPL: rc = sb_collect_ppl(&k); break;
    case SB_STUDY_CMD_LATENCY: rc = sb_collect_latency(&k); break;
    case SB_STUDY_CMD_ATTENTION: rc = sb_collect_attention(&k); break;
    case SB_STUDY_CMD_TRAIN_LOG: rc = sb_collect_training(&k); break;
    }

    sb_study_buf notes = {0}, models = {0};
    cell_notes(plan, &notes);
    models_info(plan, &models);
    sb_provenance prov;
    sb_provenance_collect(&prov);
    sb_h5 *f = k.out;
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "experiment", cfg->name);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "title", cfg->title);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "paper_ref", cfg->paper_ref);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "mode", sb_study_mode_name(cfg->mode));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "command", sb_study_command_name(cfg->command));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "config", cfg->text ? cfg->text : "");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "config_path", cfg->path);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", plan->data);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data_sha256", k.data_sha256[0] ? k.data_sha256 : "n/a");
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads_per_cell", plan->threads);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "notes", sb_study_buf_str(&notes));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "finding", sb_study_buf_str(&k.finding));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "figures", sb_study_buf_str(&k.figures));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "models_info", sb_study_buf_str(&models));
    rc = rc ? rc : write_tables(&k);
    char *summary = k.summary.n_cols ? sb_study_table_to_csv(&k.summary) : strdup("");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "summary_csv", summary ? summary : "");
    rc = rc ? rc : write_cells_machines(plan, f);
    /* still true of the aggregation step itself; cells_machines says where the cells ran */
    rc = rc ? rc : sb_provenance_to_h5(&prov, f);
    if (!rc) {
        char csv_path[700], plots_path[700];
        sb_study_fmt(csv_path, sizeof csv_path, "%s/%s.csv", plan->results_dir, cfg->name);
        sb_study_fmt(plots_path, sizeof plots_path, "%s/%s.figures", k.data_dir, cfg->name);
        rc = sb_study_write_text(csv_path, summary ? summary : "");
        rc = rc ? rc : sb_study_write_text(plots_path, sb_study_buf_str(&k.plots));
    }
    free(summary);
    if (rc) sb_h5_abort(f);
    else rc = sb_h5_commit(f);
    sb_study_buf_free(&notes);
    sb_study_buf_free(&models);
    sb_study_buf_free(&k.finding);
    sb_study_buf_free(&k.figures);
    sb_study_buf_free(&k.plots);
    for (int i = 0; i < k.n_tables; i++) sb_study_table_free(&k.tables[i]);
    sb_study_table_free(&k.summary);
    if (!rc) fprintf(stderr, "study %s: wrote %s\n", cfg->name, path);
    return rc;
}
