/* h2o:K:H:W, the heavy-hitter oracle (Zhang et al. 2023, "H2O"): K initial tokens, the H
 * tokens with the most accumulated attention, and the W most recent, chosen per layer.
 *
 * A token's score is the attention it has received, summed over heads and over every step
 * since it entered the cache (its own step included). After each step the tokens outside
 * the sinks and the recent window compete for the H places: the one with the lowest score
 * leaves (the oldest on a tie). Positions are cache indices (policy.h, rank frame), so
 * h2o:K:0:W keeps the set of sinks:K:W at the same distances. */
#include <inttypes.h>
#include <stdio.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "engine/policy_util.h"

static const char *h2o_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    if (n != 3) return "expected h2o:K:H:W";
    if (!sb_parse_len(b[0], e[0], &p->n_sinks)) return "K must be a whole number";
    if (!sb_parse_len(b[1], e[1], &p->heavy)) return "H must be a whole number";
    const char *why = sb_parse_window(b[2], e[2], &p->window);
    if (why) return why;
    snprintf(p->spec, sizeof p->spec, "h2o:%" PRId64 ":%" PRId64 ":%" PRId64, p->n_sinks, p->heavy, p->window);
    return NULL;
}

static int h2o_check(const sb_policy_spec *p, const sb_model_config *c) {
    (void)c;
    return sb_check_fields(p, SB_FIELD_W | SB_FIELD_K | SB_FIELD_H, "W");
}

static int64_t h2o_capacity(const sb_policy_spec *p) { return p->n_sinks + p->heavy + p->window; }

static void h2o_label(const sb_policy_spec *p, char *out, size_t cap) {
    snprintf(out, cap, "H2O %" PRId64 "+%" PRId64 "+%" PRId64, p->n_sinks, p->heavy, p->window);
}

static int64_t h2o_slots(const sb_policy_spec *p) { return h2o_capacity(p) + 1; }

static int64_t h2o_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    return sb_slots_for_hint(capacity_hint, h2o_slots(p));
}

static int h2o_init(sb_kv_state *s, int64_t capacity_hint) {
    return sb_kv_state_resize(s, h2o_initial_slots(&s->spec, capacity_hint));
}

static int64_t h2o_reserve(sb_kv_state *s) { return sb_kv_rank_reserve(s, h2o_slots(&s->spec)); }

static void h2o_observe(sb_kv_state *s, int layer, const float *probs, const int64_t *slots, int n) {
    double *score = s->score + (size_t)(s->n_maps > 1 ? layer : 0) * s->n_slots;
    for (int i = 0; i < n; i++) {
        double a = 0.0;
        for (int h = 0; h < s->n_heads; h++) a += probs[(size_t)h * n + i];
        score[slots[i]] += a;
    }
}

static void h2o_evict(sb_kv_state *s) {
    const int64_t K = s->spec.n_sinks, H = s->spec.heavy, last_old = s->n_fed - 1 - s->spec.window;
    bool evicted = false;
    for (int m = 0; m < s->n_maps; m++) {
        const int64_t *tok = sb_kv_tokens(s, m);
        const double *score = s->score + (size_t)m * s->n_slots;
        int64_t count = 0, worst = -1;
        for (int64_t i = 0; i < s->n_slots; i++) {
            if (tok[i] < K || tok[i] > last_old) continue; /* free, a sink or recent */
            count++;
            if (worst < 0 || score[i] < score[worst] || (score[i] == score[worst] && tok[i] < tok[worst])) worst = i;
        }
        if (count > H) {
            sb_kv_rank_evict(s, m, worst);
            evicted = true;
        }
    }
    if (evicted) s->n_filled--;
}

const sb_policy_def sb_policy_h2o = {
    .name = "h2o",
    .syntax = "h2o:K:H:W",
    .parse = h2o_parse,
    .check = h2o_check,
    .capacity = h2o_capacity,
    .cache_size = h2o_capacity,
    .label = h2o_label,
    .moving = h2o_slots, /* any kept token moves when one before it leaves */
    .per_layer = true,
    .observes = true,
    .initial_slots = h2o_initial_slots,
    .init = h2o_init,
    .reserve = h2o_reserve,
    .observe = h2o_observe,
    .evict = h2o_evict,
};
