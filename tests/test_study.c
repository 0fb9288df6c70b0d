/* Tests of the study's library parts: policy-template expressions, experiment INI parsing
 * (per-mode keys, strict keys, errors naming file/section/key), tables (CSV round trip with
 * quoting), the statistics behind latency percentiles and perplexity curves, and where cells
 * ran (cell times, grouping by machine, what the report says of one machine or several). */
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
#include "eval/report.h"
#include "eval/study.h"
#include "eval/study_stats.h"
#include "eval/study_table.h"
#include "util/h5.h"
#include "tests/helpers/sb_test.h"

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

/* ------------------------------------------------------------------ where cells ran */

static void test_parse_utc(void **state) {
    (void)state;
    int64_t t = 0;
    assert_int_equal(sb_study_parse_utc("2026-11-26T02:19:12Z", &t), SB_OK);
    assert_int_equal(t, 1795659552); /* date -ud 2026-11-26T02:19:12Z +%s */
    assert_int_equal(sb_study_parse_utc("1970-01-01T00:00:00Z", &t), SB_OK);
    assert_int_equal(t, 0);
    assert_int_equal(sb_study_parse_utc("1969-12-31T23:59:59Z", &t), SB_OK);
    assert_int_equal(t, -1);
    assert_int_equal(sb_study_parse_utc("2000-02-29T00:00:00Z", &t), SB_OK);
    assert_int_equal(t, 951782400);
    static const char *const bad[] = {"2026-02-29T00:00:00Z", "2026-11-26 02:19:12Z", "2026-11-26T02:19:12",
                                      "2026-11-26T02:19:12Z ", "+026-11-26T02:19:12Z", "2026-13-01T00:00:00Z",
                                      "2026-11-26T24:00:00Z", "", "unknown"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(sb_study_parse_utc(bad[i], &t), SB_ERR);
        sb_clear_error();
    }
}

static void fake_cell(const char *path, const char *host, const char *cpu, int64_t cores, int64_t threads,
                      const char *git, const char *date, double wall) {
    sb_h5 *f;
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "hostname", host), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "cpu_model", cpu), SB_OK);
    assert_int_equal(sb_h5_attr_i64(f, NULL, "cores", cores), SB_OK);
    assert_int_equal(sb_h5_attr_i64(f, NULL, "threads", threads), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "git_rev", git), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "date_utc", date), SB_OK);
    assert_int_equal(sb_h5_attr_f64(f, NULL, "wall_s", wall), SB_OK);
    assert_int_equal(sb_h5_commit(f), SB_OK);
}

static void test_cells_machines(void **state) {
    (void)state;
    char dir[64], p[4][300];
    assert_int_equal(sb_test_mkdtemp(dir, sizeof dir), 0);
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/cell%d.h5", dir, i);
    /* alpha ran them 01:50-02:00 and 02:30-03:00: 40 min of cell time over 70 min */
    fake_cell(p[0], "alpha", "CPU A", 2, 1, "a265e4c", "2026-11-26T02:00:00Z", 600);
    fake_cell(p[1], "beta", "CPU B, 2.1GHz", 64, 4, "d6cf4c6", "2026-11-27T10:00:00Z", 7200);
    fake_cell(p[2], "alpha", "CPU A", 2, 1, "a265e4c", "2026-11-26T03:00:00Z", 1800);
    /* p[3] was never written: a missing cell is left out, not counted */
    const char *paths[] = {p[0], p[1], p[2], p[3]};
    char *text, *csv;
    assert_int_equal(sb_study_cells_machines(paths, 4, &text, &csv), SB_OK);
    assert_string_equal(text, "alpha (CPU A, 2 cores): 2 cells, 1 thread each, git a265e4c, 40.0 min of cell time, "
                              "1.17 h from first start to last finish\n"
                              "beta (CPU B, 2.1GHz, 64 cores): 1 cell, 4 threads each, git d6cf4c6, 2.00 h of cell "
                              "time, 2.00 h from first start to last finish\n");
    assert_string_equal(csv, "host,cpu_model,cores,cells,threads,git_revs,cell_hours,span_hours\n"
                             "alpha,CPU A,2,2,1,a265e4c,0.6667,1.1667\n"
                             "beta,\"CPU B, 2.1GHz\",64,1,4,d6cf4c6,2.0000,2.0000\n");
    free(text);
    free(csv);

    /* one machine, mixed threads and revisions, one cell without a usable time */
    fake_cell(p[1], "alpha", "CPU A", 2, 2, "1e8eeaf", "unknown", 30);
    assert_int_equal(sb_study_cells_machines(paths, 3, &text, &csv), SB_OK);
    assert_string_equal(text, "alpha (CPU A, 2 cores): 3 cells, 1 or 2 threads each, git a265e4c, 1e8eeaf, "
                              "40.5 min of cell time, 1.17 h from first start to last finish\n");
    assert_non_null(strstr(csv, "\nalpha,CPU A,2,3,1 2,a265e4c 1e8eeaf,0.6750,1.1667\n"));
    free(text);
    free(csv);

    assert_int_equal(sb_study_cells_machines(paths, 0, &text, &csv), SB_OK);
    assert_string_equal(text, "");
    assert_string_equal(csv, "host,cpu_model,cores,cells,threads,git_revs,cell_hours,span_hours\n");
    free(text);
    free(csv);
    sb_test_rmtree(dir);
}

/* An aggregated experiment file as the collector writes it, reduced to what the report reads
 * for its header and the "Cells ran on" line. cell_paths NULL: an old file without them. */
static void fake_experiment(const char *dir, const char *name, const char *const *cell_paths, int n) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    sb_h5 *f;
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "title", name), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "mode", "quick"), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "git_rev", "feedbee"), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "date_utc", "2026-11-28T00:00:00Z"), SB_OK);
    /* the aggregating machine, which must not be presented as where the cells ran */
    assert_int_equal(sb_h5_attr_str(f, NULL, "hostname", "aggregator"), SB_OK);
    if (cell_paths) {
        char *text, *csv;
        assert_int_equal(sb_study_cells_machines(cell_paths, n, &text, &csv), SB_OK);
        assert_int_equal(sb_h5_attr_str(f, NULL, "cells_machines", text), SB_OK);
        assert_int_equal(sb_h5_attr_str(f, NULL, "cells_machines_csv", csv), SB_OK);
        free(text);
        free(csv);
    }
    assert_int_equal(sb_h5_commit(f), SB_OK);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_report_machines(void **state) {
    (void)state;
    char dir[64], p[3][300], md[400], html[400];
    assert_int_equal(sb_test_mkdtemp(dir, sizeof dir), 0);
    for (int i = 0; i < 3; i++) snprintf(p[i], sizeof p[i], "%s/cell%d.h5", dir, i);
    snprintf(md, sizeof md, "%s/REPORT.md", dir);
    snprintf(html, sizeof html, "%s/index.html", dir);
    fake_cell(p[0], "alpha", "CPU A", 2, 1, "a265e4c", "2026-11-26T02:00:00Z", 600);
    fake_cell(p[1], "alpha", "CPU A", 2, 1, "a265e4c", "2026-11-26T03:00:00Z", 1800);
    fake_cell(p[2], "beta", "CPU B", 64, 4, "d6cf4c6", "2026-11-27T10:00:00Z", 7200);
    const char *one[] = {p[0]}, *both[] = {p[1], p[2]};
    fake_experiment(dir, "e1", one, 1);
    fake_experiment(dir, "e2", both, 2);
    fake_experiment(dir, "old", NULL, 0);
    sb_report_opts o = {.results_dir = dir, .command = "./run_all.sh", .wall_s = 120};

    /* one machine: named once in the header, with its threads */
    const char *const e1[] = {"e1", "old"};
    assert_int_equal(sb_report_write(e1, 2, &o), SB_OK);
    const char *r = slurp(md);
    assert_non_null(strstr(r, "Mode quick, git feedbee, 2026-11-28T00:00:00Z UTC, command: ./run_all.sh.\n"));
    assert_non_null(strstr(r, "Cells ran on host alpha (CPU A, 2 cores, 1 thread per cell).\n"));
    assert_non_null(strstr(r, "This invocation of the command took 2.0 minutes; each experiment gives the time its "
                              "cells took.\n"));
    assert_non_null(strstr(r, "Cells ran on: alpha (CPU A, 2 cores): 1 cell, 1 thread each, git a265e4c, 10.0 min "
                              "of cell time, 10.0 min from first start to last finish.\n"));
    assert_null(strstr(r, "aggregator"));
    assert_null(strstr(r, "whole run"));
    /* the old file without cells_machines gets no such line */
    const char *old = strstr(r, "## 2. old");
    assert_non_null(old);
    assert_null(strstr(old, "Cells ran on"));

    /* two machines: the header lists both and defers to the experiments */
    const char *const all[] = {"e1", "e2", "old"};
    assert_int_equal(sb_report_write(all, 3, &o), SB_OK);
    r = slurp(md);
    assert_non_null(strstr(r, "Cells ran on several machines: alpha (CPU A, 2 cores), beta (CPU B, 64 cores); each "
                              "experiment says which.\n"));
    assert_null(strstr(r, "Cells ran on host"));
    assert_non_null(strstr(r, "Cells ran on: alpha (CPU A, 2 cores): 1 cell, 1 thread each, git a265e4c, 30.0 min of "
                              "cell time, 30.0 min from first start to last finish; beta (CPU B, 64 cores): 1 cell, "
                              "4 threads each, git d6cf4c6, 2.00 h of cell time, 2.00 h from first start to last "
                              "finish.\n"));
    r = slurp(html);
    assert_non_null(strstr(r, "<p>Cells ran on several machines: alpha (CPU A, 2 cores), beta (CPU B, 64 cores); "));
    assert_non_null(strstr(r, "<p>Cells ran on: alpha (CPU A, 2 cores): 1 cell,"));

    /* old files only: nothing said about where cells ran, nor a per-experiment time to point at */
    const char *const only_old[] = {"old"};
    assert_int_equal(sb_report_write(only_old, 1, &o), SB_OK);
    r = slurp(md);
    assert_null(strstr(r, "Cells ran on"));
    assert_non_null(strstr(r, "This invocation of the command took 2.0 minutes.\n"));
    sb_test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr_values),        cmocka_unit_test(test_expr_errors),
        cmocka_unit_test(test_expand),             cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_config_mode_override), cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_load_missing), cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_table_csv_roundtrip), cmocka_unit_test(test_buf_html_escape),
        cmocka_unit_test(test_percentile),         cmocka_unit_test(test_ppl_curve),
        cmocka_unit_test(test_policy_helpers),     cmocka_unit_test(test_parse_utc),
        cmocka_unit_test(test_cells_machines),     cmocka_unit_test(test_report_machines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
