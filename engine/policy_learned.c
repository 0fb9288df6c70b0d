/* Prefixed sinks: learned:W (the model's pre-trained <sink> token, kept as the one sink) and
 * sinks:K:W:newline (K newline tokens as content-free sinks, the paper's Table 1 control).
 * Both are sinks:K:W over prefix + stream, so the cache plug-in is the sinks one; what they
 * add is the prefix and the check that the model has the token. */
#include "engine/common.h"
#include "engine/policy.h"

int sb_policy_check_prefix(const sb_policy_spec *p, const sb_model_config *c) {
    if (p->prefix == SB_PREFIX_SINK_TOKEN && (c->sink_token_id < 0 || c->sink_token_id >= c->vocab_size))
        return sb_usage_error("policy '%s' needs a model with a learned <sink> token (sink_token_id), "
                              "and this model has none",
                              p->spec);
    if (p->prefix == SB_PREFIX_NEWLINE && p->n_sinks > 0 &&
        (c->newline_token_id < 0 || c->newline_token_id >= c->vocab_size))
        return sb_usage_error("policy '%s' needs the model's newline token (newline_token_id), "
                              "and this model has none",
                              p->spec);
    return SB_OK;
}

int64_t sb_policy_prefix_len(const sb_policy_spec *p) {
    switch (p->prefix) {
    case SB_PREFIX_SINK_TOKEN: return 1;
    case SB_PREFIX_NEWLINE: return p->n_sinks;
    default: return 0;
    }
}

void sb_policy_prefix_tokens(const sb_policy_spec *p, const sb_model_config *c, int32_t *out) {
    int64_t n = sb_policy_prefix_len(p);
    int32_t id = p->prefix == SB_PREFIX_SINK_TOKEN ? c->sink_token_id : c->newline_token_id;
    for (int64_t i = 0; i < n; i++) out[i] = id;
}
