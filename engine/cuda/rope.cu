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

/* Decode mode's new token in one launch (kernels.h sbk_decode_qkv_store): block b is head b of
 * the fused row, q heads [0, n_q), then k heads, then v heads (each head_dim floats). Each
 * element is read and written by one thread only, so no barrier is needed. */
__global__ void decode_qkv_kernel(float *qkv, int n_q, int n_kv, int head_dim, int half, int style,
                                  const float *q_cos, const float *q_sin, const float *k_cos, const float *k_sin,
                                  void *k_cache, void *v_cache, sbk_dtype dt, float *k_raw, const int64_t *dst_row) {
    pdl_trigger();
    pdl_wait();
    const int b = blockIdx.x;
    float *hp = qkv + (size_t)b * head_dim;
    const bool is_q = b < n_q, is_k = !is_q && b < n_q + n_kv;
    const size_t o = (size_t)*dst_row * n_kv * head_dim + (size_t)(is_q ? 0 : is_k ? b - n_q : b - n_q - n_kv) * head_dim;
    if (!is_q && !is_k) {
        for (int d = threadIdx.x; d < head_dim; d += blockDim.x) store_from_f32(v_cache, dt, o + d, hp[d]);
        return;
    }
    const float *ct = is_q ? q_cos : k_cos, *st = is_q ? q_sin : k_sin;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        const int ia = style == SBK_ROPE_INTERLEAVED ? 2 * j : j;
        const int ib = style == SBK_ROPE_INTERLEAVED ? 2 * j + 1 : j + half;
        const float a = hp[ia], bb = hp[ib], c = ct[j], s = st[j];
        const float ya = rot_lo(a, bb, c, s), yb = rot_hi(a, bb, c, s);
        hp[ia] = ya;
        hp[ib] = yb;
        if (is_k) {
            if (k_raw) k_raw[o + ia] = a, k_raw[o + ib] = bb;
            store_from_f32(k_cache, dt, o + ia, ya);
            store_from_f32(k_cache, dt, o + ib, yb);
        }
    }
    if (is_k)
        for (int d = 2 * half + threadIdx.x; d < head_dim; d += blockDim.x) {
            const float y = hp[d];
            if (k_raw) k_raw[o + d] = y;
            store_from_f32(k_cache, dt, o + d, y);
        }
}

extern "C" void sbk_decode_qkv_store(float *qkv, int n_q, int n_kv, int head_dim, int rotary_dim, int style,
                                     const float *q_cos, const float *q_sin, const float *k_cos, const float *k_sin,
                                     void *k_cache, void *v_cache, sbk_dtype dt, float *k_raw, const int64_t *dst_row,
                                     cudaStream_t s) {
    if (n_q <= 0 || n_kv <= 0 || head_dim <= 0 || rotary_dim < 0 || rotary_dim > head_dim) return;
    const int half = rotary_dim / 2;
    int threads = 32;
    while (threads < 128 && threads < (half > 0 ? half : head_dim)) threads *= 2;
    launch_pdl(decode_qkv_kernel, dim3((unsigned)(n_q + 2 * n_kv)), dim3((unsigned)threads), s, qkv, n_q, n_kv,
               head_dim, half, style, q_cos, q_sin, k_cos, k_sin, k_cache, v_cache, dt, k_raw, dst_row);
}
