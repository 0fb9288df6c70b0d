/* Tests of tokenizer/text_tok: the one handle over llama2.c and tokenizer.json tokenizers
 * answers each command's questions (start token, end tokens, pieces, vocabulary check, text
 * files) as the kind behind it does, and a NULL handle stands for no tokenizer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "tokenizer/text_tok.h"
#include "tokenizer/textfile.h"
#include "tokenizer/tokenizer.h"
#include "tests/helpers/sb_test.h"

#define SP_BPE "tests/fixtures/tokenizers/sp_bpe"

static void expect_ids(const int32_t *ids, size_t n, const int32_t *want, size_t n_want) {
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
}

static void test_llama2c(void **state) {
    (void)state;
    assert_int_equal(mkdir(sb_test_path("l2c"), 0755), 0);
    const char *tok_path = sb_test_path("l2c/tokenizer.bin");
    sb_test_write_llama2c_tok(tok_path);
    sb_text_tok *t;
    assert_int_equal(sb_text_tok_load(&t, tok_path), SB_OK);
    assert_int_equal(sb_text_tok_check_vocab(t, 266), SB_OK);
    /* its vocabulary is the model's: a larger model is as wrong as a smaller one */
    assert_int_equal(sb_text_tok_check_vocab(t, 300), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "266 tokens, the model has vocab_size 300"));
    assert_int_equal(sb_text_tok_bos(t, 7), 1);
    int32_t stop[2];
    sb_text_tok_stops(t, 9, stop);
    assert_int_equal(stop[0], 1); /* llama2.c's run stops at BOS */
    assert_int_equal(stop[1], 2);

    int32_t *ids;
    size_t n;
    assert_int_equal(sb_text_tok_encode(t, "aba", 1, &ids, &n), SB_OK);
    expect_ids(ids, n, (const int32_t[]){1, 259, 265}, 3);
    free(ids);
    assert_int_equal(sb_text_tok_encode(t, "a", -1, &ids, &n), SB_OK);
    expect_ids(ids, n, (const int32_t[]){264}, 1);
    free(ids);
    size_t len;
    const char *p = sb_text_tok_piece(t, 1, 264, &len); /* no space after BOS */
    assert_int_equal(len, 1);
    assert_memory_equal(p, "a", 1);
    p = sb_text_tok_piece(t, 260, 264, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(p, " a", 2);

    /* a text file: BOS first, as llama2.c encodes; no byte count (no bits per byte) */
    const char *txt = sb_test_path("l2c/aba.txt");
    sb_test_write_text(txt, "aba");
    int32_t *got;
    int64_t m;
    uint64_t bytes = 99;
    assert_int_equal(sb_text_tok_load_text(t, txt, 266, 0, &got, &m, &bytes), SB_OK);
    expect_ids(got, (size_t)m, (const int32_t[]){1, 259, 265}, 3);
    assert_int_equal(bytes, 0);
    free(got);
    assert_int_equal(sb_text_tok_load_text(t, txt, 200, 0, &got, &m, NULL), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "outside the model's vocabulary 200"));
    sb_text_tok_free(t);

    /* the tokenizer beside a llama2.c checkpoint, and the error naming where it looked */
    assert_int_equal(sb_text_tok_open_model(&t, sb_test_path("l2c/model.bin"), txt), SB_OK);
    sb_text_tok_free(t);
    assert_int_equal(sb_text_tok_open_model(&t, sb_test_path("model.bin"), txt), SB_ERR);
    assert_null(t);
    assert_non_null(strstr(sb_last_error(), "needs tokenizer.bin or tok*.bin in"));
}

static void test_tokenizer_json(void **state) {
    (void)state;
    sb_text_tok *t;
    sb_tokenizer *hf;
    assert_int_equal(sb_text_tok_load(&t, SP_BPE), SB_OK);
    assert_int_equal(sb_tokenizer_load(&hf, SP_BPE), SB_OK);
    int32_t vocab = sb_tokenizer_vocab_size(hf);
    /* a model may have more ids than its tokenizer, not fewer */
    assert_int_equal(sb_text_tok_check_vocab(t, vocab + 10), SB_OK);
    assert_int_equal(sb_text_tok_check_vocab(t, vocab - 1), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "more than the model's vocab_size"));
    /* the BOS the tokenizer adds wins over the config's */
    assert_int_equal(sb_text_tok_bos(t, 7), sb_tokenizer_bos_id(hf));
    int32_t stop[2];
    sb_text_tok_stops(t, 5, stop);
    assert_int_equal(stop[0], 5);
    assert_int_equal(stop[1], -1);
    sb_text_tok_stops(t, -1, stop); /* no eos_token_id in config.json: the tokenizer's </s> */
    assert_int_equal(stop[0], sb_tokenizer_token_id(hf, "</s>"));

    const char *text = "Once upon a time.\nThe end.\n";
    int32_t *ids, *enc;
    size_t n, ne;
    assert_int_equal(sb_tokenizer_encode(hf, text, strlen(text), &enc, &ne), SB_OK);
    assert_int_equal(sb_text_tok_encode(t, text, 1, &ids, &n), SB_OK);
    assert_int_equal(n, ne + 1);
    assert_int_equal(ids[0], 1);
    assert_memory_equal(ids + 1, enc, ne * sizeof *enc);
    free(ids);
    size_t len, want;
    const char *p = sb_text_tok_piece(t, 1, enc[1], &len); /* the raw piece, whatever came before */
    const char *q = sb_tokenizer_token_bytes(hf, enc[1], &want);
    assert_int_equal(len, want);
    assert_memory_equal(p, q, len);

    /* a text file: the stream of textfile.h, and the bytes of every predicted token */
    const char *txt = sb_test_path("sp.txt");
    sb_test_write_text(txt, text);
    int32_t *got, *ref;
    int64_t m, mr;
    uint64_t bytes;
    sb_tokens_added added;
    assert_int_equal(sb_text_tok_load_text(t, txt, vocab, 0, &got, &m, &bytes), SB_OK);
    assert_int_equal(sb_tokens_load_text_ex(txt, hf, vocab, 0, &ref, &mr, &added), SB_OK);
    assert_int_equal(m, mr);
    assert_memory_equal(got, ref, (size_t)m * sizeof *got);
    assert_true(added.bos);
    assert_int_equal(bytes, strlen(text)); /* after the BOS, the tokens spell the text */
    free(got);
    free(ref);
    free(enc);
    sb_tokenizer_free(hf);
    sb_text_tok_free(t);

    /* a model directory without tokenizer.json: the error says what to do */
    assert_int_equal(mkdir(sb_test_path("bare"), 0755), 0);
    assert_int_equal(sb_text_tok_open_model(&t, sb_test_path("bare"), txt), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "text input needs the model's tokenizer"));
    assert_int_equal(sb_text_tok_load(&t, sb_test_path("bare")), SB_ERR);
    assert_null(t);
}

/* stream's free-running soak has no tokenizer: the config's specials, nothing printed */
static void test_no_tokenizer(void **state) {
    (void)state;
    assert_int_equal(sb_text_tok_bos(NULL, 7), 7);
    int32_t stop[2];
    sb_text_tok_stops(NULL, 9, stop);
    assert_int_equal(stop[0], 9);
    assert_int_equal(stop[1], -1);
    size_t len = 5;
    assert_null(sb_text_tok_piece(NULL, 1, 2, &len));
    assert_int_equal(len, 0);
    sb_text_tok_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2c),
        cmocka_unit_test(test_tokenizer_json),
        cmocka_unit_test(test_no_tokenizer),
    };
    return cmocka_run_group_tests_name("text_tok", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
