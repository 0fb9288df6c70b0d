/* Tests of engine/safetensors: writer/reader roundtrip, shards, and every malformed-file path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/half.h"
#include "engine/safetensors.h"
#include "tests/helpers/sb_test.h"

/* A file made of an 8-byte length (hlen_override when non-zero), a header and raw data. */
static void write_raw(const char *path, const char *header, uint64_t hlen_override, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t h = hlen_override ? hlen_override : strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(h >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* Open must fail with a message naming the file and containing `want`. */
static void expect_open_error(const char *path, const char *want) {
    sb_st_file f;
    sb_clear_error();
    assert_int_equal(sb_st_open(&f, path), SB_ERR);
    if (!strstr(sb_last_error(), path)) fail_msg("message does not name the file: %s", sb_last_error());
    if (want && !strstr(sb_last_error(), want)) fail_msg("message lacks '%s': %s", want, sb_last_error());
}

static void test_roundtrip_dtypes(void **state) {
    (void)state;
    float a[6] = {1.0f, -2.5f, 3.14159265f, 1e-6f, 65504.0f, -0.0f}, b[3] = {7.0f, 8.0f, 1e30f};
    sb_st_write_tensor wt[3] = {
        {.name = "a", .data = a, .ndim = 2, .shape = {2, 3}},
        {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 4}},
        {.name = "b.weight", .data = b, .ndim = 1, .shape = {3}},
    };
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    for (int dt = SB_DTYPE_F32; dt <= SB_DTYPE_BF16; dt++) {
        const char *p = sb_test_path("rt.safetensors");
        assert_int_equal(sb_st_write(p, wt, 3, (sb_dtype)dt, mk, mv, 1), SB_OK);
        sb_st_file f;
        assert_int_equal(sb_st_open(&f, p), SB_OK);
        assert_int_equal(f.n_tensors, 3);
        assert_string_equal(sb_st_meta(&f, "format"), "pt");
        assert_null(sb_st_meta(&f, "nothing"));
        const sb_st_tensor *t = sb_st_find(&f, "a");
        assert_non_null(t);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 2);
        assert_int_equal(t->shape[1], 3);
        assert_int_equal(t->dtype, dt == SB_DTYPE_F32 ? SB_ST_F32 : dt == SB_DTYPE_F16 ? SB_ST_F16 : SB_ST_BF16);
        /* the data section starts 8-byte aligned */
        assert_int_equal(((const unsigned char *)t->data - (const unsigned char *)f.map) % 8, 0);
        float out[6];
        assert_int_equal(sb_st_read_f32(&f, t, out), SB_OK);
        for (int i = 0; i < 6; i++) {
            float want = dt == SB_DTYPE_F32   ? a[i]
                         : dt == SB_DTYPE_F16 ? sb_f16_to_f32(sb_f32_to_f16(a[i]))
                                              : sb_bf16_to_f32(sb_f32_to_bf16(a[i]));
            assert_memory_equal(&out[i], &want, sizeof want);
        }
        t = sb_st_find(&f, "empty");
        assert_non_null(t);
        assert_int_equal(t->numel, 0);
        t = sb_st_find(&f, "b.weight");
        assert_non_null(t);
        assert_int_equal(sb_st_read_f32(&f, t, out), SB_OK);
        assert_float_equal(out[1], 8.0f, 0);
        if (dt == SB_DTYPE_F16) assert_true(isinf(out[2])); /* 1e30 overflows half */
        assert_null(sb_st_find(&f, "missing"));
        sb_st_close(&f);
    }
    /* no temp file is left behind */
    DIR *d = opendir(sb_test_dir);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

static void test_writer_errors(void **state) {
    (void)state;
    float a[2] = {1, 2};
    sb_st_write_tensor wt = {.name = "a", .data = a, .ndim = 1, .shape = {2}};
    assert_int_equal(sb_st_write("/nonexistent/dir/x.safetensors", &wt, 1, SB_DTYPE_F32, NULL, NULL, 0), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/dir/x.safetensors"));
    sb_st_write_tensor bad = {.name = "a", .data = a, .ndim = 1, .shape = {-2}};
    assert_int_equal(sb_st_write(sb_test_path("w.safetensors"), &bad, 1, SB_DTYPE_F32, NULL, NULL, 0), SB_ERR);
}

static void test_header_errors(void **state) {
    (void)state;
    const char *p = sb_test_path("bad.safetensors");
    float data[4] = {1, 2, 3, 4};

    expect_open_error(sb_test_path("does_not_exist.safetensors"), "cannot open");

    FILE *f = fopen(p, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_open_error(p, "truncated");

    write_raw(p, "{}", 1000, NULL, 0);
    expect_open_error(p, "exceeds the file size");
    write_raw(p, "{}", 10, NULL, 0); /* the length counts the 8 length bytes too */
    expect_open_error(p, "exceeds the file size");
    write_raw(p, "{}", UINT64_MAX, NULL, 0);
    expect_open_error(p, "exceeds the file size");

    write_raw(p, "{not json", 0, NULL, 0);
    expect_open_error(p, "JSON");
    write_raw(p, "[1,2]", 0, NULL, 0);
    expect_open_error(p, "JSON object");

    write_raw(p, "{\"x\":{\"dtype\":\"Q4\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, data, 16);
    expect_open_error(p, "Q4");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}", 0, data, 16);
    expect_open_error(p, "need 20");
    /* truncated data: offsets past the end of the file */
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, data, 12);
    expect_open_error(p, "truncated");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 0, data, 16);
    expect_open_error(p, "reversed");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 0, data, 16);
    expect_open_error(p, "data_offsets");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", 0, data, 16);
    expect_open_error(p, "shape");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,16]}}", 0, data, 16);
    expect_open_error(p, "shape");
    /* a shape whose element count overflows: rejected, never allocated */
    write_raw(p,
              "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,16]}}",
              0, data, 16);
    expect_open_error(p, "overflow");
    write_raw(p, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,4],\"data_offsets\":[0,16]}}", 0, data, 16);
    expect_open_error(p, "dims");
    write_raw(p,
              "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
              "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              0, data, 16);
    expect_open_error(p, "overlap");
    write_raw(p,
              "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              0, data, 16);
    expect_open_error(p, "twice");
    write_raw(p, "{\"__metadata__\":{\"k\":5}}", 0, NULL, 0);
    expect_open_error(p, "__metadata__");
    write_raw(p, "{\"x\":[1,2]}", 0, NULL, 0);
    expect_open_error(p, "not an object");
}

static void test_unsupported_dtype_on_read(void **state) {
    (void)state;
    const char *p = sb_test_path("i64.safetensors");
    int64_t v[2] = {1, 2};
    write_raw(p, "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 0, v, 16);
    sb_st_file f;
    assert_int_equal(sb_st_open(&f, p), SB_OK); /* a known dtype opens; converting it fails */
    float out[2];
    assert_int_equal(sb_st_read_f32(&f, sb_st_find(&f, "ids"), out), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "ids"));
    assert_non_null(strstr(sb_last_error(), "I64"));
    assert_non_null(strstr(sb_last_error(), p));
    sb_st_close(&f);
}

static void test_shards(void **state) {
    (void)state;
    float a[2] = {1, 2}, b[3] = {3, 4, 5};
    sb_st_write_tensor ta = {.name = "a", .data = a, .ndim = 1, .shape = {2}};
    sb_st_write_tensor tb = {.name = "b", .data = b, .ndim = 1, .shape = {3}};
    assert_int_equal(sb_st_write(sb_test_path("model-00001-of-00002.safetensors"), &ta, 1, SB_DTYPE_F32, NULL, NULL, 0), 0);
    assert_int_equal(sb_st_write(sb_test_path("model-00002-of-00002.safetensors"), &tb, 1, SB_DTYPE_BF16, NULL, NULL, 0), 0);
    const char *ipath = sb_test_path("model.safetensors.index.json");
    sb_test_write_text(ipath, "{\"metadata\":{\"total_size\":14},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                              "\"b\":\"model-00002-of-00002.safetensors\"}}");
    sb_st_set s;
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_OK);
    assert_int_equal(s.n_files, 2);
    const sb_st_file *f;
    const sb_st_tensor *t = sb_st_set_find(&s, "b", &f);
    assert_non_null(t);
    float out[3];
    assert_int_equal(sb_st_read_f32(f, t, out), SB_OK);
    assert_float_equal(out[2], 5.0f, 0);
    assert_non_null(sb_st_set_find(&s, "a", NULL));
    assert_null(sb_st_set_find(&s, "c", NULL));
    sb_st_set_close(&s);

    /* the index names a tensor its shard lacks */
    sb_test_write_text(ipath, "{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\"}}");
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "'a'"));
    /* a shard path leaving the directory */
    sb_test_write_text(ipath, "{\"weight_map\":{\"a\":\"../model-00001-of-00002.safetensors\"}}");
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_ERR);
    assert_non_null(strstr(sb_last_error(), ipath));
    /* a missing shard */
    sb_test_write_text(ipath, "{\"weight_map\":{\"a\":\"model-00009-of-00009.safetensors\"}}");
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "model-00009-of-00009.safetensors"));
    sb_test_write_text(ipath, "{\"weight_map\":[]}");
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_ERR);
    unlink(ipath);
    /* neither file */
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "model.safetensors"));
    /* a single file wins over an index */
    assert_int_equal(sb_st_write(sb_test_path("model.safetensors"), &tb, 1, SB_DTYPE_F32, NULL, NULL, 0), 0);
    assert_int_equal(sb_st_set_open(&s, sb_test_dir), SB_OK);
    assert_int_equal(s.n_files, 1);
    sb_st_set_close(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_dtypes),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_unsupported_dtype_on_read),
        cmocka_unit_test(test_shards),
    };
    return cmocka_run_group_tests_name("safetensors", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
