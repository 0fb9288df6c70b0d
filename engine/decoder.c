#include "engine/decoder.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/forward.h"

struct sb_decoder {
    const sb_model *m;
    const sb_kv_policy *pol;
    sb_kv_state st;
    sb_slot_cache cache;
    int64_t n_stream;          /* stream tokens fed (prefix excluded) */
    int32_t *history;          /* recompute: ring of the last W stream tokens */
    int64_t hist_cap;          /* grows (before the ring first wraps) up to W */
    int64_t hist_max;          /* W for recompute, else 0 */
};

/* Tokens sb_decoder_new plans for: the hint plus the prefix. */
static int64_t capacity_for(const sb_policy_spec *p, int64_t max_tokens) {
    int64_t hint = max_tokens > 0 ? max_tokens : 0;
    if (hint > SB_POLICY_MAX_LEN * 4) hint = SB_POLICY_MAX_LEN * 4;
    return hint + sb_policy_prefix_len(p);
}

/* Tokens of history kept for recompute's rebuilds: W, but no more than the hint at first. */
static int64_t history_len(const sb_policy_spec *p, int64_t capacity) {
    if (p->kind != SB_POLICY_RECOMPUTE) return 0;
    int64_t n = capacity > 16 ? capacity : 16;
    return n < p->window ? n : p->window;
}

uint64_t sb_decoder_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t max_tokens) {
    const sb_kv_policy *pol = sb_kv_policy_for(p);
    if (!pol) return UINT64_MAX;
    int64_t cap = capacity_for(p, max_tokens);
    int64_t slots = pol->initial_slots(p, cap);
    int64_t n_moving = p->kind == SB_POLICY_SINKS ? p->n_sinks : 0;
    size_t cache = sb_slot_cache_bytes(c, slots, n_moving), total;
    if (!cache) return UINT64_MAX;
    /* policy state arrays and the recompute history */
    size_t extra = (size_t)slots * 2 * sizeof(int64_t) + (size_t)history_len(p, cap) * sizeof(int32_t) +
                   sizeof(sb_decoder);
    if (!sb_add_size(cache, extra, &total)) return UINT64_MAX;
    return total;
}

/* Place one token with the policy and run the forward. */
static int feed_one(sb_decoder *d, int32_t token, float *logits) {
    int64_t slot = d->pol->reserve(&d->st);
    if (slot < 0) return SB_ERR;
    if (d->st.n_slots > d->cache.n_slots) {
        int rc = sb_slot_cache_grow(&d->cache, d->m, d->st.n_slots);
        if (rc) return rc;
    }
    sb_forward_token(logits, &d->cache, d->m, &d->st, slot, token);
    d->pol->evict(&d->st);
    return SB_OK;
}

int sb_decoder_new(sb_decoder **out, const sb_model *m, const sb_policy_spec *p, int64_t max_tokens) {
    *out = NULL;
    int rc = sb_policy_check_model(p, &m->cfg);
    if (rc) return rc;
    sb_decoder *d = calloc_check(1, sizeof *d);
    d->m = m;
    d->pol = sb_kv_policy_for(p);
    int64_t cap = capacity_for(p, max_tokens);
    rc = sb_kv_state_init(&d->st, p, cap);
    if (rc) {
        free(d);
        return rc;
    }
    rc = sb_slot_cache_init(&d->cache, m, d->st.n_slots, d->st.n_moving);
    if (rc) {
        sb_kv_state_free(&d->st);
        free(d);
        return rc;
    }
    d->hist_cap = history_len(p, cap);
    d->hist_max = p->kind == SB_POLICY_RECOMPUTE ? p->window : 0;
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

uint64_t sb_decoder_cache_bytes(const sb_decoder *d) { return sb_slot_cache_kv_bytes(&d->cache); }

void sb_decoder_free(sb_decoder *d) {
    if (!d) return;
    sb_slot_cache_free(&d->cache);
    sb_kv_state_free(&d->st);
    free(d->history);
    free(d);
}
