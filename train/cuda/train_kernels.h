/* CUDA kernels of the GPU trainer (`sinkbench train --device cuda`): one kernel per layer op
 * of train/train_layers.h, each checked against its CPU reference by
 * tests/gpu/test_train_kernels.c (`tests/gpu/run.sh train`). The matmuls are cuBLAS calls in
 * train/cuda/train_gpu.c; everything else is here.
 *
 * Conventions (as train/train_layers.h):
 * - All pointers are device pointers. Every function enqueues on stream s, allocates nothing
 *   and never synchronises; the caller checks cudaGetLastError().
 * - Rows of tokens, row-major, N = B*T rows; heads contiguous inside a row. Attention scores
 *   and probabilities are [BH, T, T] with BH = B*H (row = query, column = key), head index
 *   h = bh % H.
 * - bf16 buffers are uint16_t (the raw bits), rounded to nearest even as engine/half.h.
 * - Deterministic: no atomics in any reduction; every sum has a fixed order that depends only
 *   on the shapes, so a training step is bit-reproducible on one GPU.
 * - "+=" means the kernel accumulates into the output (the caller zeroes it); "=" overwrites. */
#ifndef SB_TRAIN_KERNELS_H
#define SB_TRAIN_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = bf16(in[i]), i < n. */
void sbt_f32_to_bf16(uint16_t *out, const float *in, size_t n, cudaStream_t s);

/* out[n, :] = table[ids[n], :]  (table [V, C] f32; ids already validated on the host). */
void sbt_embed_forward(float *out, const float *table, const int32_t *ids, int N, int C, cudaStream_t s);
/* dtable[id, :] += dout[n, :] for every position n with ids[n] == id, summed in increasing n
 * (the CPU's order). The host passes the positions grouped by id: rows[r] is the r-th distinct
 * id, its positions are pos[start[r] .. start[r+1]-1] in increasing order; n_rows distinct ids. */
void sbt_embed_backward(float *dtable, const float *dout, const int32_t *rows, const int32_t *start,
                        const int32_t *pos, int n_rows, int C, cudaStream_t s);

/* y = x / sqrt(mean(x^2) + eps) * w over rows of C (N rows). out_f32 and out_bf16 are each
 * nullable (at least one given); rstd[N] (nullable) = the 1/rms of each row, for the backward. */
void sbt_rmsnorm_forward(float *out_f32, uint16_t *out_bf16, float *rstd, const float *in, const float *w,
                         float eps, int N, int C, cudaStream_t s);
/* din[N, C] += d(in); dw[C] += d(w). scratch holds sbt_rmsnorm_backward_scratch(N, C) floats
 * (the per-block partial sums of dw, reduced in a fixed order). rstd from the forward. */
size_t sbt_rmsnorm_backward_scratch(int N, int C);
void sbt_rmsnorm_backward(float *din, float *dw, float *scratch, const float *dout, const float *in,
                          const float *w, const float *rstd, int N, int C, cudaStream_t s);

/* RoPE in place on x[N, NH*D], row n at position n % T, tables cos/sin [T, D/2] (as
 * rope_table_fill from position 0); style 0 = half split, 1 = interleaved (sb_rope_style).
 * The backward rotates by the negative angle. */
void sbt_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D, int style,
                      cudaStream_t s);
void sbt_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                       int style, cudaStream_t s);

/* Causal softmax in place: on entry p[bh, i, j] holds the raw scores q_i . k_j (j <= i; the
 * upper triangle is ignored), on exit the probabilities of softmax_extra_forward (engine/ops.h)
 * over scale * scores of keys 0..i, plus the extra logit: kind 0 = standard (none), 1 =
 * off-by-one (logit 0), 2 = sink logit (sink_logit[h], nullable otherwise). The upper
 * triangle is set to 0. p_bf16 (nullable) gets a bf16 copy of the probabilities; extra_p[BH*T]
 * (nullable) the mass on the extra logit (0 for standard). */
void sbt_attn_softmax_forward(float *p, uint16_t *p_bf16, float *extra_p, const float *sink_logit, int kind,
                              float scale, int BH, int H, int T, cudaStream_t s);
/* Backward through that softmax and the scale: on entry dp[bh, i, j] = dL/dp (j <= i), on exit
 * ds = scale * p * (dp - rowdot), rowdot_i = sum_j p_ij dp_ij: the gradient with respect to
 * the raw scores; upper triangle 0. dp may be the same buffer as ds. ds_bf16 (nullable) gets a
 * bf16 copy. rowdot[BH*T] (nullable) keeps rowdot for sbt_sink_logit_backward. */
void sbt_attn_softmax_backward(float *ds, uint16_t *ds_bf16, float *rowdot, const float *dp, const float *p,
                               float scale, int BH, int T, cudaStream_t s);
/* dsink[h] += -sum over b, i of extra_p[(b*H + h)*T + i] * rowdot[(b*H + h)*T + i], summed
 * in a fixed order (b, then i); H heads, B*H*T entries. */
void sbt_sink_logit_backward(float *dsink, const float *extra_p, const float *rowdot, int B, int H, int T,
                             cudaStream_t s);
/* sum[h] += sum over b and queries i >= first_query of p[(b*H + h), i, 0] (double, fixed
 * order): the attention paid to position 0, for the sink share of the training log. */
void sbt_sink_share(double *sum, const float *p, int B, int H, int T, int first_query, cudaStream_t s);

/* h = silu(gate) * up (n elements); h_bf16 (nullable) a bf16 copy. */
void sbt_swiglu_forward(float *h, uint16_t *h_bf16, const float *gate, const float *up, size_t n, cudaStream_t s);
/* dgate = dh * d silu(gate) * up, dup = dh * silu(gate)  (=, not +=); bf16 copies nullable. */
void sbt_swiglu_backward(float *dgate, float *dup, uint16_t *dgate_bf16, uint16_t *dup_bf16, const float *dh,
                         const float *gate, const float *up, size_t n, cudaStream_t s);

/* Cross-entropy over rows of V logits: losses[n] = lse(row) - row[target] (0 where
 * targets[n] < 0), lse as train_row_lse (float exps, double sum). If dlogits_f32 and/or
 * dlogits_bf16 are given (each nullable) they get dscale * (softmax(row) - onehot(target)),
 * 0 for ignored rows; dlogits_f32 may alias logits. */
void sbt_crossentropy(float *losses, float *dlogits_f32, uint16_t *dlogits_bf16, const float *logits,
                      const int32_t *targets, float dscale, int N, int V, cudaStream_t s);

/* out[0] = sum of g[i]^2 (i < n) in double, fixed order; scratch holds
 * sbt_sumsq_scratch(n) doubles. */
size_t sbt_sumsq_scratch(size_t n);
void sbt_sumsq(double *out, double *scratch, const float *g, size_t n, cudaStream_t s);

/* AdamW step as sb_adamw_update (train/adamw.c), with the clipping scale computed on the
 * device from sumsq[0] (sbt_sumsq of the gradients): norm = sqrt(sumsq), scale = clip > 0 &&
 * norm > clip ? clip / (norm + 1e-6) : 1 (in double, then rounded to float, as
 * train_run.c). bc1, bc2 are the bias
 * corrections 1 - beta^t (computed on the host in double, then rounded to float).
 * mask[i] != 0: weight decay. p_bf16 (nullable) gets the updated weights in bf16. */
void sbt_adamw(float *p, uint16_t *p_bf16, const float *g, float *m, float *v, const uint8_t *mask, size_t n,
               float lr, float beta1, float beta2, float eps, float decay /* lr * weight_decay */, float bc1,
               float bc2, const double *sumsq, float clip, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
