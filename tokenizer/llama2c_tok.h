/* The llama2.c tokenizer (tokenizer.bin / tok512.bin): a SentencePiece-style vocabulary
 * with scores, encoded by greedy best-score pair merging exactly as llama2.c's `encode`.
 *
 * File: int32 max_token_length, then per token: float score, int32 len, len bytes.
 * Ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); ids 3..258 are the byte tokens <0x00>..<0xFF>. */
#ifndef SB_LLAMA2C_TOK_H
#define SB_LLAMA2C_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_L2C_BOS 1
#define SB_L2C_EOS 2

typedef struct sb_l2c_tok sb_l2c_tok;

/* Load every token of the file (its count is the vocabulary size). Errors name path. */
int sb_l2c_tok_load(sb_l2c_tok **t, const char *path);
void sb_l2c_tok_free(sb_l2c_tok *t);
int32_t sb_l2c_tok_vocab_size(const sb_l2c_tok *t);

/* Encode NUL-terminated text: BOS if bos, a " " token when text is non-empty, UTF-8
 * codepoints (unknown ones as bytes + 3), then best-score merges; EOS if eos.
 * *ids is malloc'd (caller frees). */
int sb_l2c_tok_encode(const sb_l2c_tok *t, const char *text, bool bos, bool eos, int32_t **ids, size_t *n);
/* The piece `token` prints after `prev`, as llama2.c's decode: the leading space is dropped
 * after BOS and "<0xNN>" becomes the raw byte. NULL for an out-of-range id. */
const char *sb_l2c_tok_decode(const sb_l2c_tok *t, int32_t prev, int32_t token, size_t *len);

#endif
