/* Token embedding forward (a row gather) and backward (a scatter-add in the CPU's order) of the
 * GPU trainer (train/cuda/train_kernels.h). Both bit-exact with train/layers_backward.c. */
#include "train/cuda/train_common.cuh"

using namespace sbt;

#define EMB_THREADS 256
#define EMB_BWD_THREADS 128

/* T = float or float4; C in units of T. Consecutive threads copy consecutive units of a row. */
template <typename V>
__global__ void embed_fwd_kernel(V *out, const V *table, const int32_t *ids, size_t total, int C) {
    for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < total; u += (size_t)gridDim.x * blockDim.x) {
        const size_t n = u / C;
        const int c = (int)(u % C);
        out[u] = table[(size_t)ids[n] * C + c];
    }
}

extern "C" void sbt_embed_forward(float *out, const float *table, const int32_t *ids, int N, int C, cudaStream_t s) {
    if (N <= 0 || C <= 0) return;
    if (C % 4 == 0 && aligned(out, 16) && aligned(table, 16)) {
        size_t total = (size_t)N * (C / 4);
        embed_fwd_kernel<float4><<<grid_for(total, EMB_THREADS), EMB_THREADS, 0, s>>>(
            (float4 *)out, (const float4 *)table, ids, total, C / 4);
    } else {
        size_t total = (size_t)N * C;
        embed_fwd_kernel<float><<<grid_for(total, EMB_THREADS), EMB_THREADS, 0, s>>>(out, table, ids, total, C);
    }
}

__device__ __forceinline__ void add_to(float &a, float b) { a += b; }
__device__ __forceinline__ void add_to(float4 &a, float4 b) { a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w; }

/* One block per distinct id: each thread owns columns of that table row and adds the id's
 * positions in increasing order, starting from the row's current value — the same float
 * additions in the same order as the CPU's dst[c] += src[c] loop over n. No two blocks touch
 * the same row, so no atomics. */
template <typename V>
__global__ void __launch_bounds__(EMB_BWD_THREADS)
    embed_bwd_kernel(V *dtable, const V *dout, const int32_t *rows, const int32_t *start, const int32_t *pos, int C) {
    const int r = blockIdx.x;
    const int k0 = start[r], k1 = start[r + 1];
    V *dst = dtable + (size_t)rows[r] * C;
    for (int c = threadIdx.x; c < C; c += EMB_BWD_THREADS) {
        V acc = dst[c];
        for (int k = k0; k < k1; k++) add_to(acc, dout[(size_t)pos[k] * C + c]);
        dst[c] = acc;
    }
}

extern "C" void sbt_embed_backward(float *dtable, const float *dout, const int32_t *rows, const int32_t *start,
                                   const int32_t *pos, int n_rows, int C, cudaStream_t s) {
    if (n_rows <= 0 || C <= 0) return;
    if (C % 4 == 0 && aligned(dtable, 16) && aligned(dout, 16))
        embed_bwd_kernel<float4><<<n_rows, EMB_BWD_THREADS, 0, s>>>((float4 *)dtable, (const float4 *)dout, rows,
                                                                    start, pos, C / 4);
    else
        embed_bwd_kernel<float><<<n_rows, EMB_BWD_THREADS, 0, s>>>(dtable, dout, rows, start, pos, C);
}
