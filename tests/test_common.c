/* Tests of engine/common: error messages, atomic writes, size arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"

static void test_error_is_one_line(void **state) {
    (void)state;
    assert_int_equal(sb_error("bad %s\nsecond line", "thing"), SB_ERR);
    assert_string_equal(sb_last_error(), "bad thing second line");
    assert_int_equal(sb_usage_error("flag --x"), SB_ERR_USAGE);
    assert_string_equal(sb_last_error(), "flag --x");
}

static void test_atomic_write_roundtrip(void **state) {
    (void)state;
    char path[] = "/tmp/sb_test_atomic_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sb_write_file_atomic(path, "hello", 5), SB_OK);
    char *data;
    size_t n;
    assert_int_equal(sb_read_file(path, &data, &n), SB_OK);
    assert_int_equal(n, 5);
    assert_string_equal(data, "hello");
    free(data);
    unlink(path);
}

static void test_read_missing_names_file(void **state) {
    (void)state;
    char *data;
    size_t n;
    assert_int_equal(sb_read_file("/nonexistent/sb_file", &data, &n), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/sb_file"));
}

static void test_write_unwritable(void **state) {
    (void)state;
    assert_int_equal(sb_write_file_atomic("/nonexistent/dir/out", "x", 1), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/dir/out"));
}

static void test_size_overflow(void **state) {
    (void)state;
    size_t out;
    assert_true(sb_mul_size(1u << 20, 1u << 10, &out));
    assert_int_equal(out, (size_t)1 << 30);
    assert_false(sb_mul_size(SIZE_MAX / 2, 3, &out));
    assert_false(sb_add_size(SIZE_MAX, 1, &out));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_is_one_line),
        cmocka_unit_test(test_atomic_write_roundtrip),
        cmocka_unit_test(test_read_missing_names_file),
        cmocka_unit_test(test_write_unwritable),
        cmocka_unit_test(test_size_overflow),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
