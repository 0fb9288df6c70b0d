/* Byte-level BPE tokenizer: training, encoding, decoding and Hugging Face tokenizer.json.
 *
 * Our own tokenizers (sb_bpe_train) are GPT-2 style byte-level BPE:
 *   ids 0..255     the 256 single bytes, id == byte value
 *   ids 256..      merged tokens, in merge order
 *   last ids       the special tokens (e.g. "<|endoftext|>", "<sink>"), in the order given
 * Encoding first splits out special tokens (their literal text anywhere in the input maps to
 * the special id and is never split), then splits each remaining segment with the GPT-2
 * regex  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and applies the merges to each piece, exactly as the Python `tokenizers` library does with
 * the tokenizer.json we write. Input is arbitrary bytes: a byte that is not part of valid
 * UTF-8 counts as one character that is neither letter, number nor space, so
 * decode(encode(x)) == x for every byte string.
 *
 * Every function returning int returns SB_OK or an engine/common.h status with a one-line
 * message (sb_last_error()) naming the file or argument at fault. A loaded tokenizer is
 * immutable: encode/decode may be called from several threads at once. */
#ifndef SB_TOKENIZER_H
#define SB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_TOKENIZER_HASH_BYTES 32
#define SB_TOKEN_ENDOFTEXT "<|endoftext|>"
#define SB_TOKEN_SINK "<sink>"

typedef struct sb_tokenizer sb_tokenizer;

/* What a tokenizer.json holds. Only BYTE_LEVEL is produced by sb_bpe_train; the others
 * are for loading third-party files. */
typedef enum {
    SB_TOKENIZER_BYTE_LEVEL,     /* GPT-2 / GPT-NeoX / Falcon / MPT style byte-level BPE */
    SB_TOKENIZER_SENTENCEPIECE,  /* Llama / Mistral style: metaspace + BPE + <0xNN> byte fallback */
} sb_tokenizer_kind;

/* Load a tokenizer.json, or a directory containing one. */
int sb_tokenizer_load(sb_tokenizer **t, const char *path);
/* Write tokenizer.json to path (a file path, or an existing directory to write
 * DIR/tokenizer.json into); atomic (temp file + rename). The bytes written are the
 * canonical form hashed by sb_tokenizer_hash. */
int sb_tokenizer_save(const sb_tokenizer *t, const char *path);
void sb_tokenizer_free(sb_tokenizer *t);

/* Encode len bytes of text (no BOS/EOS or other special token is added). On success *ids
 * is malloc'd (caller frees; non-NULL even when *n == 0). */
int sb_tokenizer_encode(const sb_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n);
/* Decode ids to bytes; special tokens decode to their literal text. *out is malloc'd and
 * NUL-terminated (the text itself may contain NUL bytes: use *len). An id outside
 * [0, vocab_size) is an error naming its position. */
int sb_tokenizer_decode(const sb_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *len);
/* The bytes one token decodes to (for streaming output); NULL for an out-of-range id. The
 * pointer stays valid for the tokenizer's lifetime. For SentencePiece-style tokenizers this
 * is the raw piece with "▁" turned into a space (no leading-space stripping). */
const char *sb_tokenizer_token_bytes(const sb_tokenizer *t, int32_t id, size_t *len);

int32_t sb_tokenizer_vocab_size(const sb_tokenizer *t);
/* Id of a token given in its decoded form ("<sink>", "<|endoftext|>", " the"), -1 if absent. */
int32_t sb_tokenizer_token_id(const sb_tokenizer *t, const char *token);
bool sb_tokenizer_is_special(const sb_tokenizer *t, int32_t id);
/* BOS/EOS "as the tokenizer says": the tokens Hugging Face's encode(text) puts around a
 * sequence. From the post-processor (TemplateProcessing's "single", Bert/RobertaProcessing's
 * cls/sep, or one of those inside a Sequence); add_bos_token / add_eos_token in a
 * tokenizer_config.json beside the tokenizer.json win where present (Llama, Mistral).
 * Llama/Mistral add BOS only; GPT-NeoX, Falcon, MPT and our own tokenizers add nothing.
 * sb_tokenizer_encode never adds them: callers that want them put them around the ids. */
bool sb_tokenizer_adds_bos(const sb_tokenizer *t);
bool sb_tokenizer_adds_eos(const sb_tokenizer *t);
/* The BOS/EOS that encoding adds, -1 if it adds none. */
int32_t sb_tokenizer_bos_id(const sb_tokenizer *t);
int32_t sb_tokenizer_eos_id(const sb_tokenizer *t);
/* The tokenizer's BOS/EOS token whether or not encoding adds it (tokenizer_config.json's
 * bos_token/eos_token, or the post-processor's), -1 if unknown: for forcing one in. */
int32_t sb_tokenizer_bos_token(const sb_tokenizer *t);
int32_t sb_tokenizer_eos_token(const sb_tokenizer *t);
sb_tokenizer_kind sb_tokenizer_get_kind(const sb_tokenizer *t);
/* 32-byte SHA-256 of the canonical tokenizer.json (the bytes sb_tokenizer_save writes). */
const uint8_t *sb_tokenizer_hash(const sb_tokenizer *t);

typedef struct {
    int32_t vocab_size;       /* total, specials included; >= 256 + n_special */
    const char **special;     /* special tokens, appended after the merges; may be NULL */
    int n_special;
    int threads;              /* OpenMP threads for counting; <= 0: all available */
} sb_bpe_train_opts;

/* Train on len bytes of text. Special tokens are split out of the text first (never counted
 * or merged across). Stops early, with a smaller vocabulary, when no pair occurs twice.
 * Deterministic: the result does not depend on the thread count. */
int sb_bpe_train(sb_tokenizer **t, const char *text, size_t len, const sb_bpe_train_opts *o);

/* The GPT-2 pre-tokenizer, exposed for tests and tools: the end offset of the piece that
 * starts at pos (pos < len). Pieces tile the text: pos = sb_pretokenize_next(...) repeatedly. */
size_t sb_pretokenize_next(const uint8_t *text, size_t len, size_t pos);

#endif
