/* sinks:K:W (and window:W = sinks:0:W, learned:W, the newline variant): K sink slots plus a
 * ring of W+1 recent slots (the W kept and the current token).
 *
 * Frame: a recent token sits at its absolute index t and the query at t, so recent keys are
 * rotated once. The reference places sinks at cache indices 0..K-1 and the query at
 * min(t, K+W), i.e. sink j is min(t, K+W) - j before the query: in this frame that is
 * position j + max(0, t-K-W), the only positions that change from step to step. */
#include "engine/common.h"
#include "engine/policy.h"

static int64_t sinks_full_slots(const sb_kv_state *s) { return s->spec.n_sinks + s->spec.window + 1; }

/* Slots fill in order until the ring wraps, so a short stream (capacity_hint) never needs
 * the whole K+W+1; reserve grows the arrays like dense until that cap. */
static int64_t sinks_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    int64_t full = p->n_sinks + p->window + 1, n = capacity_hint > 16 ? capacity_hint : 16;
    return n < full ? n : full;
}

static int sinks_init(sb_kv_state *s, int64_t capacity_hint) {
    s->n_moving = s->spec.n_sinks;
    return sb_kv_state_resize(s, sinks_initial_slots(&s->spec, capacity_hint));
}

static int64_t sinks_reserve(sb_kv_state *s) {
    int64_t K = s->spec.n_sinks, W = s->spec.window, t = s->n_fed;
    int64_t slot = t < K ? t : K + (t - K) % (W + 1);
    if (slot >= s->n_slots) {
        int64_t full = sinks_full_slots(s), grow = s->n_slots * 2;
        if (sb_kv_state_resize(s, grow < full ? grow : full)) return -1;
    }
    if (s->slot_token[slot] >= 0) {
        sb_error("cache policy '%s': slot %lld still in use", s->spec.spec, (long long)slot);
        return -1;
    }
    s->slot_token[slot] = t;
    s->slot_pos[slot] = t;
    s->query_pos = t;
    int64_t shift = t - K - W > 0 ? t - K - W : 0;
    for (int64_t j = 0; j < K && j <= t; j++) s->slot_pos[j] = j + shift;
    s->n_fed++;
    s->n_filled++;
    return slot;
}

static void sinks_evict(sb_kv_state *s) {
    int64_t K = s->spec.n_sinks, W = s->spec.window, t = s->n_fed - 1;
    int64_t leaving = t - W; /* the cache keeps [0, K) and [t-W+1, t] */
    if (leaving < K) return;
    int64_t slot = K + (leaving - K) % (W + 1);
    s->slot_token[slot] = -1;
    s->n_filled--;
}

const sb_kv_policy sb_kv_policy_sinks = {
    .name = "sinks",
    .initial_slots = sinks_initial_slots,
    .init = sinks_init,
    .reserve = sinks_reserve,
    .evict = sinks_evict,
    .rebuild = NULL,
    .free = NULL,
};
