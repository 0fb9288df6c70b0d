/* Backends: where the transformer's forward runs (ggml-backend style interface table).
 *
 *   cpu    OpenBLAS + OpenMP (engine/cpu/), the default
 *   cuda   cuBLAS + our kernels (engine/cuda/, built with `make CUDA=1`)
 *
 * A backend holds a model's weights in the form it computes with, and makes two kinds of
 * opaque state:
 *   exact  (SB_EXACT_BAND plans) chunks of T consecutive tokens under K sinks + W recent
 *          keys, the batched evaluator's forward (engine/stream_eval.c);
 *   slots  a decode-mode slot cache driven by a policy state (engine/decoder.c): one token
 *          per forward.
 * Forward calls write into the caller's buffers (logits, or per-token NLL of given targets),
 * so no caller reads a backend's own buffers. */
#ifndef SB_BACKEND_H
#define SB_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/policy.h"

/* Arithmetic of the forward: AUTO = the backend's default (cpu: f32; cuda: bf16, or f16 for
 * fp16 weights), F32 = fp32 throughout (fidelity tests), BF16/F16 = half matmul inputs and
 * caches with fp32 accumulation, softmax and residual stream. */
typedef enum { SB_COMPUTE_AUTO, SB_COMPUTE_F32, SB_COMPUTE_BF16, SB_COMPUTE_F16 } sb_compute;

typedef struct {
    const char *device;       /* "cpu" (NULL too), "cuda", "cuda:N" */
    sb_compute compute;
    int threads;              /* host threads (0 = library default) */
} sb_backend_opts;

/* Called after each layer's attention in decode mode: probs[h * n + i] is the probability
 * query head h gave the key in slot slots[i] of that layer's map. */
typedef void (*sb_attn_observer_fn)(void *user, int layer, const float *probs, const int64_t *slots, int n);

typedef struct sb_backend sb_backend;
typedef struct sb_exact sb_exact;
typedef struct sb_slots sb_slots;

typedef struct sb_backend_ops {
    const char *name;
    int default_chunk;        /* exact-mode queries per forward when none is asked for */
    /* Make b->ctx for b->m (weights uploaded/converted as the backend needs). */
    int (*open)(sb_backend *b, const sb_backend_opts *o);
    void (*close)(sb_backend *b);
    /* Host threads of the forward; returns the count in effect. */
    int (*set_threads)(sb_backend *b, int n);
    /* Bytes of device memory the weights take (0 for host backends). */
    uint64_t (*device_weight_bytes)(const sb_model_config *c, sb_dtype stored, sb_compute compute);

    /* exact mode: band rows per layer (sb_exact_band_rows), chunks of at most max_T */
    uint64_t (*exact_bytes)(const sb_model_config *c, int64_t K, int64_t W, int max_T, int64_t band_cap);
    int (*exact_new)(sb_backend *b, sb_exact **s, int64_t K, int64_t W, int max_T, int64_t band_cap);
    /* forget every stored key (a new stream at position 0) */
    void (*exact_reset)(sb_exact *s);
    /* Continue the stream at position pos > the last one, keeping the sinks: the band starts
     * empty there (sharded evaluation warms it up). */
    int (*exact_seek)(sb_exact *s, int64_t pos);
    /* tokens[T] at positions pos0..pos0+T-1, continuing the stream. Rows [from, T) are
     * scored: with targets (targets[r - from] = the token after row r) out[r - from] gets
     * -ln p(target), else out[(r - from) * V ...] gets the logits. */
    int (*exact_forward)(sb_exact *s, const int32_t *tokens, int T, int64_t pos0, int from, const int32_t *targets,
                         float *out);
    void (*exact_free)(sb_exact *s);

    /* decode mode: n_slots per map, the first n_moving move (pre-RoPE copies kept) */
    uint64_t (*slots_bytes)(const sb_model_config *c, int64_t n_slots, int64_t n_moving, int n_maps);
    int (*slots_new)(sb_backend *b, sb_slots **c, int64_t n_slots, int64_t n_moving, int n_maps);
    int (*slots_grow)(sb_slots *c, int64_t n_slots);
    /* One token placed by the policy state s (s->new_slot, positions set for this step).
     * logits [V] may be NULL (head skipped). obs (may be NULL) sees every layer's attention. */
    int (*token_forward)(sb_slots *c, const sb_kv_state *s, int32_t token, float *logits, sb_attn_observer_fn obs,
                         void *obs_user);
    uint64_t (*slots_kv_bytes)(const sb_slots *c);
    void (*slots_free)(sb_slots *c);
} sb_backend_ops;

struct sb_backend {
    const sb_backend_ops *ops;
    const sb_model *m;
    void *ctx;                /* the backend's own state */
    char device[32];          /* "cpu", "cuda:0" */
    char device_name[96];     /* the GPU's name ("NVIDIA H200"); "" for the cpu */
    sb_compute compute;       /* resolved (never AUTO after open) */
    int device_index;
};

/* The ops of a device string ("cpu", "cuda", "cuda:1"); an error naming the device when it
 * is unknown or not built in (a binary without CUDA says how to build one). */
int sb_backend_ops_for(const char *device, const sb_backend_ops **ops, int *index);
/* Open m on o->device (o NULL: cpu). The model must outlive the backend. */
int sb_backend_open(sb_backend **b, const sb_model *m, const sb_backend_opts *o);
void sb_backend_close(sb_backend *b);
/* Parse "auto", "f32", "bf16", "f16"; error names `what`. */
int sb_compute_parse(const char *s, const char *what, sb_compute *out);
const char *sb_compute_name(sb_compute c);

/* Host threads of the cpu forward (OpenBLAS and OpenMP): set when n > 0; returns the count in
 * effect. sb_host_thread_info reports both pools and OpenBLAS's build, for provenance. */
int sb_host_threads(int n);
void sb_host_thread_info(int *blas_threads, int *omp_threads, char *blas_config, size_t cap);

/* Band rows a stream of n_pos positions needs with chunks of max_T (exact mode). */
int64_t sb_exact_band_rows(int64_t K, int64_t W, int max_T, int64_t n_pos);

#endif
