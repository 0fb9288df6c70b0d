#include "tokenizer/textfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "util/id_buf.h"

/* The buffer's "full" is this module's "stop early". */
static int id_buf_emit(const int32_t *ids, size_t n, uint64_t bytes_done, void *ctx) {
    (void)bytes_done;
    int rc = sb_id_buf_push(ctx, ids, n);
    return rc == SB_ID_BUF_FULL ? SB_TOKENS_STOP : rc;
}

int sb_tokens_specials(const sb_tokenizer *tok, int bos_mode, int eos_mode, int32_t *bos, int32_t *eos) {
    *bos = bos_mode == SB_TOKENS_AUTO ? sb_tokenizer_bos_id(tok) : bos_mode == SB_TOKENS_YES ? sb_tokenizer_bos_token(tok) : -1;
    *eos = eos_mode == SB_TOKENS_AUTO ? sb_tokenizer_eos_id(tok) : eos_mode == SB_TOKENS_YES ? sb_tokenizer_eos_token(tok) : -1;
    if (bos_mode == SB_TOKENS_YES && *bos < 0)
        return sb_usage_error("--bos: the tokenizer has no BOS token (no post-processor BOS, no bos_token in "
                              "tokenizer_config.json)");
    if (eos_mode == SB_TOKENS_YES && *eos < 0)
        return sb_usage_error("--eos: the tokenizer has no EOS token (no post-processor EOS, no eos_token in "
                              "tokenizer_config.json)");
    return SB_OK;
}

int sb_tokens_load_text(const char *path, const sb_tokenizer *tok, int32_t vocab, int64_t max_tokens,
                        int32_t **ids, int64_t *n) {
    return sb_tokens_load_text_ex(path, tok, vocab, max_tokens, ids, n, NULL);
}

int sb_tokens_load_text_ex(const char *path, const sb_tokenizer *tok, int32_t vocab, int64_t max_tokens,
                           int32_t **ids, int64_t *n, sb_tokens_added *added) {
    *ids = NULL;
    *n = 0;
    if (added) *added = (sb_tokens_added){0, 0};
    sb_id_buf b = {.max = max_tokens, .vocab = vocab, .path = path};
    int32_t bos = sb_tokenizer_bos_id(tok), eos = sb_tokenizer_eos_id(tok);
    int rc = bos >= 0 ? id_buf_emit(&bos, 1, 0, &b) : SB_OK;
    if (rc == SB_OK) rc = sb_tokens_encode_file(path, tok, 0, id_buf_emit, &b);
    /* the EOS closes the whole text: not added when max_tokens cut it short */
    bool full = b.max <= 0 || b.n < (size_t)b.max;
    if (rc == SB_OK && eos >= 0 && full) rc = id_buf_emit(&eos, 1, 0, &b);
    if (rc == SB_TOKENS_STOP) rc = SB_OK;
    if (rc != SB_OK) {
        free(b.ids);
        return rc;
    }
    if (added) *added = (sb_tokens_added){bos >= 0 && b.n > 0, eos >= 0 && full};
    sb_id_buf_take(&b, ids, n);
    return SB_OK;
}

static bool is_alnum_ascii(uint8_t c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* Last offset i in (1, len) where a lone "\n" sits between a visible ASCII byte and an ASCII
 * letter or digit, or 0. The pre-tokenizer makes that "\n" a piece of its own whether or not
 * the text continues, so cutting after it changes nothing; after a longer whitespace run it
 * would ("\n\n" at the end of a piece stays whole, before a word it splits). */
static size_t find_cut(const uint8_t *buf, size_t len) {
    for (size_t i = len - 1; i > 1; i--)
        if (buf[i - 1] == '\n' && is_alnum_ascii(buf[i]) && buf[i - 2] > 0x20 && buf[i - 2] < 0x7f) return i;
    return 0;
}

int sb_tokens_encode_file(const char *path, const sb_tokenizer *tok, size_t chunk_bytes,
                          sb_tokens_sink emit, void *ctx) {
    if (!chunk_bytes) chunk_bytes = (size_t)4 << 20;
    FILE *f = fopen(path, "rb");
    if (!f) return sb_error("%s: cannot open: %s", path, strerror(errno));
    bool stream = sb_tokenizer_get_kind(tok) == SB_TOKENIZER_BYTE_LEVEL;
    bool first = true, eof = false;
    size_t cap = chunk_bytes, len = 0, target = chunk_bytes;
    uint8_t *buf = malloc(cap);
    uint64_t done = 0;
    int rc = SB_OK;
    if (!buf) {
        fclose(f);
        return sb_error("%s: out of memory", path);
    }
    while (rc == SB_OK) {
        /* fill up to target (or EOF) */
        while (!eof && len < target) {
            if (target > cap) {
                uint8_t *p = realloc(buf, target);
                if (!p) {
                    rc = sb_error("%s: out of memory reading %zu bytes", path, target);
                    goto out;
                }
                buf = p;
                cap = target;
            }
            size_t got = fread(buf + len, 1, target - len, f);
            len += got;
            if (got == 0) {
                if (ferror(f)) {
                    rc = sb_error("%s: read error", path);
                    goto out;
                }
                eof = true;
            }
        }
        if (len == 0 && eof) break;
        size_t cut = eof ? len : (stream ? find_cut(buf, len) : 0);
        if (cut == 0) {
            /* no safe place to cut yet (or not streaming): read more */
            if (target > SIZE_MAX / 2) {
                rc = sb_error("%s: file too large", path);
                goto out;
            }
            target *= 2;
            continue;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        if ((rc = sb_tokenizer_encode(tok, (const char *)buf, cut, &ids, &n)) != SB_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", sb_last_error());
            rc = sb_error("%s: %s", path, msg);
            goto out;
        }
        if (first && !eof) {
            /* a normalizer or prefix space would make pieces differ from the whole: check once */
            char *back = NULL;
            size_t back_len = 0;
            bool same = sb_tokenizer_decode(tok, ids, n, &back, &back_len) == SB_OK && back_len == cut &&
                        memcmp(back, buf, cut) == 0;
            free(back);
            if (!same) {
                free(ids);
                stream = false;
                target *= 2;
                continue;
            }
        }
        first = false;
        done += cut;
        rc = emit(ids, n, done, ctx);
        free(ids);
        memmove(buf, buf + cut, len - cut);
        len -= cut;
        target = chunk_bytes > len ? chunk_bytes : len + 1;
        if (eof && len == 0) break;
    }
    if (rc == SB_TOKENS_STOP) rc = SB_OK;
out:
    free(buf);
    fclose(f);
    return rc;
}
