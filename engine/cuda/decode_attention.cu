/* Decode attention: one query over a slot cache (engine/cuda/kernels.h sbk_decode_attention,
 * engine/attention.c attention_token_forward), flash-decoding style.
 *
 * Pass 1 (grid: splits x heads, DEC_CH keys per block, one thread per key): the thread's
 * score q.k / sqrt(hd) - slope * (query_pos - pos) (masked beyond max_dist), the block's max
 * m_b and sum l_b of exp(s - m_b), and acc_b[d] = sum exp(s - m_b) v[d] (threads over d);
 * (acc_b, m_b, l_b) go to scratch [H][S][hd + 2]. Raw scores go to probs when asked for.
 * Pass 2 (grid: heads): the global max with the extra logit, the rescaled sum, the output,
 * and the probabilities in place of the raw scores.
 * n and query_pos are read on the device, so a captured graph stays valid as the cache fills;
 * the grid covers n_max keys and blocks past n write empty partials.
 *
 * Cost: K and V are read once (n * KV * hd * 2 elements); for n = 4096, 32 heads, hd = 128,
 * bf16: 67 MB, about 15-25 us at 3-4.5 TB/s on H100/H200 (the pass-1 score loop reads each
 * key row with 16-byte loads from one thread; rows are 256 B, so L1 serves the neighbouring
 * sectors). */
#include <math.h>
#include <string.h>

#include "engine/cuda/common.cuh"

using namespace sbk;

#define DEC_CH 128      /* keys per split block */
#define DEC_THREADS 128 /* == DEC_CH: one thread per key in pass 1 */

namespace {

static_assert(DEC_CH == DEC_THREADS, "one thread per key");

/* 8 consecutive elements (16-byte aligned) as floats. */
template <typename T> __device__ __forceinline__ void load8(const T *p, float (&f)[8]);
template <> __device__ __forceinline__ void load8<float>(const float *p, float (&f)[8]) {
    const float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
__device__ __forceinline__ void bf16x2(uint32_t w, float &lo, float &hi) {
    lo = __uint_as_float(w << 16);
    hi = __uint_as_float(w & 0xffff0000u);
}
__device__ __forceinline__ void f16x2(uint32_t w, float &lo, float &hi) {
    __half2 h2;
    memcpy(&h2, &w, 4);
    const float2 f = __half22float2(h2);
    lo = f.x;
    hi = f.y;
}
template <> __device__ __forceinline__ void load8<__nv_bfloat16>(const __nv_bfloat16 *p, float (&f)[8]) {
    const uint4 u = *reinterpret_cast<const uint4 *>(p);
    bf16x2(u.x, f[0], f[1]);
    bf16x2(u.y, f[2], f[3]);
    bf16x2(u.z, f[4], f[5]);
    bf16x2(u.w, f[6], f[7]);
}
template <> __device__ __forceinline__ void load8<__half>(const __half *p, float (&f)[8]) {
    const uint4 u = *reinterpret_cast<const uint4 *>(p);
    f16x2(u.x, f[0], f[1]);
    f16x2(u.y, f[2], f[3]);
    f16x2(u.z, f[4], f[5]);
    f16x2(u.w, f[6], f[7]);
}

__device__ __forceinline__ float block_max(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < DEC_THREADS / 32; i++) r = fmaxf(r, red[i]);
    return r;
}
__device__ __forceinline__ float block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = 0.0f;
    for (int i = 0; i < DEC_THREADS / 32; i++) r += red[i];
    return r;
}

template <typename T, bool VEC>
__global__ void __launch_bounds__(DEC_THREADS)
    decode_pass1(float *scratch, float *probs, const float *q, const T *k, const T *v, const int32_t *slots,
                 const int64_t *pos, const int64_t *query_pos, const int *n_dev, int H, int KV, int hd,
                 int64_t max_dist, const float *alibi) {
    __shared__ float sq[256];
    __shared__ float sp[DEC_CH];
    __shared__ int ss[DEC_CH];
    __shared__ float red[DEC_THREADS / 32];
    const int split = blockIdx.x, h = blockIdx.y, S = gridDim.x, tid = threadIdx.x;
    const int g = h / (H / KV);
    const size_t kvd = (size_t)KV * hd, koff = (size_t)g * hd;
    const int n = *n_dev;
    const int64_t qp = *query_pos;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int d = tid; d < hd; d += DEC_THREADS) sq[d] = q[(size_t)h * hd + d];
    __syncthreads();

    const int i = split * DEC_CH + tid;
    float s = -INFINITY;
    int slot = -1;
    if (i < n) {
        slot = slots[i];
        const int64_t dist = qp - pos[i];
        if (dist <= max_dist) {
            const T *kr = k + (size_t)slot * kvd + koff;
            float dot = 0.0f;
            if (VEC) {
                /* unrolled so a thread has several 16-byte loads of its key row in flight */
#pragma unroll 8
                for (int d = 0; d < hd; d += 8) {
                    float f[8];
                    load8<T>(kr + d, f);
#pragma unroll
                    for (int e = 0; e < 8; e++) dot += sq[d + e] * f[e];
                }
            } else {
                for (int d = 0; d < hd; d++) dot += sq[d] * elem<T>::to_f32(kr[d]);
            }
            s = dot * scale;
            if (alibi) s -= alibi[h] * (float)dist;
        }
        if (probs) probs[(size_t)h * n + i] = s;
    }
    const float mb = block_max(s, red);
    const float pr = s == -INFINITY ? 0.0f : expf(s - mb);
    const float lb = block_sum(pr, red);
    sp[tid] = pr;
    ss[tid] = slot;
    __syncthreads();

    float *part = scratch + ((size_t)h * S + split) * (hd + 2);
    const int cnt = min(max(n - split * DEC_CH, 0), DEC_CH);
    for (int d = tid; d < hd; d += DEC_THREADS) {
        /* no branch on p = 0 (a masked key's value row is finite: every listed slot holds a
         * token), so the loads of several keys can be in flight at once */
        float acc = 0.0f;
#pragma unroll 8
        for (int j = 0; j < cnt; j++) acc += sp[j] * elem<T>::to_f32(v[(size_t)ss[j] * kvd + koff + d]);
        part[d] = acc;
    }
    if (tid == 0) {
        part[hd] = mb;
        part[hd + 1] = lb;
    }
}

__global__ void __launch_bounds__(DEC_THREADS)
    decode_pass2(float *out, float *probs, const float *scratch, const int *n_dev, int S, int hd, int softmax_kind,
                 const float *sink_logit) {
    const int h = blockIdx.x, tid = threadIdx.x;
    const int n = *n_dev;
    const int used = min(S, (max(n, 0) + DEC_CH - 1) / DEC_CH);
    const float *parts = scratch + (size_t)h * S * (hd + 2);
    const bool extra = softmax_kind != SBK_SOFTMAX_STANDARD;
    const float e = softmax_kind == SBK_SOFTMAX_SINK_LOGIT ? sink_logit[h] : 0.0f;
    float M = extra ? e : -INFINITY;
    for (int b = 0; b < used; b++) M = fmaxf(M, parts[(size_t)b * (hd + 2) + hd]);
    const float Mref = M == -INFINITY ? 0.0f : M;
    float l = extra ? expf(e - Mref) : 0.0f;
    for (int b = 0; b < used; b++) {
        const float mb = parts[(size_t)b * (hd + 2) + hd];
        if (mb != -INFINITY) l += parts[(size_t)b * (hd + 2) + hd + 1] * expf(mb - Mref);
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = tid; d < hd; d += DEC_THREADS) {
        float acc = 0.0f;
        for (int b = 0; b < used; b++) {
            const float mb = parts[(size_t)b * (hd + 2) + hd];
            if (mb != -INFINITY) acc += parts[(size_t)b * (hd + 2) + d] * expf(mb - Mref);
        }
        out[(size_t)h * hd + d] = acc * inv;
    }
    if (probs)
        for (int i = tid; i < n; i += DEC_THREADS) {
            float *pp = probs + (size_t)h * n + i;
            const float sc = *pp;
            *pp = sc == -INFINITY ? 0.0f : expf(sc - Mref) * inv;
        }
}

template <typename T>
void launch_decode(float *out, float *probs, const float *q, const void *k, const void *v, const int32_t *slots,
                   const int64_t *pos, const int64_t *query_pos, const int *n_dev, int S, float *scratch, int H, int KV,
                   int hd, int64_t max_dist, int softmax_kind, const float *sink_logit, const float *alibi,
                   cudaStream_t s) {
    const bool vec = hd % 8 == 0 && ((uintptr_t)k & 15u) == 0;
    dim3 grid((unsigned)S, (unsigned)H);
    if (vec)
        decode_pass1<T, true><<<grid, DEC_THREADS, 0, s>>>(scratch, probs, q, (const T *)k, (const T *)v, slots, pos,
                                                           query_pos, n_dev, H, KV, hd, max_dist, alibi);
    else
        decode_pass1<T, false><<<grid, DEC_THREADS, 0, s>>>(scratch, probs, q, (const T *)k, (const T *)v, slots,
                                                            pos, query_pos, n_dev, H, KV, hd, max_dist, alibi);
    decode_pass2<<<H, DEC_THREADS, 0, s>>>(out, probs, scratch, n_dev, S, hd, softmax_kind, sink_logit);
}

} // namespace

extern "C" size_t sbk_decode_attention_scratch(int H, int hd, int n_max) {
    const size_t S = (size_t)(n_max > 0 ? (n_max + DEC_CH - 1) / DEC_CH : 1);
    return (size_t)H * S * ((size_t)hd + 2);
}

extern "C" void sbk_decode_attention(float *out, float *probs, const float *q, const void *k, const void *v,
                                     const int32_t *slots, const int64_t *pos, const int64_t *query_pos,
                                     const int *n_dev, int n_max, float *scratch, int H, int KV, int hd,
                                     int64_t max_dist, int softmax_kind, const float *sink_logit, const float *alibi,
                                     sbk_dtype dt, cudaStream_t s) {
    if (H <= 0 || KV <= 0 || H % KV != 0 || hd <= 0 || hd > 256) return;
    const int S = n_max > 0 ? (n_max + DEC_CH - 1) / DEC_CH : 1;
    switch (dt) {
    case SBK_F32:
        launch_decode<float>(out, probs, q, k, v, slots, pos, query_pos, n_dev, S, scratch, H, KV, hd, max_dist,
                             softmax_kind, sink_logit, alibi, s);
        break;
    case SBK_BF16:
        launch_decode<__nv_bfloat16>(out, probs, q, k, v, slots, pos, query_pos, n_dev, S, scratch, H, KV, hd,
                                     max_dist, softmax_kind, sink_logit, alibi, s);
        break;
    case SBK_F16:
        launch_decode<__half>(out, probs, q, k, v, slots, pos, query_pos, n_dev, S, scratch, H, KV, hd, max_dist,
                              softmax_kind, sink_logit, alibi, s);
        break;
    }
}
