/* sinks:K:W (StreamingLLM), its newline variant sinks:K:W:newline, and window:W = sinks:0:W:
 * K sink slots plus a ring of W+1 recent slots (the W kept and the current token).
 *
 * Frame: a recent token sits at its absolute index t and the query at t, so recent keys are
 * rotated once. The reference places sinks at cache indices 0..K-1 and the query at
 * min(t, K+W), i.e. sink j is min(t, K+W) - j before the query: in this frame that is
 * position j + max(0, t-K-W), the only positions that change from step to step. */
#include <inttypes.h>
#include <stdio.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "engine/policy_util.h"

const char *sb_parse_window(const char *b, const char *e, int64_t *w) {
    if (!sb_parse_len(b, e, w)) return "W must be a whole number";
    if (*w < 1) return "W must be at least 1";
    return NULL;
}

static const char *sinks_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    if (n != 2 && n != 3) return "expected sinks:K:W or sinks:K:W:newline";
    if (!sb_parse_len(b[0], e[0], &p->n_sinks)) return "K must be a whole number";
    const char *why = sb_parse_window(b[1], e[1], &p->window);
    if (why) return why;
    if (n == 3 && !sb_field_is(b[2], e[2], "newline")) return "the only variant is :newline";
    if (n == 3) p->prefix = SB_PREFIX_NEWLINE;
    snprintf(p->spec, sizeof p->spec, "sinks:%" PRId64 ":%" PRId64 "%s", p->n_sinks, p->window,
             n == 3 ? ":newline" : "");
    return NULL;
}

static const char *window_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    if (n != 1) return "expected one argument W";
    const char *why = sb_parse_window(b[0], e[0], &p->window);
    if (why) return why;
    snprintf(p->spec, sizeof p->spec, "window:%" PRId64, p->window);
    return NULL;
}

static int sinks_check(const sb_policy_spec *p, const sb_model_config *c) {
    int rc = sb_check_fields(p, SB_FIELD_W | SB_FIELD_K | SB_FIELD_PREFIX, "W");
    if (rc) return rc;
    if (p->prefix == SB_PREFIX_SINK_TOKEN) return sb_usage_error("cache policy '%s': a prefix needs a sinks policy", p->spec);
    if (p->prefix == SB_PREFIX_NEWLINE && p->n_sinks > 0 &&
        (c->newline_token_id < 0 || c->newline_token_id >= c->vocab_size))
        return sb_usage_error("policy '%s' needs the model's newline token (newline_token_id), "
                              "and this model has none",
                              p->spec);
    return SB_OK;
}

static int window_check(const sb_policy_spec *p, const sb_model_config *c) {
    if (p->n_sinks != 0 || p->prefix != SB_PREFIX_NONE)
        return sb_usage_error("cache policy '%s': window keeps no sinks", p->spec);
    return sinks_check(p, c);
}

int64_t sb_sinks_capacity(const sb_policy_spec *p) { return p->n_sinks + p->window; }

static void sinks_label(const sb_policy_spec *p, char *out, size_t cap) {
    if (p->prefix == SB_PREFIX_NEWLINE) snprintf(out, cap, "%" PRId64 "(nl)+%" PRId64, p->n_sinks, p->window);
    else snprintf(out, cap, "%" PRId64 "+%" PRId64, p->n_sinks, p->window);
}

static int64_t newline_prefix_len(const sb_policy_spec *p) { return p->prefix == SB_PREFIX_NEWLINE ? p->n_sinks : 0; }

static void newline_prefix_tokens(const sb_policy_spec *p, const sb_model_config *c, int32_t *out) {
    for (int64_t i = 0; i < newline_prefix_len(p); i++) out[i] = c->newline_token_id;
}

void sb_sinks_exact_plan(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out) {
    (void)c;
    *out = (sb_exact_plan){.kind = SB_EXACT_BAND, .K = p->n_sinks, .W = p->window};
}

/* Slots fill in order until the ring wraps, so a short stream (capacity_hint) never needs
 * the whole K+W+1; reserve grows the arrays like dense until that cap. */
int64_t sb_sinks_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    return sb_slots_for_hint(capacity_hint, p->n_sinks + p->window + 1);
}

int64_t sb_sinks_moving(const sb_policy_spec *p) { return p->n_sinks; }

int sb_sinks_init(sb_kv_state *s, int64_t capacity_hint) {
    return sb_kv_state_resize(s, sb_sinks_initial_slots(&s->spec, capacity_hint));
}

int64_t sb_sinks_reserve(sb_kv_state *s) {
    int64_t K = s->spec.n_sinks, W = s->spec.window, t = s->n_fed;
    int64_t slot = t < K ? t : K + (t - K) % (W + 1);
    if (slot >= s->n_slots) {
        int64_t full = K + W + 1, grow = s->n_slots * 2;
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
    s->new_slot[0] = slot;
    s->n_fed++;
    s->n_filled++;
    return slot;
}

void sb_sinks_evict(sb_kv_state *s) {
    int64_t K = s->spec.n_sinks, W = s->spec.window, t = s->n_fed - 1;
    int64_t leaving = t - W; /* the cache keeps [0, K) and [t-W+1, t] */
    if (leaving < K) return;
    int64_t slot = K + (leaving - K) % (W + 1);
    s->slot_token[slot] = -1;
    s->n_filled--;
}

#define SINKS_HOOKS                                                                                          \
    .capacity = sb_sinks_capacity, .cache_size = sb_sinks_capacity, .label = sinks_label,                    \
    .prefix_len = newline_prefix_len, .prefix_tokens = newline_prefix_tokens, .exact_plan = sb_sinks_exact_plan, .moving = sb_sinks_moving, \
    .initial_slots = sb_sinks_initial_slots, .init = sb_sinks_init, .reserve = sb_sinks_reserve,              \
    .evict = sb_sinks_evict

const sb_policy_def sb_policy_sinks = {
    .name = "sinks", .syntax = "sinks:K:W[:newline]", .parse = sinks_parse, .check = sinks_check, SINKS_HOOKS};

const sb_policy_def sb_policy_window = {
    .name = "window", .syntax = "window:W", .parse = window_parse, .check = window_check, SINKS_HOOKS};
