/* Byte-level BPE training.
 *
 * 1. Split out the special tokens, cut the rest into chunks at points where the GPT-2
 *    pre-tokenizer is known to break (after "\n" before a non-space), and count distinct
 *    pre-tokens per chunk in parallel (OpenMP), then sum the per-thread tables.
 * 2. Classic BPE over the distinct words: pair counts weighted by word frequency, for each
 *    pair the list of words that contain it, and a lazy max-heap. A merge rewrites only the
 *    words on the pair's list and adjusts the neighbouring pair counts incrementally.
 * Ties between equally frequent pairs go to the smaller (left id, right id), which makes
 * the result independent of the thread count and of table order. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/common.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

/* ---- byte-string -> int64 table (keys are borrowed pointers) ---- */

typedef struct {
    const uint8_t *key;
    uint64_t hash;
    uint32_t len;
    int64_t val;
} bmap_slot;

typedef struct {
    bmap_slot *s;
    size_t cap, n;
} bmap;

static void bmap_init(bmap *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->s = calloc_check(cap, sizeof *m->s);
}

static bmap_slot *bmap_find(const bmap *m, const uint8_t *k, size_t n, uint64_t h) {
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        bmap_slot *s = &m->s[i];
        if (!s->key || (s->hash == h && s->len == n && !memcmp(s->key, k, n))) return s;
    }
}

static void bmap_add(bmap *m, const uint8_t *k, size_t n, uint64_t h, int64_t v) {
    bmap_slot *s = bmap_find(m, k, n, h);
    if (s->key) {
        s->val += v;
        return;
    }
    *s = (bmap_slot){k, h, (uint32_t)n, v};
    if (++m->n * 2 > m->cap) {
        bmap_slot *old = m->s;
        size_t oc = m->cap;
        bmap_init(m, oc * 2);
        m->n = 0;
        for (size_t i = 0; i < oc; i++)
            if (old[i].key) {
                *bmap_find(m, old[i].key, old[i].len, old[i].hash) = old[i];
                m->n++;
            }
        free(old);
    }
}

/* ---- step 1: counting ---- */

typedef struct {
    size_t start, end;
} span;

static int find_special(const char **sp, const size_t *sl, int ns, const uint8_t *s, size_t len, size_t pos,
                        size_t *start, size_t *mlen) {
    uint8_t first[256] = {0};
    for (int k = 0; k < ns; k++) first[(uint8_t)sp[k][0]] = 1;
    for (size_t i = pos; i < len; i++) {
        if (!first[s[i]]) continue;
        size_t best = 0;
        for (int k = 0; k < ns; k++)
            if (sl[k] <= len - i && sl[k] > best && !memcmp(s + i, sp[k], sl[k])) best = sl[k];
        if (best) {
            *start = i;
            *mlen = best;
            return 1;
        }
    }
    return 0;
}

/* Pieces of [start, end) never straddle a returned cut: the pre-tokenizer always breaks
 * between "\n" and a following non-space character. */
static size_t safe_cut(const uint8_t *s, size_t start, size_t end, size_t want) {
    for (size_t i = want; i + 1 < end; i++) {
        if (s[i] != '\n' || i < start) continue;
        uint32_t cp;
        sb_utf8_decode(s + i + 1, end - i - 1, &cp);
        if (sb_unicode_class(cp) != SB_UCLASS_SPACE) return i + 1;
    }
    return end;
}

static void count_span(bmap *m, const uint8_t *s, span sp) {
    size_t pos = sp.start;
    while (pos < sp.end) {
        size_t e = sb_pretokenize_next(s, sp.end, pos);
        bmap_add(m, s + pos, e - pos, sb_tok_hash_bytes(s + pos, e - pos), 1);
        pos = e;
    }
}

/* ---- step 2: merges ---- */

typedef struct {
    int32_t a, b;
    int64_t count;
    int64_t before; /* count when first touched in the current merge step */
    int32_t stamp;  /* merge step that last touched it */
    int32_t banned; /* would produce a special token's bytes */
    int32_t *words;
    uint32_t nw, capw;
} pair_rec;

typedef struct {
    int64_t count;
    int32_t idx;
} heap_ent;

typedef struct {
    pair_rec *p;
    size_t n, cap;
    sb_pair_map index; /* (a, b) -> position in p (stored as rank) */
    heap_ent *heap;
    size_t nh, caph;
    int32_t *touched;
    size_t ntouched, captouched;
    int32_t step;
} pair_table;

static bool heap_above(const pair_table *t, heap_ent x, heap_ent y) {
    if (x.count != y.count) return x.count > y.count;
    const pair_rec *px = &t->p[x.idx], *py = &t->p[y.idx];
    return px->a != py->a ? px->a < py->a : px->b < py->b;
}

static void heap_push(pair_table *t, heap_ent e) {
    if (t->nh == t->caph) {
        t->caph = t->caph ? t->caph * 2 : 1024;
        heap_ent *nh = realloc(t->heap, t->caph * sizeof *nh);
        if (!nh) malloc_check((size_t)-1);
        t->heap = nh;
    }
    size_t i = t->nh++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!heap_above(t, e, t->heap[par])) break;
        t->heap[i] = t->heap[par];
        i = par;
    }
    t->heap[i] = e;
}

static heap_ent heap_pop(pair_table *t) {
    heap_ent top = t->heap[0], last = t->heap[--t->nh];
    size_t i = 0, n = t->nh;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        heap_ent best = last;
        if (l < n && heap_above(t, t->heap[l], best)) { m = l; best = t->heap[l]; }
        if (r < n && heap_above(t, t->heap[r], best)) m = r;
        if (m == i) break;
        t->heap[i] = t->heap[m];
        i = m;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

static int32_t pair_get(pair_table *t, int32_t a, int32_t b) {
    int32_t idx, unused;
    if (sb_pair_map_get(&t->index, a, b, &idx, &unused)) return idx;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 4096;
        pair_rec *np = realloc(t->p, t->cap * sizeof *np);
        if (!np) malloc_check((size_t)-1);
        t->p = np;
    }
    idx = (int32_t)t->n++;
    t->p[idx] = (pair_rec){.a = a, .b = b, .stamp = -1};
    sb_pair_map_put(&t->index, a, b, idx, 0);
    return idx;
}

/* Add delta occurrences of (a, b) in word w. */
static void pair_add(pair_table *t, int32_t a, int32_t b, int64_t delta, int32_t w) {
    int32_t idx = pair_get(t, a, b);
    pair_rec *p = &t->p[idx];
    if (p->stamp != t->step) {
        p->stamp = t->step;
        p->before = p->count;
        if (t->ntouched == t->captouched) {
            t->captouched = t->captouched ? t->captouched * 2 : 1024;
            int32_t *nt = realloc(t->touched, t->captouched * sizeof *nt);
            if (!nt) malloc_check((size_t)-1);
            t->touched = nt;
        }
        t->touched[t->ntouched++] = idx;
    }
    p->count += delta;
    if (delta > 0 && (p->nw == 0 || p->words[p->nw - 1] != w)) {
        if (p->nw == p->capw) {
            p->capw = p->capw ? p->capw * 2 : 4;
            int32_t *nw = realloc(p->words, p->capw * sizeof *nw);
            if (!nw) malloc_check((size_t)-1);
            p->words = nw;
        }
        p->words[p->nw++] = w;
    }
}

/* Push a heap entry for every pair whose count grew in this step (shrunk ones keep an entry
 * at least as large as their count, which is what the lazy heap needs). */
static void flush_touched(pair_table *t) {
    for (size_t i = 0; i < t->ntouched; i++) {
        pair_rec *p = &t->p[t->touched[i]];
        if (p->count > p->before && !p->banned) heap_push(t, (heap_ent){p->count, t->touched[i]});
    }
    t->ntouched = 0;
}

typedef struct {
    int32_t *sym;
    uint32_t len;
    int64_t count;
} word;

static int check_opts(const sb_bpe_train_opts *o) {
    if (!o) return sb_usage_error("bpe train: no options");
    if (o->n_special < 0 || (o->n_special > 0 && !o->special))
        return sb_usage_error("bpe train: bad special token list");
    if (o->vocab_size < 256 + o->n_special || o->vocab_size > (1 << 24))
        return sb_usage_error("bpe train: vocab size %d is out of range [%d, %d]", (int)o->vocab_size,
                              256 + o->n_special, 1 << 24);
    for (int i = 0; i < o->n_special; i++) {
        const char *s = o->special[i];
        size_t n = s ? strlen(s) : 0;
        if (n == 0) return sb_usage_error("bpe train: empty special token");
        for (size_t k = 0; k < n;) {
            uint32_t cp;
            int cl = sb_utf8_decode((const uint8_t *)s + k, n - k, &cp);
            if (cp == UINT32_MAX) return sb_usage_error("bpe train: special token '%s' is not valid UTF-8", s);
            k += (size_t)cl;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(s, o->special[j])) return sb_usage_error("bpe train: special token '%s' given twice", s);
    }
    return SB_OK;
}

int sb_bpe_train(sb_tokenizer **out, const char *text, size_t len, const sb_bpe_train_opts *o) {
    *out = NULL;
    int rc = check_opts(o);
    if (rc) return rc;
    if (!text && len) return sb_usage_error("bpe train: NULL text");
    const uint8_t *s = (const uint8_t *)text;
    int ns = o->n_special;
    size_t *sl = calloc_check((size_t)ns + 1, sizeof *sl);
    for (int k = 0; k < ns; k++) sl[k] = strlen(o->special[k]);

    /* segments between special tokens, cut into ~1 MiB chunks */
    span *chunks = NULL;
    size_t nchunks = 0, capchunks = 0;
    const size_t chunk = (size_t)1 << 20;
    size_t pos = 0;
    while (pos < len) {
        size_t ms = len, ml = 0;
        if (ns) find_special(o->special, sl, ns, s, len, pos, &ms, &ml);
        for (size_t c = pos; c < ms;) {
            size_t e = ms - c > chunk ? safe_cut(s, c, ms, c + chunk) : ms;
            if (nchunks == capchunks) {
                capchunks = capchunks ? capchunks * 2 : 64;
                span *nc = realloc(chunks, capchunks * sizeof *nc);
                if (!nc) malloc_check((size_t)-1);
                chunks = nc;
            }
            chunks[nchunks++] = (span){c, e};
            c = e;
        }
        pos = ml ? ms + ml : len;
    }

    int nt = 1;
#ifdef _OPENMP
    nt = o->threads > 0 ? o->threads : omp_get_max_threads();
#endif
    if (nt < 1) nt = 1;
    bmap *maps = calloc_check((size_t)nt, sizeof *maps);
    for (int i = 0; i < nt; i++) bmap_init(&maps[i], 1 << 14);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t i = 0; i < nchunks; i++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        count_span(&maps[tid], s, chunks[i]);
    }
    free(chunks);
    bmap *wc = &maps[0];
    for (int i = 1; i < nt; i++) {
        for (size_t k = 0; k < maps[i].cap; k++)
            if (maps[i].s[k].key) bmap_add(wc, maps[i].s[k].key, maps[i].s[k].len, maps[i].s[k].hash, maps[i].s[k].val);
        free(maps[i].s);
    }

    /* vocabulary so far: the 256 bytes; vmap finds a token by its bytes */
    int32_t max_ids = o->vocab_size - ns;
    char **tok = calloc_check((size_t)o->vocab_size, sizeof *tok);
    uint32_t *tok_len = calloc_check((size_t)o->vocab_size, sizeof *tok_len);
    bmap vmap;
    bmap_init(&vmap, 16);
    for (int b = 0; b < 256; b++) {
        tok[b] = malloc_check(2);
        tok[b][0] = (char)b;
        tok[b][1] = '\0';
        tok_len[b] = 1;
        bmap_add(&vmap, (const uint8_t *)tok[b], 1, sb_tok_hash_bytes((const uint8_t *)tok[b], 1), b);
    }
    bmap banned; /* special tokens' bytes: no merge may produce them */
    bmap_init(&banned, 16);
    for (int k = 0; k < ns; k++)
        bmap_add(&banned, (const uint8_t *)o->special[k], sl[k], sb_tok_hash_bytes((const uint8_t *)o->special[k], sl[k]), 1);

    /* words with two or more bytes */
    size_t nwords = 0, total_sym = 0;
    for (size_t k = 0; k < wc->cap; k++)
        if (wc->s[k].key && wc->s[k].len > 1) {
            nwords++;
            total_sym += wc->s[k].len;
        }
    word *words = calloc_check(nwords + 1, sizeof *words);
    int32_t *arena = malloc_check((total_sym + 1) * sizeof *arena);
    nwords = 0;
    total_sym = 0;
    for (size_t k = 0; k < wc->cap; k++) {
        bmap_slot *w = &wc->s[k];
        if (!w->key || w->len < 2) continue;
        word *wd = &words[nwords++];
        wd->sym = arena + total_sym;
        wd->len = w->len;
        wd->count = w->val;
        for (uint32_t i = 0; i < w->len; i++) wd->sym[i] = w->key[i];
        total_sym += w->len;
    }
    free(wc->s);
    free(maps);

    pair_table pt = {0};
    sb_pair_map_init(&pt.index, 1 << 16);
    for (size_t w = 0; w < nwords; w++)
        for (uint32_t i = 0; i + 1 < words[w].len; i++)
            pair_add(&pt, words[w].sym[i], words[w].sym[i + 1], words[w].count, (int32_t)w);
    flush_touched(&pt);

    size_t cap_merges = (size_t)max_ids + 16;
    int32_t (*merges)[2] = malloc_check(cap_merges * sizeof *merges);
    int32_t n_merges = 0, n_ids = 256;
    int32_t *stamp = malloc_check((nwords + 1) * sizeof *stamp);
    for (size_t w = 0; w < nwords; w++) stamp[w] = -1;
    char *buf = NULL;
    size_t buf_cap = 0;
    while (n_ids < max_ids && pt.nh > 0) {
        heap_ent top = heap_pop(&pt);
        pair_rec *p = &pt.p[top.idx];
        if (p->banned || p->count <= 0) continue;
        if (top.count != p->count) {
            heap_push(&pt, (heap_ent){p->count, top.idx});
            continue;
        }
        int32_t a = p->a, b = p->b;
        size_t n = (size_t)tok_len[a] + tok_len[b];
        if (n > buf_cap) {
            buf_cap = 2 * n;
            free(buf);
            buf = malloc_check(buf_cap);
        }
        memcpy(buf, tok[a], tok_len[a]);
        memcpy(buf + tok_len[a], tok[b], tok_len[b]);
        uint64_t h = sb_tok_hash_bytes((const uint8_t *)buf, n);
        if (bmap_find(&banned, (const uint8_t *)buf, n, h)->key) {
            p->banned = 1;
            continue;
        }
        int32_t c;
        bmap_slot *vs = bmap_find(&vmap, (const uint8_t *)buf, n, h);
        if (vs->key) {
            c = (int32_t)vs->val; /* a second way to build an existing token: no new id */
        } else {
            c = n_ids++;
            tok[c] = malloc_check(n + 1);
            memcpy(tok[c], buf, n);
            tok[c][n] = '\0';
            tok_len[c] = (uint32_t)n;
            bmap_add(&vmap, (const uint8_t *)tok[c], n, h, c);
        }
        if ((size_t)n_merges == cap_merges) { /* duplicate-output merges need no id */
            cap_merges *= 2;
            int32_t(*nm)[2] = realloc(merges, cap_merges * sizeof *merges);
            if (!nm) malloc_check((size_t)-1);
            merges = nm;
        }
        merges[n_merges][0] = a;
        merges[n_merges][1] = b;
        pt.step = ++n_merges;

        /* rewrite every word that contains (a, b); p may move when the table grows */
        int32_t *wl = p->words;
        uint32_t nwl = p->nw;
        p->words = NULL;
        p->nw = p->capw = 0;
        for (uint32_t k = 0; k < nwl; k++) {
            int32_t w = wl[k];
            if (stamp[w] == n_merges) continue;
            stamp[w] = n_merges;
            word *wd = &words[w];
            int32_t *sy = wd->sym;
            uint32_t L = wd->len, j = 0;
            for (uint32_t i = 0; i < L;) {
                if (i + 1 < L && sy[i] == a && sy[i + 1] == b) {
                    if (j > 0) {
                        pair_add(&pt, sy[j - 1], a, -wd->count, w);
                        pair_add(&pt, sy[j - 1], c, wd->count, w);
                    }
                    if (i + 2 < L) {
                        pair_add(&pt, b, sy[i + 2], -wd->count, w);
                        pair_add(&pt, c, sy[i + 2], wd->count, w);
                    }
                    pair_add(&pt, a, b, -wd->count, w);
                    sy[j++] = c;
                    i += 2;
                } else {
                    sy[j++] = sy[i++];
                }
            }
            wd->len = j;
        }
        free(wl);
        flush_touched(&pt);
    }
    free(buf);
    free(stamp);
    for (size_t i = 0; i < pt.n; i++) free(pt.p[i].words);
    free(pt.p);
    free(pt.heap);
    free(pt.touched);
    sb_pair_map_free(&pt.index);
    free(words);
    free(arena);
    free(vmap.s);
    free(banned.s);

    /* specials go right after the last merged token */
    sb_added_token *added = calloc_check((size_t)ns + 1, sizeof *added);
    for (int k = 0; k < ns; k++) {
        int32_t id = n_ids + k;
        tok[id] = malloc_check(sl[k] + 1);
        memcpy(tok[id], o->special[k], sl[k] + 1);
        tok_len[id] = (uint32_t)sl[k];
        added[k] = (sb_added_token){.content = malloc_check(sl[k] + 1), .len = sl[k], .id = id, .special = true};
        memcpy(added[k].content, o->special[k], sl[k] + 1);
    }
    free(sl);
    return sb_tokenizer_build(out, SB_TOKENIZER_BYTE_LEVEL, n_ids + ns, tok, tok_len, NULL, NULL, merges, n_merges, added,
                              ns, "bpe train");
}
