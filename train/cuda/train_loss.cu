/* Cross-entropy forward and softmax backward over rows of V logits (train/cuda/train_kernels.h
 * sbt_crossentropy), as train/layers_forward.c train_row_lse and layers_backward.c
 * crossentropy_softmax_backward.
 *
 * One 256-thread block per row. Thread t owns items t, t + 256, ... where an item is a float4
 * (V % 4 == 0 and aligned pointers) or a float; up to K items per thread stay in registers
 * (V <= 8192 vectorised, <= 4096 scalar), so each logit is read from memory once and each
 * gradient written once. Longer rows re-read memory. The max and the double sum of exps are
 * fixed block trees. */
#include "train/cuda/train_common.cuh"

using namespace sbt;

#define CE_THREADS 256

template <bool VEC> struct ce_item;
template <> struct ce_item<true> {
    static constexpr int W = 4;
    __device__ __forceinline__ static void load(float *v, const float *x, int u) {
        float4 a = ((const float4 *)x)[u];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    }
    __device__ __forceinline__ static void store(float *d, uint16_t *db, int u, const float *v) {
        if (d) ((float4 *)d)[u] = make_float4(v[0], v[1], v[2], v[3]);
        if (db)
            ((ushort4 *)db)[u] = make_ushort4(f32_to_bf16_bits(v[0]), f32_to_bf16_bits(v[1]), f32_to_bf16_bits(v[2]),
                                              f32_to_bf16_bits(v[3]));
    }
};
template <> struct ce_item<false> {
    static constexpr int W = 1;
    __device__ __forceinline__ static void load(float *v, const float *x, int u) { v[0] = x[u]; }
    __device__ __forceinline__ static void store(float *d, uint16_t *db, int u, const float *v) {
        if (d) d[u] = v[0];
        if (db) db[u] = f32_to_bf16_bits(v[0]);
    }
};

/* the gradient of one logit: dscale * (softmax - onehot), 0 for an ignored row */
__device__ __forceinline__ float ce_grad(float x, float lse, int j, int tgt, float dscale) {
    if (tgt < 0) return 0.0f;
    float d = __fmul_rn(expf(x - lse), dscale);
    return j == tgt ? __fsub_rn(d, dscale) : d;
}

/* K > 0: items cached in registers (K * CE_THREADS * W >= V); K == 0: re-read memory. */
template <int K, bool VEC>
__global__ void __launch_bounds__(CE_THREADS) ce_kernel(float *losses, float *dl, uint16_t *dlb, const float *logits,
                                                        const int32_t *targets, float dscale, int V) {
    using It = ce_item<VEC>;
    constexpr int W = It::W;
    __shared__ float redf[CE_THREADS / SBT_WARP];
    __shared__ double redd[CE_THREADS / SBT_WARP];
    const size_t row = blockIdx.x;
    const float *x = logits + row * V;
    float *d = dl ? dl + row * V : nullptr; /* may be x: every read of the row precedes the barriers */
    uint16_t *db = dlb ? dlb + row * V : nullptr;
    const int tgt = targets[row];
    const bool valid = tgt < V;
    const float xt = tgt >= 0 && valid ? x[tgt] : 0.0f;
    const int items = V / W; /* VEC requires V % 4 == 0 */

    float v[K > 0 ? K * W : 1];
    float m = -INFINITY;
    if constexpr (K > 0) {
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int u = threadIdx.x + CE_THREADS * k;
            if (u < items)
                It::load(v + k * W, x, u);
            else
#pragma unroll
                for (int q = 0; q < W; q++) v[k * W + q] = -INFINITY;
#pragma unroll
            for (int q = 0; q < W; q++) m = fmaxf(m, v[k * W + q]);
        }
    } else {
        for (int j = threadIdx.x; j < V; j += CE_THREADS) m = fmaxf(m, x[j]);
    }
    m = block_max<CE_THREADS>(m, redf);
    double s = 0.0;
    if constexpr (K > 0) {
#pragma unroll
        for (int k = 0; k < K; k++)
            if (threadIdx.x + CE_THREADS * k < items)
#pragma unroll
                for (int q = 0; q < W; q++) s += (double)expf(v[k * W + q] - m);
    } else {
        for (int j = threadIdx.x; j < V; j += CE_THREADS) s += (double)expf(x[j] - m);
    }
    s = block_sum<CE_THREADS>(s, redd);
    const float lse = m + (float)log(s);
    if (threadIdx.x == 0) losses[row] = tgt < 0 ? 0.0f : valid ? lse - xt : __int_as_float(0x7fc00000);
    if (!d && !db) return;
    const int gt = valid ? tgt : -1; /* an out-of-range target: zero gradient (the loss is NaN) */
    if constexpr (K > 0) {
#pragma unroll
        for (int k = 0; k < K; k++) {
            const int u = threadIdx.x + CE_THREADS * k;
            if (u < items) {
                float g[W];
#pragma unroll
                for (int q = 0; q < W; q++) g[q] = ce_grad(v[k * W + q], lse, u * W + q, gt, dscale);
                It::store(d, db, u, g);
            }
        }
    } else {
        for (int j = threadIdx.x; j < V; j += CE_THREADS) {
            const float g = ce_grad(x[j], lse, j, gt, dscale);
            if (d) d[j] = g;
            if (db) db[j] = f32_to_bf16_bits(g);
        }
    }
}

template <int K, bool VEC>
static void ce_launch(float *losses, float *dl, uint16_t *dlb, const float *logits, const int32_t *targets,
                      float dscale, int N, int V, cudaStream_t s) {
    ce_kernel<K, VEC><<<(unsigned)N, CE_THREADS, 0, s>>>(losses, dl, dlb, logits, targets, dscale, V);
}

extern "C" void sbt_crossentropy(float *losses, float *dlogits_f32, uint16_t *dlogits_bf16, const float *logits,
                                 const int32_t *targets, float dscale, int N, int V, cudaStream_t s) {
    if (N <= 0 || V <= 0) return;
    const bool vec = V % 4 == 0 && aligned(logits, 16) && aligned(dlogits_f32, 16) && aligned(dlogits_bf16, 8);
    /* items per thread: ceil(V / (W * 256)) rounded up to a power of two */
    const int per = vec ? (V / 4 + CE_THREADS - 1) / CE_THREADS : (V + CE_THREADS - 1) / CE_THREADS;
    const int K = per <= 1 ? 1 : per <= 2 ? 2 : per <= 4 ? 4 : per <= 8 ? 8 : per <= 16 && !vec ? 16 : 0;
    if (vec) {
        switch (K) {
        case 1: ce_launch<1, true>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 2: ce_launch<2, true>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 4: ce_launch<4, true>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 8: ce_launch<8, true>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        default: ce_launch<0, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        }
    } else {
        switch (K) {
        case 1: ce_launch<1, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 2: ce_launch<2, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 4: ce_launch<4, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 8: ce_launch<8, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        case 16: ce_launch<16, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        default: ce_launch<0, false>(losses, dlogits_f32, dlogits_bf16, logits, targets, dscale, N, V, s); break;
        }
    }
}
