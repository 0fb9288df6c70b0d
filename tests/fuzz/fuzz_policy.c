/* Fuzz target: cache policy spec strings (--policy, study configs). An accepted spec is
 * checked against a model and its plug-in is driven the way the decoder drives it for a few
 * hundred tokens, checking that every slot it hands out is inside the cache. */
#include "tests/fuzz/fuzz.h"

#include "engine/policy.h"

/* One step: reserve, every map's attention (made-up probabilities) to an observing policy,
 * evict. */
static void policy_place(const sb_policy_def *pol, sb_kv_state *s) {
    int64_t slot = pol->reserve(s);
    if (slot < 0 || slot >= s->n_slots) abort();
    if (s->n_filled > s->n_slots) abort();
    if (pol->observe) {
        int64_t slots[600];
        float probs[2 * 600];
        for (int m = 0; m < s->n_maps; m++) {
            if (s->new_slot[m] < 0 || s->new_slot[m] >= s->n_slots) abort();
            int n = 0;
            for (int64_t i = 0; i < s->n_slots && n < 600; i++)
                if (sb_kv_tokens(s, m)[i] >= 0) slots[n++] = i;
            if (n != s->n_filled) abort();
            for (int h = 0; h < s->n_heads; h++)
                for (int i = 0; i < n; i++) probs[h * n + i] = (float)((slots[i] * 7 + h * 3 + s->n_fed) % 11) / n;
            pol->observe(s, m, probs, slots, n);
        }
    }
    pol->evict(s);
}

int sb_fuzz_policy(const uint8_t *data, size_t size) {
    if (size > 256) return sb_error("policy spec over 256 bytes (skipped)");
    char *spec = sb_fuzz_cstr(data, size);
    sb_policy_spec p;
    int rc = sb_policy_parse(spec, &p);
    free(spec);
    if (rc) return rc;
    /* the canonical spec parses to the same policy */
    sb_policy_spec q;
    if (sb_policy_parse(p.spec, &q) || memcmp(&p, &q, sizeof p) != 0) abort();
    sb_model_config c;
    sb_model_config_default(&c);
    c.vocab_size = 64;
    c.sink_token_id = 5;
    c.newline_token_id = 10;
    if ((rc = sb_policy_check_model(&p, &c))) return rc;
    int64_t n_prefix = sb_policy_prefix_len(&p);
    if (n_prefix < 0) abort();
    const sb_policy_def *pol = p.def;
    if (!pol) abort();
    int64_t cap = 16 + n_prefix;
    int64_t slots = pol->initial_slots(&p, cap);
    if (slots < 1 || slots > cap + 1) abort();
    if (n_prefix > 256) return SB_OK; /* a prefix that long only costs time here */
    sb_kv_state s;
    if (sb_policy_capacity(&p) > 512 && pol->observe) return SB_OK; /* the observe buffers above */
    if (sb_kv_state_init(&s, &p, 2, 2, cap)) abort();
    int32_t pre[257];
    sb_policy_prefix_tokens(&p, &c, pre);
    for (int64_t i = 0; i < n_prefix; i++) {
        if (pre[i] < 0 || pre[i] >= c.vocab_size) abort();
        policy_place(pol, &s);
    }
    for (int64_t t = 0; t < 300; t++) {
        if (pol->rebuild) {
            int64_t r = pol->rebuild(&s, t);
            if (r < 0 || r > t) abort();
            for (int64_t i = 0; i < r; i++) policy_place(pol, &s);
        }
        policy_place(pol, &s);
    }
    sb_kv_state_free(&s);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_policy)
