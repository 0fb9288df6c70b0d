/* Model: a config struct, a weights struct, and loading/saving of checkpoints.
 *
 * Weights: sb_model_alloc (init, trainer) puts every weight in one fp32 block (params).
 * sb_model_load memory-maps the checkpoint and points into it: fp32 tensors as they are,
 * bf16/fp16 matrices kept compact (converted inside the matmuls, see sb_weight), bf16/fp16
 * vectors converted; fused q/k/v of GPT-NeoX/Falcon/MPT are row slices of the file tensor
 * (one group) or gathered copies (several). SB_WEIGHTS_F32 gives the one-block fp32 layout.
 *
 * Loaded: Hugging Face Llama, Mistral, GPT-NeoX, Falcon, MPT (engine/hfconfig.h,
 * engine/hf_tensors.h) and llama2.c .bin files. Saved: the native checkpoint (config.json
 * and model.safetensors with Hugging Face Llama tensor names; extra config keys carry our
 * variants, so a Llama-family model of ours loads in transformers unchanged); models of
 * other families save in that native form.
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
/* Hugging Face rope_scaling / rope_parameters.rope_type (hf_rope.h computes the frequencies). */
typedef enum { SB_ROPE_SCALING_NONE, SB_ROPE_SCALING_LINEAR, SB_ROPE_SCALING_DYNAMIC, SB_ROPE_SCALING_LLAMA3 } sb_rope_scaling;

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
    sb_rope_scaling rope_scaling;
    float rope_factor;         /* linear, dynamic, llama3: "factor" */
    float rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;         /* llama3: original_max_position_embeddings; dynamic: the length
                                * past which transformers rescales (max_position_embeddings) */

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

/* A weight matrix as stored: fp32, or bf16/fp16 kept compact and converted where the matmul
 * needs fp32 (ops.h matmul_weight_forward). data is row-major [rows, cols] of dtype; a
 * compact matrix may sit at any 2-byte offset of a memory-mapped file. */
typedef struct {
    sb_dtype dtype;
    const void *data;
} sb_weight;

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
    /* The matrices above as the forward reads them. For fp32 storage they alias the float
     * pointers; for compact (bf16/fp16) storage those float pointers are NULL. Vectors
     * (norms, biases, sinks) are always fp32. */
    struct { sb_weight q, k, v, o, gate, up, down; } mat;
} sb_layer_weights;

typedef struct {
    float *tok_embed;                 /* [V, C] */
    sb_layer_weights *layers;         /* [n_layers] */
    float *final_norm_w, *final_norm_b; /* [C] */
    float *lm_head;                   /* [V, C]; == tok_embed when tied */
    sb_weight embed, head;            /* tok_embed and lm_head as stored (see mat above) */
} sb_model_weights;

/* How sb_model_load keeps the weights. NATIVE: fp32 tensors and bf16/fp16 matrices stay in
 * the memory-mapped file (no copy; bf16/fp16 vectors are converted), so RAM holds the file's
 * bytes. F32: every weight converted into one fp32 block (m->params), as the trainer needs;
 * fp32 files written by sinkbench are mapped as that block without a copy. */
typedef enum { SB_WEIGHTS_DEFAULT, SB_WEIGHTS_NATIVE, SB_WEIGHTS_F32 } sb_weights_mode;

typedef struct sb_model {
    sb_model_config cfg;
    sb_model_weights w;
    float *params;                    /* when every weight is fp32 and lies in one block in
                                       * storage order (sb_model_alloc, SB_WEIGHTS_F32 loads, our
                                       * own fp32 files): that block; else NULL */
    size_t n_params;                  /* parameters (tied head counted once) */
    struct sb_model_store *store;     /* mapped files and copies a loaded model owns; NULL when
                                       * allocated */
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
/* Load / save a checkpoint directory (config.json + model.safetensors or sharded
 * model.safetensors.index.json) of any supported family, or a llama2.c .bin file.
 * sb_model_load uses SB_WEIGHTS_DEFAULT: native, unless the environment variable
 * SINKBENCH_WEIGHTS is "f32" ("native" is accepted too; anything else is an error). */
int sb_model_load(sb_model *m, const char *dir);
int sb_model_load_mode(sb_model *m, const char *dir, sb_weights_mode mode);
/* Parse "f32" / "native" (NULL or "" = DEFAULT); error names `what` and the value. */
int sb_weights_mode_parse(const char *s, const char *what, sb_weights_mode *out);
/* Bytes of weights held compactly (bf16/fp16 matrices) and as fp32, for reports. */
void sb_model_weight_bytes(const sb_model *m, size_t *compact_bytes, size_t *f32_bytes);
/* Copy row `row` of the token embedding as fp32: out[C]. */
void sb_model_embed_row(float *out, const sb_model *m, int32_t row);
int sb_model_save(const sb_model *m, const char *dir);
/* Same, split into Hugging Face shards (model-0000i-of-0000n.safetensors + the index) when the
 * weights exceed max_shard_bytes (0: never); files of the other layout are removed. */
int sb_model_save_sharded(const sb_model *m, const char *dir, uint64_t max_shard_bytes);
/* The weight files of a model directory, full paths, sorted: model.safetensors, or the index
 * and its shards. Free with sb_model_weight_files_free. */
int sb_model_weight_files(const char *dir, char ***files, int *n);
void sb_model_weight_files_free(char **files, int n);
void sb_model_free(sb_model *m);

/* ---- additions (engine core): tensor listing shared by init, save, load and the trainer ---- */

/* What a checkpoint tensor is, independent of the family's naming. */
typedef enum {
    SB_T_EMBED, SB_T_ATTN_NORM_W, SB_T_ATTN_NORM_B, SB_T_Q_W, SB_T_Q_B, SB_T_K_W, SB_T_K_B, SB_T_V_W, SB_T_V_B,
    SB_T_O_W, SB_T_O_B, SB_T_SINKS, SB_T_MLP_NORM_W, SB_T_MLP_NORM_B, SB_T_GATE_W, SB_T_GATE_B, SB_T_UP_W,
    SB_T_UP_B, SB_T_DOWN_W, SB_T_DOWN_B, SB_T_FINAL_NORM_W, SB_T_FINAL_NORM_B, SB_T_LM_HEAD
} sb_tensor_role;

/* One checkpoint tensor: its Hugging Face name, shape and place in params. */
typedef struct {
    char name[96];
    int ndim;                         /* 1 or 2 */
    int64_t shape[2];
    size_t numel;
    size_t offset;                    /* floats from m->params (same layout for gradients) */
    float *data;                      /* its fp32 values (m->params + offset for allocated models);
                                       * NULL when listed from a config or held compactly */
    sb_tensor_role role;
    int layer;                        /* -1 for the tensors outside the layers */
    sb_weight stored;                 /* the tensor as m holds it (m given), any dtype */
} sb_tensor_ref;

/* Number of tensors of cfg in storage order (lm_head omitted when tied). Names are the native
 * (Llama) ones whatever the family; hf_tensors.h maps them to a family's file. */
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
