#include "engine/model.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/llama2c.h"
#include "engine/rng.h"
#include "engine/safetensors.h"

/* Dimensions above this are rejected: they keep every int product (heads * head_dim, T * C
 * offsets computed in size_t) far from overflow, and no real model comes close. */
#define SB_MAX_DIM (1 << 24)

void sb_model_config_default(sb_model_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "llama");
    c->vocab_size = 256;
    c->dim = 64;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = 4;
    c->head_dim = 16;
    c->ffn_dim = 192;
    c->max_ctx = 512;
    c->norm = SB_NORM_RMS;
    c->norm_eps = 1e-5f;
    c->pos = SB_POS_ROPE;
    c->rope_theta = 10000.0f;
    c->rotary_dim = 16;
    c->rope_style = SB_ROPE_HALF;
    c->alibi_bias_max = 8.0f;
    c->mlp = SB_MLP_SWIGLU;
    c->act = SB_ACT_SILU;
    c->softmax = SB_SOFTMAX_STANDARD;
    c->bos_id = c->eos_id = -1;
    c->sink_token_id = c->newline_token_id = -1;
    c->dtype = SB_DTYPE_F32;
}

static int check_range(const char *field, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) return sb_error("config: %s = %lld is out of range [%lld, %lld]", field, v, lo, hi);
    return SB_OK;
}

int sb_model_config_validate(const sb_model_config *c) {
    if (strcmp(c->arch, "llama") != 0 && strcmp(c->arch, "mistral") != 0)
        return sb_error("config: arch '%.31s' is not supported (llama, mistral)", c->arch);
#define RANGE(f, lo, hi) \
    if (check_range(#f, (long long)c->f, (lo), (hi))) return SB_ERR
    RANGE(vocab_size, 1, INT32_MAX);
    RANGE(dim, 1, SB_MAX_DIM);
    RANGE(n_layers, 1, 65536);
    RANGE(n_heads, 1, 65536);
    RANGE(n_kv_heads, 1, c->n_heads);
    RANGE(head_dim, 1, 65536);
    RANGE(ffn_dim, 1, SB_MAX_DIM);
    RANGE(max_ctx, 1, INT32_MAX);
    RANGE(bos_id, -1, c->vocab_size - 1);
    RANGE(eos_id, -1, c->vocab_size - 1);
    RANGE(sink_token_id, -1, c->vocab_size - 1);
    RANGE(newline_token_id, -1, c->vocab_size - 1);
    RANGE(norm, SB_NORM_RMS, SB_NORM_LAYER);
    RANGE(pos, SB_POS_ROPE, SB_POS_NONE);
    RANGE(rope_style, SB_ROPE_HALF, SB_ROPE_INTERLEAVED);
    RANGE(mlp, SB_MLP_SWIGLU, SB_MLP_GELU);
    RANGE(act, SB_ACT_SILU, SB_ACT_GELU_TANH);
    RANGE(softmax, SB_SOFTMAX_STANDARD, SB_SOFTMAX_SINK_LOGIT);
    RANGE(dtype, SB_DTYPE_F32, SB_DTYPE_BF16);
#undef RANGE
    if (c->n_heads % c->n_kv_heads != 0)
        return sb_error("config: n_heads %d is not a multiple of n_kv_heads %d", c->n_heads, c->n_kv_heads);
    if ((long long)c->n_heads * c->head_dim > SB_MAX_DIM)
        return sb_error("config: n_heads * head_dim = %lld is too large", (long long)c->n_heads * c->head_dim);
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps))
        return sb_error("config: norm_eps %g must be a positive number", (double)c->norm_eps);
    if (c->norm_bias && c->norm != SB_NORM_LAYER)
        return sb_error("config: norm_bias needs norm 'layer' (RMSNorm has no bias)");
    if (c->shared_norm && !c->parallel_residual)
        return sb_error("config: shared_norm needs parallel_residual");
    if (c->pos == SB_POS_ROPE) {
        if (!(c->rope_theta > 0.0f) || !isfinite(c->rope_theta))
            return sb_error("config: rope_theta %g must be a positive number", (double)c->rope_theta);
        if (c->rotary_dim < 2 || c->rotary_dim > c->head_dim || c->rotary_dim % 2 != 0 || c->rotary_dim > 2048)
            return sb_error("config: rotary_dim %d must be even and in [2, head_dim %d]", c->rotary_dim,
                            c->head_dim);
    }
    if (c->pos == SB_POS_ALIBI && (!(c->alibi_bias_max > 0.0f) || !isfinite(c->alibi_bias_max)))
        return sb_error("config: alibi_bias_max %g must be a positive number", (double)c->alibi_bias_max);
    if (c->sliding_window < 0) return sb_error("config: sliding_window %d must be >= 0", c->sliding_window);
    if (c->sliding_window > 0 && strcmp(c->arch, "mistral") != 0)
        return sb_error("config: sliding_window needs arch 'mistral' (LlamaForCausalLM would ignore it)");
    if (!(c->clip_qkv >= 0.0f) || !isfinite(c->clip_qkv))
        return sb_error("config: clip_qkv %g must be >= 0", (double)c->clip_qkv);
    size_t n;
    if (!sb_model_param_count_checked(c, &n)) return sb_error("config: parameter count overflows");
    return SB_OK;
}

/* ---------------------------------------------------------------- tensor layout
 * Tensor names per family; "%d" is the layer. Families with other names (gpt_neox, falcon,
 * mpt) add a row. Weights get ".weight"/".bias" appended; `sinks` is a full name. */
typedef struct {
    const char *arch;
    const char *embed, *attn_norm, *q, *k, *v, *o, *sinks, *mlp_norm, *gate, *up, *down, *final_norm, *lm_head;
} tensor_naming;

static const tensor_naming namings[] = {
    {"llama", "model.embed_tokens", "model.layers.%d.input_layernorm", "model.layers.%d.self_attn.q_proj",
     "model.layers.%d.self_attn.k_proj", "model.layers.%d.self_attn.v_proj", "model.layers.%d.self_attn.o_proj",
     "model.layers.%d.self_attn.sinks", "model.layers.%d.post_attention_layernorm", "model.layers.%d.mlp.gate_proj",
     "model.layers.%d.mlp.up_proj", "model.layers.%d.mlp.down_proj", "model.norm", "lm_head"},
};

static const tensor_naming *naming_for(const char *arch) {
    if (!strcmp(arch, "mistral")) arch = "llama"; /* same tensor names */
    for (size_t i = 0; i < sizeof namings / sizeof namings[0]; i++)
        if (!strcmp(namings[i].arch, arch)) return &namings[i];
    return &namings[0];
}

typedef struct {
    sb_tensor_ref *out;     /* NULL: only count */
    sb_model_weights *w;    /* non-NULL: wire the pointers too */
    int n;
    size_t offset;
    bool overflow;
    float *params;
} layout_ctx;

static void add_tensor(layout_ctx *L, float **slot, const char *fmt, int layer, const char *suffix, int64_t d0,
                       int64_t d1) {
    size_t numel;
    int ndim = d1 > 0 ? 2 : 1;
    if (!sb_mul_size((size_t)d0, (size_t)(d1 > 0 ? d1 : 1), &numel)) L->overflow = true;
    float *data = L->params ? L->params + L->offset : NULL;
    if (L->out) {
        sb_tensor_ref *t = &L->out[L->n];
        char base[80];
        snprintf(base, sizeof base, fmt, layer);
        snprintf(t->name, sizeof t->name, "%s%s", base, suffix);
        t->ndim = ndim;
        t->shape[0] = d0;
        t->shape[1] = ndim == 2 ? d1 : 0;
        t->numel = numel;
        t->offset = L->offset;
        t->data = data;
    }
    if (L->w) *slot = data;
    if (!sb_add_size(L->offset, numel, &L->offset)) L->overflow = true;
    L->n++;
}

/* The single source of the checkpoint layout: names, shapes, order, and weight slots. */
static void layout(const sb_model_config *c, layout_ctx *L) {
    const tensor_naming *nm = naming_for(c->arch);
    int64_t C = c->dim, V = c->vocab_size, F = c->ffn_dim;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    sb_model_weights dummy_w;
    sb_layer_weights dummy_l;
    sb_model_weights *w = L->w ? L->w : &dummy_w;
    add_tensor(L, &w->tok_embed, nm->embed, 0, ".weight", V, C);
    for (int l = 0; l < c->n_layers; l++) {
        sb_layer_weights *y = L->w ? &L->w->layers[l] : &dummy_l;
        add_tensor(L, &y->attn_norm_w, nm->attn_norm, l, ".weight", C, 0);
        if (c->norm_bias) add_tensor(L, &y->attn_norm_b, nm->attn_norm, l, ".bias", C, 0);
        add_tensor(L, &y->wq, nm->q, l, ".weight", QD, C);
        if (c->qkv_bias) add_tensor(L, &y->bq, nm->q, l, ".bias", QD, 0);
        add_tensor(L, &y->wk, nm->k, l, ".weight", KD, C);
        if (c->qkv_bias) add_tensor(L, &y->bk, nm->k, l, ".bias", KD, 0);
        add_tensor(L, &y->wv, nm->v, l, ".weight", KD, C);
        if (c->qkv_bias) add_tensor(L, &y->bv, nm->v, l, ".bias", KD, 0);
        add_tensor(L, &y->wo, nm->o, l, ".weight", C, QD);
        if (c->out_bias) add_tensor(L, &y->bo, nm->o, l, ".bias", C, 0);
        if (c->softmax == SB_SOFTMAX_SINK_LOGIT) add_tensor(L, &y->sink_logit, nm->sinks, l, "", c->n_heads, 0);
        if (!c->shared_norm) {
            add_tensor(L, &y->mlp_norm_w, nm->mlp_norm, l, ".weight", C, 0);
            if (c->norm_bias) add_tensor(L, &y->mlp_norm_b, nm->mlp_norm, l, ".bias", C, 0);
        }
        if (c->mlp == SB_MLP_SWIGLU) {
            add_tensor(L, &y->w_gate, nm->gate, l, ".weight", F, C);
            if (c->mlp_bias) add_tensor(L, &y->b_gate, nm->gate, l, ".bias", F, 0);
        }
        add_tensor(L, &y->w_up, nm->up, l, ".weight", F, C);
        if (c->mlp_bias) add_tensor(L, &y->b_up, nm->up, l, ".bias", F, 0);
        add_tensor(L, &y->w_down, nm->down, l, ".weight", C, F);
        if (c->mlp_bias) add_tensor(L, &y->b_down, nm->down, l, ".bias", C, 0);
    }
    add_tensor(L, &w->final_norm_w, nm->final_norm, 0, ".weight", C, 0);
    if (c->norm_bias) add_tensor(L, &w->final_norm_b, nm->final_norm, 0, ".bias", C, 0);
    if (!c->tie_embeddings) add_tensor(L, &w->lm_head, nm->lm_head, 0, ".weight", V, C);
    else if (L->w) L->w->lm_head = L->w->tok_embed;
}

int sb_model_tensor_count(const sb_model_config *c) {
    layout_ctx L = {0};
    layout(c, &L);
    return L.n;
}

int sb_model_tensor_list(const sb_model_config *c, const sb_model *m, sb_tensor_ref *out) {
    layout_ctx L = {.out = out, .params = m ? m->params : NULL};
    layout(c, &L);
    return L.n;
}

bool sb_model_param_count_checked(const sb_model_config *c, size_t *out) {
    if (c->dim < 0 || c->vocab_size < 0 || c->ffn_dim < 0 || c->n_heads < 0 || c->n_kv_heads < 0 ||
        c->head_dim < 0 || c->n_layers < 0)
        return false;
    layout_ctx L = {0};
    layout(c, &L);
    *out = L.offset;
    return !L.overflow;
}

size_t sb_model_param_count(const sb_model_config *c) {
    size_t n;
    return sb_model_param_count_checked(c, &n) ? n : 0;
}

/* ---------------------------------------------------------------- alloc / free */

int sb_model_alloc(sb_model *m, const sb_model_config *cfg) {
    memset(m, 0, sizeof *m);
    if (sb_model_config_validate(cfg)) return SB_ERR;
    m->cfg = *cfg;
    size_t n = sb_model_param_count(cfg);
    size_t bytes;
    if (!sb_mul_size(n, sizeof(float), &bytes)) return sb_error("config: parameter count %zu overflows", n);
    m->params = calloc(n ? n : 1, sizeof(float));
    if (!m->params) return sb_error("cannot allocate %zu bytes of weights", bytes);
    m->n_params = n;
    m->w.layers = calloc((size_t)cfg->n_layers, sizeof(sb_layer_weights));
    if (!m->w.layers) {
        sb_model_free(m);
        return sb_error("cannot allocate the model's layer table");
    }
    layout_ctx L = {.w = &m->w, .params = m->params};
    layout(cfg, &L);
    return SB_OK;
}

void sb_model_free(sb_model *m) {
    if (!m) return;
    free(m->params);
    free(m->w.layers);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- random init */

static bool name_has(const char *name, const char *part) { return strstr(name, part) != NULL; }

void sb_model_init_random(sb_model *m, uint64_t seed, float scale) {
    const sb_model_config *c = &m->cfg;
    int nt = sb_model_tensor_count(c);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(c, m, t);
    const tensor_naming *nm = naming_for(c->arch);
    char qn[64], kn[64];
    snprintf(qn, sizeof qn, "%s", strrchr(nm->q, '.') + 1); /* "q_proj" */
    snprintf(kn, sizeof kn, "%s", strrchr(nm->k, '.') + 1);
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < nt; i++) {
        /* one stream per tensor: the values do not depend on the thread schedule */
        sb_rng r;
        sb_rng_seed_stream(&r, seed, (uint64_t)i);
        const char *name = t[i].name;
        bool is_bias = name_has(name, ".bias");
        float *p = t[i].data;
        size_t n = t[i].numel;
        if (t[i].ndim == 2) {
            /* q and k set the attention's sharpness: scale > 1 makes it far from uniform */
            float std = 0.02f;
            if (name_has(name, qn) || name_has(name, kn)) std *= scale;
            sb_rng_fill_normal(&r, p, n, 0.0f, std);
        } else if (name_has(name, "sinks")) {
            sb_rng_fill_normal(&r, p, n, 0.0f, 1.0f);
        } else if (is_bias) {
            sb_rng_fill_normal(&r, p, n, 0.0f, 0.02f);
        } else {
            /* norm weights: 1 plus a little noise so a test can tell swapped tensors apart */
            sb_rng_fill_normal(&r, p, n, 1.0f, 0.02f);
        }
    }
    free(t);
}

/* ---------------------------------------------------------------- load / save */

static int join_path(char *out, size_t cap, const char *dir, const char *file) {
    if (snprintf(out, cap, "%s/%s", dir, file) >= (int)cap) return sb_error("%s: path too long", dir);
    return SB_OK;
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static sb_dtype st_to_model_dtype(sb_st_dtype d) {
    return d == SB_ST_F16 ? SB_DTYPE_F16 : d == SB_ST_BF16 ? SB_DTYPE_BF16 : SB_DTYPE_F32;
}

/* Read config.json, open the weights and check every tensor's presence, shape and dtype,
 * before anything is allocated from the config's sizes: once this passes, the config's sizes
 * are backed by real bytes in the files. On success *t holds the tensor list. */
static int open_checked(const char *dir, sb_model_config *cfg, sb_st_set *set, sb_tensor_ref **t_out, int *nt_out) {
    char path[4096];
    struct stat st;
    if (stat(dir, &st) != 0) return sb_error("%s: cannot open model directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return sb_error("%s: not a directory", dir);
    if (join_path(path, sizeof path, dir, "config.json") || sb_hfconfig_load(cfg, path)) return SB_ERR;
    if (sb_st_set_open(set, dir)) return SB_ERR;
    int nt = sb_model_tensor_count(cfg);
    sb_tensor_ref *t = calloc((size_t)nt, sizeof *t);
    if (!t) {
        sb_st_set_close(set);
        return sb_error("%s: out of memory", dir);
    }
    sb_model_tensor_list(cfg, NULL, t);
    for (int i = 0; i < nt; i++) {
        const sb_st_file *f;
        const sb_st_tensor *s = sb_st_set_find(set, t[i].name, &f);
        if (!s) {
            sb_error("%s/%s: tensor '%s' is missing", dir, set->n_files > 1 ? "model.safetensors.index.json" : "model.safetensors",
                     t[i].name);
            goto fail;
        }
        bool same = s->ndim == t[i].ndim;
        for (int d = 0; same && d < s->ndim; d++) same = s->shape[d] == t[i].shape[d];
        if (!same) {
            char want[64], got[160];
            shape_str(want, sizeof want, t[i].shape, t[i].ndim);
            shape_str(got, sizeof got, s->shape, s->ndim);
            sb_error("%s: tensor '%s' has shape %s, config.json expects %s", f->path, t[i].name, got, want);
            goto fail;
        }
        if (s->dtype != SB_ST_F32 && s->dtype != SB_ST_F16 && s->dtype != SB_ST_BF16) {
            sb_error("%s: tensor '%s' has dtype %s (supported: F32, F16, BF16)", f->path, t[i].name,
                     sb_st_dtype_name(s->dtype));
            goto fail;
        }
        if (i == 0) cfg->dtype = st_to_model_dtype(s->dtype);
    }
    *t_out = t;
    *nt_out = nt;
    return SB_OK;
fail:
    free(t);
    sb_st_set_close(set);
    return SB_ERR;
}

int sb_model_inspect(const char *dir, sb_model_config *cfg, uint64_t *file_bytes) {
    sb_st_set set;
    sb_tensor_ref *t;
    int nt;
    if (open_checked(dir, cfg, &set, &t, &nt)) return SB_ERR;
    uint64_t total = 0;
    for (int i = 0; i < set.n_files; i++) total += set.files[i].map_size;
    if (file_bytes) *file_bytes = total;
    free(t);
    sb_st_set_close(&set);
    return SB_OK;
}

int sb_model_load(sb_model *m, const char *dir) {
    memset(m, 0, sizeof *m);
    if (sb_llama2c_is_checkpoint(dir)) return sb_model_load_llama2c(m, dir);
    sb_model_config cfg;
    sb_st_set set;
    sb_tensor_ref *t;
    int nt;
    if (open_checked(dir, &cfg, &set, &t, &nt)) return SB_ERR;
    int rc = sb_model_alloc(m, &cfg);
    if (!rc) {
        sb_model_tensor_list(&cfg, m, t);
        for (int i = 0; i < nt && !rc; i++) {
            const sb_st_file *f;
            const sb_st_tensor *s = sb_st_set_find(&set, t[i].name, &f);
            rc = sb_st_read_f32(f, s, t[i].data);
            sb_st_release(f, s);
        }
        if (rc) sb_model_free(m);
    }
    free(t);
    sb_st_set_close(&set);
    return rc;
}

int sb_model_save(const sb_model *m, const char *dir) {
    const sb_model_config *c = &m->cfg;
    if (sb_model_config_validate(c)) return SB_ERR;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return sb_error("%s: cannot create directory: %s", dir, strerror(errno));
    int nt = sb_model_tensor_count(c);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_st_write_tensor *wt = malloc_check((size_t)nt * sizeof *wt);
    sb_model_tensor_list(c, m, t);
    for (int i = 0; i < nt; i++) {
        memset(&wt[i], 0, sizeof wt[i]);
        wt[i].name = t[i].name;
        wt[i].data = t[i].data;
        wt[i].ndim = t[i].ndim;
        wt[i].shape[0] = t[i].shape[0];
        wt[i].shape[1] = t[i].shape[1];
    }
    char path[4096];
    const char *mk[] = {"format"}, *mv[] = {"pt"}; /* transformers insists on format=pt */
    int rc = join_path(path, sizeof path, dir, "model.safetensors");
    if (!rc) rc = sb_st_write(path, wt, nt, c->dtype, mk, mv, 1);
    /* config last: a directory with a config.json always has its weights */
    if (!rc) rc = join_path(path, sizeof path, dir, "config.json");
    if (!rc) rc = sb_hfconfig_save(c, path);
    free(t);
    free(wt);
    return rc;
}
