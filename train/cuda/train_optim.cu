/* Optimizer kernels of the GPU trainer (train/cuda/train_kernels.h): the squared gradient norm
 * (for clipping) and the AdamW step, as train/adamw.c and train/train_run.c. */
#include "train/cuda/train_common.cuh"

using namespace sbt;

#define SQ_THREADS 256
#define SQ_PER_THREAD 16 /* elements per thread before another block is worth it */
#define SQ_MAX_BLOCKS 1024
#define AW_THREADS 256

/* ------------------------------------------------------------ sum of squares */

/* Blocks for n elements: a function of n only, and so is the order of every addition. */
static unsigned sq_blocks(size_t n) {
    size_t b = (n + (size_t)SQ_THREADS * SQ_PER_THREAD - 1) / ((size_t)SQ_THREADS * SQ_PER_THREAD);
    return b < 1 ? 1u : b > SQ_MAX_BLOCKS ? (unsigned)SQ_MAX_BLOCKS : (unsigned)b;
}

extern "C" size_t sbt_sumsq_scratch(size_t n) { return sq_blocks(n); }

/* part[b] = sum of g[i]^2 over i = b * 256 + t + k * (blocks * 256): strided so every load of
 * a warp is one coalesced line; four loads in flight per step, added in index order. */
__global__ void __launch_bounds__(SQ_THREADS) sumsq_partial_kernel(double *part, const float *g, size_t n) {
    __shared__ double red[SQ_THREADS / SBT_WARP];
    const size_t stride = (size_t)gridDim.x * SQ_THREADS;
    size_t i = (size_t)blockIdx.x * SQ_THREADS + threadIdx.x;
    double acc = 0.0;
    for (; i + 3 * stride < n; i += 4 * stride) {
        const float a = g[i], b = g[i + stride], c = g[i + 2 * stride], d = g[i + 3 * stride];
        acc += (double)a * a;
        acc += (double)b * b;
        acc += (double)c * c;
        acc += (double)d * d;
    }
    for (; i < n; i += stride) acc += (double)g[i] * g[i];
    acc = block_sum<SQ_THREADS>(acc, red);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(SQ_THREADS) sumsq_final_kernel(double *out, const double *part, unsigned nblk) {
    __shared__ double red[SQ_THREADS / SBT_WARP];
    double acc = 0.0;
    for (unsigned b = threadIdx.x; b < nblk; b += SQ_THREADS) acc += part[b];
    acc = block_sum<SQ_THREADS>(acc, red);
    if (threadIdx.x == 0) out[0] = acc;
}

extern "C" void sbt_sumsq(double *out, double *scratch, const float *g, size_t n, cudaStream_t s) {
    const unsigned nblk = sq_blocks(n);
    sumsq_partial_kernel<<<nblk, SQ_THREADS, 0, s>>>(scratch, g, n); /* n == 0 writes zeros */
    sumsq_final_kernel<<<1, SQ_THREADS, 0, s>>>(out, scratch, nblk);
}

/* ------------------------------------------------------------ AdamW */

/* sb_adamw_update's float arithmetic, operation by operation (no contraction), with the
 * clipping scale of train_run.c from the device-side squared norm. */
__global__ void __launch_bounds__(AW_THREADS)
    adamw_kernel(float *p, uint16_t *pb, const float *g, float *m, float *v, const uint8_t *mask, size_t n, float lr,
                 float b1, float b2, float eps, float decay, float bc1, float bc2, const double *sumsq, float clip) {
    const double norm = sqrt(sumsq[0]);
    const float scale = clip > 0.0f && norm > (double)clip ? (float)((double)clip / (norm + 1e-6)) : 1.0f;
    const float ob1 = __fsub_rn(1.0f, b1), ob2 = __fsub_rn(1.0f, b2);
    for (size_t i = blockIdx.x * (size_t)AW_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * AW_THREADS) {
        const float gi = __fmul_rn(g[i], scale);
        const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(ob1, gi));
        const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(ob2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        float pi = p[i];
        if (mask[i]) pi = __fsub_rn(pi, __fmul_rn(decay, pi));
        const float den = __fadd_rn(__fsqrt_rn(__fdiv_rn(vi, bc2)), eps);
        pi = __fsub_rn(pi, __fdiv_rn(__fmul_rn(lr, __fdiv_rn(mi, bc1)), den));
        p[i] = pi;
        if (pb) pb[i] = f32_to_bf16_bits(pi);
    }
}

extern "C" void sbt_adamw(float *p, uint16_t *p_bf16, const float *g, float *m, float *v, const uint8_t *mask,
                          size_t n, float lr, float beta1, float beta2, float eps, float decay, float bc1, float bc2,
                          const double *sumsq, float clip, cudaStream_t s) {
    if (n == 0) return;
    adamw_kernel<<<grid_for(n, AW_THREADS), AW_THREADS, 0, s>>>(p, p_bf16, g, m, v, mask, n, lr, beta1, beta2, eps,
                                                                decay, bc1, bc2, sumsq, clip);
}
