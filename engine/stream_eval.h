/* Public per-token NLL evaluation of a token stream under a cache policy.
 *
 * Two modes give the same numbers (to float rounding):
 *   SB_MODE_EXACT   batched: chunks of queries against a band of recent keys at their true
 *                   positions plus a block of sink keys at their per-query distance, with
 *                   matrix-matrix products (fast; the default);
 *   SB_MODE_DECODE  one token per forward through sb_decoder (a ring-buffer cache, like a
 *                   deployed model).
 * Semantics: shared/reference/streamingllm.md, appendix. */
#ifndef SB_STREAM_EVAL_H
#define SB_STREAM_EVAL_H

#include <stdint.h>

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
} sb_eval_opts;

/* Default exact-mode chunk (queries per batched forward). */
#define SB_EVAL_DEFAULT_CHUNK 256

/* tokens x_0..x_{n-1}; writes nll[i] = -ln p(x_{i+1} | context under policy p), i in [0, n-1).
 * Ids must be < vocab (checked: error names the position and id).
 * o may be NULL (exact mode, default chunk). An abort by the progress callback returns
 * SB_ERR with "evaluation aborted". */
int sb_eval_stream_nll(const sb_model *m, const sb_policy_spec *p, const int32_t *tokens, int64_t n,
                       const sb_eval_opts *o, float *nll);
/* Bytes the evaluation will allocate (for --max-memory refusals). UINT64_MAX when it
 * would overflow. */
uint64_t sb_eval_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t n, const sb_eval_opts *o);

#endif
