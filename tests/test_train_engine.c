/* What the trainer saves is what the engine evaluates: for every variant, the per-position
 * NLL of the training forward equals sb_eval_stream_nll (policy dense, and learned:W for the
 * sink token) on the model after a save/load roundtrip through the checkpoint format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/rng.h"
#include "engine/stream_eval.h"
#include "train/train.h"
#include "tests/helpers/sb_test.h"

enum { T = 40, V = 50 };

static void engine_case(sb_train_variant variant) {
    sb_model_config c;
    sb_model_config_default(&c);
    c.vocab_size = V, c.dim = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8;
    c.rotary_dim = 8, c.ffn_dim = 48, c.max_ctx = 64, c.rope_theta = 10000.0f;
    c.softmax = variant == SB_VARIANT_ZERO_SINK    ? SB_SOFTMAX_OFF_BY_ONE
                : variant == SB_VARIANT_SINK_LOGIT ? SB_SOFTMAX_SINK_LOGIT
                                                   : SB_SOFTMAX_STANDARD;
    c.sink_token_id = variant == SB_VARIANT_SINK_TOKEN ? V - 1 : -1;
    c.tie_embeddings = variant == SB_VARIANT_ZERO_SINK; /* cover the tied head once */
    sb_model m;
    assert_int_equal(sb_model_alloc(&m, &c), SB_OK);
    /* large weights: sharp, position-dependent attention, so a RoPE or mask mismatch shows */
    sb_train_init_weights(&m, 21, 0.35f);
    sb_rng r;
    sb_rng_seed(&r, 22);
    sb_test_perturb_vectors(&c, &m, &r, 0.5f);

    int32_t data[T], tok[T], tg[T];
    for (int i = 0; i < T; i++) data[i] = (int32_t)sb_rng_below(&r, V - 1);
    bool sink = variant == SB_VARIANT_SINK_TOKEN;
    for (int i = 0; i < T; i++) {
        tok[i] = sink ? (i == 0 ? V - 1 : data[i - 1]) : data[i];
        tg[i] = sink ? (i == 0 ? -1 : data[i]) : (i + 1 < T ? data[i + 1] : -1);
    }
    sb_train_model tm;
    assert_int_equal(sb_train_model_init(&tm, &m, 1, T), SB_OK);
    float loss;
    assert_int_equal(sb_train_forward(&tm, tok, tg, 1, T, &loss), SB_OK);

    char dir[64];
    assert_int_equal(sb_test_mkdtemp(dir, sizeof dir), 0);
    assert_int_equal(sb_model_save(&m, dir), SB_OK);
    sb_model e;
    assert_int_equal(sb_model_load(&e, dir), SB_OK);
    assert_int_equal(e.cfg.softmax, c.softmax);
    assert_int_equal(e.cfg.sink_token_id, c.sink_token_id);
    assert_memory_equal(e.params, m.params, m.n_params * sizeof(float));

    /* dense over the sequence as fed to training: nll[i] predicts tok[i+1] = tg[i] */
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("dense", &p), SB_OK);
    float nll[T];
    assert_int_equal(sb_eval_stream_nll(&e, &p, tok, T, NULL, nll), SB_OK);
    double maxdiff = 0;
    for (int i = 0; i < T - 1; i++) {
        if (tg[i] < 0) continue;
        double d = fabs((double)nll[i] - tm.losses[i]);
        if (d > maxdiff) maxdiff = d;
        assert_true(d < 1e-4 + 1e-4 * fabs(nll[i]));
    }
    print_message("  %-10s dense: max |nll diff| %.2e (loss %.3f)\n", sb_train_variant_name(variant), maxdiff,
                  loss);
    if (sink) {
        /* learned:W prefixes the sink itself and scores the stream after it */
        assert_int_equal(sb_policy_parse("learned:1000", &p), SB_OK);
        assert_int_equal(sb_eval_stream_nll(&e, &p, data, T - 1, NULL, nll), SB_OK);
        for (int i = 0; i < T - 2; i++) assert_true(fabs((double)nll[i] - tm.losses[i + 1]) < 1e-4 + 1e-4 * nll[i]);
    }
    sb_train_model_free(&tm);
    sb_model_free(&e);
    sb_model_free(&m);
    sb_test_rmtree(dir);
}

static void test_engine_vanilla(void **state) {
    (void)state;
    engine_case(SB_VARIANT_VANILLA);
}
static void test_engine_sink_token(void **state) {
    (void)state;
    engine_case(SB_VARIANT_SINK_TOKEN);
}
static void test_engine_zero_sink(void **state) {
    (void)state;
    engine_case(SB_VARIANT_ZERO_SINK);
}
static void test_engine_sink_logit(void **state) {
    (void)state;
    engine_case(SB_VARIANT_SINK_LOGIT);
}

int main(int argc, char **argv) {
    (void)argc;
    sb_test_omp_passive(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_vanilla),
        cmocka_unit_test(test_engine_sink_token),
        cmocka_unit_test(test_engine_zero_sink),
        cmocka_unit_test(test_engine_sink_logit),
    };
    return cmocka_run_group_tests_name("train_engine", tests, NULL, NULL);
}
