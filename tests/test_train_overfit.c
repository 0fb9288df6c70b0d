/* A tiny model of every variant memorises one fixed batch: the forward, backward and AdamW
 * together drive the loss to near zero. Also: the update is bit-identical across thread
 * counts (fixed reduction orders). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/rng.h"
#include "train/train.h"
#include "train/train_sgemm.h"
#include "tests/helpers/sb_test.h"

enum { B = 4, T = 24, V = 32, STEPS = 300 };

typedef struct {
    sb_model m;
    sb_train_model tm;
    float *am, *av;
    uint8_t *mask;
} fixture;

static void fixture_init(fixture *f, sb_softmax_kind kind, bool sink_token) {
    sb_model_config c;
    sb_model_config_default(&c);
    c.vocab_size = V, c.dim = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 8;
    c.rotary_dim = 8, c.ffn_dim = 64, c.max_ctx = T, c.softmax = kind;
    c.sink_token_id = sink_token ? V - 1 : -1;
    assert_int_equal(sb_model_alloc(&f->m, &c), SB_OK);
    sb_train_init_weights(&f->m, 3, 0.02f);
    assert_int_equal(sb_train_model_init(&f->tm, &f->m, B, T), SB_OK);
    f->am = calloc_check(f->m.n_params, sizeof(float));
    f->av = calloc_check(f->m.n_params, sizeof(float));
    f->mask = sb_train_decay_mask(&f->m);
}

static void fixture_free(fixture *f) {
    sb_train_model_free(&f->tm);
    sb_model_free(&f->m);
    free(f->am), free(f->av), free(f->mask);
}

static void make_batch(int32_t *tok, int32_t *tg, bool sink_token) {
    sb_rng r;
    sb_rng_seed(&r, 99);
    int32_t seq[T + 1];
    for (int b = 0; b < B; b++) {
        for (int i = 0; i <= T; i++) seq[i] = (int32_t)sb_rng_below(&r, V - 1); /* never the sink id */
        for (int i = 0; i < T; i++) tok[b * T + i] = seq[i], tg[b * T + i] = seq[i + 1];
        if (sink_token) {
            tok[b * T] = V - 1;
            tg[b * T] = -1;
            for (int i = 1; i < T; i++) tok[b * T + i] = seq[i - 1], tg[b * T + i] = seq[i];
        }
    }
}

static float train_step(fixture *f, const int32_t *tok, const int32_t *tg, int64_t t, double lr) {
    float loss;
    assert_int_equal(sb_train_forward(&f->tm, tok, tg, B, T, &loss), SB_OK);
    sb_train_zero_grad(&f->tm);
    sb_train_backward(&f->tm, 1.0f);
    double norm = sb_grad_global_norm(f->tm.grad.params, f->m.n_params);
    float scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
    sb_adamw_update(f->m.params, f->tm.grad.params, f->am, f->av, f->mask, f->m.n_params, t, lr, 0.9, 0.95, 1e-8,
                    0.0, scale);
    return loss;
}

static void overfit(sb_softmax_kind kind, bool sink_token) {
    fixture f;
    fixture_init(&f, kind, sink_token);
    int32_t tok[B * T], tg[B * T];
    make_batch(tok, tg, sink_token);
    float first = 0, loss = 0;
    int64_t t;
    for (t = 1; t <= STEPS; t++) {
        loss = train_step(&f, tok, tg, t, 1e-2);
        if (t == 1) first = loss;
        if (loss < 0.02f) break;
    }
    print_message("  softmax=%d sink_token=%d: loss %.3f -> %.4f in %lld steps\n", (int)kind, sink_token, first,
                  loss, (long long)t);
    assert_true(first > 3.0f); /* ~ ln 32 at init */
    assert_true(loss < 0.05f);
    fixture_free(&f);
}

static void test_overfit_vanilla(void **state) {
    (void)state;
    overfit(SB_SOFTMAX_STANDARD, false);
}
static void test_overfit_sink_token(void **state) {
    (void)state;
    overfit(SB_SOFTMAX_STANDARD, true);
}
static void test_overfit_zero_sink(void **state) {
    (void)state;
    overfit(SB_SOFTMAX_OFF_BY_ONE, false);
}
static void test_overfit_sink_logit(void **state) {
    (void)state;
    overfit(SB_SOFTMAX_SINK_LOGIT, false);
}

/* Ten steps with 1 thread and with 2 threads give bit-identical weights. */
static void test_thread_count_invariance(void **state) {
    (void)state;
    int32_t tok[B * T], tg[B * T];
    make_batch(tok, tg, false);
    float *w[2];
    float losses[2][10];
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run + 1);
        openblas_set_num_threads(run + 1);
        fixture f;
        fixture_init(&f, SB_SOFTMAX_SINK_LOGIT, false);
        for (int t = 1; t <= 10; t++) losses[run][t - 1] = train_step(&f, tok, tg, t, 1e-2);
        w[run] = malloc_check(f.m.n_params * sizeof(float));
        memcpy(w[run], f.m.params, f.m.n_params * sizeof(float));
        size_t n = f.m.n_params;
        fixture_free(&f);
        if (run == 1) {
            assert_memory_equal(losses[0], losses[1], sizeof losses[0]);
            assert_memory_equal(w[0], w[1], n * sizeof(float));
        }
    }
    free(w[0]), free(w[1]);
}

/* The row-split sgemm gives the same bits for 1 and 2 threads (and for OpenBLAS on the whole
 * matrix), with and without transposes, on sizes that really split. */
static void test_sgemm_thread_invariance(void **state) {
    (void)state;
    enum { M = 301, N = 203, K = 517 };
    sb_rng r;
    sb_rng_seed(&r, 5);
    float *A = malloc_check(sizeof(float) * M * K), *Bm = malloc_check(sizeof(float) * K * N);
    float *C[3];
    sb_rng_fill_normal(&r, A, (size_t)M * K, 0.0f, 1.0f);
    sb_rng_fill_normal(&r, Bm, (size_t)K * N, 0.0f, 1.0f);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = ta ? M : K, ldb = tb ? K : N;
            for (int run = 0; run < 3; run++) {
                C[run] = malloc_check(sizeof(float) * M * N);
                for (size_t i = 0; i < (size_t)M * N; i++) C[run][i] = 0.5f;
                omp_set_num_threads(run == 1 ? 2 : 1);
                openblas_set_num_threads(1);
                if (run < 2)
                    train_sgemm(ta, tb, M, N, K, 0.7f, A, lda, Bm, ldb, 1.0f, C[run], N);
                else
                    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                                K, 0.7f, A, lda, Bm, ldb, 1.0f, C[run], N);
            }
            assert_memory_equal(C[0], C[1], sizeof(float) * M * N);
            assert_memory_equal(C[0], C[2], sizeof(float) * M * N);
            for (int run = 0; run < 3; run++) free(C[run]);
        }
    free(A), free(Bm);
}

int main(int argc, char **argv) {
    (void)argc;
    sb_test_omp_passive(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overfit_vanilla),
        cmocka_unit_test(test_overfit_sink_token),
        cmocka_unit_test(test_overfit_zero_sink),
        cmocka_unit_test(test_overfit_sink_logit),
        cmocka_unit_test(test_thread_count_invariance),
        cmocka_unit_test(test_sgemm_thread_invariance),
    };
    return cmocka_run_group_tests_name("train_overfit", tests, NULL, NULL);
}
