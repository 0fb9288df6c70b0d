/* Shards of one stream (dist/shard.h), without MPI: the work model counts exactly the tokens
 * the engine puts through the forward (a counting backend), the plan covers the stream in
 * contiguous shards on the chunk grid with balanced cost, the shards evaluated one by one give
 * the whole run's values bit for bit, what cannot be sharded is refused, and the overhead of
 * a Llama-2-7B-shaped 4M-token stream matches the README's model. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dist/shard.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "tests/helpers/sb_test.h"

static const char *const specs[] = {"sinks:4:16", "window:12", "learned:10", "recompute:16", "sinks:2:9:newline",
                                    "sinks:40:8"};

static void small_model(sb_model *m, int pos) {
    sb_model_config c;
    sb_test_small_config(&c, 64, 3, 2);
    c.sink_token_id = 63;
    c.newline_token_id = 10;
    if (pos == 1) {
        c.pos = SB_POS_ALIBI;
        c.norm = SB_NORM_LAYER;
    }
    assert_int_equal(sb_model_alloc(m, &c), SB_OK);
    sb_model_init_random(m, 11 + (uint64_t)pos, 4.0f);
}

static int32_t *tokens(int64_t n, uint64_t seed) {
    int32_t *x = malloc((size_t)n * sizeof *x);
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (int32_t)((s >> 33) % 62);
    }
    return x;
}

/* a backend that counts the tokens through exact_forward */
static const sb_backend_ops *real_ops;
static sb_backend_ops counting_ops;
static int64_t counted;

static int count_forward(sb_exact *s, const int32_t *t, int T, int64_t pos0, int from, const int32_t *targets,
                         float *out) {
    counted += T;
    return real_ops->exact_forward(s, t, T, pos0, from, targets, out);
}

static void test_measure_counts_the_engines_work(void **state) {
    (void)state;
    sb_model m;
    small_model(&m, 0);
    const int64_t n = 500;
    int32_t *x = tokens(n, 3);
    float *nll = malloc((size_t)n * sizeof *nll);
    sb_backend *b;
    assert_int_equal(sb_backend_open(&b, &m, NULL), SB_OK);
    real_ops = b->ops;
    counting_ops = *b->ops;
    counting_ops.exact_forward = count_forward;
    b->ops = &counting_ops;
    const int64_t cuts[][2] = {{0, 499}, {0, 7}, {5, 40}, {64, 128}, {100, 300}, {250, 499}, {480, 499}};
    const int64_t chunks[] = {32, 7};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        for (size_t k = 0; k < 2; k++)
            for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
                sb_policy_spec p;
                assert_int_equal(sb_policy_parse(specs[i], &p), SB_OK);
                sb_eval_opts o = {.chunk = chunks[k], .backend = b, .score_from = cuts[c][0], .score_to = cuts[c][1]};
                counted = 0;
                if (sb_eval_stream_nll(&m, &p, x, n, &o, nll)) fail_msg("%s: %s", specs[i], sb_last_error());
                sb_shard s;
                sb_shard_measure(&m.cfg, &p, n - 1, chunks[k], cuts[c][0], cuts[c][1], &s);
                if (s.forwarded != counted)
                    fail_msg("%s chunk %lld [%lld, %lld): the model says %lld tokens, the engine computed %lld",
                             specs[i], (long long)chunks[k], (long long)cuts[c][0], (long long)cuts[c][1],
                             (long long)s.forwarded, (long long)counted);
                assert_int_equal(s.halo, sb_eval_halo(&m.cfg, &p, cuts[c][0], chunks[k]));
                assert_true(s.cost > 0);
            }
    b->ops = real_ops;
    sb_backend_close(b);
    free(x), free(nll);
    sb_model_free(&m);
}

/* Contiguous, covering, on the chunk grid, balanced; each shard alone gives the whole run's
 * values exactly. */
static void test_plan_shards_equal_whole_run(void **state) {
    (void)state;
    for (int arch = 0; arch < 2; arch++) {
        sb_model m;
        small_model(&m, arch);
        const int64_t n = 700, chunk = 32;
        int32_t *x = tokens(n, 5 + (uint64_t)arch);
        float *whole = malloc((size_t)n * sizeof *whole), *part = malloc((size_t)n * sizeof *part);
        for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
            sb_policy_spec p;
            assert_int_equal(sb_policy_parse(specs[i], &p), SB_OK);
            sb_eval_opts o = {.chunk = chunk};
            assert_int_equal(sb_eval_stream_nll(&m, &p, x, n, &o, whole), SB_OK);
            sb_exact_plan plan;
            assert_true(sb_policy_exact_plan(&p, &m.cfg, &plan));
            const int64_t P = sb_policy_prefix_len(&p);
            for (int ranks = 1; ranks <= 5; ranks++) {
                sb_shard sh[5];
                assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_EXACT, n - 1, chunk, ranks, sh), SB_OK);
                double max = 0, sum = 0;
                for (int r = 0; r < ranks; r++) {
                    assert_int_equal(sh[r].from, r ? sh[r - 1].to : 0);
                    assert_true(sh[r].to >= sh[r].from);
                    if (plan.kind == SB_EXACT_BAND && r < ranks - 1)
                        assert_int_equal((P + sh[r].to) % chunk, 0); /* no chunk computed twice */
                    max = fmax(max, sh[r].cost);
                    sum += sh[r].cost;
                    if (sh[r].from == sh[r].to) continue;
                    for (int64_t j = 0; j < n; j++) part[j] = NAN;
                    o = (sb_eval_opts){.chunk = chunk, .score_from = sh[r].from, .score_to = sh[r].to};
                    assert_int_equal(sb_eval_stream_nll(&m, &p, x, n, &o, part), SB_OK);
                    if (memcmp(part + sh[r].from, whole + sh[r].from, (size_t)(sh[r].to - sh[r].from) * sizeof(float)))
                        fail_msg("%s, %d ranks: shard %d [%lld, %lld) differs from the whole run", specs[i], ranks, r,
                                 (long long)sh[r].from, (long long)sh[r].to);
                }
                assert_int_equal(sh[ranks - 1].to, n - 1);
                /* the largest shard is within about one chunk of the mean */
                sb_shard a, b2;
                sb_shard_measure(&m.cfg, &p, n - 1, chunk, 0, chunk, &a);
                sb_shard_measure(&m.cfg, &p, n - 1, chunk, 0, 3 * chunk, &b2);
                double step = plan.kind == SB_EXACT_FRESH_WINDOW ? b2.cost / (3 * chunk) : (b2.cost - a.cost) / 2;
                if (max > sum / ranks + 2 * step)
                    fail_msg("%s, %d ranks: the largest shard costs %.4g, the mean %.4g (a chunk %.4g)", specs[i],
                             ranks, max, sum / ranks, step);
                /* band policies: rank 0 has no halo, so it scores the most */
                if (plan.kind == SB_EXACT_BAND && ranks == 2 && n - 1 > 4 * m.cfg.n_layers * plan.W)
                    assert_true(sh[0].to - sh[0].from > sh[1].to - sh[1].from);
            }
        }
        free(x), free(whole), free(part);
        sb_model_free(&m);
    }
}

static void test_refusals_and_small_streams(void **state) {
    (void)state;
    sb_model m;
    small_model(&m, 0);
    sb_policy_spec p;
    sb_shard sh[8];
    assert_int_equal(sb_policy_parse("dense", &p), SB_OK);
    assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_EXACT, 100, 32, 2, sh), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "cannot be split over MPI ranks"));
    assert_int_equal(sb_policy_parse("h2o:2:2:8", &p), SB_OK);
    assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_EXACT, 100, 32, 2, sh), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "no exact plan"));
    assert_int_equal(sb_policy_parse("tova:16", &p), SB_OK);
    assert_int_equal(sb_shard_check(&m.cfg, &p, SB_MODE_EXACT), SB_ERR_USAGE);
    assert_int_equal(sb_policy_parse("sinks:4:16", &p), SB_OK);
    assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_DECODE, 100, 32, 2, sh), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "--mode decode"));
    assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_EXACT, 100, 32, 0, sh), SB_ERR_USAGE);
    /* more ranks than chunks: trailing shards are empty, the stream is still covered */
    assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_EXACT, 40, 16, 8, sh), SB_OK);
    int64_t covered = 0;
    for (int r = 0; r < 8; r++) {
        assert_int_equal(sh[r].from, covered);
        covered = sh[r].to;
        if (sh[r].from == sh[r].to) assert_int_equal(sh[r].forwarded, 0);
    }
    assert_int_equal(covered, 40);
    assert_int_equal(sb_shard_plan(&m.cfg, &p, SB_MODE_EXACT, 1, 16, 3, sh), SB_OK);
    assert_int_equal(sh[0].to + sh[1].to - sh[1].from + sh[2].to - sh[2].from, 1);
    sb_model_free(&m);
}

/* The README's numbers: a 4M-token stream of a Llama-2-7B shape under sinks:4:4092 on 8 and
 * 64 ranks; the halo share is (R-1) * L*W / (N + (R-1) * L*W) up to the chunk alignment. */
static void test_llama7b_overhead(void **state) {
    (void)state;
    sb_model_config c;
    sb_model_config_default(&c);
    c.vocab_size = 32000;
    c.dim = 4096;
    c.n_layers = 32;
    c.n_heads = c.n_kv_heads = 32;
    c.head_dim = 128;
    c.rotary_dim = 128;
    c.ffn_dim = 11008;
    c.max_ctx = 4096;
    assert_int_equal(sb_model_config_validate(&c), SB_OK);
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("sinks:4:4092", &p), SB_OK);
    const int64_t N = 4000000, LW = 32 * 4092;
    const int ranks[] = {8, 64};
    sb_shard *sh = calloc(64, sizeof *sh);
    for (int i = 0; i < 2; i++) {
        const int R = ranks[i];
        assert_int_equal(sb_shard_plan(&c, &p, SB_MODE_EXACT, N, 256, R, sh), SB_OK);
        double share = sb_shard_overhead(&c, &p, N, 256, sh, R);
        double model = (double)(R - 1) * LW / ((double)N + (double)(R - 1) * LW);
        printf("Llama-2-7B shape, %lld tokens, sinks:4:4092, %d ranks: halo share %.4f (model %.4f), efficiency %.4f\n",
               (long long)N, R, share, model, 1 - share);
        assert_true(fabs(share - model) < 0.01);
        for (int r = 1; r < R; r++) assert_true(sh[r].halo >= LW && sh[r].halo < LW + 256);
    }
    free(sh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measure_counts_the_engines_work),
        cmocka_unit_test(test_plan_shards_equal_whole_run),
        cmocka_unit_test(test_refusals_and_small_streams),
        cmocka_unit_test(test_llama7b_overhead),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
