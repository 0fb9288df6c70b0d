/* RMSNorm forward and backward of the GPU trainer (train/cuda/train_kernels.h).
 *
 * Forward and the din part of the backward: one warp per row (8 rows per 256-thread block),
 * float4 loads when C % 4 == 0 and the pointers allow, row sums in double as engine/ops.c
 * rmsnorm_forward, then the CPU's float arithmetic without fused multiply-adds.
 * dw: a row-chunk x column grid writes per-chunk column sums to scratch (each thread one
 * column, rows in order: coalesced across the warp), then one kernel adds the chunks in a fixed
 * order. No atomics anywhere. */
#include "train/cuda/train_common.cuh"

using namespace sbt;

#define RN_THREADS 256
#define RN_ROWS (RN_THREADS / SBT_WARP)
/* dw partials: at most RN_MAX_CHUNKS row chunks of at least RN_MIN_CHUNK rows */
#define RN_MIN_CHUNK 32
#define RN_MAX_CHUNKS 512
#define RN_DW_THREADS 256
/* the chunk reduction: 32 columns x 8 chunk lanes per block */
#define RN_RED_COLS 32
#define RN_RED_LANES 8

/* ------------------------------------------------------------ forward */

__device__ __forceinline__ float rn_y(float x, float r, float w) { return __fmul_rn(__fmul_rn(x, r), w); }

template <bool VEC>
__global__ void __launch_bounds__(RN_THREADS) rmsnorm_fwd_kernel(float *out, uint16_t *outb, float *rstd,
                                                                 const float *in, const float *w, float eps, int N,
                                                                 int C) {
    const int row = blockIdx.x * RN_ROWS + threadIdx.x / SBT_WARP, lane = threadIdx.x % SBT_WARP;
    if (row >= N) return; /* the whole warp leaves: no block barrier below */
    const size_t base = (size_t)row * C;
    const float *x = in + base;
    double ss = 0.0;
    if (VEC) {
        const float4 *x4 = (const float4 *)x;
#pragma unroll 4
        for (int c = lane; c < C / 4; c += SBT_WARP) {
            float4 v = x4[c];
            ss += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z + (double)v.w * v.w;
        }
    } else {
        for (int c = lane; c < C; c += SBT_WARP) ss += (double)x[c] * x[c];
    }
    ss = warp_sum(ss);
    const float r = (float)(1.0 / sqrt(ss / C + (double)eps));
    if (rstd && lane == 0) rstd[row] = r;
    /* each lane rewrites only what it read, so out may alias in */
    if (VEC) {
        const float4 *x4 = (const float4 *)x, *w4 = (const float4 *)w;
#pragma unroll 4
        for (int c = lane; c < C / 4; c += SBT_WARP) {
            float4 v = x4[c], g = w4[c];
            float4 y = make_float4(rn_y(v.x, r, g.x), rn_y(v.y, r, g.y), rn_y(v.z, r, g.z), rn_y(v.w, r, g.w));
            if (out) ((float4 *)(out + base))[c] = y;
            if (outb)
                ((ushort4 *)(outb + base))[c] = make_ushort4(f32_to_bf16_bits(y.x), f32_to_bf16_bits(y.y),
                                                             f32_to_bf16_bits(y.z), f32_to_bf16_bits(y.w));
        }
    } else {
        for (int c = lane; c < C; c += SBT_WARP) {
            float y = rn_y(x[c], r, w[c]);
            if (out) out[base + c] = y;
            if (outb) outb[base + c] = f32_to_bf16_bits(y);
        }
    }
}

extern "C" void sbt_rmsnorm_forward(float *out_f32, uint16_t *out_bf16, float *rstd, const float *in, const float *w,
                                    float eps, int N, int C, cudaStream_t s) {
    if (N <= 0 || C <= 0 || (!out_f32 && !out_bf16 && !rstd)) return;
    const unsigned blocks = (unsigned)((N + RN_ROWS - 1) / RN_ROWS);
    if (C % 4 == 0 && aligned(in, 16) && aligned(w, 16) && aligned(out_f32, 16) && aligned(out_bf16, 8))
        rmsnorm_fwd_kernel<true><<<blocks, RN_THREADS, 0, s>>>(out_f32, out_bf16, rstd, in, w, eps, N, C);
    else
        rmsnorm_fwd_kernel<false><<<blocks, RN_THREADS, 0, s>>>(out_f32, out_bf16, rstd, in, w, eps, N, C);
}

/* ------------------------------------------------------------ backward */

/* dx += r (dy w) - x r^3 / C sum(dy w x), as train/layers_backward.c (dot in double). */
__device__ __forceinline__ float rn_dx(float dx, float x, float dy, float w, float r, float k) {
    return __fadd_rn(dx, __fsub_rn(__fmul_rn(__fmul_rn(r, dy), w), __fmul_rn(k, x)));
}

template <bool VEC>
__global__ void __launch_bounds__(RN_THREADS) rmsnorm_bwd_kernel(float *din, const float *dout, const float *in,
                                                                 const float *w, const float *rstd, int N, int C) {
    const int row = blockIdx.x * RN_ROWS + threadIdx.x / SBT_WARP, lane = threadIdx.x % SBT_WARP;
    if (row >= N) return;
    const size_t base = (size_t)row * C;
    const float *x = in + base, *dy = dout + base;
    float *dx = din + base;
    double dot = 0.0;
    if (VEC) {
        const float4 *x4 = (const float4 *)x, *dy4 = (const float4 *)dy, *w4 = (const float4 *)w;
#pragma unroll 4
        for (int c = lane; c < C / 4; c += SBT_WARP) {
            float4 a = x4[c], d = dy4[c], g = w4[c];
            dot += (double)d.x * g.x * a.x + (double)d.y * g.y * a.y + (double)d.z * g.z * a.z +
                   (double)d.w * g.w * a.w;
        }
    } else {
        for (int c = lane; c < C; c += SBT_WARP) dot += (double)dy[c] * w[c] * x[c];
    }
    dot = warp_sum(dot);
    const float r = rstd[row];
    const float k = (float)(dot * r * r * r / C);
    if (VEC) {
        const float4 *x4 = (const float4 *)x, *dy4 = (const float4 *)dy, *w4 = (const float4 *)w;
        float4 *dx4 = (float4 *)dx;
#pragma unroll 4
        for (int c = lane; c < C / 4; c += SBT_WARP) {
            float4 a = x4[c], d = dy4[c], g = w4[c], o = dx4[c];
            dx4[c] = make_float4(rn_dx(o.x, a.x, d.x, g.x, r, k), rn_dx(o.y, a.y, d.y, g.y, r, k),
                                 rn_dx(o.z, a.z, d.z, g.z, r, k), rn_dx(o.w, a.w, d.w, g.w, r, k));
        }
    } else {
        for (int c = lane; c < C; c += SBT_WARP) dx[c] = rn_dx(dx[c], x[c], dy[c], w[c], r, k);
    }
}

/* Rows per chunk of the dw partial sums: a function of N only (so is the scratch size). */
static int rn_chunk_rows(int N) {
    int rows = (N + RN_MAX_CHUNKS - 1) / RN_MAX_CHUNKS;
    return rows < RN_MIN_CHUNK ? RN_MIN_CHUNK : rows;
}
static int rn_chunks(int N) { return (N + rn_chunk_rows(N) - 1) / rn_chunk_rows(N); }

extern "C" size_t sbt_rmsnorm_backward_scratch(int N, int C) {
    if (N <= 0 || C <= 0) return 1;
    return (size_t)rn_chunks(N) * C;
}

/* scratch[chunk, c] = sum over the chunk's rows, in order, of dy * x * r (the CPU's product) */
__global__ void __launch_bounds__(RN_DW_THREADS) rmsnorm_dw_partial_kernel(float *scratch, const float *dout,
                                                                           const float *in, const float *rstd, int N,
                                                                           int C, int chunk_rows) {
    const int chunk = blockIdx.x, c = blockIdx.y * RN_DW_THREADS + threadIdx.x;
    if (c >= C) return;
    const int n0 = chunk * chunk_rows, n1 = min(N, n0 + chunk_rows);
    float acc = 0.0f;
#pragma unroll 8
    for (int n = n0; n < n1; n++) {
        const size_t i = (size_t)n * C + c;
        acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(dout[i], in[i]), rstd[n]));
    }
    scratch[(size_t)chunk * C + c] = acc;
}

/* dw[c] += sum of the chunks: lane l of a column sums chunks l, l + 8, ... in order, then the
 * 8 lane sums are added in lane order. */
__global__ void __launch_bounds__(RN_RED_COLS *RN_RED_LANES) rmsnorm_dw_reduce_kernel(float *dw, const float *scratch,
                                                                                      int chunks, int C) {
    __shared__ float part[RN_RED_LANES][RN_RED_COLS];
    const int col = threadIdx.x % RN_RED_COLS, l = threadIdx.x / RN_RED_COLS;
    const int c = blockIdx.x * RN_RED_COLS + col;
    float acc = 0.0f;
    if (c < C)
        for (int k = l; k < chunks; k += RN_RED_LANES) acc += scratch[(size_t)k * C + c];
    part[l][col] = acc;
    __syncthreads();
    if (l == 0 && c < C) {
        float t = part[0][col];
        for (int i = 1; i < RN_RED_LANES; i++) t += part[i][col];
        dw[c] += t;
    }
}

extern "C" void sbt_rmsnorm_backward(float *din, float *dw, float *scratch, const float *dout, const float *in,
                                     const float *w, const float *rstd, int N, int C, cudaStream_t s) {
    if (N <= 0 || C <= 0) return;
    const unsigned blocks = (unsigned)((N + RN_ROWS - 1) / RN_ROWS);
    if (din) {
        if (C % 4 == 0 && aligned(din, 16) && aligned(dout, 16) && aligned(in, 16) && aligned(w, 16))
            rmsnorm_bwd_kernel<true><<<blocks, RN_THREADS, 0, s>>>(din, dout, in, w, rstd, N, C);
        else
            rmsnorm_bwd_kernel<false><<<blocks, RN_THREADS, 0, s>>>(din, dout, in, w, rstd, N, C);
    }
    if (dw) {
        const int chunks = rn_chunks(N);
        /* chunks <= RN_MAX_CHUNKS on x; columns on y: C / 256 <= 65535 for any C < 16.7M */
        dim3 grid((unsigned)chunks, (unsigned)((C + RN_DW_THREADS - 1) / RN_DW_THREADS));
        rmsnorm_dw_partial_kernel<<<grid, RN_DW_THREADS, 0, s>>>(scratch, dout, in, rstd, N, C, rn_chunk_rows(N));
        rmsnorm_dw_reduce_kernel<<<(unsigned)((C + RN_RED_COLS - 1) / RN_RED_COLS), RN_RED_COLS * RN_RED_LANES, 0,
                                   s>>>(dw, scratch, chunks, C);
    }
}
