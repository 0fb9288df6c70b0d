/* dense: every token keeps its KV at its absolute position; the cache only grows. */
#include <stdio.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "engine/policy_util.h"

static const char *dense_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    (void)b;
    (void)e;
    if (n != 0) return "dense takes no arguments";
    snprintf(p->spec, sizeof p->spec, "dense");
    return NULL;
}

static int dense_check(const sb_policy_spec *p, const sb_model_config *c) {
    (void)c;
    return sb_check_fields(p, 0, "W");
}

static int64_t dense_capacity(const sb_policy_spec *p) {
    (void)p;
    return 0;
}

static void dense_label(const sb_policy_spec *p, char *out, size_t cap) {
    (void)p;
    snprintf(out, cap, "dense");
}

/* A band of every earlier key, or the model's sliding window (Mistral: keys at distance
 * < sliding_window), which also bounds the stored band. */
static void dense_exact_plan(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out) {
    (void)p;
    *out = (sb_exact_plan){.kind = SB_EXACT_BAND, .K = 0,
                           .W = c->sliding_window > 0 ? (int64_t)c->sliding_window - 1 : SB_POLICY_W_ALL};
}

static int64_t dense_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    (void)p;
    return sb_slots_for_hint(capacity_hint, 0);
}

static int dense_init(sb_kv_state *s, int64_t capacity_hint) {
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
    s->new_slot[0] = t;
    s->n_fed++;
    s->n_filled++;
    return t;
}

static void dense_evict(sb_kv_state *s) { (void)s; }

const sb_policy_def sb_policy_dense = {
    .name = "dense",
    .syntax = "dense",
    .parse = dense_parse,
    .check = dense_check,
    .capacity = dense_capacity,
    .cache_size = dense_capacity,
    .label = dense_label,
    .exact_plan = dense_exact_plan,
    .initial_slots = dense_initial_slots,
    .init = dense_init,
    .reserve = dense_reserve,
    .evict = dense_evict,
};
