/* The cpu backend's transformer forward for the two evaluation modes (engine/backend.h
 * wraps it as the `cpu` backend).
 *
 * Chunk forward (exact mode): T consecutive tokens of a stream at positions pos0..pos0+T-1
 * under K sinks + W recent keys (dense: K = 0, W = SB_FORWARD_W_ALL). Per layer it keeps the
 * sink keys/values (positions 0..K-1) and a band of recent ones (the last W + T positions),
 * all rotated at their own position, and runs attention_band_forward.
 *
 * Token forward (decode mode): one token into a slot cache whose layout (which slots are
 * filled, at which positions, which slots move) comes from a policy plug-in state. */
#ifndef SB_FORWARD_H
#define SB_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/cpu/attention.h"
#include "engine/model.h"
#include "engine/policy.h"

/* W meaning "every earlier token" (dense). */
#define SB_FORWARD_W_ALL SB_POLICY_W_ALL

/* Per-row activations of a block; rows = tokens of the chunk (1 in decode mode). */
typedef struct {
    int max_T;
    float *x, *xb, *xb2;       /* [T, C] residual stream, normed inputs of attention / MLP */
    float *q, *k, *v;          /* [T, H*hd], [T, KV*hd], [T, KV*hd] */
    float *att;                /* [T, H*hd] attention output (heads in row order) */
    float *hb, *hb2;           /* [T, F] MLP hidden */
    float *logits;             /* [T, V] */
    float *alibi;              /* [H] slopes (ALiBi only) */
} sb_block_ws;

/* ------------------------------------------------------------ exact mode */

typedef struct {
    const sb_model *m;
    int64_t K, W;
    int64_t band_cap;          /* band rows per layer */
    int64_t band_start;        /* position held by band row 0 */
    int64_t band_len;          /* band rows filled */
    int64_t n_sink;            /* sink rows filled (<= K) */
    float *sink_k, *sink_v;    /* [n_layers][K][kvd] */
    float *band_k, *band_v;    /* [n_layers][band_cap][kvd] */
    sb_block_ws ws;
    float *qb, *qs, *opack;    /* [T*H*hd] queries / outputs packed per kv group */
    float *scratch;            /* attention scratch, one slab per thread */
    int n_threads;             /* slabs in scratch (threads at init) */
    size_t scratch_per_thread; /* floats per slab */
    float *cos_b, *sin_b;      /* [T, rotary_dim/2] tables at the chunk positions */
    float *cos_s, *sin_s;      /* [T, rotary_dim/2] tables at min(t, K+W) */
    int64_t *pos;              /* [T] */
    void *block;               /* the one allocation everything above points into */
    size_t bytes;
} sb_chunk_state;

/* Bytes sb_chunk_state_init allocates; 0 when the sizes overflow. */
size_t sb_chunk_state_bytes(const sb_model_config *c, int64_t K, int64_t W, int max_T, int64_t band_cap);
int sb_chunk_state_init(sb_chunk_state *s, const sb_model *m, int64_t K, int64_t W, int max_T, int64_t band_cap);
/* Forget every stored key (a new stream starting at position 0). */
void sb_chunk_state_reset(sb_chunk_state *s);
void sb_chunk_state_free(sb_chunk_state *s);
/* Forward tokens[T] at positions pos0..pos0+T-1 (continuing the stream: pos0 is the next
 * position after the previous chunk). Rows [logits_from, T) get logits in
 * s->ws.logits[(row - logits_from) * V]. Ids must already be checked. Returns SB_ERR if
 * the chunk does not fit the state. */
int sb_chunk_forward(sb_chunk_state *s, const int32_t *tokens, int T, int64_t pos0, int logits_from);
/* Continue at pos (past the band's end) with an empty band and the sinks kept: the
 * sharded evaluation's warm-up start. */
int sb_chunk_seek(sb_chunk_state *s, int64_t pos);

/* ------------------------------------------------------------ decode mode */

typedef struct {
    const sb_model *m;
    int n_layers;
    int n_maps;                /* slot maps: 1, or one per layer (per-layer policies) */
    size_t kvd;                /* n_kv_heads * head_dim */
    int64_t n_slots;
    float **k, **v;            /* per layer [n_slots, kvd]; keys rotated at the slot's position */
    int64_t n_moving;          /* slots [0, n_moving) move with the frame */
    int64_t n_raw;             /* min(n_moving, n_slots): moving slots allocated so far */
    float **k_raw;             /* per layer [n_raw, kvd] pre-RoPE keys of the moving slots */
    int64_t *raw_pos;          /* [n_maps][n_raw] position the slot's cached key is rotated at */
    /* per-step scratch */
    int64_t *slots;            /* [n_slots] filled slots */
    float *scores;             /* [H * n_slots] */
    float *cos_r, *sin_r;      /* [n_raw + 2, rotary_dim/2]: query, new key, then moving slots */
    /* RoPE rows of recent positions, a ring: position p (ring_hi - ring_n < p <= ring_hi) at
     * row p mod ring_n, each computed once when it first becomes the query's */
    float *ring_cos, *ring_sin;
    int64_t ring_n, ring_hi;
    sb_block_ws ws;            /* one row */
    void *ws_block;            /* allocation behind ws */
} sb_slot_cache;

/* Bytes of a slot cache with n_slots slots of which the first n_moving move. 0 on overflow. */
size_t sb_slot_cache_bytes(const sb_model_config *c, int64_t n_slots, int64_t n_moving, int n_maps);
int sb_slot_cache_init(sb_slot_cache *c, const sb_model *m, int64_t n_slots, int64_t n_moving, int n_maps);
/* Grow to n_slots (dense, or a ring not yet full), keeping the contents. */
int sb_slot_cache_grow(sb_slot_cache *c, int64_t n_slots);
void sb_slot_cache_free(sb_slot_cache *c);
/* Keys + values held (the part that scales with the cache). */
size_t sb_slot_cache_kv_bytes(const sb_slot_cache *c);

/* One token (already placed by the policy: s->query_pos, s->slot_pos and s->new_slot are
 * set for this step). logits [V] may be NULL (then the head is skipped). obs (may be NULL)
 * receives each layer's attention probabilities. */
void sb_forward_token(float *logits, sb_slot_cache *c, const sb_kv_state *s, int32_t token, sb_attn_observer_fn obs,
                      void *obs_user);

#endif
