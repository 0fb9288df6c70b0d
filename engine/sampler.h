/* Next-token sampling for generate and stream: greedy, temperature and top-p (nucleus).
 *
 * Deterministic for a seed: the same logits and seed give the same token sequence on every
 * platform (the RNG is engine/rng.h; ties in the probability order break by token id). */
#ifndef SB_SAMPLER_H
#define SB_SAMPLER_H

#include <stdint.h>

#include "engine/rng.h"

typedef struct {
    int32_t vocab_size;
    double temperature;      /* 0 = greedy */
    double top_p;            /* (0, 1]; 1 = sample from the whole distribution */
    sb_rng rng;
    float *probs;            /* [vocab_size] scratch */
    int32_t *order;          /* [vocab_size] scratch: candidate ids, most probable first */
} sb_sampler;

/* temperature in [0, 100], top_p in (0, 1]; SB_ERR_USAGE naming the value otherwise. */
int sb_sampler_init(sb_sampler *s, int32_t vocab_size, double temperature, double top_p, uint64_t seed);
void sb_sampler_free(sb_sampler *s);

/* Index of the largest x (the first one on ties). n >= 1. */
int32_t sb_sampler_argmax(const float *x, int32_t n);

/* The distribution the sampler draws from: softmax(logits / T) restricted to the smallest
 * set of most probable tokens whose mass reaches top_p, renormalised; other tokens get 0.
 * Greedy puts 1 on the argmax. probs_out [vocab_size] may alias s->probs. Returns the size
 * of the kept set. */
int32_t sb_sampler_probs(sb_sampler *s, const float *logits /* [V] */, float *probs_out /* [V] */);

/* Draw the next token from logits [V] (not modified). Greedy draws no random number. */
int32_t sb_sampler_sample(sb_sampler *s, const float *logits /* [V] */);

#endif
