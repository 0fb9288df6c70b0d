/* Shards of one stream: which predictions each rank of a sharded exact evaluation scores.
 *
 * A rank scoring predictions [from, to) of a band policy (K sinks + W recent) computes, besides
 * them, the sinks' chunk(s) and a halo of about L*W tokens before `from` (aligned down to the
 * chunk grid, sb_eval_halo), because token t's keys at layer l depend on the sinks and on
 * tokens [t - l*W, t]; recompute:W computes each prediction from its own window, so a shard
 * costs what its part of a whole run costs. Dense attention and decode-only policies (h2o,
 * tova) cannot be sharded.
 *
 * sb_shard_plan() cuts the predictions into contiguous shards of equal cost, halo included
 * (rank 0 has none, so it scores more), with every boundary on the chunk grid: a shard's last
 * chunk then ends at its boundary and no chunk is computed twice. The cost model counts the
 * forward's multiply-adds per token (weights and attention over the cache) and the output
 * head on scored rows only (halo rows skip it). Pure arithmetic: no MPI here. */
#ifndef SB_SHARD_H
#define SB_SHARD_H

#include <stdint.h>

#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"

typedef struct {
    int64_t from, to;         /* predictions nll[from, to) */
    int64_t halo;             /* tokens before the first scored one computed only to warm up */
    int64_t sink_tokens;      /* tokens computed for the sinks ahead of the halo (whole chunks) */
    int64_t forwarded;        /* tokens through the forward in all (recompute: a window each) */
    double cost;              /* model cost (multiply-adds) */
} sb_shard;

/* Why p cannot be sharded in mode (a usage error naming it), or SB_OK. */
int sb_shard_check(const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode);
/* The work of scoring [from, to) of n_pred predictions alone (chunk: the evaluation's). */
void sb_shard_measure(const sb_model_config *c, const sb_policy_spec *p, int64_t n_pred, int64_t chunk, int64_t from,
                      int64_t to, sb_shard *out);
/* Cut n_pred predictions into `ranks` shards out[ranks] of balanced cost (see above). Trailing
 * shards are empty when there are more ranks than chunks. */
int sb_shard_plan(const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode, int64_t n_pred, int64_t chunk,
                  int ranks, sb_shard *out);
/* Equal numbers of predictions instead (each boundary rounded to the chunk grid), the plain
 * split; SB_TEST_SHARDS=equal makes a sharded ppl use it (tests put boundaries inside the
 * first K+W tokens with it). */
int sb_shard_plan_equal(const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode, int64_t n_pred,
                        int64_t chunk, int ranks, sb_shard *out);
/* The share of the shards' forwarded tokens that a single whole run would not compute
 * (the halos and the sinks' chunks of ranks > 0): 1 - efficiency. */
double sb_shard_overhead(const sb_model_config *c, const sb_policy_spec *p, int64_t n_pred, int64_t chunk,
                         const sb_shard *s, int ranks);

#endif
