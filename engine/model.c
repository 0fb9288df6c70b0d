#include "engine/model.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "engine/half.h"
#include "engine/hf_tensors.h"
#include "engine/hfconfig.h"
#include "engine/llama2c.h"
#include "engine/rng.h"
#include "engine/safetensors.h"

/* What a loaded model owns besides its config: the mapped files, the copies made at load
 * (converted vectors, gathered fused rows, the fp32 block) and what each tensor points at. */
struct sb_model_store {
    sb_st_set set;
    void **owned;
    int n_owned;
    sb_weight *tensors;               /* [n_tensors] in storage order */
    int n_tensors;
    bool own_params;                  /* m->params was allocated here */
};

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
    static const char *const archs[] = {"llama", "mistral", "gpt_neox", "falcon", "mpt"};
    bool known = false;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) known = known || !strcmp(c->arch, archs[i]);
    if (!known) return sb_error("config: arch '%.31s' is not supported (llama, mistral, gpt_neox, falcon, mpt)", c->arch);
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
    RANGE(rope_scaling, SB_ROPE_SCALING_NONE, SB_ROPE_SCALING_LLAMA3);
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
    if (c->pos == SB_POS_ROPE && c->rope_scaling != SB_ROPE_SCALING_NONE) {
        if (!(c->rope_factor >= 1.0f) || !isfinite(c->rope_factor))
            return sb_error("config: rope_scaling factor %g must be >= 1", (double)c->rope_factor);
        if (c->rope_scaling != SB_ROPE_SCALING_LINEAR && c->rope_orig_ctx < 1)
            return sb_error("config: rope_scaling original_max_position_embeddings %d must be >= 1", c->rope_orig_ctx);
        if (c->rope_scaling == SB_ROPE_SCALING_LLAMA3 &&
            !(c->rope_low_freq_factor > 0.0f && c->rope_high_freq_factor > c->rope_low_freq_factor &&
              isfinite(c->rope_high_freq_factor)))
            return sb_error("config: rope_scaling low_freq_factor %g and high_freq_factor %g need 0 < low < high",
                            (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor);
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
    float *params;          /* fp32 block in storage order (allocated models) */
    const sb_weight *src;   /* or: what each tensor points at (loaded models) */
} layout_ctx;

static void add_tensor(layout_ctx *L, sb_tensor_role role, float **slot, sb_weight *mat, const char *fmt, int layer,
                       const char *suffix, int64_t d0, int64_t d1) {
    size_t numel;
    int ndim = d1 > 0 ? 2 : 1;
    if (!sb_mul_size((size_t)d0, (size_t)(d1 > 0 ? d1 : 1), &numel)) L->overflow = true;
    sb_weight st = {SB_DTYPE_F32, L->params ? L->params + L->offset : NULL};
    if (L->src) st = L->src[L->n];
    float *data = st.dtype == SB_DTYPE_F32 ? (float *)(uintptr_t)st.data : NULL;
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
        t->role = role;
        t->layer = layer;
        t->stored = st;
    }
    if (L->w) {
        *slot = data;
        if (mat) *mat = st;
    }
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
    add_tensor(L, SB_T_EMBED, &w->tok_embed, &w->embed, nm->embed, -1, ".weight", V, C);
    for (int l = 0; l < c->n_layers; l++) {
        sb_layer_weights *y = L->w ? &L->w->layers[l] : &dummy_l;
        add_tensor(L, SB_T_ATTN_NORM_W, &y->attn_norm_w, NULL, nm->attn_norm, l, ".weight", C, 0);
        if (c->norm_bias) add_tensor(L, SB_T_ATTN_NORM_B, &y->attn_norm_b, NULL, nm->attn_norm, l, ".bias", C, 0);
        add_tensor(L, SB_T_Q_W, &y->wq, &y->mat.q, nm->q, l, ".weight", QD, C);
        if (c->qkv_bias) add_tensor(L, SB_T_Q_B, &y->bq, NULL, nm->q, l, ".bias", QD, 0);
        add_tensor(L, SB_T_K_W, &y->wk, &y->mat.k, nm->k, l, ".weight", KD, C);
        if (c->qkv_bias) add_tensor(L, SB_T_K_B, &y->bk, NULL, nm->k, l, ".bias", KD, 0);
        add_tensor(L, SB_T_V_W, &y->wv, &y->mat.v, nm->v, l, ".weight", KD, C);
        if (c->qkv_bias) add_tensor(L, SB_T_V_B, &y->bv, NULL, nm->v, l, ".bias", KD, 0);
        add_tensor(L, SB_T_O_W, &y->wo, &y->mat.o, nm->o, l, ".weight", C, QD);
        if (c->out_bias) add_tensor(L, SB_T_O_B, &y->bo, NULL, nm->o, l, ".bias", C, 0);
        if (c->softmax == SB_SOFTMAX_SINK_LOGIT)
            add_tensor(L, SB_T_SINKS, &y->sink_logit, NULL, nm->sinks, l, "", c->n_heads, 0);
        if (!c->shared_norm) {
            add_tensor(L, SB_T_MLP_NORM_W, &y->mlp_norm_w, NULL, nm->mlp_norm, l, ".weight", C, 0);
            if (c->norm_bias) add_tensor(L, SB_T_MLP_NORM_B, &y->mlp_norm_b, NULL, nm->mlp_norm, l, ".bias", C, 0);
        }
        if (c->mlp == SB_MLP_SWIGLU) {
            add_tensor(L, SB_T_GATE_W, &y->w_gate, &y->mat.gate, nm->gate, l, ".weight", F, C);
            if (c->mlp_bias) add_tensor(L, SB_T_GATE_B, &y->b_gate, NULL, nm->gate, l, ".bias", F, 0);
        }
        add_tensor(L, SB_T_UP_W, &y->w_up, &y->mat.up, nm->up, l, ".weight", F, C);
        if (c->mlp_bias) add_tensor(L, SB_T_UP_B, &y->b_up, NULL, nm->up, l, ".bias", F, 0);
        add_tensor(L, SB_T_DOWN_W, &y->w_down, &y->mat.down, nm->down, l, ".weight", C, F);
        if (c->mlp_bias) add_tensor(L, SB_T_DOWN_B, &y->b_down, NULL, nm->down, l, ".bias", C, 0);
    }
    add_tensor(L, SB_T_FINAL_NORM_W, &w->final_norm_w, NULL, nm->final_norm, -1, ".weight", C, 0);
    if (c->norm_bias) add_tensor(L, SB_T_FINAL_NORM_B, &w->final_norm_b, NULL, nm->final_norm, -1, ".bias", C, 0);
    if (!c->tie_embeddings) add_tensor(L, SB_T_LM_HEAD, &w->lm_head, &w->head, nm->lm_head, -1, ".weight", V, C);
    else if (L->w) {
        L->w->lm_head = L->w->tok_embed;
        L->w->head = L->w->embed;
    }
}

int sb_model_tensor_count(const sb_model_config *c) {
    layout_ctx L = {0};
    layout(c, &L);
    return L.n;
}

int sb_model_tensor_list(const sb_model_config *c, const sb_model *m, sb_tensor_ref *out) {
    layout_ctx L = {.out = out, .params = m ? m->params : NULL};
    if (m && m->store) L.src = m->store->tensors;
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

static void store_free(struct sb_model_store *st) {
    if (!st) return;
    for (int i = 0; i < st->n_owned; i++) free(st->owned[i]);
    free(st->owned);
    free(st->tensors);
    sb_st_set_close(&st->set);
    free(st);
}

void sb_model_free(sb_model *m) {
    if (!m) return;
    if (!m->store || m->store->own_params) free(m->params);
    store_free(m->store);
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
 * are backed by real bytes in the files. On success *t holds the tensor list and src[i] /
 * files[i] / fts[i] where tensor i lives. */
typedef struct {
    sb_tensor_ref *t;
    sb_hf_source *src;
    const sb_st_tensor **fts;
    const sb_st_file **files;
    int nt;
} checked_tensors;

static void checked_free(checked_tensors *k) {
    free(k->t);
    free(k->src);
    free(k->fts);
    free(k->files);
    memset(k, 0, sizeof *k);
}

static int open_checked(const char *dir, sb_model_config *cfg, sb_st_set *set, checked_tensors *k) {
    char path[4096];
    struct stat st;
    memset(k, 0, sizeof *k);
    if (stat(dir, &st) != 0) return sb_error("%s: cannot open model directory: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return sb_error("%s: not a directory", dir);
    if (join_path(path, sizeof path, dir, "config.json") || sb_hfconfig_load(cfg, path)) return SB_ERR;
    if (sb_st_set_open(set, dir)) return SB_ERR;
    int nt = sb_model_tensor_count(cfg);
    k->nt = nt;
    k->t = calloc((size_t)nt, sizeof *k->t);
    k->src = calloc((size_t)nt, sizeof *k->src);
    k->fts = calloc((size_t)nt, sizeof *k->fts);
    k->files = calloc((size_t)nt, sizeof *k->files);
    if (!k->t || !k->src || !k->fts || !k->files) {
        sb_error("%s: out of memory", dir);
        goto fail;
    }
    sb_model_tensor_list(cfg, NULL, k->t);
    for (int i = 0; i < nt; i++) {
        const sb_hf_source *hs = &k->src[i];
        sb_hf_tensor_source(cfg, &k->t[i], &k->src[i]);
        const sb_st_file *f;
        const sb_st_tensor *s = sb_st_set_find(set, hs->name, &f);
        if (!s) {
            sb_error("%s/%s: tensor '%s' is missing", dir,
                     set->n_files > 1 ? "model.safetensors.index.json" : "model.safetensors", hs->name);
            goto fail;
        }
        bool same = s->ndim == hs->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = s->shape[d] == hs->shape[d];
        if (!same) {
            char want[64], got[160];
            shape_str(want, sizeof want, hs->shape, hs->ndim);
            shape_str(got, sizeof got, s->shape, s->ndim);
            sb_error("%s: tensor '%s' has shape %s, config.json expects %s", f->path, hs->name, got, want);
            goto fail;
        }
        if (s->dtype != SB_ST_F32 && s->dtype != SB_ST_F16 && s->dtype != SB_ST_BF16) {
            sb_error("%s: tensor '%s' has dtype %s (supported: F32, F16, BF16)", f->path, hs->name,
                     sb_st_dtype_name(s->dtype));
            goto fail;
        }
        if (i == 0) cfg->dtype = st_to_model_dtype(s->dtype);
        k->fts[i] = s;
        k->files[i] = f;
    }
    return SB_OK;
fail:
    checked_free(k);
    sb_st_set_close(set);
    return SB_ERR;
}

int sb_model_inspect(const char *dir, sb_model_config *cfg, uint64_t *file_bytes) {
    if (sb_llama2c_is_checkpoint(dir)) {
        /* the header is all a config needs, but its sizes are only trusted after the load's
         * size check: load (llama2.c checkpoints are small) */
        sb_model m;
        if (sb_model_load_llama2c(&m, dir)) return SB_ERR;
        *cfg = m.cfg;
        sb_model_free(&m);
        struct stat st;
        if (file_bytes) *file_bytes = stat(dir, &st) == 0 ? (uint64_t)st.st_size : 0;
        return SB_OK;
    }
    sb_st_set set;
    checked_tensors k;
    if (open_checked(dir, cfg, &set, &k)) return SB_ERR;
    uint64_t total = 0;
    for (int i = 0; i < set.n_files; i++) total += set.files[i].map_size;
    if (file_bytes) *file_bytes = total;
    checked_free(&k);
    sb_st_set_close(&set);
    return SB_OK;
}

static size_t dtype_bytes(sb_dtype d) { return d == SB_DTYPE_F32 ? 4 : 2; }

/* Convert n values of dtype at src (any alignment) to fp32. */
static void to_f32(float *out, const void *src, sb_dtype d, size_t n) {
    if (d == SB_DTYPE_F32) memcpy(out, src, n * sizeof(float));
    else if (d == SB_DTYPE_F16) sb_f16_to_f32_array(out, src, n);
    else sb_bf16_to_f32_array(out, src, n);
}

/* Copy the selected rows of a file tensor into dst, as dtype `to` (F32 or the file's own). */
static void gather_rows(void *dst, sb_dtype to, const sb_st_tensor *s, const sb_hf_source *hs) {
    sb_dtype from = st_to_model_dtype(s->dtype);
    size_t cols = hs->ndim == 2 ? (size_t)hs->shape[1] : 1, in_row = cols * dtype_bytes(from),
           out_row = cols * dtype_bytes(to);
    unsigned char *o = dst;
    for (int64_t g = 0; g < hs->n_groups; g++) {
        const unsigned char *r = s->data + ((size_t)g * (size_t)hs->group_rows + (size_t)hs->first) * in_row;
        size_t n = (size_t)hs->take;
        if (to == from) memcpy(o, r, n * in_row);
        else to_f32((float *)(void *)o, r, from, n * cols);
        o += n * out_row;
    }
}

static void *store_take(struct sb_model_store *st, size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p) st->owned[st->n_owned++] = p;
    return p;
}

int sb_weights_mode_parse(const char *s, const char *what, sb_weights_mode *out) {
    if (!s || !s[0]) *out = SB_WEIGHTS_DEFAULT;
    else if (!strcmp(s, "f32") || !strcmp(s, "fp32")) *out = SB_WEIGHTS_F32;
    else if (!strcmp(s, "native")) *out = SB_WEIGHTS_NATIVE;
    else return sb_usage_error("%s '%.40s' is not one of f32, native", what, s);
    return SB_OK;
}

/* Every weight as fp32 in one block (the trainer's layout): convert, then drop the file pages. */
static int load_f32_block(sb_model *m, const sb_model_config *cfg, checked_tensors *k) {
    if (sb_model_alloc(m, cfg)) return SB_ERR;
    sb_model_tensor_list(cfg, m, k->t);
    for (int i = 0; i < k->nt; i++) {
        gather_rows(k->t[i].data, SB_DTYPE_F32, k->fts[i], &k->src[i]);
        sb_st_release(k->files[i], k->fts[i]);
    }
    return SB_OK;
}

/* Native: point into the mapping wherever the bytes can be used as they are. */
static int load_mapped(sb_model *m, const sb_model_config *cfg, checked_tensors *k, sb_st_set *set) {
    struct sb_model_store *st = calloc(1, sizeof *st);
    if (!st) return sb_error("out of memory");
    st->owned = calloc((size_t)k->nt, sizeof(void *));
    st->tensors = calloc((size_t)k->nt, sizeof(sb_weight));
    m->w.layers = calloc((size_t)cfg->n_layers, sizeof(sb_layer_weights));
    if (!st->owned || !st->tensors || !m->w.layers) {
        store_free(st);
        return sb_error("out of memory for the model's tables");
    }
    st->n_tensors = k->nt;
    st->set = *set; /* the model owns the mapping from here on */
    memset(set, 0, sizeof *set);
    m->store = st;
    m->cfg = *cfg;
    m->n_params = sb_model_param_count(cfg);
    bool contiguous = true;
    for (int i = 0; i < k->nt; i++) {
        const sb_st_tensor *s = k->fts[i];
        const sb_hf_source *hs = &k->src[i];
        sb_dtype d = st_to_model_dtype(s->dtype);
        size_t row_bytes = (hs->ndim == 2 ? (size_t)hs->shape[1] : 1) * dtype_bytes(d);
        const unsigned char *p = s->data + (size_t)hs->first * row_bytes;
        bool in_place = hs->n_groups == 1 && (uintptr_t)p % dtype_bytes(d) == 0 && (d == SB_DTYPE_F32 || hs->ndim == 2);
        if (in_place) {
            st->tensors[i] = (sb_weight){d, p};
        } else {
            /* vectors become fp32; fused rows of several groups are gathered in their own dtype */
            sb_dtype to = hs->ndim == 2 ? d : SB_DTYPE_F32;
            void *dst = store_take(st, k->t[i].numel * dtype_bytes(to));
            if (!dst) return sb_error("out of memory copying tensor '%s'", hs->name);
            gather_rows(dst, to, s, hs);
            st->tensors[i] = (sb_weight){to, dst};
            contiguous = false;
        }
        if (st->tensors[i].dtype != SB_DTYPE_F32 ||
            (const float *)st->tensors[i].data != (const float *)st->tensors[0].data + k->t[i].offset)
            contiguous = false;
    }
    /* fp32 files in storage order (ours) are the fp32 block itself */
    if (contiguous) m->params = (float *)(uintptr_t)st->tensors[0].data;
    layout_ctx L = {.w = &m->w, .src = st->tensors};
    layout(cfg, &L);
    return SB_OK;
}

int sb_model_load_mode(sb_model *m, const char *dir, sb_weights_mode mode) {
    memset(m, 0, sizeof *m);
    if (mode == SB_WEIGHTS_DEFAULT && sb_weights_mode_parse(getenv("SINKBENCH_WEIGHTS"), "SINKBENCH_WEIGHTS", &mode))
        return SB_ERR_USAGE;
    if (sb_llama2c_is_checkpoint(dir)) return sb_model_load_llama2c(m, dir);
    sb_model_config cfg;
    sb_st_set set;
    checked_tensors k;
    if (open_checked(dir, &cfg, &set, &k)) return SB_ERR;
    /* an fp32 file in storage order (ours) maps as the fp32 block itself */
    bool one_block = true;
    for (int i = 0; i < k.nt && one_block; i++)
        one_block = k.fts[i]->dtype == SB_ST_F32 && k.src[i].n_groups == 1 &&
                    (uintptr_t)k.fts[0]->data % 4 == 0 &&
                    k.fts[i]->data + (size_t)k.src[i].first * (k.src[i].ndim == 2 ? (size_t)k.src[i].shape[1] : 1) * 4 ==
                        k.fts[0]->data + k.t[i].offset * 4;
    int rc = mode == SB_WEIGHTS_F32 && !one_block ? load_f32_block(m, &cfg, &k) : load_mapped(m, &cfg, &k, &set);
    if (rc) sb_model_free(m);
    checked_free(&k);
    sb_st_set_close(&set);
    return rc;
}

int sb_model_load(sb_model *m, const char *dir) { return sb_model_load_mode(m, dir, SB_WEIGHTS_DEFAULT); }

void sb_model_weight_bytes(const sb_model *m, size_t *compact_bytes, size_t *f32_bytes) {
    int nt = sb_model_tensor_count(&m->cfg);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(&m->cfg, m, t);
    size_t a = 0, b = 0;
    for (int i = 0; i < nt; i++) {
        if (t[i].stored.dtype == SB_DTYPE_F32) b += t[i].numel * 4;
        else a += t[i].numel * 2;
    }
    free(t);
    if (compact_bytes) *compact_bytes = a;
    if (f32_bytes) *f32_bytes = b;
}

void sb_model_embed_row(float *out, const sb_model *m, int32_t row) {
    const size_t C = (size_t)m->cfg.dim;
    const sb_weight *e = &m->w.embed;
    to_f32(out, (const unsigned char *)e->data + (size_t)row * C * dtype_bytes(e->dtype), e->dtype, C);
}
