/* dense: every token keeps its KV at its absolute position; the cache only grows. */
#include "engine/common.h"
#include "engine/policy.h"

static int64_t dense_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    (void)p;
    return capacity_hint > 16 ? capacity_hint : 16;
}

static int dense_init(sb_kv_state *s, int64_t capacity_hint) {
    s->n_moving = 0;
    return sb_kv_state_resize(s, dense_initial_slots(&s->spec, capacity_hint));
}

static int64_t dense_reserve(sb_kv_state *s) {
    int64_t t = s->n_fed;
    if (t >= s->n_slots) {
        /* geometric growth keeps the amortised cost per token constant */
        int64_t grow = s->n_slots < ((int64_t)1 << 40) ? s->n_slots * 2 : s->n_slots + 1;
        if (sb_kv_state_resize(s, grow)) return -1;
    }
    s->slot_token[t] = t;
    s->slot_pos[t] = t;
    s->query_pos = t;
    s->n_fed++;
    s->n_filled++;
    return t;
}

static void dense_evict(sb_kv_state *s) { (void)s; }

const sb_kv_policy sb_kv_policy_dense = {
    .name = "dense",
    .initial_slots = dense_initial_slots,
    .init = dense_init,
    .reserve = dense_reserve,
    .evict = dense_evict,
    .rebuild = NULL,
    .free = NULL,
};
