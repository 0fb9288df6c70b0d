/* The tokenizer object: vocabulary tables, merge lookup, accessors. */
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "tokenizer/tokenizer_internal.h"
#include "util/sha256.h"

/* ---- pair map ---- */

void sb_pair_map_init(sb_pair_map *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap *= 2;
    m->cap = cap;
    m->n = 0;
    m->keys = malloc_check(cap * sizeof *m->keys);
    m->rank = malloc_check(cap * sizeof *m->rank);
    m->merged = malloc_check(cap * sizeof *m->merged);
    memset(m->keys, 0xFF, cap * sizeof *m->keys);
}

void sb_pair_map_free(sb_pair_map *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

void sb_pair_map_put(sb_pair_map *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    if ((m->n + 1) * 2 > m->cap) {
        sb_pair_map old = *m;
        sb_pair_map_init(m, old.cap);
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i] != UINT64_MAX)
                sb_pair_map_put(m, (int32_t)(old.keys[i] >> 32), (int32_t)(uint32_t)old.keys[i], old.rank[i],
                                old.merged[i]);
        sb_pair_map_free(&old);
    }
    uint64_t key = sb_tok_pair_key(a, b);
    size_t mask = m->cap - 1;
    size_t i = sb_tok_hash_u64(key) & mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & mask;
    if (m->keys[i] == UINT64_MAX) m->n++;
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

/* ---- GPT-2 byte-level alphabet ---- */

static int printable_byte(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

uint32_t sb_bytelevel_char(uint8_t b) {
    if (printable_byte(b)) return b;
    /* the other 68 bytes take code points 256.. in byte order */
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!printable_byte(c)) n++;
    return 256 + n;
}

int sb_bytelevel_byte(uint32_t cp) {
    if (cp < 256) return printable_byte((int)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    for (int c = 0; c < 256; c++)
        if (!printable_byte(c) && n-- == 0) return c;
    return -1;
}

/* ---- lookup by decoded bytes ---- */

static void by_bytes_insert(sb_tokenizer *t, int32_t id) {
    size_t mask = t->by_bytes_cap - 1;
    size_t i = sb_tok_hash_bytes((const uint8_t *)t->tok[id], t->tok_len[id]) & mask;
    for (; t->by_bytes[i] >= 0; i = (i + 1) & mask) {
        int32_t o = t->by_bytes[i];
        if (t->tok_len[o] == t->tok_len[id] && !memcmp(t->tok[o], t->tok[id], t->tok_len[id])) return;
    }
    t->by_bytes[i] = id;
}

static int32_t by_bytes_get(const sb_tokenizer *t, const char *s, size_t n) {
    size_t mask = t->by_bytes_cap - 1;
    for (size_t i = sb_tok_hash_bytes((const uint8_t *)s, n) & mask; t->by_bytes[i] >= 0; i = (i + 1) & mask) {
        int32_t o = t->by_bytes[i];
        if (t->tok_len[o] == n && !memcmp(t->tok[o], s, n)) return o;
    }
    return -1;
}

int32_t sb_tokenizer_lookup(const sb_tokenizer *t, const char *s, size_t n) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, s, n)) return t->added[i].id;
    return by_bytes_get(t, s, n);
}

/* ---- construction ---- */

void sb_tokenizer_free(sb_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->vocab_size; i++) {
        if (t->tok) free(t->tok[i]);
        if (t->piece) free(t->piece[i]);
    }
    free(t->tok);
    free(t->tok_len);
    free(t->piece);
    free(t->flags);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->merges);
    sb_pair_map_free(&t->pairs);
    free(t->by_bytes);
    free(t);
}

static int parse_byte_piece(const char *p) {
    /* "<0xNN>" with upper-case hex, as SentencePiece writes them */
    if (strlen(p) != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int sb_tokenizer_build(sb_tokenizer **out, sb_tokenizer_kind kind, int32_t vocab_size, char **tok,
                       uint32_t *tok_len, const uint8_t *in_model, char **piece, int32_t (*merges)[2],
                       int32_t n_merges, sb_added_token *added, int n_added, const char *what) {
    *out = NULL;
    sb_tokenizer *t = calloc_check(1, sizeof *t);
    t->kind = kind;
    t->vocab_size = vocab_size;
    t->tok = tok;
    t->tok_len = tok_len;
    t->piece = piece;
    t->merges = merges;
    t->n_merges = n_merges;
    t->added = added;
    t->n_added = n_added;
    t->unk_id = -1;
    t->bos_id = t->eos_id = t->bos_token = t->eos_token = -1;
    t->flags = calloc_check((size_t)vocab_size, 1);
    sb_pair_map_init(&t->pairs, (size_t)n_merges);
    size_t cap = 16;
    while (cap < (size_t)vocab_size * 2 + 1) cap *= 2;
    t->by_bytes_cap = cap;
    t->by_bytes = malloc_check(cap * sizeof *t->by_bytes);
    memset(t->by_bytes, 0xFF, cap * sizeof *t->by_bytes);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;

    for (int i = 0; i < n_added; i++) {
        int32_t id = added[i].id;
        if (id < 0 || id >= vocab_size || !tok[id]) {
            sb_tokenizer_free(t);
            return sb_error("%s: added token %d has no vocabulary entry", what, (int)id);
        }
        t->flags[id] |= SB_TOKF_ADDED | (added[i].special ? SB_TOKF_SPECIAL : 0);
        t->added_first[(uint8_t)added[i].content[0]] = 1;
    }
    for (int32_t id = 0; id < vocab_size; id++)
        if (tok[id] && (!in_model || in_model[id])) t->flags[id] |= SB_TOKF_MODEL;
    /* model tokens first: BPE and lookups see the model's vocab, as Hugging Face does */
    for (int32_t id = 0; id < vocab_size; id++) {
        if (!(t->flags[id] & SB_TOKF_MODEL)) continue;
        if (kind == SB_TOKENIZER_SENTENCEPIECE && piece && piece[id]) {
            int b = parse_byte_piece(piece[id]);
            if (b >= 0) {
                t->flags[id] |= SB_TOKF_BYTE;
                if (t->byte_id[b] < 0) t->byte_id[b] = id;
                continue; /* byte tokens are reached by fallback only, never by lookup */
            }
        } else if (kind == SB_TOKENIZER_BYTE_LEVEL && tok_len[id] == 1 && t->byte_id[(uint8_t)tok[id][0]] < 0) {
            t->byte_id[(uint8_t)tok[id][0]] = id;
        }
        by_bytes_insert(t, id);
    }
    for (int32_t id = 0; id < vocab_size; id++)
        if (tok[id] && !(t->flags[id] & SB_TOKF_MODEL)) by_bytes_insert(t, id);
    if (kind == SB_TOKENIZER_BYTE_LEVEL)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0) {
                sb_tokenizer_free(t);
                return sb_error("%s: vocabulary lacks the byte-level token of byte 0x%02X", what, b);
            }

    char *buf = NULL;
    size_t buf_cap = 0;
    for (int32_t r = 0; r < n_merges; r++) {
        int32_t a = merges[r][0], b = merges[r][1];
        if (a < 0 || a >= vocab_size || b < 0 || b >= vocab_size || !tok[a] || !tok[b]) {
            free(buf);
            sb_tokenizer_free(t);
            return sb_error("%s: merge %d references an unknown token", what, (int)r);
        }
        size_t n = (size_t)tok_len[a] + tok_len[b];
        if (n > buf_cap) {
            buf_cap = n * 2;
            free(buf);
            buf = malloc_check(buf_cap);
        }
        memcpy(buf, tok[a], tok_len[a]);
        memcpy(buf + tok_len[a], tok[b], tok_len[b]);
        int32_t m = by_bytes_get(t, buf, n);
        if (m < 0) {
            free(buf);
            sb_tokenizer_free(t);
            return sb_error("%s: merge %d produces a token that is not in the vocabulary", what, (int)r);
        }
        sb_pair_map_put(&t->pairs, a, b, r, m);
    }
    free(buf);

    char *json;
    size_t len;
    if (sb_tokenizer_to_json(t, &json, &len) != SB_OK) {
        sb_tokenizer_free(t);
        return SB_ERR;
    }
    sb_sha256(json, len, t->hash);
    free(json);
    *out = t;
    return SB_OK;
}

/* ---- accessors ---- */

int32_t sb_tokenizer_vocab_size(const sb_tokenizer *t) { return t->vocab_size; }

int32_t sb_tokenizer_token_id(const sb_tokenizer *t, const char *token) {
    return sb_tokenizer_lookup(t, token, strlen(token));
}

bool sb_tokenizer_is_special(const sb_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->vocab_size && (t->flags[id] & SB_TOKF_SPECIAL);
}

int32_t sb_tokenizer_bos_id(const sb_tokenizer *t) { return t->bos_id; }
int32_t sb_tokenizer_eos_id(const sb_tokenizer *t) { return t->eos_id; }
bool sb_tokenizer_adds_bos(const sb_tokenizer *t) { return t->bos_id >= 0; }
bool sb_tokenizer_adds_eos(const sb_tokenizer *t) { return t->eos_id >= 0; }
int32_t sb_tokenizer_bos_token(const sb_tokenizer *t) { return t->bos_id >= 0 ? t->bos_id : t->bos_token; }
int32_t sb_tokenizer_eos_token(const sb_tokenizer *t) { return t->eos_id >= 0 ? t->eos_id : t->eos_token; }

sb_tokenizer_kind sb_tokenizer_get_kind(const sb_tokenizer *t) { return t->kind; }

const uint8_t *sb_tokenizer_hash(const sb_tokenizer *t) { return t->hash; }

const char *sb_tokenizer_token_bytes(const sb_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size || !t->tok[id]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->tok_len[id];
    return t->tok[id];
}
