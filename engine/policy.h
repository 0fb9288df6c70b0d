/* KV-cache policies: one registry of plug-ins, each in its own file (engine/policy_*.c).
 *
 * A policy decides which past tokens a query sees and at which positional distance
 * (see shared/reference/streamingllm.md, appendix). The registered specs:
 *   dense              every past token, absolute positions, unbounded cache
 *   window:W           = sinks:0:W
 *   sinks:K:W          K initial tokens + W recent (StreamingLLM)
 *   sinks:K:W:newline  K newline tokens are prefixed to the stream and act as the sinks
 *   learned:W          the model's <sink> token is prefixed and kept: sinks:1:W over [sink]+stream
 *   learned:K:W        the <sink> and the stream's first K-1 tokens: sinks:K:W over [sink]+stream
 *   recompute:W        each token is predicted by a fresh dense pass over the last W tokens
 *   h2o:K:H:W          K initial + H heavy hitters (accumulated attention, per layer) + W recent
 *   tova:C             C tokens; each step evicts the one the current query attends to least
 *                      (per layer, averaged over heads)
 *
 * A policy (sb_policy_def) owns its parser, model check, cache capacity, prefix tokens, an
 * optional exact-mode plan (how the batched evaluator computes it) and its decode-mode
 * hooks over a small shared state (sb_kv_state): for each step, into which cache slot the
 * new token goes, at which position the query and every filled slot sit, which slots are
 * freed after the step, and optionally what the step's attention was (observe).
 *
 * Positions live in a "frame" where as few slots as possible move between steps, so a
 * decoder rotates a key once and re-rotates only the slots that moved. Score-based policies
 * (h2o, tova) assign positions inside the cache as StreamingLLM does (the kept tokens in
 * order, the query after them); when a token leaves, the tokens before it move up by one,
 * so the distances are the cache-index distances and the most recent keys stay put. */
#ifndef SB_POLICY_H
#define SB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

typedef enum { SB_PREFIX_NONE, SB_PREFIX_SINK_TOKEN, SB_PREFIX_NEWLINE } sb_prefix_kind;

struct sb_policy_def;

typedef struct {
    const struct sb_policy_def *def; /* the registered policy; NULL for an empty spec */
    int64_t n_sinks;          /* K: initial tokens kept (sinks, learned = 1, h2o) */
    int64_t window;           /* W recent tokens (recompute: window length; tova: capacity C) */
    int64_t heavy;            /* H heavy hitters (h2o) */
    sb_prefix_kind prefix;    /* learned: <sink> token prefixed; newline: K newline tokens prefixed */
    char spec[64];            /* canonical spec string, e.g. "sinks:4:508" */
} sb_policy_spec;

/* Largest K, H or W accepted, so K + H + W + chunk sizes never overflow. */
#define SB_POLICY_MAX_LEN ((int64_t)1 << 31)
/* W meaning "every earlier token" (dense), small enough that W + T never overflows. */
#define SB_POLICY_W_ALL ((int64_t)1 << 50)

/* How the batched (exact) evaluator computes a policy. */
typedef enum {
    SB_EXACT_BAND,            /* K sinks at cache indices 0..K-1 + a band of W recent keys at their
                                 true distance (dense: K = 0, W = SB_POLICY_W_ALL or the model's
                                 sliding window), over prefix + stream */
    SB_EXACT_FRESH_WINDOW,    /* a fresh dense pass over the last W tokens at positions 0..W-1 */
} sb_exact_kind;
typedef struct {
    sb_exact_kind kind;
    int64_t K, W;
} sb_exact_plan;

/* ------------------------------------------------------------ decode-mode state */

/* State shared by a plug-in and the decoder. Token indices count every token fed to the
 * current cache (prefix included; recompute restarts at 0 for each rebuilt window).
 * A per-layer policy keeps one slot map per layer (n_maps = n_layers); every map holds the
 * same number of tokens and the query sits at the same position in all of them. */
typedef struct {
    sb_policy_spec spec;
    int n_maps;             /* 1, or the model's layers for a per-layer policy */
    int n_heads;            /* the model's query heads (observe receives [n_heads][n]) */
    int64_t n_slots;        /* slots allocated per map; dense grows it inside reserve */
    int64_t *slot_token;    /* [n_maps][n_slots] token index held by each slot, -1 when free */
    int64_t *slot_pos;      /* [n_maps][n_slots] frame position of each filled slot this step */
    int64_t *new_slot;      /* [n_maps] slot of the token reserved last */
    int64_t query_pos;      /* frame position of the current query */
    int64_t n_moving;       /* slots [0, n_moving) may change position between steps: the
                               decoder keeps a pre-RoPE copy of their keys and re-rotates them */
    int64_t n_fed;          /* tokens fed to the current cache */
    int64_t n_filled;       /* slots of each map currently holding a token */
    double *score;          /* [n_maps][n_slots] policy scores (observe-based policies), else NULL */
} sb_kv_state;

/* Map m's arrays. */
static inline int64_t *sb_kv_tokens(const sb_kv_state *s, int m) { return s->slot_token + (size_t)m * s->n_slots; }
static inline int64_t *sb_kv_pos(const sb_kv_state *s, int m) { return s->slot_pos + (size_t)m * s->n_slots; }

/* ------------------------------------------------------------ a policy */

typedef struct sb_policy_def {
    const char *name;         /* the spec's first field */
    const char *syntax;       /* e.g. "sinks:K:W[:newline]", for messages and usage */
    /* Fields after the name: n of them, [beg[i], end[i]). Fill p's numbers and p->spec;
     * return NULL, or the reason the fields are wrong. */
    const char *(*parse)(sb_policy_spec *p, int n, const char *const *beg, const char *const *end);
    /* Limits of a (possibly hand-built) spec and what the model must have; NULL = none
     * beyond the common ones. Errors are usage errors naming p->spec. */
    int (*check)(const sb_policy_spec *p, const sb_model_config *c);
    /* Tokens the cache keeps between steps once full, prefix included (the token being
     * processed not counted); 0 = unbounded. */
    int64_t (*capacity)(const sb_policy_spec *p);
    /* The cache size the paper's tables label the policy with (K+W, W, ...); 0 = unbounded. */
    int64_t (*cache_size)(const sb_policy_spec *p);
    /* Short label for tables and figures ("4+508", "sink+511", "H2O 4+252+256"). */
    void (*label)(const sb_policy_spec *p, char *out, size_t cap);
    /* Tokens prefixed to the stream (NULL = none) and their ids. */
    int64_t (*prefix_len)(const sb_policy_spec *p);
    void (*prefix_tokens)(const sb_policy_spec *p, const sb_model_config *c, int32_t *out);
    /* The exact-mode plan; NULL: the policy runs in decode mode only. */
    void (*exact_plan)(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out);
    /* Slots whose keys can change position between steps (the decoder keeps pre-RoPE copies
     * of slots [0, moving)); NULL = none. */
    int64_t (*moving)(const sb_policy_spec *p);
    bool per_layer;           /* one slot map per layer */
    bool observes;            /* needs observe() every step (the attention of every layer) */

    /* decode mode. Slots init allocates for capacity_hint tokens (prefix included): a short
     * stream never needs the whole ring. */
    int64_t (*initial_slots)(const sb_policy_spec *p, int64_t capacity_hint);
    /* Set up s (spec, n_maps, n_heads, n_moving filled in, arrays empty); capacity_hint as
     * above. */
    int (*init)(sb_kv_state *s, int64_t capacity_hint);
    /* Place token s->n_fed: set new_slot[m] of every map (returns map 0's slot, or -1 with
     * an error set), query_pos and slot_pos of every filled slot; increment n_fed. May grow
     * n_slots (dense): the caller then grows its KV buffers to n_slots. */
    int64_t (*reserve)(sb_kv_state *s);
    /* The step's attention at one layer: probs[h * n + i] is the probability query head h
     * gave the key of slot slots[i] (map `layer`'s slots for a per-layer policy). */
    void (*observe)(sb_kv_state *s, int layer, const float *probs, const int64_t *slots, int n);
    /* After the step of the last reserved token: free the slots that leave the cache. */
    void (*evict)(sb_kv_state *s);
    /* Called before each stream token (NULL for policies that keep their cache): empties the
     * cache and returns how many of the most recent stream tokens (before the new one) must
     * be re-fed, without logits, before it. */
    int64_t (*rebuild)(sb_kv_state *s, int64_t stream_pos);
    void (*free)(sb_kv_state *s);
} sb_policy_def;

/* The registry (engine/policy_registry.c): NULL-terminated. */
extern const sb_policy_def *const sb_policy_registry[];

/* ------------------------------------------------------------ specs */

int sb_policy_parse(const char *s, sb_policy_spec *out);            /* SB_ERR_USAGE with a clear message */
/* Common limits, the policy's own check and the model's tokens (learned needs sink_token_id,
 * ...). */
int sb_policy_check_model(const sb_policy_spec *p, const sb_model_config *c);
/* True when p is the registered policy `name` ("sinks", "dense", ...): for reports that
 * compare particular policies, never for computing one. */
bool sb_policy_is(const sb_policy_spec *p, const char *name);

int64_t sb_policy_capacity(const sb_policy_spec *p);
int64_t sb_policy_cache_size(const sb_policy_spec *p);
void sb_policy_label(const sb_policy_spec *p, char *out, size_t cap);
/* Number of tokens prefixed to the stream (0, 1 for learned, K for newline). */
int64_t sb_policy_prefix_len(const sb_policy_spec *p);
/* Write the prefix tokens (sb_policy_prefix_len of them) into out. Call after check_model. */
void sb_policy_prefix_tokens(const sb_policy_spec *p, const sb_model_config *c, int32_t *out);
/* The exact-mode plan; false when the policy has none (it runs in decode mode). */
bool sb_policy_exact_plan(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out);
/* "dense | window:W | ..." from the registry, for usage texts. */
const char *sb_policy_syntax_list(void);

/* ------------------------------------------------------------ decode-mode state */

/* Init s for spec p (s is zeroed first); n_layers and n_heads of the model. */
int sb_kv_state_init(sb_kv_state *s, const sb_policy_spec *p, int n_layers, int n_heads, int64_t capacity_hint);
void sb_kv_state_free(sb_kv_state *s);
/* Slots the state starts with for capacity_hint tokens. */
int64_t sb_kv_state_initial_slots(const sb_policy_spec *p, int64_t capacity_hint);
/* Maps a policy keeps for a model of n_layers; slots whose keys move. */
int sb_policy_maps(const sb_policy_spec *p, int n_layers);
int64_t sb_policy_moving_slots(const sb_policy_spec *p);

/* Helpers shared by the plug-ins: (re)allocate the slot arrays of every map, marking new
 * slots free; clear every map. */
int sb_kv_state_resize(sb_kv_state *s, int64_t n_slots);
void sb_kv_state_clear(sb_kv_state *s);
/* Rank frame (score-based policies): free slot `slot` of map m and move the tokens before it
 * up by one position, so every distance stays the cache-index distance. */
void sb_kv_rank_evict(sb_kv_state *s, int m, int64_t slot);
/* Rank frame: put token s->n_fed into a free slot of every map at the position after the
 * last query (growing the arrays up to max_slots); returns map 0's slot or -1. */
int64_t sb_kv_rank_reserve(sb_kv_state *s, int64_t max_slots);

#endif
