/* Decode mode: one token per forward with a real slot cache managed by a policy plug-in,
 * like a deployed model. Also used by the generate/stream/latency commands.
 *
 * Keys of recent tokens are rotated once at their absolute position; the query is rotated
 * at its absolute position; only the K sink keys move (re-rotated each step from a
 * pre-RoPE copy), so memory and time per token stay flat over millions of steps.
 * The policy's prefix (learned <sink> token, newline sinks) is fed by sb_decoder_new. */
#ifndef SB_DECODER_H
#define SB_DECODER_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/policy.h"

typedef struct sb_decoder sb_decoder;
/* A decoder on backend b (which must outlive it); max_tokens: capacity hint for dense. */
int sb_decoder_new_on(sb_decoder **d, sb_backend *b, const sb_policy_spec *p, int64_t max_tokens);
/* The same on a cpu backend of its own. */
int sb_decoder_new(sb_decoder **d, const sb_model *m, const sb_policy_spec *p, int64_t max_tokens);
/* Receive every layer's attention probabilities of each step (attention maps); NULL stops. */
void sb_decoder_set_observer(sb_decoder *d, sb_attn_observer_fn fn, void *user);
/* Feed the next token; logits [V] (may be NULL) receive the prediction of the token after it.
 * An id outside [0, vocab) is an SB_ERR naming the id and its position. */
int sb_decoder_step(sb_decoder *d, int32_t token, float *logits /* [V], may be NULL */);
int64_t sb_decoder_tokens(const sb_decoder *d);     /* tokens fed so far (excluding prefix) */
uint64_t sb_decoder_cache_bytes(const sb_decoder *d);
void sb_decoder_free(sb_decoder *d);

/* Host bytes sb_decoder_new allocates on the cpu backend (cache, raw sink keys, scratch)
 * for capacity hint max_tokens;
 * dense grows beyond it when fed more. UINT64_MAX on overflow. */
uint64_t sb_decoder_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t max_tokens);
/* Filled cache slots (tokens the next query will see besides itself). */
int64_t sb_decoder_cache_len(const sb_decoder *d);
/* The policy's state (which token each slot of each map holds), for tests and tools. */
const sb_kv_state *sb_decoder_kv_state(const sb_decoder *d);

#endif
