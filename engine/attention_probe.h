/* Attention probe: the softmax probabilities of a dense forward, for attention maps and the
 * sink share (paper Fig. 2).
 *
 * Runs the decoder one token at a time over a dense cache at absolute positions 0..n-1 and
 * records each layer's probabilities through its attention observer, so the numbers come
 * from the same kernels as the evaluation. */
#ifndef SB_ATTENTION_PROBE_H
#define SB_ATTENTION_PROBE_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/model.h"

/* First query position the sink share averages over: queries past the first few tokens,
 * where attention on position 0 is not just attention on one of a handful of keys. */
#define SB_PROBE_SHARE_FROM 17

/* tokens[n] (n >= 2, ids < vocab, checked). Writes
 *   maps [L, n, n]: maps[(l*n + q)*n + k] = probability query q gives key k, averaged over
 *        heads; 0 for k > q (causal) and for keys outside the model's sliding window. Rows sum
 *        to 1 for the standard softmax and to less (the extra logit's mass) for the off-by-one
 *        and sink-logit variants.
 *   sink_share [L, H]: mean over queries q >= SB_PROBE_SHARE_FROM (all q >= 1 when
 *        n <= SB_PROBE_SHARE_FROM) of the probability head h gives position 0.
 * Either output may be NULL. */
int sb_attention_probe(const sb_model *m, const int32_t *tokens, int64_t n, float *maps, float *sink_share);
/* The same on backend b (NULL: a cpu backend of its own); b holds m. */
int sb_attention_probe_on(sb_backend *b, const sb_model *m, const int32_t *tokens, int64_t n, float *maps,
                          float *sink_share);

#endif
