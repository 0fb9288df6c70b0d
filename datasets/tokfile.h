/* The .tok token file: a checksummed, zlib-compressed stream of token ids.
 *
 * Layout (all integers little-endian; full description in datasets/README.md):
 *   header  128 bytes: magic "SBTOK\0\0\1", version, vocab, id width (2 or 4 bytes),
 *           block size, token and block counts, body byte count, sha256 of the
 *           tokenizer (zero if unknown), CRC32 of the header
 *   blocks  each: 16-byte block header (token count, compressed length, CRC32 of the raw
 *           little-endian ids, CRC32 of those 12 bytes) + a zlib stream
 *   trailer 32 bytes: "SBTOKEND", token count, block count, CRC32 of the header, CRC32
 *
 * The writer streams (constant memory) into path.tmp.<pid> and commits with fsync + rename,
 * so a .tok at its final path is always complete. The reader streams in constant memory
 * too; sb_tok_open walks the block headers (cheap seeks) so truncation and a bad structure
 * are reported before any token is returned, and sb_tok_read checks every block's CRC,
 * decompressed size and ids < vocab, and the total count at the end. */
#ifndef SB_TOKFILE_H
#define SB_TOKFILE_H

#include <stdint.h>

#define SB_TOK_VERSION 1
#define SB_TOK_BLOCK_TOKENS 65536          /* tokens per compressed block written */
#define SB_TOK_MAX_BLOCK_TOKENS (1 << 24)  /* largest block a reader accepts (bounds memory) */
#define SB_TOK_HASH_BYTES 32

typedef struct sb_tok_writer sb_tok_writer;
typedef struct sb_tok_reader sb_tok_reader;

/* Start writing `path` for ids in [0, vocab); tok_hash is the tokenizer's sha256 (NULL: all
 * zero). vocab in [1, INT32_MAX]. Returns SB_OK and *out, or an error naming path. */
int sb_tok_writer_open(sb_tok_writer **out, const char *path, int32_t vocab,
                       const uint8_t tok_hash[SB_TOK_HASH_BYTES]);
/* Append n ids. An id outside [0, vocab) is an error and poisons the writer (close then
 * fails and leaves nothing at path). */
int sb_tok_write(sb_tok_writer *w, const int32_t *ids, int64_t n);
/* Tokens written so far. */
int64_t sb_tok_writer_count(const sb_tok_writer *w);
/* Flush, write the trailer and header counts, fsync, rename into place, free w.
 * On any error (including an earlier one) the temp file is removed and an error returned. */
int sb_tok_writer_close(sb_tok_writer *w);
/* Discard everything written and free w (path is left untouched). */
void sb_tok_writer_abort(sb_tok_writer *w);

/* Open and check the structure of a .tok file (header, every block header, trailer). */
int sb_tok_open(sb_tok_reader **out, const char *path);
/* Read up to max ids into buf. Returns the count (0 once all tokens are read and the total
 * matched), or -1 on error (message via sb_last_error(), naming the file and block). */
int64_t sb_tok_read(sb_tok_reader *r, int32_t *buf, int64_t max);
int32_t sb_tok_vocab(const sb_tok_reader *r);
int64_t sb_tok_count(const sb_tok_reader *r);          /* total tokens in the file */
const uint8_t *sb_tok_hash(const sb_tok_reader *r);    /* SB_TOK_HASH_BYTES bytes */
int sb_tok_id_width(const sb_tok_reader *r);           /* 2 or 4 bytes per stored id */
void sb_tok_close(sb_tok_reader *r);

#endif
