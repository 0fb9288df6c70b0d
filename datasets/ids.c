#include "datasets/ids.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

#define TOKEN_SHOWN 40 /* characters of a bad token quoted in an error */

typedef struct {
    char text[TOKEN_SHOWN + 4];
    size_t len;   /* full length, may exceed what text holds */
    int64_t value;
    bool digits_only;
    bool overflow;
} token_state;

static void token_reset(token_state *t) {
    t->len = 0;
    t->value = 0;
    t->digits_only = true;
    t->overflow = false;
    t->text[0] = '\0';
}

static void token_push(token_state *t, char c) {
    if (t->len < TOKEN_SHOWN) {
        /* keep messages printable whatever bytes the file holds */
        t->text[t->len] = (c >= 0x20 && c < 0x7f) ? c : '?';
        t->text[t->len + 1] = '\0';
    } else if (t->len == TOKEN_SHOWN) {
        strcpy(t->text + TOKEN_SHOWN, "...");
    }
    t->len++;
    if (c >= '0' && c <= '9') {
        if (!t->overflow) {
            t->value = t->value * 10 + (c - '0');
            if (t->value > INT32_MAX) t->overflow = true;
        }
    } else {
        t->digits_only = false;
    }
}

static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Validates a finished token; returns SB_OK and *id, or an error naming file and line. */
static int token_finish(const token_state *t, const char *path, int64_t line, int32_t vocab, int32_t *id) {
    long long ln = (long long)line;
    if (!t->digits_only) {
        if (t->text[0] == '-') return sb_error("%s:%lld: negative id '%s'", path, ln, t->text);
        return sb_error("%s:%lld: bad token '%s' (not a decimal id)", path, ln, t->text);
    }
    if (t->overflow) return sb_error("%s:%lld: id '%s' is out of range", path, ln, t->text);
    if (vocab > 0 && t->value >= vocab)
        return sb_error("%s:%lld: id %lld >= vocab %d", path, ln, (long long)t->value, (int)vocab);
    *id = (int32_t)t->value;
    return SB_OK;
}

int sb_ids_load(const char *path, int32_t vocab, int64_t max_tokens, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sb_error("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0, count = 0;
    int32_t *out = NULL;
    int rc = SB_OK;
    int64_t line = 1, token_line = 1;
    token_state t;
    token_reset(&t);
    char buf[1 << 16];
    size_t got;
    bool done = false;
    while (!done && (got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i <= got && !done; i++) {
            bool at_end = i == got;
            if (at_end && !feof(f)) break; /* chunk boundary, token continues in the next read */
            int c = at_end ? ' ' : (unsigned char)buf[i];
            if (!is_space(c)) {
                if (t.len == 0) token_line = line;
                token_push(&t, (char)c);
                continue;
            }
            if (c == '\n') line++;
            if (t.len == 0) continue;
            int32_t id;
            if ((rc = token_finish(&t, path, token_line, vocab, &id)) != SB_OK) goto out;
            token_reset(&t);
            if (count == cap) {
                size_t new_cap = cap ? cap * 2 : 4096;
                size_t bytes;
                int32_t *p;
                if (!sb_mul_size(new_cap, sizeof *out, &bytes) || !(p = realloc(out, bytes))) {
                    rc = sb_error("%s: out of memory after %zu ids", path, count);
                    goto out;
                }
                out = p;
                cap = new_cap;
            }
            out[count++] = id;
            if (max_tokens > 0 && (int64_t)count >= max_tokens) done = true;
        }
    }
    if (!done && ferror(f)) {
        rc = sb_error("%s: read error", path);
        goto out;
    }
    if (!done && t.len > 0) {
        /* file ended inside a token exactly at a read boundary */
        int32_t id;
        if ((rc = token_finish(&t, path, token_line, vocab, &id)) != SB_OK) goto out;
        if (count == cap) {
            int32_t *p = realloc(out, (cap + 1) * sizeof *out);
            if (!p) {
                rc = sb_error("%s: out of memory", path);
                goto out;
            }
            out = p;
        }
        out[count++] = id;
    }
out:
    fclose(f);
    if (rc != SB_OK) {
        free(out);
        return rc;
    }
    *ids = out;
    *n = (int64_t)count;
    return SB_OK;
}
