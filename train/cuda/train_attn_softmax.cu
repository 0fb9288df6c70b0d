/* The causal attention softmax of the GPU trainer (train/cuda/train_kernels.h): forward with
 * the extra logit variants, backward to the raw scores, the sink-logit gradient and the sink
 * share. The score matmuls are cuBLAS calls in train/cuda/train_gpu.c.
 *
 * Forward and backward: one warp per (bh, query) row, 8 rows per 256-thread block. Lane l owns
 * columns l, l + 32, ...: every load is a coalesced 128-byte line, only keys j <= i are read,
 * and for T <= 1024 the row stays in registers between the passes (NS = ceil(T/32) rounded up
 * to a power of two values per lane), so each element is read from memory once and written
 * once. Longer rows fall back to re-reading (NS = 0). Rows are independent: no atomics; each
 * row's sums are a fixed shuffle tree. */
#include "train/cuda/train_common.cuh"

using namespace sbt;

#define SM_THREADS 256
#define SM_ROWS (SM_THREADS / SBT_WARP)
#define SM_RED_THREADS 256

/* values per lane kept in registers for rows of T keys; 0 = too long, re-read memory */
static int sm_ns(int T) {
    for (int ns = 1; ns <= 32; ns *= 2)
        if (T <= SBT_WARP * ns) return ns;
    return 0;
}

/* ------------------------------------------------------------ forward */

/* As engine/ops.c softmax_extra_forward over scale * score of keys 0..i (float exps and sum),
 * the extra logit e joining the max and the denominator. */
template <int NS>
__global__ void __launch_bounds__(SM_THREADS)
    softmax_fwd_kernel(float *p, uint16_t *pb, float *extra_p, const float *sink_logit, int kind, float scale, int H,
                       int T, size_t rows) {
    const size_t row = (size_t)blockIdx.x * SM_ROWS + threadIdx.x / SBT_WARP;
    const int lane = threadIdx.x % SBT_WARP;
    if (row >= rows) return; /* whole warp; no block barrier below */
    const int i = (int)(row % T), h = (int)((row / T) % H);
    const int n = i + 1; /* keys 0..i */
    float *x = p + row * T;
    uint16_t *xb = pb ? pb + row * T : nullptr;
    const bool has_extra = kind != SBK_SOFTMAX_STANDARD;
    const float e = kind == SBK_SOFTMAX_SINK_LOGIT ? sink_logit[h] : 0.0f;

    float v[NS > 0 ? NS : 1];
    float m = has_extra ? e : -INFINITY;
    if constexpr (NS > 0) {
#pragma unroll
        for (int k = 0; k < NS; k++) {
            const int j = lane + SBT_WARP * k;
            v[k] = j < n ? __fmul_rn(scale, x[j]) : -INFINITY;
            m = fmaxf(m, v[k]);
        }
    } else {
        for (int j = lane; j < n; j += SBT_WARP) m = fmaxf(m, __fmul_rn(scale, x[j]));
    }
    m = warp_max(m);
    if (m == -INFINITY) { /* everything masked and no extra slot: no mass anywhere, as the CPU */
        for (int j = lane; j < T; j += SBT_WARP) {
            x[j] = 0.0f;
            if (xb) xb[j] = 0;
        }
        if (extra_p && lane == 0) extra_p[row] = has_extra ? 1.0f : 0.0f;
        return;
    }
    float sum = 0.0f;
    if constexpr (NS > 0) {
#pragma unroll
        for (int k = 0; k < NS; k++) {
            const int j = lane + SBT_WARP * k;
            v[k] = j < n ? expf(v[k] - m) : 0.0f;
            sum += v[k];
        }
    } else {
        for (int j = lane; j < n; j += SBT_WARP) sum += expf(__fmul_rn(scale, x[j]) - m);
    }
    sum = warp_sum(sum);
    const float ex = has_extra ? expf(e - m) : 0.0f;
    const float inv = 1.0f / (sum + ex);
    /* every lane read all its keys above (the shuffles order the warp), and each lane writes
     * only its own columns, so the in-place update is safe */
    if constexpr (NS > 0) {
#pragma unroll
        for (int k = 0; k < NS; k++) {
            const int j = lane + SBT_WARP * k;
            if (j < T) {
                const float y = j < n ? v[k] * inv : 0.0f;
                x[j] = y;
                if (xb) xb[j] = f32_to_bf16_bits(y);
            }
        }
    } else {
        for (int j = lane; j < T; j += SBT_WARP) {
            const float y = j < n ? expf(__fmul_rn(scale, x[j]) - m) * inv : 0.0f;
            x[j] = y;
            if (xb) xb[j] = f32_to_bf16_bits(y);
        }
    }
    if (extra_p && lane == 0) extra_p[row] = ex * inv;
}

template <int NS>
static void softmax_fwd_launch(float *p, uint16_t *pb, float *extra_p, const float *sink_logit, int kind, float scale,
                               int H, int T, size_t rows, cudaStream_t s) {
    const unsigned blocks = (unsigned)((rows + SM_ROWS - 1) / SM_ROWS);
    softmax_fwd_kernel<NS><<<blocks, SM_THREADS, 0, s>>>(p, pb, extra_p, sink_logit, kind, scale, H, T, rows);
}

extern "C" void sbt_attn_softmax_forward(float *p, uint16_t *p_bf16, float *extra_p, const float *sink_logit, int kind,
                                         float scale, int BH, int H, int T, cudaStream_t s) {
    if (BH <= 0 || H <= 0 || T <= 0) return;
    if (kind != SBK_SOFTMAX_OFF_BY_ONE && kind != SBK_SOFTMAX_SINK_LOGIT) kind = SBK_SOFTMAX_STANDARD;
    if (kind == SBK_SOFTMAX_SINK_LOGIT && !sink_logit) kind = SBK_SOFTMAX_STANDARD; /* nothing to read */
    const size_t rows = (size_t)BH * T;
    switch (sm_ns(T)) {
    case 1: softmax_fwd_launch<1>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    case 2: softmax_fwd_launch<2>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    case 4: softmax_fwd_launch<4>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    case 8: softmax_fwd_launch<8>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    case 16: softmax_fwd_launch<16>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    case 32: softmax_fwd_launch<32>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    default: softmax_fwd_launch<0>(p, p_bf16, extra_p, sink_logit, kind, scale, H, T, rows, s); break;
    }
}

/* ------------------------------------------------------------ backward */

/* ds = scale * p * (dp - rowdot), rowdot = sum_j p dp in double then rounded to float, as
 * train/attention_train.c (which applies the scale in the following sgemms). */
template <int NS>
__global__ void __launch_bounds__(SM_THREADS) softmax_bwd_kernel(float *ds, uint16_t *dsb, float *rowdot,
                                                                 const float *dp, const float *p, float scale, int T,
                                                                 size_t rows) {
    const size_t row = (size_t)blockIdx.x * SM_ROWS + threadIdx.x / SBT_WARP;
    const int lane = threadIdx.x % SBT_WARP;
    if (row >= rows) return;
    const int n = (int)(row % T) + 1;
    const float *pr = p + row * T, *dr = dp + row * T;
    float *out = ds + row * T; /* may be dr: each lane overwrites only what it read */
    uint16_t *outb = dsb ? dsb + row * T : nullptr;

    float pv[NS > 0 ? NS : 1], dv[NS > 0 ? NS : 1];
    double dot = 0.0;
    if constexpr (NS > 0) {
#pragma unroll
        for (int k = 0; k < NS; k++) {
            const int j = lane + SBT_WARP * k;
            pv[k] = j < n ? pr[j] : 0.0f;
            dv[k] = j < n ? dr[j] : 0.0f;
            dot += (double)pv[k] * dv[k];
        }
    } else {
        for (int j = lane; j < n; j += SBT_WARP) dot += (double)pr[j] * dr[j];
    }
    dot = warp_sum(dot);
    const float fdot = (float)dot;
    if constexpr (NS > 0) {
#pragma unroll
        for (int k = 0; k < NS; k++) {
            const int j = lane + SBT_WARP * k;
            if (j < T) {
                const float y = j < n ? __fmul_rn(scale, __fmul_rn(pv[k], __fsub_rn(dv[k], fdot))) : 0.0f;
                out[j] = y;
                if (outb) outb[j] = f32_to_bf16_bits(y);
            }
        }
    } else {
        for (int j = lane; j < T; j += SBT_WARP) {
            const float y = j < n ? __fmul_rn(scale, __fmul_rn(pr[j], __fsub_rn(dr[j], fdot))) : 0.0f;
            out[j] = y;
            if (outb) outb[j] = f32_to_bf16_bits(y);
        }
    }
    if (rowdot && lane == 0) rowdot[row] = fdot;
}

template <int NS>
static void softmax_bwd_launch(float *ds, uint16_t *dsb, float *rowdot, const float *dp, const float *p, float scale,
                               int T, size_t rows, cudaStream_t s) {
    const unsigned blocks = (unsigned)((rows + SM_ROWS - 1) / SM_ROWS);
    softmax_bwd_kernel<NS><<<blocks, SM_THREADS, 0, s>>>(ds, dsb, rowdot, dp, p, scale, T, rows);
}

extern "C" void sbt_attn_softmax_backward(float *ds, uint16_t *ds_bf16, float *rowdot, const float *dp, const float *p,
                                          float scale, int BH, int T, cudaStream_t s) {
    if (BH <= 0 || T <= 0) return;
    const size_t rows = (size_t)BH * T;
    switch (sm_ns(T)) {
    case 1: softmax_bwd_launch<1>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    case 2: softmax_bwd_launch<2>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    case 4: softmax_bwd_launch<4>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    case 8: softmax_bwd_launch<8>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    case 16: softmax_bwd_launch<16>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    case 32: softmax_bwd_launch<32>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    default: softmax_bwd_launch<0>(ds, ds_bf16, rowdot, dp, p, scale, T, rows, s); break;
    }
}

/* ------------------------------------------------------------ per-head reductions */

/* One block per head; thread t sums entries k = t, t + 256, ... of the head's B*T (b-major)
 * list in double, then the fixed block tree. The order depends only on B and T. */
__global__ void __launch_bounds__(SM_RED_THREADS) sink_logit_bwd_kernel(float *dsink, const float *extra_p,
                                                                        const float *rowdot, int B, int H, int T) {
    __shared__ double red[SM_RED_THREADS / SBT_WARP];
    const int h = blockIdx.x;
    const size_t total = (size_t)B * T;
    double acc = 0.0;
    for (size_t k = threadIdx.x; k < total; k += SM_RED_THREADS) {
        const size_t idx = ((k / T) * H + h) * T + k % T;
        acc += (double)extra_p[idx] * rowdot[idx];
    }
    acc = block_sum<SM_RED_THREADS>(acc, red);
    if (threadIdx.x == 0) dsink[h] += (float)(-acc);
}

extern "C" void sbt_sink_logit_backward(float *dsink, const float *extra_p, const float *rowdot, int B, int H, int T,
                                        cudaStream_t s) {
    if (B <= 0 || H <= 0 || T <= 0) return;
    sink_logit_bwd_kernel<<<H, SM_RED_THREADS, 0, s>>>(dsink, extra_p, rowdot, B, H, T);
}

/* sum[h] += p[b*H + h, i, 0] over b and i >= first_query: same layout of the work as above. */
__global__ void __launch_bounds__(SM_RED_THREADS) sink_share_kernel(double *sum, const float *p, int B, int H, int T,
                                                                    int first_query) {
    __shared__ double red[SM_RED_THREADS / SBT_WARP];
    const int h = blockIdx.x, nq = T - first_query;
    const size_t total = (size_t)B * nq;
    double acc = 0.0;
    for (size_t k = threadIdx.x; k < total; k += SM_RED_THREADS) {
        const size_t b = k / nq, i = first_query + k % nq;
        acc += (double)p[((b * H + h) * T + i) * T];
    }
    acc = block_sum<SM_RED_THREADS>(acc, red);
    if (threadIdx.x == 0) sum[h] += acc;
}

extern "C" void sbt_sink_share(double *sum, const float *p, int B, int H, int T, int first_query, cudaStream_t s) {
    if (first_query < 0) first_query = 0; /* as sb_train_sink_share_accumulate */
    if (B <= 0 || H <= 0 || T <= 0 || first_query >= T) return;
    sink_share_kernel<<<H, SM_RED_THREADS, 0, s>>>(sum, p, B, H, T, first_query);
}
