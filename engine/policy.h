/* KV-cache policies: spec strings and the decode-mode plug-ins.
 *
 * A policy decides which past tokens a query sees and at which positional distance
 * (see shared/reference/streamingllm.md, appendix). Specs:
 *   dense              every past token, absolute positions, unbounded cache
 *   window:W           = sinks:0:W
 *   sinks:K:W          K initial tokens + W recent (StreamingLLM)
 *   sinks:K:W:newline  K newline tokens are prefixed to the stream and act as the sinks
 *   learned:W          the model's <sink> token is prefixed and kept: sinks:1:W over [sink]+stream
 *   recompute:W        each token is predicted by a fresh dense pass over the last W tokens
 *
 * Decode mode drives a plug-in (sb_kv_policy): a table of functions over a small shared
 * state (sb_kv_state) that says, for each step, into which cache slot the new token goes,
 * at which position the query and every filled slot sit, and which slots are freed after
 * the step. Positions live in a "frame" where only sink slots move, so the decoder rotates
 * a recent key once and re-rotates just the K sink keys per step. */
#ifndef SB_POLICY_H
#define SB_POLICY_H

#include <stdint.h>

#include "engine/model.h"

typedef enum { SB_POLICY_DENSE, SB_POLICY_SINKS, SB_POLICY_RECOMPUTE } sb_policy_kind;
typedef enum { SB_PREFIX_NONE, SB_PREFIX_SINK_TOKEN, SB_PREFIX_NEWLINE } sb_prefix_kind;
typedef struct {
    sb_policy_kind kind;      /* window:W and learned:W parse into SINKS */
    int64_t n_sinks;          /* K */
    int64_t window;           /* W recent tokens (recompute: window length) */
    sb_prefix_kind prefix;    /* learned: <sink> token prefixed; newline: K newline tokens prefixed */
    char spec[64];            /* canonical spec string, e.g. "sinks:4:508" */
} sb_policy_spec;

/* Largest K or W accepted, so K + W + chunk sizes never overflow. */
#define SB_POLICY_MAX_LEN ((int64_t)1 << 31)

int sb_policy_parse(const char *s, sb_policy_spec *out);            /* SB_ERR_USAGE with a clear message */
int sb_policy_check_model(const sb_policy_spec *p, const sb_model_config *c); /* learned needs sink_token_id, ... */

/* The prefix part of sb_policy_check_model (the model has the tokens the prefix needs). */
int sb_policy_check_prefix(const sb_policy_spec *p, const sb_model_config *c);
/* Number of tokens prefixed to the stream (0, 1 for learned, K for newline). */
int64_t sb_policy_prefix_len(const sb_policy_spec *p);
/* Write the prefix tokens (sb_policy_prefix_len of them) into out. Call after check_model. */
void sb_policy_prefix_tokens(const sb_policy_spec *p, const sb_model_config *c, int32_t *out);

/* ------------------------------------------------------------ decode-mode plug-ins */

/* State shared by a plug-in and the decoder. Token indices count every token fed to the
 * current cache (prefix included; recompute restarts at 0 for each rebuilt window). */
typedef struct {
    sb_policy_spec spec;
    int64_t n_slots;        /* slots allocated; dense grows it inside reserve */
    int64_t *slot_token;    /* [n_slots] token index held by each slot, -1 when free */
    int64_t *slot_pos;      /* [n_slots] frame position of each filled slot for the current step */
    int64_t query_pos;      /* frame position of the current query */
    int64_t n_moving;       /* slots [0, n_moving) change position between steps (sinks): the
                               decoder rotates their keys from a pre-RoPE copy */
    int64_t n_fed;          /* tokens fed to the current cache */
    int64_t n_filled;       /* slots currently holding a token */
} sb_kv_state;

typedef struct {
    const char *name;
    /* Slots init allocates for capacity_hint tokens (prefix included): a short stream never
     * needs the whole K+W+1 ring. */
    int64_t (*initial_slots)(const sb_policy_spec *p, int64_t capacity_hint);
    /* Set up s for s->spec (already filled in); capacity_hint as for initial_slots. */
    int (*init)(sb_kv_state *s, int64_t capacity_hint);
    /* Place token s->n_fed: returns its slot (or -1 with an error set), updates query_pos and
     * slot_pos of every filled slot, increments n_fed. May grow n_slots (dense): the caller
     * then grows its KV buffers to n_slots. */
    int64_t (*reserve)(sb_kv_state *s);
    /* After the step of the last reserved token: free the slots that leave the cache. */
    void (*evict)(sb_kv_state *s);
    /* Called before each stream token (NULL for policies that keep their cache): empties the
     * cache and returns how many of the most recent stream tokens (before the new one) must
     * be re-fed, without logits, before it. */
    int64_t (*rebuild)(sb_kv_state *s, int64_t stream_pos);
    void (*free)(sb_kv_state *s);
} sb_kv_policy;

extern const sb_kv_policy sb_kv_policy_dense;
extern const sb_kv_policy sb_kv_policy_sinks;
extern const sb_kv_policy sb_kv_policy_recompute;

/* The plug-in for a spec. */
const sb_kv_policy *sb_kv_policy_for(const sb_policy_spec *p);
/* Init s for spec p with its plug-in (s is zeroed first). */
int sb_kv_state_init(sb_kv_state *s, const sb_policy_spec *p, int64_t capacity_hint);
void sb_kv_state_free(sb_kv_state *s);

/* Helpers shared by the plug-ins: (re)allocate the slot arrays, marking new slots free. */
int sb_kv_state_resize(sb_kv_state *s, int64_t n_slots);
void sb_kv_state_clear(sb_kv_state *s);

#endif
