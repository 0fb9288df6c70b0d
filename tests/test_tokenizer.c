/* Tests of tokenizer/: GPT-2 pre-tokenizer, BPE training, encode/decode round trips,
 * special tokens, tokenizer.json save/load and its errors, golden ids when present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "tokenizer/textfile.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_internal.h"
#include "util/sha256.h"
#include "tests/helpers/sb_test.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static const char *WORDS[] = {
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
    "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they",
    "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when",
    "will", "would", "who", "so", "no", "streaming", "attention", "sink", "token", "window", "cache",
    "don't", "it's", "we're", "I'll", "they've", "1984", "3.14", "naïve", "café", "—", "\"quoted\"", "(paren)",
};

/* Pseudo-English: sentences of common words, paragraphs, documents separated by <|endoftext|>. */
static char *make_text(size_t target, size_t *len) {
    size_t cap = target + 256, n = 0;
    char *s = malloc_check(cap);
    size_t nw = sizeof WORDS / sizeof WORDS[0];
    while (n + 64 < target) {
        const char *w = WORDS[rnd() % nw];
        char syl[32];
        if (rnd() % 5 == 0) { /* a made-up word, so there is plenty to merge */
            static const char *S[] = {"ka", "ro", "mi", "ten", "sh", "qu", "ell", "ing", "ed", "pra", "vo", "x"};
            size_t k = 0;
            for (uint32_t i = 0, m = 1 + rnd() % 4; i < m; i++) k += (size_t)sprintf(syl + k, "%s", S[rnd() % 12]);
            w = syl;
        }
        size_t wl = strlen(w);
        memcpy(s + n, w, wl);
        n += wl;
        uint32_t r = rnd() % 100;
        const char *sep = r < 80 ? " " : r < 90 ? ". " : r < 95 ? ",  " : r < 98 ? ".\n\n" : ".\n<|endoftext|>";
        memcpy(s + n, sep, strlen(sep));
        n += strlen(sep);
    }
    s[n] = '\0';
    *len = n;
    return s;
}

static sb_tokenizer *train_small(int32_t vocab, int threads) {
    rng_state = 0x243F6A8885A308D3ull;
    size_t len;
    char *text = make_text(200000, &len);
    const char *sp[] = {SB_TOKEN_ENDOFTEXT, SB_TOKEN_SINK};
    sb_bpe_train_opts o = {.vocab_size = vocab, .special = sp, .n_special = 2, .threads = threads};
    sb_tokenizer *t = NULL;
    assert_int_equal(sb_bpe_train(&t, text, len, &o), SB_OK);
    free(text);
    return t;
}

/* ---- pre-tokenizer ---- */

/* Expected pieces joined by '|' (hand-derived from the regex's alternation order). */
static const struct {
    const char *in, *want;
} SPLITS[] = {
    {"Hello world", "Hello| world"},
    {"Hello  world", "Hello| | world"},
    {"Hello   world", "Hello|  | world"},
    {"don't", "don|'t"},
    {"I'm you're we've they'll he'd it's", "I|'m| you|'re| we|'ve| they|'ll| he|'d| it|'s"},
    {"DON'T", "DON|'|T"},
    {"'sup", "'s|up"},
    {"?'s", "?'|s"},
    {"it''s", "it|''|s"},
    {"'re'", "'re|'"},
    {"a\nb", "a|\n|b"},
    {"a \nb", "a| |\n|b"},
    {"a\n\nb", "a|\n|\n|b"},
    {"a\n\n\nb", "a|\n\n|\n|b"},
    {"a \tb", "a| |\t|b"},
    {"x\t y", "x|\t| y"},
    {"a\r\nb", "a|\r|\n|b"},
    {"end  ", "end|  "},
    {"   ", "   "},
    {" ", " "},
    {"\n", "\n"},
    {"123abc", "123|abc"},
    {" 123 456", " 123| 456"},
    {"3.14", "3|.|14"},
    {"hello!!! world", "hello|!!!| world"},
    {" !!!x", " !!!|x"},
    {"a-b_c", "a|-|b|_|c"},
    {"<|endoftext|>", "<||endoftext||>"}, /* "<|" "endoftext" "|>" */
    {"naïve café", "na\xc3\xafve| caf\xc3\xa9"},
    {"日本語 テキスト", "日本語| テキスト"},
    {"x² ½", "x|²| ½"},
    {"x Ⅻ", "x| Ⅻ"},
    {"€5", "€|5"},
    {"emoji 😀😀 ok", "emoji| 😀😀| ok"},
    {"a\xc2\xa0" "b", "a|\xc2\xa0|b"},             /* NBSP is whitespace but not the optional space */
    {"a\xc2\xa0 b", "a|\xc2\xa0| b"},
    {"a \xc2\xa0" "b", "a| |\xc2\xa0|b"},
    {"a\xe3\x80\x80\xe3\x80\x80" "b", "a|\xe3\x80\x80|\xe3\x80\x80|b"}, /* ideographic spaces: one char backtracked */
    {"a\xc2\x85" "b", "a|\xc2\x85|b"},              /* NEL is \s in Oniguruma */
    {"a\x1c" "b", "a|\x1c|b"},                      /* but U+001C is not */
    {"a\xff\xfe" "b", "a|\xff\xfe|b"},              /* invalid UTF-8: one "other" char per byte */
    {" \xff" "b", " \xff|b"},
    {"\xe2\x82", "\xe2\x82"},                       /* truncated sequence */
    {"\xed\xa0\x80x", "\xed\xa0\x80|x"},            /* surrogate: invalid */
};

static void test_pretokenize_table(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof SPLITS / sizeof SPLITS[0]; k++) {
        const uint8_t *s = (const uint8_t *)SPLITS[k].in;
        size_t len = strlen(SPLITS[k].in), pos = 0;
        char got[512] = "";
        size_t gl = 0;
        while (pos < len) {
            size_t e = sb_pretokenize_next(s, len, pos);
            assert_true(e > pos && e <= len);
            if (pos) got[gl++] = '|';
            memcpy(got + gl, s + pos, e - pos);
            gl += e - pos;
            pos = e;
        }
        got[gl] = '\0';
        if (strcmp(got, SPLITS[k].want)) fail_msg("split of [%s]: got [%s], want [%s]", SPLITS[k].in, got, SPLITS[k].want);
    }
}

/* ---- training ---- */

static void test_train_classic_example(void **state) {
    (void)state;
    /* "aaabdaaabac": aa (4) first; then ab and (aa,a) tie at 2 and the smaller ids win */
    const char *text = "aaabdaaabac";
    sb_bpe_train_opts o = {.vocab_size = 259, .special = NULL, .n_special = 0, .threads = 1};
    sb_tokenizer *t;
    assert_int_equal(sb_bpe_train(&t, text, strlen(text), &o), SB_OK);
    assert_int_equal(sb_tokenizer_vocab_size(t), 259);
    assert_int_equal(t->n_merges, 3);
    assert_int_equal(t->merges[0][0], 'a');
    assert_int_equal(t->merges[0][1], 'a');
    assert_int_equal(t->merges[1][0], 'a');
    assert_int_equal(t->merges[1][1], 'b');
    assert_int_equal(t->merges[2][0], 256);
    assert_int_equal(t->merges[2][1], 257);
    assert_int_equal(sb_tokenizer_token_id(t, "aaab"), 258);
    int32_t *ids;
    size_t n;
    assert_int_equal(sb_tokenizer_encode(t, text, strlen(text), &ids, &n), SB_OK);
    int32_t want[] = {258, 'd', 258, 'a', 'c'};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    sb_tokenizer_free(t);
}

static void test_train_deterministic_across_threads(void **state) {
    (void)state;
    sb_tokenizer *t1 = train_small(1024, 1), *t2 = train_small(1024, 2), *t3 = train_small(1024, 2);
    assert_int_equal(sb_tokenizer_vocab_size(t1), 1024);
    assert_int_equal(t1->n_merges, t2->n_merges);
    assert_memory_equal(t1->merges, t2->merges, sizeof t1->merges[0] * (size_t)t1->n_merges);
    assert_memory_equal(sb_tokenizer_hash(t1), sb_tokenizer_hash(t2), SB_TOKENIZER_HASH_BYTES);
    assert_memory_equal(sb_tokenizer_hash(t2), sb_tokenizer_hash(t3), SB_TOKENIZER_HASH_BYTES);
    /* specials are the last ids; common words became single tokens with their space */
    assert_int_equal(sb_tokenizer_token_id(t1, SB_TOKEN_ENDOFTEXT), 1022);
    assert_int_equal(sb_tokenizer_token_id(t1, SB_TOKEN_SINK), 1023);
    assert_true(sb_tokenizer_is_special(t1, 1023));
    assert_false(sb_tokenizer_is_special(t1, 300));
    assert_true(sb_tokenizer_token_id(t1, " the") >= 256);
    assert_true(sb_tokenizer_token_id(t1, " attention") >= 256);
    for (int b = 0; b < 256; b++) {
        char s[2] = {(char)b, 0};
        if (b) assert_int_equal(sb_tokenizer_token_id(t1, s), b);
    }
    /* the special's pieces were never counted, so never learned */
    assert_int_equal(sb_tokenizer_token_id(t1, "endoftext"), -1);
    assert_int_equal(sb_tokenizer_token_id(t1, "<|"), -1);
    sb_tokenizer_free(t1);
    sb_tokenizer_free(t2);
    sb_tokenizer_free(t3);
}

static void test_train_bad_options(void **state) {
    (void)state;
    sb_tokenizer *t;
    const char *sp[] = {"<a>", "<a>"};
    sb_bpe_train_opts o = {.vocab_size = 100, .special = NULL, .n_special = 0, .threads = 1};
    assert_int_equal(sb_bpe_train(&t, "abc", 3, &o), SB_ERR_USAGE);
    assert_null(t);
    o = (sb_bpe_train_opts){.vocab_size = 300, .special = sp, .n_special = 2, .threads = 1};
    assert_int_equal(sb_bpe_train(&t, "abc", 3, &o), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "twice"));
    const char *bad[] = {"<\xff>"};
    o = (sb_bpe_train_opts){.vocab_size = 300, .special = bad, .n_special = 1, .threads = 1};
    assert_int_equal(sb_bpe_train(&t, "abc", 3, &o), SB_ERR_USAGE);
    /* empty text: a valid tokenizer of bytes + specials */
    o = (sb_bpe_train_opts){.vocab_size = 300, .special = sp, .n_special = 1, .threads = 1};
    assert_int_equal(sb_bpe_train(&t, "", 0, &o), SB_OK);
    assert_int_equal(sb_tokenizer_vocab_size(t), 257);
    sb_tokenizer_free(t);
}

/* ---- encoding ---- */

/* Reference BPE: repeatedly merge the lowest-rank adjacent pair, leftmost first. Equal to
 * the priority-queue algorithm for vocabularies without two merges yielding one token. */
static size_t naive_bpe(const sb_tokenizer *t, int32_t *sym, size_t n) {
    for (;;) {
        int32_t best = INT32_MAX, merged = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            int32_t r, m;
            if (sb_pair_map_get(&t->pairs, sym[i], sym[i + 1], &r, &m) && r < best) {
                best = r;
                merged = m;
                at = i;
            }
        }
        if (merged < 0) return n;
        sym[at] = merged;
        memmove(sym + at + 1, sym + at + 2, (n - at - 2) * sizeof *sym);
        n--;
    }
}

static void test_merge_word_matches_reference(void **state) {
    (void)state;
    sb_tokenizer *t = train_small(1024, 1);
    int32_t a[400], b[400];
    for (int iter = 0; iter < 3000; iter++) {
        /* long words take the heap path with malloc'd scratch */
        size_t n = iter % 10 == 0 ? 65 + rnd() % 300 : 1 + rnd() % 40;
        const char *alpha = "theaonsirdlu ";
        for (size_t i = 0; i < n; i++) a[i] = b[i] = (uint8_t)alpha[rnd() % 13];
        size_t na = sb_bpe_merge_word(&t->pairs, a, n), nb = naive_bpe(t, b, n);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof *a);
    }
    sb_tokenizer_free(t);
}

static void roundtrip(const sb_tokenizer *t, const char *s, size_t len) {
    int32_t *ids;
    size_t n;
    assert_int_equal(sb_tokenizer_encode(t, s, len, &ids, &n), SB_OK);
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && ids[i] < sb_tokenizer_vocab_size(t));
    char *out;
    size_t ol;
    assert_int_equal(sb_tokenizer_decode(t, ids, n, &out, &ol), SB_OK);
    assert_int_equal(ol, len);
    assert_memory_equal(out, s, len);
    assert_int_equal(out[ol], '\0');
    free(out);
    free(ids);
}

static void test_roundtrip_random_bytes(void **state) {
    (void)state;
    sb_tokenizer *t = train_small(1024, 2);
    static const char *frags[] = {"the", " ", "  ", "\n", "'s", "é", "日", "😀", "<|endoftext|>", "<sink>",
                                  "<|endoftext", "\xc2\xa0", "123", "!?", "\xe2\x82", "\xf0\x9f", "\xed\xa0\x80"};
    char buf[512];
    for (int iter = 0; iter < 10000; iter++) {
        size_t len = 0, target = rnd() % 300;
        int mode = iter % 3;
        while (len < target) {
            if (mode == 0) { /* raw random bytes: mostly invalid UTF-8 */
                buf[len++] = (char)rnd();
            } else if (mode == 1) { /* fragments, valid and invalid */
                const char *f = frags[rnd() % (sizeof frags / sizeof frags[0])];
                size_t fl = strlen(f);
                if (len + fl > sizeof buf) break;
                memcpy(buf + len, f, fl);
                len += fl;
            } else { /* ASCII with control characters */
                buf[len++] = (char)(rnd() % 128);
            }
        }
        roundtrip(t, buf, len);
    }
    roundtrip(t, "", 0);
    sb_tokenizer_free(t);
}

static void test_specials_never_split(void **state) {
    (void)state;
    sb_tokenizer *t = train_small(1024, 1);
    int32_t eot = sb_tokenizer_token_id(t, SB_TOKEN_ENDOFTEXT), sink = sb_tokenizer_token_id(t, SB_TOKEN_SINK);
    const char *s = "a<|endoftext|>b<sink><|endoftext|><|endoftext|> <|endoftext|> x<|endoftext|";
    int32_t *ids;
    size_t n;
    assert_int_equal(sb_tokenizer_encode(t, s, strlen(s), &ids, &n), SB_OK);
    int32_t sp_a = sb_tokenizer_token_id(t, " "), a = 'a', b = 'b';
    int32_t want_prefix[] = {a, eot, b, sink, eot, eot, sp_a, eot};
    assert_true(n > 8);
    assert_memory_equal(ids, want_prefix, sizeof want_prefix);
    for (size_t i = 8; i < n; i++) assert_int_not_equal(ids[i], eot); /* the incomplete one is text */
    char *rest;
    size_t rl;
    assert_int_equal(sb_tokenizer_decode(t, ids + 8, n - 8, &rest, &rl), SB_OK);
    assert_string_equal(rest, " x<|endoftext|");
    free(rest);
    free(ids);
    /* the special's literal text is one id wherever it sits, even inside a word */
    const char *w = "xx<sink>yy";
    assert_int_equal(sb_tokenizer_encode(t, w, strlen(w), &ids, &n), SB_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++) found += ids[i] == sink;
    assert_int_equal(found, 1);
    free(ids);
    sb_tokenizer_free(t);
}

static void test_decode_bad_id(void **state) {
    (void)state;
    sb_tokenizer *t = train_small(512, 1);
    int32_t ids[] = {5, 512};
    char *out;
    size_t n;
    assert_int_equal(sb_tokenizer_decode(t, ids, 2, &out, &n), SB_ERR);
    assert_null(out);
    assert_non_null(strstr(sb_last_error(), "position 1"));
    ids[1] = -1;
    assert_int_equal(sb_tokenizer_decode(t, ids, 2, &out, &n), SB_ERR);
    size_t bl;
    assert_null(sb_tokenizer_token_bytes(t, 512, &bl));
    assert_string_equal(sb_tokenizer_token_bytes(t, 'A', &bl), "A");
    sb_tokenizer_free(t);
}

/* ---- tokenizer.json ---- */

static void test_save_load_identical(void **state) {
    (void)state;
    sb_tokenizer *t = train_small(1024, 2);
    char path[512];
    snprintf(path, sizeof path, "%s", sb_test_dir);
    assert_int_equal(sb_tokenizer_save(t, path), SB_OK); /* a directory: DIR/tokenizer.json */
    sb_tokenizer *u;
    if (sb_tokenizer_load(&u, path) != SB_OK) fail_msg("%s", sb_last_error());
    assert_int_equal(sb_tokenizer_vocab_size(u), sb_tokenizer_vocab_size(t));
    assert_memory_equal(sb_tokenizer_hash(u), sb_tokenizer_hash(t), SB_TOKENIZER_HASH_BYTES);
    /* the hash is SHA-256 of the file's bytes */
    char file[600], *data;
    size_t size;
    snprintf(file, sizeof file, "%s/tokenizer.json", sb_test_dir);
    assert_int_equal(sb_read_file(file, &data, &size), SB_OK);
    uint8_t h[32];
    sb_sha256(data, size, h);
    assert_memory_equal(h, sb_tokenizer_hash(t), 32);

    /* Hugging Face structure */
    cJSON *root = cJSON_Parse(data);
    assert_non_null(root);
    cJSON *model = cJSON_GetObjectItem(root, "model");
    assert_string_equal(cJSON_GetObjectItem(model, "type")->valuestring, "BPE");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "type")->valuestring,
                        "ByteLevel");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "add_prefix_space")));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "decoder"), "type")->valuestring, "ByteLevel");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(model, "vocab")), 1024);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(model, "merges")), 1024 - 256 - 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(model, "vocab"), "\xc4\xa0" "the")->valueint,
                     sb_tokenizer_token_id(t, " the")); /* "Ġthe" */
    cJSON *added = cJSON_GetObjectItem(root, "added_tokens");
    assert_int_equal(cJSON_GetArraySize(added), 2);
    cJSON *a0 = cJSON_GetArrayItem(added, 0);
    assert_string_equal(cJSON_GetObjectItem(a0, "content")->valuestring, SB_TOKEN_ENDOFTEXT);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a0, "special")));
    cJSON_Delete(root);
    free(data);

    rng_state = 99;
    size_t len;
    char *text = make_text(100000, &len);
    int32_t *i1, *i2;
    size_t n1, n2;
    assert_int_equal(sb_tokenizer_encode(t, text, len, &i1, &n1), SB_OK);
    assert_int_equal(sb_tokenizer_encode(u, text, len, &i2, &n2), SB_OK);
    assert_int_equal(n1, n2);
    assert_memory_equal(i1, i2, n1 * sizeof *i1);
    assert_true(n1 < len / 2); /* it compresses */
    free(i1);
    free(i2);
    free(text);
    sb_tokenizer_free(t);
    sb_tokenizer_free(u);
}

static void expect_load_error(const char *name, const char *content, const char *needle) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", sb_test_dir, name);
    if (content) sb_test_write_text(path, content);
    sb_tokenizer *t = (sb_tokenizer *)1;
    sb_clear_error();
    assert_int_equal(sb_tokenizer_load(&t, path), SB_ERR);
    assert_null(t);
    const char *msg = sb_last_error();
    if (!strstr(msg, path) || !strstr(msg, needle) || strchr(msg, '\n'))
        fail_msg("load %s: message [%s] should name the file and contain [%s]", name, msg, needle);
}

/* A minimal valid byte-level file with the given vocab extras and merges. */
static char *mini_json(const char *extra_vocab, const char *merges) {
    char *s = malloc_check(65536);
    size_t n = (size_t)sprintf(s, "{\"added_tokens\":[],\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\","
                                  "\"add_prefix_space\":false},\"model\":{\"type\":\"BPE\",\"vocab\":{");
    for (int b = 0; b < 256; b++) {
        uint32_t cp = sb_bytelevel_char((uint8_t)b);
        char u[8];
        int ul = cp < 0x80 ? (u[0] = (char)cp, 1) : (u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), 2);
        u[ul] = 0;
        if (cp == '"' || cp == '\\') n += (size_t)sprintf(s + n, "\"\\%s\":%d,", u, b);
        else n += (size_t)sprintf(s + n, "\"%s\":%d,", u, b);
    }
    n += (size_t)sprintf(s + n, "%s}, \"merges\":[%s]}}", extra_vocab, merges);
    return s;
}

static void test_load_errors(void **state) {
    (void)state;
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope/tokenizer.json", sb_test_dir);
    sb_tokenizer *t;
    assert_int_equal(sb_tokenizer_load(&t, missing), SB_ERR);
    assert_non_null(strstr(sb_last_error(), missing));

    expect_load_error("bad.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {", "invalid JSON");
    expect_load_error("empty.json", "", "invalid JSON");
    expect_load_error("nomodel.json", "{}", "model");
    expect_load_error("wordpiece.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "WordPiece");
    char *j = mini_json("\"ab\":256", "\"a b\", \"a zz\"");
    expect_load_error("unknown_merge.json", j, "unknown token 'zz'");
    free(j);
    j = mini_json("\"ab\":256", "\"a b\", \"b a\"");
    expect_load_error("merge_not_in_vocab.json", j, "merge 1");
    free(j);
    j = mini_json("\"ab\":1000000000", "");
    expect_load_error("huge_id.json", j, "bad id");
    free(j);
    j = mini_json("\"ab\":-1", "");
    expect_load_error("neg_id.json", j, "bad id");
    free(j);
    j = mini_json("\"ab\":\"x\"", "");
    expect_load_error("str_id.json", j, "bad id");
    free(j);
    j = mini_json("\"ab\":255", "");
    expect_load_error("dup_id.json", j, "twice");
    free(j);
    j = mini_json("\"ab\":256", "\"ab\"");
    expect_load_error("bad_merge.json", j, "merge 0");
    free(j);
    /* a valid one loads, and its truncations fail cleanly */
    j = mini_json("\"ab\":256", "\"a b\"");
    char path[600];
    snprintf(path, sizeof path, "%s/ok.json", sb_test_dir);
    sb_test_write_text(path, j);
    assert_int_equal(sb_tokenizer_load(&t, path), SB_OK);
    int32_t *ids;
    size_t n;
    assert_int_equal(sb_tokenizer_encode(t, "abab", 4, &ids, &n), SB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 256);
    free(ids);
    sb_tokenizer_free(t);
    size_t jl = strlen(j);
    for (size_t cut = 0; cut < jl; cut += 97) {
        char saved = j[cut];
        j[cut] = '\0';
        expect_load_error("trunc.json", j, "invalid JSON");
        j[cut] = saved;
    }
    free(j);
    /* a normalizer we do not implement is refused, not ignored */
    expect_load_error("nfc.json",
                      "{\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
                      "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                      "NFC");
}

/* Added tokens: normalized=false ones are split out first, then normalized=true ones inside
 * the remaining text (Hugging Face's two passes), each leftmost-longest. */
static void test_added_token_passes(void **state) {
    (void)state;
    char *j = mini_json("\"ab\":256, \"<x>\":257, \"<xy>\":258", "");
    const char *added = "\"added_tokens\":[{\"id\":256,\"content\":\"ab\",\"normalized\":true,\"special\":false},"
                        "{\"id\":259,\"content\":\"b\",\"normalized\":false},"
                        "{\"id\":257,\"content\":\"<x>\",\"normalized\":false,\"special\":true},"
                        "{\"id\":258,\"content\":\"<xy>\",\"normalized\":false,\"special\":true}]";
    char *k = malloc_check(strlen(j) + strlen(added) + 1);
    const char *at = strstr(j, "\"added_tokens\":[]");
    assert_non_null(at);
    sprintf(k, "%.*s%s%s", (int)(at - j), j, added, at + strlen("\"added_tokens\":[]"));
    char path[600];
    snprintf(path, sizeof path, "%s/added.json", sb_test_dir);
    sb_test_write_text(path, k);
    sb_tokenizer *t;
    if (sb_tokenizer_load(&t, path) != SB_OK) fail_msg("%s", sb_last_error());
    int32_t *ids;
    size_t n;
    const char *text = "ab<xy>a<x>ab";
    assert_int_equal(sb_tokenizer_encode(t, text, strlen(text), &ids, &n), SB_OK);
    /* "b" (pass 1) wins over the longer "ab" (pass 2); "<xy>" is longest at its position */
    int32_t want[] = {'a', 'b', 258, 'a', 257, 'a', 'b'}; /* "b" is in the vocab: it keeps id 98 */
    assert_int_equal(n, 7);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    assert_true(sb_tokenizer_is_special(t, 257));
    assert_false(sb_tokenizer_is_special(t, 256));
    assert_int_equal(sb_tokenizer_token_id(t, "<xy>"), 258);
    sb_tokenizer_free(t);
    free(k);
    free(j);
}

/* ---- BOS/EOS as the tokenizer says ---- */

/* DIR/tokenizer.json = mini tokenizer (+ "<s>" 256, "</s>" 257) with post_processor post
 * (NULL: none), and DIR/tokenizer_config.json = config when non-NULL. Returns the dir. */
static const char *bos_case(const char *name, const char *post, const char *config) {
    static char dir[600];
    char path[700];
    snprintf(dir, sizeof dir, "%s/%s", sb_test_dir, name);
    mkdir(dir, 0755);
    char *j = mini_json("\"<s>\":256, \"</s>\":257", "");
    char *k = malloc_check(strlen(j) + (post ? strlen(post) : 0) + 32);
    sprintf(k, "{\"post_processor\":%s,%s", post ? post : "null", j + 1);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    sb_test_write_text(path, k);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (config) sb_test_write_text(path, config);
    else unlink(path);
    free(j);
    free(k);
    return dir;
}

static void expect_bos_eos(const char *name, const char *post, const char *config, int32_t bos, int32_t eos) {
    sb_tokenizer *t;
    if (sb_tokenizer_load(&t, bos_case(name, post, config)) != SB_OK) fail_msg("%s: %s", name, sb_last_error());
    if (sb_tokenizer_bos_id(t) != bos || sb_tokenizer_eos_id(t) != eos)
        fail_msg("%s: BOS %d EOS %d, want %d %d", name, sb_tokenizer_bos_id(t), sb_tokenizer_eos_id(t), bos, eos);
    assert_int_equal(sb_tokenizer_adds_bos(t), bos >= 0);
    assert_int_equal(sb_tokenizer_adds_eos(t), eos >= 0);
    sb_tokenizer_free(t);
}

#define TPL_BOS "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}," \
                "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[256]}}}"

static void test_bos_eos_from_post_processor(void **state) {
    (void)state;
    expect_bos_eos("none", NULL, NULL, -1, -1);
    expect_bos_eos("bytelevel", "{\"type\":\"ByteLevel\",\"add_prefix_space\":true}", NULL, -1, -1);
    expect_bos_eos("tpl_bos", TPL_BOS, NULL, 256, -1);
    /* names resolved through the vocab when "ids" is missing; EOS is the last item of "single" */
    expect_bos_eos("tpl_both",
                   "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
                   "{\"Sequence\":{\"id\":\"A\"}},{\"SpecialToken\":{\"id\":\"</s>\"}}],\"special_tokens\":{}}",
                   NULL, 256, 257);
    expect_bos_eos("tpl_eos",
                   "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\"}},"
                   "{\"SpecialToken\":{\"id\":\"</s>\"}}],\"special_tokens\":{\"</s>\":{\"ids\":[257]}}}",
                   NULL, -1, 257);
    expect_bos_eos("bert", "{\"type\":\"BertProcessing\",\"sep\":[\"</s>\",257],\"cls\":[\"<s>\",256]}", NULL, 256, 257);
    expect_bos_eos("roberta", "{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",257],\"cls\":[\"<s>\",256]}", NULL,
                   256, 257);
    expect_bos_eos("seq", "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"ByteLevel\"}," TPL_BOS "]}", NULL, 256, -1);
    /* a post-processor id outside the vocabulary is refused */
    sb_tokenizer *t;
    char bad[1024];
    snprintf(bad, sizeof bad, "%s", TPL_BOS);
    char *at = strstr(bad, "[256]");
    memcpy(at, "[999]", 5);
    assert_int_equal(sb_tokenizer_load(&t, bos_case("bad_id", bad, NULL)), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "outside the vocabulary"));
}

static void test_bos_eos_from_config(void **state) {
    (void)state;
    /* add_bos_token / add_eos_token win over the post-processor */
    expect_bos_eos("cfg_off", TPL_BOS, "{\"add_bos_token\": false}", -1, -1);
    expect_bos_eos("cfg_eos", TPL_BOS, "{\"add_eos_token\": true, \"eos_token\": \"</s>\"}", 256, 257);
    expect_bos_eos("cfg_on", NULL, "{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<s>\"}}", 256, -1);
    expect_bos_eos("cfg_null", TPL_BOS, "{\"add_bos_token\": null, \"bos_token\": \"</s>\"}", 256, -1);
    /* the token is known even when not added */
    sb_tokenizer *t;
    assert_int_equal(sb_tokenizer_load(&t, bos_case("cfg_known", NULL, "{\"bos_token\":\"<s>\",\"add_bos_token\":false}")),
                     SB_OK);
    assert_int_equal(sb_tokenizer_bos_id(t), -1);
    assert_int_equal(sb_tokenizer_bos_token(t), 256);
    assert_int_equal(sb_tokenizer_eos_token(t), -1);
    sb_tokenizer_free(t);
    /* a config that cannot be followed is an error naming it */
    const char *bad[][2] = {{"{\"add_bos_token\": true}", "bos_token"},
                            {"{\"add_eos_token\": true, \"eos_token\": \"<nope>\"}", "eos_token"},
                            {"{\"add_bos_token\": \"yes\"}", "true or false"},
                            {"[1, 2", "not a JSON object"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sb_tokenizer_load(&t, bos_case("cfg_bad", NULL, bad[i][0])), SB_ERR);
        if (!strstr(sb_last_error(), bad[i][1]) || !strstr(sb_last_error(), "tokenizer_config.json"))
            fail_msg("config %s: message '%s' lacks '%s'", bad[i][0], sb_last_error(), bad[i][1]);
    }
    /* what is added survives save + load (without the config), and the hash says so */
    assert_int_equal(sb_tokenizer_load(&t, bos_case("cfg_rt", TPL_BOS, "{\"add_eos_token\":true,\"eos_token\":\"</s>\"}")),
                     SB_OK);
    char out[700];
    snprintf(out, sizeof out, "%s/rt_out", sb_test_dir);
    mkdir(out, 0755);
    assert_int_equal(sb_tokenizer_save(t, out), SB_OK);
    sb_tokenizer *u, *plain;
    assert_int_equal(sb_tokenizer_load(&u, out), SB_OK);
    assert_int_equal(sb_tokenizer_bos_id(u), 256);
    assert_int_equal(sb_tokenizer_eos_id(u), 257);
    assert_memory_equal(sb_tokenizer_hash(t), sb_tokenizer_hash(u), SB_TOKENIZER_HASH_BYTES);
    assert_int_equal(sb_tokenizer_load(&plain, bos_case("cfg_rt2", TPL_BOS, NULL)), SB_OK);
    assert_memory_not_equal(sb_tokenizer_hash(t), sb_tokenizer_hash(plain), SB_TOKENIZER_HASH_BYTES);
    sb_tokenizer_free(plain);
    sb_tokenizer_free(u);
    sb_tokenizer_free(t);
}

/* The committed fixtures: Llama-style adds <s> (id 1), byte-level adds nothing; text streams
 * follow them (one BOS before the whole text, never elsewhere). */
static void test_bos_fixtures_and_text_streams(void **state) {
    (void)state;
    char txt[600];
    snprintf(txt, sizeof txt, "%s/stream.txt", sb_test_dir);
    const char *text = "Once upon a time.\nThe end.\n";
    sb_test_write_text(txt, text);
    const char *names[2] = {"sp_bpe", "bytelevel_bpe"};
    for (int k = 0; k < 2; k++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fixtures/tokenizers/%s", names[k]);
        sb_tokenizer *t;
        if (sb_tokenizer_load(&t, dir) != SB_OK) fail_msg("%s", sb_last_error());
        int32_t want_bos = k == 0 ? 1 : -1;
        assert_int_equal(sb_tokenizer_bos_id(t), want_bos);
        assert_false(sb_tokenizer_adds_eos(t));
        assert_int_equal(sb_tokenizer_bos_token(t), k == 0 ? 1 : 0); /* bytelevel: bos_token <|endoftext|> */
        int32_t *enc, *ids;
        size_t ne;
        int64_t n;
        sb_tokens_added added;
        assert_int_equal(sb_tokenizer_encode(t, text, strlen(text), &enc, &ne), SB_OK);
        assert_int_equal(sb_tokens_load_text_ex(txt, t, 0, 0, &ids, &n, &added), SB_OK);
        int off = want_bos >= 0;
        assert_int_equal(added.bos, off);
        assert_int_equal(added.eos, 0);
        assert_int_equal(n, (int64_t)ne + off);
        if (off) assert_int_equal(ids[0], want_bos);
        assert_memory_equal(ids + off, enc, ne * sizeof *enc);
        free(ids);
        /* max_tokens counts the BOS */
        assert_int_equal(sb_tokens_load_text(txt, t, 0, 3, &ids, &n), SB_OK);
        assert_int_equal(n, 3);
        assert_int_equal(ids[0], off ? want_bos : enc[0]);
        free(ids);
        /* the BOS is checked against the model's vocab like any id */
        if (off) assert_int_equal(sb_tokens_load_text(txt, t, 1, 0, &ids, &n), SB_ERR);
        /* forcing: yes takes the bos_token, no drops it */
        int32_t b, e;
        assert_int_equal(sb_tokens_specials(t, SB_TOKENS_YES, SB_TOKENS_NO, &b, &e), SB_OK);
        assert_int_equal(b, k == 0 ? 1 : 0);
        assert_int_equal(e, -1);
        assert_int_equal(sb_tokens_specials(t, SB_TOKENS_NO, SB_TOKENS_AUTO, &b, &e), SB_OK);
        assert_int_equal(b, -1);
        free(enc);
        sb_tokenizer_free(t);
    }
    /* a tokenizer that adds EOS closes the text with it, unless max_tokens cut the text */
    sb_tokenizer *t;
    assert_int_equal(sb_tokenizer_load(&t, bos_case("eos_stream", TPL_BOS, "{\"add_eos_token\":true,\"eos_token\":\"</s>\"}")),
                     SB_OK);
    int32_t *ids;
    int64_t n;
    sb_tokens_added added;
    assert_int_equal(sb_tokens_load_text_ex(txt, t, 0, 0, &ids, &n, &added), SB_OK);
    assert_true(added.bos && added.eos);
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[n - 1], 257);
    free(ids);
    assert_int_equal(sb_tokens_load_text_ex(txt, t, 0, 4, &ids, &n, &added), SB_OK);
    assert_int_equal(n, 4);
    assert_false(added.eos);
    assert_int_not_equal(ids[3], 257);
    free(ids);
    int32_t b, e;
    sb_tokenizer_free(t);
    assert_int_equal(sb_tokenizer_load(&t, bos_case("no_specials", NULL, NULL)), SB_OK);
    assert_int_equal(sb_tokens_specials(t, SB_TOKENS_YES, SB_TOKENS_AUTO, &b, &e), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "--bos"));
    sb_tokenizer_free(t);
}

/* ---- golden ids from the Python tokenizers library (tests/fixtures/tokenizers/) ---- */

static size_t b64_decode(const char *in, uint8_t *out) {
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = strchr(A, *in);
        if (!p) continue;
        acc = (acc << 6) | (uint32_t)(p - A);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static bool ids_equal(const int32_t *ids, size_t n, const cJSON *want) {
    if ((size_t)cJSON_GetArraySize(want) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != cJSON_GetArrayItem(want, (int)i)->valueint) return false;
    return true;
}

/* Every case of one tokenizer: ids (no specials added), ids with the BOS the post-processor
 * adds, decode == HF decode; invalid UTF-8 cases round-trip exactly, and their U+FFFD
 * replacement (what HF users get) encodes like HF. */
static void golden_one(const cJSON *root, const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fixtures/tokenizers/%s", name);
    const cJSON *g = cJSON_GetObjectItem(root, name);
    assert_non_null(g);
    sb_tokenizer *t;
    if (sb_tokenizer_load(&t, dir) != SB_OK) fail_msg("golden: %s", sb_last_error());
    assert_int_equal(sb_tokenizer_vocab_size(t), cJSON_GetObjectItem(g, "vocab_size")->valueint);
    int32_t bos = sb_tokenizer_bos_id(t);
    const cJSON *c;
    int checked = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        const char *label = cJSON_GetStringValue(cJSON_GetObjectItem(c, "label"));
        const char *b64 = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text_b64"));
        assert_non_null(b64);
        uint8_t *text = malloc_check(strlen(b64));
        size_t len = b64_decode(b64, text);
        int32_t *ids;
        size_t n;
        char *dec;
        size_t dl;
        assert_int_equal(sb_tokenizer_encode(t, (const char *)text, len, &ids, &n), SB_OK);
        assert_int_equal(sb_tokenizer_decode(t, ids, n, &dec, &dl), SB_OK);
        if (cJSON_IsTrue(cJSON_GetObjectItem(c, "invalid_utf8"))) {
            if (sb_tokenizer_get_kind(t) == SB_TOKENIZER_BYTE_LEVEL && (dl != len || memcmp(dec, text, len)))
                fail_msg("golden %s/%s: invalid UTF-8 does not round-trip", name, label);
            free(ids);
            free(dec);
            const char *rep = cJSON_GetStringValue(cJSON_GetObjectItem(c, "text_replace"));
            assert_non_null(rep);
            assert_int_equal(sb_tokenizer_encode(t, rep, strlen(rep), &ids, &n), SB_OK);
            if (!ids_equal(ids, n, cJSON_GetObjectItem(c, "ids_replace")))
                fail_msg("golden %s/%s: replaced text encodes differently", name, label);
        } else {
            if (!ids_equal(ids, n, cJSON_GetObjectItem(c, "ids")))
                fail_msg("golden %s/%s: [%.60s] encodes differently (%zu ids)", name, label, (const char *)text, n);
            const cJSON *ws = cJSON_GetObjectItem(c, "ids_special");
            int off = bos >= 0 ? 1 : 0;
            assert_int_equal(cJSON_GetArraySize(ws), (int)n + off);
            if (bos >= 0) assert_int_equal(cJSON_GetArrayItem(ws, 0)->valueint, bos);
            const char *want = cJSON_GetStringValue(cJSON_GetObjectItem(c, "decoded"));
            /* cJSON ends a string at an escaped NUL: compare up to there */
            size_t wl = want ? strlen(want) : 0, cmp = memchr(dec, 0, dl) ? wl : dl;
            if (!want || (cmp == dl && wl != dl) || cmp > dl || memcmp(want, dec, cmp))
                fail_msg("golden %s/%s: decodes to [%.60s], want [%.60s]", name, label, dec, want ? want : "?");
            free(dec);
        }
        free(ids);
        free(text);
        checked++;
    }
    assert_true(checked >= 30);
    sb_tokenizer_free(t);
}

static void test_golden(void **state) {
    (void)state;
    const char *path = "tests/fixtures/tokenizers/golden.json";
    if (access(path, R_OK) != 0) {
        printf("SKIP golden: %s not present\n", path);
        skip();
    }
    char *data;
    size_t size;
    assert_int_equal(sb_read_file(path, &data, &size), SB_OK);
    cJSON *root = cJSON_Parse(data);
    assert_non_null(root);
    golden_one(root, "bytelevel_bpe");
    golden_one(root, "sp_bpe");
    cJSON_Delete(root);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pretokenize_table),
        cmocka_unit_test(test_train_classic_example),
        cmocka_unit_test(test_train_deterministic_across_threads),
        cmocka_unit_test(test_train_bad_options),
        cmocka_unit_test(test_merge_word_matches_reference),
        cmocka_unit_test(test_roundtrip_random_bytes),
        cmocka_unit_test(test_specials_never_split),
        cmocka_unit_test(test_decode_bad_id),
        cmocka_unit_test(test_save_load_identical),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_added_token_passes),
        cmocka_unit_test(test_bos_eos_from_post_processor),
        cmocka_unit_test(test_bos_eos_from_config),
        cmocka_unit_test(test_bos_fixtures_and_text_streams),
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
