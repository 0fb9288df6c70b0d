/* Decode attention: one query over a slot cache (engine/cuda/kernels.h sbk_decode_attention,
 * engine/attention.c attention_token_forward), flash-decoding style, two kernels.
 *
 * Split kernel (grid: heads x splits, SPL_CH = 64 keys per block, 128 threads = 8 groups of
 * 16 lanes): a group takes keys i0 + g, i0 + g + 8, ... of its split; each key's row of the
 * head (hd elements, 256 B at hd = 128 bf16) is read by the group's 16 lanes with 16-byte
 * loads, K and V together, 4 keys per batch, so a lane has 8 independent 16-byte loads in
 * flight. The score q.k / sqrt(hd) - slope * (query_pos - pos) (masked beyond max_dist) is
 * reduced over the group with shuffles; the group keeps an online softmax (max m, sum l,
 * acc[d]); the 8 groups are merged in a fixed order into the block's (acc, m, l), written to
 * scratch (acc [H][S][hd], then (m, l) [H][S][2]). Raw scores go to probs when asked for.
 * Combine kernel (grid: heads, 256 threads): the global max with the extra logit, the
 * rescaled sum, the output (f32 and/or converted), the probabilities in place of the raw
 * scores. Splits, groups and reductions have a fixed order: results do not depend on timing.
 * n and query_pos are read on the device, so a captured graph stays valid as the cache fills;
 * the grid covers n_max keys and blocks past n exit at once.
 *
 * The split kernel needs hd % (16 / element size) == 0 and 16-byte aligned k and v; other
 * calls, and every call while sbk_legacy() has SBK_LEGACY_DECODE_ATTENTION, take the legacy
 * kernels (one thread per key in pass 1, DEC_CH = 128 keys per block).
 *
 * Cost: K and V are read once (n * KV * hd * 2 elements); n = 2048, 32 heads, hd = 128, bf16:
 * 33.5 MB per layer, 8-10 us at 3.5-4 TB/s; the partials are 1.6% of that. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/common.cuh"

using namespace sbk;

#define DEC_CH 128      /* keys per block of the legacy pass 1 */
#define DEC_THREADS 128 /* == DEC_CH: one thread per key in pass 1 */
#define SPL_CH 64        /* keys per block of the split kernel */
#define SPL_GROUPS 8     /* groups of 16 lanes per block */
#define SPL_THREADS (SPL_GROUPS * 16)
#define SPL_U 4          /* keys per group and batch */
#define CMB_THREADS 256  /* combine kernel */

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

/* Output element i of head h: f32 and/or converted. */
__device__ __forceinline__ void put_out(float *out, void *out_cvt, sbk_dtype odt, size_t i, float y) {
    if (out) out[i] = y;
    if (out_cvt) store_from_f32(out_cvt, odt, i, y);
}

__global__ void __launch_bounds__(DEC_THREADS)
    decode_pass2(float *out, void *out_cvt, sbk_dtype odt, float *probs, const float *scratch, const int *n_dev, int S,
                 int hd, int softmax_kind, const float *sink_logit) {
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
        put_out(out, out_cvt, odt, (size_t)h * hd + d, acc * inv);
    }
    if (probs)
        for (int i = tid; i < n; i += DEC_THREADS) {
            float *pp = probs + (size_t)h * n + i;
            const float sc = *pp;
            *pp = sc == -INFINITY ? 0.0f : expf(sc - Mref) * inv;
        }
}

/* ---------------------------------------------------------------- split kernel */

/* One 16-byte vector as floats: 4 (f32) or 8 (bf16, f16). */
template <typename T> struct vec16 {
    static constexpr int N = 8;
    __device__ __forceinline__ static void to_f32(const uint4 &u, float (&f)[8]) {
        const T *p = reinterpret_cast<const T *>(&u);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = elem<T>::to_f32(p[e]);
    }
};
template <> struct vec16<float> {
    static constexpr int N = 4;
    __device__ __forceinline__ static void to_f32(const uint4 &u, float (&f)[4]) {
        f[0] = __uint_as_float(u.x), f[1] = __uint_as_float(u.y), f[2] = __uint_as_float(u.z),
        f[3] = __uint_as_float(u.w);
    }
};

/* Block (h, split): keys [split * CH, +CH) of head h. NV: 16-byte vectors per lane and row (the
 * row has hd / VE of them, lane l of a group takes l, l + 16, ...); U keys per group and batch.
 * CH = SPL_CH, U = SPL_U by default; sbk_decode_config picks CH = 128 (U = 4 or 8). */
template <typename T, int NV, int CH, int U>
__global__ void __launch_bounds__(SPL_THREADS, NV == 1 ? (U > 4 ? 4 : 7) : 1) /* NV 1: 7 (4) blocks per SM */
    decode_split(float *pacc, float *pml, float *probs, const float *q, const T *k, const T *v, const int32_t *slots,
                 const int64_t *pos, const int64_t *query_pos, const int *n_dev, int H, int KV, int hd, int S,
                 int64_t max_dist, const float *alibi) {
    constexpr int VE = vec16<T>::N;                 /* elements per vector */
    constexpr int KPG = CH / SPL_GROUPS;            /* keys per group: 8 (16) */
    static_assert(KPG % U == 0 && KPG <= 16, "keys per group");
    __shared__ __align__(16) float s_acc[SPL_GROUPS][256];
    __shared__ float s_m[SPL_GROUPS], s_l[SPL_GROUPS];
    pdl_trigger();
    pdl_wait();
    const int h = (int)(blockIdx.x % (unsigned)H), split = (int)(blockIdx.x / (unsigned)H);
    const int n = *n_dev;
    const int i0 = split * CH;
    if (i0 >= n) return; /* the whole block: before any barrier */
    const int tid = threadIdx.x, grp = tid >> 4, gl = tid & 15, hbase = tid & 16; /* hbase: the group's first lane */
    const int g = h / (H / KV);
    const size_t kvd = (size_t)KV * hd, koff = (size_t)g * hd;
    const int nvec = hd / VE;
    const int64_t qp = *query_pos;
    const float scale = 1.0f / sqrtf((float)hd);
    const float slope = alibi ? alibi[h] : 0.0f;

    /* the query's elements of this lane */
    float qf[NV][VE];
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const int vi = gl + 16 * j;
#pragma unroll
        for (int e = 0; e < VE; e++) qf[j][e] = vi < nvec ? q[(size_t)h * hd + (size_t)vi * VE + e] : 0.0f;
    }
    /* lane t < KPG of the group fetches key t's slot and distance; shuffles hand them out */
    int my_slot = 0, my_live = 0;
    float my_dist = 0.0f;
    if (gl < KPG) {
        const int i = i0 + grp + SPL_GROUPS * gl;
        if (i < n) {
            my_slot = slots[i];
            const int64_t dist = qp - pos[i];
            if (dist <= max_dist) {
                my_live = 1;
                my_dist = (float)dist;
            }
        }
    }
    float m = -INFINITY, l = 0.0f;
    float acc[NV][VE];
#pragma unroll
    for (int j = 0; j < NV; j++)
#pragma unroll
        for (int e = 0; e < VE; e++) acc[j][e] = 0.0f;

#pragma unroll
    for (int t0 = 0; t0 < KPG; t0 += U) {
        uint4 kr[U][NV], vr[U][NV];
        int live[U];
        float dist[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int src = hbase | (t0 + u);
            const int slot = __shfl_sync(0xffffffffu, my_slot, src);
            live[u] = __shfl_sync(0xffffffffu, my_live, src);
            dist[u] = __shfl_sync(0xffffffffu, my_dist, src);
            const uint4 *kp = reinterpret_cast<const uint4 *>(k + (size_t)slot * kvd + koff);
            const uint4 *vp = reinterpret_cast<const uint4 *>(v + (size_t)slot * kvd + koff);
#pragma unroll
            for (int j = 0; j < NV; j++) {
                const int vi = gl + 16 * j;
                if (live[u] && vi < nvec) {
                    /* L2 only: read once, and the newest row was written by the previous
                     * kernel (launch_pdl), which rules out the read-only path */
                    kr[u][j] = __ldcg(kp + vi);
                    vr[u][j] = __ldcg(vp + vi);
                } else {
                    kr[u][j] = make_uint4(0u, 0u, 0u, 0u);
                    vr[u][j] = make_uint4(0u, 0u, 0u, 0u);
                }
            }
        }
        float sc[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float dot = 0.0f;
#pragma unroll
            for (int j = 0; j < NV; j++) {
                float f[VE];
                vec16<T>::to_f32(kr[u][j], f);
#pragma unroll
                for (int e = 0; e < VE; e++) dot += qf[j][e] * f[e];
            }
            /* butterfly over the 16 lanes of the group: every lane ends with the same sum */
#pragma unroll
            for (int o = 8; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
            float s = -INFINITY;
            if (live[u]) {
                s = dot * scale;
                if (alibi) s -= slope * dist[u];
            }
            sc[u] = s;
            const int i = i0 + grp + SPL_GROUPS * (t0 + u);
            if (probs && gl == 0 && i < n) probs[(size_t)h * n + i] = s;
        }
        float mx = m;
#pragma unroll
        for (int u = 0; u < U; u++) mx = fmaxf(mx, sc[u]);
        if (mx != -INFINITY) { /* the same on every lane of the group */
            const float c = expf(m - mx); /* 0 while m is still -inf */
            l *= c;
#pragma unroll
            for (int j = 0; j < NV; j++)
#pragma unroll
                for (int e = 0; e < VE; e++) acc[j][e] *= c;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const float p = sc[u] == -INFINITY ? 0.0f : expf(sc[u] - mx);
                l += p;
#pragma unroll
                for (int j = 0; j < NV; j++) {
                    float f[VE];
                    vec16<T>::to_f32(vr[u][j], f);
#pragma unroll
                    for (int e = 0; e < VE; e++) acc[j][e] += p * f[e];
                }
            }
            m = mx;
        }
    }

    /* merge the groups in order 0..7 */
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const int vi = gl + 16 * j;
        if (vi < nvec) {
            float *dst = &s_acc[grp][vi * VE];
#pragma unroll
            for (int e = 0; e < VE; e += 4)
                *reinterpret_cast<float4 *>(dst + e) = make_float4(acc[j][e], acc[j][e + 1], acc[j][e + 2], acc[j][e + 3]);
        }
    }
    if (gl == 0) {
        s_m[grp] = m;
        s_l[grp] = l;
    }
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int gg = 0; gg < SPL_GROUPS; gg++) M = fmaxf(M, s_m[gg]);
    float cg[SPL_GROUPS];
#pragma unroll
    for (int gg = 0; gg < SPL_GROUPS; gg++) cg[gg] = s_m[gg] == -INFINITY ? 0.0f : expf(s_m[gg] - M);
    float *pa = pacc + ((size_t)h * S + split) * hd;
    for (int d = tid; d < hd; d += SPL_THREADS) {
        float a = 0.0f;
#pragma unroll
        for (int gg = 0; gg < SPL_GROUPS; gg++) a += s_acc[gg][d] * cg[gg]; /* 0 for an all-masked split */
        pa[d] = a;
    }
    if (tid == 0) {
        float L = 0.0f;
#pragma unroll
        for (int gg = 0; gg < SPL_GROUPS; gg++) L += s_l[gg] * cg[gg];
        pml[((size_t)h * S + split) * 2] = M;
        pml[((size_t)h * S + split) * 2 + 1] = L;
    }
}

/* Block h: the splits' partials of head h (fixed order), the output, the probabilities. */
__global__ void __launch_bounds__(CMB_THREADS)
    decode_combine(float *out, void *out_cvt, sbk_dtype odt, float *probs, const float *pacc, const float *pml,
                   const int *n_dev, int S, int ch, int hd, int softmax_kind, const float *sink_logit) {
    constexpr int NW = CMB_THREADS / 32;
    __shared__ float red[NW][256];
    pdl_trigger();
    pdl_wait();
    const int h = blockIdx.x, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int n = *n_dev;
    const int used = min(S, (max(n, 0) + ch - 1) / ch);
    const float *ml = pml + (size_t)h * S * 2;
    const bool extra = softmax_kind != SBK_SOFTMAX_STANDARD;
    const float e = softmax_kind == SBK_SOFTMAX_SINK_LOGIT ? sink_logit[h] : 0.0f;
    /* every warp computes M and l itself (the same values: butterflies, fixed lane order) */
    float M = extra ? e : -INFINITY;
    for (int b = lane; b < used; b += 32) M = fmaxf(M, ml[2 * b]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    const float Mref = M == -INFINITY ? 0.0f : M;
    float ls = 0.0f;
    for (int b = lane; b < used; b += 32) {
        const float mb = ml[2 * b];
        if (mb != -INFINITY) ls += ml[2 * b + 1] * expf(mb - Mref);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ls += __shfl_xor_sync(0xffffffffu, ls, o);
    const float l = (extra ? expf(e - Mref) : 0.0f) + ls;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    /* warp w sums splits w, w + NW, ...; lanes over d */
    float a[8];
#pragma unroll
    for (int j = 0; j < 8; j++) a[j] = 0.0f;
#pragma unroll 4
    for (int b = w; b < used; b += NW) {
        const float mb = ml[2 * b];
        const float wb = mb == -INFINITY ? 0.0f : expf(mb - Mref); /* such a split's acc is 0 */
        const float *pb = pacc + ((size_t)h * S + b) * hd;
#pragma unroll
        for (int j = 0; j < 8; j++)
            if (lane + 32 * j < hd) a[j] += pb[lane + 32 * j] * wb;
    }
#pragma unroll
    for (int j = 0; j < 8; j++)
        if (lane + 32 * j < hd) red[w][lane + 32 * j] = a[j];
    __syncthreads();
    for (int d = tid; d < hd; d += CMB_THREADS) {
        float acc = 0.0f;
#pragma unroll
        for (int ww = 0; ww < NW; ww++) acc += red[ww][d];
        put_out(out, out_cvt, odt, (size_t)h * hd + d, acc * inv);
    }
    if (probs)
        for (int i = tid; i < n; i += CMB_THREADS) {
            float *pp = probs + (size_t)h * n + i;
            const float sc = *pp;
            *pp = sc == -INFINITY ? 0.0f : expf(sc - Mref) * inv;
        }
}

struct DecArgs {
    float *out;
    void *out_cvt;
    sbk_dtype odt;
    float *probs;
    const float *q;
    const void *k, *v;
    const int32_t *slots;
    const int64_t *pos, *query_pos;
    const int *n_dev;
    int n_max;
    float *scratch;
    int H, KV, hd;
    int64_t max_dist;
    int softmax_kind;
    const float *sink_logit, *alibi;
};

template <typename T> void launch_legacy(const DecArgs &a, cudaStream_t s) {
    const int S = a.n_max > 0 ? (a.n_max + DEC_CH - 1) / DEC_CH : 1;
    const bool vec = a.hd % 8 == 0 && ((uintptr_t)a.k & 15u) == 0;
    dim3 grid((unsigned)S, (unsigned)a.H);
    if (vec)
        decode_pass1<T, true><<<grid, DEC_THREADS, 0, s>>>(a.scratch, a.probs, a.q, (const T *)a.k, (const T *)a.v,
                                                           a.slots, a.pos, a.query_pos, a.n_dev, a.H, a.KV, a.hd,
                                                           a.max_dist, a.alibi);
    else
        decode_pass1<T, false><<<grid, DEC_THREADS, 0, s>>>(a.scratch, a.probs, a.q, (const T *)a.k, (const T *)a.v,
                                                            a.slots, a.pos, a.query_pos, a.n_dev, a.H, a.KV, a.hd,
                                                            a.max_dist, a.alibi);
    decode_pass2<<<a.H, DEC_THREADS, 0, s>>>(a.out, a.out_cvt, a.odt, a.probs, a.scratch, a.n_dev, S, a.hd,
                                             a.softmax_kind, a.sink_logit);
}

template <typename T, int NV, int CH, int U> void launch_split_nv(const DecArgs &a, cudaStream_t s) {
    const int S = a.n_max > 0 ? (a.n_max + CH - 1) / CH : 1;
    float *pacc = a.scratch, *pml = a.scratch + (size_t)a.H * S * a.hd;
    const unsigned blocks = (unsigned)((size_t)S * a.H);
    launch_pdl(decode_split<T, NV, CH, U>, dim3(blocks), dim3(SPL_THREADS), s, pacc, pml, a.probs, a.q,
               (const T *)a.k, (const T *)a.v, a.slots, a.pos, a.query_pos, a.n_dev, a.H, a.KV, a.hd, S, a.max_dist,
               a.alibi);
    launch_pdl(decode_combine, dim3((unsigned)a.H), dim3(CMB_THREADS), s, a.out, a.out_cvt, a.odt, a.probs, pacc, pml,
               a.n_dev, S, CH, a.hd, a.softmax_kind, a.sink_logit);
}

/* batches of 8 keys only with one vector per lane: wider rows would spill */
template <typename T, int CH, int U> void launch_split_ch(const DecArgs &a, int nvl, cudaStream_t s) {
    if (nvl <= 1)
        launch_split_nv<T, 1, CH, U>(a, s);
    else if (nvl <= 2)
        launch_split_nv<T, 2, CH, (U > 4 ? 4 : U)>(a, s);
    else
        launch_split_nv<T, 4, CH, (U > 4 ? 4 : U)>(a, s);
}

int g_dec_cfg = -1; /* 0: 64 keys per split, 1: 128, 2: 128 with 8 keys per batch; -1: unread */

int dec_cfg() {
    if (g_dec_cfg < 0) {
        const char *e = getenv("SINKBENCH_CUDA_DECODE");
        g_dec_cfg = !e ? 0 : !strcmp(e, "128") ? 1 : !strcmp(e, "128u8") ? 2 : 0;
    }
    return g_dec_cfg;
}

template <typename T> void launch_decode(const DecArgs &a, cudaStream_t s) {
    constexpr int VE = vec16<T>::N;
    const bool split_ok = (sbk_legacy() & SBK_LEGACY_DECODE_ATTENTION) == 0 && a.hd % VE == 0 &&
                          ((uintptr_t)a.k & 15u) == 0 && ((uintptr_t)a.v & 15u) == 0;
    const int S = a.n_max > 0 ? (a.n_max + SPL_CH - 1) / SPL_CH : 1;
    if (!split_ok || (size_t)S * a.H > 0x7fffffffu) {
        launch_legacy<T>(a, s);
        return;
    }
    const int nvl = (a.hd / VE + 15) / 16; /* vectors per lane */
    switch (dec_cfg()) {
    case 1: launch_split_ch<T, 128, 4>(a, nvl, s); break;
    case 2: launch_split_ch<T, 128, 8>(a, nvl, s); break;
    default: launch_split_ch<T, SPL_CH, SPL_U>(a, nvl, s); break;
    }
}

} // namespace

extern "C" void sbk_decode_config(int cfg) { g_dec_cfg = cfg >= 0 && cfg <= 2 ? cfg : 0; }

extern "C" size_t sbk_decode_attention_scratch(int H, int hd, int n_max) {
    /* the split kernel's S (SPL_CH keys per split; 128 in the other configurations) is at least
     * the legacy one's (DEC_CH) */
    const size_t S = (size_t)(n_max > 0 ? (n_max + SPL_CH - 1) / SPL_CH : 1);
    return (size_t)H * S * ((size_t)hd + 2);
}

extern "C" void sbk_decode_attention_to(float *out, void *out_cvt, sbk_dtype odt, float *probs, const float *q,
                                        const void *k, const void *v, const int32_t *slots, const int64_t *pos,
                                        const int64_t *query_pos, const int *n_dev, int n_max, float *scratch, int H,
                                        int KV, int hd, int64_t max_dist, int softmax_kind, const float *sink_logit,
                                        const float *alibi, sbk_dtype dt, cudaStream_t s) {
    if (H <= 0 || KV <= 0 || H % KV != 0 || hd <= 0 || hd > 256 || (!out && !out_cvt)) return;
    const DecArgs a = {out, out_cvt, odt, probs, q, k, v, slots, pos, query_pos, n_dev, n_max, scratch,
                       H, KV, hd, max_dist, softmax_kind, sink_logit, alibi};
    switch (dt) {
    case SBK_F32: launch_decode<float>(a, s); break;
    case SBK_BF16: launch_decode<__nv_bfloat16>(a, s); break;
    case SBK_F16: launch_decode<__half>(a, s); break;
    }
}

extern "C" void sbk_decode_attention(float *out, float *probs, const float *q, const void *k, const void *v,
                                     const int32_t *slots, const int64_t *pos, const int64_t *query_pos,
                                     const int *n_dev, int n_max, float *scratch, int H, int KV, int hd,
                                     int64_t max_dist, int softmax_kind, const float *sink_logit, const float *alibi,
                                     sbk_dtype dt, cudaStream_t s) {
    sbk_decode_attention_to(out, nullptr, SBK_F32, probs, q, k, v, slots, pos, query_pos, n_dev, n_max, scratch, H,
                            KV, hd, max_dist, softmax_kind, sink_logit, alibi, dt, s);
}
