/* RoPE with host-computed tables (engine/cuda/kernels.h sbk_rope, sbk_rerotate). The
 * arithmetic is engine/ops.c rope_rotate_head's, with explicitly rounded products and sums so
 * nvcc cannot contract them into fused multiply-adds: results are bit-identical to the CPU. */
#include "engine/cuda/common.cuh"

using namespace sbk;

#define ROPE_THREADS 256

__device__ __forceinline__ float rot_lo(float a, float b, float c, float s) {
    return __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)); /* a*cs - b*sn */
}
__device__ __forceinline__ float rot_hi(float a, float b, float c, float s) {
    return __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c)); /* a*sn + b*cs */
}

/* One thread per (row t, head, pair j). */
__global__ void rope_kernel(float *x, int T, size_t row_stride, int n_heads, int head_dim, int half, int style,
                            const float *cos_tab, const float *sin_tab, int table_row_stride) {
    const size_t n = (size_t)T * n_heads * half;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(i % half);
        const size_t th = i / half;
        const int h = (int)(th % n_heads);
        const size_t t = th / n_heads;
        float *hp = x + t * row_stride + (size_t)h * head_dim;
        const float c = cos_tab[t * (size_t)table_row_stride + j], s = sin_tab[t * (size_t)table_row_stride + j];
        const int ia = style == SBK_ROPE_INTERLEAVED ? 2 * j : j;
        const int ib = style == SBK_ROPE_INTERLEAVED ? 2 * j + 1 : j + half;
        const float a = hp[ia], b = hp[ib];
        hp[ia] = rot_lo(a, b, c, s);
        hp[ib] = rot_hi(a, b, c, s);
    }
}

extern "C" void sbk_rope(float *x, int T, size_t row_stride, int n_heads, int head_dim, int rotary_dim, int style,
                         const float *cos_tab, const float *sin_tab, int table_row_stride, cudaStream_t s) {
    const int half = rotary_dim / 2;
    if (T <= 0 || n_heads <= 0 || half <= 0) return;
    const size_t n = (size_t)T * n_heads * half;
    rope_kernel<<<grid_for(n, ROPE_THREADS), ROPE_THREADS, 0, s>>>(x, T, row_stride, n_heads, head_dim, half, style,
                                                                   cos_tab, sin_tab, table_row_stride);
}

/* One thread per (moving key i, element e of its row): k_raw and k_cache are different
 * buffers, so each output element is computed independently from the raw row. */
__global__ void rerotate_kernel(void *k_cache, sbk_dtype dt, const float *k_raw, const int32_t *slots, int m,
                                const float *cos_tab, const float *sin_tab, int kvd, int head_dim, int rotary_dim,
                                int style) {
    const int half = rotary_dim / 2;
    const size_t n = (size_t)m * kvd;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int row = (int)(i / kvd), e = (int)(i % kvd);
        const int d = e % head_dim;
        const size_t base = (size_t)slots[row] * kvd;
        const float *hp = k_raw + base + (e - d); /* the head's raw values */
        float y;
        if (d >= 2 * half) {
            y = hp[d];
        } else {
            int j, ia, ib;
            bool lo;
            if (style == SBK_ROPE_INTERLEAVED) {
                j = d / 2, ia = 2 * j, ib = 2 * j + 1, lo = (d % 2) == 0;
            } else {
                lo = d < half;
                j = lo ? d : d - half, ia = j, ib = j + half;
            }
            const float c = cos_tab[(size_t)row * half + j], s = sin_tab[(size_t)row * half + j];
            y = lo ? rot_lo(hp[ia], hp[ib], c, s) : rot_hi(hp[ia], hp[ib], c, s);
        }
        store_from_f32(k_cache, dt, base + e, y);
    }
}

extern "C" void sbk_rerotate(void *k_cache, sbk_dtype dt, const float *k_raw, const int32_t *slots, int m,
                             const float *cos_tab, const float *sin_tab, int n_kv_heads, int head_dim, int rotary_dim,
                             int style, cudaStream_t s) {
    if (m <= 0 || n_kv_heads <= 0 || head_dim <= 0) return;
    const int kvd = n_kv_heads * head_dim;
    const size_t n = (size_t)m * kvd;
    rerotate_kernel<<<grid_for(n, ROPE_THREADS), ROPE_THREADS, 0, s>>>(k_cache, dt, k_raw, slots, m, cos_tab, sin_tab,
                                                                       kvd, head_dim, rotary_dim, style);
}
