/* The training run end to end (sb_train_run on .ids files in a temp directory):
 * N steps straight == N/2, stop, --resume, N/2 more, bit for bit (weights, Adam state, every
 * step's loss, the held-out log); refusals of bad or mismatched training states; the log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/rng.h"
#include "train/train.h"
#include "util/h5.h"
#include "tests/helpers/sb_test.h"

static void write_ids(const char *path, int64_t n, int vocab, uint64_t seed) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    sb_rng r;
    sb_rng_seed(&r, seed);
    /* a learnable stream: mostly a fixed successor, sometimes random */
    int32_t prev = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t t = sb_rng_below(&r, 4) ? (prev * 5 + 3) % (vocab - 1) : (int32_t)sb_rng_below(&r, vocab - 1);
        fprintf(f, "%d%c", t, i % 20 == 19 ? '\n' : ' ');
        prev = t;
    }
    fclose(f);
}

static int setup(void **state) {
    assert_int_equal(sb_test_dir_setup(state), 0);
    char p[512];
    snprintf(p, sizeof p, "%s/train.ids", sb_test_dir);
    write_ids(p, 20000, 48, 1);
    snprintf(p, sizeof p, "%s/held.ids", sb_test_dir);
    write_ids(p, 3000, 48, 2);
    return 0;
}

static void config(sb_train_config *c, const char *variant, int grad_accum) {
    char ini[2048];
    snprintf(ini, sizeof ini,
             "[model]\nvocab = 48\ndim = 32\nlayers = 2\nheads = 4\nkv_heads = 2\nffn = 64\nctx = 32\n"
             "[data]\ntrain = %s/train.ids\nheldout = %s/held.ids\nseq_len = 32\n"
             "[optim]\nlr = 3e-3\nmin_lr = 3e-4\nwarmup = 4\nsteps = 20\nbatch = 3\ngrad_accum = %d\n"
             "weight_decay = 0.1\n"
             "[run]\nseed = 5\nthreads = 2\neval_interval = 4\neval_tokens = 640\ncheckpoint_interval = 6\n"
             "[variant]\ntype = %s\n%s",
             sb_test_dir, sb_test_dir, grad_accum, variant, strcmp(variant, "sink_token") ? "" : "sink_token_id = 47\n");
    sb_train_config_default(c);
    assert_int_equal(sb_train_config_parse(c, ini, "test.ini"), SB_OK);
}

static void path_in(char *out, size_t cap, const char *dir, const char *file) {
    snprintf(out, cap, "%s/%s/%s", sb_test_dir, dir, file);
}

static void *read_all(const char *path, size_t *n) {
    char *d;
    assert_int_equal(sb_read_file(path, &d, n), SB_OK);
    return d;
}

static void assert_files_equal(const char *a, const char *b) {
    size_t na, nb;
    void *da = read_all(a, &na), *db = read_all(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da), free(db);
}

static double *read_log(const char *dir, const char *name, int64_t *n) {
    char p[512];
    path_in(p, sizeof p, dir, "train_log.h5");
    sb_h5 *f;
    assert_int_equal(sb_h5_open(&f, p), SB_OK);
    void *data;
    int rank;
    int64_t dims[3];
    assert_int_equal(sb_h5_read_alloc(f, name, SB_H5_F64, &data, &rank, dims), SB_OK);
    *n = dims[0];
    sb_h5_close(f);
    return data;
}

static void run(const sb_train_config *c, const char *dir, bool resume, int64_t stop, int expect) {
    char out[512];
    snprintf(out, sizeof out, "%s/%s", sb_test_dir, dir);
    sb_train_options o = {.resume = resume, .stop_at_step = stop, .quiet = true};
    sb_train_result r;
    sb_clear_error();
    int rc = sb_train_run(c, out, &o, &r);
    if (rc != expect) print_message("unexpected: %s\n", sb_last_error());
    assert_int_equal(rc, expect);
}

static void resume_case(const char *variant, int grad_accum) {
    sb_train_config c;
    config(&c, variant, grad_accum);
    char straight[64], split[64];
    snprintf(straight, sizeof straight, "%s_straight", variant);
    snprintf(split, sizeof split, "%s_split", variant);
    run(&c, straight, false, 0, SB_OK);
    run(&c, split, false, 10, SB_OK);
    /* the stopped run holds 10 steps; the log has no step_loss beyond them */
    int64_t n;
    double *sl = read_log(split, "step_loss", &n);
    assert_int_equal(n, 10);
    free(sl);
    run(&c, split, true, 0, SB_OK);

    char a[512], b[512];
    path_in(a, sizeof a, straight, "train_state.bin");
    path_in(b, sizeof b, split, "train_state.bin");
    /* header, weights, Adam moments and every step's loss; the evaluation rows at the end
     * hold tokens/s (a timing) and are compared column by column below */
    size_t na, nb;
    unsigned char *da = read_all(a, &na), *db = read_all(b, &nb);
    assert_int_equal(na, nb);
    size_t evals = 6 * (5 * 8 + 8 * (size_t)c.model.n_layers * c.model.n_heads) + 4;
    assert_true(na > evals + 1000);
    assert_memory_equal(da, db, na - evals);
    free(da), free(db);
    path_in(a, sizeof a, straight, "model.safetensors");
    path_in(b, sizeof b, split, "model.safetensors");
    assert_files_equal(a, b);
    const char *cols[] = {"step_loss", "train_loss", "heldout_loss", "lr", "sink_share", "step"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        int64_t na, nb;
        double *x = read_log(straight, cols[i], &na), *y = read_log(split, cols[i], &nb);
        assert_int_equal(na, nb);
        for (int64_t j = 0; j < na; j++) assert_true(x[j] == y[j] || (isnan(x[j]) && isnan(y[j])));
        free(x), free(y);
    }
    /* training did something: the loss went down and the held-out loss was measured */
    double *sl2 = read_log(straight, "step_loss", &n);
    assert_int_equal(n, 20);
    assert_true(sl2[19] < sl2[0] - 0.3);
    free(sl2);
    double *hl = read_log(straight, "heldout_loss", &n);
    assert_int_equal(n, 6); /* step 0 and every 4 steps */
    assert_true(isfinite(hl[5]) && hl[5] < hl[0]);
    free(hl);
    /* the saved model records the variant */
    sb_model m;
    snprintf(a, sizeof a, "%s/%s", sb_test_dir, straight);
    assert_int_equal(sb_model_load(&m, a), SB_OK);
    assert_int_equal(m.cfg.softmax, c.model.softmax);
    assert_int_equal(m.cfg.sink_token_id, c.model.sink_token_id);
    sb_model_free(&m);
}

static void test_resume_vanilla(void **state) {
    (void)state;
    resume_case("vanilla", 1);
}

static void test_resume_sink_logit_accum(void **state) {
    (void)state;
    resume_case("sink_logit", 2);
}

static void test_resume_sink_token(void **state) {
    (void)state;
    resume_case("sink_token", 1);
}

static void test_log_contents(void **state) {
    (void)state;
    char p[512];
    path_in(p, sizeof p, "vanilla_straight", "train_log.h5");
    sb_h5 *f;
    assert_int_equal(sb_h5_open(&f, p), SB_OK);
    int rank;
    int64_t dims[3];
    assert_int_equal(sb_h5_dims(f, "sink_share", &rank, dims), SB_OK);
    assert_int_equal(rank, 3);
    assert_int_equal(dims[0], 6);
    assert_int_equal(dims[1], 2);
    assert_int_equal(dims[2], 4);
    double *s;
    assert_int_equal(sb_h5_read_alloc(f, "sink_share", SB_H5_F64, (void **)&s, NULL, NULL), SB_OK);
    /* at init attention is near uniform: a query at position i >= 17 gives ~1/(i+1) to 0 */
    for (int i = 0; i < 8; i++) assert_true(s[i] > 0.02 && s[i] < 0.06);
    free(s);
    char v[64];
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "variant", v, sizeof v), SB_OK);
    assert_string_equal(v, "vanilla");
    assert_true(sb_h5_has(f, "tokens_per_s"));
    sb_h5_close(f);
}

static void test_refusals(void **state) {
    (void)state;
    sb_train_config c;
    config(&c, "vanilla", 1);
    /* fresh run into a directory that already holds a state */
    run(&c, "vanilla_straight", false, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "--resume"));
    /* resume without a state */
    run(&c, "nothing_here", true, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "train_state.bin"));
    /* resume under a different learning rate */
    run(&c, "refuse", false, 4, SB_OK);
    sb_train_config c2 = c;
    c2.lr = 1e-3;
    run(&c2, "refuse", true, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "optim.lr"));
    /* truncated and corrupted states */
    char p[512];
    path_in(p, sizeof p, "refuse", "train_state.bin");
    size_t n;
    unsigned char *d = read_all(p, &n);
    assert_int_equal(sb_write_file_atomic(p, d, n - 7), SB_OK);
    run(&c, "refuse", true, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "truncated"));
    d[n / 2] ^= 0x40;
    assert_int_equal(sb_write_file_atomic(p, d, n), SB_OK);
    run(&c, "refuse", true, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "checksum"));
    assert_int_equal(sb_write_file_atomic(p, "SBTRAIN", 7), SB_OK);
    run(&c, "refuse", true, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "train_state.bin"));
    free(d);
    /* data that does not exist / too short */
    sb_train_config c3 = c;
    snprintf(c3.train_path, sizeof c3.train_path, "%s/missing.ids", sb_test_dir);
    run(&c3, "missing", false, 0, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "missing.ids"));
}

int main(int argc, char **argv) {
    (void)argc;
    sb_test_omp_passive(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_vanilla),
        cmocka_unit_test(test_resume_sink_logit_accum),
        cmocka_unit_test(test_resume_sink_token),
        cmocka_unit_test(test_log_contents),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("train_resume", tests, setup, sb_test_dir_teardown);
}
