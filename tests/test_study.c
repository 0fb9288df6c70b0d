/* Tests of the study's library parts: policy-template expressions, experiment INI parsing
 * (per-mode keys, strict keys, errors naming file/section/key), tables (CSV round trip with
 * quoting), and the statistics behind latency percentiles and perplexity curves. */
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
#include "eval/study.h"
#include "eval/study_stats.h"
#include "eval/study_table.h"

/* ------------------------------------------------------------------ expressions */

static void test_expr_values(void **state) {
    (void)state;
    int64_t v;
    assert_int_equal(sb_study_eval_expr("W-4", 512, 0, &v), SB_OK);
    assert_int_equal(v, 508);
    assert_int_equal(sb_study_eval_expr("W/2-4", 512, 0, &v), SB_OK);
    assert_int_equal(v, 252);
    assert_int_equal(sb_study_eval_expr("4*W-4", 512, 0, &v), SB_OK);
    assert_int_equal(v, 2044);
    assert_int_equal(sb_study_eval_expr(" ( C - 4 ) * 2 ", 0, 256, &v), SB_OK);
    assert_int_equal(v, 504);
    assert_int_equal(sb_study_eval_expr("-W+1", 10, 0, &v), SB_OK);
    assert_int_equal(v, -9);
    assert_int_equal(sb_study_eval_expr("2*3+4*5", 0, 0, &v), SB_OK);
    assert_int_equal(v, 26);
}

static void test_expr_errors(void **state) {
    (void)state;
    int64_t v;
    assert_int_equal(sb_study_eval_expr("W/0", 512, 0, &v), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "division by zero"));
    assert_int_equal(sb_study_eval_expr("X-4", 512, 0, &v), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "X-4"));
    assert_int_equal(sb_study_eval_expr("(W-4", 512, 0, &v), SB_ERR_USAGE);
    assert_int_equal(sb_study_eval_expr("", 512, 0, &v), SB_ERR_USAGE);
    assert_int_equal(sb_study_eval_expr("W W", 512, 0, &v), SB_ERR_USAGE);
    assert_int_equal(sb_study_eval_expr("99999999999999999999", 0, 0, &v), SB_ERR_USAGE);
    assert_int_equal(sb_study_eval_expr("9223372036854775807*2", 0, 0, &v), SB_ERR_USAGE);
}

static void test_expand(void **state) {
    (void)state;
    char out[64];
    assert_int_equal(sb_study_expand("sinks:4:{W-4}", 512, 0, out, sizeof out), SB_OK);
    assert_string_equal(out, "sinks:4:508");
    assert_int_equal(sb_study_expand("sinks:{C/64}:{C-C/64}:newline", 0, 1024, out, sizeof out), SB_OK);
    assert_string_equal(out, "sinks:16:1008:newline");
    assert_int_equal(sb_study_expand("dense", 512, 0, out, sizeof out), SB_OK);
    assert_string_equal(out, "dense");
    assert_int_equal(sb_study_expand("window:{W", 512, 0, out, sizeof out), SB_ERR_USAGE);
    assert_int_equal(sb_study_expand("window:W}", 512, 0, out, sizeof out), SB_ERR_USAGE);
    assert_int_equal(sb_study_expand("a{{W}}", 512, 0, out, sizeof out), SB_ERR_USAGE);
    char tiny[8];
    assert_int_equal(sb_study_expand("sinks:4:{W-4}", 512, 0, tiny, sizeof tiny), SB_ERR_USAGE);
}

/* ------------------------------------------------------------------ INI parsing */

static const char *const good_ini =
    "; comment\n"
    "[experiment]\n"
    "name = demo\n"
    "command = ppl\n"
    "data = data/x.ids\n"
    "models = a, b c\n"
    "figures = curve bars\n"
    "[run one]\n"
    "policies = window:{W} sinks:4:{W-4}\n"
    "tokens = 1000\n"
    "tokens.smoke = 10\n"
    "[run two]\n"
    "policies = dense\n"
    "tokens.full = 0\n"
    "models = b\n"
    "[paper t]\n"
    "caption = Paper table\n"
    "columns = a | b\n"
    "row = x | 1\n"
    "row = y | 2\n";

static void test_config_parse(void **state) {
    (void)state;
    sb_study_config *c = calloc(1, sizeof *c);
    assert_int_equal(sb_study_config_parse(c, good_ini, "demo.ini", SB_STUDY_QUICK), SB_OK);
    assert_string_equal(c->name, "demo");
    assert_int_equal(c->command, SB_STUDY_CMD_PPL);
    assert_string_equal(c->title, "demo"); /* defaults to the name */
    assert_int_equal(c->n_models, 3);
    assert_string_equal(c->models[2], "c");
    assert_int_equal(c->n_figures, 2);
    assert_int_equal(c->n_runs, 2);
    assert_string_equal(c->runs[0].name, "one");
    assert_int_equal(c->runs[0].n_policies, 2);
    assert_string_equal(c->runs[0].policies[1], "sinks:4:{W-4}");
    assert_int_equal(c->runs[0].tokens, 1000);
    assert_int_equal(c->runs[1].n_models, 1);
    assert_int_equal(c->n_paper, 1);
    assert_int_equal(c->paper[0].n_rows, 2);
    assert_string_equal(c->paper[0].rows[1], "y | 2");
    assert_non_null(c->text);
    assert_non_null(sb_study_find_run(c, "two"));
    assert_null(sb_study_find_run(c, "three"));
    sb_study_config_free(c);
    free(c);
}

static void test_config_mode_override(void **state) {
    (void)state;
    sb_study_config *c = calloc(1, sizeof *c);
    assert_int_equal(sb_study_config_parse(c, good_ini, "demo.ini", SB_STUDY_SMOKE), SB_OK);
    assert_int_equal(c->runs[0].tokens, 10);
    assert_int_equal(c->runs[1].tokens, 0);
    sb_study_config_free(c);
    /* the mode-specific key wins whatever the order in the file */
    const char *ini = "[experiment]\nname = x\ncommand = latency\n[run r]\ntokens.full = 7\npolicies = dense\ntokens = 3\n";
    assert_int_equal(sb_study_config_parse(c, ini, "x.ini", SB_STUDY_FULL), SB_OK);
    assert_int_equal(c->runs[0].tokens, 7);
    sb_study_config_free(c);
    assert_int_equal(sb_study_config_parse(c, ini, "x.ini", SB_STUDY_QUICK), SB_OK);
    assert_int_equal(c->runs[0].tokens, 3);
    sb_study_config_free(c);
    free(c);
}

/* Parsing `ini` fails with a message containing every one of the words. */
static void expect_error(const char *ini, const char *w1, const char *w2) {
    sb_study_config *c = calloc(1, sizeof *c);
    int rc = sb_study_config_parse(c, ini, "bad.ini", SB_STUDY_QUICK);
    if (rc == SB_OK) fail_msg("accepted: %s", ini);
    assert_non_null(strstr(sb_last_error(), "bad.ini"));
    if (!strstr(sb_last_error(), w1) || (w2 && !strstr(sb_last_error(), w2)))
        fail_msg("message '%s' lacks '%s' / '%s'", sb_last_error(), w1, w2 ? w2 : "");
    sb_study_config_free(c);
    free(c);
}

static void test_config_errors(void **state) {
    (void)state;
    const char *head = "[experiment]\nname = x\ncommand = ppl\ndata = d.ids\n";
    char ini[2048];
    snprintf(ini, sizeof ini, "%s[run r]\npolicies = dense\ntokenz = 5\n", head);
    expect_error(ini, "run r", "tokenz");
    snprintf(ini, sizeof ini, "%s[runs r]\npolicies = dense\n", head);
    expect_error(ini, "unknown section", "runs r");
    snprintf(ini, sizeof ini, "%s[run r]\npolicies = dense\ntokens = -5\n", head);
    expect_error(ini, "tokens", "-5");
    snprintf(ini, sizeof ini, "%s[run r]\npolicies = dense\ntokens = 12abc\n", head);
    expect_error(ini, "tokens", "12abc");
    snprintf(ini, sizeof ini, "%s[run r]\npolicies = sinks:4:{W-}\n", head);
    expect_error(ini, "run r", "W-");
    snprintf(ini, sizeof ini, "%s[run r]\npolicies = dense\ntokens.fast = 5\n", head);
    expect_error(ini, "mode suffix", "tokens.fast");
    snprintf(ini, sizeof ini, "%s[run r]\npolicies = dense\nmodels = ghost\n", head);
    expect_error(ini, "ghost", NULL);
    snprintf(ini, sizeof ini, "%s", head);
    expect_error(ini, "no [run", NULL);
    expect_error("[experiment]\nname = x\ncommand = ppl\n[run r]\npolicies = dense\n", "data", NULL);
    expect_error("[experiment]\ncommand = ppl\n", "name", NULL);
    expect_error("[experiment]\nname = x\ncommand = teleport\n", "teleport", NULL);
    expect_error("[experiment]\nname = x y\ncommand = ppl\n", "name", NULL);
    expect_error("[experiment]\nname = x\ncommand = latency\nspeedup = a / b\n[run a]\npolicies = dense\ntokens = 1\n", "speedup", NULL);
    expect_error("[experiment]\nname = x\ncommand = latency\n[run a]\npolicies = dense\n", "tokens", NULL);
    expect_error("[experiment]\nname = x\ncommand = ppl\nextra_models = m\ndata = d\n[run a]\npolicies = dense\n", "m", NULL);
    /* inih would silently split a line this long */
    char longline[400];
    memset(longline, 'a', sizeof longline);
    snprintf(longline, sizeof longline, "[experiment]\nname = x\ntitle = %0200d\n", 0);
    expect_error(longline, "line 3", NULL);
    expect_error("[experiment]\nname = x\ngarbage line\n", "line 3", NULL);
}

static void test_config_load_missing(void **state) {
    (void)state;
    sb_study_config *c = calloc(1, sizeof *c);
    assert_int_equal(sb_study_config_load(c, "/nonexistent/study.ini", SB_STUDY_QUICK), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/study.ini"));
    sb_study_config_free(c);
    free(c);
}

/* The shipped configs parse in every mode. */
static void test_shipped_configs(void **state) {
    (void)state;
    static const char *const names[] = {"ppl_stream", "sink_ablation", "cache_size", "latency", "attention", "training"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        for (int m = 0; m < 3; m++) {
            char path[256];
            snprintf(path, sizeof path, "configs/%s.ini", names[i]);
            sb_study_config *c = calloc(1, sizeof *c);
            if (sb_study_config_load(c, path, (sb_study_mode)m) != SB_OK) fail_msg("%s", sb_last_error());
            assert_string_equal(c->name, names[i]);
            sb_study_config_free(c);
            free(c);
        }
}

/* ------------------------------------------------------------------ tables */

static void test_table_csv_roundtrip(void **state) {
    (void)state;
    static const char *const head[] = {"model", "ppl", "note"};
    sb_study_table t, u;
    sb_study_table_init(&t, "cap", 3, head);
    int r = sb_study_table_add_row(&t);
    sb_study_table_set(&t, r, 0, "a,b");
    sb_study_table_set(&t, r, 1, "%.2f", 12.345);
    sb_study_table_set(&t, r, 2, "say \"hi\"\nthere");
    r = sb_study_table_add_row(&t);
    sb_study_table_set(&t, r, 0, "plain");
    char *csv = sb_study_table_to_csv(&t);
    assert_string_equal(csv, "model,ppl,note\n\"a,b\",12.35,\"say \"\"hi\"\"\nthere\"\nplain,,\n");
    assert_int_equal(sb_study_table_from_csv(&u, "cap", csv), SB_OK);
    assert_int_equal(u.n_rows, 3);
    assert_int_equal(u.n_cols, 3);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) assert_string_equal(sb_study_table_get(&u, i, j), sb_study_table_get(&t, i, j));
    assert_string_equal(sb_study_table_get(&u, 7, 7), "");
    free(csv);
    sb_study_table_free(&t);
    sb_study_table_free(&u);
    assert_int_equal(sb_study_table_from_csv(&u, "bad", "a,b\n\"open,x\n"), SB_ERR);
    sb_study_table_free(&u);
}

static void test_buf_html_escape(void **state) {
    (void)state;
    sb_study_buf b = {0};
    assert_string_equal(sb_study_buf_str(&b), "");
    sb_study_buf_html(&b, "<a href=\"x\">&</a>");
    assert_string_equal(sb_study_buf_str(&b), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
    sb_study_buf_free(&b);
}

/* ------------------------------------------------------------------ statistics */

static void test_percentile(void **state) {
    (void)state;
    const double x[] = {5, 1, 4, 2, 3}; /* numpy.percentile(x, p) */
    assert_true(fabs(sb_stats_percentile(x, 5, 50) - 3.0) < 1e-12);
    assert_true(fabs(sb_stats_percentile(x, 5, 0) - 1.0) < 1e-12);
    assert_true(fabs(sb_stats_percentile(x, 5, 100) - 5.0) < 1e-12);
    assert_true(fabs(sb_stats_percentile(x, 5, 99) - 4.96) < 1e-12);
    assert_true(fabs(sb_stats_percentile(x, 5, 10) - 1.4) < 1e-12);
    assert_true(x[0] == 5 && x[1] == 1); /* input untouched */
    assert_true(isnan(sb_stats_percentile(x, 0, 50)));
    assert_true(isnan(sb_stats_percentile(x, 5, 101)));
    const double one = 7;
    assert_true(fabs(sb_stats_percentile(&one, 1, 99) - 7.0) < 1e-12);
    assert_true(fabs(sb_stats_mean(x, 5) - 3.0) < 1e-12);
    assert_true(isnan(sb_stats_mean(x, 0)));
}

static void test_ppl_curve(void **state) {
    (void)state;
    enum { N = 10000 };
    float *nll = malloc(N * sizeof *nll);
    /* first half ln 10, second half ln 1000: windows must recover both */
    for (int i = 0; i < N; i++) nll[i] = (float)(i < N / 2 ? log(10.0) : log(1000.0));
    double x[40], p[40];
    int n = sb_stats_ppl_curve(nll, N, N, 40, 32, x, p);
    assert_true(n > 5 && n <= 40);
    assert_true(fabs(p[0] - 10.0) < 1e-3);
    assert_true(fabs(p[n - 1] - 1000.0) < 1e-1);
    assert_true(x[0] >= 16.0 && x[0] < 20.0); /* first bin is the 32 first tokens */
    for (int i = 1; i < n; i++) assert_true(x[i] > x[i - 1]);
    assert_true(x[n - 1] < N);
    /* a shorter stream on the same bins: identical bins where both have data, then stops */
    double x2[40], p2[40];
    int n2 = sb_stats_ppl_curve(nll, N / 4, N, 40, 32, x2, p2);
    assert_true(n2 > 1 && n2 < n);
    for (int i = 0; i < n2 - 1; i++) assert_true(x2[i] == x[i] && p2[i] == p[i]);
    assert_true(x2[n2 - 1] <= N / 4);
    assert_int_equal(sb_stats_ppl_curve(nll, 0, N, 40, 32, x, p), 0);
    assert_int_equal(sb_stats_ppl_curve(nll, 5, 5, 40, 32, x, p), 1);
    assert_true(fabs(p[0] - 10.0) < 1e-3);
    free(nll);
}

static void test_policy_helpers(void **state) {
    (void)state;
    char s[64];
    sb_study_cell_slug("sinks:4:508:newline", s, sizeof s);
    assert_string_equal(s, "sinks_4_508_newline");
    sb_study_cell_slug("../x", s, sizeof s);
    assert_null(strchr(s, '/'));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr_values),        cmocka_unit_test(test_expr_errors),
        cmocka_unit_test(test_expand),             cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_config_mode_override), cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_load_missing), cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_table_csv_roundtrip), cmocka_unit_test(test_buf_html_escape),
        cmocka_unit_test(test_percentile),         cmocka_unit_test(test_ppl_curve),
        cmocka_unit_test(test_policy_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
