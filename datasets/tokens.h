/* One loader for the token-id files, used by every command that reads tokens.
 *
 * Dispatches on the extension: .tok (datasets/tokfile.h) and .ids (datasets/ids.h: decimal
 * ids separated by whitespace). A .txt needs a tokenizer: tokenizer/textfile.h encodes it.
 * vocab > 0 rejects ids >= vocab (naming the file and position); max_tokens > 0 reads only
 * the first max_tokens tokens (<= 0: all). On success *ids is malloc'd (caller frees; may be
 * non-NULL with *n == 0); on error *ids is NULL, *n is 0 and the message names the file. */
#ifndef SB_TOKENS_H
#define SB_TOKENS_H

#include <stdint.h>

int sb_tokens_load(const char *path, int32_t vocab, int64_t max_tokens, int32_t **ids, int64_t *n);

#endif
