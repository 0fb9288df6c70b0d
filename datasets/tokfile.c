/* .tok reader and writer; the format is described in tokfile.h and datasets/README.md. */
#include "datasets/tokfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/common.h"

#define HEADER_BYTES 128
#define BLOCK_HEADER_BYTES 16
#define TRAILER_BYTES 32
/* deflate never expands data by more than ~1032:1, so a block cannot claim more raw bytes than
 * this many times its compressed size; the bound ties every allocation to the real file size */
#define MAX_INFLATE_RATIO 1032

static const uint8_t tok_magic[8] = {'S', 'B', 'T', 'O', 'K', 0, 0, 1};
static const uint8_t end_magic[8] = {'S', 'B', 'T', 'O', 'K', 'E', 'N', 'D'};

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}
static uint32_t crc_of(const uint8_t *p, size_t n) {
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
    /* zlib takes uInt lengths; blocks are far below 4 GiB but stay general */
    while (n > 0) {
        uInt take = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = (uint32_t)crc32(c, p, take);
        p += take;
        n -= take;
    }
    return c;
}
static int id_bytes_for(int32_t vocab) { return vocab <= 65536 ? 2 : 4; }

/* ---------------------------------------------------------------- writer */

struct sb_tok_writer {
    FILE *f;
    char *path, *tmp;
    int32_t vocab;
    int id_bytes;
    uint8_t hash[SB_TOK_HASH_BYTES];
    uint8_t *raw;         /* [SB_TOK_BLOCK_TOKENS * id_bytes] pending block */
    uint8_t *comp;        /* compressBound(raw) */
    size_t comp_cap;
    uint32_t pending;     /* tokens in raw */
    uint64_t n_tokens, n_blocks, body_bytes;
    bool failed;
};

static int writer_fail(sb_tok_writer *w, int status) {
    w->failed = true;
    return status;
}

int sb_tok_writer_open(sb_tok_writer **out, const char *path, int32_t vocab,
                       const uint8_t tok_hash[SB_TOK_HASH_BYTES]) {
    *out = NULL;
    if (vocab < 1) return sb_error("%s: vocab %d must be at least 1", path, (int)vocab);
    sb_tok_writer *w = calloc_check(1, sizeof *w);
    size_t plen = strlen(path);
    w->path = malloc_check(plen + 1);
    memcpy(w->path, path, plen + 1);
    w->tmp = malloc_check(plen + 32);
    snprintf(w->tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    w->vocab = vocab;
    w->id_bytes = id_bytes_for(vocab);
    if (tok_hash) memcpy(w->hash, tok_hash, SB_TOK_HASH_BYTES);
    w->raw = malloc_check((size_t)SB_TOK_BLOCK_TOKENS * (size_t)w->id_bytes);
    w->comp_cap = compressBound((uLong)SB_TOK_BLOCK_TOKENS * (uLong)w->id_bytes);
    w->comp = malloc_check(w->comp_cap);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int e = errno;
        sb_tok_writer_abort(w);
        return sb_error("%s: cannot write: %s", path, strerror(e));
    }
    /* placeholder; the real header is written by close once the counts are known */
    uint8_t zero[HEADER_BYTES] = {0};
    if (fwrite(zero, 1, sizeof zero, w->f) != sizeof zero) {
        int e = errno;
        sb_tok_writer_abort(w);
        return sb_error("%s: write failed: %s", path, strerror(e));
    }
    *out = w;
    return SB_OK;
}

static int flush_block(sb_tok_writer *w) {
    if (w->pending == 0) return SB_OK;
    size_t raw_len = (size_t)w->pending * (size_t)w->id_bytes;
    uLongf comp_len = (uLongf)w->comp_cap;
    if (compress2(w->comp, &comp_len, w->raw, (uLong)raw_len, Z_DEFAULT_COMPRESSION) != Z_OK)
        return writer_fail(w, sb_error("%s: zlib compression failed in block %llu", w->path,
                                       (unsigned long long)w->n_blocks));
    uint8_t bh[BLOCK_HEADER_BYTES];
    put_u32(bh, w->pending);
    put_u32(bh + 4, (uint32_t)comp_len);
    put_u32(bh + 8, crc_of(w->raw, raw_len));
    put_u32(bh + 12, crc_of(bh, 12));
    if (fwrite(bh, 1, sizeof bh, w->f) != sizeof bh || fwrite(w->comp, 1, comp_len, w->f) != comp_len)
        return writer_fail(w, sb_error("%s: write failed: %s", w->path, strerror(errno)));
    w->body_bytes += sizeof bh + comp_len;
    w->n_blocks++;
    w->pending = 0;
    return SB_OK;
}

int sb_tok_write(sb_tok_writer *w, const int32_t *ids, int64_t n) {
    if (w->failed) return sb_error("%s: writer already failed", w->path);
    if (n < 0) return writer_fail(w, sb_error("%s: negative token count %lld", w->path, (long long)n));
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= w->vocab)
            return writer_fail(w, sb_error("%s: token %lld has id %d outside vocab [0, %d)", w->path,
                                           (long long)(w->n_tokens + (uint64_t)i), (int)id, (int)w->vocab));
        uint8_t *p = w->raw + (size_t)w->pending * (size_t)w->id_bytes;
        if (w->id_bytes == 2) {
            p[0] = (uint8_t)id;
            p[1] = (uint8_t)(id >> 8);
        } else {
            put_u32(p, (uint32_t)id);
        }
        if (++w->pending == SB_TOK_BLOCK_TOKENS && flush_block(w) != SB_OK) return SB_ERR;
    }
    w->n_tokens += (uint64_t)n;
    return SB_OK;
}

int64_t sb_tok_writer_count(const sb_tok_writer *w) { return (int64_t)w->n_tokens; }

static void writer_free(sb_tok_writer *w) {
    free(w->raw);
    free(w->comp);
    free(w->path);
    free(w->tmp);
    free(w);
}

void sb_tok_writer_abort(sb_tok_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->tmp);
    writer_free(w);
}

static void encode_header(uint8_t h[HEADER_BYTES], uint32_t vocab, uint32_t id_bytes, uint32_t block_tokens,
                          uint64_t n_tokens, uint64_t n_blocks, uint64_t body_bytes,
                          const uint8_t hash[SB_TOK_HASH_BYTES]) {
    memset(h, 0, HEADER_BYTES);
    memcpy(h, tok_magic, 8);
    put_u32(h + 8, SB_TOK_VERSION);
    put_u32(h + 12, HEADER_BYTES);
    put_u32(h + 16, vocab);
    put_u32(h + 20, id_bytes);
    put_u32(h + 24, block_tokens);
    put_u32(h + 28, 0); /* flags, reserved */
    put_u64(h + 32, n_tokens);
    put_u64(h + 40, n_blocks);
    put_u64(h + 48, body_bytes);
    memcpy(h + 56, hash, SB_TOK_HASH_BYTES);
    put_u32(h + 124, crc_of(h, 124));
}

int sb_tok_writer_close(sb_tok_writer *w) {
    if (!w) return sb_error("sb_tok_writer_close: no writer");
    int rc = SB_OK;
    if (w->failed) {
        /* keep the message of the original failure, but name the outcome */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        rc = sb_error("%s (nothing written)", msg);
        sb_tok_writer_abort(w);
        return rc;
    }
    if ((rc = flush_block(w)) != SB_OK) {
        sb_tok_writer_abort(w);
        return rc;
    }
    uint8_t h[HEADER_BYTES], t[TRAILER_BYTES];
    encode_header(h, (uint32_t)w->vocab, (uint32_t)w->id_bytes, SB_TOK_BLOCK_TOKENS, w->n_tokens, w->n_blocks,
                  w->body_bytes, w->hash);
    memcpy(t, end_magic, 8);
    put_u64(t + 8, w->n_tokens);
    put_u64(t + 16, w->n_blocks);
    put_u32(t + 24, get_u32(h + 124));
    put_u32(t + 28, crc_of(t, 28));
    bool ok = fwrite(t, 1, sizeof t, w->f) == sizeof t && fseeko(w->f, 0, SEEK_SET) == 0 &&
              fwrite(h, 1, sizeof h, w->f) == sizeof h && fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    int e = errno;
    if (fclose(w->f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    w->f = NULL;
    if (!ok) {
        rc = sb_error("%s: write failed: %s", w->path, strerror(e));
        sb_tok_writer_abort(w);
        return rc;
    }
    if (rename(w->tmp, w->path) != 0) {
        rc = sb_error("%s: cannot rename into place: %s", w->path, strerror(errno));
        sb_tok_writer_abort(w);
        return rc;
    }
    sb_fsync_dir(w->path);
    writer_free(w);
    return SB_OK;
}

/* ---------------------------------------------------------------- reader */

struct sb_tok_reader {
    FILE *f;
    char *path;
    int32_t vocab;
    int id_bytes;
    uint32_t block_tokens;
    uint64_t n_tokens, n_blocks;
    uint64_t file_size;      /* at open; bounds every buffer */
    uint8_t hash[SB_TOK_HASH_BYTES];
    uint64_t block;          /* next block to decode */
    uint64_t read;           /* tokens returned so far */
    uint8_t *raw, *comp;
    size_t raw_cap, comp_cap;
    uint32_t cur_n, cur_pos; /* tokens in the decoded block, next one to return */
    bool failed;
};

static int read_at(FILE *f, uint64_t off, void *buf, size_t n) {
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) return -1;
    return fread(buf, 1, n, f) == n ? 0 : -1;
}

/* Checks one block header; returns SB_OK or an error naming the block. */
static int check_block_header(const sb_tok_reader *r, const uint8_t bh[BLOCK_HEADER_BYTES], uint64_t b,
                              uint32_t *count, uint32_t *comp_len) {
    if (get_u32(bh + 12) != crc_of(bh, 12))
        return sb_error("%s: corrupt header of block %llu (checksum mismatch)", r->path, (unsigned long long)b);
    *count = get_u32(bh);
    *comp_len = get_u32(bh + 4);
    if (*count == 0 || *count > r->block_tokens)
        return sb_error("%s: block %llu holds %u tokens (block size %u)", r->path, (unsigned long long)b, *count,
                        r->block_tokens);
    uint64_t raw_len = (uint64_t)*count * (uint64_t)r->id_bytes;
    if (*comp_len == 0 || raw_len > (uint64_t)*comp_len * MAX_INFLATE_RATIO + 64)
        return sb_error("%s: block %llu has an impossible compressed length %u", r->path, (unsigned long long)b,
                        *comp_len);
    return SB_OK;
}

int sb_tok_open(sb_tok_reader **out, const char *path) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sb_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sb_error("%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    sb_tok_reader *r = calloc_check(1, sizeof *r);
    r->f = f;
    size_t plen = strlen(path);
    r->path = malloc_check(plen + 1);
    memcpy(r->path, path, plen + 1);

    int rc = SB_ERR;
    uint8_t h[HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, f);
    size_t cmp = got < 8 ? got : 8;
    if (memcmp(h, tok_magic, cmp) != 0) {
        sb_error("%s: not a .tok file (bad magic)", path);
        goto fail;
    }
    if (got < sizeof h) {
        sb_error("%s: truncated in the header (%zu of %d bytes)", path, got, HEADER_BYTES);
        goto fail;
    }
    uint32_t version = get_u32(h + 8);
    if (version != SB_TOK_VERSION) {
        sb_error("%s: unsupported .tok version %u (this build reads %d)", path, version, SB_TOK_VERSION);
        goto fail;
    }
    if (get_u32(h + 124) != crc_of(h, 124)) {
        sb_error("%s: corrupt header (checksum mismatch)", path);
        goto fail;
    }
    uint32_t vocab = get_u32(h + 16), id_bytes = get_u32(h + 20), block_tokens = get_u32(h + 24);
    if (get_u32(h + 12) != HEADER_BYTES || get_u32(h + 28) != 0) {
        sb_error("%s: unsupported header layout", path);
        goto fail;
    }
    if (vocab < 1 || vocab > INT32_MAX) {
        sb_error("%s: bad vocab size %u", path, vocab);
        goto fail;
    }
    if (id_bytes != (uint32_t)id_bytes_for((int32_t)vocab)) {
        sb_error("%s: id width %u does not match vocab %u", path, id_bytes, vocab);
        goto fail;
    }
    if (block_tokens < 1 || block_tokens > SB_TOK_MAX_BLOCK_TOKENS) {
        sb_error("%s: bad block size %u", path, block_tokens);
        goto fail;
    }
    r->vocab = (int32_t)vocab;
    r->id_bytes = (int)id_bytes;
    r->block_tokens = block_tokens;
    r->n_tokens = get_u64(h + 32);
    r->n_blocks = get_u64(h + 40);
    r->file_size = size;
    uint64_t body_bytes = get_u64(h + 48);
    memcpy(r->hash, h + 56, SB_TOK_HASH_BYTES);

    /* Walk the block headers: finds truncation (and where) before any token is returned. The
     * loop is bounded by the file size, whatever n_blocks claims. */
    uint64_t pos = HEADER_BYTES, total = 0;
    for (uint64_t b = 0; b < r->n_blocks; b++) {
        uint8_t bh[BLOCK_HEADER_BYTES];
        if (pos + BLOCK_HEADER_BYTES > size || read_at(f, pos, bh, sizeof bh) != 0) {
            sb_error("%s: truncated in block %llu of %llu", path, (unsigned long long)b,
                     (unsigned long long)r->n_blocks);
            goto fail;
        }
        uint32_t count, comp_len;
        if (check_block_header(r, bh, b, &count, &comp_len) != SB_OK) goto fail;
        if (pos + BLOCK_HEADER_BYTES + comp_len > size) {
            sb_error("%s: truncated in block %llu of %llu", path, (unsigned long long)b,
                     (unsigned long long)r->n_blocks);
            goto fail;
        }
        pos += BLOCK_HEADER_BYTES + comp_len;
        total += count;
    }
    if (pos - HEADER_BYTES != body_bytes) {
        sb_error("%s: blocks span %llu bytes but the header says %llu", path,
                 (unsigned long long)(pos - HEADER_BYTES), (unsigned long long)body_bytes);
        goto fail;
    }
    if (total != r->n_tokens) {
        sb_error("%s: token count mismatch: blocks hold %llu, header says %llu", path,
                 (unsigned long long)total, (unsigned long long)r->n_tokens);
        goto fail;
    }
    uint8_t t[TRAILER_BYTES];
    if (pos + TRAILER_BYTES > size || read_at(f, pos, t, sizeof t) != 0) {
        sb_error("%s: truncated: end mark missing (incomplete file)", path);
        goto fail;
    }
    if (memcmp(t, end_magic, 8) != 0 || get_u32(t + 28) != crc_of(t, 28) || get_u64(t + 8) != r->n_tokens ||
        get_u64(t + 16) != r->n_blocks || get_u32(t + 24) != get_u32(h + 124)) {
        sb_error("%s: corrupt end mark", path);
        goto fail;
    }
    if (pos + TRAILER_BYTES != size) {
        sb_error("%s: %llu unexpected bytes after the end mark", path,
                 (unsigned long long)(size - pos - TRAILER_BYTES));
        goto fail;
    }
    if (fseeko(f, HEADER_BYTES, SEEK_SET) != 0) {
        sb_error("%s: seek failed", path);
        goto fail;
    }
    *out = r;
    return SB_OK;
fail:
    sb_tok_close(r);
    return rc;
}

static int64_t reader_fail(sb_tok_reader *r) {
    r->failed = true;
    return -1;
}

static int grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need <= *cap) return SB_OK;
    uint8_t *p = realloc(*buf, need);
    if (!p) return SB_ERR;
    *buf = p;
    *cap = need;
    return SB_OK;
}

static int decode_block(sb_tok_reader *r) {
    uint64_t b = r->block;
    unsigned long long bu = (unsigned long long)b;
    uint8_t bh[BLOCK_HEADER_BYTES];
    if (fread(bh, 1, sizeof bh, r->f) != sizeof bh)
        return sb_error("%s: truncated in block %llu of %llu", r->path, bu, (unsigned long long)r->n_blocks);
    uint32_t count, comp_len;
    /* the file was checked at open, but it may have changed underneath us */
    if (check_block_header(r, bh, b, &count, &comp_len) != SB_OK) return SB_ERR;
    if (comp_len > r->file_size)
        return sb_error("%s: truncated in block %llu of %llu", r->path, bu, (unsigned long long)r->n_blocks);
    size_t raw_len = (size_t)count * (size_t)r->id_bytes;
    if (grow(&r->comp, &r->comp_cap, comp_len) || grow(&r->raw, &r->raw_cap, raw_len))
        return sb_error("%s: out of memory for block %llu", r->path, bu);
    if (fread(r->comp, 1, comp_len, r->f) != comp_len)
        return sb_error("%s: truncated in block %llu of %llu", r->path, bu, (unsigned long long)r->n_blocks);
    uLongf dest_len = (uLongf)raw_len;
    uLong src_len = comp_len;
    int zrc = uncompress2(r->raw, &dest_len, r->comp, &src_len);
    if (zrc != Z_OK || dest_len != raw_len || src_len != comp_len)
        return sb_error("%s: corrupt data in block %llu (%s)", r->path, bu,
                        zrc == Z_OK ? "wrong decompressed size" : zrc == Z_BUF_ERROR ? "decompressed size mismatch"
                                                                                      : "zlib stream damaged");
    if (crc_of(r->raw, raw_len) != get_u32(bh + 8))
        return sb_error("%s: checksum mismatch in block %llu", r->path, bu);
    if (r->id_bytes == 4 || r->vocab < 65536) {
        for (uint32_t i = 0; i < count; i++) {
            uint32_t id = r->id_bytes == 2 ? (uint32_t)r->raw[2 * i] | (uint32_t)r->raw[2 * i + 1] << 8
                                           : get_u32(r->raw + 4 * (size_t)i);
            if (id >= (uint32_t)r->vocab)
                return sb_error("%s: id %u >= vocab %d at token %llu (block %llu)", r->path, id, (int)r->vocab,
                                (unsigned long long)(r->read + i), bu);
        }
    }
    r->cur_n = count;
    r->cur_pos = 0;
    r->block++;
    return SB_OK;
}

int64_t sb_tok_read(sb_tok_reader *r, int32_t *buf, int64_t max) {
    if (r->failed) return -1;
    if (max < 0) {
        sb_error("%s: negative read size", r->path);
        return reader_fail(r);
    }
    int64_t got = 0;
    while (got < max) {
        if (r->cur_pos == r->cur_n) {
            if (r->block == r->n_blocks) break;
            if (decode_block(r) != SB_OK) return reader_fail(r);
        }
        uint32_t avail = r->cur_n - r->cur_pos;
        uint32_t take = (int64_t)avail < max - got ? avail : (uint32_t)(max - got);
        const uint8_t *p = r->raw + (size_t)r->cur_pos * (size_t)r->id_bytes;
        if (r->id_bytes == 2)
            for (uint32_t i = 0; i < take; i++) buf[got + i] = (int32_t)((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8);
        else
            for (uint32_t i = 0; i < take; i++) buf[got + i] = (int32_t)get_u32(p + 4 * (size_t)i);
        got += take;
        r->cur_pos += take;
        r->read += take;
    }
    if (got == 0 && max > 0 && r->read != r->n_tokens) {
        sb_error("%s: token count mismatch: read %llu, header says %llu", r->path, (unsigned long long)r->read,
                 (unsigned long long)r->n_tokens);
        return reader_fail(r);
    }
    return got;
}

int32_t sb_tok_vocab(const sb_tok_reader *r) { return r->vocab; }
int64_t sb_tok_count(const sb_tok_reader *r) { return (int64_t)r->n_tokens; }
const uint8_t *sb_tok_hash(const sb_tok_reader *r) { return r->hash; }
int sb_tok_id_width(const sb_tok_reader *r) { return r->id_bytes; }

void sb_tok_close(sb_tok_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    free(r->raw);
    free(r->comp);
    free(r->path);
    free(r);
}
