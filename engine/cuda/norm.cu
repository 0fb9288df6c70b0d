/* RMSNorm / LayerNorm (engine/cuda/kernels.h sbk_norm): one block per row, sums in double
 * (as engine/ops.c), then the same float arithmetic without fused multiply-adds. */
#include "engine/cuda/common.cuh"

using namespace sbk;

#define NORM_THREADS 256

/* Sum of v over the block (every thread gets it). red: NORM_THREADS/32 doubles of shared. */
__device__ double block_sum(double v, double *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* red may still be read from a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    double t = 0.0;
    for (int i = 0; i < NORM_THREADS / 32; i++) t += red[i];
    return t;
}

__global__ void __launch_bounds__(NORM_THREADS) norm_kernel(float *out_f32, void *out_half, sbk_dtype half_dt,
                                                            const float *in, const float *w, const float *b,
                                                            int layer_norm, float eps, int C) {
    __shared__ double red[NORM_THREADS / 32];
    pdl_trigger();
    pdl_wait();
    const size_t row = (size_t)blockIdx.x * C;
    const float *x = in + row;
    float r, m = 0.0f;
    if (layer_norm) {
        double sum = 0.0;
        for (int c = threadIdx.x; c < C; c += NORM_THREADS) sum += (double)x[c];
        const double mean = block_sum(sum, red) / C;
        double var = 0.0;
        for (int c = threadIdx.x; c < C; c += NORM_THREADS) {
            double d = (double)x[c] - mean;
            var += d * d;
        }
        var = block_sum(var, red) / C;
        r = (float)(1.0 / sqrt(var + (double)eps));
        m = (float)mean;
    } else {
        double ss = 0.0;
        for (int c = threadIdx.x; c < C; c += NORM_THREADS) ss += (double)x[c] * (double)x[c];
        ss = block_sum(ss, red);
        r = (float)(1.0 / sqrt(ss / C + (double)eps));
    }
    /* every read of this row is done before any thread writes (block_sum ends in a barrier),
     * and each thread then rewrites only the elements it reads, so out may alias in */
    for (int c = threadIdx.x; c < C; c += NORM_THREADS) {
        float y;
        if (layer_norm)
            y = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(x[c], m), r), w[c]), b ? b[c] : 0.0f);
        else
            y = __fmul_rn(__fmul_rn(x[c], r), w[c]);
        if (out_half) store_from_f32(out_half, half_dt, row + c, y);
        if (out_f32) out_f32[row + c] = y;
    }
}

extern "C" void sbk_norm(float *out_f32, void *out_half, sbk_dtype half_dt, const float *in, const float *w,
                         const float *b, int layer_norm, float eps, int T, int C, cudaStream_t s) {
    if (T <= 0 || C <= 0 || (!out_f32 && !out_half)) return;
    launch_pdl(norm_kernel, dim3((unsigned)T), dim3(NORM_THREADS), s, out_f32, out_half, half_dt, in, w,
               layer_norm ? b : nullptr, layer_norm, eps, C);
}
