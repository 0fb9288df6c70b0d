/* tova:C, token omission via attention (Oren et al. 2024, "Transformers are multi-state
 * RNNs"): the cache holds C tokens; once it holds more, the token the current query attends
 * to least (averaged over heads, the current token included) leaves, per layer (the oldest
 * on a tie). Positions are cache indices (policy.h, rank frame). */
#include <inttypes.h>
#include <stdio.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "engine/policy_util.h"

static const char *tova_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    if (n != 1) return "expected one argument C";
    if (!sb_parse_len(b[0], e[0], &p->window)) return "C must be a whole number";
    if (p->window < 1) return "C must be at least 1";
    snprintf(p->spec, sizeof p->spec, "tova:%" PRId64, p->window);
    return NULL;
}

static int tova_check(const sb_policy_spec *p, const sb_model_config *c) {
    (void)c;
    return sb_check_fields(p, SB_FIELD_W, "C");
}

static int64_t tova_capacity(const sb_policy_spec *p) { return p->window; }

static void tova_label(const sb_policy_spec *p, char *out, size_t cap) { snprintf(out, cap, "TOVA %" PRId64, p->window); }

static int64_t tova_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    return sb_slots_for_hint(capacity_hint, p->window + 1);
}

static int64_t tova_slots(const sb_policy_spec *p) { return p->window + 1; }

static int tova_init(sb_kv_state *s, int64_t capacity_hint) {
    return sb_kv_state_resize(s, tova_initial_slots(&s->spec, capacity_hint));
}

static int64_t tova_reserve(sb_kv_state *s) { return sb_kv_rank_reserve(s, s->spec.window + 1); }

/* Only this step's attention counts: the score is overwritten. */
static void tova_observe(sb_kv_state *s, int layer, const float *probs, const int64_t *slots, int n) {
    double *score = s->score + (size_t)(s->n_maps > 1 ? layer : 0) * s->n_slots;
    for (int i = 0; i < n; i++) {
        double a = 0.0;
        for (int h = 0; h < s->n_heads; h++) a += probs[(size_t)h * n + i];
        score[slots[i]] = a / s->n_heads;
    }
}

static void tova_evict(sb_kv_state *s) {
    if (s->n_filled <= s->spec.window) return;
    for (int m = 0; m < s->n_maps; m++) {
        const int64_t *tok = sb_kv_tokens(s, m);
        const double *score = s->score + (size_t)m * s->n_slots;
        int64_t worst = -1;
        for (int64_t i = 0; i < s->n_slots; i++) {
            if (tok[i] < 0) continue;
            if (worst < 0 || score[i] < score[worst] || (score[i] == score[worst] && tok[i] < tok[worst])) worst = i;
        }
        sb_kv_rank_evict(s, m, worst);
    }
    s->n_filled--;
}

const sb_policy_def sb_policy_tova = {
    .name = "tova",
    .syntax = "tova:C",
    .parse = tova_parse,
    .check = tova_check,
    .capacity = tova_capacity,
    .cache_size = tova_capacity,
    .label = tova_label,
    .moving = tova_slots,
    .per_layer = true,
    .observes = true,
    .initial_slots = tova_initial_slots,
    .init = tova_init,
    .reserve = tova_reserve,
    .observe = tova_observe,
    .evict = tova_evict,
};
