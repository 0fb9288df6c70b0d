/* Public per-token NLL evaluation of a token stream under a cache policy.
 *
 * Two modes give the same numbers (to float rounding):
 *   SB_MODE_EXACT   batched: chunks of queries against a band of recent keys at their true
 *                   positions plus a block of sink keys at their per-query distance, with
 *                   matrix-matrix products (fast; the default);
 *   SB_MODE_DECODE  one token per forward through sb_decoder (a ring-buffer cache, like a
 *                   deployed model).
 * Exact mode follows the policy's plan (policy.h); a policy without one (h2o, tova) runs in
 * decode mode, which sb_eval_mode_used() reports. Both run on any backend (backend.h).
 * Semantics: shared/reference/streamingllm.md, appendix. */
#ifndef SB_STREAM_EVAL_H
#define SB_STREAM_EVAL_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/policy.h"

typedef enum { SB_MODE_EXACT = 0, SB_MODE_DECODE = 1 } sb_eval_mode;
typedef struct { int64_t done, total; double sum_nll; } sb_eval_progress;
typedef int (*sb_eval_progress_fn)(const sb_eval_progress *p, void *user); /* non-zero return aborts */
typedef struct {
    sb_eval_mode mode;
    int64_t chunk;                    /* exact-mode query chunk; 0 = default */
    sb_eval_progress_fn progress;     /* may be NULL; called every chunk / every few tokens */
    void *user;
    int64_t resume_from;              /* nll[0, resume_from) already hold the values of an
                                       * interrupted run (a progress report's `done`): those
                                       * tokens are replayed through the forward without the
                                       * head, so the rest comes out bit-identical to an
                                       * uninterrupted run; 0 = a fresh run */
    sb_backend *backend;              /* where the forward runs; NULL = a cpu backend of its own */
    int64_t score_from, score_to;     /* score only nll[score_from, score_to) (both 0 = all; nll is
                                       * still indexed from 0): one shard of a sharded run. Exact
                                       * mode only; the evaluation starts its warm-up
                                       * sb_eval_halo() tokens earlier and the values equal
                                       * those of a whole-stream run */
} sb_eval_opts;

/* Default exact-mode chunk (queries per batched forward) of the cpu backend; a backend may
 * have its own (backend.h default_chunk: 2048 on a GPU). */
#define SB_EVAL_DEFAULT_CHUNK 256

/* tokens x_0..x_{n-1}; writes nll[i] = -ln p(x_{i+1} | context under policy p), i in [0, n-1).
 * Ids must be < vocab (checked: error names the position and id).
 * o may be NULL (exact mode, default chunk). An abort by the progress callback returns
 * SB_ERR with "evaluation aborted". */
int sb_eval_stream_nll(const sb_model *m, const sb_policy_spec *p, const int32_t *tokens, int64_t n,
                       const sb_eval_opts *o, float *nll);
/* The chunk an evaluation with these options uses (o->chunk, else the backend's default). */
int64_t sb_eval_chunk(const sb_eval_opts *o);
/* The mode a policy runs in when `requested` is asked for: exact needs the policy's plan. */
sb_eval_mode sb_eval_mode_used(const sb_policy_spec *p, const sb_model_config *c, sb_eval_mode requested);
const char *sb_eval_mode_name(sb_eval_mode m);
/* Tokens before a shard's first scored position that its evaluation computes (L*W for a band
 * of W, W for recompute, rounded to whole chunks); -1 when the policy cannot be sharded
 * (dense, no exact plan). */
int64_t sb_eval_halo(const sb_model_config *c, const sb_policy_spec *p, int64_t score_from, int64_t chunk);
/* Bytes the evaluation will allocate (for --max-memory refusals). UINT64_MAX when it
 * would overflow. */
uint64_t sb_eval_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t n, const sb_eval_opts *o);

#endif
