/* The study: experiments described by INI files in configs/, run as cells, collected into
 * results/<experiment>.h5 + .csv, plot data for the gnuplot scripts in plots/, and the report.
 *
 * An experiment INI (see configs/ppl_stream.ini for a commented example):
 *   [experiment]  name, command (ppl | latency | attention | train_log), title, paper, data,
 *                 models (the trained default models), extra_models (made on demand),
 *                 serial (cells one at a time with every core: timing experiments),
 *                 speedup = RUN_A / RUN_B (latency: mean latency ratio per cache size),
 *                 figures (curve, bars, cache, latency, memory, maps, training)
 *   [run NAME]    policies (templates), caches (latency sweep), tokens, warmup, models, role,
 *                 args (extra command flags)
 *   [model NAME]  path, init (sinkbench init flags for a random model), label,
 *                 max_cache (latency sweeps stop there for this model)
 *   [paper NAME]  caption, columns, row (repeatable): the paper's numbers, cells split by '|'
 * Any key may be given per mode as key.smoke / key.quick / key.full, which wins over key.
 * Policy templates hold integer expressions in braces over W (the model's training context)
 * and C (the cache size of a latency sweep): "sinks:4:{W-4}", "recompute:{C}", "{W/2-4}".
 *
 * A cell is one command run (model x run x policy [x cache]); its result file
 * <results>/cells/<mode>/<experiment>/<model>/<cell>.h5 plus a .key sidecar (the exact command and a model
 * fingerprint) make re-runs skip finished cells and redo cells whose inputs changed. */
#ifndef SB_STUDY_H
#define SB_STUDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

typedef enum { SB_STUDY_SMOKE, SB_STUDY_QUICK, SB_STUDY_FULL } sb_study_mode;
typedef enum { SB_STUDY_CMD_PPL, SB_STUDY_CMD_LATENCY, SB_STUDY_CMD_ATTENTION, SB_STUDY_CMD_TRAIN_LOG } sb_study_command;

#define SB_STUDY_MAX_ITEMS 16   /* models, runs, policies per run, caches, paper tables */
#define SB_STUDY_MAX_ROWS 16    /* rows of one paper table */
#define SB_STUDY_NAME 64
#define SB_STUDY_TEXT 512

typedef struct {
    char name[SB_STUDY_NAME];
    char path[SB_STUDY_TEXT];   /* "" = <models_dir>/<name> */
    char init[SB_STUDY_TEXT];   /* sinkbench init flags: a random model made on demand */
    char label[SB_STUDY_NAME * 2];
    int64_t max_cache;          /* latency sweeps skip caches above it (0 = no limit) */
} sb_study_model_def;

typedef struct {
    char name[SB_STUDY_NAME];
    char policies[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
    int n_policies;
    int64_t caches[SB_STUDY_MAX_ITEMS];
    int n_caches;                /* 0 outside latency sweeps */
    int64_t tokens;              /* ppl: tokens read (0 = whole stream); latency: timed tokens */
    int64_t warmup;              /* latency; -1 = the command's default */
    char models[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
    int n_models;                /* 0 = the experiment's models */
    char role[SB_STUDY_NAME];    /* latency: "sweep" (default) or "memory" */
    char args[SB_STUDY_TEXT];    /* extra flags for the command */
} sb_study_run;

typedef struct {
    char name[SB_STUDY_NAME];
    char caption[SB_STUDY_TEXT];
    char columns[SB_STUDY_TEXT];
    char rows[SB_STUDY_MAX_ROWS][SB_STUDY_TEXT];
    int n_rows;
} sb_study_paper;

typedef struct {
    char path[SB_STUDY_TEXT];    /* the INI file */
    char *text;                  /* its whole text (stored as provenance) */
    sb_study_mode mode;
    char name[SB_STUDY_NAME];
    sb_study_command command;
    char title[SB_STUDY_TEXT];
    char paper_ref[SB_STUDY_TEXT];
    char data[SB_STUDY_TEXT];
    char models[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
    int n_models;
    char extra_models[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
    int n_extra_models;
    bool serial;
    char figures[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME]; /* figure kinds the collector draws data for */
    char device[SB_STUDY_NAME];      /* [experiment] device = cuda: where ppl/latency/attention
                                        cells run ("" = the cpu) */
    int n_figures;
    char speedup_num[SB_STUDY_NAME], speedup_den[SB_STUDY_NAME];
    sb_study_model_def defs[SB_STUDY_MAX_ITEMS];
    int n_defs;
    sb_study_run runs[SB_STUDY_MAX_ITEMS];
    int n_runs;
    sb_study_paper paper[SB_STUDY_MAX_ITEMS];
    int n_paper;
} sb_study_config;

const char *sb_study_mode_name(sb_study_mode m);
int sb_study_mode_parse(const char *s, sb_study_mode *out);   /* 0, or -1 when unknown */
const char *sb_study_command_name(sb_study_command c);

/* Parse INI text for a mode; `path` names the file in messages (and is kept). Unknown
 * sections or keys, bad numbers, lines too long for inih, and missing required keys are
 * errors naming path, section and key. cfg->text receives a copy of text. */
int sb_study_config_parse(sb_study_config *cfg, const char *text, const char *path, sb_study_mode mode);
int sb_study_config_load(sb_study_config *cfg, const char *path, sb_study_mode mode);
void sb_study_config_free(sb_study_config *cfg);
/* The [run NAME] / [model NAME] section of that name, NULL if none. */
const sb_study_run *sb_study_find_run(const sb_study_config *cfg, const char *name);
const sb_study_model_def *sb_study_find_model(const sb_study_config *cfg, const char *name);

/* Evaluate an integer expression over W and C (+ - * / parentheses, unary minus).
 * Returns SB_OK or an SB_ERR_USAGE naming the expression. Division truncates; / 0 is an error. */
int sb_study_eval_expr(const char *expr, int64_t W, int64_t C, int64_t *out);
/* Replace every {expr} of a template; error on unbalanced braces or overflow of out. */
int sb_study_expand(const char *tmpl, int64_t W, int64_t C, char *out, size_t cap);

/* ------------------------------------------------------------------ planning */

typedef enum { SB_MODEL_OK, SB_MODEL_MISSING, SB_MODEL_UNLOADABLE } sb_model_status;

typedef struct {
    char name[SB_STUDY_NAME];
    char label[SB_STUDY_NAME * 2];
    char dir[SB_STUDY_TEXT];
    char kind[SB_STUDY_NAME * 2]; /* "checkpoint", "random init (latency only)", or the override's kind */
    sb_model_status status;
    char why[SB_STUDY_TEXT];     /* when not OK */
    sb_model_config cfg;         /* valid when OK */
    bool has_tokenizer;
    bool extra;                  /* from extra_models */
    int64_t max_cache;           /* 0 = no limit */
} sb_study_model;

typedef enum { SB_CELL_TODO, SB_CELL_DONE, SB_CELL_SKIP, SB_CELL_FAILED } sb_cell_state;

#define SB_CELL_MAX_ARGS 40

typedef struct {
    int run, policy, cache;      /* indices into the config (cache -1 when no sweep) */
    int model;                   /* index into the plan's models */
    char spec[SB_STUDY_NAME];    /* expanded policy */
    int64_t cache_size;          /* latency sweep value C, else 0 */
    int64_t tokens;
    char id[SB_STUDY_TEXT];      /* "<model>/<run>-<policy>[-c<C>]" with ':' -> '_' */
    char path[SB_STUDY_TEXT];    /* result file */
    sb_cell_state state;
    char why[SB_STUDY_TEXT];     /* skip or failure reason */
    char *argv[SB_CELL_MAX_ARGS];/* command line (argv[0] = "sinkbench"), NULL-terminated */
    int argc;
    char key[2048];              /* command line + model fingerprint */
    double wall_s;
} sb_study_cell;

typedef struct {
    const sb_study_config *cfg;
    char results_dir[SB_STUDY_TEXT];
    char cells_dir[SB_STUDY_TEXT];   /* <results>/cells/<mode>/<experiment> */
    char data[SB_STUDY_TEXT];        /* data file after overrides */
    sb_study_model models[2 * SB_STUDY_MAX_ITEMS];
    int n_models;
    sb_study_cell *cells;
    int n_cells;
    int threads;                     /* per cell */
    char device[SB_STUDY_NAME];      /* --device of the cells ("" = cpu) */
    char notes[4096];                /* visible notes for the report, one per line */
} sb_study_plan;

typedef struct {
    const char *results_dir;         /* default "results" */
    const char *models_dir;          /* default "models" */
    const char *models;              /* space-separated override of the default models, or NULL */
    const char *data;                /* override of the experiment's data, or NULL */
    const char *exe;                 /* the sinkbench binary (default /proc/self/exe) */
    const char *model_kind;          /* how the override models were made, shown in the report
                                        (e.g. "smoke: random init"); NULL = "checkpoint" */
    int jobs;                        /* concurrent cells (>= 1) */
    int threads;                     /* threads per cell; 0 = cores / jobs (/ node_ranks) */
    int node_ranks;                  /* MPI ranks sharing this machine (0 = 1): they divide its
                                        cores for the default threads of non-serial cells */
    const char *device;              /* --device for every cell, over the config's; NULL = as configured */
    bool force;                      /* redo finished cells */
    bool dry_run;                    /* plan only */
} sb_study_opts;

/* Resolve models (making extra models with sinkbench init when missing, unless dry_run),
 * expand the cells and mark finished ones DONE. */
int sb_study_plan_make(sb_study_plan *plan, const sb_study_config *cfg, const sb_study_opts *o);
void sb_study_plan_free(sb_study_plan *plan);
/* Append a line to plan->notes. */
void sb_study_note(sb_study_plan *plan, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sanitize a policy spec for a file name (':' -> '_'). */
void sb_study_cell_slug(const char *spec, char *out, size_t cap);

/* Run the TODO cells (jobs at a time; serial experiments one at a time), progress on stderr.
 * Returns SB_OK when every cell ran; SB_ERR (after running the others) when some failed. */
int sb_study_run_cells(sb_study_plan *plan, const sb_study_opts *o);

/* The same over MPI ranks (eval/study_dist.c): every rank calls it; rank 0 hands the TODO
 * cells out, largest first, to whichever rank asks (itself included), each rank running `jobs`
 * at a time; serial experiments run on rank 0 alone. Only rank 0 prints and returns the
 * failures. */
int sb_study_run_cells_dist(sb_study_plan *plan, const sb_study_opts *o);
/* Plan on every rank: rank 0 first (it makes missing models), then the others; an error on
 * any rank, or a rank planning other cells, fails it on every rank. */
int sb_study_dist_plan(sb_study_plan *plan, const sb_study_config *cfg, const sb_study_opts *o);
/* A cell's relative cost (tokens times multiply-adds per token under its policy), for the
 * largest-first order. */
double sb_study_cell_cost(const sb_study_plan *plan, const sb_study_cell *c);

/* Assemble results/<name>.h5 (+ .csv, plot data and figure list in results/data) from the
 * finished cells. */
int sb_study_collect(sb_study_plan *plan, const sb_study_opts *o);

/* Seconds since 1970 of a UTC time written like 2026-11-26T02:19:12Z (the cells' date_utc);
 * SB_OK, or an error naming the text. */
int sb_study_parse_utc(const char *iso, int64_t *out);
/* Inserts x (>= 1) into the ascending, distinct v[*n] unless present or full (cap). */
void sb_study_add_distinct(int64_t *v, int *n, int cap, int64_t x);
/* Where the cells whose result files are paths[n] ran, grouped by machine (hostname, CPU model,
 * cores) in order of first appearance: *text gets one line per machine ("host (cpu, N cores):
 * C cells, T threads each, git R, X of cell time, Y from first start to last finish"), *csv the
 * same as CSV with columns host,cpu_model,cores,cells,threads,git_revs,cell_hours,span_hours
 * (threads and git_revs space-separated). A cell's start is its date_utc (when it finished)
 * less its wall_s. Unreadable files are left out. Both malloc'd; "" and a bare header when
 * no cell is readable. */
int sb_study_cells_machines(const char *const *paths, int n, char **text, char **csv);

/* Start exe with argv (argv[0] is only the name shown), stdout and stderr appended to
 * log_path (or /dev/null when NULL). */
int sb_study_spawn(const char *exe, char *const argv[], const char *log_path, int *pid);
/* Same, waiting for it: *status receives the exit status (128 + signal when killed). */
int sb_study_run_sync(const char *exe, char *const argv[], const char *log_path, int *status);

/* Write a file atomically from a NUL-terminated string. */
int sb_study_write_text(const char *path, const char *text);
/* Copy a string, truncating to cap - 1 bytes (cap >= 1). */
void sb_study_copy(char *dst, size_t cap, const char *src);
/* snprintf that reports truncation: false (and out truncated) when it did not fit. */
bool sb_study_fmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* mkdir -p. */
int sb_study_mkdirs(const char *path);

#endif
