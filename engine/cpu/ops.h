/* Numeric ops of the transformer, fp32, row-major. Outputs come first, shapes last.
 *
 * Conventions (Hugging Face nn.Linear): a weight is [OC, C] and y = x W^T (+ b).
 * T = tokens (rows), C = (input) channels, OC = output channels, V = vocabulary.
 * (No parameter is called I: <complex.h>, pulled in by cblas.h, defines it.)
 * Activations of one token are contiguous: x[t*C + c]. Attention heads inside a row are
 * contiguous blocks of head_dim: q[t*(H*hd) + h*hd + d].
 *
 * Row loops run under OpenMP; each row is computed by one thread with a fixed summation
 * order, so results do not depend on the thread count. Matmuls go through OpenBLAS. */
#ifndef SB_OPS_H
#define SB_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h" /* sb_rope_style, sb_act_kind, sb_softmax_kind, sb_norm_kind */

/* ---------------------------------------------------------------- matmul */

/* out[T,OC] = in[T,C] . w[OC,C]^T (+ b[OC] when b != NULL). */
void matmul_forward(float *out, const float *in, const float *w, const float *b, int T, int C, int OC);
/* out[T,OC] += in[T,C] . w[OC,C]^T (+ b[OC] when b != NULL). For residual adds without a copy. */
void matmul_forward_acc(float *out, const float *in, const float *w, const float *b, int T, int C, int OC);

/* The same for a stored weight w [OC,C] (model.h sb_weight): fp32 goes to the two above.
 * bf16/fp16 stay compact: T < MATMUL_GEMV_MAX_T rows run a fused kernel that converts each
 * weight row on the fly (AVX2/F16C when the CPU has them) with a fixed summation order per
 * output; more rows convert the weight in tiles of rows into a per-thread fp32 scratch and
 * sgemm each tile. Outside a parallel region both split the output rows over OpenMP threads. */
#define MATMUL_GEMV_MAX_T 4
void matmul_weight_forward(float *out, const float *in, const sb_weight *w, const float *b, int T, int C, int OC);
void matmul_weight_forward_acc(float *out, const float *in, const sb_weight *w, const float *b, int T, int C,
                               int OC);
/* out[C] = row `row` of w [rows, C] as fp32. */
void weight_row_f32(float *out, const sb_weight *w, size_t row, int C);

/* ---------------------------------------------------------------- norms */

/* out[T,C] = in / sqrt(mean(in^2) + eps) * w[C]. out may alias in. */
void rmsnorm_forward(float *out, const float *in, const float *w, float eps, int T, int C);
/* out[T,C] = (in - mean) / sqrt(var + eps) * w[C] (+ b[C] when b != NULL); biased variance.
 * out may alias in. */
void layernorm_forward(float *out, const float *in, const float *w, const float *b, float eps, int T, int C);
/* Dispatch on kind (b is ignored for RMS). */
void norm_forward(float *out, const float *in, const float *w, const float *b, sb_norm_kind kind, float eps,
                  int T, int C);

/* ---------------------------------------------------------------- RoPE
 * Pair j (0 <= j < rotary_dim/2) of a head rotates by angle pos * inv_freq[j] with
 * inv_freq[j] = theta^(-2j/rotary_dim). Angles are computed in double, so positions in the
 * millions keep full float accuracy. Only the first rotary_dim dims of a head rotate (partial
 * rotary, GPT-NeoX); the rest pass through. rotary_dim must be even, <= head_dim and
 * <= 2048 (sb_model_config_validate enforces it).
 * SB_ROPE_HALF pairs (j, j + rotary_dim/2) (Hugging Face rotate_half);
 * SB_ROPE_INTERLEAVED pairs (2j, 2j+1) (llama2.c, Meta's complex form).
 * Rotations compose: rotating by a then by b equals rotating by a+b; pos may be negative. */

/* Rotate one token's heads in place: x[n_heads*head_dim] at position pos. */
void rope_apply(float *x, int n_heads, int head_dim, int rotary_dim, int64_t pos, float theta,
                sb_rope_style style);
/* Rotate T tokens in place, token t at pos[t]. Row t starts at x + t*row_stride (floats), so
 * q/k inside a fused qkv buffer or a strided cache can be rotated directly.
 * x: T rows of [n_heads*head_dim]; pos: [T]. */
void rope_forward(float *x, const int64_t *pos, int T, size_t row_stride, int n_heads, int head_dim,
                  int rotary_dim, float theta, sb_rope_style style);
/* Shift already rotated vectors by delta positions (negative moves them back), as a SinkCache
 * or a llama.cpp K-shift does. Same layout as rope_forward; delta is the same for all rows. */
void rope_rotate_delta(float *x, int T, size_t row_stride, int n_heads, int head_dim, int rotary_dim,
                       int64_t delta, float theta, sb_rope_style style);
/* Precomputed tables for hot loops: cos/sin[n_pos, rotary_dim/2] for positions pos0..pos0+n_pos-1. */
void rope_table_fill(float *cos_tab, float *sin_tab, int64_t pos0, int n_pos, int rotary_dim, float theta);
/* Rotate one token's heads in place with one row of the tables (cos_row/sin_row: [rotary_dim/2]). */
void rope_apply_table(float *x, const float *cos_row, const float *sin_row, int n_heads, int head_dim,
                      int rotary_dim, sb_rope_style style);

/* ---------------------------------------------------------------- ALiBi */

/* out[n_heads]: MPT's slopes 1 / 2^(k * alibi_bias_max / n'), k = 1..n', n' = next power of two
 * >= n_heads; for other head counts the odd-index then even-index slopes of n' are taken
 * (as MPT's gen_slopes). The bias of a key at distance d is -slope * d. */
void alibi_slopes(float *out, int n_heads, float alibi_bias_max);

/* ---------------------------------------------------------------- activations */

float sb_silu(float x);      /* x * sigmoid(x) */
float sb_gelu_erf(float x);  /* 0.5 x (1 + erf(x / sqrt 2)) */
float sb_gelu_tanh(float x); /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
float sb_act(float x, sb_act_kind act);

/* out[n] = act(in[n]); out may alias in. */
void act_forward(float *out, const float *in, size_t n, sb_act_kind act);
/* out[n] = silu(gate[n]) * up[n]  (n = T*F); out may alias gate or up. */
void swiglu_forward(float *out, const float *gate, const float *up, size_t n);
/* out[n] = act(gate[n]) * up[n]: the gated MLP with any activation (GeGLU etc.). */
void glu_forward(float *out, const float *gate, const float *up, size_t n, sb_act_kind act);

/* ---------------------------------------------------------------- softmax */

/* p[n] = softmax(x[n]); p may alias x. n >= 1. */
void softmax_forward(float *p, const float *x, int n);
/* p[n] = exp(s_i - m) / (exp(e - m) + sum_j exp(s_j - m)) with an optional extra logit e that
 * has no value vector: STANDARD: no extra term (extra_logit ignored); OFF_BY_ONE: e = 0
 * (denominator 1 + sum exp); SINK_LOGIT: e = extra_logit. m = max(scores, e) for stability.
 * Scores of -INFINITY (masked) get probability 0. Returns the mass given to the extra logit
 * (0 for STANDARD), so sum(p) + return value == 1. p may alias scores. n >= 0 (n = 0 with an
 * extra logit returns 1). */
float softmax_extra_forward(float *p, const float *scores, int n, sb_softmax_kind extra_kind, float extra_logit);

/* ---------------------------------------------------------------- embedding, loss, misc */

/* out[T,C] = table[ids[t], :] with table [V,C]. Returns SB_ERR (naming the id and position)
 * when an id is outside [0, V); out is then unspecified. */
int embedding_forward(float *out, const int32_t *ids, const float *table, int T, int C, int V);
/* -log softmax(logits[V])[target], log-sum-exp accumulated in double. NAN when target is
 * outside [0, V). */
double nll_from_logits(const float *logits, int V, int target);
/* Index of the largest value (first one on ties). n >= 1. */
int argmax(const float *x, int n);
/* out[n] = a[n] + b[n]; out may alias a or b. */
void residual_forward(float *out, const float *a, const float *b, size_t n);
/* Clamp x[n] in place to [-clip, clip] (MPT clip_qkv); clip <= 0 does nothing. */
void clamp_forward(float *x, size_t n, float clip);
/* dot product of a[n] and b[n] (float accumulate, fixed order). */
float dot_f32(const float *a, const float *b, int n);

#endif
