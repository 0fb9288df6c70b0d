/* The cache policies: a new policy is one file (engine/policy_<name>.c defining an
 * sb_policy_def) plus one line here. */
#include "engine/policy.h"

extern const sb_policy_def sb_policy_dense, sb_policy_window, sb_policy_sinks, sb_policy_learned,
    sb_policy_recompute, sb_policy_h2o, sb_policy_tova;

const sb_policy_def *const sb_policy_registry[] = {
    &sb_policy_dense,
    &sb_policy_window,
    &sb_policy_sinks,
    &sb_policy_learned,
    &sb_policy_recompute,
    &sb_policy_h2o,
    &sb_policy_tova,
    NULL,
};
