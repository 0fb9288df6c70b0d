#include "engine/decoder.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

struct sb_decoder {
    const sb_model *m;
    sb_backend *b;
    sb_backend *own_b;         /* the cpu backend made by sb_decoder_new, else NULL */
    const sb_policy_def *pol;
    sb_kv_state st;
    sb_slots *cache;
    int64_t cache_slots;       /* slots the backend's cache has */
    int64_t n_stream;          /* stream tokens fed (prefix excluded) */
    int32_t *history;          /* rebuilding policies (recompute): ring of the last stream tokens */
    int64_t hist_cap;          /* grows (before the ring first wraps) up to hist_max */
    int64_t hist_max;          /* the tokens a rebuild re-feeds, at most (its capacity) */
    sb_attn_observer_fn obs;   /* the caller's observer */
    void *obs_user;
};

/* Tokens sb_decoder_new plans for: the hint plus the prefix. */
static int64_t capacity_for(const sb_policy_spec *p, int64_t max_tokens) {
    int64_t hint = max_tokens > 0 ? max_tokens : 0;
    if (hint > SB_POLICY_MAX_LEN * 4) hint = SB_POLICY_MAX_LEN * 4;
    return hint + sb_policy_prefix_len(p);
}

/* Tokens of history a rebuilding policy keeps: its capacity, but no more than the hint at
 * first (it grows). */
static int64_t history_max(const sb_policy_spec *p) {
    return p->def && p->def->rebuild ? sb_policy_capacity(p) + 1 : 0;
}
static int64_t history_len(const sb_policy_spec *p, int64_t capacity) {
    int64_t max = history_max(p);
    if (max == 0) return 0;
    int64_t n = capacity > 16 ? capacity : 16;
    return n < max ? n : max;
}

uint64_t sb_decoder_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t max_tokens) {
    if (!p->def) return UINT64_MAX;
    extern const sb_backend_ops sb_backend_cpu_ops;
    int64_t cap = capacity_for(p, max_tokens);
    int64_t slots = sb_kv_state_initial_slots(p, cap);
    int maps = sb_policy_maps(p, c->n_layers);
    uint64_t cache = sb_backend_cpu_ops.slots_bytes(c, slots, sb_policy_moving_slots(p), maps);
    if (cache == UINT64_MAX) return UINT64_MAX;
    /* policy state arrays (token and position per slot and map, scores of score-based
     * policies) and the recompute history */
    size_t per_slot = 2 * sizeof(int64_t) + (p->def->observes ? sizeof(double) : 0);
    size_t extra = (size_t)slots * (size_t)maps * per_slot + (size_t)history_len(p, cap) * sizeof(int32_t) +
                   sizeof(sb_decoder);
    return cache > UINT64_MAX - extra ? UINT64_MAX : cache + extra;
}

/* The step's attention goes to the policy (score-based ones) and to the caller. */
static void observe(void *user, int layer, const float *probs, const int64_t *slots, int n) {
    sb_decoder *d = user;
    if (d->pol->observe) d->pol->observe(&d->st, layer, probs, slots, n);
    if (d->obs) d->obs(d->obs_user, layer, probs, slots, n);
}

/* Place one token with the policy and run the forward. */
static int feed_one(sb_decoder *d, int32_t token, float *logits) {
    if (d->pol->reserve(&d->st) < 0) return SB_ERR;
    if (d->st.n_slots > d->cache_slots) {
        int rc = d->b->ops->slots_grow(d->cache, d->st.n_slots);
        if (rc) return rc;
        d->cache_slots = d->st.n_slots;
    }
    bool watch = d->pol->observe || d->obs;
    int rc = d->b->ops->token_forward(d->cache, &d->st, token, logits, watch ? observe : NULL, d);
    if (rc) return rc;
    d->pol->evict(&d->st);
    return SB_OK;
}

int sb_decoder_new_on(sb_decoder **out, sb_backend *b, const sb_policy_spec *p, int64_t max_tokens) {
    *out = NULL;
    const sb_model *m = b->m;
    int rc = sb_policy_check_model(p, &m->cfg);
    if (rc) return rc;
    sb_decoder *d = calloc_check(1, sizeof *d);
    d->m = m;
    d->b = b;
    d->pol = p->def;
    int64_t cap = capacity_for(p, max_tokens);
    rc = sb_kv_state_init(&d->st, p, m->cfg.n_layers, m->cfg.n_heads, cap);
    if (rc) {
        free(d);
        return rc;
    }
    rc = b->ops->slots_new(b, &d->cache, d->st.n_slots, d->st.n_moving, d->st.n_maps);
    if (rc) {
        sb_kv_state_free(&d->st);
        free(d);
        return rc;
    }
    d->cache_slots = d->st.n_slots;
    d->hist_cap = history_len(p, cap);
    d->hist_max = history_max(p);
    if (d->hist_cap > 0) {
        size_t bytes;
        if (!sb_mul_size((size_t)d->hist_cap, sizeof(int32_t), &bytes) || !(d->history = malloc(bytes))) {
            sb_decoder_free(d);
            return sb_error("policy '%s': out of memory for the token history", p->spec);
        }
    }
    int64_t n_prefix = sb_policy_prefix_len(p);
    if (n_prefix > 0) {
        int32_t *pre = malloc_check((size_t)n_prefix * sizeof(int32_t));
        sb_policy_prefix_tokens(p, &m->cfg, pre);
        for (int64_t i = 0; i < n_prefix && !rc; i++) rc = feed_one(d, pre[i], NULL);
        free(pre);
        if (rc) {
            sb_decoder_free(d);
            return rc;
        }
    }
    *out = d;
    return SB_OK;
}

int sb_decoder_new(sb_decoder **out, const sb_model *m, const sb_policy_spec *p, int64_t max_tokens) {
    *out = NULL;
    sb_backend *b;
    int rc = sb_backend_open(&b, m, NULL);
    if (rc) return rc;
    rc = sb_decoder_new_on(out, b, p, max_tokens);
    if (rc) {
        sb_backend_close(b);
        return rc;
    }
    (*out)->own_b = b;
    return SB_OK;
}

void sb_decoder_set_observer(sb_decoder *d, sb_attn_observer_fn fn, void *user) {
    d->obs = fn;
    d->obs_user = user;
}

int sb_decoder_step(sb_decoder *d, int32_t token, float *logits) {
    const sb_model_config *c = &d->m->cfg;
    if (token < 0 || token >= c->vocab_size)
        return sb_error("token id %ld at position %lld is outside the vocabulary [0, %d)", (long)token,
                        (long long)d->n_stream, c->vocab_size);
    if (d->pol->rebuild) {
        /* a fresh cache: re-feed the tokens of the window before this one */
        int64_t r = d->pol->rebuild(&d->st, d->n_stream);
        for (int64_t i = d->n_stream - r; i < d->n_stream; i++) {
            int rc = feed_one(d, d->history[i % d->hist_cap], NULL);
            if (rc) return rc;
        }
    }
    int rc = feed_one(d, token, logits);
    if (rc) return rc;
    if (d->hist_cap > 0) {
        if (d->n_stream == d->hist_cap && d->hist_cap < d->hist_max) {
            /* not wrapped yet: the history is still linear, so it can simply grow */
            int64_t cap = d->hist_cap * 2 < d->hist_max ? d->hist_cap * 2 : d->hist_max;
            int32_t *h = realloc(d->history, (size_t)cap * sizeof(int32_t));
            if (!h) return sb_error("policy '%s': out of memory for the token history", d->st.spec.spec);
            d->history = h;
            d->hist_cap = cap;
        }
        d->history[d->n_stream % d->hist_cap] = token;
    }
    d->n_stream++;
    return SB_OK;
}

int64_t sb_decoder_tokens(const sb_decoder *d) { return d->n_stream; }

int64_t sb_decoder_cache_len(const sb_decoder *d) { return d->st.n_filled; }

const sb_kv_state *sb_decoder_kv_state(const sb_decoder *d) { return &d->st; }

uint64_t sb_decoder_cache_bytes(const sb_decoder *d) { return d->b->ops->slots_kv_bytes(d->cache); }

void sb_decoder_free(sb_decoder *d) {
    if (!d) return;
    if (d->cache) d->b->ops->slots_free(d->cache);
    sb_kv_state_free(&d->st);
    free(d->history);
    sb_backend_close(d->own_b);
    free(d);
}
