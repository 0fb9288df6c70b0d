#include "datasets/tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/ids.h"
#include "datasets/tokfile.h"
#include "engine/common.h"
#include "tokenizer/tokenizer.h"

static bool has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && strcmp(path + n - e, ext) == 0;
}

/* Growing id array; capacity is only ever raised to what has actually been produced. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
    int64_t max;        /* > 0: stop after this many */
    int32_t vocab;      /* > 0: check ids */
    const char *path;
} id_sink;

static int id_sink_push(id_sink *s, const int32_t *ids, size_t n) {
    if (s->max > 0 && s->n + n > (size_t)s->max) n = (size_t)s->max - s->n;
    for (size_t i = 0; s->vocab > 0 && i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->vocab)
            return sb_error("%s: token %zu has id %d outside the model's vocab [0, %d)", s->path, s->n + i,
                            (int)ids[i], (int)s->vocab);
    if (s->n + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096, bytes;
        while (cap < s->n + n) cap *= 2;
        int32_t *p;
        if (!sb_mul_size(cap, sizeof *p, &bytes) || !(p = realloc(s->ids, bytes)))
            return sb_error("%s: out of memory holding %zu tokens", s->path, s->n + n);
        s->ids = p;
        s->cap = cap;
    }
    memcpy(s->ids + s->n, ids, n * sizeof *ids);
    s->n += n;
    return (s->max > 0 && s->n >= (size_t)s->max) ? SB_TOKENS_STOP : SB_OK;
}

static int id_sink_emit(const int32_t *ids, size_t n, uint64_t bytes_done, void *ctx) {
    (void)bytes_done;
    return id_sink_push(ctx, ids, n);
}

static int load_tok(const char *path, id_sink *s) {
    sb_tok_reader *r;
    int rc = sb_tok_open(&r, path);
    if (rc) return rc;
    int32_t buf[1 << 14];
    for (;;) {
        int64_t want = (int64_t)(sizeof buf / sizeof buf[0]);
        if (s->max > 0 && s->max - (int64_t)s->n < want) want = s->max - (int64_t)s->n;
        if (want == 0) break;
        int64_t got = sb_tok_read(r, buf, want);
        if (got < 0) {
            rc = SB_ERR;
            break;
        }
        if (got == 0) break;
        rc = id_sink_push(s, buf, (size_t)got);
        if (rc == SB_TOKENS_STOP) rc = SB_OK;
        if (rc) break;
    }
    sb_tok_close(r);
    return rc;
}

int sb_tokens_specials(const struct sb_tokenizer *tok, int bos_mode, int eos_mode, int32_t *bos, int32_t *eos) {
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

int sb_tokens_load_text(const char *path, const struct sb_tokenizer *tok, int32_t vocab, int64_t max_tokens,
                        int32_t **ids, int64_t *n) {
    return sb_tokens_load_text_ex(path, tok, vocab, max_tokens, ids, n, NULL);
}

int sb_tokens_load_text_ex(const char *path, const struct sb_tokenizer *tok, int32_t vocab, int64_t max_tokens,
                           int32_t **ids, int64_t *n, sb_tokens_added *added) {
    *ids = NULL;
    *n = 0;
    if (added) *added = (sb_tokens_added){0, 0};
    id_sink s = {.max = max_tokens, .vocab = vocab, .path = path};
    int rc;
    if (has_ext(path, ".tok")) {
        rc = load_tok(path, &s);
    } else if (has_ext(path, ".ids")) {
        int32_t *v;
        int64_t m;
        rc = sb_ids_load(path, vocab, max_tokens, &v, &m);
        if (rc == SB_OK) {
            *ids = v;
            *n = m;
        }
        return rc;
    } else if (has_ext(path, ".txt")) {
        if (!tok)
            return sb_error("%s: tokenizer needed to read text (give a model with tokenizer.json, or run "
                            "'sinkbench tokenize' first)",
                            path);
        int32_t bos = sb_tokenizer_bos_id(tok), eos = sb_tokenizer_eos_id(tok);
        rc = bos >= 0 ? id_sink_push(&s, &bos, 1) : SB_OK;
        if (rc == SB_OK) rc = sb_tokens_encode_file(path, tok, 0, id_sink_emit, &s);
        /* the EOS closes the whole text: not added when max_tokens cut it short */
        bool full = s.max <= 0 || s.n < (size_t)s.max;
        if (rc == SB_OK && eos >= 0 && full) rc = id_sink_push(&s, &eos, 1);
        if (rc == SB_TOKENS_STOP) rc = SB_OK;
        if (rc == SB_OK && added) *added = (sb_tokens_added){bos >= 0 && s.n > 0, eos >= 0 && full};
    } else {
        return sb_error("%s: unknown token file type (expected .tok, .ids or .txt)", path);
    }
    if (rc != SB_OK) {
        free(s.ids);
        return rc;
    }
    *ids = s.ids ? s.ids : malloc_check(sizeof(int32_t));
    *n = (int64_t)s.n;
    return SB_OK;
}

int sb_tokens_load(const char *path, int32_t vocab, int64_t max_tokens, int32_t **ids, int64_t *n) {
    return sb_tokens_load_text(path, NULL, vocab, max_tokens, ids, n);
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

int sb_tokens_encode_file(const char *path, const struct sb_tokenizer *tok, size_t chunk_bytes,
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
