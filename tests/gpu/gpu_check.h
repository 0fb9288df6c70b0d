/* The check of the C GPU tests (test_backend, test_train_kernels, test_train_gpu): one
 * "PASS ..." or "FAIL ..." line per check, counted; each test ends with
 * "N passed, M failed", which tests/gpu/run.sh adds up. */
#ifndef SB_TESTS_GPU_CHECK_H
#define SB_TESTS_GPU_CHECK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int n_pass, n_fail;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    ok ? n_pass++ : n_fail++;
}

#endif
