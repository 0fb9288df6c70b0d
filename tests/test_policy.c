/* Tests of engine/policy: spec parsing and the decode-mode plug-ins against a brute-force
 * model of the reference cache (a list of kept token indices whose list index is the cache
 * position). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"

/* ------------------------------------------------------------ parsing */

static void expect_spec(const char *s, const char *kind, int64_t k, int64_t w, sb_prefix_kind prefix,
                        const char *canon) {
    sb_policy_spec p;
    int rc = sb_policy_parse(s, &p);
    if (rc) fail_msg("'%s' rejected: %s", s, sb_last_error());
    assert_non_null(p.def);
    assert_string_equal(p.def->name, kind);
    assert_int_equal(p.n_sinks, k);
    assert_int_equal(p.window, w);
    assert_int_equal(p.prefix, prefix);
    assert_string_equal(p.spec, canon);
    /* canonical strings parse to themselves */
    sb_policy_spec q;
    assert_int_equal(sb_policy_parse(p.spec, &q), SB_OK);
    assert_memory_equal(&p, &q, sizeof p);
}

static void test_parse_valid(void **state) {
    (void)state;
    expect_spec("dense", "dense", 0, 0, SB_PREFIX_NONE, "dense");
    expect_spec("window:1024", "window", 0, 1024, SB_PREFIX_NONE, "window:1024");
    expect_spec("window:1", "window", 0, 1, SB_PREFIX_NONE, "window:1");
    expect_spec("sinks:4:508", "sinks", 4, 508, SB_PREFIX_NONE, "sinks:4:508");
    expect_spec("sinks:0:16", "sinks", 0, 16, SB_PREFIX_NONE, "sinks:0:16");
    expect_spec("sinks:004:0508", "sinks", 4, 508, SB_PREFIX_NONE, "sinks:4:508");
    expect_spec("sinks:4:1020:newline", "sinks", 4, 1020, SB_PREFIX_NEWLINE, "sinks:4:1020:newline");
    expect_spec("learned:1023", "learned", 1, 1023, SB_PREFIX_SINK_TOKEN, "learned:1023");
    expect_spec("learned:4:508", "learned", 4, 508, SB_PREFIX_SINK_TOKEN, "learned:4:508");
    expect_spec("learned:1:64", "learned", 1, 64, SB_PREFIX_SINK_TOKEN, "learned:64");
    expect_spec("recompute:256", "recompute", 0, 256, SB_PREFIX_NONE, "recompute:256");
    expect_spec("h2o:4:252:256", "h2o", 4, 256, SB_PREFIX_NONE, "h2o:4:252:256");
    expect_spec("h2o:0:0:1", "h2o", 0, 1, SB_PREFIX_NONE, "h2o:0:0:1");
    expect_spec("tova:512", "tova", 0, 512, SB_PREFIX_NONE, "tova:512");
    expect_spec("window:2147483648", "window", 0, 2147483648LL, SB_PREFIX_NONE, "window:2147483648");
}

static void test_parse_malformed(void **state) {
    (void)state;
    const char *bad[] = {
        "", "dense:1", "Dense", "window", "window:", "window:0", "window:abc", "window:-5", "window:+5",
        "window: 5", "window:5 ", " window:5", "window:5x", "window:5:6", "window:1e3", "window:0x10",
        "window:99999999999999999999999", "window:2147483649", "sinks:8:0", "sinks:-1:5", "sinks:4",
        "sinks:4:", "sinks::5", "sinks:a:5", "sinks:4:5:", "sinks:4:5:newlines", "sinks:4:5:newline:x",
        "sinks:4:5:6", "sinks:1:2:3:4:5", "learned", "learned:0", "learned:0:8", "learned:1:2:3", "recompute:0",
        "recompute:-1", "recompute", "stream:5", "window:5\n", "sinks:4:508\t", ":", "sinks:4:508:",
        "sinks:99999999999:5", "h2o", "h2o:4:5", "h2o:4:5:0", "h2o:a:1:2", "h2o:1:b:2", "h2o:1:2:3:4",
        "tova", "tova:0", "tova:1:2", "tova:-3", "H2O:1:2:3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_policy_spec p;
        sb_clear_error();
        int rc = sb_policy_parse(bad[i], &p);
        if (rc != SB_ERR_USAGE) fail_msg("'%s' accepted (rc %d, spec '%s')", bad[i], rc, p.spec);
        /* the message names the spec (first chars are enough to find it) */
        if (bad[i][0] && !strstr(sb_last_error(), "cache policy"))
            fail_msg("message for '%s' does not say what was wrong: %s", bad[i], sb_last_error());
    }
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("sinks:8:0", &p), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "sinks:8:0"));
    assert_int_equal(sb_policy_parse(NULL, &p), SB_ERR_USAGE);
}

static void test_check_model(void **state) {
    (void)state;
    sb_model_config c;
    sb_model_config_default(&c);
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("learned:16", &p), SB_OK);
    assert_int_equal(sb_policy_check_model(&p, &c), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "learned:16"));
    assert_non_null(strstr(sb_last_error(), "sink"));
    c.sink_token_id = 3;
    assert_int_equal(sb_policy_check_model(&p, &c), SB_OK);
    assert_int_equal(sb_policy_prefix_len(&p), 1);
    int32_t pre[4] = {-1, -1, -1, -1};
    sb_policy_prefix_tokens(&p, &c, pre);
    assert_int_equal(pre[0], 3);
    assert_int_equal(pre[1], -1);

    assert_int_equal(sb_policy_parse("sinks:3:16:newline", &p), SB_OK);
    assert_int_equal(sb_policy_check_model(&p, &c), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "newline"));
    c.newline_token_id = 7;
    assert_int_equal(sb_policy_check_model(&p, &c), SB_OK);
    assert_int_equal(sb_policy_prefix_len(&p), 3);
    sb_policy_prefix_tokens(&p, &c, pre);
    assert_int_equal(pre[0], 7);
    assert_int_equal(pre[2], 7);
    assert_int_equal(pre[3], -1);

    assert_int_equal(sb_policy_parse("sinks:4:16", &p), SB_OK);
    assert_int_equal(sb_policy_prefix_len(&p), 0);
    /* hand-built specs get the same limits as parsed ones */
    p.window = 0;
    assert_int_equal(sb_policy_check_model(&p, &c), SB_ERR_USAGE);
    p.window = 16;
    p.n_sinks = -1;
    assert_int_equal(sb_policy_check_model(&p, &c), SB_ERR_USAGE);
    assert_int_equal(sb_policy_parse("recompute:8", &p), SB_OK);
    p.n_sinks = 2;
    assert_int_equal(sb_policy_check_model(&p, &c), SB_ERR_USAGE);
}

/* ------------------------------------------------------------ plug-ins vs brute force */

/* The reference cache: kept[i] is the token at cache index i. */
typedef struct {
    int64_t kept[4096];
    int64_t n;
} ref_cache;

static void check_step(const sb_kv_state *s, int64_t slot, const ref_cache *rc, const int64_t *tok_of_ref,
                       const char *what) {
    /* the filled slots are exactly the reference cache, at the reference distances */
    assert_true(slot >= 0 && slot < s->n_slots);
    assert_int_equal(s->n_filled, rc->n);
    int64_t filled = 0;
    for (int64_t i = 0; i < s->n_slots; i++) filled += s->slot_token[i] >= 0;
    if (filled != rc->n)
        fail_msg("%s: %lld filled slots, reference cache holds %lld", what, (long long)filled, (long long)rc->n);
    for (int64_t i = 0; i < rc->n; i++) {
        int64_t tok = tok_of_ref ? tok_of_ref[i] : rc->kept[i];
        int64_t found = -1;
        for (int64_t sl = 0; sl < s->n_slots; sl++)
            if (s->slot_token[sl] == tok) found = sl;
        if (found < 0) fail_msg("%s: token %lld is in the reference cache but in no slot", what, (long long)tok);
        int64_t ref_dist = (rc->n - 1) - i; /* query sits at the last cache index */
        int64_t dist = s->query_pos - s->slot_pos[found];
        if (dist != ref_dist)
            fail_msg("%s: token %lld at distance %lld, reference %lld", what, (long long)tok, (long long)dist,
                     (long long)ref_dist);
    }
}

static void run_sinks_case(int64_t K, int64_t W, int64_t steps, int64_t hint) {
    char spec[64], what[128];
    snprintf(spec, sizeof spec, "sinks:%lld:%lld", (long long)K, (long long)W);
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse(spec, &p), SB_OK);
    sb_kv_state s;
    assert_int_equal(sb_kv_state_init(&s, &p, 1, 1, hint), SB_OK);
    assert_int_equal(s.n_moving, K);
    assert_true(s.n_slots <= K + W + 1);
    const sb_policy_def *pol = p.def;
    assert_string_equal(pol->name, "sinks");
    assert_null(pol->rebuild);
    ref_cache rc = {.n = 0};
    for (int64_t t = 0; t < steps; t++) {
        snprintf(what, sizeof what, "%s t=%lld", spec, (long long)t);
        int64_t slot = pol->reserve(&s);
        rc.kept[rc.n++] = t;
        int64_t want = t < K ? t : K + (t - K) % (W + 1);
        if (slot != want) fail_msg("%s: slot %lld, expected %lld", what, (long long)slot, (long long)want);
        assert_int_equal(s.slot_token[slot], t);
        assert_int_equal(s.query_pos, t);
        assert_true(s.n_slots <= K + W + 1);
        check_step(&s, slot, &rc, NULL, what);
        /* sinks sit at distance min(t, K+W) - j, recent keys at t - j */
        for (int64_t sl = 0; sl < s.n_slots; sl++) {
            int64_t j = s.slot_token[sl];
            if (j < 0) continue;
            int64_t d = s.query_pos - s.slot_pos[sl];
            int64_t ref = j < K ? (t < K + W ? t : K + W) - j : t - j;
            assert_int_equal(d, ref);
            if (j >= K) assert_int_equal(s.slot_pos[sl], j); /* recent keys never move */
        }
        pol->evict(&s);
        /* reference trim: keep [0, K) and the last W */
        if (rc.n > K + W) {
            int64_t drop = rc.n - K - W;
            memmove(rc.kept + K, rc.kept + K + drop, (size_t)(rc.n - K - drop) * sizeof(int64_t));
            rc.n -= drop;
        }
        assert_int_equal(s.n_filled, rc.n);
        for (int64_t i = 0; i < rc.n; i++) {
            int found = 0;
            for (int64_t sl = 0; sl < s.n_slots; sl++) found |= s.slot_token[sl] == rc.kept[i];
            if (!found) fail_msg("%s: token %lld evicted too early", what, (long long)rc.kept[i]);
        }
    }
    sb_kv_state_free(&s);
}

static void test_sinks_plugin_matches_reference(void **state) {
    (void)state;
    const int64_t Ks[] = {0, 1, 2, 4, 7};
    const int64_t Ws[] = {1, 2, 3, 5, 16, 33};
    for (size_t a = 0; a < sizeof Ks / sizeof Ks[0]; a++)
        for (size_t b = 0; b < sizeof Ws / sizeof Ws[0]; b++) {
            int64_t steps = 3 * (Ks[a] + Ws[b] + 1) + 17;
            run_sinks_case(Ks[a], Ws[b], steps, 1);
            run_sinks_case(Ks[a], Ws[b], steps, 1000);
        }
    run_sinks_case(40, 3, 200, 1); /* more sinks than the first allocation */
}

static void test_window_is_sinks0(void **state) {
    (void)state;
    sb_policy_spec a, b;
    assert_int_equal(sb_policy_parse("window:9", &a), SB_OK);
    assert_int_equal(sb_policy_parse("sinks:0:9", &b), SB_OK);
    assert_int_equal(a.n_sinks, b.n_sinks);
    assert_int_equal(a.window, b.window);
    assert_int_equal(sb_policy_capacity(&a), sb_policy_capacity(&b));
    /* the same plug-in and the same plan */
    assert_ptr_equal(a.def->reserve, b.def->reserve);
    assert_ptr_equal(a.def->evict, b.def->evict);
    sb_model_config c;
    sb_model_config_default(&c);
    sb_exact_plan pa, pb;
    assert_true(sb_policy_exact_plan(&a, &c, &pa) && sb_policy_exact_plan(&b, &c, &pb));
    assert_int_equal(pa.kind, pb.kind);
    assert_int_equal(pa.K, pb.K);
    assert_int_equal(pa.W, pb.W);
}

static void test_dense_plugin(void **state) {
    (void)state;
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("dense", &p), SB_OK);
    sb_kv_state s;
    assert_int_equal(sb_kv_state_init(&s, &p, 1, 1, 1), SB_OK);
    const sb_policy_def *pol = p.def;
    ref_cache rc = {.n = 0};
    for (int64_t t = 0; t < 300; t++) {
        int64_t slot = pol->reserve(&s);
        rc.kept[rc.n++] = t;
        assert_int_equal(slot, t);
        assert_int_equal(s.slot_pos[slot], t); /* absolute positions */
        check_step(&s, slot, &rc, NULL, "dense");
        pol->evict(&s);
        assert_int_equal(s.n_filled, t + 1);
    }
    assert_true(s.n_slots >= 300);
    sb_kv_state_free(&s);
}

static void test_recompute_plugin(void **state) {
    (void)state;
    const int64_t Ws[] = {1, 2, 5, 16};
    for (size_t a = 0; a < sizeof Ws / sizeof Ws[0]; a++) {
        int64_t W = Ws[a];
        char spec[32];
        snprintf(spec, sizeof spec, "recompute:%lld", (long long)W);
        sb_policy_spec p;
        assert_int_equal(sb_policy_parse(spec, &p), SB_OK);
        sb_kv_state s;
        assert_int_equal(sb_kv_state_init(&s, &p, 1, 1, 4), SB_OK);
        const sb_policy_def *pol = p.def;
        assert_non_null(pol->rebuild);
        for (int64_t t = 0; t < 3 * W + 5; t++) {
            /* token t is predicted from a fresh pass over x_{max(0,t-W+1)}..x_t at positions 0.. */
            int64_t r = pol->rebuild(&s, t);
            int64_t first = t - W + 1 > 0 ? t - W + 1 : 0;
            assert_int_equal(r, t - first);
            assert_int_equal(s.n_filled, 0);
            ref_cache rc = {.n = 0};
            int64_t toks[64];
            for (int64_t i = 0; i <= r; i++) {
                int64_t slot = pol->reserve(&s);
                rc.kept[rc.n] = i;
                toks[rc.n] = i; /* local index within the window */
                rc.n++;
                assert_int_equal(s.slot_pos[slot], i);
                check_step(&s, slot, &rc, toks, spec);
                pol->evict(&s);
            }
            assert_true(s.n_slots <= W);
        }
        /* feeding more than W tokens into one window is refused */
        pol->rebuild(&s, 0);
        for (int64_t i = 0; i < W; i++) assert_true(pol->reserve(&s) >= 0);
        assert_int_equal(pol->reserve(&s), -1);
        sb_kv_state_free(&s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_check_model),
        cmocka_unit_test(test_sinks_plugin_matches_reference),
        cmocka_unit_test(test_window_is_sinks0),
        cmocka_unit_test(test_dense_plugin),
        cmocka_unit_test(test_recompute_plugin),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
