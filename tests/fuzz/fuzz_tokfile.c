/* Fuzz target: a .tok token file, opened and read to the end in small chunks. A reader that
 * reports success must have returned exactly the header's token count, all below vocab. */
#include "tests/fuzz/fuzz.h"

#include "datasets/tokfile.h"

int sb_fuzz_tokfile(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("x.tok", data, size, buf, sizeof buf);
    sb_tok_reader *r;
    int rc = sb_tok_open(&r, path);
    if (rc) return rc;
    int32_t vocab = sb_tok_vocab(r);
    int64_t total = 0, got;
    int32_t ids[1000];
    while ((got = sb_tok_read(r, ids, 1000)) > 0) {
        if (got > 1000) abort();
        for (int64_t i = 0; i < got; i++)
            if (ids[i] < 0 || ids[i] >= vocab) abort();
        total += got;
    }
    if (got == 0 && total != sb_tok_count(r)) abort();
    (void)sb_tok_hash(r);
    (void)sb_tok_id_width(r);
    sb_tok_close(r);
    return got < 0 ? SB_ERR : SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_tokfile)
