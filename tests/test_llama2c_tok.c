/* Tests of tokenizer/llama2c_tok: llama2.c's encode (BOS, dummy " " prefix, codepoint
 * lookup, byte fallback +3, best-score merges) and decode, on the hand-made vocabulary of
 * sb_test_write_llama2c_tok whose merges are worked out by hand, plus a roundtrip on the
 * stories260K tokenizer if present. */
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
#include "tokenizer/llama2c_tok.h"
#include "tests/helpers/sb_test.h"

static char tok_path[] = "/tmp/sb_test_l2c_tok_XXXXXX";

static int setup(void **state) {
    (void)state;
    int fd = mkstemp(tok_path);
    assert_true(fd >= 0);
    close(fd);
    sb_test_write_llama2c_tok(tok_path);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(tok_path);
    return 0;
}

static void expect_encode(const sb_l2c_tok *t, const char *text, bool eos, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    assert_int_equal(sb_l2c_tok_encode(t, text, true, eos, &ids, &n), SB_OK);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void test_encode_merges(void **state) {
    (void)state;
    sb_l2c_tok *t;
    assert_int_equal(sb_l2c_tok_load(&t, tok_path), SB_OK);
    assert_int_equal(sb_l2c_tok_vocab_size(t), 266);
    /* " a b a": "ab" (-1) beats "ba" (-2) and " a" (-3); then "ab"+"a" = "aba" */
    expect_encode(t, "aba", false, (const int32_t[]){1, 259, 265}, 3);
    expect_encode(t, "ba", false, (const int32_t[]){1, 259, 263}, 3);
    /* " a" is the only merge left once "a" follows the prefix alone */
    expect_encode(t, "a", false, (const int32_t[]){1, 264}, 2);
    /* é is not in the vocabulary: its two UTF-8 bytes fall back to ids byte + 3 */
    expect_encode(t, "\xc3\xa9", false, (const int32_t[]){1, 259, 0xc3 + 3, 0xa9 + 3}, 4);
    /* no dummy prefix for empty text */
    expect_encode(t, "", true, (const int32_t[]){1, 2}, 2);
    sb_l2c_tok_free(t);
}

static void test_decode(void **state) {
    (void)state;
    sb_l2c_tok *t;
    assert_int_equal(sb_l2c_tok_load(&t, tok_path), SB_OK);
    size_t len;
    const char *p = sb_l2c_tok_decode(t, 1, 264, &len); /* leading space dropped after BOS */
    assert_int_equal(len, 1);
    assert_memory_equal(p, "a", 1);
    p = sb_l2c_tok_decode(t, 260, 264, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(p, " a", 2);
    p = sb_l2c_tok_decode(t, 260, 0x0a + 3, &len); /* <0x0A> is a raw newline */
    assert_int_equal(len, 1);
    assert_int_equal(p[0], '\n');
    assert_null(sb_l2c_tok_decode(t, 1, 266, &len));
    assert_null(sb_l2c_tok_decode(t, 1, -1, &len));
    sb_l2c_tok_free(t);
}

static void test_bad_files(void **state) {
    (void)state;
    sb_l2c_tok *t = NULL;
    assert_int_equal(sb_l2c_tok_load(&t, "/nonexistent/tok.bin"), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/tok.bin"));
    char path[] = "/tmp/sb_test_l2c_bad_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* max_token_length, then a token claiming 1000 bytes with 2 left */
    const unsigned char bad[] = {8, 0, 0, 0, 0, 0, 0, 0, 0xe8, 0x03, 0, 0, 'a', 'b'};
    assert_int_equal(write(fd, bad, sizeof bad), (ssize_t)sizeof bad);
    close(fd);
    assert_int_equal(sb_l2c_tok_load(&t, path), SB_ERR);
    assert_null(t);
    assert_non_null(strstr(sb_last_error(), path));
    assert_non_null(strstr(sb_last_error(), "bad length"));
    unlink(path);
}

static void test_fixture_roundtrip(void **state) {
    (void)state;
    const char *path = "../shared/fixtures/stories260K/tok512.bin";
    if (access(path, R_OK) != 0) {
        printf("SKIP test_fixture_roundtrip: %s is absent\n", path);
        return;
    }
    sb_l2c_tok *t;
    assert_int_equal(sb_l2c_tok_load(&t, path), SB_OK);
    assert_int_equal(sb_l2c_tok_vocab_size(t), 512);
    const char *texts[] = {"Once upon a time", "Lily saw a big, red ball.", "caf\xc3\xa9 \xe2\x98\x83!"};
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        int32_t *ids;
        size_t n;
        assert_int_equal(sb_l2c_tok_encode(t, texts[k], true, false, &ids, &n), SB_OK);
        assert_true(n >= 2);
        assert_int_equal(ids[0], 1);
        assert_true(n - 1 < strlen(texts[k])); /* merges happened */
        char out[256];
        size_t o = 0;
        for (size_t i = 1; i < n; i++) {
            size_t len;
            const char *p = sb_l2c_tok_decode(t, ids[i - 1], ids[i], &len);
            assert_non_null(p);
            assert_true(o + len < sizeof out);
            memcpy(out + o, p, len);
            o += len;
        }
        out[o] = '\0';
        assert_string_equal(out, texts[k]);
        free(ids);
    }
    sb_l2c_tok_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_merges),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_fixture_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
