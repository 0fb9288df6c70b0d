/* Internals shared by the tokenizer sources (not part of the public API). */
#ifndef SB_TOKENIZER_INTERNAL_H
#define SB_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

/* 64-bit hash of a byte string (multiply-xorshift over 8-byte words). */
static inline uint64_t sb_tok_hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    h = (h ^ v) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static inline uint64_t sb_tok_hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    return x ^ (x >> 33);
}

static inline uint64_t sb_tok_pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* (left id, right id) -> (merge rank, merged id); open addressing, power-of-two capacity. */
typedef struct {
    uint64_t *keys; /* UINT64_MAX marks an empty slot (ids are < 2^31, so no real key is) */
    int32_t *rank, *merged;
    size_t cap, n;
} sb_pair_map;

void sb_pair_map_init(sb_pair_map *m, size_t expected);
void sb_pair_map_free(sb_pair_map *m);
/* Insert or overwrite (a later duplicate merge wins, as in Hugging Face). */
void sb_pair_map_put(sb_pair_map *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
static inline bool sb_pair_map_get(const sb_pair_map *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged) {
    uint64_t key = sb_tok_pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = sb_tok_hash_u64(key) & mask;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return true;
        }
        if (m->keys[i] == UINT64_MAX) return false;
    }
}

/* An added token (Hugging Face "added_tokens"): matched on the raw text before
 * pre-tokenization, leftmost-longest. */
typedef struct {
    char *content;
    size_t len;
    int32_t id;
    bool special, single_word, lstrip, rstrip, normalized;
} sb_added_token;

typedef enum {
    SB_PREPEND_NONE,   /* SentencePiece kind: whether to put "▁" in front of a segment */
    SB_PREPEND_FIRST,  /* only the segment at the very start of the text */
    SB_PREPEND_ALWAYS, /* every segment that does not start with "▁" already */
    SB_PREPEND_EVERY,  /* every non-empty segment (the Prepend normalizer) */
} sb_prepend_scheme;

struct sb_tokenizer {
    sb_tokenizer_kind kind;
    int32_t vocab_size;      /* ids are [0, vocab_size); an id absent from the file has tok == NULL */
    char **tok;              /* decoded bytes of each id, NUL-terminated */
    uint32_t *tok_len;
    char **piece;            /* SentencePiece kind only: the vocab string as in the file */
    uint8_t *flags;          /* SB_TOKF_* per id */
    sb_added_token *added;
    int n_added;
    uint8_t added_first[256]; /* non-zero for bytes that start some added token */
    int32_t (*merges)[2];    /* (left, right) ids by rank */
    int32_t n_merges;
    sb_pair_map pairs;
    int32_t *by_bytes;       /* hash table of ids keyed by decoded bytes (-1 empty) */
    size_t by_bytes_cap;
    int32_t byte_id[256];    /* id of each single byte (byte-level) or <0xNN> token; -1 if none */
    bool ignore_merges;      /* Hugging Face BPE ignore_merges: a piece in the vocab is one token */
    /* SentencePiece kind */
    sb_prepend_scheme prepend;
    bool metaspace_split;    /* Metaspace pre-tokenizer with split: words start at each "▁" */
    int32_t unk_id;
    int32_t bos_id;          /* prepended by the post-processor (TemplateProcessing), -1 if none */
    int32_t eos_id;          /* appended by the post-processor, -1 if none */
    int32_t bos_token, eos_token; /* the BOS/EOS tokens whether added or not (tokenizer_config.json), -1 if unknown */
    uint8_t hash[SB_TOKENIZER_HASH_BYTES];
};

/* SPECIAL/ADDED: an added token (special or not); MODEL: in the BPE model's vocab (an id can
 * be both, as "<|endoftext|>"); BYTE: a SentencePiece <0xNN> byte token */
enum { SB_TOKF_SPECIAL = 1, SB_TOKF_ADDED = 2, SB_TOKF_BYTE = 4, SB_TOKF_MODEL = 8 };

/* Build a tokenizer from its parts. tok[i] (length tok_len[i]) are the decoded bytes of each
 * id (NULL for a hole); in_model[i] says whether id i is in the BPE model's vocab (NULL: every
 * id that is not a hole); ownership of tok, tok_len, piece, merges and added moves to the
 * tokenizer (also on error). Checks merges reference ids in range whose concatenation is a
 * token; `what` names the source in error messages. Computes the hash. */
int sb_tokenizer_build(sb_tokenizer **out, sb_tokenizer_kind kind, int32_t vocab_size, char **tok,
                       uint32_t *tok_len, const uint8_t *in_model, char **piece, int32_t (*merges)[2],
                       int32_t n_merges, sb_added_token *added, int n_added, const char *what);

/* Look up decoded bytes; -1 if absent. Added tokens win over ordinary tokens. */
int32_t sb_tokenizer_lookup(const sb_tokenizer *t, const char *s, size_t n);

/* GPT-2 byte-level alphabet: byte -> code point, and code point -> byte (-1 if not in it). */
uint32_t sb_bytelevel_char(uint8_t b);
int sb_bytelevel_byte(uint32_t cp);

/* The canonical tokenizer.json as a malloc'd string. */
int sb_tokenizer_to_json(const sb_tokenizer *t, char **json, size_t *len);


/* Apply the BPE merges to one word of initial symbols (in place); returns the new count.
 * Exactly Hugging Face's Word::merge_all (priority queue on (rank, position)). */
size_t sb_bpe_merge_word(const sb_pair_map *pairs, int32_t *sym, size_t n);

/* Find the next added token with the given `normalized` flag in s[pos..len)
 * (leftmost-longest); returns its index in t->added and sets *start, or -1. */
int sb_tokenizer_find_added(const sb_tokenizer *t, const uint8_t *s, size_t len, size_t pos, bool normalized,
                            size_t *start);

#endif
