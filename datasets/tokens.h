/* One loader for token streams, used by every command that reads tokens.
 *
 * Dispatches on the extension: .tok (datasets/tokfile.h), .ids (datasets/ids.h: decimal
 * ids separated by whitespace) and .txt (needs a tokenizer: use sb_tokens_load_text).
 * vocab > 0 rejects ids >= vocab (naming the file and position); max_tokens > 0 reads only
 * the first max_tokens tokens (<= 0: all). On success *ids is malloc'd (caller frees; may be
 * non-NULL with *n == 0); on error *ids is NULL, *n is 0 and the message names the file. */
#ifndef SB_TOKENS_H
#define SB_TOKENS_H

#include <stddef.h>
#include <stdint.h>

struct sb_tokenizer;

int sb_tokens_load(const char *path, int32_t vocab, int64_t max_tokens, int32_t **ids, int64_t *n);

/* Same, but a .txt file is encoded with tok (the other formats ignore tok; tok may be NULL). */
int sb_tokens_load_text(const char *path, const struct sb_tokenizer *tok, int32_t vocab,
                        int64_t max_tokens, int32_t **ids, int64_t *n);

/* Receives the ids of one piece of text; bytes_done counts the input consumed so far.
 * Return SB_OK to go on, SB_ERR (with sb_error) to stop, or SB_TOKENS_STOP to stop early
 * without an error (e.g. enough tokens). */
#define SB_TOKENS_STOP 100
typedef int (*sb_tokens_sink)(const int32_t *ids, size_t n, uint64_t bytes_done, void *ctx);

/* Encode the text file at path in pieces of about chunk_bytes (0: 4 MiB), cutting only after a
 * lone newline between a visible ASCII character and an ASCII letter or digit, where a byte-level
 * pre-tokenizer splits anyway, so the ids equal those of encoding the whole file at once.
 * Memory stays O(chunk_bytes).
 * If the tokenizer is not byte-level, or the first piece does not decode back to itself (a
 * normalizer is at work), the whole file is encoded at once instead. The ids reach emit in
 * order. */
int sb_tokens_encode_file(const char *path, const struct sb_tokenizer *tok, size_t chunk_bytes,
                          sb_tokens_sink emit, void *ctx);

#endif
