/* Tests of engine/sampler: greedy, temperature, top-p nucleus, determinism, and the sampled
 * frequencies against the intended distribution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/rng.h"
#include "engine/sampler.h"

/* logits whose softmax at T = 1 is exactly p */
static void logits_of(const double *p, int n, float *out) {
    for (int i = 0; i < n; i++) out[i] = (float)log(p[i]) + 3.0f; /* the shift must not matter */
}

static void test_greedy_is_argmax(void **state) {
    (void)state;
    float x[6] = {0.1f, 2.0f, -1.0f, 2.5f, 2.5f, 0.0f};
    assert_int_equal(sb_sampler_argmax(x, 6), 3); /* first of the tied maxima */
    sb_sampler s;
    assert_int_equal(sb_sampler_init(&s, 6, 0.0, 0.9, 1), SB_OK);
    for (int i = 0; i < 10; i++) assert_int_equal(sb_sampler_sample(&s, x), 3);
    float p[6];
    assert_int_equal(sb_sampler_probs(&s, x, p), 1);
    for (int i = 0; i < 6; i++) assert_float_equal(p[i], i == 3 ? 1.0f : 0.0f, 0.0f);
    sb_sampler_free(&s);
}

static void test_top_p_smallest_set(void **state) {
    (void)state;
    const double p[5] = {0.05, 0.5, 0.15, 0.1, 0.2};
    float x[5], q[5];
    logits_of(p, 5, x);
    sb_sampler s;
    /* sorted: 0.5 (1), 0.2 (4), 0.15 (2), 0.1 (3), 0.05 (0); cumulative .5 .7 .85 .95 1 */
    struct { double top_p; int k; } cases[] = {{0.3, 1}, {0.5 - 1e-4, 1}, {0.6, 2}, {0.7 - 1e-4, 2}, {0.71, 3},
                                               {0.9, 4}, {0.96, 5}, {1.0, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(sb_sampler_init(&s, 5, 1.0, cases[c].top_p, 1), SB_OK);
        int k = sb_sampler_probs(&s, x, q);
        assert_int_equal(k, cases[c].k);
        /* kept = the k most probable, renormalised; the rest 0 */
        const int rank[5] = {1, 4, 2, 3, 0};
        double mass = 0;
        for (int i = 0; i < k; i++) mass += p[rank[i]];
        for (int i = 0; i < 5; i++) {
            double want = i < k ? p[rank[i]] / mass : 0.0;
            assert_float_equal(q[rank[i]], want, 1e-5);
        }
        /* and sampling never leaves the set */
        for (int t = 0; t < 200; t++) {
            int32_t id = sb_sampler_sample(&s, x);
            int r = 0;
            while (rank[r] != id) r++;
            assert_true(r < k);
        }
        sb_sampler_free(&s);
    }
}

static void test_temperature_scaling(void **state) {
    (void)state;
    float x[4] = {1.0f, 2.0f, 0.5f, -1.0f}, q[4];
    const double temps[] = {0.5, 1.0, 2.0, 7.0};
    for (int t = 0; t < 4; t++) {
        sb_sampler s;
        assert_int_equal(sb_sampler_init(&s, 4, temps[t], 1.0, 1), SB_OK);
        sb_sampler_probs(&s, x, q);
        double z = 0;
        for (int i = 0; i < 4; i++) z += exp(x[i] / temps[t]);
        for (int i = 0; i < 4; i++) assert_float_equal(q[i], exp(x[i] / temps[t]) / z, 1e-6);
        sb_sampler_free(&s);
    }
    /* a tiny temperature is (almost) greedy */
    sb_sampler s;
    assert_int_equal(sb_sampler_init(&s, 4, 1e-3, 1.0, 1), SB_OK);
    for (int i = 0; i < 50; i++) assert_int_equal(sb_sampler_sample(&s, x), 1);
    sb_sampler_free(&s);
}

static void draw(int32_t V, const float *x, uint64_t seed, double top_p, int32_t *out, int n) {
    sb_sampler s;
    assert_int_equal(sb_sampler_init(&s, V, 1.0, top_p, seed), SB_OK);
    for (int i = 0; i < n; i++) out[i] = sb_sampler_sample(&s, x);
    sb_sampler_free(&s);
}

static void test_same_seed_same_sequence(void **state) {
    (void)state;
    enum { V = 1000, N = 300 };
    float *x = malloc(V * sizeof *x);
    sb_rng r;
    sb_rng_seed(&r, 7);
    for (int i = 0; i < V; i++) x[i] = (float)sb_rng_normal(&r) * 2.0f;
    int32_t a[N], b[N], c[N];
    draw(V, x, 123, 0.9, a, N);
    draw(V, x, 123, 0.9, b, N);
    draw(V, x, 124, 0.9, c, N);
    assert_memory_equal(a, b, sizeof a);
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    assert_true(same < N / 2); /* another seed really gives another sequence */
    free(x);
}

/* Frequencies over many draws match the (nucleus) distribution within 5 standard errors. */
static void test_distribution(void **state) {
    (void)state;
    enum { N = 40000 };
    const double p[4] = {0.5, 0.3, 0.15, 0.05};
    float x[4];
    logits_of(p, 4, x);
    int32_t *ids = malloc(N * sizeof *ids);
    const double tops[2] = {1.0, 0.75};
    const double want[2][4] = {{0.5, 0.3, 0.15, 0.05}, {0.625, 0.375, 0, 0}};
    for (int c = 0; c < 2; c++) {
        draw(4, x, 99 + (uint64_t)c, tops[c], ids, N);
        int count[4] = {0};
        for (int i = 0; i < N; i++) {
            assert_true(ids[i] >= 0 && ids[i] < 4);
            count[ids[i]]++;
        }
        for (int i = 0; i < 4; i++) {
            double f = (double)count[i] / N, se = sqrt(want[c][i] * (1 - want[c][i]) / N);
            if (want[c][i] == 0) assert_int_equal(count[i], 0);
            else assert_true(fabs(f - want[c][i]) < 5 * se);
        }
    }
    free(ids);
}

/* Large vocabulary: the pre-filter that skips hopeless tokens must not change the nucleus. */
static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_large_vocab_nucleus(void **state) {
    (void)state;
    enum { V = 50000 };
    float *x = malloc(V * sizeof *x), *q = malloc(V * sizeof *q);
    double *p = malloc(V * sizeof *p);
    sb_rng r;
    sb_rng_seed(&r, 3);
    for (int i = 0; i < V; i++) x[i] = (float)sb_rng_normal(&r) * 3.0f;
    double z = 0, mx = x[0];
    for (int i = 0; i < V; i++) mx = fmax(mx, x[i]);
    for (int i = 0; i < V; i++) z += p[i] = exp(x[i] - mx);
    for (int i = 0; i < V; i++) p[i] /= z;
    qsort(p, V, sizeof *p, cmp_desc);
    const double tops[3] = {0.5, 0.9, 0.99};
    for (int c = 0; c < 3; c++) {
        int k = 0;
        double cum = 0;
        while (cum < tops[c]) cum += p[k++];
        sb_sampler s;
        assert_int_equal(sb_sampler_init(&s, V, 1.0, tops[c], 1), SB_OK);
        int got = sb_sampler_probs(&s, x, q);
        assert_true(abs(got - k) <= 1); /* float vs double sums may differ at the boundary */
        double sum = 0;
        int nonzero = 0;
        for (int i = 0; i < V; i++) {
            sum += q[i];
            nonzero += q[i] > 0;
        }
        assert_int_equal(nonzero, got);
        assert_float_equal(sum, 1.0, 1e-4);
        sb_sampler_free(&s);
    }
    free(x);
    free(q);
    free(p);
}

static void test_bad_settings(void **state) {
    (void)state;
    sb_sampler s;
    assert_int_equal(sb_sampler_init(&s, 10, -1.0, 0.9, 1), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "--temperature"));
    assert_int_equal(sb_sampler_init(&s, 10, 1.0, 0.0, 1), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "--top-p"));
    assert_int_equal(sb_sampler_init(&s, 10, 1.0, 1.5, 1), SB_ERR_USAGE);
    assert_int_equal(sb_sampler_init(&s, 0, 1.0, 0.5, 1), SB_ERR_USAGE);
    assert_int_equal(sb_sampler_init(&s, 10, NAN, 0.5, 1), SB_ERR_USAGE);
    /* NaN logits fall back to a valid id instead of reading out of bounds */
    float x[3] = {NAN, NAN, NAN};
    assert_int_equal(sb_sampler_init(&s, 3, 1.0, 0.9, 1), SB_OK);
    int32_t id = sb_sampler_sample(&s, x);
    assert_true(id >= 0 && id < 3);
    sb_sampler_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_is_argmax),
        cmocka_unit_test(test_top_p_smallest_set),
        cmocka_unit_test(test_temperature_scaling),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_large_vocab_nucleus),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
