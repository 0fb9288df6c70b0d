/* The trainer's INI config (inih): defaults, parsing with strict keys, validation, echo. */
#include "train/train.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/common.h"
#include "tokenizer/tokenizer.h"

static const char *const variant_names[] = {"vanilla", "sink_token", "zero_sink", "sink_logit"};

const char *sb_train_variant_name(sb_train_variant v) {
    return (unsigned)v < sizeof variant_names / sizeof variant_names[0] ? variant_names[v] : "?";
}

int sb_train_variant_parse(const char *s, sb_train_variant *out) {
    for (size_t i = 0; i < sizeof variant_names / sizeof variant_names[0]; i++)
        if (!strcmp(s, variant_names[i])) {
            *out = (sb_train_variant)i;
            return 0;
        }
    return -1;
}

void sb_train_config_default(sb_train_config *c) {
    memset(c, 0, sizeof *c);
    sb_model_config_default(&c->model);
    sb_model_config *m = &c->model;
    m->vocab_size = 4096;
    m->dim = 384;
    m->n_layers = 6;
    m->n_heads = 6;
    m->n_kv_heads = 6;
    m->head_dim = 64;
    m->rotary_dim = 64;
    m->ffn_dim = 1024;
    m->max_ctx = 512;
    m->rope_theta = 10000.0f;
    m->norm_eps = 1e-5f;
    c->init_std = 0.02f;
    c->seq_len = 512;
    c->lr = 1e-3;
    c->min_lr = 1e-4;
    c->warmup = 100;
    c->steps = 1000;
    c->batch = 8;
    c->grad_accum = 1;
    c->weight_decay = 0.1;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->eps = 1e-8;
    c->clip = 1.0;
    c->seed = 1;
    c->threads = 0;
    c->eval_interval = 100;
    c->eval_tokens = 65536;
    c->checkpoint_interval = 500;
    snprintf(c->log_name, sizeof c->log_name, "train_log.h5");
    c->variant = SB_VARIANT_VANILLA;
}

/* ------------------------------------------------------------------ parsing */

typedef struct {
    sb_train_config *c;
    const char *name;
    int head_dim_set;            /* head_dim given explicitly */
    int kv_heads_set;            /* else kv_heads = heads (multi-head attention) */
    int failed;                  /* first error already recorded */
} parse_ctx;

static int bad(parse_ctx *p, const char *sec, const char *key, const char *val, const char *why) {
    if (!p->failed) sb_error("%s: %s.%s = '%s': %s", p->name, sec, key, val, why);
    p->failed = 1;
    return 1; /* keep inih going; only the first error is reported */
}

static int get_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int get_f64(const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int get_bool(const char *s, bool *out) {
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) *out = true;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) *out = false;
    else return -1;
    return 0;
}

#define INT_KEY(k, field, lo, hi)                                                                        \
    if (!strcmp(key, k)) {                                                                               \
        int64_t v_;                                                                                      \
        if (get_i64(val, (lo), (hi), &v_)) {                                                             \
            char why_[96];                                                                               \
            snprintf(why_, sizeof why_, "expected an integer in [%lld, %lld]", (long long)(lo), (long long)(hi)); \
            return bad(p, sec, key, val, why_);                                                          \
        }                                                                                                \
        field = v_;                                                                                      \
        return 1;                                                                                        \
    }
#define F64_KEY(k, field, lo, hi)                                                                        \
    if (!strcmp(key, k)) {                                                                               \
        double v_;                                                                                       \
        if (get_f64(val, (lo), (hi), &v_)) {                                                             \
            char why_[96];                                                                               \
            snprintf(why_, sizeof why_, "expected a number in [%g, %g]", (double)(lo), (double)(hi));  \
            return bad(p, sec, key, val, why_);                                                          \
        }                                                                                                \
        field = v_;                                                                                      \
        return 1;                                                                                        \
    }
/* libinih reads lines of at most 200 bytes (its INI_MAX_LINE) and splits longer ones, so the
 * resolved train.ini line "tokenizer = <path>" must stay below that to read back */
#define INI_PATH_MAX 180

#define STR_KEY(k, buf)                                                                                  \
    if (!strcmp(key, k)) {                                                                               \
        if (strlen(val) >= sizeof(buf) || strlen(val) > INI_PATH_MAX)                                    \
            return bad(p, sec, key, val, "longer than 180 bytes (INI lines are at most 200)");           \
        /* train.ini must read back the same: INI takes " ;" or " #" for a comment */                     \
        if (strpbrk(val, ";#")) return bad(p, sec, key, val, "a path with ';' or '#' is not supported");  \
        snprintf(buf, sizeof(buf), "%s", val);                                                           \
        return 1;                                                                                        \
    }

#define MAX_DIM (1 << 20)

static int on_key(void *user, const char *sec, const char *key, const char *val) {
    parse_ctx *p = user;
    sb_train_config *c = p->c;
    sb_model_config *m = &c->model;
    if (!strcmp(sec, "model")) {
        INT_KEY("vocab", m->vocab_size, 2, INT32_MAX / 2)
        INT_KEY("dim", m->dim, 1, MAX_DIM)
        INT_KEY("layers", m->n_layers, 1, 1024)
        INT_KEY("heads", m->n_heads, 1, 4096)
        if (!strcmp(key, "kv_heads")) p->kv_heads_set = 1;
        INT_KEY("kv_heads", m->n_kv_heads, 1, 4096)
        INT_KEY("ffn", m->ffn_dim, 1, MAX_DIM)
        INT_KEY("ctx", m->max_ctx, 2, 1 << 20)
        F64_KEY("rope_theta", m->rope_theta, 1.0, 1e9)
        F64_KEY("norm_eps", m->norm_eps, 1e-12, 1.0)
        F64_KEY("init_std", c->init_std, 1e-6, 10.0)
        if (!strcmp(key, "head_dim")) {
            int64_t v;
            if (get_i64(val, 2, 4096, &v) || v % 2) return bad(p, sec, key, val, "expected an even integer in [2, 4096]");
            m->head_dim = (int)v;
            p->head_dim_set = 1;
            return 1;
        }
        if (!strcmp(key, "init")) {
            if (!strcmp(val, "gpt2")) c->init = SB_INIT_GPT2;
            else if (!strcmp(val, "pytorch")) c->init = SB_INIT_PYTORCH;
            else return bad(p, sec, key, val, "expected gpt2 or pytorch");
            return 1;
        }
        if (!strcmp(key, "tie_embeddings")) {
            if (get_bool(val, &m->tie_embeddings)) return bad(p, sec, key, val, "expected true or false");
            return 1;
        }
    } else if (!strcmp(sec, "data")) {
        STR_KEY("train", c->train_path)
        STR_KEY("heldout", c->heldout_path)
        STR_KEY("tokenizer", c->tokenizer_path)
        INT_KEY("seq_len", c->seq_len, 2, 1 << 20)
    } else if (!strcmp(sec, "optim")) {
        F64_KEY("lr", c->lr, 0.0, 10.0)
        F64_KEY("min_lr", c->min_lr, 0.0, 10.0)
        INT_KEY("warmup", c->warmup, 0, INT32_MAX)
        INT_KEY("steps", c->steps, 1, INT32_MAX)
        INT_KEY("batch", c->batch, 1, 1 << 16)
        INT_KEY("grad_accum", c->grad_accum, 1, 1 << 16)
        F64_KEY("weight_decay", c->weight_decay, 0.0, 100.0)
        F64_KEY("beta1", c->beta1, 0.0, 0.999999)
        F64_KEY("beta2", c->beta2, 0.0, 0.999999999)
        F64_KEY("eps", c->eps, 1e-30, 1.0)
        F64_KEY("clip", c->clip, 0.0, 1e9)
    } else if (!strcmp(sec, "run")) {
        if (!strcmp(key, "seed")) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(val, &end, 10);
            if (errno || end == val || *end != '\0' || val[0] == '-')
                return bad(p, sec, key, val, "expected a non-negative integer");
            c->seed = v;
            return 1;
        }
        INT_KEY("threads", c->threads, 0, 1024)
        INT_KEY("eval_interval", c->eval_interval, 0, INT32_MAX)
        INT_KEY("eval_tokens", c->eval_tokens, 0, INT64_C(1) << 40)
        INT_KEY("checkpoint_interval", c->checkpoint_interval, 0, INT32_MAX)
        if (!strcmp(key, "log")) {
            if (!val[0] || strpbrk(val, "/;#") || strlen(val) >= sizeof c->log_name || strlen(val) > INI_PATH_MAX)
                return bad(p, sec, key, val, "expected a file name (no '/', at most 180 bytes) for the HDF5 log");
            snprintf(c->log_name, sizeof c->log_name, "%s", val);
            return 1;
        }
    } else if (!strcmp(sec, "variant")) {
        if (!strcmp(key, "type")) {
            if (sb_train_variant_parse(val, &c->variant))
                return bad(p, sec, key, val, "expected vanilla, sink_token, zero_sink or sink_logit");
            return 1;
        }
        INT_KEY("sink_token_id", m->sink_token_id, -1, INT32_MAX)
        if (!strcmp(key, "sink_target")) {
            if (strcmp(val, "none") && strcmp(val, "first")) return bad(p, sec, key, val, "expected none or first");
            c->sink_target_first = !strcmp(val, "first");
            return 1;
        }
    } else {
        if (!p->failed) sb_error("%s: unknown section [%s] (key %s)", p->name, sec, key);
        p->failed = 1;
        return 1;
    }
    if (!p->failed) sb_error("%s: unknown key %s.%s", p->name, sec, key);
    p->failed = 1;
    return 1;
}

/* Special ids from the tokenizer: <sink> (unless variant.sink_token_id is set), end of
 * text, newline (for the newline-sink policy). */
static int apply_tokenizer(sb_train_config *c, const char *name) {
    sb_tokenizer *tok;
    if (sb_tokenizer_load(&tok, c->tokenizer_path)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_error("%s: data.tokenizer: %s", name, msg);
    }
    int rc = SB_OK;
    int32_t v = sb_tokenizer_vocab_size(tok);
    if (v != c->model.vocab_size) {
        rc = sb_error("%s: data.tokenizer '%s' has %d tokens, model.vocab is %d", name, c->tokenizer_path, v,
                      c->model.vocab_size);
    } else {
        if (c->variant == SB_VARIANT_SINK_TOKEN && c->model.sink_token_id < 0) {
            c->model.sink_token_id = sb_tokenizer_token_id(tok, SB_TOKEN_SINK);
            if (c->model.sink_token_id < 0)
                rc = sb_error("%s: data.tokenizer '%s' has no %s token (needed by variant sink_token)", name,
                              c->tokenizer_path, SB_TOKEN_SINK);
        }
        c->model.eos_id = sb_tokenizer_token_id(tok, SB_TOKEN_ENDOFTEXT);
        c->model.newline_token_id = sb_tokenizer_token_id(tok, "\n");
    }
    sb_tokenizer_free(tok);
    return rc;
}

int sb_train_config_parse(sb_train_config *c, const char *text, const char *name) {
    parse_ctx p = {.c = c, .name = name};
    int rc = ini_parse_string(text, on_key, &p);
    if (p.failed) return SB_ERR;
    if (rc > 0) return sb_error("%s: line %d: not a valid INI line", name, rc);
    if (rc < 0) return sb_error("%s: cannot parse", name);
    if (!p.kv_heads_set) c->model.n_kv_heads = c->model.n_heads;
    /* head_dim follows dim / heads unless given */
    if (!p.head_dim_set) {
        if (c->model.n_heads <= 0 || c->model.dim % c->model.n_heads != 0)
            return sb_error("%s: model.dim %d is not a multiple of model.heads %d", name, c->model.dim,
                            c->model.n_heads);
        c->model.head_dim = c->model.dim / c->model.n_heads;
    }
    c->model.rotary_dim = c->model.head_dim;
    c->model.softmax = c->variant == SB_VARIANT_ZERO_SINK    ? SB_SOFTMAX_OFF_BY_ONE
                       : c->variant == SB_VARIANT_SINK_LOGIT ? SB_SOFTMAX_SINK_LOGIT
                                                             : SB_SOFTMAX_STANDARD;
    if (c->tokenizer_path[0] && apply_tokenizer(c, name)) return SB_ERR;
    if (c->variant != SB_VARIANT_SINK_TOKEN) c->model.sink_token_id = -1;
    if (sb_train_config_validate(c)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_error("%s: %s", name, msg);
    }
    return SB_OK;
}

int sb_train_config_load(sb_train_config *c, const char *path) {
    char *text;
    size_t n;
    if (sb_read_file(path, &text, &n)) return SB_ERR;
    if (strlen(text) != n) {
        free(text);
        return sb_error("%s: contains a NUL byte (not an INI file)", path);
    }
    int rc = sb_train_config_parse(c, text, path);
    free(text);
    return rc;
}

int sb_train_config_validate(const sb_train_config *c) {
    const sb_model_config *m = &c->model;
    if (m->head_dim % 2 != 0) return sb_error("model.head_dim %d must be even (RoPE pairs)", m->head_dim);
    if (m->n_kv_heads > m->n_heads || m->n_heads % m->n_kv_heads != 0)
        return sb_error("model.heads %d is not a multiple of model.kv_heads %d", m->n_heads, m->n_kv_heads);
    if (c->variant == SB_VARIANT_SINK_TOKEN) {
        if (m->sink_token_id < 0 || m->sink_token_id >= m->vocab_size)
            return sb_error("variant.sink_token_id %d must be a token id in [0, %d) for sink_token",
                            m->sink_token_id, m->vocab_size);
        if (c->seq_len < 3) return sb_error("data.seq_len %d must be >= 3 with a sink token", c->seq_len);
    }
    if (c->seq_len > m->max_ctx)
        return sb_error("data.seq_len %d exceeds model.ctx %d", c->seq_len, m->max_ctx);
    /* the engine's checks come last: their messages use config.json names */
    if (sb_train_model_check_config(m)) return SB_ERR;
    if (!c->train_path[0]) return sb_error("data.train is missing");
    if (!(c->lr > 0.0)) return sb_error("optim.lr %g must be > 0", c->lr);
    if (c->min_lr > c->lr) return sb_error("optim.min_lr %g exceeds optim.lr %g", c->min_lr, c->lr);
    if (c->warmup >= c->steps && c->warmup > 0)
        return sb_error("optim.warmup %d must be below optim.steps %d", c->warmup, c->steps);
    if (c->heldout_path[0] && c->eval_tokens < c->seq_len)
        return sb_error("run.eval_tokens %lld must be >= data.seq_len %d", (long long)c->eval_tokens, c->seq_len);
    int64_t rows = (int64_t)c->batch * c->seq_len;
    if (rows > INT32_MAX / 4) return sb_error("optim.batch x data.seq_len = %lld is too large", (long long)rows);
    return SB_OK;
}

/* ------------------------------------------------------------------ echo */

char *sb_train_config_to_ini(const sb_train_config *c) {
    const sb_model_config *m = &c->model;
    size_t cap = 4096 + 3 * SB_TRAIN_PATH_MAX;
    char *s = malloc_check(cap);
    int n = snprintf(s, cap,
                     "; written by sinkbench train: the resolved configuration of this run\n"
                     "[model]\nvocab = %d\ndim = %d\nlayers = %d\nheads = %d\nkv_heads = %d\nhead_dim = %d\n"
                     "ffn = %d\nctx = %d\nrope_theta = %.9g\nnorm_eps = %.9g\ntie_embeddings = %s\n"
                     "init_std = %.9g\ninit = %s\n\n"
                     "[data]\ntrain = %s\nheldout = %s\ntokenizer = %s\nseq_len = %d\n\n"
                     "[optim]\nlr = %.17g\nmin_lr = %.17g\nwarmup = %d\nsteps = %d\nbatch = %d\n"
                     "grad_accum = %d\nweight_decay = %.17g\nbeta1 = %.17g\nbeta2 = %.17g\neps = %.17g\n"
                     "clip = %.17g\n\n"
                     "[run]\nseed = %llu\nthreads = %d\neval_interval = %d\neval_tokens = %lld\n"
                     "checkpoint_interval = %d\nlog = %s\n\n"
                     "[variant]\ntype = %s\nsink_token_id = %d\nsink_target = %s\n",
                     m->vocab_size, m->dim, m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, m->ffn_dim,
                     m->max_ctx, (double)m->rope_theta, (double)m->norm_eps, m->tie_embeddings ? "true" : "false",
                     (double)c->init_std, sb_train_init_name(c->init), c->train_path, c->heldout_path, c->tokenizer_path, c->seq_len, c->lr, c->min_lr, c->warmup,
                     c->steps, c->batch, c->grad_accum, c->weight_decay, c->beta1, c->beta2, c->eps, c->clip,
                     (unsigned long long)c->seed, c->threads, c->eval_interval, (long long)c->eval_tokens,
                     c->checkpoint_interval, c->log_name, sb_train_variant_name(c->variant), m->sink_token_id,
                     c->sink_target_first ? "first" : "none");
    if (n < 0 || (size_t)n >= cap) {
        free(s);
        sb_error("config too long to write");
        return NULL;
    }
    return s;
}
