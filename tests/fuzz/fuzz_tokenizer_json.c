/* Fuzz target: tokenizer.json (our byte-level BPE files and third-party Hugging Face ones).
 * An accepted tokenizer encodes and decodes a fixed text and a slice of the input itself,
 * and every id's bytes are looked up. */
#include "tests/fuzz/fuzz.h"

#include "tokenizer/tokenizer.h"

int sb_fuzz_tokenizer_json(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("tokenizer.json", data, size, buf, sizeof buf);
    sb_tokenizer *t;
    int rc = sb_tokenizer_load(&t, path);
    if (rc) return rc;
    int32_t V = sb_tokenizer_vocab_size(t);
    if (V <= 0) abort();
    for (int32_t i = 0; i < V; i++) {
        size_t len = 1;
        /* ids a vocabulary skips (allowed, as in Hugging Face) have no bytes */
        if (!sb_tokenizer_token_bytes(t, i, &len) && len != 0) abort();
        (void)sb_tokenizer_is_special(t, i);
    }
    size_t len;
    if (sb_tokenizer_token_bytes(t, V, &len) || sb_tokenizer_token_bytes(t, -1, &len)) abort();
    const char *texts[2] = {"Hello world, it's 2024!\n  <sink> caf\xc3\xa9 \xff\xfe <|endoftext|>", (const char *)data};
    size_t lens[2] = {strlen(texts[0]), size < 256 ? size : 256};
    for (int k = 0; k < 2; k++) {
        int32_t *ids;
        size_t n;
        if (sb_tokenizer_encode(t, texts[k], lens[k], &ids, &n)) abort();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= V) abort();
        char *out;
        size_t out_len;
        if (sb_tokenizer_decode(t, ids, n, &out, &out_len)) abort();
        /* our own byte-level files promise decode(encode(x)) == x */
        if (sb_tokenizer_get_kind(t) == SB_TOKENIZER_BYTE_LEVEL && k == 0 && getenv("SB_FUZZ_STRICT") &&
            (out_len != lens[k] || memcmp(out, texts[k], out_len) != 0))
            abort();
        free(out);
        free(ids);
    }
    (void)sb_tokenizer_token_id(t, SB_TOKEN_SINK);
    int32_t bos = sb_tokenizer_bos_id(t);
    if (bos < -1 || bos >= V) abort();
    sb_tokenizer_free(t);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_tokenizer_json)
