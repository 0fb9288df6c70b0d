/* Internal to the study collectors (eval/study_collect*.c): the state of one collection
 * and helpers shared by the per-command collectors. */
#ifndef SB_STUDY_COLLECT_H
#define SB_STUDY_COLLECT_H

#include <stdbool.h>
#include <stdint.h>

#include "eval/study.h"
#include "eval/study_table.h"
#include "util/h5.h"

#define SB_COLLECT_MAX_TABLES 12

typedef struct {
    sb_study_plan *plan;
    const sb_study_config *cfg;
    const sb_study_opts *o;
    sb_h5 *out;                         /* results/<name>.h5 being written */
    char data_dir[600], fig_dir[600];   /* results/data, results/figures */
    sb_study_table tables[SB_COLLECT_MAX_TABLES];
    int n_tables;
    sb_study_table summary;             /* the long-form table: results/<name>.csv */
    sb_study_buf finding;               /* what the result shows, for the report */
    sb_study_buf figures;               /* "base|caption" lines, for the report */
    sb_study_buf plots;                 /* "script\tdata\tbase\ttitle\targs" lines, for plots/plot_all.sh */
    char data_sha256[65];
    bool any_random;                    /* a model in the tables is a random init */
} sb_collect;

int sb_collect_ppl(sb_collect *k);
int sb_collect_latency(sb_collect *k);
int sb_collect_attention(sb_collect *k);
int sb_collect_training(sb_collect *k);

/* New table owned by k (NULL when there are too many). */
sb_study_table *sb_collect_table(sb_collect *k, const char *caption, int n_cols, const char *const *header);
/* Register a figure: script in plots/, its data file, output base name (in results/figures),
 * title, extra arguments and the report's caption. */
void sb_collect_figure(sb_collect *k, const char *script, const char *data, const char *base, const char *title,
                       const char *args, const char *caption);
bool sb_collect_wants(const sb_collect *k, const char *figure);
/* Path in results/data: "<data_dir>/<name>". */
void sb_collect_data_path(const sb_collect *k, const char *name, char *out, size_t cap);

/* Short human label of a policy spec (the policy's own, engine/policy.h): "dense", "0+508",
 * "4+508", "4(nl)+504", "sink+511", "recompute 512", "H2O 4+252+256", "TOVA 512". */
void sb_study_policy_label(const char *spec, char *out, size_t cap);
/* The cache size the policy is labelled with (K + W, W, ...), 0 for unbounded ones. */
int64_t sb_study_policy_cache(const char *spec);
/* 20000 -> "20k", 3200000 -> "3.2M". */
void sb_fmt_count(int64_t n, char *out, size_t cap);

/* Copy one numeric attribute of a cell file, NAN / -1 when absent. */
double sb_cell_attr_f64(sb_h5 *f, const char *key);
int64_t sb_cell_attr_i64(sb_h5 *f, const char *key);
/* Remember the data hash of a cell file (first one wins). */
void sb_collect_note_data_hash(sb_collect *k, sb_h5 *f);

#endif
