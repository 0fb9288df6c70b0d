/* Finite-difference gradient checks of the training kernels and of the whole training model.
 *
 * Each check builds L = sum(out * R) for a fixed random R (in double), gets the analytic
 * gradient by running the backward with dout = R, and compares it with central differences
 * of L over every input coordinate (or a fixed sample of them). The comparison is on the
 * whole gradient vector: |g_fd - g|_2 / (|g_fd|_2 + |g|_2) must stay below a threshold that
 * float rounding passes easily but a wrong backward (a missed term, a wrong sign) does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cpu/ops.h"
#include "engine/rng.h"
#include "train/train.h"
#include "train/train_layers.h"
#include "tests/helpers/sb_test.h"

/* ------------------------------------------------------------------ harness */

typedef double (*loss_fn)(void *ctx);

static void fill(sb_rng *r, float *x, size_t n, float std) { sb_rng_fill_normal(r, x, n, 0.0f, std); }

static double dot_d(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Relative error between analytic grad[n] and central differences of f over x[n]
 * (every coordinate when stride == 1, else every stride-th). */
static double grad_rel_error(loss_fn f, void *ctx, float *x, const float *grad, size_t n, float eps,
                             size_t stride) {
    double num = 0.0, den_a = 0.0, den_b = 0.0;
    for (size_t i = 0; i < n; i += stride) {
        float save = x[i];
        x[i] = save + eps;
        double lp = f(ctx);
        x[i] = save - eps;
        double lm = f(ctx);
        x[i] = save;
        /* the step actually taken in float */
        double h = (double)(save + eps) - (double)(save - eps);
        double fd = (lp - lm) / h;
        num += (fd - grad[i]) * (fd - grad[i]);
        den_a += fd * fd;
        den_b += (double)grad[i] * grad[i];
    }
    double den = sqrt(den_a) + sqrt(den_b);
    return den > 0 ? sqrt(num) / den : 0.0;
}

#define CHECK_GRAD(f, ctx, x, g, n, eps, stride, tol)                                                 \
    do {                                                                                             \
        double e_ = grad_rel_error((f), (ctx), (x), (g), (n), (eps), (stride));                      \
        print_message("  %-28s rel err %.2e\n", #g, e_);                                              \
        assert_true(e_ < (tol));                                                                     \
    } while (0)

/* ------------------------------------------------------------------ matmul */

typedef struct { int N, C, OC; float *in, *w, *b, *out, *R; } mm_ctx;

static double mm_loss(void *p) {
    mm_ctx *c = p;
    matmul_forward(c->out, c->in, c->w, c->b, c->N, c->C, c->OC);
    return dot_d(c->out, c->R, (size_t)c->N * c->OC);
}

static void test_matmul_grad(void **state) {
    (void)state;
    sb_rng r;
    sb_rng_seed(&r, 1);
    mm_ctx c = {.N = 7, .C = 9, .OC = 5};
    c.in = malloc_check(sizeof(float) * c.N * c.C);
    c.w = malloc_check(sizeof(float) * c.OC * c.C);
    c.b = malloc_check(sizeof(float) * c.OC);
    c.out = malloc_check(sizeof(float) * c.N * c.OC);
    c.R = malloc_check(sizeof(float) * c.N * c.OC);
    fill(&r, c.in, (size_t)c.N * c.C, 1.0f);
    fill(&r, c.w, (size_t)c.OC * c.C, 0.5f);
    fill(&r, c.b, (size_t)c.OC, 0.5f);
    fill(&r, c.R, (size_t)c.N * c.OC, 1.0f);
    float *din = calloc_check((size_t)c.N * c.C, sizeof(float));
    float *dw = calloc_check((size_t)c.OC * c.C, sizeof(float));
    float *db = calloc_check((size_t)c.OC, sizeof(float));
    matmul_backward(din, dw, db, c.R, c.in, c.w, c.N, c.C, c.OC);
    CHECK_GRAD(mm_loss, &c, c.in, din, (size_t)c.N * c.C, 1e-2f, 1, 1e-3);
    CHECK_GRAD(mm_loss, &c, c.w, dw, (size_t)c.OC * c.C, 1e-2f, 1, 1e-3);
    CHECK_GRAD(mm_loss, &c, c.b, db, (size_t)c.OC, 1e-2f, 1, 1e-3);
    /* accumulation: a second backward doubles the gradients */
    float dw0 = dw[3];
    matmul_backward(din, dw, db, c.R, c.in, c.w, c.N, c.C, c.OC);
    assert_float_equal(dw[3], 2 * dw0, 1e-5 * fabsf(dw0) + 1e-7);
    free(c.in), free(c.w), free(c.b), free(c.out), free(c.R), free(din), free(dw), free(db);
}

/* ------------------------------------------------------------------ rmsnorm */

typedef struct { int N, C; float eps; float *in, *w, *out, *R; } rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    rmsnorm_forward(c->out, c->in, c->w, c->eps, c->N, c->C);
    return dot_d(c->out, c->R, (size_t)c->N * c->C);
}

static void test_rmsnorm_grad(void **state) {
    (void)state;
    sb_rng r;
    sb_rng_seed(&r, 2);
    rms_ctx c = {.N = 6, .C = 16, .eps = 1e-5f};
    size_t n = (size_t)c.N * c.C;
    c.in = malloc_check(sizeof(float) * n);
    c.w = malloc_check(sizeof(float) * c.C);
    c.out = malloc_check(sizeof(float) * n);
    c.R = malloc_check(sizeof(float) * n);
    fill(&r, c.in, n, 1.0f);
    for (int i = 0; i < c.C; i++) c.w[i] = 1.0f + 0.3f * (float)sb_rng_normal(&r);
    fill(&r, c.R, n, 1.0f);
    float *din = calloc_check(n, sizeof(float)), *dw = calloc_check((size_t)c.C, sizeof(float));
    rmsnorm_backward(din, dw, c.R, c.in, c.w, c.eps, c.N, c.C);
    CHECK_GRAD(rms_loss, &c, c.in, din, n, 1e-2f, 1, 2e-3);
    CHECK_GRAD(rms_loss, &c, c.w, dw, (size_t)c.C, 1e-2f, 1, 1e-3);
    free(c.in), free(c.w), free(c.out), free(c.R), free(din), free(dw);
}

/* ------------------------------------------------------------------ embedding */

typedef struct { int N, C, V; const int32_t *ids; float *table, *out, *R; } emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    assert_int_equal(embedding_forward(c->out, c->ids, c->table, c->N, c->C, c->V), SB_OK);
    return dot_d(c->out, c->R, (size_t)c->N * c->C);
}

static void test_embedding_grad(void **state) {
    (void)state;
    sb_rng r;
    sb_rng_seed(&r, 3);
    static const int32_t ids[] = {3, 1, 3, 0, 4, 3}; /* repeats accumulate; id 2 unused */
    emb_ctx c = {.N = 6, .C = 40, .V = 5, .ids = ids};
    c.table = malloc_check(sizeof(float) * c.V * c.C);
    c.out = malloc_check(sizeof(float) * c.N * c.C);
    c.R = malloc_check(sizeof(float) * c.N * c.C);
    fill(&r, c.table, (size_t)c.V * c.C, 1.0f);
    fill(&r, c.R, (size_t)c.N * c.C, 1.0f);
    float *dt = calloc_check((size_t)c.V * c.C, sizeof(float));
    embedding_backward(dt, c.R, c.ids, c.N, c.C);
    CHECK_GRAD(emb_loss, &c, c.table, dt, (size_t)c.V * c.C, 1e-2f, 1, 1e-3);
    for (int i = 0; i < c.C; i++) assert_true(dt[2 * c.C + i] == 0.0f);
    free(c.table), free(c.out), free(c.R), free(dt);
}

/* ------------------------------------------------------------------ rope */

typedef struct { int B, T, NH, D; sb_rope_style style; float *x, *y, *cs, *sn, *R; } rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->NH * c->D;
    memcpy(c->y, c->x, n * sizeof(float));
    train_rope_forward(c->y, c->cs, c->sn, c->B * c->T, c->T, c->NH, c->D, c->style);
    return dot_d(c->y, c->R, n);
}

static void rope_case(sb_rope_style style) {
    sb_rng r;
    sb_rng_seed(&r, 4);
    rope_ctx c = {.B = 2, .T = 5, .NH = 3, .D = 8, .style = style};
    size_t n = (size_t)c.B * c.T * c.NH * c.D;
    c.x = malloc_check(n * sizeof(float));
    c.y = malloc_check(n * sizeof(float));
    c.R = malloc_check(n * sizeof(float));
    c.cs = malloc_check((size_t)c.T * c.D / 2 * sizeof(float));
    c.sn = malloc_check((size_t)c.T * c.D / 2 * sizeof(float));
    rope_table_fill(c.cs, c.sn, 0, c.T, c.D, 10000.0f);
    fill(&r, c.x, n, 1.0f);
    fill(&r, c.R, n, 1.0f);
    /* the forward matches the engine's per-token rope at position t */
    memcpy(c.y, c.x, n * sizeof(float));
    train_rope_forward(c.y, c.cs, c.sn, c.B * c.T, c.T, c.NH, c.D, c.style);
    float *ref = malloc_check((size_t)c.NH * c.D * sizeof(float));
    int row = 1 * c.T + 3; /* batch 1, position 3 */
    memcpy(ref, c.x + (size_t)row * c.NH * c.D, (size_t)c.NH * c.D * sizeof(float));
    rope_apply(ref, c.NH, c.D, c.D, 3, 10000.0f, style);
    for (int i = 0; i < c.NH * c.D; i++) assert_float_equal(ref[i], c.y[(size_t)row * c.NH * c.D + i], 1e-5);
    float *g = malloc_check(n * sizeof(float));
    memcpy(g, c.R, n * sizeof(float));
    rope_backward(g, c.cs, c.sn, c.B * c.T, c.T, c.NH, c.D, c.style);
    CHECK_GRAD(rope_loss, &c, c.x, g, n, 1e-2f, 1, 1e-3);
    free(c.x), free(c.y), free(c.R), free(c.cs), free(c.sn), free(g), free(ref);
}

static void test_rope_grad(void **state) {
    (void)state;
    rope_case(SB_ROPE_HALF);
    rope_case(SB_ROPE_INTERLEAVED);
}

/* ------------------------------------------------------------------ attention */

typedef struct {
    int B, T, H, KVH, D;
    sb_softmax_kind kind;
    float *q, *k, *v, *sl, *out, *probs, *extra, *R;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    train_attention_forward(c->out, c->probs, c->extra, c->q, c->k, c->v, c->sl, c->kind, c->B, c->T, c->H,
                            c->KVH, c->D);
    return dot_d(c->out, c->R, (size_t)c->B * c->T * c->H * c->D);
}

/* Straightforward reference: one query at a time, double accumulation. */
static void att_reference(const att_ctx *c, float *out) {
    int group = c->H / c->KVH;
    double *p = malloc_check((size_t)c->T * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int i = 0; i < c->T; i++) {
                const float *qi = c->q + (((size_t)b * c->T + i) * c->H + h) * c->D;
                double m = c->kind == SB_SOFTMAX_STANDARD ? -INFINITY
                           : c->kind == SB_SOFTMAX_OFF_BY_ONE ? 0.0 : c->sl[h];
                double extra = m;
                for (int j = 0; j <= i; j++) {
                    const float *kj = c->k + (((size_t)b * c->T + j) * c->KVH + h / group) * c->D;
                    double s = 0;
                    for (int d = 0; d < c->D; d++) s += (double)qi[d] * kj[d];
                    p[j] = s / sqrt((double)c->D);
                    if (p[j] > m) m = p[j];
                }
                double z = c->kind == SB_SOFTMAX_STANDARD ? 0.0 : exp(extra - m);
                for (int j = 0; j <= i; j++) z += (p[j] = exp(p[j] - m));
                float *o = out + (((size_t)b * c->T + i) * c->H + h) * c->D;
                for (int d = 0; d < c->D; d++) {
                    double s = 0;
                    for (int j = 0; j <= i; j++)
                        s += p[j] / z * c->v[(((size_t)b * c->T + j) * c->KVH + h / group) * c->D + d];
                    o[d] = (float)s;
                }
            }
    free(p);
}

static void att_case(int B, int T, int H, int KVH, int D, sb_softmax_kind kind, size_t stride) {
    print_message(" attention B=%d T=%d H=%d KVH=%d D=%d softmax=%d\n", B, T, H, KVH, D, (int)kind);
    sb_rng r;
    sb_rng_seed(&r, 5 + (uint64_t)kind);
    att_ctx c = {.B = B, .T = T, .H = H, .KVH = KVH, .D = D, .kind = kind};
    size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D;
    c.q = malloc_check(nq * sizeof(float));
    c.k = malloc_check(nk * sizeof(float));
    c.v = malloc_check(nk * sizeof(float));
    c.sl = malloc_check((size_t)H * sizeof(float));
    c.out = malloc_check(nq * sizeof(float));
    c.R = malloc_check(nq * sizeof(float));
    c.probs = malloc_check((size_t)B * H * T * T * sizeof(float));
    c.extra = malloc_check((size_t)B * H * T * sizeof(float));
    /* q, k large enough that attention is far from uniform */
    fill(&r, c.q, nq, 1.5f);
    fill(&r, c.k, nk, 1.5f);
    fill(&r, c.v, nk, 1.0f);
    for (int h = 0; h < H; h++) c.sl[h] = (float)h - 1.0f;
    fill(&r, c.R, nq, 1.0f);

    float *ref = malloc_check(nq * sizeof(float));
    att_reference(&c, ref);
    att_loss(&c);
    for (size_t i = 0; i < nq; i++) assert_float_equal(ref[i], c.out[i], 1e-5);
    /* rows sum to 1 with the extra mass; upper triangle is 0 */
    for (int bh = 0; bh < B * H; bh++)
        for (int i = 0; i < T; i++) {
            const float *row = c.probs + ((size_t)bh * T + i) * T;
            double s = c.extra[(size_t)bh * T + i];
            for (int j = 0; j < T; j++) s += row[j];
            assert_float_equal(s, 1.0, 1e-5);
            for (int j = i + 1; j < T; j++) assert_true(row[j] == 0.0f);
        }

    float *dq = calloc_check(nq, sizeof(float)), *dk = calloc_check(nk, sizeof(float));
    float *dv = calloc_check(nk, sizeof(float)), *dsl = calloc_check((size_t)H, sizeof(float));
    attention_backward(dq, dk, dv, dsl, c.R, c.probs, c.extra, c.q, c.k, c.v, kind, B, T, H, KVH, D);
    CHECK_GRAD(att_loss, &c, c.q, dq, nq, 1e-2f, stride, 5e-3);
    CHECK_GRAD(att_loss, &c, c.k, dk, nk, 1e-2f, stride, 5e-3);
    CHECK_GRAD(att_loss, &c, c.v, dv, nk, 1e-2f, stride, 5e-3);
    if (kind == SB_SOFTMAX_SINK_LOGIT) {
        CHECK_GRAD(att_loss, &c, c.sl, dsl, (size_t)H, 1e-2f, 1, 5e-3);
        double mag = 0;
        for (int h = 0; h < H; h++) mag += fabsf(dsl[h]);
        assert_true(mag > 1e-3); /* the check is not vacuous */
    }
    free(c.q), free(c.k), free(c.v), free(c.sl), free(c.out), free(c.R), free(c.probs), free(c.extra);
    free(ref), free(dq), free(dk), free(dv), free(dsl);
}

static void test_attention_grad_mha(void **state) {
    (void)state;
    att_case(2, 9, 2, 2, 8, SB_SOFTMAX_STANDARD, 1);
    att_case(2, 9, 2, 2, 8, SB_SOFTMAX_OFF_BY_ONE, 1);
    att_case(2, 9, 2, 2, 8, SB_SOFTMAX_SINK_LOGIT, 1);
}

static void test_attention_grad_gqa(void **state) {
    (void)state;
    att_case(1, 11, 4, 2, 4, SB_SOFTMAX_STANDARD, 1);
    att_case(1, 11, 4, 2, 4, SB_SOFTMAX_SINK_LOGIT, 1);
    att_case(2, 7, 3, 1, 4, SB_SOFTMAX_OFF_BY_ONE, 1); /* MQA */
}

/* T beyond one query block (64) exercises the blocked causal sgemms. */
static void test_attention_grad_long(void **state) {
    (void)state;
    att_case(1, 150, 2, 1, 8, SB_SOFTMAX_STANDARD, 7);
    att_case(1, 150, 2, 2, 8, SB_SOFTMAX_SINK_LOGIT, 7);
}

/* ------------------------------------------------------------------ swiglu */

typedef struct { size_t n; float *g, *u, *out, *R; } glu_ctx;

static double glu_loss(void *p) {
    glu_ctx *c = p;
    swiglu_forward(c->out, c->g, c->u, c->n);
    return dot_d(c->out, c->R, c->n);
}

static void test_swiglu_grad(void **state) {
    (void)state;
    sb_rng r;
    sb_rng_seed(&r, 6);
    glu_ctx c = {.n = 64};
    c.g = malloc_check(c.n * sizeof(float));
    c.u = malloc_check(c.n * sizeof(float));
    c.out = malloc_check(c.n * sizeof(float));
    c.R = malloc_check(c.n * sizeof(float));
    fill(&r, c.g, c.n, 2.0f);
    fill(&r, c.u, c.n, 1.0f);
    fill(&r, c.R, c.n, 1.0f);
    float *dg = calloc_check(c.n, sizeof(float)), *du = calloc_check(c.n, sizeof(float));
    swiglu_backward(dg, du, c.R, c.g, c.u, c.n);
    CHECK_GRAD(glu_loss, &c, c.g, dg, c.n, 1e-2f, 1, 1e-3);
    CHECK_GRAD(glu_loss, &c, c.u, du, c.n, 1e-2f, 1, 1e-3);
    free(c.g), free(c.u), free(c.out), free(c.R), free(dg), free(du);
}

/* ------------------------------------------------------------------ cross-entropy */

typedef struct { int N, V; const int32_t *tg; float *logits, *losses; } ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c = p;
    crossentropy_forward(c->losses, NULL, c->logits, c->tg, c->N, c->V);
    double s = 0;
    for (int n = 0; n < c->N; n++) s += c->losses[n];
    return s * 0.25; /* dloss = 0.25 */
}

static void test_crossentropy_grad(void **state) {
    (void)state;
    sb_rng r;
    sb_rng_seed(&r, 7);
    static const int32_t tg[] = {2, -1, 0, 10, 5};
    ce_ctx c = {.N = 5, .V = 11, .tg = tg};
    size_t n = (size_t)c.N * c.V;
    c.logits = malloc_check(n * sizeof(float));
    c.losses = malloc_check((size_t)c.N * sizeof(float));
    fill(&r, c.logits, n, 2.0f);
    ce_loss(&c);
    assert_true(c.losses[1] == 0.0f);
    assert_float_equal(c.losses[0], nll_from_logits(c.logits, c.V, 2), 1e-6);
    float *g = malloc_check(n * sizeof(float));
    crossentropy_softmax_backward(g, c.logits, NULL, c.tg, 0.25f, c.N, c.V);
    CHECK_GRAD(ce_loss, &c, c.logits, g, n, 1e-2f, 1, 1e-3);
    for (int i = 0; i < c.V; i++) assert_true(g[c.V + i] == 0.0f);
    /* in place on the logits gives the same */
    float *inplace = malloc_check(n * sizeof(float));
    memcpy(inplace, c.logits, n * sizeof(float));
    float *lse = malloc_check((size_t)c.N * sizeof(float));
    crossentropy_forward(c.losses, lse, c.logits, c.tg, c.N, c.V);
    crossentropy_softmax_backward(inplace, inplace, lse, c.tg, 0.25f, c.N, c.V);
    assert_memory_equal(inplace, g, n * sizeof(float));
    free(c.logits), free(c.losses), free(g), free(inplace), free(lse);
}

/* ------------------------------------------------------------------ whole model */

typedef struct { sb_train_model *tm; const int32_t *tok, *tg; int B, T; } model_ctx;

static double model_loss(void *p) {
    model_ctx *c = p;
    float loss;
    assert_int_equal(sb_train_forward(c->tm, c->tok, c->tg, c->B, c->T, &loss), SB_OK);
    return loss;
}

static void model_case(sb_softmax_kind kind, bool tied, bool sink_token, int kv_heads) {
    print_message(" model softmax=%d tied=%d sink_token=%d kv_heads=%d\n", (int)kind, tied, sink_token, kv_heads);
    sb_model_config cfg;
    sb_model_config_default(&cfg);
    cfg.vocab_size = 13, cfg.dim = 16, cfg.n_layers = 2, cfg.n_heads = 4, cfg.n_kv_heads = kv_heads;
    cfg.head_dim = 4, cfg.rotary_dim = 4, cfg.ffn_dim = 24, cfg.max_ctx = 16;
    cfg.softmax = kind, cfg.tie_embeddings = tied;
    if (sink_token) cfg.sink_token_id = 12;
    sb_model m;
    assert_int_equal(sb_model_alloc(&m, &cfg), SB_OK);
    sb_train_init_weights(&m, 11, 0.4f);
    /* norm weights and sink logits away from their init so their gradients are generic */
    sb_rng r;
    sb_rng_seed(&r, 12);
    sb_test_perturb_vectors(&cfg, &m, &r, 0.3f);
    int nt = sb_model_tensor_count(&cfg);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(&cfg, &m, t);
    enum { B = 2, T = 10 };
    int32_t tok[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)sb_rng_below(&r, 12);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) tg[b * T + i] = i + 1 < T ? tok[b * T + i + 1] : (int32_t)sb_rng_below(&r, 12);
    if (sink_token)
        for (int b = 0; b < B; b++) tok[b * T] = 12, tg[b * T] = -1;
    tg[5] = -1; /* an ignored target in the middle */
    sb_train_model tm;
    assert_int_equal(sb_train_model_init(&tm, &m, B, T), SB_OK);
    model_ctx c = {&tm, tok, tg, B, T};
    double l0 = model_loss(&c);
    assert_true(l0 > 1.0 && l0 < 10.0);
    sb_train_zero_grad(&tm);
    sb_train_backward(&tm, 1.0f);
    /* every tensor separately, so a wrong gradient of a small tensor is not drowned out */
    sb_tensor_ref *gt = malloc_check((size_t)nt * sizeof *gt);
    sb_model_tensor_list(&cfg, &tm.grad, gt);
    for (int i = 0; i < nt; i++) {
        /* about 60 coordinates per tensor, spread over all of it (keeps the test fast) */
        size_t stride = t[i].numel > 60 ? t[i].numel / 60 + 1 : 1;
        double e = grad_rel_error(model_loss, &c, t[i].data, gt[i].data, t[i].numel, 1e-2f, stride);
        print_message("  %-44s rel err %.2e\n", t[i].name, e);
        assert_true(e < 2e-2);
    }
    /* the unused sink id row gets no gradient unless it is fed */
    double row = 0;
    for (int j = 0; j < cfg.dim; j++) row += fabsf(tm.grad.w.tok_embed[12 * cfg.dim + j]);
    assert_true(sink_token || tied ? row > 0 : row == 0);
    sb_train_model_free(&tm);
    sb_model_free(&m);
    free(t);
    free(gt);
}

static void test_model_grad_vanilla(void **state) {
    (void)state;
    model_case(SB_SOFTMAX_STANDARD, false, false, 2);
    model_case(SB_SOFTMAX_STANDARD, true, false, 4); /* tied head, MHA */
}

static void test_model_grad_sink_token(void **state) {
    (void)state;
    model_case(SB_SOFTMAX_STANDARD, false, true, 2);
}

static void test_model_grad_zero_sink(void **state) {
    (void)state;
    model_case(SB_SOFTMAX_OFF_BY_ONE, false, false, 2);
}

static void test_model_grad_sink_logit(void **state) {
    (void)state;
    model_case(SB_SOFTMAX_SINK_LOGIT, false, false, 1);
}

int main(int argc, char **argv) {
    (void)argc;
    sb_test_omp_passive(argv);
    /* many tiny forwards: thread wake-ups would dominate on a busy machine */
    omp_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_grad),
        cmocka_unit_test(test_rmsnorm_grad),
        cmocka_unit_test(test_embedding_grad),
        cmocka_unit_test(test_rope_grad),
        cmocka_unit_test(test_attention_grad_mha),
        cmocka_unit_test(test_attention_grad_gqa),
        cmocka_unit_test(test_attention_grad_long),
        cmocka_unit_test(test_swiglu_grad),
        cmocka_unit_test(test_crossentropy_grad),
        cmocka_unit_test(test_model_grad_vanilla),
        cmocka_unit_test(test_model_grad_sink_token),
        cmocka_unit_test(test_model_grad_zero_sink),
        cmocka_unit_test(test_model_grad_sink_logit),
    };
    return cmocka_run_group_tests_name("train_grad", tests, NULL, NULL);
}
