#include "tokenizer/llama2c_tok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"

typedef struct {
    const char *str;
    int32_t id;
} sorted_tok;

struct sb_l2c_tok {
    int32_t vocab_size;
    uint32_t max_token_length;
    char **vocab;         /* NUL-terminated pieces */
    float *scores;
    sorted_tok *sorted;   /* by strcmp, for lookup */
    char byte_pieces[256][2];
};

static int cmp_sorted(const void *a, const void *b) {
    return strcmp(((const sorted_tok *)a)->str, ((const sorted_tok *)b)->str);
}

static int32_t lookup(const sb_l2c_tok *t, const char *s) {
    sorted_tok key = {.str = s};
    const sorted_tok *r = bsearch(&key, t->sorted, (size_t)t->vocab_size, sizeof key, cmp_sorted);
    return r ? r->id : -1;
}

void sb_l2c_tok_free(sb_l2c_tok *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->vocab_size; i++) free(t->vocab[i]);
    free(t->vocab);
    free(t->scores);
    free(t->sorted);
    free(t);
}

int32_t sb_l2c_tok_vocab_size(const sb_l2c_tok *t) { return t->vocab_size; }

int sb_l2c_tok_load(sb_l2c_tok **out, const char *path) {
    *out = NULL;
    char *data;
    size_t size;
    if (sb_read_file(path, &data, &size)) return SB_ERR;
    int rc = SB_OK;
    sb_l2c_tok *t = calloc_check(1, sizeof *t);
    int32_t mtl;
    size_t pos = sizeof mtl, cap = 0;
    if (size < sizeof mtl) {
        rc = sb_error("%s: truncated llama2.c tokenizer (%zu bytes)", path, size);
        goto done;
    }
    memcpy(&mtl, data, sizeof mtl);
    /* encode allocates 2 * max_token_length: a length the file cannot hold is corrupt */
    if (mtl <= 0 || (size_t)mtl > size) {
        rc = sb_error("%s: bad max_token_length %d", path, mtl);
        goto done;
    }
    t->max_token_length = (uint32_t)mtl;
    while (pos < size) {
        float score;
        int32_t len;
        /* each record needs at least 8 bytes; len is checked against what is left */
        if (size - pos < 8) {
            rc = sb_error("%s: truncated token record %d at byte %zu", path, t->vocab_size, pos);
            goto done;
        }
        memcpy(&score, data + pos, 4);
        memcpy(&len, data + pos + 4, 4);
        pos += 8;
        if (len < 0 || (size_t)len > size - pos) {
            rc = sb_error("%s: token %d has bad length %d at byte %zu", path, t->vocab_size, len, pos - 4);
            goto done;
        }
        if (t->vocab_size == INT32_MAX) {
            rc = sb_error("%s: too many tokens", path);
            goto done;
        }
        if ((size_t)t->vocab_size == cap) {
            cap = cap ? cap * 2 : 256;
            t->vocab = realloc(t->vocab, cap * sizeof *t->vocab);
            t->scores = realloc(t->scores, cap * sizeof *t->scores);
            if (!t->vocab || !t->scores) {
                fprintf(stderr, "out of memory loading %s\n", path);
                abort();
            }
        }
        char *s = malloc_check((size_t)len + 1);
        memcpy(s, data + pos, (size_t)len);
        s[len] = '\0';
        pos += (size_t)len;
        t->vocab[t->vocab_size] = s;
        t->scores[t->vocab_size] = score;
        t->vocab_size++;
    }
    /* encode's byte fallback emits ids 3..258 */
    if (t->vocab_size < 259) {
        rc = sb_error("%s: only %d tokens (need <unk>, <s>, </s> and the 256 byte tokens)", path, t->vocab_size);
        goto done;
    }
    t->sorted = malloc_check((size_t)t->vocab_size * sizeof *t->sorted);
    for (int32_t i = 0; i < t->vocab_size; i++) t->sorted[i] = (sorted_tok){t->vocab[i], i};
    qsort(t->sorted, (size_t)t->vocab_size, sizeof *t->sorted, cmp_sorted);
    for (int i = 0; i < 256; i++) {
        t->byte_pieces[i][0] = (char)i;
        t->byte_pieces[i][1] = '\0';
    }
done:
    free(data);
    if (rc) {
        sb_l2c_tok_free(t);
        return rc;
    }
    *out = t;
    return SB_OK;
}

int sb_l2c_tok_encode(const sb_l2c_tok *t, const char *text, bool bos, bool eos, int32_t **ids_out, size_t *n_out) {
    size_t tl = strlen(text), cap;
    /* at most one token per byte, plus BOS, the dummy prefix and EOS */
    if (!sb_add_size(tl, 3, &cap)) return sb_error("llama2.c tokenizer: text too long");
    int32_t *ids = malloc_check(cap * sizeof *ids);
    size_t n = 0;
    if (bos) ids[n++] = SB_L2C_BOS;
    if (text[0] != '\0') {
        int32_t sp = lookup(t, " ");
        if (sp >= 0) ids[n++] = sp;
    }
    char buf[8];
    size_t blen = 0;
    for (const char *c = text; *c; c++) {
        /* a byte that is not a continuation byte starts a new codepoint */
        if (((unsigned char)*c & 0xC0) != 0x80) blen = 0;
        buf[blen++] = *c;
        buf[blen] = '\0';
        if (((unsigned char)c[1] & 0xC0) == 0x80 && blen < 4) continue;
        int32_t id = lookup(t, buf);
        if (id >= 0) {
            ids[n++] = id;
        } else {
            for (size_t i = 0; i < blen; i++) ids[n++] = (int32_t)(unsigned char)buf[i] + 3;
        }
        blen = 0;
    }
    char *pair = malloc_check((size_t)t->max_token_length * 2 + 3);
    for (;;) {
        float best = -1e10f;
        int32_t best_id = -1;
        size_t best_i = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const char *a = ids[i] < t->vocab_size ? t->vocab[ids[i]] : "";
            const char *b = ids[i + 1] < t->vocab_size ? t->vocab[ids[i + 1]] : "";
            size_t la = strlen(a), lb = strlen(b);
            if (la + lb > (size_t)t->max_token_length * 2 + 2) continue; /* cannot be a token */
            memcpy(pair, a, la);
            memcpy(pair + la, b, lb + 1);
            int32_t id = lookup(t, pair);
            if (id >= 0 && t->scores[id] > best) {
                best = t->scores[id];
                best_id = id;
                best_i = i;
            }
        }
        if (best_id < 0) break;
        ids[best_i] = best_id;
        memmove(ids + best_i + 1, ids + best_i + 2, (n - best_i - 2) * sizeof *ids);
        n--;
    }
    free(pair);
    if (eos) ids[n++] = SB_L2C_EOS;
    *ids_out = ids;
    *n_out = n;
    return SB_OK;
}

const char *sb_l2c_tok_decode(const sb_l2c_tok *t, int32_t prev, int32_t token, size_t *len) {
    if (token < 0 || token >= t->vocab_size) return NULL;
    const char *p = t->vocab[token];
    if (prev == SB_L2C_BOS && p[0] == ' ') p++;
    unsigned char byte;
    char close;
    if (sscanf(p, "<0x%02hhX%c", &byte, &close) == 2 && close == '>' && strlen(p) == 6) {
        *len = 1;
        return t->byte_pieces[byte];
    }
    *len = strlen(p);
    return p;
}
