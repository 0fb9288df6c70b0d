/* Text files as token streams: a .txt encoded with a tokenizer.json tokenizer, in pieces so
 * memory stays bounded, with the BOS/EOS the tokenizer adds. The id formats (.tok, .ids) are
 * datasets/tokens.h; the two meet only in the CLI, which knows which one a path is. */
#ifndef SB_TEXTFILE_H
#define SB_TEXTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* The ids of the text file at path, encoded with tok, with the BOS/EOS the tokenizer adds
 * (sb_tokenizer_adds_bos/eos) once around the whole file, as Hugging Face's encode(book) gives: Llama/Mistral streams start with <s>, byte-level ones
 * (ours, GPT-NeoX, Falcon, MPT) get nothing. Documents inside the text are not separated by
 * anything but what the text holds (our corpora: a literal <|endoftext|> line).
 * vocab > 0 rejects ids >= vocab (naming the file and position); max_tokens > 0 keeps only the
 * first max_tokens tokens (<= 0: all). On success *ids is malloc'd (caller frees; may be
 * non-NULL with *n == 0); on error *ids is NULL, *n is 0 and the message names the file. */
int sb_tokens_load_text(const char *path, const sb_tokenizer *tok, int32_t vocab,
                        int64_t max_tokens, int32_t **ids, int64_t *n);

/* What sb_tokens_load_text_ex put around the text: 1 where it added that token, else 0. The
 * added ids stand for no text byte (bits per byte must not count them). */
typedef struct {
    int bos, eos;
} sb_tokens_added;
int sb_tokens_load_text_ex(const char *path, const sb_tokenizer *tok, int32_t vocab, int64_t max_tokens,
                           int32_t **ids, int64_t *n, sb_tokens_added *added);

/* The BOS/EOS to put around an encoded text for a request: SB_TOKENS_AUTO (as the tokenizer
 * says), SB_TOKENS_NO, SB_TOKENS_YES (the tokenizer's BOS/EOS token even if encoding adds
 * none; a usage error naming --bos/--eos when it has none). *bos / *eos: the id, or -1. */
enum { SB_TOKENS_NO = 0, SB_TOKENS_YES = 1, SB_TOKENS_AUTO = 2 };
int sb_tokens_specials(const sb_tokenizer *tok, int bos_mode, int eos_mode, int32_t *bos, int32_t *eos);

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
int sb_tokens_encode_file(const char *path, const sb_tokenizer *tok, size_t chunk_bytes,
                          sb_tokens_sink emit, void *ctx);

#endif
