/* RoPE frequencies with Hugging Face rope scaling (rope_scaling / rope_parameters.rope_type).
 *
 * inv_freq[j] = theta^(-2j/rotary_dim), then per type:
 *   linear:  inv_freq / factor (positions divided by factor);
 *   dynamic: NTK: theta * ((factor * L / orig) - (factor - 1))^(rd / (rd - 2)) for a sequence
 *            of L > orig positions, unscaled otherwise;
 *   llama3:  Llama 3.1: wavelengths above orig/low_freq_factor divided by factor, below
 *            orig/high_freq_factor kept, smoothly interpolated in between.
 * Dynamic scaling depends on the sequence length, which transformers takes as the longest
 * sequence seen so far. Under cache positions a query never sees a position beyond the cache
 * size, so the engine evaluates it at L = max_ctx (= unscaled frequencies): exactly what
 * transformers computes while caches stay within max_position_embeddings. A dense pass longer
 * than that differs from transformers, which rescales every frequency as the text grows. */
#ifndef SB_HF_ROPE_H
#define SB_HF_ROPE_H

#include <stdint.h>

#include "engine/model.h"

/* inv_freq[rotary_dim/2] for a sequence of seq_len positions (only dynamic depends on it). */
void sb_rope_inv_freq(double *inv_freq, const sb_model_config *c, int64_t seq_len);
/* cos/sin[n_pos, rotary_dim/2] at positions pos0.. with the config's frequencies; identical
 * to ops.h rope_table_fill when the config has no scaling. */
void sb_rope_table_fill(float *cos_tab, float *sin_tab, int64_t pos0, int n_pos, const sb_model_config *c);

#endif
