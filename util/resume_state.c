#include "util/resume_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "engine/common.h"

#define RESUME_MAGIC "SBRESUM1"
#define RESUME_CMD_LEN 16
/* magic[8] command[16] hash[32] payload_len u64 | payload | crc32 u32 (little-endian host) */
#define RESUME_HEADER (8 + RESUME_CMD_LEN + 32 + 8)

void sb_resume_hash_init(sb_resume_hash *h, const char *command) {
    sb_sha256_init(&h->sha);
    sb_resume_hash_str(h, "command", command);
}

void sb_resume_hash_str(sb_resume_hash *h, const char *key, const char *value) {
    /* lengths in front so ("ab","c") and ("a","bc") hash differently */
    uint64_t lens[2] = {strlen(key), value ? strlen(value) : UINT64_MAX};
    sb_sha256_update(&h->sha, lens, sizeof lens);
    sb_sha256_update(&h->sha, key, lens[0]);
    if (value) sb_sha256_update(&h->sha, value, lens[1]);
}

void sb_resume_hash_i64(sb_resume_hash *h, const char *key, int64_t value) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)value);
    sb_resume_hash_str(h, key, buf);
}

void sb_resume_hash_final(sb_resume_hash *h, uint8_t out[32]) { sb_sha256_final(&h->sha, out); }

int sb_resume_path(char *buf, size_t cap, const char *output) {
    if (snprintf(buf, cap, "%s.resume", output) >= (int)cap) return sb_error("%s: path too long", output);
    return SB_OK;
}

int sb_resume_save(const char *path, const char *command, const uint8_t hash[32], const void *payload, size_t n) {
    size_t total;
    if (!sb_add_size(RESUME_HEADER + 4, n, &total)) return sb_error("%s: resume state too large", path);
    unsigned char *buf = malloc(total);
    if (!buf) return sb_error("%s: out of memory for the resume state", path);
    memcpy(buf, RESUME_MAGIC, 8);
    memset(buf + 8, 0, RESUME_CMD_LEN);
    strncpy((char *)buf + 8, command, RESUME_CMD_LEN - 1);
    memcpy(buf + 8 + RESUME_CMD_LEN, hash, 32);
    uint64_t len = n;
    memcpy(buf + 8 + RESUME_CMD_LEN + 32, &len, 8);
    if (n) memcpy(buf + RESUME_HEADER, payload, n);
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    /* crc32() takes uInt lengths: feed large payloads in pieces */
    for (size_t off = 0; off < RESUME_HEADER + n;) {
        size_t piece = RESUME_HEADER + n - off > (1u << 30) ? (1u << 30) : RESUME_HEADER + n - off;
        crc = (uint32_t)crc32(crc, buf + off, (uInt)piece);
        off += piece;
    }
    memcpy(buf + RESUME_HEADER + n, &crc, 4);
    int rc = sb_write_file_atomic(path, buf, total);
    free(buf);
    return rc;
}

int sb_resume_load(const char *path, const char *command, const uint8_t hash[32], void **payload, size_t *n,
                   int *missing) {
    *payload = NULL;
    *n = 0;
    *missing = 0;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        *missing = 1;
        return sb_error("%s: no saved state to resume from", path);
    }
    char *data;
    size_t size;
    int rc = sb_read_file(path, &data, &size);
    if (rc) return rc;
    uint64_t len = 0;
    if (size >= RESUME_HEADER) memcpy(&len, data + 8 + RESUME_CMD_LEN + 32, 8);
    if (size < RESUME_HEADER + 4 || memcmp(data, RESUME_MAGIC, 8) != 0 || len != size - RESUME_HEADER - 4) {
        free(data);
        return sb_error("%s: not a complete resume state (truncated or another format)", path);
    }
    uint32_t crc = (uint32_t)crc32(0L, NULL, 0), want;
    for (size_t off = 0; off < size - 4;) {
        size_t piece = size - 4 - off > (1u << 30) ? (1u << 30) : size - 4 - off;
        crc = (uint32_t)crc32(crc, (const unsigned char *)data + off, (uInt)piece);
        off += piece;
    }
    memcpy(&want, data + size - 4, 4);
    if (crc != want) {
        free(data);
        return sb_error("%s: resume state is corrupt (checksum mismatch)", path);
    }
    char cmd[RESUME_CMD_LEN + 1] = {0};
    memcpy(cmd, data + 8, RESUME_CMD_LEN);
    if (strcmp(cmd, command) != 0) {
        free(data);
        return sb_error("%s: resume state of 'sinkbench %s', not of 'sinkbench %s'", path, cmd, command);
    }
    if (memcmp(data + 8 + RESUME_CMD_LEN, hash, 32) != 0) {
        free(data);
        return sb_error("%s: saved by a run with other inputs or options (model, data, policy, mode, tokens, "
                        "chunk or threads differ); resume with the same command, or delete the file to start over",
                        path);
    }
    /* move the payload to the front of the buffer we already own */
    memmove(data, data + RESUME_HEADER, (size_t)len);
    *payload = data;
    *n = (size_t)len;
    return SB_OK;
}
