/* recompute:W: before every stream token the cache is emptied and the W-1 tokens before it
 * are fed again at positions 0.., so the token is predicted by a fresh dense pass over the
 * last W tokens (all their states recomputed inside that window). */
#include "engine/common.h"
#include "engine/policy.h"

/* The window never holds more than W tokens, nor more than the stream has. */
static int64_t recompute_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    int64_t n = capacity_hint > 16 ? capacity_hint : 16;
    return n < p->window ? n : p->window;
}

static int recompute_init(sb_kv_state *s, int64_t capacity_hint) {
    s->n_moving = 0;
    return sb_kv_state_resize(s, recompute_initial_slots(&s->spec, capacity_hint));
}

static int64_t recompute_reserve(sb_kv_state *s) {
    int64_t t = s->n_fed;
    if (t >= s->spec.window) {
        sb_error("cache policy '%s': window of %lld tokens overrun", s->spec.spec, (long long)s->spec.window);
        return -1;
    }
    if (t >= s->n_slots) {
        int64_t grow = s->n_slots * 2 < s->spec.window ? s->n_slots * 2 : s->spec.window;
        if (sb_kv_state_resize(s, grow)) return -1;
    }
    s->slot_token[t] = t;
    s->slot_pos[t] = t;
    s->query_pos = t;
    s->n_fed++;
    s->n_filled++;
    return t;
}

static void recompute_evict(sb_kv_state *s) { (void)s; }

static int64_t recompute_rebuild(sb_kv_state *s, int64_t stream_pos) {
    sb_kv_state_clear(s);
    return stream_pos < s->spec.window - 1 ? stream_pos : s->spec.window - 1;
}

const sb_kv_policy sb_kv_policy_recompute = {
    .name = "recompute",
    .initial_slots = recompute_initial_slots,
    .init = recompute_init,
    .reserve = recompute_reserve,
    .evict = recompute_evict,
    .rebuild = recompute_rebuild,
    .free = NULL,
};
