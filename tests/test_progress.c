/* Tests of util/progress: the line's content, and silence when stderr is no terminal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/progress.h"

static void test_format(void **state) {
    (void)state;
    char buf[256];
    /* 500 of 2000 in 2 s: 250 tok/s, 1500 left = 6 s; mean nll ln(20) -> ppl 20 */
    sb_progress_format(buf, sizeof buf, "ppl", 500, 2000, 2.0, 500 * log(20.0));
    assert_string_equal(buf, "ppl 500/2000 (25.0%) 250.0 tok/s ETA 0:06 ppl 20.000");
    sb_progress_format(buf, sizeof buf, "", 0, 10, 0.0, NAN);
    assert_string_equal(buf, "0/10 (0.0%) 0.0 tok/s ETA ?");
    sb_progress_format(buf, sizeof buf, "decode", 1, 7201, 1.0, NAN);
    assert_string_equal(buf, "decode 1/7201 (0.0%) 1.0 tok/s ETA 2:00:00");
    /* truncation never overflows */
    char small[8];
    sb_progress_format(small, sizeof small, "label", 1, 2, 1.0, 0.0);
    assert_int_equal(strlen(small), 7);
}

static void test_silent_without_tty(void **state) {
    (void)state;
    sb_progress p;
    sb_progress_begin(&p, "x", 10);
    assert_int_equal(p.enabled, isatty(2) == 1);
    if (!p.enabled) {
        p.last -= 10; /* would be due for a print */
        sb_progress_update(&p, 5, 1.0);
        assert_false(p.printed);
    }
    sb_progress_end(&p);
    assert_false(p.printed);
}

static void test_rate_limited(void **state) {
    (void)state;
    sb_progress p;
    sb_progress_begin(&p, "x", 10);
    p.enabled = true; /* pretend a terminal; the line goes to the test log */
    sb_progress_update(&p, 1, NAN);
    assert_false(p.printed); /* nothing within the first 0.25 s */
    p.last -= 1.0;
    sb_progress_update(&p, 2, NAN);
    assert_true(p.printed);
    sb_progress_end(&p);
    assert_false(p.printed);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_silent_without_tty),
        cmocka_unit_test(test_rate_limited),
    };
    return cmocka_run_group_tests_name("progress", tests, NULL, NULL);
}
