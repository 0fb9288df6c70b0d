/* recompute:W: before every stream token the cache is emptied and the W-1 tokens before it
 * are fed again at positions 0.., so the token is predicted by a fresh dense pass over the
 * last W tokens (all their states recomputed inside that window). */
#include <inttypes.h>
#include <stdio.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "engine/policy_util.h"

static const char *recompute_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    if (n != 1) return "expected one argument W";
    const char *why = sb_parse_window(b[0], e[0], &p->window);
    if (why) return why;
    snprintf(p->spec, sizeof p->spec, "recompute:%" PRId64, p->window);
    return NULL;
}

static int recompute_check(const sb_policy_spec *p, const sb_model_config *c) {
    (void)c;
    return sb_check_fields(p, SB_FIELD_W, "W");
}

/* The W-1 tokens before the current one are all it keeps (re-fed each step). */
static int64_t recompute_capacity(const sb_policy_spec *p) { return p->window - 1; }

static int64_t recompute_cache_size(const sb_policy_spec *p) { return p->window; }

static void recompute_label(const sb_policy_spec *p, char *out, size_t cap) {
    snprintf(out, cap, "recompute %" PRId64, p->window);
}

static void recompute_exact_plan(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out) {
    (void)c;
    *out = (sb_exact_plan){.kind = SB_EXACT_FRESH_WINDOW, .K = 0, .W = p->window};
}

/* The window never holds more than W tokens, nor more than the stream has. */
static int64_t recompute_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    return sb_slots_for_hint(capacity_hint, p->window);
}

static int recompute_init(sb_kv_state *s, int64_t capacity_hint) {
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
    s->new_slot[0] = t;
    s->n_fed++;
    s->n_filled++;
    return t;
}

static void recompute_evict(sb_kv_state *s) { (void)s; }

static int64_t recompute_rebuild(sb_kv_state *s, int64_t stream_pos) {
    sb_kv_state_clear(s);
    return stream_pos < s->spec.window - 1 ? stream_pos : s->spec.window - 1;
}

const sb_policy_def sb_policy_recompute = {
    .name = "recompute",
    .syntax = "recompute:W",
    .parse = recompute_parse,
    .check = recompute_check,
    .capacity = recompute_capacity,
    .cache_size = recompute_cache_size,
    .label = recompute_label,
    .exact_plan = recompute_exact_plan,
    .initial_slots = recompute_initial_slots,
    .init = recompute_init,
    .reserve = recompute_reserve,
    .evict = recompute_evict,
    .rebuild = recompute_rebuild,
};
