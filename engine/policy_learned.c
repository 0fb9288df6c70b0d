/* learned:W: the model's pre-trained <sink> token is prefixed to the stream and kept as the
 * one sink (paper Table 3), i.e. sinks:1:W over [sink] + stream; learned:K:W keeps K initial
 * tokens, the <sink> and the stream's first K-1 (Table 3's "4+1020" of the sink-token model:
 * sinks:K:W over [sink] + stream). The cache plug-in is the sinks one. */
#include <inttypes.h>
#include <stdio.h>

#include "engine/common.h"
#include "engine/policy.h"
#include "engine/policy_util.h"

static const char *learned_parse(sb_policy_spec *p, int n, const char *const *b, const char *const *e) {
    if (n != 1 && n != 2) return "expected W or K:W";
    p->n_sinks = 1;
    if (n == 2 && (!sb_parse_len(b[0], e[0], &p->n_sinks) || p->n_sinks < 1))
        return "K must be a whole number >= 1 (the <sink> itself counts)";
    const char *why = sb_parse_window(b[n - 1], e[n - 1], &p->window);
    if (why) return why;
    p->prefix = SB_PREFIX_SINK_TOKEN;
    if (p->n_sinks == 1) snprintf(p->spec, sizeof p->spec, "learned:%" PRId64, p->window);
    else snprintf(p->spec, sizeof p->spec, "learned:%" PRId64 ":%" PRId64, p->n_sinks, p->window);
    return NULL;
}

static int learned_check(const sb_policy_spec *p, const sb_model_config *c) {
    int rc = sb_check_fields(p, SB_FIELD_W | SB_FIELD_K | SB_FIELD_PREFIX, "W");
    if (rc) return rc;
    if (p->n_sinks < 1 || p->prefix != SB_PREFIX_SINK_TOKEN || p->heavy != 0)
        return sb_usage_error("cache policy '%s': the learned sink comes first among K >= 1 sinks", p->spec);
    if (c->sink_token_id < 0 || c->sink_token_id >= c->vocab_size)
        return sb_usage_error("policy '%s' needs a model with a learned <sink> token (sink_token_id), "
                              "and this model has none",
                              p->spec);
    return SB_OK;
}

static void learned_label(const sb_policy_spec *p, char *out, size_t cap) {
    if (p->n_sinks == 1) snprintf(out, cap, "sink+%" PRId64, p->window);
    else snprintf(out, cap, "sink+%" PRId64 "+%" PRId64, p->n_sinks - 1, p->window);
}

static int64_t learned_prefix_len(const sb_policy_spec *p) {
    (void)p;
    return 1;
}

static void learned_prefix_tokens(const sb_policy_spec *p, const sb_model_config *c, int32_t *out) {
    (void)p;
    out[0] = c->sink_token_id;
}

const sb_policy_def sb_policy_learned = {
    .name = "learned",
    .syntax = "learned:W, learned:K:W",
    .parse = learned_parse,
    .check = learned_check,
    .capacity = sb_sinks_capacity,
    .cache_size = sb_sinks_capacity,
    .label = learned_label,
    .prefix_len = learned_prefix_len,
    .prefix_tokens = learned_prefix_tokens,
    .exact_plan = sb_sinks_exact_plan,
    .moving = sb_sinks_moving,
    .initial_slots = sb_sinks_initial_slots,
    .init = sb_sinks_init,
    .reserve = sb_sinks_reserve,
    .evict = sb_sinks_evict,
};
