/* One handle for the two tokenizers a model can come with: a Hugging Face tokenizer.json
 * (tokenizer/tokenizer.h) or a llama2.c tokenizer .bin (tokenizer/llama2c_tok.h). The commands
 * encode prompts, print generated tokens and score text through it without asking which kind
 * they hold; what differs between the kinds (BOS handling, the token a text ends with, how a
 * piece prints after the previous token) is answered here.
 *
 * A NULL handle stands for "no tokenizer" where a command can run without one (stream's
 * free-running soak): pieces are then NULL and the specials are the model config's. */
#ifndef SB_TEXT_TOK_H
#define SB_TEXT_TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_text_tok sb_text_tok;

/* path ending in .bin: a llama2.c tokenizer; anything else: a tokenizer.json or a directory
 * holding one. Errors name path. */
int sb_text_tok_load(sb_text_tok **t, const char *path);
/* The tokenizer that encodes the text file data for model: DIR/tokenizer.json beside a model
 * directory; for a llama2.c MODEL.bin, tokenizer.bin or else the first tok*.bin beside it.
 * The error when there is none names data and where the tokenizer was looked for. */
int sb_text_tok_open_model(sb_text_tok **t, const char *model, const char *data);
void sb_text_tok_free(sb_text_tok *t);

/* The model's vocabulary must hold every id the tokenizer produces (a llama2.c tokenizer is
 * the model's own vocabulary: the sizes must be equal). The error names the tokenizer file. */
int sb_text_tok_check_vocab(const sb_text_tok *t, int32_t model_vocab);

/* The token a text starts with: llama2.c's BOS; the BOS a tokenizer.json adds, else
 * model_bos (the config's bos_token_id; -1: none). */
int32_t sb_text_tok_bos(const sb_text_tok *t, int32_t model_bos);
/* The tokens that end a generated text. stop[0]: llama2.c's BOS (its stories end by starting
 * the next one, and llama2.c's run stops there); for a tokenizer.json, model_eos, else
 * <|endoftext|>, else </s>, else -1. stop[1]: llama2.c's EOS, else -1. */
void sb_text_tok_stops(const sb_text_tok *t, int32_t model_eos, int32_t stop[2]);

/* Encode NUL-terminated text, bos (sb_text_tok_bos; -1: none) first. *ids is malloc'd
 * (caller frees). */
int sb_text_tok_encode(const sb_text_tok *t, const char *text, int32_t bos, int32_t **ids, size_t *n);
/* The bytes token prints as when it follows prev (llama2.c drops the space after BOS);
 * NULL with *len 0 for an id outside the vocabulary or a NULL handle. Valid while t lives. */
const char *sb_text_tok_piece(const sb_text_tok *t, int32_t prev, int32_t token, size_t *len);

/* The first limit (<= 0: all) tokens of the text file path, with the BOS each kind puts before
 * a text (and the EOS a tokenizer.json adds after it); ids outside [0, vocab) are errors
 * naming the position. text_bytes (may be NULL) gets the UTF-8 bytes the predicted tokens
 * (all but the first) stand for, for bits per byte; 0 for a llama2.c tokenizer, whose byte
 * count is not tracked. */
int sb_text_tok_load_text(const sb_text_tok *t, const char *path, int32_t vocab, int64_t limit, int32_t **ids,
                          int64_t *n, uint64_t *text_bytes);

#endif
