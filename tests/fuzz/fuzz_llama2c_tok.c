/* Fuzz target: a llama2.c tokenizer .bin (max_token_length, then score/len/bytes per token).
 * An accepted vocabulary encodes a fixed text and a slice of the input, and decodes them. */
#include "tests/fuzz/fuzz.h"

#include "tokenizer/llama2c_tok.h"

int sb_fuzz_llama2c_tok(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("tokenizer.bin", data, size, buf, sizeof buf);
    sb_l2c_tok *t;
    int rc = sb_l2c_tok_load(&t, path);
    if (rc) return rc;
    int32_t V = sb_l2c_tok_vocab_size(t);
    if (V <= 0) abort();
    char slice[129];
    size_t n_slice = size < 128 ? size : 128;
    memcpy(slice, data, n_slice);
    slice[n_slice] = '\0';
    const char *texts[2] = {"Once upon a time, caf\xc3\xa9 \xf0\x9f\x98\x80 \xff<0x41>", slice};
    for (int k = 0; k < 2; k++) {
        int32_t *ids;
        size_t n;
        if (sb_l2c_tok_encode(t, texts[k], true, true, &ids, &n)) abort();
        int32_t prev = SB_L2C_BOS;
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= V) abort();
            size_t len;
            (void)sb_l2c_tok_decode(t, prev, ids[i], &len);
            prev = ids[i];
        }
        free(ids);
    }
    size_t len;
    if (sb_l2c_tok_decode(t, 1, V, &len) || sb_l2c_tok_decode(t, 1, -1, &len)) abort();
    sb_l2c_tok_free(t);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_llama2c_tok)
