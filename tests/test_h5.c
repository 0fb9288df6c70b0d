/* Tests of util/h5: roundtrips, attributes, appendable logs, atomic commit and the
 * completion marker, error paths (unwritable, not HDF5, silent HDF5 error stack). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "util/h5.h"
#include "tests/helpers/sb_test.h"

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_roundtrip_datasets(void **state) {
    (void)state;
    const char *path = sb_test_path("rt.h5");
    sb_h5 *f;
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    float a[1000];
    for (int i = 0; i < 1000; i++) a[i] = (float)i * 0.25f - 3.0f;
    double b[6] = {1.5, -2.5, 3.25, 1e300, -1e-300, 0.0};
    int64_t c[2 * 3 * 4];
    for (int i = 0; i < 24; i++) c[i] = (int64_t)i * 1000000000000LL - 7;
    assert_int_equal(sb_h5_write_f32(f, "nll", a, 1000), SB_OK);
    assert_int_equal(sb_h5_write(f, "b", SB_H5_F64, 2, (int64_t[]){2, 3}, b), SB_OK);
    assert_int_equal(sb_h5_write(f, "grp/c", SB_H5_I64, 3, (int64_t[]){2, 3, 4}, c), SB_OK);
    assert_int_equal(sb_h5_write_f64(f, "empty", NULL, 0), SB_OK);
    /* a name twice is an error, not a silent overwrite */
    assert_int_equal(sb_h5_write_f32(f, "nll", a, 10), SB_ERR);
    assert_false(exists(path)); /* nothing at the final path before commit */
    assert_int_equal(sb_h5_commit(f), SB_OK);
    assert_true(exists(path));

    assert_int_equal(sb_h5_open(&f, path), SB_OK);
    int rank;
    int64_t dims[3];
    assert_int_equal(sb_h5_dims(f, "grp/c", &rank, dims), SB_OK);
    assert_int_equal(rank, 3);
    assert_int_equal(dims[0], 2);
    assert_int_equal(dims[1], 3);
    assert_int_equal(dims[2], 4);
    float ra[1000];
    assert_int_equal(sb_h5_read(f, "nll", SB_H5_F32, ra, 1000), SB_OK);
    assert_memory_equal(ra, a, sizeof a);
    /* too small a buffer is refused */
    assert_int_equal(sb_h5_read(f, "nll", SB_H5_F32, ra, 999), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "nll"));
    /* conversion on read: f32 -> f64 */
    double *rd;
    assert_int_equal(sb_h5_read_alloc(f, "nll", SB_H5_F64, (void **)&rd, &rank, dims), SB_OK);
    assert_int_equal(rank, 1);
    assert_int_equal(dims[0], 1000);
    for (int i = 0; i < 1000; i++) assert_true(rd[i] == (double)a[i]);
    free(rd);
    double rb[6];
    assert_int_equal(sb_h5_read(f, "b", SB_H5_F64, rb, 6), SB_OK);
    assert_memory_equal(rb, b, sizeof b);
    int64_t *rc;
    assert_int_equal(sb_h5_read_alloc(f, "grp/c", SB_H5_I64, (void **)&rc, NULL, NULL), SB_OK);
    assert_memory_equal(rc, c, sizeof c);
    free(rc);
    assert_int_equal(sb_h5_dims(f, "empty", &rank, dims), SB_OK);
    assert_int_equal(dims[0], 0);
    assert_false(sb_h5_has(f, "missing"));
    assert_int_equal(sb_h5_read(f, "missing", SB_H5_F32, ra, 1000), SB_ERR);
    assert_non_null(strstr(sb_last_error(), path));
    /* read-only handles refuse writes */
    assert_int_equal(sb_h5_write_f32(f, "x", a, 1), SB_ERR);
    sb_h5_close(f);
}

static void test_compressed(void **state) {
    (void)state;
    const char *path = sb_test_path("zeros.h5");
    size_t n = 1 << 20;
    float *z = calloc(n, sizeof *z);
    sb_h5 *f;
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_write_f32(f, "z", z, (int64_t)n), SB_OK);
    assert_int_equal(sb_h5_commit(f), SB_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true((size_t)st.st_size < n * sizeof(float) / 50); /* chunked + deflate is on */
    free(z);
}

static void test_attributes(void **state) {
    (void)state;
    const char *path = sb_test_path("attr.h5");
    sb_h5 *f;
    float x[3] = {1, 2, 3};
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_write_f32(f, "x", x, 3), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, NULL, "policy", "sinks:4:508"), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, "/", "empty", ""), SB_OK);
    assert_int_equal(sb_h5_attr_f64(f, "", "ppl", 12.5), SB_OK);
    assert_int_equal(sb_h5_attr_i64(f, NULL, "tokens", 1234567890123LL), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, "x", "unit", "nats"), SB_OK);
    assert_int_equal(sb_h5_attr_i64(f, "x", "n", 3), SB_OK);
    /* rewriting a key replaces it, even with another type */
    assert_int_equal(sb_h5_attr_str(f, NULL, "policy", "dense"), SB_OK);
    assert_int_equal(sb_h5_attr_f64(f, "x", "n", 3.5), SB_OK);
    assert_int_equal(sb_h5_attr_str(f, "nope", "k", "v"), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "nope"));
    assert_int_equal(sb_h5_commit(f), SB_OK);

    assert_int_equal(sb_h5_open(&f, path), SB_OK);
    char buf[64];
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "policy", buf, sizeof buf), SB_OK);
    assert_string_equal(buf, "dense");
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "empty", buf, sizeof buf), SB_OK);
    assert_string_equal(buf, "");
    assert_int_equal(sb_h5_attr_get_str(f, "x", "unit", buf, sizeof buf), SB_OK);
    assert_string_equal(buf, "nats");
    double d;
    int64_t i;
    assert_int_equal(sb_h5_attr_get_f64(f, NULL, "ppl", &d), SB_OK);
    assert_true(d == 12.5);
    assert_int_equal(sb_h5_attr_get_i64(f, NULL, "tokens", &i), SB_OK);
    assert_true(i == 1234567890123LL);
    assert_int_equal(sb_h5_attr_get_f64(f, NULL, "tokens", &d), SB_OK); /* converted */
    assert_true(d == 1234567890123.0);
    assert_int_equal(sb_h5_attr_get_f64(f, "x", "n", &d), SB_OK);
    assert_true(d == 3.5);
    assert_int_equal(sb_h5_attr_get_i64(f, NULL, "complete", &i), SB_OK);
    assert_int_equal(i, 1);
    assert_true(sb_h5_attr_has(f, NULL, "ppl"));
    assert_false(sb_h5_attr_has(f, NULL, "nothing"));
    /* type and size errors name the attribute */
    assert_int_equal(sb_h5_attr_get_f64(f, NULL, "policy", &d), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "policy"));
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "ppl", buf, sizeof buf), SB_ERR);
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "policy", buf, 3), SB_ERR);
    assert_int_equal(sb_h5_attr_get_str(f, NULL, "missing", buf, sizeof buf), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "missing"));
    sb_h5_close(f);
}

static void test_append_and_resume(void **state) {
    (void)state;
    const char *path = sb_test_path("log.h5");
    sb_h5 *f;
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_append_create(f, "loss", SB_H5_F32, 0), SB_OK);
    assert_int_equal(sb_h5_append_create(f, "grid", SB_H5_I64, 3), SB_OK);
    for (int s = 0; s < 100; s++) {
        float v = (float)s;
        int64_t row[3] = {s, 2 * s, 3 * s};
        assert_int_equal(sb_h5_append(f, "loss", &v, 1), SB_OK);
        assert_int_equal(sb_h5_append(f, "grid", row, 1), SB_OK);
    }
    float many[5000];
    for (int k = 0; k < 5000; k++) many[k] = 100.0f + (float)k;
    assert_int_equal(sb_h5_append(f, "loss", many, 5000), SB_OK);
    assert_int_equal(sb_h5_append(f, "nope", many, 1), SB_ERR);
    float x = 1;
    assert_int_equal(sb_h5_write_f32(f, "fixed", &x, 1), SB_OK);
    assert_int_equal(sb_h5_append(f, "fixed", &x, 1), SB_ERR); /* not appendable */
    assert_int_equal(sb_h5_flush(f), SB_OK);
    assert_int_equal(sb_h5_commit(f), SB_OK);

    /* resume at step 40: drop later rows, append anew */
    assert_int_equal(sb_h5_reopen(&f, path), SB_OK);
    assert_int_equal(sb_h5_truncate(f, "loss", 40), SB_OK);
    assert_int_equal(sb_h5_truncate(f, "grid", 40), SB_OK);
    assert_int_equal(sb_h5_truncate(f, "grid", 41), SB_ERR); /* cannot grow */
    float v = -1.0f;
    assert_int_equal(sb_h5_append(f, "loss", &v, 1), SB_OK);
    /* until commit, the original stays complete and unchanged */
    assert_int_equal(sb_h5_is_complete(path), 1);
    assert_int_equal(sb_h5_commit(f), SB_OK);

    assert_int_equal(sb_h5_open(&f, path), SB_OK);
    float *loss;
    int rank;
    int64_t dims[3];
    assert_int_equal(sb_h5_read_alloc(f, "loss", SB_H5_F32, (void **)&loss, &rank, dims), SB_OK);
    assert_int_equal(dims[0], 41);
    for (int s = 0; s < 40; s++) assert_true(loss[s] == (float)s);
    assert_true(loss[40] == -1.0f);
    free(loss);
    int64_t grid[40 * 3];
    assert_int_equal(sb_h5_dims(f, "grid", &rank, dims), SB_OK);
    assert_int_equal(rank, 2);
    assert_int_equal(dims[0], 40);
    assert_int_equal(dims[1], 3);
    assert_int_equal(sb_h5_read(f, "grid", SB_H5_I64, grid, 120), SB_OK);
    assert_int_equal(grid[3 * 39 + 2], 3 * 39);
    sb_h5_close(f);
}

static void copy_file(const char *src, const char *dst) {
    char *data;
    size_t n;
    assert_int_equal(sb_read_file(src, &data, &n), SB_OK);
    FILE *o = fopen(dst, "wb");
    assert_non_null(o);
    assert_int_equal(fwrite(data, 1, n, o), n);
    fclose(o);
    free(data);
}

static void test_incomplete_detected(void **state) {
    (void)state;
    const char *path = sb_test_path("inc.h5");
    const char *crashed = sb_test_path("crashed.h5");
    sb_h5 *f;
    float x[4] = {1, 2, 3, 4};
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_write_f32(f, "x", x, 4), SB_OK);
    assert_int_equal(sb_h5_flush(f), SB_OK);
    /* what a crash would leave behind: the flushed temp file, without the marker */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_true(exists(tmp));
    copy_file(tmp, crashed);
    sb_h5_abort(f);
    assert_false(exists(tmp)); /* abort cleans up */
    assert_false(exists(path));

    assert_int_equal(sb_h5_is_complete(crashed), 0);
    assert_int_equal(sb_h5_open(&f, crashed), SB_ERR);
    assert_null(f);
    assert_non_null(strstr(sb_last_error(), crashed));
    assert_non_null(strstr(sb_last_error(), "incomplete"));
    assert_int_equal(sb_h5_reopen(&f, crashed), SB_ERR);
    assert_int_equal(sb_h5_is_complete(sb_test_path("absent.h5")), -1);

    /* a complete=0 marker is not complete either */
    assert_int_equal(sb_h5_create(&f, path), SB_OK);
    assert_int_equal(sb_h5_attr_i64(f, NULL, "complete", 0), SB_OK);
    assert_int_equal(sb_h5_flush(f), SB_OK);
    copy_file(tmp, crashed);
    sb_h5_abort(f);
    assert_int_equal(sb_h5_is_complete(crashed), 0);
}

static void test_unwritable_and_bad_files(void **state) {
    (void)state;
    sb_h5 *f = (sb_h5 *)1;
    assert_int_equal(sb_h5_create(&f, "/nonexistent/dir/x.h5"), SB_ERR);
    assert_null(f);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/dir/x.h5"));
    /* a device is refused (renaming over it would replace it) */
    int rc = sb_h5_create(&f, "/dev/full");
    if (rc == SB_OK) sb_h5_abort(f); /* even broken, leave nothing behind in /dev */
    assert_int_equal(rc, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/dev/full"));
    char devtmp[64];
    snprintf(devtmp, sizeof devtmp, "/dev/full.tmp.%ld", (long)getpid());
    assert_false(exists(devtmp));
    /* a directory target */
    rc = sb_h5_create(&f, sb_test_dir);
    if (rc == SB_OK) sb_h5_abort(f);
    assert_int_equal(rc, SB_ERR);

    /* not HDF5: an error naming the file, and HDF5 itself prints nothing */
    const char *junk = sb_test_path("junk.h5");
    FILE *o = fopen(junk, "wb");
    fputs("this is not hdf5\n", o);
    fclose(o);
    fflush(stderr);
    int saved = dup(2);
    const char *errlog = sb_test_path("stderr.txt");
    int fd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    int rc1 = sb_h5_open(&f, junk);
    int rc2 = sb_h5_open(&f, sb_test_path("missing.h5"));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc1, SB_ERR);
    assert_int_equal(rc2, SB_ERR);
    assert_non_null(strstr(sb_last_error(), "missing.h5"));
    struct stat st;
    assert_int_equal(stat(errlog, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(sb_h5_open(&f, junk), SB_ERR);
    assert_non_null(strstr(sb_last_error(), junk));

    /* commit failing (final path's directory vanished) removes the temp file */
    char sub[256];
    snprintf(sub, sizeof sub, "%s/sub", sb_test_dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char target[300];
    snprintf(target, sizeof target, "%s/out.h5", sub);
    assert_int_equal(sb_h5_create(&f, target), SB_OK);
    assert_int_equal(sb_h5_write_f32(f, "x", (float[]){1}, 1), SB_OK);
    /* make the final name a non-empty directory: rename over it fails */
    assert_int_equal(mkdir(target, 0755), 0);
    char inner[400];
    snprintf(inner, sizeof inner, "%s/keep", target);
    fclose(fopen(inner, "w"));
    assert_int_equal(sb_h5_commit(f), SB_ERR);
    assert_non_null(strstr(sb_last_error(), target));
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", target, (long)getpid());
    assert_false(exists(tmp));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_datasets),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_append_and_resume),
        cmocka_unit_test(test_incomplete_detected),
        cmocka_unit_test(test_unwritable_and_bad_files),
    };
    return cmocka_run_group_tests_name("h5", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
