/* Tests of datasets/tokfile (.tok format), util/sha256 and datasets/tokens (the loader). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "datasets/tokens.h"
#include "datasets/tokfile.h"
#include "engine/common.h"
#include "tokenizer/textfile.h"
#include "tokenizer/tokenizer.h"
#include "util/sha256.h"
#include "tests/helpers/sb_test.h"

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", sb_test_dir, name); }

static uint64_t rng_state = 0x12345678;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* Deterministic ids in [0, vocab): mostly small (compressible) with some large ones. */
static int32_t *make_ids(int64_t n, int32_t vocab) {
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    for (int64_t i = 0; i < n; i++) {
        uint32_t r = rnd();
        ids[i] = (int32_t)((r & 1) ? r % (uint32_t)vocab : (r >> 8) % (vocab < 50 ? (uint32_t)vocab : 50u));
    }
    if (n > 0) ids[n - 1] = vocab - 1; /* the largest legal id survives the roundtrip */
    return ids;
}

static void write_tok(const char *path, const int32_t *ids, int64_t n, int32_t vocab, const uint8_t *hash) {
    sb_tok_writer *w;
    assert_int_equal(sb_tok_writer_open(&w, path, vocab, hash), SB_OK);
    /* irregular pieces so block boundaries fall inside a write */
    int64_t done = 0, step = 1;
    while (done < n) {
        int64_t take = n - done < step ? n - done : step;
        assert_int_equal(sb_tok_write(w, ids + done, take), SB_OK);
        done += take;
        step = step * 3 + 7;
    }
    assert_int_equal(sb_tok_writer_count(w), n);
    assert_int_equal(sb_tok_writer_close(w), SB_OK);
}

/* Reads the whole file; returns 0 and the ids, or -1 (error in sb_last_error()). */
static int read_all(const char *path, int32_t **ids, int64_t *n, int64_t piece) {
    sb_tok_reader *r;
    *ids = NULL;
    *n = 0;
    if (sb_tok_open(&r, path) != SB_OK) return -1;
    int64_t total = sb_tok_count(r), got = 0;
    int32_t *out = malloc((size_t)(total + 1) * sizeof *out);
    for (;;) {
        int64_t k = sb_tok_read(r, out + got, piece < total + 1 - got ? piece : total + 1 - got);
        if (k < 0) {
            free(out);
            sb_tok_close(r);
            return -1;
        }
        if (k == 0) break;
        got += k;
    }
    sb_tok_close(r);
    *ids = out;
    *n = got;
    return 0;
}

static void test_sha256_vectors(void **state) {
    (void)state;
    struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t d[32];
        char hex[65];
        sb_sha256(v[i].msg, strlen(v[i].msg), d);
        sb_sha256_hex(d, hex);
        assert_string_equal(hex, v[i].hex);
        /* byte-at-a-time updates give the same digest */
        sb_sha256_ctx c;
        sb_sha256_init(&c);
        for (size_t j = 0; v[i].msg[j]; j++) sb_sha256_update(&c, v[i].msg + j, 1);
        sb_sha256_final(&c, d);
        sb_sha256_hex(d, hex);
        assert_string_equal(hex, v[i].hex);
    }
    /* one million 'a' (FIPS 180-2 appendix), in uneven pieces through the file API */
    char path[128];
    path_in(path, sizeof path, "million_a");
    FILE *f = fopen(path, "wb");
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    fwrite(a, 1, 1000000, f);
    fclose(f);
    uint8_t d[32];
    char hex[65];
    assert_int_equal(sb_sha256_file(path, d), SB_OK);
    sb_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    sb_sha256_ctx c;
    sb_sha256_init(&c);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 2 + 1)
        sb_sha256_update(&c, a + off, off + step > 1000000 ? 1000000 - off : step);
    sb_sha256_final(&c, d);
    sb_sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
    assert_int_equal(sb_sha256_file("/nonexistent/sb_sha", d), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/sb_sha"));
}

static void test_roundtrip_sizes_and_widths(void **state) {
    (void)state;
    const int64_t sizes[] = {0, 1, 2, 1000, SB_TOK_BLOCK_TOKENS - 1, SB_TOK_BLOCK_TOKENS, SB_TOK_BLOCK_TOKENS + 1,
                             2 * SB_TOK_BLOCK_TOKENS, 2 * SB_TOK_BLOCK_TOKENS + 17};
    const int32_t vocabs[] = {1, 300, 65535, 65536, 65537, 1 << 20, INT32_MAX};
    uint8_t hash[32];
    for (int i = 0; i < 32; i++) hash[i] = (uint8_t)(i * 7 + 1);
    char path[128];
    path_in(path, sizeof path, "rt.tok");
    for (size_t vi = 0; vi < sizeof vocabs / sizeof vocabs[0]; vi++) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            int32_t vocab = vocabs[vi];
            int64_t n = sizes[si];
            /* the big sizes once per width are enough */
            if (n > SB_TOK_BLOCK_TOKENS + 1 && vocab != 65536 && vocab != INT32_MAX) continue;
            int32_t *ids = make_ids(n, vocab);
            write_tok(path, ids, n, vocab, vi % 2 ? hash : NULL);
            sb_tok_reader *r;
            assert_int_equal(sb_tok_open(&r, path), SB_OK);
            assert_int_equal(sb_tok_vocab(r), vocab);
            assert_int_equal(sb_tok_count(r), n);
            assert_int_equal(sb_tok_id_width(r), vocab <= 65536 ? 2 : 4);
            uint8_t zero[32] = {0};
            assert_memory_equal(sb_tok_hash(r), vi % 2 ? hash : zero, 32);
            sb_tok_close(r);
            const int64_t pieces[] = {1, 1000, 1 << 20};
            for (size_t pi = 0; pi < 3; pi++) {
                if (pieces[pi] == 1 && n > 70000) continue;
                int32_t *back;
                int64_t m;
                assert_int_equal(read_all(path, &back, &m, pieces[pi]), 0);
                assert_int_equal(m, n);
                if (n) assert_memory_equal(back, ids, (size_t)n * sizeof *ids);
                free(back);
            }
            free(ids);
        }
    }
    /* uint16 storage really is 2 bytes per id: incompressible ids take about 2n bytes */
    int64_t n = 50000;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)(rnd() % 65536);
    write_tok(path, ids, n, 65536, NULL);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 2 * n && st.st_size < 2 * n + 2000);
    free(ids);
}

static void test_writer_rejects_bad_ids(void **state) {
    (void)state;
    char path[128], tmp_glob[160];
    path_in(path, sizeof path, "bad.tok");
    /* an existing complete file must survive a failed rewrite */
    int32_t good[3] = {1, 2, 3};
    write_tok(path, good, 3, 10, NULL);
    int32_t cases[][3] = {{1, 10, 2}, {1, -1, 2}, {9, 9, 11}};
    for (int c = 0; c < 3; c++) {
        sb_tok_writer *w;
        assert_int_equal(sb_tok_writer_open(&w, path, 10, NULL), SB_OK);
        assert_int_equal(sb_tok_write(w, cases[c], 3), SB_ERR);
        assert_non_null(strstr(sb_last_error(), path));
        assert_non_null(strstr(sb_last_error(), "outside vocab"));
        assert_int_equal(sb_tok_write(w, good, 1), SB_ERR); /* poisoned */
        assert_int_equal(sb_tok_writer_close(w), SB_ERR);
        int32_t *back;
        int64_t m;
        assert_int_equal(read_all(path, &back, &m, 100), 0);
        assert_int_equal(m, 3);
        assert_memory_equal(back, good, sizeof good);
        free(back);
    }
    sb_tok_writer *w;
    assert_int_equal(sb_tok_writer_open(&w, path, 0, NULL), SB_ERR);
    assert_int_equal(sb_tok_writer_open(&w, "/nonexistent/dir/x.tok", 10, NULL), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/dir/x.tok"));
    /* abort leaves neither the file nor a temp file */
    char path2[128];
    path_in(path2, sizeof path2, "aborted.tok");
    assert_int_equal(sb_tok_writer_open(&w, path2, 10, NULL), SB_OK);
    assert_int_equal(sb_tok_write(w, good, 3), SB_OK);
    sb_tok_writer_abort(w);
    assert_int_equal(access(path2, F_OK), -1);
    snprintf(tmp_glob, sizeof tmp_glob, "ls %s | grep -q tmp", sb_test_dir);
    assert_int_not_equal(system(tmp_glob), 0);
}

static uint8_t *slurp(const char *path, size_t *n) {
    char *data;
    assert_int_equal(sb_read_file(path, &data, n), SB_OK);
    return (uint8_t *)data;
}

/* The error of opening and reading path completely, or NULL if it read fine. */
static const char *read_error(const char *path) {
    int32_t *ids;
    int64_t n;
    if (read_all(path, &ids, &n, 4096) == 0) {
        free(ids);
        return NULL;
    }
    return sb_last_error();
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void set_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* After editing header fields, make the header and trailer checksums consistent again, so
 * the test reaches the semantic check rather than the checksum. */
static void fix_checksums(uint8_t *d, size_t n) {
    set_le32(d + 124, (uint32_t)crc32(0, d, 124));
    uint8_t *t = d + n - 32;
    set_le32(t + 24, le32(d + 124));
    set_le32(t + 28, (uint32_t)crc32(0, t, 28));
}

static void corrupt_fixture(char *path, size_t cap, uint8_t **data, size_t *n) {
    path_in(path, cap, "c.tok");
    int64_t count = 2 * SB_TOK_BLOCK_TOKENS + 1234;
    int32_t *ids = make_ids(count, 1000);
    write_tok(path, ids, count, 1000, NULL);
    free(ids);
    *data = slurp(path, n);
}

static void test_truncation_always_fails(void **state) {
    (void)state;
    char path[128], cut[140];
    uint8_t *d;
    size_t n;
    corrupt_fixture(path, sizeof path, &d, &n);
    snprintf(cut, sizeof cut, "%s.cut.tok", path);
    size_t block1 = 128 + 16 + le32(d + 128 + 4); /* offset of block 1's header */
    int checked = 0;
    for (size_t len = 0; len < n; len += (len < 200 || (len > block1 - 40 && len < block1 + 40) || len > n - 80)
                                             ? 1 : 397) {
        sb_test_write_file(cut, d, len);
        const char *err = read_error(cut);
        assert_non_null(err);
        assert_non_null(strstr(err, cut));
        if (!strstr(err, "truncated")) fail_msg("length %zu: '%s' does not say truncated", len, err);
        checked++;
    }
    assert_true(checked > 400);
    sb_test_write_file(cut, d, block1 + 20);
    assert_non_null(strstr(read_error(cut), "truncated in block 1 of 3"));
    sb_test_write_file(cut, d, n - 1);
    assert_non_null(strstr(read_error(cut), "end mark"));
    /* trailing bytes are not accepted either */
    uint8_t *longer = malloc(n + 5);
    memcpy(longer, d, n);
    memset(longer + n, 0, 5);
    sb_test_write_file(cut, longer, n + 5);
    assert_non_null(strstr(read_error(cut), "5 unexpected bytes"));
    free(longer);
    sb_test_write_file(cut, d, n);
    assert_null(read_error(cut));
    free(d);
}

static void test_flipped_bytes_detected(void **state) {
    (void)state;
    char path[128], bad[140];
    uint8_t *d;
    size_t n;
    corrupt_fixture(path, sizeof path, &d, &n);
    snprintf(bad, sizeof bad, "%s.bad.tok", path);
    int checked = 0;
    for (size_t off = 0; off < n; off += (off < 200 || off > n - 64) ? 1 : 211) {
        d[off] ^= 0xFF;
        sb_test_write_file(bad, d, n);
        const char *err = read_error(bad);
        if (!err) fail_msg("flipping byte %zu of %zu went unnoticed", off, n);
        assert_non_null(strstr(err, bad));
        d[off] ^= 0xFF;
        checked++;
    }
    assert_true(checked > 300);
    /* a flip inside block 1's compressed data is reported as that block */
    size_t block1 = 128 + 16 + le32(d + 128 + 4);
    d[block1 + 16 + 100] ^= 0x01;
    sb_test_write_file(bad, d, n);
    const char *err = read_error(bad);
    assert_non_null(err);
    assert_non_null(strstr(err, "block 1"));
    free(d);
}

static void test_bad_header_fields(void **state) {
    (void)state;
    char path[128], bad[140];
    uint8_t *d;
    size_t n;
    corrupt_fixture(path, sizeof path, &d, &n);
    snprintf(bad, sizeof bad, "%s.bad.tok", path);
    uint8_t *e = malloc(n);

    memcpy(e, d, n);
    e[0] = 'X';
    sb_test_write_file(bad, e, n);
    assert_non_null(strstr(read_error(bad), "bad magic"));

    sb_test_write_file(bad, (const uint8_t *)"hello world, not a token file at all", 36);
    assert_non_null(strstr(read_error(bad), "bad magic"));

    memcpy(e, d, n);
    set_le32(e + 8, 2);
    fix_checksums(e, n);
    sb_test_write_file(bad, e, n);
    assert_non_null(strstr(read_error(bad), "unsupported .tok version 2"));

    memcpy(e, d, n);
    set_le32(e + 8, 2); /* without fixing the checksum */
    sb_test_write_file(bad, e, n);
    assert_non_null(read_error(bad));

    /* ids >= vocab: the data holds ids up to 999; claim vocab 500 */
    memcpy(e, d, n);
    set_le32(e + 16, 500);
    fix_checksums(e, n);
    sb_test_write_file(bad, e, n);
    const char *err = read_error(bad);
    assert_non_null(err);
    assert_non_null(strstr(err, ">= vocab 500"));

    /* vocab that does not fit the stored width */
    memcpy(e, d, n);
    set_le32(e + 16, 70000);
    fix_checksums(e, n);
    sb_test_write_file(bad, e, n);
    assert_non_null(strstr(read_error(bad), "id width"));

    /* count mismatch between header and blocks */
    memcpy(e, d, n);
    set_le32(e + 32, le32(e + 32) + 1);
    fix_checksums(e, n);
    /* keep the trailer's own count consistent with the header so the block sum is what differs */
    set_le32(e + n - 32 + 8, le32(e + 32));
    set_le32(e + n - 32 + 28, (uint32_t)crc32(0, e + n - 32, 28));
    sb_test_write_file(bad, e, n);
    assert_non_null(strstr(read_error(bad), "token count mismatch"));

    /* trailer disagreeing with the header */
    memcpy(e, d, n);
    set_le32(e + n - 32 + 8, le32(e + n - 32 + 8) - 1);
    set_le32(e + n - 32 + 28, (uint32_t)crc32(0, e + n - 32, 28));
    sb_test_write_file(bad, e, n);
    assert_non_null(strstr(read_error(bad), "end mark"));

    /* a huge block count cannot make the reader loop or allocate: it runs off the file */
    memcpy(e, d, n);
    set_le32(e + 40, 0xFFFFFFF0u);
    set_le32(e + 44, 0xFFFFFFFFu);
    fix_checksums(e, n);
    sb_test_write_file(bad, e, n);
    assert_non_null(strstr(read_error(bad), "block 3"));

    assert_non_null(read_error("/nonexistent/sb.tok"));
    assert_non_null(strstr(sb_last_error(), "/nonexistent/sb.tok"));
    free(e);
    free(d);
}

/* A one-block .tok built by hand (independently of the writer), with a chosen raw CRC. */
static void craft_one_block(const char *path, int32_t vocab, const uint16_t *ids, uint32_t n, bool bad_crc) {
    uint8_t raw[4096], comp[8192], h[128] = {0}, bh[16], t[32];
    assert_true(n * 2 <= sizeof raw);
    for (uint32_t i = 0; i < n; i++) {
        raw[2 * i] = (uint8_t)ids[i];
        raw[2 * i + 1] = (uint8_t)(ids[i] >> 8);
    }
    uLongf clen = sizeof comp;
    assert_int_equal(compress2(comp, &clen, raw, n * 2, 9), Z_OK);
    set_le32(bh, n);
    set_le32(bh + 4, (uint32_t)clen);
    set_le32(bh + 8, (uint32_t)crc32(0, raw, n * 2) ^ (bad_crc ? 1u : 0u));
    set_le32(bh + 12, (uint32_t)crc32(0, bh, 12));
    memcpy(h, "SBTOK\0\0\1", 8);
    set_le32(h + 8, 1);
    set_le32(h + 12, 128);
    set_le32(h + 16, (uint32_t)vocab);
    set_le32(h + 20, 2);
    set_le32(h + 24, 65536);
    set_le32(h + 32, n);
    set_le32(h + 40, 1);
    set_le32(h + 48, 16 + (uint32_t)clen);
    set_le32(h + 124, (uint32_t)crc32(0, h, 124));
    memset(t, 0, sizeof t);
    memcpy(t, "SBTOKEND", 8);
    set_le32(t + 8, n);
    set_le32(t + 16, 1);
    set_le32(t + 24, le32(h + 124));
    set_le32(t + 28, (uint32_t)crc32(0, t, 28));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(h, 1, sizeof h, f);
    fwrite(bh, 1, sizeof bh, f);
    fwrite(comp, 1, clen, f);
    fwrite(t, 1, sizeof t, f);
    fclose(f);
}

/* The format as documented (not just whatever the writer does) reads back; the raw-data
 * CRC and the vocab bound are checked even when the zlib stream itself is intact. */
static void test_hand_built_file(void **state) {
    (void)state;
    char path[128];
    path_in(path, sizeof path, "hand.tok");
    uint16_t ids[5] = {0, 1, 299, 7, 42};
    craft_one_block(path, 300, ids, 5, false);
    int32_t *back;
    int64_t n;
    assert_int_equal(read_all(path, &back, &n, 100), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(back[i], ids[i]);
    free(back);
    craft_one_block(path, 300, ids, 5, true);
    assert_non_null(strstr(read_error(path), "checksum mismatch in block 0"));
    craft_one_block(path, 299, ids, 5, false);
    assert_non_null(strstr(read_error(path), "id 299 >= vocab 299 at token 2 (block 0)"));
}

static void test_tokens_loader(void **state) {
    (void)state;
    char tok[128], ids_path[128], txt[128], other[128];
    path_in(tok, sizeof tok, "l.tok");
    path_in(ids_path, sizeof ids_path, "l.ids");
    path_in(txt, sizeof txt, "l.txt");
    path_in(other, sizeof other, "l.bin");
    int64_t count = SB_TOK_BLOCK_TOKENS + 10;
    int32_t *ids = make_ids(count, 700);
    write_tok(tok, ids, count, 700, NULL);
    int32_t *got;
    int64_t n;
    assert_int_equal(sb_tokens_load(tok, 700, 0, &got, &n), SB_OK);
    assert_int_equal(n, count);
    assert_memory_equal(got, ids, (size_t)count * sizeof *ids);
    free(got);
    /* max_tokens reads only a prefix, across a block boundary too */
    const int64_t maxes[] = {1, 5, SB_TOK_BLOCK_TOKENS + 3, count + 100};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sb_tokens_load(tok, 700, maxes[i], &got, &n), SB_OK);
        assert_int_equal(n, maxes[i] < count ? maxes[i] : count);
        assert_memory_equal(got, ids, (size_t)n * sizeof *ids);
        free(got);
    }
    /* a model with a smaller vocab than the ids: error names the file and position */
    assert_int_equal(sb_tokens_load(tok, 600, 0, &got, &n), SB_ERR);
    assert_null(got);
    assert_int_equal(n, 0);
    assert_non_null(strstr(sb_last_error(), tok));
    assert_non_null(strstr(sb_last_error(), "outside the model's vocab"));

    FILE *f = fopen(ids_path, "w");
    fprintf(f, "5 6\n7\t8\n");
    fclose(f);
    assert_int_equal(sb_tokens_load(ids_path, 100, 3, &got, &n), SB_OK);
    assert_int_equal(n, 3);
    assert_int_equal(got[2], 7);
    free(got);

    f = fopen(txt, "w");
    fprintf(f, "some text\n");
    fclose(f);
    assert_int_equal(sb_tokens_load(txt, 100, 0, &got, &n), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "tokenizer needed"));
    assert_non_null(strstr(sb_last_error(), txt));
    assert_int_equal(sb_tokens_load(other, 100, 0, &got, &n), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "unknown token file type"));
    free(ids);
}

typedef struct {
    int32_t *ids;
    size_t n, cap;
    int calls;
    uint64_t last_bytes;
} collect;

static int collect_emit(const int32_t *ids, size_t n, uint64_t bytes_done, void *ctx) {
    collect *c = ctx;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->ids = realloc(c->ids, c->cap * sizeof *c->ids);
    }
    memcpy(c->ids + c->n, ids, n * sizeof *ids);
    c->n += n;
    c->calls++;
    assert_true(bytes_done > c->last_bytes);
    c->last_bytes = bytes_done;
    return SB_OK;
}

/* Encoding a text in pieces must give exactly the ids of encoding it whole. */
static void test_chunked_encoding_matches_whole(void **state) {
    (void)state;
    static const char *lines[] = {"The quick brown fox jumps over the lazy dog.", "  indented line", "",
                                  "<|endoftext|>", "Numbers 12345 and 678.", "\tTabbed\twords", "end.",
                                  "Don't stop; it's fine -- really?", "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 done"};
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (int i = 0; len < cap - 200; i++) {
        const char *l = lines[rnd() % (sizeof lines / sizeof lines[0])];
        len += (size_t)snprintf(text + len, cap - len, "%s%s", l, (i % 7 == 3) ? "\n\n" : "\n");
    }
    const char *special[] = {SB_TOKEN_ENDOFTEXT};
    sb_bpe_train_opts o = {.vocab_size = 400, .special = special, .n_special = 1, .threads = 1};
    sb_tokenizer *tok;
    assert_int_equal(sb_bpe_train(&tok, text, len, &o), SB_OK);
    char path[128];
    path_in(path, sizeof path, "enc.txt");
    sb_test_write_file(path, (const uint8_t *)text, len);
    int32_t *whole;
    size_t n_whole;
    assert_int_equal(sb_tokenizer_encode(tok, text, len, &whole, &n_whole), SB_OK);
    const size_t chunks[] = {1, 64, 1000, 1 << 20};
    for (int i = 0; i < 4; i++) {
        collect c = {0};
        assert_int_equal(sb_tokens_encode_file(path, tok, chunks[i], collect_emit, &c), SB_OK);
        assert_int_equal(c.n, n_whole);
        assert_memory_equal(c.ids, whole, n_whole * sizeof *whole);
        assert_int_equal(c.last_bytes, len);
        if (chunks[i] == 64) assert_true(c.calls > 100); /* it really streamed */
        free(c.ids);
    }
    /* and through the loader, with a prefix limit */
    int32_t *ids;
    int64_t n;
    assert_int_equal(sb_tokens_load_text(path, tok, 400, 0, &ids, &n), SB_OK);
    assert_int_equal(n, (int64_t)n_whole);
    assert_memory_equal(ids, whole, n_whole * sizeof *whole);
    free(ids);
    assert_int_equal(sb_tokens_load_text(path, tok, 400, 10, &ids, &n), SB_OK);
    assert_int_equal(n, 10);
    assert_memory_equal(ids, whole, 10 * sizeof *whole);
    free(ids);
    free(whole);
    sb_tokenizer_free(tok);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_roundtrip_sizes_and_widths),
        cmocka_unit_test(test_writer_rejects_bad_ids),
        cmocka_unit_test(test_truncation_always_fails),
        cmocka_unit_test(test_flipped_bytes_detected),
        cmocka_unit_test(test_bad_header_fields),
        cmocka_unit_test(test_hand_built_file),
        cmocka_unit_test(test_tokens_loader),
        cmocka_unit_test(test_chunked_encoding_matches_whole),
    };
    return cmocka_run_group_tests_name("tokfile", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
