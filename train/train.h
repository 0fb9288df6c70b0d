/* The trainer: Llama-family models (RMSNorm, half-split RoPE, MHA/GQA causal attention,
 * SwiGLU, tied or untied head) trained from scratch with AdamW, in fp32 on the CPU.
 *
 * Variants (the [variant] section of the INI):
 *   vanilla     plain softmax attention;
 *   sink_token  a learnable <sink> token (cfg.sink_token_id, part of the vocabulary) is the
 *               first input of every training sample. The sink position predicts nothing:
 *               its target is ignored, because the token after the sink is the start of an
 *               arbitrary window, and learning an unconditional first-token distribution
 *               there is not what the sink is for. A sample is [<sink>, d_0 .. d_{T-2}]
 *               predicting [-, d_1 .. d_{T-1}]: T positions, T-1 predictions. With
 *               `sink_target = first` the sink position predicts d_0 as in a plain language
 *               model over [<sink>] + text (T predictions; the sink's states then also carry
 *               the unconditional first-token distribution);
 *   zero_sink   softmax off-by-one in every attention (SB_SOFTMAX_OFF_BY_ONE);
 *   sink_logit  a learned per-head sink logit (SB_SOFTMAX_SINK_LOGIT, weights [n_heads] per
 *               layer, initialised to 0).
 * The saved model's config records the variant (cfg.softmax, cfg.sink_token_id), so the engine
 * evaluates it the way it was trained.
 *
 * Output directory of `sinkbench train --out DIR` (DIR is itself a model directory):
 *   DIR/config.json, DIR/model.safetensors  the engine checkpoint (fp32), refreshed at every
 *                       checkpoint and at the end; DIR/tokenizer.json when [data] tokenizer
 *                       is given;
 *   DIR/train_state.bin weights, Adam moments, step, data RNG and loss history (one file,
 *                       written atomically); --resume continues from it bit-identically;
 *   DIR/train_log.h5    (name from [run] log) step, train/held-out loss, tokens/s, lr and the
 *                       sink share [n_evals, layers, heads], rewritten atomically at each eval;
 *   DIR/train.ini       the resolved config of the run (every key, defaults included).
 * Data paths are used as given (relative to the working directory). */
#ifndef SB_TRAIN_H
#define SB_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/model.h"

/* ------------------------------------------------------------------ config (INI) */

typedef enum {
    SB_VARIANT_VANILLA,
    SB_VARIANT_SINK_TOKEN,
    SB_VARIANT_ZERO_SINK,
    SB_VARIANT_SINK_LOGIT
} sb_train_variant;

#define SB_TRAIN_PATH_MAX 1024

/* Weight initialisation ([model] init). */
typedef enum {
    SB_INIT_GPT2,                /* N(0, init_std) matrices, out-projections / sqrt(2L) (default) */
    SB_INIT_PYTORCH              /* PyTorch's defaults: embedding N(0, 1), every linear layer
                                    U(-1/sqrt(fan_in), 1/sqrt(fan_in)); init_std unused */
} sb_train_init;

typedef struct {
    /* [model] vocab dim layers heads kv_heads ffn ctx rope_theta norm_eps tie_embeddings init_std */
    sb_model_config model;       /* softmax and sink_token_id follow the variant */
    float init_std;              /* std of the projection weights; out-projections / sqrt(2L) */
    sb_train_init init;          /* [model] init = gpt2 | pytorch */
    /* [data] train heldout seq_len tokenizer */
    char train_path[SB_TRAIN_PATH_MAX];
    char heldout_path[SB_TRAIN_PATH_MAX];
    char tokenizer_path[SB_TRAIN_PATH_MAX]; /* optional tokenizer.json (or its directory): its
                                               vocab must match; it supplies the <sink>,
                                               <|endoftext|> and "\n" ids and is copied into
                                               the output so the model directory is complete */
    int seq_len;                 /* positions per sample, the sink included */
    /* [optim] */
    double lr, min_lr;
    int warmup;                  /* steps of linear warmup */
    int steps;                   /* optimizer steps in total */
    int batch;                   /* samples per micro-batch */
    int grad_accum;              /* micro-batches per optimizer step */
    double weight_decay, beta1, beta2, eps;
    double clip;                 /* global-norm clip; 0 = off */
    /* [run] */
    uint64_t seed;
    int threads;                 /* 0 = all cores */
    int eval_interval;           /* steps between held-out evaluations; 0 = only at the end */
    int64_t eval_tokens;         /* held-out tokens per evaluation */
    int checkpoint_interval;     /* steps between checkpoints; 0 = only at the end */
    char log_name[256];          /* HDF5 log file inside the output directory */
    /* [variant] type sink_token_id sink_target */
    sb_train_variant variant;
    bool sink_target_first;      /* sink_token: the sink position predicts the first text token */
} sb_train_config;

/* Defaults: a small Llama (vocab 4096, dim 384, 6 layers, 6 heads, ffn 1024, ctx 512),
 * lr 1e-3 -> 1e-4, warmup 100, AdamW(0.9, 0.95, 1e-8), wd 0.1, clip 1.0, seed 1. */
void sb_train_config_default(sb_train_config *c);
/* Read an INI file over the defaults. Unknown sections/keys and bad values are errors naming
 * the file, section.key and the value. The result is validated. */
int sb_train_config_load(sb_train_config *c, const char *path);
/* Same from text in memory (name is used in messages). */
int sb_train_config_parse(sb_train_config *c, const char *text, const char *name);
int sb_train_config_validate(const sb_train_config *c);
/* Write the config back as INI text (malloc'd; NULL on error). */
char *sb_train_config_to_ini(const sb_train_config *c);
const char *sb_train_variant_name(sb_train_variant v);
int sb_train_variant_parse(const char *s, sb_train_variant *out); /* 0 ok, -1 unknown */

/* ------------------------------------------------------------------ training model */

/* Activations of one micro-batch of B sequences of T positions, kept for the backward. */
typedef struct {
    sb_model *m;                 /* the weights (not owned) */
    sb_model grad;               /* gradients, same layout as m->params */
    int cap_B, cap_T;            /* capacity */
    int B, T;                    /* shape of the last forward */
    int n_valid;                 /* targets >= 0 in the last forward */
    int32_t *tokens, *targets;   /* [N] copies */
    float *x;                    /* [L+1, N, C] residual stream entering layer l (L: final) */
    float *xmid;                 /* [L, N, C] after the attention residual */
    float *xn1, *xn2;            /* [L, N, C] normed inputs of attention / MLP */
    float *q, *k, *v;            /* [L, N, H*D], [L, N, KVH*D] (q, k after RoPE) */
    float *att;                  /* [L, N, H*D] attention output before o_proj */
    float *probs;                /* [L, B, H, T, T] */
    float *extra_p;              /* [L, B, H, T] mass on the extra logit */
    float *gate, *up, *hmlp;     /* [L, N, F] */
    float *xnf;                  /* [N, C] */
    float *logits;               /* [N, V]; the backward turns it into dlogits */
    float *losses;               /* [N] */
    float *lse;                  /* [N] log-sum-exp of each row of logits */
    float *rope_cos, *rope_sin;  /* [cap_T, D/2] */
    /* backward scratch */
    float *dx, *dxn, *dq, *dk, *dv, *datt, *dh, *dgate, *dup;
} sb_train_model;

/* Check that the trainer supports cfg (Llama family: RMSNorm, full half-split RoPE, SwiGLU,
 * no biases, no clip_qkv); the error names the field. */
int sb_train_model_check_config(const sb_model_config *cfg);
/* Allocate activations for up to B x T and gradients for m (sizes overflow-checked). */
int sb_train_model_init(sb_train_model *tm, sb_model *m, int B, int T);
/* Bytes sb_train_model_init allocates for cfg and B x T: the activations (token copies
 * included) and the gradients. Computed from the same table as the allocation. */
int sb_train_model_bytes(const sb_model_config *cfg, int B, int T, uint64_t *activations, uint64_t *gradients);
void sb_train_model_free(sb_train_model *tm);
/* Forward of B sequences tokens[B*T]; targets[B*T] (< 0 = ignored). *loss = mean NLL over
 * the kept targets (0 when none). Ids are validated (error names position and id). */
int sb_train_forward(sb_train_model *tm, const int32_t *tokens, const int32_t *targets, int B, int T,
                     float *loss);
/* Backward of the last forward: grad += dloss * d(mean loss)/d(params). Consumes the logits. */
void sb_train_backward(sb_train_model *tm, float dloss);
void sb_train_zero_grad(sb_train_model *tm);
/* Add to sum[L*H] the attention each query at position >= first_query pays to position 0 in
 * the last forward, per layer and head; returns how many queries each (l, h) got. */
int64_t sb_train_sink_share_accumulate(const sb_train_model *tm, int first_query, double *sum);

/* Deterministic initialisation: N(0, init_std) for matrices (o_proj and down_proj divided by
 * sqrt(2 * layers)), 1 for norm weights, 0 for sink logits; one RNG stream per tensor. */
void sb_train_init_weights(sb_model *m, uint64_t seed, float init_std);
/* The same with a scheme: SB_INIT_GPT2 is sb_train_init_weights; SB_INIT_PYTORCH draws the
 * token embedding from N(0, 1) and every other matrix [out, in] from U(-1/sqrt(in), 1/sqrt(in))
 * (nn.Embedding and nn.Linear's defaults), norms 1, sink logits 0. */
void sb_train_init_weights_scheme(sb_model *m, uint64_t seed, float init_std, sb_train_init scheme);
const char *sb_train_init_name(sb_train_init s);

/* ------------------------------------------------------------------ optimizer */

/* Learning rate of optimizer step `step` (0-based): linear warmup from lr/warmup to lr over
 * `warmup` steps, then cosine from lr to min_lr at step `steps` - 1. */
double sb_train_lr(const sb_train_config *c, int64_t step);
/* 1 for each parameter that gets weight decay (matrices), 0 for norms, biases, sink logits.
 * mask[m->n_params] (malloc'd). */
uint8_t *sb_train_decay_mask(const sb_model *m);
/* sqrt(sum g^2) in double, fixed-order blocked reduction (thread-count independent). */
double sb_grad_global_norm(const float *g, size_t n);
/* AdamW step t (1-based) with decoupled weight decay where mask[i]:
 * p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p). grad_scale multiplies g first (clipping). */
void sb_adamw_update(float *p, const float *g, float *m, float *v, const uint8_t *mask, size_t n, int64_t t,
                     double lr, double beta1, double beta2, double eps, double weight_decay, float grad_scale);

/* ------------------------------------------------------------------ run */

typedef struct {
    bool resume;                 /* continue from DIR/train_state.bin */
    uint64_t max_memory;         /* refuse runs whose estimate exceeds it; 0 = what is available
                                    (util/memcheck.h) */
    int64_t stop_at_step;        /* > 0: stop (with a checkpoint) once this many steps are done */
    bool quiet;                  /* no progress line even on a terminal */
    const volatile int *interrupt; /* may be NULL; when it becomes non-zero (a signal handler),
                                      the run stops after the current step with a checkpoint
                                      and returns SB_ERR "interrupted" */
    const char *device;          /* NULL or "cpu": this trainer; "cuda[:N]": train/train_gpu.h */
    sb_compute compute;          /* GPU matmul precision: AUTO (= bf16) or F32 */
} sb_train_options;

/* Summary of a run (filled as far as it got). */
typedef struct {
    int64_t steps_done;
    double last_train_loss;      /* mean over the last eval interval */
    double last_heldout_loss;    /* NAN before the first eval */
    double tokens_per_s;         /* training throughput over this invocation */
    double seconds;
    uint64_t memory_estimate;    /* bytes (sb_train_memory_estimate total) */
} sb_train_result;

/* What a run holds at its peak, in bytes: the parts of the memory check made before anything
 * of the model is allocated (sb_train_run refuses a run whose total exceeds the limit). */
typedef struct {
    uint64_t weights;            /* fp32 parameters */
    uint64_t gradients;
    uint64_t optimizer;          /* AdamW moments m, v and the weight-decay mask */
    uint64_t activations;        /* one micro-batch kept for the backward (sb_train_model_bytes) */
    uint64_t checkpoint;         /* the train_state.bin image built by a save or read by a resume */
    uint64_t data;               /* training and held-out tokens, samples, per-step losses */
    uint64_t runtime;            /* resident before the run plus thread stacks and BLAS buffers */
} sb_train_memory;

/* Estimate for cfg with n_train / n_held tokens loaded; runtime_base = bytes resident when the
 * run starts (0 if unknown). UINT64_MAX in a part means overflow. */
int sb_train_memory_estimate(const sb_train_config *cfg, int64_t n_train, int64_t n_held, uint64_t runtime_base,
                             sb_train_memory *out);

/* Train per cfg into out_dir (created if missing; refused if it already holds a training
 * state and !opt->resume). opt and res may be NULL. */
int sb_train_run(const sb_train_config *cfg, const char *out_dir, const sb_train_options *opt,
                 sb_train_result *res);

#endif
