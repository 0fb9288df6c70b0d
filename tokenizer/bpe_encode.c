/* Encoding and decoding.
 *
 * encode = split out added/special tokens (leftmost-longest on the raw text), pre-tokenize
 * each remaining segment, then BPE each piece. Byte-level pieces repeat a lot in real text,
 * so each call keeps a cache from piece bytes to ids (keys point into the caller's text,
 * which outlives the call); the cache is per call so a const tokenizer stays thread-safe. */
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

/* ---- BPE on one word: Hugging Face's Word::merge_all ---- */

typedef struct {
    int32_t rank, pos, merged;
} merge_cand;

static inline bool cand_less(merge_cand x, merge_cand y) {
    return x.rank != y.rank ? x.rank < y.rank : x.pos < y.pos;
}

static void heap_push(merge_cand *h, size_t *n, merge_cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(c, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static merge_cand heap_pop(merge_cand *h, size_t *n) {
    merge_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        merge_cand best = last;
        if (l < *n && cand_less(h[l], best)) { m = l; best = h[l]; }
        if (r < *n && cand_less(h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0) h[i] = last;
    return top;
}

size_t sb_bpe_merge_word(const sb_pair_map *pairs, int32_t *sym, size_t n) {
    if (n < 2) return n;
    int32_t rank, merged;
    if (n == 2) {
        if (!sb_pair_map_get(pairs, sym[0], sym[1], &rank, &merged)) return 2;
        sym[0] = merged;
        return 1;
    }
    enum { SMALL = 64 };
    int32_t prev_s[SMALL], next_s[SMALL];
    merge_cand heap_s[3 * SMALL];
    int32_t *prev = prev_s, *next = next_s;
    merge_cand *heap = heap_s;
    if (n > SMALL) {
        prev = malloc_check(n * sizeof *prev);
        next = malloc_check(n * sizeof *next);
        heap = malloc_check(3 * n * sizeof *heap); /* n-1 initial + at most 2 per merge */
    }
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        if (i + 1 < n && sb_pair_map_get(pairs, sym[i], sym[i + 1], &rank, &merged))
            heap_push(heap, &nh, (merge_cand){rank, (int32_t)i, merged});
    }
    /* a removed symbol gets sym == -1 */
    while (nh > 0) {
        merge_cand top = heap_pop(heap, &nh);
        int32_t p = top.pos;
        if (sym[p] < 0 || next[p] < 0) continue;
        int32_t q = next[p];
        /* stale entry unless the pair now at p still merges into the same token */
        if (!sb_pair_map_get(pairs, sym[p], sym[q], &rank, &merged) || merged != top.merged) continue;
        sym[p] = top.merged;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        if (prev[p] >= 0 && sb_pair_map_get(pairs, sym[prev[p]], sym[p], &rank, &merged))
            heap_push(heap, &nh, (merge_cand){rank, prev[p], merged});
        if (next[p] >= 0 && sb_pair_map_get(pairs, sym[p], sym[next[p]], &rank, &merged))
            heap_push(heap, &nh, (merge_cand){rank, p, merged});
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (sym[i] >= 0) sym[m++] = sym[i];
    if (n > SMALL) {
        free(prev);
        free(next);
        free(heap);
    }
    return m;
}

/* ---- added tokens ---- */

int sb_tokenizer_find_added(const sb_tokenizer *t, const uint8_t *s, size_t len, size_t pos, bool normalized,
                            size_t *start) {
    for (size_t i = pos; i < len; i++) {
        if (!t->added_first[s[i]]) continue;
        int best = -1;
        for (int k = 0; k < t->n_added; k++) {
            const sb_added_token *a = &t->added[k];
            if (a->normalized == normalized && a->len <= len - i && (best < 0 || a->len > t->added[best].len) &&
                !memcmp(s + i, a->content, a->len))
                best = k;
        }
        if (best >= 0) {
            *start = i;
            return best;
        }
    }
    return -1;
}

/* ---- output buffer and per-call piece cache ---- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} id_vec;

static void vec_push(id_vec *v, int32_t x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        int32_t *nv = realloc(v->v, v->cap * sizeof *nv);
        if (!nv) malloc_check((size_t)-1); /* reports and exits: out of memory */
        v->v = nv;
    }
    v->v[v->n++] = x;
}

typedef struct {
    const uint8_t *key;
    uint32_t klen, off, cnt;
} cache_slot;

typedef struct {
    cache_slot *slots; /* key == NULL: empty */
    size_t cap, n;
    id_vec arena;
} piece_cache;

enum { CACHE_MAX_PIECE = 256, CACHE_MAX_ENTRIES = 1 << 20 };

static void cache_init(piece_cache *c) {
    memset(c, 0, sizeof *c);
    c->cap = 4096;
    c->slots = calloc_check(c->cap, sizeof *c->slots);
}

static void cache_free(piece_cache *c) {
    free(c->slots);
    free(c->arena.v);
}

static cache_slot *cache_find(piece_cache *c, const uint8_t *k, size_t n, uint64_t h) {
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        cache_slot *s = &c->slots[i];
        if (!s->key || (s->klen == n && !memcmp(s->key, k, n))) return s;
    }
}

static void cache_grow(piece_cache *c) {
    cache_slot *old = c->slots;
    size_t oc = c->cap;
    c->cap *= 2;
    c->slots = calloc_check(c->cap, sizeof *c->slots);
    for (size_t i = 0; i < oc; i++)
        if (old[i].key)
            *cache_find(c, old[i].key, old[i].klen, sb_tok_hash_bytes(old[i].key, old[i].klen)) = old[i];
    free(old);
}

typedef struct {
    const sb_tokenizer *t;
    id_vec out;
    piece_cache cache;
    int32_t *sym; /* scratch for one word */
    size_t sym_cap;
} enc_state;

static int32_t *scratch(enc_state *e, size_t n) {
    if (n > e->sym_cap) {
        free(e->sym);
        e->sym_cap = n * 2;
        e->sym = malloc_check(e->sym_cap * sizeof *e->sym);
    }
    return e->sym;
}

/* ---- byte-level ---- */

static void bytelevel_piece(enc_state *e, const uint8_t *p, size_t n) {
    const sb_tokenizer *t = e->t;
    if (n == 1) {
        vec_push(&e->out, t->byte_id[p[0]]);
        return;
    }
    if (t->ignore_merges) {
        int32_t id = sb_tokenizer_lookup(t, (const char *)p, n);
        if (id >= 0 && (t->flags[id] & SB_TOKF_MODEL)) {
            vec_push(&e->out, id);
            return;
        }
    }
    cache_slot *slot = NULL;
    if (n <= CACHE_MAX_PIECE) {
        slot = cache_find(&e->cache, p, n, sb_tok_hash_bytes(p, n));
        if (slot->key) {
            for (uint32_t i = 0; i < slot->cnt; i++) vec_push(&e->out, e->cache.arena.v[slot->off + i]);
            return;
        }
    }
    int32_t *sym = scratch(e, n);
    for (size_t i = 0; i < n; i++) sym[i] = t->byte_id[p[i]];
    size_t m = sb_bpe_merge_word(&t->pairs, sym, n);
    for (size_t i = 0; i < m; i++) vec_push(&e->out, sym[i]);
    if (slot && e->cache.n < CACHE_MAX_ENTRIES) {
        slot->key = p;
        slot->klen = (uint32_t)n;
        slot->off = (uint32_t)e->cache.arena.n;
        slot->cnt = (uint32_t)m;
        for (size_t i = 0; i < m; i++) vec_push(&e->cache.arena, sym[i]);
        if (++e->cache.n * 2 > e->cache.cap) cache_grow(&e->cache);
    }
}

static void bytelevel_segment(enc_state *e, const uint8_t *s, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        size_t end = sb_pretokenize_next(s, len, pos);
        bytelevel_piece(e, s + pos, end - pos);
        pos = end;
    }
}

/* ---- SentencePiece-style (metaspace + BPE over characters + <0xNN> byte fallback) ----
 * Internally a "▁" in a piece is a space, so the normalization ("▁" for " ") becomes its
 * inverse on the input: every "▁" in the text reads as a space. */

static void sp_word(enc_state *e, const uint8_t *w, size_t n) {
    const sb_tokenizer *t = e->t;
    if (n == 0) return;
    if (t->ignore_merges) {
        int32_t id = sb_tokenizer_lookup(t, (const char *)w, n);
        if (id >= 0 && (t->flags[id] & SB_TOKF_MODEL)) {
            vec_push(&e->out, id);
            return;
        }
    }
    int32_t *sym = scratch(e, n);
    size_t m = 0;
    bool last_unk = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int cl = sb_utf8_decode(w + i, n - i, &cp);
        int32_t id = cp == UINT32_MAX ? -1 : sb_tokenizer_lookup(t, (const char *)w + i, (size_t)cl);
        if (id >= 0 && !(t->flags[id] & SB_TOKF_MODEL)) id = -1;
        if (id >= 0) {
            sym[m++] = id;
            last_unk = false;
        } else {
            bool all = true;
            for (int k = 0; k < cl; k++) all = all && t->byte_id[w[i + k]] >= 0;
            if (all) {
                for (int k = 0; k < cl; k++) sym[m++] = t->byte_id[w[i + k]];
                last_unk = false;
            } else if (t->unk_id >= 0 && !last_unk) {
                sym[m++] = t->unk_id;
                last_unk = true; /* consecutive unknowns fuse into one <unk> */
            }
        }
        i += (size_t)cl;
    }
    m = sb_bpe_merge_word(&t->pairs, sym, m);
    for (size_t i = 0; i < m; i++) vec_push(&e->out, sym[i]);
}

static void sp_segment(enc_state *e, const uint8_t *s, size_t len, bool at_start) {
    const sb_tokenizer *t = e->t;
    if (len == 0) return;
    /* normalized copy: "▁" -> " ", plus the prepended space */
    uint8_t *buf = malloc_check(len + 1);
    size_t n = 0;
    bool starts_space = s[0] == ' ' || (len >= 3 && s[0] == 0xE2 && s[1] == 0x96 && s[2] == 0x81);
    if (t->prepend == SB_PREPEND_EVERY || (t->prepend == SB_PREPEND_ALWAYS && !starts_space) ||
        (t->prepend == SB_PREPEND_FIRST && at_start && !starts_space))
        buf[n++] = ' ';
    for (size_t i = 0; i < len; i++) {
        if (i + 2 < len && s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81) {
            buf[n++] = ' ';
            i += 2;
        } else {
            buf[n++] = s[i];
        }
    }
    if (t->metaspace_split) {
        size_t w0 = 0;
        for (size_t i = 1; i <= n; i++)
            if (i == n || buf[i] == ' ') {
                sp_word(e, buf + w0, i - w0);
                w0 = i;
            }
    } else {
        sp_word(e, buf, n);
    }
    free(buf);
}

/* ---- public ---- */

int sb_tokenizer_encode(const sb_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!text && len) return sb_usage_error("tokenizer encode: NULL text");
    const uint8_t *s = (const uint8_t *)text;
    enc_state e = {.t = t};
    e.out.cap = len / 3 + 16;
    e.out.v = malloc_check(e.out.cap * sizeof *e.out.v);
    if (t->kind == SB_TOKENIZER_BYTE_LEVEL) cache_init(&e.cache);
    /* Hugging Face splits on the added tokens with normalized=false first, then on the
     * normalized=true ones inside each remaining segment (no normalizer here changes them) */
    size_t pos = 0;
    while (pos < len) {
        size_t start = len;
        int a = t->n_added ? sb_tokenizer_find_added(t, s, len, pos, false, &start) : -1;
        size_t p = pos;
        while (p < start) {
            size_t s2 = start;
            int b = t->n_added ? sb_tokenizer_find_added(t, s, start, p, true, &s2) : -1;
            if (t->kind == SB_TOKENIZER_BYTE_LEVEL) bytelevel_segment(&e, s + p, s2 - p);
            else sp_segment(&e, s + p, s2 - p, p == 0);
            if (b < 0) break;
            vec_push(&e.out, t->added[b].id);
            p = s2 + t->added[b].len;
        }
        if (a < 0) break;
        vec_push(&e.out, t->added[a].id);
        pos = start + t->added[a].len;
    }
    if (t->kind == SB_TOKENIZER_BYTE_LEVEL) cache_free(&e.cache);
    free(e.sym);
    *ids = e.out.v;
    *n = e.out.n;
    return SB_OK;
}

int sb_tokenizer_decode(const sb_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size || !t->tok[ids[i]])
            return sb_error("tokenizer decode: id %ld at position %zu is not in the vocabulary (size %d)",
                            (long)ids[i], i, (int)t->vocab_size);
        total += t->tok_len[ids[i]];
    }
    char *buf = malloc_check(total + 1);
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + p, t->tok[ids[i]], t->tok_len[ids[i]]);
        p += t->tok_len[ids[i]];
    }
    buf[p] = '\0';
    /* SentencePiece's decoder drops the space that encoding put in front */
    if (t->kind == SB_TOKENIZER_SENTENCEPIECE && t->prepend != SB_PREPEND_NONE && p > 0 && buf[0] == ' ') {
        memmove(buf, buf + 1, p);
        p--;
    }
    *out = buf;
    *len = p;
    return SB_OK;
}
