/* CUDA kernel library of the cuda backend: one kernel per layer op, each checked against a
 * CPU reference by tests/gpu/test_kernels.cu (`tests/gpu/run.sh kernels`).
 *
 * Conventions (as engine/ops.h):
 * - All pointers are device pointers unless stated otherwise.
 * - Every function enqueues its work on stream s and returns nothing: the caller checks
 *   cudaGetLastError(). None allocates memory or synchronises, so every call can be captured
 *   in a CUDA graph. Call sbk_init() once per device before capturing (it sets the shared
 *   memory attributes of the attention kernels; done lazily on first use otherwise, which is
 *   a host-side call that stream capture does not record).
 * - Row-major; attention heads contiguous inside a row: q[t*(H*hd) + h*hd + d]; weights
 *   [out, in] as Hugging Face nn.Linear; K/V cache rows have KV*hd elements (stride KV*hd).
 * - The residual stream is f32. Conversions to bf16/f16 round to nearest even, overflow to
 *   inf, keep subnormals and keep NaN a (quiet) NaN, bit for bit as engine/half.h.
 * - Strides and counts are in elements of the buffer's own type.
 * - sbk_dtype is NOT engine/model.h sb_dtype (whose order is F32, F16, BF16): convert
 *   explicitly. */
#ifndef SB_CUDA_KERNELS_H
#define SB_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SBK_F32 = 0, SBK_BF16 = 1, SBK_F16 = 2 } sbk_dtype;

/* Activations (engine/model.h sb_act_kind order): sb_silu, sb_gelu_erf, sb_gelu_tanh. */
enum { SBK_ACT_SILU = 0, SBK_ACT_GELU_ERF = 1, SBK_ACT_GELU_TANH = 2 };
/* RoPE pair layouts (engine/model.h sb_rope_style order). */
enum { SBK_ROPE_HALF = 0, SBK_ROPE_INTERLEAVED = 1 };
/* Softmax variants (engine/model.h sb_softmax_kind order): STANDARD; OFF_BY_ONE (an extra
 * logit 0 with no value); SINK_LOGIT (an extra logit sink_logit[h] with no value). */
enum { SBK_SOFTMAX_STANDARD = 0, SBK_SOFTMAX_OFF_BY_ONE = 1, SBK_SOFTMAX_SINK_LOGIT = 2 };

/* Bytes of one element. */
size_t sbk_dtype_size(sbk_dtype dt);

/* Once per device, before any stream capture: kernel attributes (dynamic shared memory of
 * the tensor-core attention). Returns the first CUDA error (cudaSuccess when fine). Host. */
cudaError_t sbk_init(void);

/* Kernel variants, so that a regression can be compared in one run: a mask of the legacy
 * kernels in use, SBK_LEGACY_DECODE_ATTENTION (one thread per key, 128 keys per block),
 * SBK_LEGACY_GEMV (one warp per two rows) and SBK_LEGACY_NO_PDL (decode kernels launched
 * without programmatic dependent launch). Default: none, unless the environment variable
 * SINKBENCH_CUDA_LEGACY (read at the first call) names "attn", "gemv", "pdl" or "all" (a list
 * such as "attn,gemv" works). sbk_set_legacy overrides it; it applies to launches enqueued (or
 * graphs captured) afterwards. Host, not thread-safe. */
enum { SBK_LEGACY_DECODE_ATTENTION = 1, SBK_LEGACY_GEMV = 2, SBK_LEGACY_NO_PDL = 4 };
unsigned sbk_legacy(void);
void sbk_set_legacy(unsigned mask);
/* Whether the decode kernels (one-row matmul, norm, q/k/v store, decode attention, GLU) are
 * launched with programmatic dependent launch: on compute capability 9.0 and later (the
 * current device, read at the first call) unless SBK_LEGACY_NO_PDL is set. Host. */
int sbk_pdl_on(void);

/* ------------------------------------------------------------ conversion, embedding, caches */

/* out[i] = in[i] converted, i < n; any type to any type (same type: a copy). out and in must
 * not overlap unless they are the same pointer with the same type. */
void sbk_convert(void *out, sbk_dtype odt, const void *in, sbk_dtype idt, size_t n, cudaStream_t s);

/* out[t, :] = table[ids[t], :] as f32 (table [V, C] of tdt). A row whose id is outside
 * [0, V) is filled with NaN (the host checks ids first, as engine/ops.c embedding_forward). */
void sbk_embed(float *out, const void *table, sbk_dtype tdt, const int32_t *ids, int T, int C, int V,
               cudaStream_t s);

/* dst[r(t) * dst_stride + c] = src[t * src_stride + c] converted to ddt, t < rows, c < cols,
 * with r(t) = dst_rows[t] (dst_rows nullable: then r(t) = t). Distinct r(t) expected. */
void sbk_store_rows(void *dst, sbk_dtype ddt, size_t dst_stride, const int64_t *dst_rows, const float *src,
                    size_t src_stride, int rows, int cols, cudaStream_t s);
/* The band ring of exact mode: source row t (position pos0 + t) goes to destination row
 * (pos0 + t) mod cap. pos0 >= 0, cap >= 1, rows <= cap. */
void sbk_store_rows_ring(void *dst, sbk_dtype ddt, size_t dst_stride, int64_t cap, int64_t pos0, const float *src,
                         size_t src_stride, int rows, int cols, cudaStream_t s);

/* ------------------------------------------------------------ norms and elementwise */

/* RMSNorm (layer_norm = 0): y = x / sqrt(mean(x^2) + eps) * w, or LayerNorm (layer_norm = 1):
 * y = (x - mean) / sqrt(var + eps) * w (+ b), biased variance; b ignored for RMSNorm and
 * nullable for LayerNorm. Sums in double, then the float arithmetic of engine/ops.c
 * rmsnorm_forward / layernorm_forward. Rows of C floats, T rows. y is written to out_f32
 * (nullable, may alias in) and/or converted to half_dt (SBK_BF16 or SBK_F16) into out_half
 * (nullable). */
void sbk_norm(float *out_f32, void *out_half, sbk_dtype half_dt, const float *in, const float *w, const float *b,
              int layer_norm, float eps, int T, int C, cudaStream_t s);

/* x[t, c] += b[c], T rows of C. */
void sbk_add_bias(float *x, const float *b, int T, int C, cudaStream_t s);
/* x[i] += y[i], i < n. */
void sbk_add(float *x, const float *y, size_t n, cudaStream_t s);
/* x[i] clamped to [-clip, clip] (NaN stays NaN); clip <= 0 does nothing (MPT clip_qkv). */
void sbk_clamp(float *x, size_t n, float clip, cudaStream_t s);
/* out[i] = act(in[i]) converted to odt; out may alias in when odt is SBK_F32. */
void sbk_act(void *out, sbk_dtype odt, const float *in, size_t n, int act, cudaStream_t s);
/* out[i] = act(gate[i]) * up[i] converted to odt; out (f32) may alias gate or up. */
void sbk_glu(void *out, sbk_dtype odt, const float *gate, const float *up, size_t n, int act, cudaStream_t s);
/* The same from one fused [T, 2F] buffer: gate = columns [0, F), up = [F, 2F) of each row;
 * out [T, F] (must not overlap gu). */
void sbk_glu_fused(void *out, sbk_dtype odt, const float *gu, int T, int F, int act, cudaStream_t s);

/* ------------------------------------------------------------ RoPE */

/* In place, identical arithmetic to engine/ops.c rope_apply_table (no fused multiply-add):
 * row t of x (x + t*row_stride floats) holds n_heads heads of head_dim; the first rotary_dim
 * (even) dims of each head rotate with table row t: cos_tab/sin_tab + t*table_row_stride,
 * rotary_dim/2 floats each (table_row_stride 0: every row uses table row 0). style
 * SBK_ROPE_HALF pairs (j, j + rotary_dim/2), SBK_ROPE_INTERLEAVED (2j, 2j+1). The tables
 * are the host's (engine/ops.c rope_table_fill, angles in double) uploaded. */
void sbk_rope(float *x, int T, size_t row_stride, int n_heads, int head_dim, int rotary_dim, int style,
              const float *cos_tab, const float *sin_tab, int table_row_stride, cudaStream_t s);

/* Decode mode's moving (sink) keys: for i < m, row slots[i] of k_cache (rows of
 * n_kv_heads*head_dim of dt) = rope(row slots[i] of k_raw (f32, pre-RoPE, same row
 * length), table row i) converted to dt; the non-rotary dims are copied. cos/sin [m][rotary/2]. */
void sbk_rerotate(void *k_cache, sbk_dtype dt, const float *k_raw, const int32_t *slots, int m, const float *cos_tab,
                  const float *sin_tab, int n_kv_heads, int head_dim, int rotary_dim, int style, cudaStream_t s);

/* Decode mode's new token in one launch, the same results bit for bit as sbk_store_rows of the
 * raw k to k_raw (when k_raw is not NULL), sbk_rope of q and of k, and sbk_store_rows of the
 * rotated k and of v: qkv is one fused row, n_q heads of q, then n_kv of k, then n_kv of v
 * (head_dim floats each); q and k rotate in place (rotary_dim even, 0: no rotation) with the
 * table rows q_cos/q_sin and k_cos/k_sin (rotary_dim/2 floats each); row *dst_row (read on
 * the device) of k_cache and v_cache (rows of n_kv*head_dim of dt) gets the rotated k and v,
 * and the same row of k_raw (f32, nullable) the k before rotation. */
void sbk_decode_qkv_store(float *qkv, int n_q, int n_kv, int head_dim, int rotary_dim, int style, const float *q_cos,
                          const float *q_sin, const float *k_cos, const float *k_sin, void *k_cache, void *v_cache,
                          sbk_dtype dt, float *k_raw, const int64_t *dst_row, cudaStream_t s);

/* ------------------------------------------------------------ attention */

/* Exact-mode band + sink attention (engine/attention.c attention_band_task; the appendix of
 * the StreamingLLM notes), flash-attention style: one pass over the keys, online softmax.
 *
 * T queries at positions P = pos0 + t (t < T), policy K sinks + W recent. Query t sees
 * - sink keys j in [0, min(n_sink, P + 1)) at distance min(P, K + W) - j, scored with its
 *   query qs (rotated at min(P, K + W)); sink key j is row j of sink_k/sink_v;
 * - band keys at positions p in [max(K, P - Wb), P], Wb = min(W, max_dist), at distance
 *   P - p, scored with its query qb (rotated at P); the band is a ring: position p's key and
 *   value are row p mod band_cap of band_k/band_v (band_cap >= W + T keeps them all);
 * keys at distance > max_dist are masked (sinks too). score = q.k / sqrt(hd)
 * - alibi[h] * distance (alibi nullable); query head h reads kv head h / (H / KV).
 * softmax_kind: SBK_SOFTMAX_*; its extra logit (0, or sink_logit[h]) joins the max and the
 * denominator and has no value. A query that sees no key (possible only when max_dist < 0)
 * gets a zero output.
 *
 * Queries qb, qs (may be the same pointer): row t at q + t*q_stride, heads contiguous
 * (H*hd used). out (odt) row t at out + t*out_stride. K/V rows have KV*hd elements.
 * dt is the type of qb, qs and all of K, V: SBK_F32 runs on CUDA cores (fidelity: matches
 * the CPU to ~1e-6 relative, any hd <= 256); SBK_BF16/SBK_F16 run on tensor cores (mma.sync
 * m16n8k16, f32 accumulation and f32 softmax) for hd in {64, 80, 96, 128, 256} when q_stride
 * is a multiple of 8 and the pointers are 16-byte aligned, else on CUDA cores (any hd <= 256).
 * Dense attention: K = 0, n_sink = 0, W = 1 << 50. Positions must stay below 2^31 - 2^20 relative
 * to each other (P - p of any visible key fits an int). Requires H % KV == 0, hd <= 256,
 * band_cap >= 1 and sink_logit for SBK_SOFTMAX_SINK_LOGIT; calls outside that enqueue nothing. */
void sbk_band_attention(void *out, sbk_dtype odt, size_t out_stride, const void *qb, const void *qs, size_t q_stride,
                        const void *band_k, const void *band_v, int64_t band_cap, const void *sink_k,
                        const void *sink_v, int n_sink, int64_t K, int64_t W, int64_t pos0, int T, int64_t max_dist,
                        int H, int KV, int hd, int softmax_kind, const float *sink_logit, const float *alibi,
                        sbk_dtype dt, cudaStream_t s);

/* Floats of scratch sbk_decode_attention needs for H heads of hd and at most n_max keys. Host. */
size_t sbk_decode_attention_scratch(int H, int hd, int n_max);
/* The split kernel's shape: 0 (default) 64 keys per block in batches of 4 per group, 1: 128 keys,
 * 2: 128 keys in batches of 8; else the environment variable SINKBENCH_CUDA_DECODE (64, 128,
 * 128u8), read at the first launch. Same results within rounding (another merge order); for
 * the benchmarks that pick the default. Host, not thread-safe. */
void sbk_decode_config(int cfg);

/* Decode: one query over a slot cache (engine/attention.c attention_token_forward), split
 * over keys (flash-decoding) then combined.
 * out[H*hd] = sum_i p_i v[slots[i]] with p = softmax_extra(q_h.k[slots[i]] / sqrt(hd)
 * - alibi[h] * (query_pos - pos[i])) over i < n; keys with query_pos - pos[i] > max_dist get
 * p = 0. q [H*hd] f32 rotated; k, v [n_slots][KV*hd] of dt; slots [n]; pos [n] (the frame
 * position of slots[i]); *query_pos and *n_dev are read on the device (a captured graph
 * stays valid as the cache fills); n_max >= *n_dev bounds the grid. probs (nullable): the
 * probabilities [H][n] (row stride n = *n_dev) for an observer. scratch: at least
 * sbk_decode_attention_scratch(H, hd, n_max) floats. n = 0 gives a zero output. */
void sbk_decode_attention(float *out, float *probs, const float *q, const void *k, const void *v,
                          const int32_t *slots, const int64_t *pos, const int64_t *query_pos, const int *n_dev,
                          int n_max, float *scratch, int H, int KV, int hd, int64_t max_dist, int softmax_kind,
                          const float *sink_logit, const float *alibi, sbk_dtype dt, cudaStream_t s);
/* The same, writing the output as f32 to out (nullable) and/or converted to odt (any type)
 * to out_cvt (nullable; at least one of the two): the decode step's attention output goes
 * straight to the compute type of the output projection. */
void sbk_decode_attention_to(float *out, void *out_cvt, sbk_dtype odt, float *probs, const float *q, const void *k,
                             const void *v, const int32_t *slots, const int64_t *pos, const int64_t *query_pos,
                             const int *n_dev, int n_max, float *scratch, int H, int KV, int hd, int64_t max_dist,
                             int softmax_kind, const float *sink_logit, const float *alibi, sbk_dtype dt,
                             cudaStream_t s);

/* ------------------------------------------------------------ one-row matmul */

/* Decode mode's matrix-vector product: y[OC] = beta * y + W[OC, C] . x[C], W and x of dt
 * (SBK_BF16 or SBK_F16), fp32 accumulation and output; y = W x when beta == 0 (y may then hold
 * anything, NaN too). Each output is a fixed-order sum (the same for every launch). Runs only when
 * sbk_gemv_ok(dt, W, x, C) (C % 8 == 0, 16-byte aligned W and x); otherwise it enqueues
 * nothing (use a GEMM). */
int sbk_gemv_ok(sbk_dtype dt, const void *W, const void *x, int C);
void sbk_gemv(float *y, const void *W, const void *x, sbk_dtype dt, int C, int OC, float beta, cudaStream_t s);
/* For benchmarks and tests: the block shape of the default kernel, ru = 10 * R + U (R rows per
 * block, U 16-byte vectors per row and batch; 22, 24, 42, 44, 46, 82), 0 for the default
 * choice (R = 4, U = 2 at C <= 4096, else U = 4); any other value is the default. Without a
 * call, the environment variable SINKBENCH_CUDA_GEMV (same values) at the first launch. Host. */
void sbk_gemv_config(int ru);

/* ------------------------------------------------------------ loss, sampling */

/* nll[t] = -log softmax(logits row t)[targets[t]] (row t at logits + t*ldl, V floats):
 * log-sum-exp with max subtraction, exp and sum in double (engine/ops.c nll_from_logits);
 * NaN when the target is outside [0, V). */
void sbk_nll(float *nll, const float *logits, size_t ldl, const int32_t *targets, int T, int V, cudaStream_t s);
/* *out = index of the largest of logits[V] (the first one on ties; NaNs are never chosen
 * unless all are NaN, then 0). */
void sbk_argmax(int32_t *out, const float *logits, int V, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
