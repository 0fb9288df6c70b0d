/* Training kernels: the forward passes that keep what backward needs, and the backward
 * passes of every Llama layer. Inference-only forwards come from engine/ops.h and are reused
 * here where they already compute exactly what training needs (matmul, rmsnorm, swiglu,
 * embedding, the softmax with an extra logit).
 *
 * Layout as in engine/ops.h: rows of tokens, row-major, N = B*T rows; heads of a row are
 * contiguous blocks of D floats: q[(b*T + t)*(H*D) + h*D + d]. Attention probabilities are
 * [B, H, T, T] (row = query, column = key, upper triangle 0).
 *
 * Backward kernels ACCUMULATE (+=) into every gradient they write, parameter and activation
 * alike (the caller zeroes), except crossentropy_softmax_backward, which overwrites so it can
 * run in place on the logits. Every reduction has a fixed order that does not depend on the
 * thread count, so a step is bit-reproducible. */
#ifndef SB_TRAIN_LAYERS_H
#define SB_TRAIN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* din[N,C] += dout[N,OC] . w[OC,C];  dw[OC,C] += dout^T . in[N,C];  db[OC] += colsum(dout).
 * din and db may be NULL. */
void matmul_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int N, int C, int OC);

/* Forward is rmsnorm_forward (engine/ops.h); backward recomputes 1/rms from in the same way.
 * din[N,C] += d(in);  dw[C] += d(w). */
void rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w, float eps,
                      int N, int C);

/* dtable[V,C] += scatter of dout[N,C] to rows ids[N] (ids already validated by the forward). */
void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C);

/* RoPE on x[N, NH*D] in place, row n at position n % T, with tables cos/sin[T, D/2]
 * (rope_table_fill from position 0). Backward rotates by the negative angle (the rotation is
 * orthogonal), in place on the gradient. Full rotary (rotary_dim == D). */
void train_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                        sb_rope_style style);
void rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                   sb_rope_style style);

/* Causal multi-head / grouped-query attention, scale 1/sqrt(D).
 * out[B,T,H,D] = softmax_extra(q k^T) v, head h reads kv head h / (H/KVH).
 * probs[B,H,T,T] keeps the probabilities; extra_p[B,H,T] (may be NULL) the mass given to the
 * extra logit (0 for STANDARD). sink_logit[H] is read for SB_SOFTMAX_SINK_LOGIT only. */
void train_attention_forward(float *out, float *probs, float *extra_p, const float *q, const float *k,
                             const float *v, const float *sink_logit, sb_softmax_kind kind, int B, int T,
                             int H, int KVH, int D);
/* dq[B,T,H,D], dk/dv[B,T,KVH,D] += gradients; dsink_logit[H] += gradient of the per-head
 * sink logit (SINK_LOGIT only; may be NULL otherwise). */
void attention_backward(float *dq, float *dk, float *dv, float *dsink_logit, const float *dout,
                        const float *probs, const float *extra_p, const float *q, const float *k,
                        const float *v, sb_softmax_kind kind, int B, int T, int H, int KVH, int D);

/* Forward is swiglu_forward (engine/ops.h): out = silu(gate) * up.
 * dgate[n] += ..., dup[n] += ... */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     size_t n);

/* losses[N] = -log softmax(logits[n])[targets[n]]; 0 where targets[n] < 0 (ignored).
 * lse[N] (may be NULL) keeps log-sum-exp of each row for the backward. */
void crossentropy_forward(float *losses, float *lse, const float *logits, const int32_t *targets, int N, int V);
/* dlogits[N,V] = dloss * (softmax(logits) - onehot(target)); rows with target < 0 get 0.
 * lse from the forward, or NULL to recompute it. OVERWRITES dlogits, which may alias logits. */
void crossentropy_softmax_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                   float dloss, int N, int V);

/* log(sum(exp(x[V]))), stable; shared by the cross-entropy forward and backward. */
float train_row_lse(const float *x, int V);

#endif
