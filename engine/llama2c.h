/* Loading llama2.c checkpoints (Karpathy's run.c format) into an sb_model.
 *
 * The file: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 * a negative vocab_size means an unshared classifier), then fp32 tensors, each stacked over
 * layers: token_embedding [V,C], rms_att [L,C], wq [L,C,C], wk [L,KV,C], wv [L,KV,C],
 * wo [L,C,C], rms_ffn [L,C], w1 [L,F,C], w2 [L,C,F], w3 [L,F,C], rms_final [C],
 * freq_cis_real/imag [seq_len, head_dim/2] (ignored: RoPE is recomputed), wcls [V,C] if
 * unshared. The model is Llama with interleaved RoPE (theta 10000), RMSNorm eps 1e-5,
 * BOS 1 and EOS 2. */
#ifndef SB_LLAMA2C_H
#define SB_LLAMA2C_H

#include <stdbool.h>

#include "engine/model.h"

/* Load a llama2.c .bin file. Every size is checked against the file's real size; a bad
 * header or a short file is an SB_ERR naming path. On error m is left zeroed. */
int sb_model_load_llama2c(sb_model *m, const char *path);
/* True when path is a regular file whose name ends in ".bin". */
bool sb_llama2c_is_checkpoint(const char *path);

#endif
