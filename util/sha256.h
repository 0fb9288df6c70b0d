/* SHA-256 (FIPS 180-4), streaming. Used to fingerprint tokenizers and text files. */
#ifndef SB_SHA256_H
#define SB_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t buf[64];
    size_t buf_len;
} sb_sha256_ctx;

void sb_sha256_init(sb_sha256_ctx *c);
void sb_sha256_update(sb_sha256_ctx *c, const void *data, size_t n);
void sb_sha256_final(sb_sha256_ctx *c, uint8_t out[32]);
/* One-shot digest of a buffer. */
void sb_sha256(const void *data, size_t n, uint8_t out[32]);
/* Digest of a whole file, read in pieces. Error names the path. */
int sb_sha256_file(const char *path, uint8_t out[32]);
/* 64 lowercase hex digits + NUL. */
void sb_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
