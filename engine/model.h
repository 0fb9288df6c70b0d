/* Model: a config struct, a weights struct of pointers into one fp32 allocation,
 * and loading/saving of the native checkpoint (a directory with config.json and
 * model.safetensors using Hugging Face Llama tensor names; extra config keys carry
 * our variants so a Llama-family model of ours loads in transformers unchanged).
 *
 * Shapes follow Hugging Face nn.Linear: a weight is [out, in] row-major and
 * y = x W^T (+ b). */
#ifndef SB_MODEL_H
#define SB_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SB_NORM_RMS, SB_NORM_LAYER } sb_norm_kind;
typedef enum { SB_POS_ROPE, SB_POS_ALIBI, SB_POS_NONE } sb_pos_kind;
/* HALF: pairs (i, i + rotary_dim/2) as in Hugging Face; INTERLEAVED: pairs (2i, 2i+1) as llama2.c */
typedef enum { SB_ROPE_HALF, SB_ROPE_INTERLEAVED } sb_rope_style;
typedef enum { SB_MLP_SWIGLU, SB_MLP_GELU } sb_mlp_kind;
typedef enum { SB_ACT_SILU, SB_ACT_GELU_ERF, SB_ACT_GELU_TANH } sb_act_kind;
/* STANDARD softmax; OFF_BY_ONE ("zero sink": 1 + sum exp); SINK_LOGIT (learned per-head
 * extra logit with no key or value, as in gpt-oss) */
typedef enum { SB_SOFTMAX_STANDARD, SB_SOFTMAX_OFF_BY_ONE, SB_SOFTMAX_SINK_LOGIT } sb_softmax_kind;
typedef enum { SB_DTYPE_F32, SB_DTYPE_F16, SB_DTYPE_BF16 } sb_dtype;

typedef struct {
    char arch[32];             /* "llama", later "gpt_neox", "falcon", "mpt", ... */
    int vocab_size;
    int dim;                   /* hidden size C */
    int n_layers;
    int n_heads;               /* query heads */
    int n_kv_heads;            /* == n_heads (MHA), 1 (MQA) or a divisor (GQA) */
    int head_dim;              /* usually dim / n_heads */
    int ffn_dim;               /* intermediate size */
    int max_ctx;               /* pre-training context (informational; dense may exceed it) */

    sb_norm_kind norm;
    float norm_eps;
    bool norm_bias;            /* LayerNorm with bias */

    bool parallel_residual;    /* x + attn(norm1(x)) + mlp(norm2(x))  (GPT-NeoX, Falcon) */
    bool shared_norm;          /* parallel with one norm feeding both branches (Falcon-7B) */

    sb_pos_kind pos;
    float rope_theta;
    int rotary_dim;            /* rotated dims per head (== head_dim for full rotary) */
    sb_rope_style rope_style;
    float alibi_bias_max;      /* MPT: 8 */

    sb_mlp_kind mlp;
    sb_act_kind act;
    bool mlp_bias;
    bool qkv_bias;
    bool out_bias;
    bool tie_embeddings;

    sb_softmax_kind softmax;
    float clip_qkv;            /* 0 = off (MPT clip_qkv) */

    int32_t bos_id, eos_id;    /* -1 when absent */
    int32_t sink_token_id;     /* the learned <sink> token, -1 when the model has none */
    int32_t newline_token_id;  /* token of "\n", -1 when unknown */
    sb_dtype dtype;            /* storage dtype of model.safetensors when saving */
    int sliding_window;        /* Mistral: a query sees keys i-j < sliding_window (itself included);
                                * 0 = unlimited. Only dense attention over long inputs reaches it. */
} sb_model_config;

typedef struct {
    float *attn_norm_w, *attn_norm_b; /* [C]; bias NULL unless norm_bias */
    float *wq, *bq;                   /* [n_heads*head_dim, C], [n_heads*head_dim] */
    float *wk, *bk;                   /* [n_kv_heads*head_dim, C] */
    float *wv, *bv;                   /* [n_kv_heads*head_dim, C] */
    float *wo, *bo;                   /* [C, n_heads*head_dim], [C] */
    float *sink_logit;                /* [n_heads], only for SB_SOFTMAX_SINK_LOGIT */
    float *mlp_norm_w, *mlp_norm_b;   /* [C]; NULL when shared_norm */
    float *w_gate, *b_gate;           /* [F, C]; SwiGLU only */
    float *w_up, *b_up;               /* [F, C] */
    float *w_down, *b_down;           /* [C, F] */
} sb_layer_weights;

typedef struct {
    float *tok_embed;                 /* [V, C] */
    sb_layer_weights *layers;         /* [n_layers] */
    float *final_norm_w, *final_norm_b; /* [C] */
    float *lm_head;                   /* [V, C]; == tok_embed when tied */
} sb_model_weights;

typedef struct sb_model {
    sb_model_config cfg;
    sb_model_weights w;
    float *params;                    /* every weight above points into this one block */
    size_t n_params;                  /* floats in params (tied head counted once) */
} sb_model;

/* Llama-style defaults (RMSNorm, half-split RoPE theta 10000, SwiGLU, no biases,
 * standard softmax, untied head, ids -1). */
void sb_model_config_default(sb_model_config *c);
/* Check consistency (divisibility, ranges); error names the offending field. */
int sb_model_config_validate(const sb_model_config *c);
/* Number of parameters implied by the config (tied head counted once). */
size_t sb_model_param_count(const sb_model_config *c);

/* Allocate zeroed weights for cfg and wire the pointers. */
int sb_model_alloc(sb_model *m, const sb_model_config *cfg);
/* Deterministic random init by seed; `scale` multiplies the projection weights
 * (scale > 1 makes attention far from uniform). Precisely: matrices N(0, 0.02), the q and k
 * projections N(0, 0.02 * scale) (v and o are left alone so the residual stream stays
 * tame), norm gains 1 + N(0, 0.02), biases N(0, 0.02), sink logits N(0, 1). One RNG stream
 * per tensor (rng.h), so the values do not depend on the thread count. */
void sb_model_init_random(sb_model *m, uint64_t seed, float scale);
/* Load / save a checkpoint directory (config.json + model.safetensors). */
int sb_model_load(sb_model *m, const char *dir);
int sb_model_save(const sb_model *m, const char *dir);
void sb_model_free(sb_model *m);

/* ---- additions (engine core): tensor listing shared by init, save, load and the trainer ---- */

/* One checkpoint tensor: its Hugging Face name, shape and place in params. */
typedef struct {
    char name[96];
    int ndim;                         /* 1 or 2 */
    int64_t shape[2];
    size_t numel;
    size_t offset;                    /* floats from m->params (same layout for gradients) */
    float *data;                      /* m->params + offset, NULL when listed from a config */
} sb_tensor_ref;

/* Number of tensors stored in the checkpoint of cfg (lm_head omitted when tied). */
int sb_model_tensor_count(const sb_model_config *c);
/* Fill out[0..count) in storage order (the order of params); m may be NULL (data then NULL).
 * Returns count. */
int sb_model_tensor_list(const sb_model_config *c, const sb_model *m, sb_tensor_ref *out);
/* Parameter count with overflow check: false when the config's sizes overflow size_t. */
bool sb_model_param_count_checked(const sb_model_config *c, size_t *out);
/* Check a checkpoint directory without loading the weights: parse config.json, map the
 * safetensors file(s) and verify every tensor's presence, shape and dtype. file_bytes
 * (optional) receives the total size of the weight files. */
int sb_model_inspect(const char *dir, sb_model_config *cfg, uint64_t *file_bytes);
/* sb_model_load sets cfg.dtype to the file's storage dtype (of its first tensor), so a
 * load -> save roundtrip keeps it. */

#endif
