/* Experiment INI files: parsing (inih), per-mode keys, policy templates. */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "eval/study.h"

static const char *const mode_names[] = {"smoke", "quick", "full"};
static const char *const command_names[] = {"ppl", "latency", "attention", "train_log"};

const char *sb_study_mode_name(sb_study_mode m) {
    return (unsigned)m < 3 ? mode_names[m] : "?";
}

int sb_study_mode_parse(const char *s, sb_study_mode *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, mode_names[i])) {
            *out = (sb_study_mode)i;
            return 0;
        }
    return -1;
}

const char *sb_study_command_name(sb_study_command c) {
    return (unsigned)c < 4 ? command_names[c] : "?";
}

/* ------------------------------------------------------------------ raw entries */

typedef struct {
    char section[SB_STUDY_NAME * 2];
    char key[SB_STUDY_NAME];
    char value[SB_STUDY_TEXT];
} entry;

typedef struct {
    entry *e;
    int n, cap;
    const char *path;
    bool failed;
} entries;

static int on_entry(void *user, const char *section, const char *key, const char *value) {
    entries *es = user;
    if (es->failed) return 0;
    if (strlen(section) >= sizeof es->e[0].section || strlen(key) >= sizeof es->e[0].key ||
        strlen(value) >= sizeof es->e[0].value) {
        sb_error("%s: [%s] %s: name or value too long", es->path, section, key);
        es->failed = true;
        return 0;
    }
    if (es->n == es->cap) {
        es->cap = es->cap ? 2 * es->cap : 64;
        entry *ne = realloc(es->e, (size_t)es->cap * sizeof *ne);
        if (!ne) {
            sb_error("%s: out of memory", es->path);
            es->failed = true;
            return 0;
        }
        es->e = ne;
    }
    entry *x = &es->e[es->n++];
    sb_study_copy(x->section, sizeof x->section, section);
    sb_study_copy(x->key, sizeof x->key, key);
    sb_study_copy(x->value, sizeof x->value, value);
    return 1;
}

/* Split "key.mode"; mode_out = -1 without a suffix, -2 for an unknown one. */
static void split_key(const char *key, char *base, size_t cap, int *mode_out) {
    const char *dot = strrchr(key, '.');
    *mode_out = -1;
    if (!dot) {
        sb_study_copy(base, cap, key);
        return;
    }
    snprintf(base, cap, "%.*s", (int)(dot - key), key);
    sb_study_mode m;
    *mode_out = sb_study_mode_parse(dot + 1, &m) == 0 ? (int)m : -2;
}

/* The value of section.key for mode: key.mode wins over key; the last one given counts. */
static const char *lookup(const entries *es, const char *section, const char *key, sb_study_mode mode) {
    const char *plain = NULL, *moded = NULL;
    for (int i = 0; i < es->n; i++) {
        if (strcmp(es->e[i].section, section) != 0) continue;
        char base[SB_STUDY_NAME];
        int m;
        split_key(es->e[i].key, base, sizeof base, &m);
        if (strcmp(base, key) != 0) continue;
        if (m == (int)mode) moded = es->e[i].value;
        else if (m == -1) plain = es->e[i].value;
    }
    return moded ? moded : plain;
}

/* ------------------------------------------------------------------ value parsing */

static int copy_value(char *dst, size_t cap, const char *v, const char *path, const char *sec, const char *key) {
    if (strlen(v) >= cap) return sb_error("%s: [%s] %s is too long", path, sec, key);
    sb_study_copy(dst, cap, v);
    return SB_OK;
}

/* Whitespace- or comma-separated words into list[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME]. */
static int parse_list(const char *v, char (*list)[SB_STUDY_NAME], int *n, const char *path, const char *sec,
                      const char *key) {
    *n = 0;
    const char *p = v;
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ',')) p++;
        if (!*p) break;
        const char *q = p;
        while (*q && !isspace((unsigned char)*q) && *q != ',') q++;
        if (*n == SB_STUDY_MAX_ITEMS) return sb_error("%s: [%s] %s has more than %d items", path, sec, key, SB_STUDY_MAX_ITEMS);
        if ((size_t)(q - p) >= SB_STUDY_NAME) return sb_error("%s: [%s] %s: item '%.*s' is too long", path, sec, key, (int)(q - p), p);
        snprintf(list[*n], SB_STUDY_NAME, "%.*s", (int)(q - p), p);
        (*n)++;
        p = q;
    }
    return SB_OK;
}

static int parse_i64(const char *v, int64_t lo, int64_t *out, const char *path, const char *sec, const char *key) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    while (*end && isspace((unsigned char)*end)) end++;
    if (errno || end == v || *end || x < lo)
        return sb_error("%s: [%s] %s = '%s' is not a whole number >= %lld", path, sec, key, v, (long long)lo);
    *out = x;
    return SB_OK;
}

static int parse_bool(const char *v, bool *out, const char *path, const char *sec, const char *key) {
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1")) *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0")) *out = false;
    else return sb_error("%s: [%s] %s = '%s' is not true or false", path, sec, key, v);
    return SB_OK;
}

static bool valid_name(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') return false;
    return true;
}

/* ------------------------------------------------------------------ sections */

static const char *const experiment_keys[] = {"name", "command", "title", "paper", "data", "models",
                                              "extra_models", "serial", "speedup", "figures", "device", NULL};
static const char *const run_keys[] = {"policies", "caches", "tokens", "warmup", "models", "role", "args", NULL};
static const char *const model_keys[] = {"path", "init", "label", "max_cache", NULL};
static const char *const paper_keys[] = {"caption", "columns", "row", NULL};

static bool in_list(const char *const *keys, const char *k) {
    for (; *keys; keys++)
        if (!strcmp(*keys, k)) return true;
    return false;
}

/* Section kind from its header: "experiment", "run X", "model X", "paper X". */
static const char *const *section_keys(const char *section, const char **name) {
    static const struct {
        const char *prefix;
        const char *const *keys;
    } kinds[] = {{"run ", run_keys}, {"model ", model_keys}, {"paper ", paper_keys}};
    *name = NULL;
    if (!strcmp(section, "experiment")) return experiment_keys;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].prefix);
        if (!strncmp(section, kinds[i].prefix, n)) {
            *name = section + n;
            return kinds[i].keys;
        }
    }
    return NULL;
}

static int check_entries(const entries *es, const char *path) {
    for (int i = 0; i < es->n; i++) {
        const entry *e = &es->e[i];
        const char *name;
        const char *const *keys = section_keys(e->section, &name);
        if (!keys) return sb_error("%s: unknown section [%s] (expected [experiment], [run NAME], [model NAME] or [paper NAME])", path, e->section);
        if (name && !valid_name(name)) return sb_error("%s: [%s]: '%s' is not a valid name (letters, digits, - _ .)", path, e->section, name);
        char base[SB_STUDY_NAME];
        int m;
        split_key(e->key, base, sizeof base, &m);
        if (m == -2) return sb_error("%s: [%s] %s: unknown mode suffix (use .smoke, .quick or .full)", path, e->section, e->key);
        if (!in_list(keys, base)) return sb_error("%s: [%s] unknown key '%s'", path, e->section, base);
    }
    return SB_OK;
}

/* Collect section names of one kind in order of first appearance. */
static int section_names(const entries *es, const char *prefix, char (*names)[SB_STUDY_NAME], int *n, const char *path) {
    *n = 0;
    size_t pl = strlen(prefix);
    for (int i = 0; i < es->n; i++) {
        if (strncmp(es->e[i].section, prefix, pl) != 0) continue;
        const char *name = es->e[i].section + pl;
        bool seen = false;
        for (int j = 0; j < *n && !seen; j++) seen = !strcmp(names[j], name);
        if (seen) continue;
        if (*n == SB_STUDY_MAX_ITEMS) return sb_error("%s: more than %d [%s...] sections", path, SB_STUDY_MAX_ITEMS, prefix);
        if (strlen(name) >= SB_STUDY_NAME) return sb_error("%s: section name '%s' is too long", path, name);
        sb_study_copy(names[(*n)++], SB_STUDY_NAME, name);
    }
    return SB_OK;
}

static int parse_experiment(sb_study_config *c, const entries *es) {
    const char *P = c->path, *S = "experiment";
    const char *v;
    int rc = SB_OK;
    if (!(v = lookup(es, S, "name", c->mode))) return sb_error("%s: [experiment] name is required", P);
    if (!valid_name(v)) return sb_error("%s: [experiment] name '%s' is not a valid name", P, v);
    if ((rc = copy_value(c->name, sizeof c->name, v, P, S, "name"))) return rc;
    if (!(v = lookup(es, S, "command", c->mode))) return sb_error("%s: [experiment] command is required", P);
    int cmd = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, command_names[i])) cmd = i;
    if (cmd < 0) return sb_error("%s: [experiment] command = '%s' (expected ppl, latency, attention or train_log)", P, v);
    c->command = (sb_study_command)cmd;
    if ((v = lookup(es, S, "title", c->mode)) && (rc = copy_value(c->title, sizeof c->title, v, P, S, "title"))) return rc;
    if ((v = lookup(es, S, "paper", c->mode)) && (rc = copy_value(c->paper_ref, sizeof c->paper_ref, v, P, S, "paper"))) return rc;
    if ((v = lookup(es, S, "data", c->mode)) && (rc = copy_value(c->data, sizeof c->data, v, P, S, "data"))) return rc;
    if ((v = lookup(es, S, "models", c->mode)) && (rc = parse_list(v, c->models, &c->n_models, P, S, "models"))) return rc;
    if ((v = lookup(es, S, "extra_models", c->mode)) &&
        (rc = parse_list(v, c->extra_models, &c->n_extra_models, P, S, "extra_models")))
        return rc;
    if ((v = lookup(es, S, "figures", c->mode)) && (rc = parse_list(v, c->figures, &c->n_figures, P, S, "figures"))) return rc;
    if ((v = lookup(es, S, "serial", c->mode)) && (rc = parse_bool(v, &c->serial, P, S, "serial"))) return rc;
    if ((v = lookup(es, S, "device", c->mode)) && (rc = copy_value(c->device, sizeof c->device, v, P, S, "device")))
        return rc;
    if ((v = lookup(es, S, "speedup", c->mode))) {
        char a[SB_STUDY_NAME], b[SB_STUDY_NAME];
        if (sscanf(v, " %63[^/ ] / %63s", a, b) != 2) return sb_error("%s: [experiment] speedup = '%s' (expected RUN_A / RUN_B)", P, v);
        sb_study_copy(c->speedup_num, sizeof c->speedup_num, a);
        sb_study_copy(c->speedup_den, sizeof c->speedup_den, b);
    }
    if (!c->title[0]) sb_study_copy(c->title, sizeof c->title, c->name);
    if ((c->command == SB_STUDY_CMD_PPL || c->command == SB_STUDY_CMD_ATTENTION) && !c->data[0])
        return sb_error("%s: [experiment] data is required for command %s", P, command_names[c->command]);
    return SB_OK;
}

static int parse_run(sb_study_config *c, const entries *es, const char *name, sb_study_run *r) {
    char S[SB_STUDY_NAME * 2];
    snprintf(S, sizeof S, "run %.63s", name);
    const char *P = c->path, *v;
    int rc;
    memset(r, 0, sizeof *r);
    sb_study_copy(r->name, sizeof r->name, name);
    r->warmup = -1;
    snprintf(r->role, sizeof r->role, "sweep");
    if ((v = lookup(es, S, "policies", c->mode)) && (rc = parse_list(v, r->policies, &r->n_policies, P, S, "policies"))) return rc;
    if (r->n_policies == 0 && c->command != SB_STUDY_CMD_ATTENTION && c->command != SB_STUDY_CMD_TRAIN_LOG)
        return sb_error("%s: [%s] policies is required", P, S);
    if ((v = lookup(es, S, "caches", c->mode))) {
        char items[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
        if ((rc = parse_list(v, items, &r->n_caches, P, S, "caches"))) return rc;
        for (int i = 0; i < r->n_caches; i++)
            if ((rc = parse_i64(items[i], 1, &r->caches[i], P, S, "caches"))) return rc;
    }
    if ((v = lookup(es, S, "tokens", c->mode)) && (rc = parse_i64(v, 0, &r->tokens, P, S, "tokens"))) return rc;
    if ((v = lookup(es, S, "warmup", c->mode)) && (rc = parse_i64(v, 0, &r->warmup, P, S, "warmup"))) return rc;
    if ((v = lookup(es, S, "models", c->mode)) && (rc = parse_list(v, r->models, &r->n_models, P, S, "models"))) return rc;
    if ((v = lookup(es, S, "role", c->mode))) {
        if (strcmp(v, "sweep") && strcmp(v, "memory")) return sb_error("%s: [%s] role = '%s' (expected sweep or memory)", P, S, v);
        sb_study_copy(r->role, sizeof r->role, v);
    }
    if ((v = lookup(es, S, "args", c->mode)) && (rc = copy_value(r->args, sizeof r->args, v, P, S, "args"))) return rc;
    if (c->command == SB_STUDY_CMD_LATENCY && r->tokens < 1) return sb_error("%s: [%s] tokens must be at least 1 for latency", P, S);
    /* the braces must expand for some W and C: catch typos now, not at run time */
    for (int i = 0; i < r->n_policies; i++) {
        char tmp[SB_STUDY_NAME];
        if ((rc = sb_study_expand(r->policies[i], 512, 512, tmp, sizeof tmp))) {
            char why[SB_STUDY_TEXT];
            sb_study_copy(why, sizeof why, sb_last_error()); /* the message buffer is about to be reused */
            return sb_error("%s: [%s] policies: %s", P, S, why);
        }
    }
    return SB_OK;
}

static int parse_model(sb_study_config *c, const entries *es, const char *name, sb_study_model_def *d) {
    char S[SB_STUDY_NAME * 2];
    snprintf(S, sizeof S, "model %.63s", name);
    const char *P = c->path, *v;
    int rc;
    memset(d, 0, sizeof *d);
    sb_study_copy(d->name, sizeof d->name, name);
    if ((v = lookup(es, S, "path", c->mode)) && (rc = copy_value(d->path, sizeof d->path, v, P, S, "path"))) return rc;
    if ((v = lookup(es, S, "init", c->mode)) && (rc = copy_value(d->init, sizeof d->init, v, P, S, "init"))) return rc;
    if ((v = lookup(es, S, "label", c->mode)) && (rc = copy_value(d->label, sizeof d->label, v, P, S, "label"))) return rc;
    if ((v = lookup(es, S, "max_cache", c->mode)) && (rc = parse_i64(v, 0, &d->max_cache, P, S, "max_cache"))) return rc;
    if (!d->label[0]) sb_study_copy(d->label, sizeof d->label, name);
    return SB_OK;
}

static int parse_paper(sb_study_config *c, const entries *es, const char *name, sb_study_paper *t) {
    char S[SB_STUDY_NAME * 2];
    snprintf(S, sizeof S, "paper %.63s", name);
    const char *P = c->path, *v;
    int rc;
    memset(t, 0, sizeof *t);
    sb_study_copy(t->name, sizeof t->name, name);
    if ((v = lookup(es, S, "caption", c->mode)) && (rc = copy_value(t->caption, sizeof t->caption, v, P, S, "caption"))) return rc;
    if (!(v = lookup(es, S, "columns", c->mode))) return sb_error("%s: [%s] columns is required", P, S);
    if ((rc = copy_value(t->columns, sizeof t->columns, v, P, S, "columns"))) return rc;
    for (int i = 0; i < es->n; i++) {
        if (strcmp(es->e[i].section, S) != 0 || strcmp(es->e[i].key, "row") != 0) continue;
        if (t->n_rows == SB_STUDY_MAX_ROWS) return sb_error("%s: [%s] has more than %d rows", P, S, SB_STUDY_MAX_ROWS);
        sb_study_copy(t->rows[t->n_rows++], SB_STUDY_TEXT, es->e[i].value);
    }
    return SB_OK;
}

int sb_study_config_parse(sb_study_config *c, const char *text, const char *path, sb_study_mode mode) {
    memset(c, 0, sizeof *c);
    c->mode = mode;
    sb_study_copy(c->path, sizeof c->path, path);
    /* inih reads lines into a 200-byte buffer and silently splits longer ones */
    int line = 1;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 190) return sb_error("%s: line %d is longer than 190 characters", path, line);
        if (!nl) break;
        p = nl + 1;
        line++;
    }
    entries es = {.path = path};
    int bad_line = ini_parse_string(text, on_entry, &es);
    int rc = SB_OK;
    if (es.failed) rc = SB_ERR;
    else if (bad_line > 0) rc = sb_error("%s: line %d: not INI syntax", path, bad_line);
    else if (bad_line < 0) rc = sb_error("%s: cannot parse", path);
    if (!rc) rc = check_entries(&es, path);
    if (!rc) rc = parse_experiment(c, &es);
    char names[SB_STUDY_MAX_ITEMS][SB_STUDY_NAME];
    int n;
    if (!rc && !(rc = section_names(&es, "run ", names, &n, path)))
        for (int i = 0; i < n && !rc; i++) rc = parse_run(c, &es, names[i], &c->runs[c->n_runs++]);
    if (!rc && !(rc = section_names(&es, "model ", names, &n, path)))
        for (int i = 0; i < n && !rc; i++) rc = parse_model(c, &es, names[i], &c->defs[c->n_defs++]);
    if (!rc && !(rc = section_names(&es, "paper ", names, &n, path)))
        for (int i = 0; i < n && !rc; i++) rc = parse_paper(c, &es, names[i], &c->paper[c->n_paper++]);
    if (!rc && (c->command == SB_STUDY_CMD_PPL || c->command == SB_STUDY_CMD_LATENCY) && c->n_runs == 0)
        rc = sb_error("%s: no [run NAME] section", path);
    if (!rc && c->speedup_num[0] && (!sb_study_find_run(c, c->speedup_num) || !sb_study_find_run(c, c->speedup_den)))
        rc = sb_error("%s: [experiment] speedup names a run that does not exist (%s / %s)", path, c->speedup_num,
                      c->speedup_den);
    for (int i = 0; i < c->n_runs && !rc; i++)
        for (int j = 0; j < c->runs[i].n_models && !rc; j++) {
            bool known = false;
            for (int k = 0; k < c->n_models; k++) known |= !strcmp(c->models[k], c->runs[i].models[j]);
            for (int k = 0; k < c->n_extra_models; k++) known |= !strcmp(c->extra_models[k], c->runs[i].models[j]);
            if (!known)
                rc = sb_error("%s: [run %s] models: '%s' is not in [experiment] models or extra_models", path,
                              c->runs[i].name, c->runs[i].models[j]);
        }
    for (int k = 0; k < c->n_extra_models && !rc; k++)
        if (!sb_study_find_model(c, c->extra_models[k]))
            rc = sb_error("%s: extra model '%s' has no [model %s] section", path, c->extra_models[k], c->extra_models[k]);
    free(es.e);
    if (!rc) {
        c->text = strdup(text);
        if (!c->text) rc = sb_error("%s: out of memory", path);
    }
    return rc;
}

int sb_study_config_load(sb_study_config *c, const char *path, sb_study_mode mode) {
    char *text;
    size_t n;
    int rc = sb_read_file(path, &text, &n);
    if (rc) {
        memset(c, 0, sizeof *c);
        return rc;
    }
    if (strlen(text) != n) {
        free(text);
        memset(c, 0, sizeof *c);
        return sb_error("%s: contains a NUL byte", path);
    }
    rc = sb_study_config_parse(c, text, path, mode);
    free(text);
    return rc;
}

void sb_study_config_free(sb_study_config *c) {
    free(c->text);
    c->text = NULL;
}

const sb_study_run *sb_study_find_run(const sb_study_config *c, const char *name) {
    for (int i = 0; i < c->n_runs; i++)
        if (!strcmp(c->runs[i].name, name)) return &c->runs[i];
    return NULL;
}

const sb_study_model_def *sb_study_find_model(const sb_study_config *c, const char *name) {
    for (int i = 0; i < c->n_defs; i++)
        if (!strcmp(c->defs[i].name, name)) return &c->defs[i];
    return NULL;
}

/* ------------------------------------------------------------------ expressions */

typedef struct {
    const char *s, *p;
    int64_t W, C;
    bool bad;
    const char *why;
} expr_ctx;

static void skip_ws(expr_ctx *e) {
    while (isspace((unsigned char)*e->p)) e->p++;
}

static int64_t fail(expr_ctx *e, const char *why) {
    if (!e->bad) e->why = why;
    e->bad = true;
    return 0;
}

static int64_t parse_sum(expr_ctx *e);

static int64_t parse_atom(expr_ctx *e) {
    skip_ws(e);
    if (*e->p == '(') {
        e->p++;
        int64_t v = parse_sum(e);
        skip_ws(e);
        if (*e->p != ')') return fail(e, "missing ')'");
        e->p++;
        return v;
    }
    if (*e->p == '-') {
        e->p++;
        int64_t v = parse_atom(e);
        return -v;
    }
    if (*e->p == 'W' || *e->p == 'C') {
        char c = *e->p++;
        return c == 'W' ? e->W : e->C;
    }
    if (isdigit((unsigned char)*e->p)) {
        int64_t v = 0;
        while (isdigit((unsigned char)*e->p)) {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *e->p - '0', &v)) return fail(e, "number too large");
            e->p++;
        }
        return v;
    }
    return fail(e, *e->p ? "unexpected character" : "unexpected end");
}

static int64_t parse_product(expr_ctx *e) {
    int64_t v = parse_atom(e);
    for (;;) {
        skip_ws(e);
        char op = *e->p;
        if (op != '*' && op != '/') return v;
        e->p++;
        int64_t r = parse_atom(e);
        if (e->bad) return 0;
        if (op == '*') {
            if (__builtin_mul_overflow(v, r, &v)) return fail(e, "overflow");
        } else {
            if (r == 0) return fail(e, "division by zero");
            v /= r;
        }
    }
}

static int64_t parse_sum(expr_ctx *e) {
    int64_t v = parse_product(e);
    for (;;) {
        skip_ws(e);
        char op = *e->p;
        if (op != '+' && op != '-') return v;
        e->p++;
        int64_t r = parse_product(e);
        if (e->bad) return 0;
        if (op == '+' ? __builtin_add_overflow(v, r, &v) : __builtin_sub_overflow(v, r, &v)) return fail(e, "overflow");
    }
}

int sb_study_eval_expr(const char *expr, int64_t W, int64_t C, int64_t *out) {
    expr_ctx e = {.s = expr, .p = expr, .W = W, .C = C};
    int64_t v = parse_sum(&e);
    skip_ws(&e);
    if (!e.bad && *e.p) fail(&e, "unexpected character");
    if (e.bad) return sb_usage_error("expression '%s': %s at offset %d", expr, e.why, (int)(e.p - e.s));
    *out = v;
    return SB_OK;
}

int sb_study_expand(const char *tmpl, int64_t W, int64_t C, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = tmpl; *p;) {
        if (*p == '}') return sb_usage_error("template '%s': '}' without '{'", tmpl);
        if (*p != '{') {
            if (o + 1 >= cap) return sb_usage_error("template '%s' expands to more than %zu characters", tmpl, cap - 1);
            out[o++] = *p++;
            continue;
        }
        const char *end = strchr(p, '}');
        if (!end) return sb_usage_error("template '%s': '{' without '}'", tmpl);
        char expr[SB_STUDY_NAME];
        if ((size_t)(end - p - 1) >= sizeof expr) return sb_usage_error("template '%s': expression too long", tmpl);
        snprintf(expr, sizeof expr, "%.*s", (int)(end - p - 1), p + 1);
        if (strchr(expr, '{')) return sb_usage_error("template '%s': nested '{'", tmpl);
        int64_t v;
        int rc = sb_study_eval_expr(expr, W, C, &v);
        if (rc) return rc;
        int n = snprintf(out + o, cap - o, "%lld", (long long)v);
        if (n < 0 || (size_t)n >= cap - o) return sb_usage_error("template '%s' expands to more than %zu characters", tmpl, cap - 1);
        o += (size_t)n;
        p = end + 1;
    }
    out[o] = '\0';
    return SB_OK;
}
