/* Planning: resolve the models of an experiment and expand its cells. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "eval/study.h"
#include "util/h5.h"
#include "util/sha256.h"

void sb_study_note(sb_study_plan *plan, const char *fmt, ...) {
    size_t used = strlen(plan->notes);
    if (used + 2 >= sizeof plan->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(plan->notes + used, sizeof plan->notes - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(plan->notes);
    plan->notes[used] = '\n';
    plan->notes[used + 1] = '\0';
}

void sb_study_cell_slug(const char *spec, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = spec; *p && o + 1 < cap; p++)
        out[o++] = isalnum((unsigned char)*p) || *p == '-' || *p == '.' ? *p : '_';
    out[o] = '\0';
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* "size:mtime" of a file, "-" when absent: cheap change detection for big weight files. */
static void stat_tag(const char *path, char *out, size_t cap) {
    struct stat st;
    if (stat(path, &st) != 0) snprintf(out, cap, "-");
    else snprintf(out, cap, "%lld:%lld", (long long)st.st_size, (long long)st.st_mtime);
}

/* config.json digest + weight and tokenizer file tags. */
static void model_fingerprint(const char *dir, char *out, size_t cap) {
    char path[SB_STUDY_TEXT + 32], w[64], t[64], hex[65] = "-";
    uint8_t dig[32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (sb_sha256_file(path, dig) == SB_OK) sb_sha256_hex(dig, hex);
    sb_clear_error();
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (is_file(dir)) snprintf(path, sizeof path, "%s", dir); /* llama2.c .bin: the file is the model */
    stat_tag(path, w, sizeof w);
    char **wf;
    int nw;
    if (!is_file(dir) && !strcmp(w, "-") && sb_model_weight_files(dir, &wf, &nw) == SB_OK) {
        /* a sharded checkpoint: the tags of its index and shards, folded into one digest */
        char tags[4096] = "";
        size_t k = 0;
        for (int i = 0; i < nw && k < sizeof tags; i++) {
            char one[64];
            stat_tag(wf[i], one, sizeof one);
            k += (size_t)snprintf(tags + k, sizeof tags - k, "%s|%s;", strrchr(wf[i], '/') + 1, one);
        }
        sb_model_weight_files_free(wf, nw);
        uint8_t d2[32];
        char h2[65];
        sb_sha256(tags, strlen(tags), d2);
        sb_sha256_hex(d2, h2);
        snprintf(w, sizeof w, "shards:%d:%.16s", nw, h2);
    }
    sb_clear_error();
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    stat_tag(path, t, sizeof t);
    snprintf(out, cap, "config %.16s weights %s tokenizer %s", hex, w, t);
}

/* Split a flag string into words appended to argv (no quoting: flags are simple). */
static int push_words(char **argv, int *argc, const char *s) {
    const char *p = s;
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) return SB_OK;
        const char *q = p;
        while (*q && !isspace((unsigned char)*q)) q++;
        if (*argc + 1 >= SB_CELL_MAX_ARGS) return sb_error("too many command arguments in '%s'", s);
        argv[(*argc)++] = strndup(p, (size_t)(q - p));
        argv[*argc] = NULL;
        p = q;
    }
}

static void push(char **argv, int *argc, const char *s) {
    if (*argc + 1 >= SB_CELL_MAX_ARGS) return; /* bounded by construction: at most ~20 fixed args */
    argv[(*argc)++] = strdup(s);
    argv[*argc] = NULL;
}

static void push_i64(char **argv, int *argc, int64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    push(argv, argc, b);
}

/* ------------------------------------------------------------------ models */

static bool name_in(char (*list)[SB_STUDY_NAME], int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return true;
    return false;
}

/* Make a random model with sinkbench init (extra models, e.g. TinyLlama-1.1B's shape). */
static int make_init_model(const sb_study_opts *o, const sb_study_model_def *d, const char *dir, const char *log) {
    char *argv[SB_CELL_MAX_ARGS] = {0};
    int argc = 0, rc, status = 0;
    push(argv, &argc, "sinkbench");
    push(argv, &argc, "init");
    rc = push_words(argv, &argc, d->init);
    push(argv, &argc, "--out");
    push(argv, &argc, dir);
    fprintf(stderr, "study: making random model %s (sinkbench init %s)\n", d->name, d->init);
    if (!rc) rc = sb_study_run_sync(o->exe, argv, log, &status);
    for (int i = 0; i < argc; i++) free(argv[i]);
    if (!rc && status != 0) rc = sb_error("sinkbench init for model %s failed (exit %d; see %s)", d->name, status, log);
    return rc;
}

static void add_model(sb_study_plan *plan, const sb_study_opts *o, const char *name, bool extra, const char *kind) {
    const sb_study_config *c = plan->cfg;
    if (plan->n_models == (int)(sizeof plan->models / sizeof plan->models[0])) return;
    for (int i = 0; i < plan->n_models; i++)
        if (!strcmp(plan->models[i].name, name)) return;
    sb_study_model *m = &plan->models[plan->n_models++];
    memset(m, 0, sizeof *m);
    sb_study_copy(m->name, sizeof m->name, name);
    m->extra = extra;
    const sb_study_model_def *d = sb_study_find_model(c, name);
    sb_study_copy(m->label, sizeof m->label, d ? d->label : name);
    sb_study_copy(m->kind, sizeof m->kind, kind ? kind : "checkpoint");
    if (d) m->max_cache = d->max_cache;
    if (d && d->path[0]) {
        sb_study_copy(m->dir, sizeof m->dir, d->path);
    } else if (d && d->init[0]) {
        /* the init flags name the directory: another mode's shape never gets reused */
        uint8_t dig[32];
        char hex[65];
        sb_sha256(d->init, strlen(d->init), dig);
        sb_sha256_hex(dig, hex);
        sb_study_fmt(m->dir, sizeof m->dir, "%s/cells/models/%s-%.8s", plan->results_dir, name, hex);
        sb_study_copy(m->kind, sizeof m->kind, "random init (latency only)");
        if (!is_dir(m->dir) && !o->dry_run) {
            char parent[SB_STUDY_TEXT + 16], log[SB_STUDY_TEXT + 32];
            snprintf(parent, sizeof parent, "%s/cells/models", plan->results_dir);
            sb_study_fmt(log, sizeof log, "%s.log", m->dir);
            if (sb_study_mkdirs(parent) || make_init_model(o, d, m->dir, log)) {
                m->status = SB_MODEL_UNLOADABLE;
                sb_study_copy(m->why, sizeof m->why, sb_last_error());
                return;
            }
        }
    } else {
        sb_study_fmt(m->dir, sizeof m->dir, "%s/%s", o->models_dir ? o->models_dir : "models", name);
        /* a trainer output directory may keep the checkpoint in model/ */
        char probe[SB_STUDY_TEXT + 32];
        sb_study_fmt(probe, sizeof probe, "%s/config.json", m->dir);
        if (!is_file(probe)) {
            sb_study_fmt(probe, sizeof probe, "%s/model/config.json", m->dir);
            if (is_file(probe)) sb_study_fmt(m->dir, sizeof m->dir, "%s/%s/model", o->models_dir ? o->models_dir : "models", name);
        }
    }

    if (!is_dir(m->dir) && !is_file(m->dir)) { /* a directory, or a llama2.c .bin */
        m->status = SB_MODEL_MISSING;
        snprintf(m->why, sizeof m->why, "%s does not exist", m->dir);
        return;
    }
    uint64_t bytes = 0;
    if (sb_model_inspect(m->dir, &m->cfg, &bytes) != SB_OK) {
        m->status = SB_MODEL_UNLOADABLE;
        snprintf(m->why, sizeof m->why, "not loadable: %s", sb_last_error());
        return;
    }
    char tok[SB_STUDY_TEXT + 32];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", m->dir);
    m->has_tokenizer = is_file(tok);
    m->status = SB_MODEL_OK;
}

/* ------------------------------------------------------------------ cells */

static int add_cell(sb_study_plan *plan, int *cap) {
    if (plan->n_cells == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        sb_study_cell *nc = realloc(plan->cells, (size_t)*cap * sizeof *nc);
        if (!nc) return sb_error("out of memory planning cells");
        plan->cells = nc;
    }
    memset(&plan->cells[plan->n_cells], 0, sizeof plan->cells[0]);
    return SB_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The command line of a runnable cell. */
static int build_argv(sb_study_plan *plan, sb_study_cell *cell, const sb_study_run *r, const sb_study_model *m) {
    const sb_study_config *c = plan->cfg;
    char **a = cell->argv;
    int *n = &cell->argc;
    push(a, n, "sinkbench");
    push(a, n, sb_study_command_name(c->command));
    push(a, n, "--model");
    push(a, n, m->dir);
    if (c->command == SB_STUDY_CMD_PPL || c->command == SB_STUDY_CMD_ATTENTION) {
        push(a, n, "--data");
        push(a, n, plan->data);
    }
    if (c->command != SB_STUDY_CMD_ATTENTION) {
        push(a, n, "--policy");
        push(a, n, cell->spec);
    } else {
        /* named, so the key changes with what position 0 holds for a sink-token model */
        push(a, n, "--sink-token");
        push(a, n, "on");
    }
    if (cell->tokens > 0) {
        push(a, n, "--tokens");
        push_i64(a, n, cell->tokens);
    }
    if (c->command == SB_STUDY_CMD_LATENCY && r->warmup >= 0) {
        push(a, n, "--warmup");
        push_i64(a, n, r->warmup);
    }
    int rc = push_words(a, n, r->args);
    if (plan->device[0] && c->command != SB_STUDY_CMD_TRAIN_LOG) {
        /* part of the key: another device computes other numbers */
        push(a, n, "--device");
        push(a, n, plan->device);
    }
    push(a, n, "--json");
    push(a, n, "--out");
    push(a, n, cell->path);
    /* the key leaves out --threads for quality cells: their numbers do not depend on it */
    size_t k = 0;
    for (int i = 1; i < *n; i++) k += (size_t)snprintf(cell->key + k, sizeof cell->key - k, "%s ", a[i]);
    char fp[256], dtag[64];
    model_fingerprint(m->dir, fp, sizeof fp);
    stat_tag(plan->data, dtag, sizeof dtag);
    if (k < sizeof cell->key)
        k += (size_t)snprintf(cell->key + k, sizeof cell->key - k, "\nmodel %s\ndata %s\n", fp, plan->data[0] ? dtag : "-");
    /* timings depend on threads; the memory samples (cache and RSS against tokens) do not */
    if (c->command == SB_STUDY_CMD_LATENCY && strcmp(r->role, "memory") != 0 && k < sizeof cell->key)
        snprintf(cell->key + k, sizeof cell->key - k, "threads %d\n", plan->threads);
    push(a, n, "--threads");
    push_i64(a, n, plan->threads);
    return rc;
}

static bool key_matches(const char *path, const char *key) {
    char kp[SB_STUDY_TEXT + 8];
    snprintf(kp, sizeof kp, "%s.key", path);
    char *text;
    size_t len;
    if (sb_read_file(kp, &text, &len) != SB_OK) {
        sb_clear_error();
        return false;
    }
    bool same = !strcmp(text, key);
    free(text);
    return same;
}

/* Can this model run this policy on this data? Fills why when not. */
static bool applicable(const sb_study_plan *plan, const sb_study_model *m, const char *spec, char *why, size_t cap) {
    const sb_study_config *c = plan->cfg;
    if (c->command == SB_STUDY_CMD_ATTENTION) return true;
    sb_policy_spec p;
    if (sb_policy_parse(spec, &p) != SB_OK || sb_policy_check_model(&p, &m->cfg) != SB_OK) {
        snprintf(why, cap, "%s does not apply to %s: %s", spec, m->name, sb_last_error());
        sb_clear_error();
        return false;
    }
    if (c->command == SB_STUDY_CMD_PPL && ends_with(plan->data, ".txt") && !m->has_tokenizer) {
        snprintf(why, cap, "%s has no tokenizer.json to read %s", m->name, plan->data);
        return false;
    }
    return true;
}

static int cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int sb_study_plan_make(sb_study_plan *plan, const sb_study_config *c, const sb_study_opts *o) {
    memset(plan, 0, sizeof *plan);
    plan->cfg = c;
    sb_study_copy(plan->results_dir, sizeof plan->results_dir, o->results_dir ? o->results_dir : "results");
    /* per mode: a quick run never overwrites the cells of a long full run */
    sb_study_fmt(plan->cells_dir, sizeof plan->cells_dir, "%s/cells/%s/%s", plan->results_dir, sb_study_mode_name(c->mode), c->name);
    sb_study_copy(plan->data, sizeof plan->data, o->data ? o->data : c->data);
    sb_study_copy(plan->device, sizeof plan->device, o->device ? o->device : c->device);
    if (!strcmp(plan->device, "cpu")) plan->device[0] = '\0'; /* the default: cells and keys as before */
    int jobs = c->serial || o->jobs < 1 ? 1 : o->jobs;
    const int share = jobs * (o->node_ranks > 1 ? o->node_ranks : 1);
    plan->threads = o->threads > 0 ? o->threads : (cores() / share > 0 ? cores() / share : 1);
    if (c->serial) plan->threads = o->threads > 0 ? o->threads : cores();

    /* the default models, or the override list */
    char override[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
    int n_override = 0;
    if (o->models) {
        const char *p = o->models;
        while (*p && n_override < SB_STUDY_MAX_ITEMS) {
            while (isspace((unsigned char)*p) || *p == ',') p++;
            if (!*p) break;
            const char *q = p;
            while (*q && !isspace((unsigned char)*q) && *q != ',') q++;
            snprintf(override[n_override++], SB_STUDY_NAME, "%.*s", (int)(q - p), p);
            p = q;
        }
    }
    int n_defaults = o->models ? n_override : c->n_models;
    for (int i = 0; i < n_defaults; i++)
        add_model(plan, o, o->models ? override[i] : c->models[i], false, o->models ? o->model_kind : NULL);
    for (int i = 0; i < c->n_extra_models; i++) {
        bool used = c->command == SB_STUDY_CMD_ATTENTION || c->command == SB_STUDY_CMD_TRAIN_LOG;
        for (int r = 0; r < c->n_runs && !used; r++) used = name_in((char (*)[SB_STUDY_NAME])c->runs[r].models, c->runs[r].n_models, c->extra_models[i]);
        if (used) add_model(plan, o, c->extra_models[i], true, NULL);
    }
    for (int i = 0; i < plan->n_models; i++)
        if (plan->models[i].status != SB_MODEL_OK)
            sb_study_note(plan, "model %s skipped: %s", plan->models[i].name, plan->models[i].why);

    if (c->command == SB_STUDY_CMD_TRAIN_LOG) return SB_OK;

    bool attention_missing = false;
    if (c->command == SB_STUDY_CMD_ATTENTION && !o->dry_run) {
        char *argv[] = {"sinkbench", "attention", "--help", NULL};
        int status = 1;
        if (sb_study_run_sync(o->exe, argv, NULL, &status) != SB_OK || status != 0) attention_missing = true;
        sb_clear_error();
        if (attention_missing)
            sb_study_note(plan, "attention maps are not available yet: this sinkbench has no 'attention' command "
                                "(it needs an attention-probe API in the engine's forward)");
    }

    int cap = 0;
    for (int ri = 0; ri < c->n_runs; ri++) {
        const sb_study_run *r = &c->runs[ri];
        for (int mi = 0; mi < plan->n_models; mi++) {
            sb_study_model *m = &plan->models[mi];
            bool wanted;
            if (r->n_models == 0) wanted = !m->extra;
            else if (m->extra) wanted = name_in((char (*)[SB_STUDY_NAME])r->models, r->n_models, m->name);
            else {
                /* with an override list, a run naming default models takes the override model
                 * at the same position (sb-base is the first default: the first override) */
                wanted = false;
                for (int k = 0; k < r->n_models && !wanted; k++) {
                    if (!o->models) {
                        wanted = !strcmp(r->models[k], m->name);
                        continue;
                    }
                    for (int d = 0; d < c->n_models && d < n_override && !wanted; d++)
                        wanted = !strcmp(r->models[k], c->models[d]) && !strcmp(override[d], m->name);
                }
            }
            if (!wanted || m->status != SB_MODEL_OK) continue;
            int n_pol = r->n_policies > 0 ? r->n_policies : 1;
            int n_cache = r->n_caches > 0 ? r->n_caches : 1;
            for (int pi = 0; pi < n_pol; pi++)
                for (int ci = 0; ci < n_cache; ci++) {
                    int rc = add_cell(plan, &cap);
                    if (rc) return rc;
                    sb_study_cell *cell = &plan->cells[plan->n_cells++];
                    cell->run = ri;
                    cell->policy = pi;
                    cell->cache = r->n_caches > 0 ? ci : -1;
                    cell->model = mi;
                    cell->cache_size = r->n_caches > 0 ? r->caches[ci] : 0;
                    cell->tokens = r->tokens;
                    if (r->n_policies > 0) {
                        rc = sb_study_expand(r->policies[pi], m->cfg.max_ctx, cell->cache_size, cell->spec, sizeof cell->spec);
                        if (rc) {
                            char why[SB_STUDY_TEXT];
                            sb_study_copy(why, sizeof why, sb_last_error());
                            return sb_error("%s: [run %s]: %s", c->path, r->name, why);
                        }
                    } else sb_study_copy(cell->spec, sizeof cell->spec, "none");
                    char slug[SB_STUDY_NAME];
                    sb_study_cell_slug(cell->spec, slug, sizeof slug);
                    if (r->n_caches > 0)
                        snprintf(cell->id, sizeof cell->id, "%s/%s-%s-c%lld", m->name, r->name, slug, (long long)cell->cache_size);
                    else snprintf(cell->id, sizeof cell->id, "%s/%s-%s", m->name, r->name, slug);
                    snprintf(cell->path, sizeof cell->path, "%.300s/%.200s.h5", plan->cells_dir, cell->id);
                    if (m->max_cache > 0 && cell->cache_size > m->max_cache) {
                        cell->state = SB_CELL_SKIP;
                        snprintf(cell->why, sizeof cell->why, "cache %lld is above %s's max_cache %lld in %s mode",
                                 (long long)cell->cache_size, m->name, (long long)m->max_cache, sb_study_mode_name(c->mode));
                        continue;
                    }
                    if (attention_missing) {
                        cell->state = SB_CELL_SKIP;
                        sb_study_copy(cell->why, sizeof cell->why, "sinkbench attention is not available yet");
                        continue;
                    }
                    if (!applicable(plan, m, cell->spec, cell->why, sizeof cell->why)) {
                        cell->state = SB_CELL_SKIP;
                        continue;
                    }
                    if ((rc = build_argv(plan, cell, r, m))) return rc;
                    cell->state = !o->force && sb_h5_is_complete(cell->path) == 1 && key_matches(cell->path, cell->key)
                                      ? SB_CELL_DONE
                                      : SB_CELL_TODO;
                    sb_clear_error();
                }
        }
    }
    return SB_OK;
}

void sb_study_plan_free(sb_study_plan *plan) {
    for (int i = 0; i < plan->n_cells; i++)
        for (int j = 0; j < plan->cells[i].argc; j++) free(plan->cells[i].argv[j]);
    free(plan->cells);
    plan->cells = NULL;
    plan->n_cells = 0;
}
