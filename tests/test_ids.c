/* Tests of datasets/ids: the whitespace-separated decimal id reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datasets/ids.h"
#include "engine/common.h"

static char path[64];

static int setup(void **state) {
    (void)state;
    strcpy(path, "/tmp/sb_test_ids_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(path);
    return 0;
}

static void put(const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}
static void puts_file(const char *s) { put(s, strlen(s)); }

static void test_parses_any_whitespace(void **state) {
    (void)state;
    puts_file("  1 2\t3\r\n\n4\v5\f6\n 2147483647 0007");
    int32_t *ids;
    int64_t n;
    assert_int_equal(sb_ids_load(path, 0, 0, &ids, &n), SB_OK);
    int32_t want[] = {1, 2, 3, 4, 5, 6, INT32_MAX, 7};
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    /* max_tokens stops early, even before a bad token further on */
    puts_file("10 11 12 oops");
    assert_int_equal(sb_ids_load(path, 100, 2, &ids, &n), SB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 11);
    free(ids);
    /* empty and whitespace-only files hold no ids */
    puts_file("");
    assert_int_equal(sb_ids_load(path, 100, 0, &ids, &n), SB_OK);
    assert_int_equal(n, 0);
    free(ids);
    puts_file(" \n\n\t ");
    assert_int_equal(sb_ids_load(path, 100, 0, &ids, &n), SB_OK);
    assert_int_equal(n, 0);
    free(ids);
}

/* Expect an error that names the file, the line and contains `what`. */
static void expect_error(const char *content, int32_t vocab, int line, const char *what) {
    puts_file(content);
    int32_t *ids = (int32_t *)1;
    int64_t n = 99;
    assert_int_equal(sb_ids_load(path, vocab, 0, &ids, &n), SB_ERR);
    assert_null(ids);
    assert_int_equal(n, 0);
    char where[96];
    snprintf(where, sizeof where, "%s:%d:", path, line);
    const char *msg = sb_last_error();
    if (!strstr(msg, where) || !strstr(msg, what))
        fail_msg("for %s: got '%s', want '%s' and '%s'", content, msg, where, what);
}

static void test_rejects_bad_tokens(void **state) {
    (void)state;
    expect_error("1 2\n3\n12a 5\n", 0, 3, "bad token '12a'");
    expect_error("1\n-5\n", 0, 2, "negative id '-5'");
    expect_error("+5", 0, 1, "bad token '+5'");
    expect_error("0x10", 0, 1, "bad token '0x10'");
    expect_error("1.5", 0, 1, "bad token '1.5'");
    expect_error("7,8", 0, 1, "bad token '7,8'");
    expect_error("1\n\n\n2147483648", 0, 4, "'2147483648' is out of range");
    expect_error("99999999999999999999999999", 0, 1, "out of range");
    expect_error("3 49 50", 50, 1, "id 50 >= vocab 50");
    expect_error("1 \x01\x02", 0, 1, "bad token '?\?'");
    /* a long bad token is quoted shortened */
    char longtok[300];
    memset(longtok, 'x', sizeof longtok - 1);
    longtok[sizeof longtok - 1] = '\0';
    expect_error(longtok, 0, 1, "xxx...'");
    assert_true(strlen(sb_last_error()) < 200);
    int32_t *ids;
    int64_t n;
    assert_int_equal(sb_ids_load("/nonexistent/sb.ids", 0, 0, &ids, &n), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/sb.ids"));
}

/* Tokens that straddle the reader's internal buffer boundaries are read whole. */
static void test_large_file_boundaries(void **state) {
    (void)state;
    int64_t count = 60000;
    size_t cap = (size_t)count * 12, len = 0;
    char *buf = malloc(cap);
    for (int64_t i = 0; i < count; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld%s", (long long)(i * 7919 % 1000003),
                                i % 13 == 0 ? "\n" : " ");
    put(buf, len);
    int32_t *ids;
    int64_t n;
    assert_int_equal(sb_ids_load(path, 1000003, 0, &ids, &n), SB_OK);
    assert_int_equal(n, count);
    for (int64_t i = 0; i < count; i++) assert_int_equal(ids[i], i * 7919 % 1000003);
    free(ids);
    /* a file whose size is an exact multiple of the read size, ending inside a token */
    size_t size = 1 << 16;
    memset(buf, ' ', size);
    memcpy(buf + size - 5, "12345", 5);
    memcpy(buf, "1", 1);
    put(buf, size);
    assert_int_equal(sb_ids_load(path, 0, 0, &ids, &n), SB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 12345);
    free(ids);
    /* and a token split across the boundary */
    memset(buf, ' ', size + 10);
    memcpy(buf + size - 3, "987654", 6);
    buf[size + 3] = '\n';
    memcpy(buf + size + 4, "x", 1);
    put(buf, size + 5);
    assert_int_equal(sb_ids_load(path, 0, 0, &ids, &n), SB_ERR);
    assert_non_null(strstr(sb_last_error(), ":2: bad token 'x'"));
    put(buf, size + 4);
    assert_int_equal(sb_ids_load(path, 0, 0, &ids, &n), SB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 987654);
    free(ids);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_any_whitespace),
        cmocka_unit_test(test_rejects_bad_tokens),
        cmocka_unit_test(test_large_file_boundaries),
    };
    return cmocka_run_group_tests_name("ids", tests, setup, teardown);
}
