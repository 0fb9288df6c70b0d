/* Partial state of an interrupted command, for --resume.
 *
 * One small file "<output>.resume": magic, the command, a SHA-256 of everything the result
 * depends on (model and data digests, policy, mode, sizes, threads), a payload the command
 * defines, and a CRC-32 over all of it. Written atomically (temp, fsync, rename, fsync of the
 * directory), so a crash during the save leaves the previous state or none, never half of
 * one. A resume whose inputs hash differently is refused: its continuation would not be
 * the run that was interrupted. */
#ifndef SB_RESUME_STATE_H
#define SB_RESUME_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/sha256.h"

/* Build the inputs hash: add each input as "key=value" (the order is part of the hash). */
typedef struct {
    sb_sha256_ctx sha;
} sb_resume_hash;
void sb_resume_hash_init(sb_resume_hash *h, const char *command);
void sb_resume_hash_str(sb_resume_hash *h, const char *key, const char *value);
void sb_resume_hash_i64(sb_resume_hash *h, const char *key, int64_t value);
void sb_resume_hash_final(sb_resume_hash *h, uint8_t out[32]);

/* "<output>.resume" into buf (error when it does not fit). */
int sb_resume_path(char *buf, size_t cap, const char *output);
/* Save payload[n] for command under hash. */
int sb_resume_save(const char *path, const char *command, const uint8_t hash[32], const void *payload, size_t n);
/* Load a state saved by sb_resume_save. Returns SB_OK (payload malloc'ed, free it), or an
 * error naming the file: missing (then *missing = 1), corrupt or truncated, another
 * command's, or saved for other inputs. */
int sb_resume_load(const char *path, const char *command, const uint8_t hash[32], void **payload, size_t *n,
                   int *missing);

#endif
