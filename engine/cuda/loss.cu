/* Loss and greedy sampling (engine/cuda/kernels.h sbk_nll, sbk_argmax). */
#include <float.h>
#include <math.h>

#include "engine/cuda/common.cuh"

using namespace sbk;

#define LOSS_THREADS 512

/* One block per row: the float max (as engine/ops.c), then sum exp((double)l - m) in double. */
__global__ void __launch_bounds__(LOSS_THREADS) nll_kernel(float *nll, const float *logits, size_t ldl,
                                                           const int32_t *targets, int V) {
    __shared__ float redf[LOSS_THREADS / 32];
    __shared__ double redd[LOSS_THREADS / 32];
    const int t = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float *x = logits + (size_t)t * ldl;
    const int32_t target = targets[t];
    if (target < 0 || target >= V || V <= 0) {
        if (threadIdx.x == 0) nll[t] = __int_as_float(0x7fc00000);
        return;
    }
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += LOSS_THREADS) m = fmaxf(m, x[i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0) redf[warp] = m;
    __syncthreads();
    m = redf[0];
    for (int i = 1; i < LOSS_THREADS / 32; i++) m = fmaxf(m, redf[i]);
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += LOSS_THREADS) sum += exp((double)x[i] - (double)m);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) redd[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;
        for (int i = 0; i < LOSS_THREADS / 32; i++) s += redd[i];
        nll[t] = (float)(log(s) + (double)m - (double)x[target]);
    }
}

extern "C" void sbk_nll(float *nll, const float *logits, size_t ldl, const int32_t *targets, int T, int V,
                        cudaStream_t s) {
    if (T <= 0) return;
    nll_kernel<<<T, LOSS_THREADS, 0, s>>>(nll, logits, ldl, targets, V);
}

/* (value, index) with the larger value winning, the lower index on ties, NaN never winning. */
__device__ __forceinline__ void argmax_merge(float &v, int &i, float v2, int i2) {
    if (i2 < 0) return;
    if (i < 0 || v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

#define ARGMAX_THREADS 1024

__global__ void __launch_bounds__(ARGMAX_THREADS) argmax_kernel(int32_t *out, const float *x, int V) {
    __shared__ float sv[ARGMAX_THREADS / 32];
    __shared__ int si[ARGMAX_THREADS / 32];
    float v = 0.0f;
    int idx = -1; /* -1: nothing seen (only NaNs) */
    for (int i = threadIdx.x; i < V; i += ARGMAX_THREADS) {
        const float xi = x[i];
        if (xi == xi) argmax_merge(v, idx, xi, i);
    }
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        argmax_merge(v, idx, v2, i2);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) sv[warp] = v, si[warp] = idx;
    __syncthreads();
    if (threadIdx.x == 0) {
        float bv = sv[0];
        int bi = si[0];
        for (int w = 1; w < ARGMAX_THREADS / 32; w++) argmax_merge(bv, bi, sv[w], si[w]);
        *out = bi < 0 ? 0 : bi;
    }
}

extern "C" void sbk_argmax(int32_t *out, const float *logits, int V, cudaStream_t s) {
    if (V <= 0) return;
    argmax_kernel<<<1, ARGMAX_THREADS, 0, s>>>(out, logits, V);
}
