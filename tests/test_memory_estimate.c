/* Unit tests of util/memcheck: sums saturate instead of wrapping, the refusal names the
 * estimate, its parts and the limit, and the available-memory probe honours ulimit -v. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/common.h"
#include "util/memcheck.h"

static void test_total_saturates(void **state) {
    (void)state;
    sb_mem_part p[3] = {{"a", 10}, {"b", 20}, {"c", 30}};
    assert_int_equal(sb_mem_total(p, 3), 60);
    p[1].bytes = UINT64_MAX - 5;
    assert_true(sb_mem_total(p, 3) == UINT64_MAX);
    assert_int_equal(sb_mem_total(p, 0), 0);
}

static void test_check_fits_and_refuses(void **state) {
    (void)state;
    sb_mem_part p[2] = {{"weights", 3u << 20}, {"KV cache", 1u << 20}};
    assert_int_equal(sb_mem_check("run", p, 2, 8u << 20), SB_OK);
    assert_int_equal(sb_mem_check("run", p, 2, 4u << 20), SB_OK); /* exactly the limit fits */
    assert_int_equal(sb_mem_check("run", p, 2, (4u << 20) - 1), SB_ERR);
    const char *e = sb_last_error();
    assert_non_null(strstr(e, "run needs 4194304 bytes"));
    assert_non_null(strstr(e, "weights 3.0 MiB + KV cache 1.0 MiB"));
    assert_non_null(strstr(e, "--max-memory limit of 4194303 bytes"));
    p[0].bytes = UINT64_MAX;
    assert_int_equal(sb_mem_check("huge", p, 2, 1u << 30), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "more than 16 EiB"));
}

static void test_format(void **state) {
    (void)state;
    char b[64];
    sb_mem_format(b, sizeof b, 512);
    assert_string_equal(b, "512 B");
    sb_mem_format(b, sizeof b, 1536);
    assert_string_equal(b, "1.5 KiB");
    sb_mem_format(b, sizeof b, 3ull << 30);
    assert_string_equal(b, "3.00 GiB");
}

/* In a child: RLIMIT_AS of 1 GiB caps what is available well below MemAvailable. */
static void test_available_honours_rlimit_as(void **state) {
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    skip(); /* ASan maps terabytes of shadow memory: no RLIMIT_AS can hold it */
#endif
    const char *src = NULL;
    uint64_t free_now = sb_mem_available(&src);
    assert_true(free_now > 0 && free_now < UINT64_MAX); /* /proc/meminfo is there on Linux */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {1ull << 30, 1ull << 30};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        uint64_t a = sb_mem_available(&src);
        _exit(a > 0 && a < (1ull << 30) && !strcmp(src, "ulimit -v") ? 0 : 1);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_total_saturates),
        cmocka_unit_test(test_check_fits_and_refuses),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_available_honours_rlimit_as),
    };
    return cmocka_run_group_tests_name("memory_estimate", tests, NULL, NULL);
}
