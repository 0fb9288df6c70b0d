/* Golden values from PyTorch / transformers (tests/fixtures/<model>/golden.json, see
 * tests/fixtures/README.md): per-token NLLs of a 192-token stream under dense, sinks:4:16,
 * sinks:1:16, window:16 and recompute:16, and the logits of the first token. Both evaluation
 * modes must agree with them within 1e-4. Every family must load: a missing fixture or an
 * unsupported config fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "tests/helpers/sb_test.h"

#define FIXTURES "tests/fixtures"
#define TOL 1e-4

static int32_t *read_ids(const char *path, int64_t *n) {
    char *data;
    size_t size;
    if (sb_read_file(path, &data, &size)) fail_msg("%s", sb_last_error());
    int32_t *ids = malloc((size / 2 + 1) * sizeof(int32_t));
    int64_t k = 0;
    char *p = data, *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[k++] = (int32_t)v;
        p = end;
    }
    free(data);
    *n = k;
    return ids;
}

static cJSON *read_json(const char *path) {
    char *data;
    size_t size;
    if (sb_read_file(path, &data, &size)) fail_msg("%s", sb_last_error());
    cJSON *j = cJSON_ParseWithLength(data, size);
    free(data);
    if (!j) fail_msg("%s: not JSON", path);
    return j;
}

/* Compare nll[n] with a JSON list; returns the largest difference. */
static double max_diff(const float *nll, const cJSON *list, int64_t n, const char *what) {
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != n) fail_msg("%s: golden list has the wrong length", what);
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double g = cJSON_GetArrayItem(list, (int)i)->valuedouble;
        worst = fmax(worst, fabs(nll[i] - g));
        if (!isfinite(nll[i])) return INFINITY;
    }
    return worst;
}

static void check_model(const char *name) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES, name);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    sb_model m;
    if (sb_model_load(&m, dir)) fail_msg("%s", sb_last_error());
    cJSON *g = read_json(path);
    snprintf(path, sizeof path, "%s/stream.ids", dir);
    int64_t n;
    int32_t *x = read_ids(path, &n);
    float *nll = malloc((size_t)n * sizeof(float));
    const cJSON *lists = cJSON_GetObjectItemCaseSensitive(g, "nll");
    const char *specs[] = {"dense", "sinks:4:16", "sinks:1:16", "window:16", "recompute:16"};
    double worst_nll = 0.0;
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(lists, specs[i]);
        if (!list) fail_msg("%s: golden.json has no '%s'", name, specs[i]);
        sb_policy_spec p;
        assert_int_equal(sb_policy_parse(specs[i], &p), SB_OK);
        for (int mode = 0; mode < 2; mode++) {
            sb_eval_opts o = {.mode = (sb_eval_mode)mode, .chunk = 64};
            if (sb_eval_stream_nll(&m, &p, x, n, &o, nll)) fail_msg("%s %s: %s", name, specs[i], sb_last_error());
            double d = max_diff(nll, list, n - 1, specs[i]);
            if (!(d <= TOL)) fail_msg("%s %s mode %d: max |NLL - golden| = %.3g", name, specs[i], mode, d);
            worst_nll = fmax(worst_nll, d);
        }
    }
    /* logits of the first token */
    const cJSON *lg = cJSON_GetObjectItemCaseSensitive(g, "logits_first_token");
    assert_true(cJSON_IsArray(lg) && cJSON_GetArraySize(lg) == m.cfg.vocab_size);
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("dense", &p), SB_OK);
    sb_decoder *d;
    assert_int_equal(sb_decoder_new(&d, &m, &p, 4), SB_OK);
    float *logits = malloc((size_t)m.cfg.vocab_size * sizeof(float));
    assert_int_equal(sb_decoder_step(d, x[0], logits), SB_OK);
    double worst = 0.0;
    for (int v = 0; v < m.cfg.vocab_size; v++)
        worst = fmax(worst, fabs(logits[v] - cJSON_GetArrayItem(lg, v)->valuedouble));
    if (!(worst <= TOL)) fail_msg("%s: first-token logits differ by %.3g", name, worst);
    printf("golden %s: NLL lists within %.2g, first-token logits within %.2g (tolerance %g)\n", name, worst_nll,
           worst, TOL);
    sb_decoder_free(d);

    /* saved in the native (Llama-named) format and loaded back: the same numbers */
    char tmp[64];
    assert_int_equal(sb_test_mkdtemp(tmp, sizeof tmp), 0);
    assert_int_equal(sb_model_save(&m, tmp), SB_OK);
    sb_model b;
    if (sb_model_load(&b, tmp)) fail_msg("%s", sb_last_error());
    assert_string_equal(b.cfg.arch, strcmp(m.cfg.arch, "mistral") ? "llama" : "mistral");
    float *nll2 = malloc((size_t)n * sizeof(float));
    sb_eval_opts o = {.mode = SB_MODE_EXACT, .chunk = 64};
    assert_int_equal(sb_eval_stream_nll(&m, &p, x, n, &o, nll), SB_OK);
    assert_int_equal(sb_eval_stream_nll(&b, &p, x, n, &o, nll2), SB_OK);
    assert_memory_equal(nll, nll2, (size_t)(n - 1) * sizeof(float));
    sb_model_free(&b);
    free(nll2);
    sb_test_rmtree(tmp);
    free(logits), free(nll), free(x);
    cJSON_Delete(g);
    sb_model_free(&m);
}

static void test_llama(void **state) {
    (void)state;
    check_model("llama");
}
static void test_llama_gqa(void **state) {
    (void)state;
    check_model("llama_gqa");
}
static void test_mistral(void **state) {
    (void)state;
    check_model("mistral");
}
static void test_gpt_neox(void **state) {
    (void)state;
    check_model("gpt_neox");
}
static void test_falcon7b(void **state) {
    (void)state;
    check_model("falcon7b");
}
static void test_falcon_new(void **state) {
    (void)state;
    check_model("falcon_new");
}
static void test_mpt(void **state) {
    (void)state;
    check_model("mpt");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama),      cmocka_unit_test(test_llama_gqa), cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_gpt_neox),   cmocka_unit_test(test_falcon7b),  cmocka_unit_test(test_falcon_new),
        cmocka_unit_test(test_mpt),
    };
    return cmocka_run_group_tests_name("golden", tests, NULL, NULL);
}
