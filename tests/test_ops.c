/* Tests of engine/ops and engine/half: every op against a naive double-precision loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/half.h"
#include "engine/cpu/ops.h"
#include "engine/rng.h"

static void fill(float *x, size_t n, uint64_t seed, float std) {
    sb_rng r;
    sb_rng_seed(&r, seed);
    sb_rng_fill_normal(&r, x, n, 0.0f, std);
}

static void assert_close(const float *a, const double *b, size_t n, double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        double tol = atol + rtol * fabs(b[i]);
        if (!(fabs((double)a[i] - b[i]) <= tol))
            fail_msg("element %zu: got %.9g, want %.9g (tol %.3g)", i, (double)a[i], b[i], tol);
    }
}

static void assert_close_f(const float *a, const float *b, size_t n, double atol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - (double)b[i]) <= atol))
            fail_msg("element %zu: %.9g vs %.9g (tol %.3g)", i, (double)a[i], (double)b[i], atol);
}

/* ---------------------------------------------------------------- matmul */

static void test_matmul(void **state) {
    (void)state;
    enum { T = 7, C = 13, OC = 11 };
    float in[T * C], w[OC * C], b[OC], out[T * OC];
    double ref[T * OC];
    fill(in, T * C, 1, 1.0f);
    fill(w, OC * C, 2, 1.0f);
    fill(b, OC, 3, 1.0f);
    for (int withb = 0; withb < 2; withb++) {
        for (int t = 0; t < T; t++)
            for (int o = 0; o < OC; o++) {
                double s = withb ? b[o] : 0.0;
                for (int c = 0; c < C; c++) s += (double)in[t * C + c] * w[o * C + c];
                ref[t * OC + o] = s;
            }
        matmul_forward(out, in, w, withb ? b : NULL, T, C, OC);
        assert_close(out, ref, T * OC, 1e-5, 1e-5);
    }
    /* accumulate: out += in.w^T + b on top of the previous result */
    for (int i = 0; i < T * OC; i++) ref[i] *= 2.0;
    matmul_forward_acc(out, in, w, b, T, C, OC);
    assert_close(out, ref, T * OC, 1e-5, 1e-5);
}

/* One-row matmuls of fp32 weights (the decode path, weights_matmul.c) against double, for
 * sizes off the vector width, with and without bias and accumulation, and bit-identical
 * whatever the thread count. */
static void test_matmul_weight_f32_rows(void **state) {
    (void)state;
    const int Cs[] = {1, 7, 8, 16, 37, 512}, OCs[] = {1, 5, 300, 4096};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
        for (size_t oi = 0; oi < sizeof OCs / sizeof OCs[0]; oi++)
            for (int T = 1; T < MATMUL_GEMV_MAX_T; T++) {
                const int C = Cs[ci], OC = OCs[oi];
                float *in = malloc(sizeof(float) * T * C), *w = malloc(sizeof(float) * OC * C);
                float *b = malloc(sizeof(float) * OC), *out = malloc(sizeof(float) * T * OC);
                float *out2 = malloc(sizeof(float) * T * OC);
                double *ref = malloc(sizeof(double) * T * OC);
                fill(in, (size_t)T * C, 11 + C, 1.0f);
                fill(w, (size_t)OC * C, 12 + OC, 1.0f);
                fill(b, OC, 13, 1.0f);
                sb_weight sw = {.dtype = SB_DTYPE_F32, .data = w};
                for (int withb = 0; withb < 2; withb++) {
                    for (int t = 0; t < T; t++)
                        for (int o = 0; o < OC; o++) {
                            double s = withb ? b[o] : 0.0;
                            for (int c = 0; c < C; c++) s += (double)in[t * C + c] * w[(size_t)o * C + c];
                            ref[t * OC + o] = s;
                        }
                    for (int i = 0; i < T * OC; i++) out[i] = NAN;
                    matmul_weight_forward(out, in, &sw, withb ? b : NULL, T, C, OC);
                    assert_close(out, ref, (size_t)T * OC, 1e-5 * sqrt((double)C), 1e-5);
                    for (int i = 0; i < T * OC; i++) ref[i] += out[i];
                    memcpy(out2, out, sizeof(float) * T * OC);
                    matmul_weight_forward_acc(out2, in, &sw, withb ? b : NULL, T, C, OC);
                    assert_close(out2, ref, (size_t)T * OC, 2e-5 * sqrt((double)C), 1e-5);
                }
                int saved = omp_get_max_threads();
                omp_set_num_threads(1);
                matmul_weight_forward(out, in, &sw, b, T, C, OC);
                omp_set_num_threads(3);
                matmul_weight_forward(out2, in, &sw, b, T, C, OC);
                omp_set_num_threads(saved);
                assert_memory_equal(out, out2, sizeof(float) * T * OC);
                free(in), free(w), free(b), free(out), free(out2), free(ref);
            }
}

/* ---------------------------------------------------------------- norms */

static void test_norms(void **state) {
    (void)state;
    enum { T = 5, C = 37 };
    float in[T * C], w[C], b[C], out[T * C];
    double ref[T * C];
    fill(in, T * C, 4, 2.0f);
    for (int i = 0; i < T * C; i++) in[i] += 3.0f; /* a mean far from 0 separates RMS from Layer */
    fill(w, C, 5, 1.0f);
    fill(b, C, 6, 1.0f);
    const float eps = 1e-5f;
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)in[t * C + c] * in[t * C + c];
        for (int c = 0; c < C; c++) ref[t * C + c] = in[t * C + c] / sqrt(ss / C + eps) * w[c];
    }
    rmsnorm_forward(out, in, w, eps, T, C);
    assert_close(out, ref, T * C, 1e-5, 1e-5);
    norm_forward(out, in, w, b, SB_NORM_RMS, eps, T, C);
    assert_close(out, ref, T * C, 1e-5, 1e-5);

    for (int withb = 0; withb < 2; withb++) {
        for (int t = 0; t < T; t++) {
            double m = 0, v = 0;
            for (int c = 0; c < C; c++) m += in[t * C + c];
            m /= C;
            for (int c = 0; c < C; c++) v += (in[t * C + c] - m) * (in[t * C + c] - m);
            v /= C;
            for (int c = 0; c < C; c++)
                ref[t * C + c] = (in[t * C + c] - m) / sqrt(v + eps) * w[c] + (withb ? b[c] : 0.0);
        }
        layernorm_forward(out, in, w, withb ? b : NULL, eps, T, C);
        assert_close(out, ref, T * C, 1e-5, 1e-5);
        /* in place */
        float tmp[T * C];
        memcpy(tmp, in, sizeof tmp);
        norm_forward(tmp, tmp, w, withb ? b : NULL, SB_NORM_LAYER, eps, T, C);
        assert_close(tmp, ref, T * C, 1e-5, 1e-5);
    }
}

/* Row-parallel ops give bit-identical results whatever the thread count. */
static void test_thread_count_invariance(void **state) {
    (void)state;
    enum { T = 64, C = 96 };
    float *in = malloc(sizeof(float) * T * C), *w = malloc(sizeof(float) * C);
    float *o1 = malloc(sizeof(float) * T * C), *o2 = malloc(sizeof(float) * T * C);
    fill(in, T * C, 7, 1.0f);
    fill(w, C, 8, 1.0f);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    layernorm_forward(o1, in, w, NULL, 1e-5f, T, C);
    omp_set_num_threads(4);
    layernorm_forward(o2, in, w, NULL, 1e-5f, T, C);
    omp_set_num_threads(saved);
    assert_memory_equal(o1, o2, sizeof(float) * T * C);
    free(in), free(w), free(o1), free(o2);
}

/* ---------------------------------------------------------------- RoPE */

/* Reference rotation in double, Hugging Face rotate_half layout. */
static void rope_ref_half(double *out, const float *x, int n_heads, int hd, int rd, int64_t pos, double theta) {
    int half = rd / 2;
    for (int h = 0; h < n_heads; h++) {
        const float *v = x + h * hd;
        double *o = out + h * hd;
        for (int d = 0; d < hd; d++) o[d] = v[d];
        for (int j = 0; j < half; j++) {
            double ang = (double)pos * pow(theta, -2.0 * j / rd);
            o[j] = v[j] * cos(ang) - v[j + half] * sin(ang);
            o[j + half] = v[j] * sin(ang) + v[j + half] * cos(ang);
        }
    }
}

static void test_rope_reference(void **state) {
    (void)state;
    enum { H = 3, HD = 16 };
    float x[H * HD], y[H * HD];
    double ref[H * HD];
    fill(x, H * HD, 9, 1.0f);
    /* large positions: angles must be formed in double (float pos*inv_freq is off by ~0.1 rad) */
    const int64_t positions[] = {0, 1, 17, 4095, 1000003, 3999999};
    for (size_t k = 0; k < sizeof positions / sizeof positions[0]; k++) {
        for (int rd = 8; rd <= HD; rd += 8) {
            memcpy(y, x, sizeof x);
            rope_apply(y, H, HD, rd, positions[k], 10000.0f, SB_ROPE_HALF);
            rope_ref_half(ref, x, H, HD, rd, positions[k], 10000.0);
            assert_close(y, ref, H * HD, 2e-6, 2e-6);
        }
    }
}

static void test_rope_composition(void **state) {
    (void)state;
    enum { H = 2, HD = 32 };
    float x[H * HD], a[H * HD], b[H * HD];
    fill(x, H * HD, 10, 1.0f);
    for (int style = 0; style < 2; style++) {
        const int64_t pa[] = {3, 100, 2000000}, pb[] = {5, -40, 1234567};
        for (int k = 0; k < 3; k++) {
            memcpy(a, x, sizeof x);
            memcpy(b, x, sizeof x);
            rope_apply(a, H, HD, HD, pa[k], 10000.0f, (sb_rope_style)style);
            rope_apply(a, H, HD, HD, pb[k], 10000.0f, (sb_rope_style)style);
            rope_apply(b, H, HD, HD, pa[k] + pb[k], 10000.0f, (sb_rope_style)style);
            assert_close_f(a, b, H * HD, 1e-5);
            /* rotate_delta is the same shift */
            memcpy(a, x, sizeof x);
            rope_apply(a, H, HD, HD, pa[k], 10000.0f, (sb_rope_style)style);
            rope_rotate_delta(a, 1, H * HD, H, HD, HD, pb[k], 10000.0f, (sb_rope_style)style);
            assert_close_f(a, b, H * HD, 1e-5);
        }
    }
}

static void test_rope_relative(void **state) {
    (void)state;
    enum { HD = 64 };
    float q[HD], k[HD], q2[HD], k2[HD];
    fill(q, HD, 11, 1.0f);
    fill(k, HD, 12, 1.0f);
    for (int style = 0; style < 2; style++) {
        memcpy(q2, q, sizeof q);
        memcpy(k2, k, sizeof k);
        rope_apply(q2, 1, HD, HD, 10, 10000.0f, (sb_rope_style)style);
        rope_apply(k2, 1, HD, HD, 7, 10000.0f, (sb_rope_style)style);
        float d1 = dot_f32(q2, k2, HD);
        memcpy(q2, q, sizeof q);
        memcpy(k2, k, sizeof k);
        rope_apply(q2, 1, HD, HD, 10 + 1000000, 10000.0f, (sb_rope_style)style);
        rope_apply(k2, 1, HD, HD, 7 + 1000000, 10000.0f, (sb_rope_style)style);
        float d2 = dot_f32(q2, k2, HD);
        assert_true(fabsf(d1 - d2) < 1e-4f);
        /* and it does depend on the distance */
        memcpy(k2, k, sizeof k);
        rope_apply(k2, 1, HD, HD, 7 + 1000000 - 3, 10000.0f, (sb_rope_style)style);
        assert_true(fabsf(dot_f32(q2, k2, HD) - d1) > 1e-3f);
    }
}

static void test_rope_partial_and_styles(void **state) {
    (void)state;
    enum { H = 2, HD = 24, RD = 8 };
    float x[H * HD], y[H * HD], perm[H * HD], z[H * HD];
    fill(x, H * HD, 13, 1.0f);
    memcpy(y, x, sizeof x);
    rope_apply(y, H, HD, RD, 77, 10000.0f, SB_ROPE_HALF);
    for (int h = 0; h < H; h++) {
        assert_memory_equal(y + h * HD + RD, x + h * HD + RD, (HD - RD) * sizeof(float));
        assert_true(memcmp(y + h * HD, x + h * HD, RD * sizeof(float)) != 0);
    }
    memcpy(y, x, sizeof x);
    rope_apply(y, H, HD, RD, 77, 10000.0f, SB_ROPE_INTERLEAVED);
    for (int h = 0; h < H; h++) assert_memory_equal(y + h * HD + RD, x + h * HD + RD, (HD - RD) * sizeof(float));

    /* interleaved == half after mapping pair (j, j+RD/2) to (2j, 2j+1) */
    memcpy(perm, x, sizeof x);
    for (int h = 0; h < H; h++)
        for (int j = 0; j < RD / 2; j++) {
            perm[h * HD + 2 * j] = x[h * HD + j];
            perm[h * HD + 2 * j + 1] = x[h * HD + j + RD / 2];
        }
    memcpy(y, x, sizeof x);
    rope_apply(y, H, HD, RD, 12345, 10000.0f, SB_ROPE_HALF);
    rope_apply(perm, H, HD, RD, 12345, 10000.0f, SB_ROPE_INTERLEAVED);
    memcpy(z, perm, sizeof z);
    for (int h = 0; h < H; h++)
        for (int j = 0; j < RD / 2; j++) {
            z[h * HD + j] = perm[h * HD + 2 * j];
            z[h * HD + j + RD / 2] = perm[h * HD + 2 * j + 1];
        }
    assert_close_f(z, y, H * HD, 1e-6);
}

static void test_rope_batched_and_table(void **state) {
    (void)state;
    enum { T = 5, H = 2, HD = 16, STRIDE = 3 * H * HD };
    float x[T * STRIDE], y[T * STRIDE], one[H * HD];
    fill(x, T * STRIDE, 14, 1.0f);
    memcpy(y, x, sizeof x);
    int64_t pos[T] = {0, 9, 4, 100000, 7};
    /* rotate the middle third of each row (k inside a fused qkv row) */
    rope_forward(y + H * HD, pos, T, STRIDE, H, HD, 12, 5000.0f, SB_ROPE_INTERLEAVED);
    float cs[T * 6], sn[T * 6];
    for (int t = 0; t < T; t++) {
        assert_memory_equal(y + t * STRIDE, x + t * STRIDE, H * HD * sizeof(float));
        assert_memory_equal(y + t * STRIDE + 2 * H * HD, x + t * STRIDE + 2 * H * HD, H * HD * sizeof(float));
        memcpy(one, x + t * STRIDE + H * HD, sizeof one);
        rope_apply(one, H, HD, 12, pos[t], 5000.0f, SB_ROPE_INTERLEAVED);
        assert_close_f(y + t * STRIDE + H * HD, one, H * HD, 0.0);
        /* the table path */
        rope_table_fill(cs + t * 6, sn + t * 6, pos[t], 1, 12, 5000.0f);
        memcpy(one, x + t * STRIDE + H * HD, sizeof one);
        rope_apply_table(one, cs + t * 6, sn + t * 6, H, HD, 12, SB_ROPE_INTERLEAVED);
        assert_close_f(y + t * STRIDE + H * HD, one, H * HD, 0.0);
    }
    /* a multi-row table equals single rows */
    float cs2[3 * 6], sn2[3 * 6], c1[6], s1[6];
    rope_table_fill(cs2, sn2, 1000, 3, 12, 5000.0f);
    rope_table_fill(c1, s1, 1002, 1, 12, 5000.0f);
    assert_memory_equal(cs2 + 12, c1, sizeof c1);
    assert_memory_equal(sn2 + 12, s1, sizeof s1);
}

/* ---------------------------------------------------------------- ALiBi */

static void test_alibi(void **state) {
    (void)state;
    float s[16];
    alibi_slopes(s, 8, 8.0f);
    for (int h = 0; h < 8; h++) assert_float_equal(s[h], ldexp(1.0, -(h + 1)), 1e-9);
    alibi_slopes(s, 4, 8.0f);
    const double four[] = {0.25, 0.0625, 0.015625, 0.00390625};
    for (int h = 0; h < 4; h++) assert_float_equal(s[h], four[h], 1e-9);
    /* 6 heads: n' = 8, MPT takes slopes[1::2] then slopes[::2] */
    alibi_slopes(s, 6, 8.0f);
    const int six[] = {2, 4, 6, 8, 1, 3};
    for (int h = 0; h < 6; h++) assert_float_equal(s[h], ldexp(1.0, -six[h]), 1e-9);
    /* 12 heads: n' = 16, exponents k * 8/16 */
    alibi_slopes(s, 12, 8.0f);
    const double twelve[] = {1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5};
    for (int h = 0; h < 12; h++) assert_float_equal(s[h], pow(2.0, -twelve[h]), 1e-7);
    alibi_slopes(s, 1, 8.0f);
    assert_float_equal(s[0], 1.0 / 256.0, 1e-9);
}

/* ---------------------------------------------------------------- activations */

static void test_activations(void **state) {
    (void)state;
    assert_float_equal(sb_silu(0.0f), 0.0f, 1e-9);
    assert_float_equal(sb_silu(1.0f), 0.7310585786, 1e-6);
    assert_float_equal(sb_silu(-2.0f), -0.2384058440, 1e-6);
    assert_float_equal(sb_gelu_erf(1.0f), 0.8413447461, 1e-6);
    assert_float_equal(sb_gelu_erf(-1.5f), -0.1002108019, 1e-6);
    assert_float_equal(sb_gelu_tanh(1.0f), 0.8411919906, 1e-6);
    assert_float_equal(sb_gelu_tanh(-1.5f), -0.1004284230, 1e-6);
    assert_true(isfinite(sb_silu(-1000.0f)) && isfinite(sb_gelu_tanh(-1000.0f)));
    assert_float_equal(sb_silu(-1000.0f), 0.0f, 1e-9);

    enum { N = 100 };
    float g[N], u[N], o[N];
    double ref[N];
    fill(g, N, 15, 3.0f);
    fill(u, N, 16, 1.0f);
    swiglu_forward(o, g, u, N);
    for (int i = 0; i < N; i++) ref[i] = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
    assert_close(o, ref, N, 1e-6, 1e-5);
    glu_forward(o, g, u, N, SB_ACT_GELU_ERF);
    for (int i = 0; i < N; i++) ref[i] = 0.5 * g[i] * (1.0 + erf(g[i] / sqrt(2.0))) * u[i];
    assert_close(o, ref, N, 1e-6, 1e-5);
    act_forward(o, g, N, SB_ACT_GELU_TANH);
    for (int i = 0; i < N; i++) {
        double x = g[i];
        ref[i] = 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    }
    assert_close(o, ref, N, 1e-6, 1e-5);
}

/* ---------------------------------------------------------------- softmax */

static void softmax_ref(double *p, double *extra_mass, const float *s, int n, int has_extra, double e) {
    double m = has_extra ? e : -INFINITY;
    for (int i = 0; i < n; i++) m = fmax(m, s[i]);
    double z = has_extra ? exp(e - m) : 0.0;
    for (int i = 0; i < n; i++) z += exp(s[i] - m);
    for (int i = 0; i < n; i++) p[i] = exp(s[i] - m) / z;
    *extra_mass = has_extra ? exp(e - m) / z : 0.0;
}

static void test_softmax_variants(void **state) {
    (void)state;
    enum { N = 9 };
    float s[N], p[N];
    double ref[N], em;
    fill(s, N, 17, 2.0f);
    float mass = softmax_extra_forward(p, s, N, SB_SOFTMAX_STANDARD, 123.0f);
    softmax_ref(ref, &em, s, N, 0, 0);
    assert_close(p, ref, N, 1e-7, 1e-6);
    assert_float_equal(mass, 0.0f, 0.0);
    softmax_forward(p, s, N);
    assert_close(p, ref, N, 1e-7, 1e-6);

    mass = softmax_extra_forward(p, s, N, SB_SOFTMAX_OFF_BY_ONE, 123.0f /* ignored: the extra logit is 0 */);
    softmax_ref(ref, &em, s, N, 1, 0.0);
    assert_close(p, ref, N, 1e-7, 1e-6);
    assert_float_equal(mass, em, 1e-6);
    double sum = mass;
    for (int i = 0; i < N; i++) sum += p[i];
    assert_float_equal(sum, 1.0, 1e-6);
    assert_true(mass > 0.0f);

    mass = softmax_extra_forward(p, s, N, SB_SOFTMAX_SINK_LOGIT, 1.7f);
    softmax_ref(ref, &em, s, N, 1, 1.7);
    assert_close(p, ref, N, 1e-7, 1e-6);
    assert_float_equal(mass, em, 1e-6);

    /* stability: huge logits, and an extra logit above every score */
    float big[3] = {1000.0f, 999.0f, -INFINITY};
    mass = softmax_extra_forward(p, big, 3, SB_SOFTMAX_SINK_LOGIT, 1001.0f);
    softmax_ref(ref, &em, big, 3, 1, 1001.0);
    assert_close(p, ref, 3, 1e-7, 1e-6);
    assert_float_equal(p[2], 0.0f, 0.0);
    assert_float_equal(mass, em, 1e-6);
    mass = softmax_extra_forward(p, big, 3, SB_SOFTMAX_OFF_BY_ONE, 0.0f);
    assert_true(isfinite(p[0]) && p[0] > 0.7f && mass < 1e-30f);
    /* no keys at all: everything goes to the extra slot */
    assert_float_equal(softmax_extra_forward(p, NULL, 0, SB_SOFTMAX_OFF_BY_ONE, 0.0f), 1.0f, 0.0);
}

/* ---------------------------------------------------------------- embedding, loss, misc */

static void test_embedding(void **state) {
    (void)state;
    enum { V = 10, C = 4 };
    float table[V * C], out[3 * C];
    for (int i = 0; i < V * C; i++) table[i] = (float)i;
    int32_t ids[3] = {2, 9, 0};
    assert_int_equal(embedding_forward(out, ids, table, 3, C, V), SB_OK);
    for (int t = 0; t < 3; t++) assert_memory_equal(out + t * C, table + ids[t] * C, C * sizeof(float));
    int32_t bad[2] = {1, 10};
    assert_int_equal(embedding_forward(out, bad, table, 2, C, V), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "10"));
    int32_t neg[1] = {-1};
    assert_int_equal(embedding_forward(out, neg, table, 1, C, V), SB_ERR);
}

static void test_nll(void **state) {
    (void)state;
    enum { V = 50 };
    float lg[V];
    fill(lg, V, 18, 3.0f);
    for (int tgt = 0; tgt < V; tgt += 7) {
        double m = -INFINITY, z = 0;
        for (int i = 0; i < V; i++) m = fmax(m, lg[i]);
        for (int i = 0; i < V; i++) z += exp(lg[i] - m);
        double ref = -(lg[tgt] - m - log(z));
        assert_float_equal(nll_from_logits(lg, V, tgt), ref, 1e-9);
    }
    /* uniform logits: log V; huge logits: still finite */
    float flat[V];
    for (int i = 0; i < V; i++) flat[i] = 1e4f;
    assert_float_equal(nll_from_logits(flat, V, 3), log((double)V), 1e-9);
    flat[3] = 1e4f + 100.0f;
    assert_float_equal(nll_from_logits(flat, V, 3), 0.0, 1e-12);
    assert_true(isnan(nll_from_logits(lg, V, V)));
    assert_true(isnan(nll_from_logits(lg, V, -1)));
}

static void test_misc(void **state) {
    (void)state;
    float x[6] = {1, 5, -2, 5, 0.5f, -7};
    assert_int_equal(argmax(x, 6), 1);
    float y[6];
    residual_forward(y, x, x, 6);
    for (int i = 0; i < 6; i++) assert_float_equal(y[i], 2 * x[i], 0);
    clamp_forward(y, 6, 3.0f);
    const float want[6] = {2, 3, -3, 3, 1, -3};
    assert_memory_equal(y, want, sizeof want);
    clamp_forward(y, 6, 0.0f); /* off */
    assert_memory_equal(y, want, sizeof want);
    assert_float_equal(dot_f32(x, x, 6), 1 + 25 + 4 + 25 + 0.25 + 49, 1e-5);
}

/* ---------------------------------------------------------------- half precision */

static double f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16_to_f32_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sb_f16_to_f32((uint16_t)h);
        double want = f16_value((uint16_t)h);
        if (isnan(want)) {
            if (!isnan(f)) fail_msg("0x%04x should be NaN", h);
            /* and it goes back to a NaN */
            if ((sb_f32_to_f16(f) & 0x7c00) != 0x7c00 || !(sb_f32_to_f16(f) & 0x3ff)) fail_msg("NaN 0x%04x lost", h);
            continue;
        }
        if ((double)f != want || !signbit(f) != !signbit(want)) fail_msg("0x%04x: got %.10g want %.10g", h, (double)f, want);
        if (sb_f32_to_f16(f) != h) fail_msg("0x%04x does not roundtrip (0x%04x)", h, sb_f32_to_f16(f));
    }
}

/* Correct rounding of f32 -> f16 on random floats: the result is the nearest half, ties to even. */
static void test_f32_to_f16_rounding(void **state) {
    (void)state;
    sb_rng r;
    sb_rng_seed(&r, 19);
    for (int i = 0; i < 300000; i++) {
        /* magnitudes from 2^-27 to 2^17 cover subnormals, normals and overflow */
        uint32_t bits = (uint32_t)(sb_rng_next(&r) & 0x807fffffu) | ((uint32_t)(100 + sb_rng_below(&r, 44)) << 23);
        float f = sb_bits_f32(bits);
        uint16_t h = sb_f32_to_f16(f);
        double got = f16_value(h), x = f;
        if (fabs(x) >= 65520.0) {
            if (!isinf(got) || !signbit(got) != !signbit(x)) fail_msg("%.9g should overflow to inf", x);
            continue;
        }
        /* neighbours of h (same sign) must not be strictly closer */
        uint16_t mag = h & 0x7fff;
        for (int d = -1; d <= 1; d += 2) {
            if ((mag == 0 && d < 0) || (mag == 0x7bff && d > 0)) continue;
            double nb = f16_value((uint16_t)((h & 0x8000) | (mag + d)));
            double eg = fabs(got - x), en = fabs(nb - x);
            if (en < eg) fail_msg("%.12g -> 0x%04x, neighbour is closer", x, h);
            if (en == eg && (mag & 1)) fail_msg("%.12g -> 0x%04x: tie not to even", x, h);
        }
    }
}

static void test_half_edges(void **state) {
    (void)state;
    assert_int_equal(sb_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(sb_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(sb_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(sb_f32_to_f16(-1e9f), 0xfc00);
    assert_int_equal(sb_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(sb_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(sb_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(sb_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);          /* tie -> even (0) */
    assert_int_equal(sb_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(sb_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);          /* 1.5 ulp tie -> 2 */
    assert_int_equal(sb_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);       /* subnormal rounds up to normal */
    assert_int_equal(sb_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);   /* tie -> even */
    assert_int_equal(sb_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    assert_true(isnan(sb_f16_to_f32(sb_f32_to_f16(NAN))));
    assert_int_equal(sb_f32_to_f16(1.0f), 0x3c00);

    assert_int_equal(sb_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(sb_f32_to_bf16(sb_bits_f32(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(sb_f32_to_bf16(sb_bits_f32(0x3f818000u)), 0x3f82);
    assert_int_equal(sb_f32_to_bf16(sb_bits_f32(0x3f808001u)), 0x3f81);
    assert_int_equal(sb_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(sb_f32_to_bf16(FLT_MAX), 0x7f80); /* rounds up to inf, as RNE does */
    assert_true(isnan(sb_bf16_to_f32(sb_f32_to_bf16(sb_bits_f32(0x7f800001u))))); /* NaN payload in low bits */
    for (uint32_t b = 0; b < 65536; b++) {
        float f = sb_bf16_to_f32((uint16_t)b);
        if (isnan(f)) continue;
        if (sb_f32_to_bf16(f) != b) fail_msg("bf16 0x%04x does not roundtrip", b);
    }
    /* arrays: unaligned little-endian bytes */
    unsigned char raw[7] = {0xff, 0x00, 0x3c, 0x00, 0xc0, 0x00, 0x00};
    float out[3];
    sb_f16_to_f32_array(out, raw + 1, 3);
    assert_float_equal(out[0], 1.0, 0);
    assert_float_equal(out[1], -2.0, 0);
    assert_float_equal(out[2], 0.0, 0);
    unsigned char back[7] = {0};
    sb_f32_to_f16_array(back + 1, out, 3);
    assert_memory_equal(back + 1, raw + 1, 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_weight_f32_rows),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_thread_count_invariance),
        cmocka_unit_test(test_rope_reference),
        cmocka_unit_test(test_rope_composition),
        cmocka_unit_test(test_rope_relative),
        cmocka_unit_test(test_rope_partial_and_styles),
        cmocka_unit_test(test_rope_batched_and_table),
        cmocka_unit_test(test_alibi),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_softmax_variants),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_nll),
        cmocka_unit_test(test_misc),
        cmocka_unit_test(test_f16_to_f32_exhaustive),
        cmocka_unit_test(test_f32_to_f16_rounding),
        cmocka_unit_test(test_half_edges),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
