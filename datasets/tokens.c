#include "datasets/tokens.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/ids.h"
#include "datasets/tokfile.h"
#include "engine/common.h"
#include "util/id_buf.h"

static bool has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcmp(path + n - e, ext) == 0;
}

static int load_tok(const char *path, sb_id_buf *b) {
    sb_tok_reader *r;
    int rc = sb_tok_open(&r, path);
    if (rc) return rc;
    int32_t buf[1 << 14];
    for (;;) {
        int64_t want = (int64_t)(sizeof buf / sizeof buf[0]);
        if (b->max > 0 && b->max - (int64_t)b->n < want) want = b->max - (int64_t)b->n;
        if (want == 0) break;
        int64_t got = sb_tok_read(r, buf, want);
        if (got < 0) {
            rc = SB_ERR;
            break;
        }
        if (got == 0) break;
        rc = sb_id_buf_push(b, buf, (size_t)got);
        if (rc == SB_ID_BUF_FULL) rc = SB_OK;
        if (rc) break;
    }
    sb_tok_close(r);
    return rc;
}

int sb_tokens_load(const char *path, int32_t vocab, int64_t max_tokens, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    if (has_ext(path, ".ids")) return sb_ids_load(path, vocab, max_tokens, ids, n);
    if (has_ext(path, ".txt"))
        return sb_error("%s: tokenizer needed to read text (give a model with tokenizer.json, or run "
                        "'sinkbench tokenize' first)",
                        path);
    if (!has_ext(path, ".tok"))
        return sb_error("%s: unknown token file type (expected .tok, .ids or .txt)", path);
    sb_id_buf b = {.max = max_tokens, .vocab = vocab, .path = path};
    int rc = load_tok(path, &b);
    if (rc != SB_OK) {
        free(b.ids);
        return rc;
    }
    sb_id_buf_take(&b, ids, n);
    return SB_OK;
}
