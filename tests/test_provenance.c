/* Tests of util/provenance and util/sha256: hash vectors, file and model hashes, git
 * revision inside and outside a checkout, machine facts, attachment to HDF5 and JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "util/h5.h"
#include "util/provenance.h"
#include "util/sha256.h"
#include "tests/helpers/sb_test.h"

static void test_sha256_vectors(void **state) {
    (void)state;
    char hex[65];
    /* one million 'a' fed in odd-sized pieces, as the model hash streams files */
    sb_sha256_ctx h;
    sb_sha256_init(&h);
    char a[997];
    memset(a, 'a', sizeof a);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof a ? left : sizeof a;
        sb_sha256_update(&h, a, k);
        left -= k;
    }
    uint8_t d[32];
    sb_sha256_final(&h, d);
    sb_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_file_and_model_hash(void **state) {
    (void)state;
    char p[256], hex[65], hex2[65];
    snprintf(p, sizeof p, "%s/data.txt", sb_test_dir);
    sb_test_write_text(p, "abc");
    uint8_t d[32];
    assert_int_equal(sb_sha256_file(p, d), SB_OK);
    sb_sha256_hex(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(sb_sha256_file("/nonexistent/x", d), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/x"));

    char cfg[256], st[256];
    snprintf(cfg, sizeof cfg, "%s/config.json", sb_test_dir);
    snprintf(st, sizeof st, "%s/model.safetensors", sb_test_dir);
    sb_test_write_text(cfg, "{}");
    assert_int_equal(sb_provenance_hash_model(sb_test_dir, hex), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "model.safetensors"));
    sb_test_write_text(st, "weights");
    assert_int_equal(sb_provenance_hash_model(sb_test_dir, hex), SB_OK);
    assert_int_equal(strlen(hex), 64);
    sb_test_write_text(st, "weightz");
    assert_int_equal(sb_provenance_hash_model(sb_test_dir, hex2), SB_OK);
    assert_string_not_equal(hex, hex2);
    sb_test_write_text(st, "weights");
    sb_test_write_text(cfg, "{ }");
    assert_int_equal(sb_provenance_hash_model(sb_test_dir, hex2), SB_OK);
    assert_string_not_equal(hex, hex2);
}

static void test_git_rev(void **state) {
    (void)state;
    char rev[64];
    sb_provenance_git_rev(sb_test_dir, rev, sizeof rev); /* a temp dir is no checkout */
    assert_string_equal(rev, "unknown");
    sb_provenance_git_rev("/nonexistent/dir", rev, sizeof rev);
    assert_string_equal(rev, "unknown");
    /* the tests run from the repository root */
    FILE *g = popen("git rev-parse --short HEAD 2>/dev/null", "r");
    char want[64] = "";
    if (g) {
        if (!fgets(want, sizeof want, g)) want[0] = '\0';
        pclose(g);
    }
    want[strcspn(want, "\n")] = '\0';
    if (!want[0]) {
        print_message("SKIP git_rev: no git checkout here\n");
        return;
    }
    sb_provenance_git_rev(".", rev, sizeof rev);
    assert_int_equal(strncmp(rev, want, strlen(want)), 0);
    const char *tail = rev + strlen(want);
    assert_true(tail[0] == '\0' || !strcmp(tail, "-dirty"));
    g = popen("git status --porcelain --untracked-files=no 2>/dev/null | head -c 1", "r");
    int dirty = g && fgetc(g) != EOF;
    if (g) pclose(g);
    assert_int_equal(!strcmp(tail, "-dirty"), dirty);
}

static void test_collect_and_attach(void **state) {
    (void)state;
    sb_provenance p;
    sb_provenance_collect(&p);
    assert_true(p.cores >= 1);
    assert_true(p.blas_threads >= 1);
    assert_true(p.omp_threads >= 1);
    assert_true(p.hostname[0] != '\0');
    assert_true(p.cpu_model[0] != '\0');
    assert_true(p.git_rev[0] != '\0');
    assert_true(p.loadavg1 >= 0);
    /* 2024-05-01T12:34:56Z */
    assert_int_equal(strlen(p.date_utc), 20);
    assert_true(p.date_utc[4] == '-' && p.date_utc[10] == 'T' && p.date_utc[19] == 'Z');

    char path[256];
    snprintf(path, sizeof path, "%s/prov.h5", sb_test_dir);
    sb_h5 *f;
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_provenance_to_h5(&p, f), SB_OK);
    assert_int_equal(sb_h5_commit(f), SB_OK);
    assert_int_equal(sb_h5_open(&f, path), SB_OK);
    char buf[256];
    int64_t v;
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "git_rev", buf, sizeof buf), SB_OK);
    assert_string_equal(buf, p.git_rev);
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "date_utc", buf, sizeof buf), SB_OK);
    assert_string_equal(buf, p.date_utc);
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "cpu_model", buf, sizeof buf), SB_OK);
    assert_string_equal(buf, p.cpu_model);
    assert_int_equal(sb_h5_attr_get_i64(f, NULL, "cores", &v), SB_OK);
    assert_int_equal(v, p.cores);
    assert_int_equal(sb_h5_attr_get_i64(f, NULL, "blas_threads", &v), SB_OK);
    assert_int_equal(v, p.blas_threads);
    sb_h5_close(f);

    cJSON *o = cJSON_CreateObject();
    sb_provenance_to_json(&p, o);
    const char *keys[] = {"git_rev", "hostname", "cpu_model", "cores", "blas_threads", "omp_threads", "date_utc", "loadavg1"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(o, keys[i]));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "git_rev")->valuestring, p.git_rev);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "cores")->valueint, p.cores);
    cJSON_Delete(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_file_and_model_hash),
        cmocka_unit_test(test_git_rev),
        cmocka_unit_test(test_collect_and_attach),
    };
    return cmocka_run_group_tests_name("provenance", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
