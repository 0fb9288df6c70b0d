/* Exact-mode band + sink attention (engine/cuda/kernels.h sbk_band_attention).
 *
 * Two kernels, one semantics (engine/attention.c attention_band_task):
 *
 * band_simt_kernel: CUDA cores, any head_dim <= 256, inputs f32/bf16/f16. One warp per
 *   (query, head); lane l holds dims l, l+32, ...; keys are visited one by one (sinks, then
 *   the band in position order) with an online softmax in f32 and natural exp. The f32
 *   fidelity path, and the fallback for shapes the tensor-core kernel does not take.
 *
 * band_mma_kernel: tensor cores (mma.sync m16n8k16, bf16 or f16 in, f32 accumulate),
 *   flash-attention-2 style. A block owns BQ = 16*MA*NW consecutive queries of one head;
 *   each of its NW warps owns 16*MA query rows. Keys stream through shared memory in tiles
 *   of BN: first the sink tiles (rows j of sink_k/sink_v, scored with qs), then the band
 *   tiles (positions kb_lo .. kb_hi, ring rows p mod band_cap, scored with qb). Per tile:
 *   S = Q K^T (ldmatrix + mma), scale/mask/ALiBi in f32 in the log2 domain, online softmax
 *   (running max and sum per row in f32, ex2.approx), P rounded to the input type, O += P V.
 *   One K and one V buffer: V(i) loads while S(i) is computed, K(i+1) (and Q when switching
 *   from qs to qb) while P(i) V(i) is computed. Tiles entirely inside every row's window
 *   skip the per-element mask. Shared-memory rows are padded by 8 elements (16 bytes), so
 *   ldmatrix of 8 rows touches 8 distinct 16-byte bank groups (conflict-free).
 *
 * Performance model (not measured: the build machine has no GPU; `test_kernels --bench`
 * measures it). hd = 128 runs MA = 2, BN = 32, 4 warps: 128 queries per block, 255 registers
 * (no spills), 52 KB shared, so 2 blocks (8 warps) per SM. At the 7B shape (H = 32, T = 2048,
 * W = 4092, K = 4) a block computes (W + 128) band keys + one padded sink tile of 32 against
 * W + 5 useful keys per query: 4% wasted flops; useful work 4 * hd * keys_seen * T * H = 137
 * GFLOP. Per warp and tile the MMAs do 32 x 32 x 128 x 4 = 0.52 MFLOP and ldmatrix moves
 * Q 8 KB + K 8 KB + V 8 KB: 192 clk of shared-memory bandwidth (128 B/clk/SM) against 128 clk
 * of tensor issue at the dense bf16 peak (989 TFLOP/s on H100/H200 SXM = 4096 flop/clk/SM), so
 * this mma.sync design is bounded at about 2/3 of peak by shared memory and in practice by
 * mma.sync issue and the softmax (FlashAttention-2 class on Hopper): expected 350-450 TFLOP/s,
 * 0.3-0.4 ms per call. L2 traffic: 512 blocks x 4252 keys x 512 B (K and V) = 1.1 GB per call,
 * about 0.15 ms at L2 bandwidth; the 16 query tiles of one head are neighbouring blocks and
 * share its keys in L2. The grid (16 x 32 = 512 blocks) is 1.9 waves of 264 resident blocks.
 * More needs wgmma/TMA (sm_90a, FlashAttention-3 style), which this kernel does not use. */
#include <limits.h>
#include <math.h>

#include "engine/cuda/common.cuh"

using namespace sbk;

namespace {

constexpr float LOG2E = 1.4426950408889634f;

struct BandParams {
    void *out;
    sbk_dtype odt;
    size_t out_stride;
    const void *qb, *qs;
    size_t q_stride;
    const void *band_k, *band_v;
    int64_t band_cap;
    const void *sink_k, *sink_v;
    int n_sink;
    int64_t K, W, pos0;
    int T;
    int64_t max_dist; /* >= -1 */
    int64_t Wb;       /* min(W, max_dist) */
    int H, KV, hd;
    int softmax_kind;
    const float *sink_logit, *alibi;
};

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ __forceinline__ float extra_logit(const BandParams &p, int h) {
    return p.softmax_kind == SBK_SOFTMAX_SINK_LOGIT ? p.sink_logit[h] : 0.0f;
}

/* ============================================================ CUDA-core kernel */

#define SIMT_WARPS 4

/* One key: score s (natural-log domain) and value row v; one exp per key. */
template <typename T, int NPL>
__device__ __forceinline__ void simt_update(float &m, float &l, float (&acc)[NPL], float s, const T *v, int lane,
                                            int hd) {
    if (s > m) {
        const float a = expf(m - s); /* m = -inf: 0 */
        l = l * a + 1.0f;
#pragma unroll
        for (int i = 0; i < NPL; i++) {
            const int d = lane + 32 * i;
            const float vd = d < hd ? elem<T>::to_f32(v[d]) : 0.0f;
            acc[i] = acc[i] * a + vd;
        }
        m = s;
    } else {
        const float pr = expf(s - m);
        l += pr;
#pragma unroll
        for (int i = 0; i < NPL; i++) {
            const int d = lane + 32 * i;
            const float vd = d < hd ? elem<T>::to_f32(v[d]) : 0.0f;
            acc[i] += pr * vd;
        }
    }
}

template <typename T, int NPL>
__device__ __forceinline__ float simt_dot(const float (&qv)[NPL], const T *k, int lane, int hd) {
    float part = 0.0f;
#pragma unroll
    for (int i = 0; i < NPL; i++) {
        const int d = lane + 32 * i;
        if (d < hd) part += qv[i] * elem<T>::to_f32(k[d]);
    }
    /* butterfly: every lane ends with the same sum (IEEE addition is commutative) */
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
    return part;
}

template <typename T, int NPL>
__global__ void __launch_bounds__(SIMT_WARPS * 32) band_simt_kernel(BandParams p) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t idx = (int64_t)blockIdx.x * SIMT_WARPS + warp;
    if (idx >= (int64_t)p.T * p.H) return;
    const int h = (int)(idx / p.T), t = (int)(idx % p.T);
    const int hd = p.hd, g = h / (p.H / p.KV);
    const size_t kvd = (size_t)p.KV * hd, koff = (size_t)g * hd;
    const int64_t P = p.pos0 + t;
    const float scale = 1.0f / sqrtf((float)hd);
    const float slope = p.alibi ? p.alibi[h] : 0.0f;
    const bool extra = p.softmax_kind != SBK_SOFTMAX_STANDARD;
    const float e = extra_logit(p, h);
    float m = extra ? e : -INFINITY, l = 0.0f;
    float acc[NPL], qv[NPL];
#pragma unroll
    for (int i = 0; i < NPL; i++) acc[i] = 0.0f;

    /* sinks j in [j0, nsv) at distance sq - j */
    const int64_t sq = min64(P, p.K + p.W);
    const int nsv = (int)min64(p.n_sink, P + 1);
    const int j0 = (int)min64(nsv, max64(0, sq - p.max_dist));
    if (j0 < nsv) {
        const T *q = (const T *)p.qs + (size_t)t * p.q_stride + (size_t)h * hd;
#pragma unroll
        for (int i = 0; i < NPL; i++) qv[i] = lane + 32 * i < hd ? elem<T>::to_f32(q[lane + 32 * i]) : 0.0f;
        for (int j = j0; j < nsv; j++) {
            const size_t row = (size_t)j * kvd + koff;
            float s = simt_dot<T, NPL>(qv, (const T *)p.sink_k + row, lane, hd) * scale;
            if (p.alibi) s -= slope * (float)(sq - j);
            simt_update<T, NPL>(m, l, acc, s, (const T *)p.sink_v + row, lane, hd);
        }
    }
    /* band positions [max(K, P - Wb), P] at distance P - pos, ring row pos mod band_cap */
    const int64_t lo = max64(p.K, P - p.Wb);
    if (lo <= P) {
        const T *q = (const T *)p.qb + (size_t)t * p.q_stride + (size_t)h * hd;
#pragma unroll
        for (int i = 0; i < NPL; i++) qv[i] = lane + 32 * i < hd ? elem<T>::to_f32(q[lane + 32 * i]) : 0.0f;
        int64_t ring = lo % p.band_cap;
        for (int64_t pos = lo; pos <= P; pos++) {
            const size_t row = (size_t)ring * kvd + koff;
            float s = simt_dot<T, NPL>(qv, (const T *)p.band_k + row, lane, hd) * scale;
            if (p.alibi) s -= slope * (float)(P - pos);
            simt_update<T, NPL>(m, l, acc, s, (const T *)p.band_v + row, lane, hd);
            if (++ring == p.band_cap) ring = 0;
        }
    }
    if (extra) l += expf(e - m);
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    const size_t obase = (size_t)t * p.out_stride + (size_t)h * hd;
#pragma unroll
    for (int i = 0; i < NPL; i++) {
        const int d = lane + 32 * i;
        if (d < hd) store_from_f32(p.out, p.odt, obase + d, acc[i] * inv);
    }
}

template <typename T>
void launch_simt(const BandParams &p, cudaStream_t s) {
    const int64_t warps = (int64_t)p.T * p.H;
    const unsigned blocks = (unsigned)((warps + SIMT_WARPS - 1) / SIMT_WARPS);
    const int npl = (p.hd + 31) / 32;
    switch (npl) {
#define CASE(n) \
    case n: band_simt_kernel<T, n><<<blocks, SIMT_WARPS * 32, 0, s>>>(p); break;
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: break; /* hd > 256: refused by the dispatcher */
    }
}

/* ============================================================ tensor-core kernel */

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

/* addr: a shared-window address (smem_addr); callers add compile-time byte offsets to a
 * per-thread base so ptxas folds them into the instruction's immediate */
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* d += a b for one m16n8k16 tile; a: 4 regs (row-major 16x16), b: 2 regs (col-major 16x8). */
template <typename T> __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                        uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats rounded to T, lo in the low half (the lower column index). */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

__device__ __forceinline__ float ex2(float x) { /* 2^x; -inf gives +0 */
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

template <int HD, int MA, int BN, int NW> struct MmaCfg {
    static constexpr int BQ = 16 * MA * NW;   /* queries per block */
    static constexpr int LDS = HD + 8;        /* shared row stride, elements */
    static constexpr int THREADS = NW * 32;
    static constexpr int CH = HD / 8;         /* 16-byte chunks per row */
    static constexpr size_t SMEM = (size_t)(BQ + 2 * BN) * LDS * 2;
    static_assert(HD % 16 == 0 && HD <= 256, "head_dim");
    static_assert(BN % 16 == 0, "BN");
};

template <typename T, int HD, int MA, int BN, int NW, int MINB>
__global__ void __launch_bounds__(NW * 32, MINB) band_mma_kernel(BandParams p) {
    using C = MmaCfg<HD, MA, BN, NW>;
    constexpr int BQ = C::BQ, LDS = C::LDS, NT = BN / 8, DT = HD / 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *sQ = reinterpret_cast<T *>(smem_raw);
    T *sK = sQ + BQ * LDS;
    T *sV = sK + BN * LDS;

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int h = blockIdx.y;
    const int t0 = (gridDim.x - 1 - blockIdx.x) * BQ; /* last (heaviest when causal) tiles first */
    const int g = h / (p.H / p.KV);
    const size_t kvd = (size_t)p.KV * HD, koff = (size_t)g * HD;
    const int t_end = min(t0 + BQ, p.T);
    const int64_t P0 = p.pos0 + t0, P1 = p.pos0 + t_end - 1;

    /* keys of the block: sink rows [0, ns_blk), band positions [kb_lo, kb_hi] */
    const int ns_blk = (int)min64(p.n_sink, P1 + 1);
    const int n_sink_tiles = ns_blk > 0 ? (ns_blk + BN - 1) / BN : 0;
    const int64_t kb_lo = max64(p.K, P0 - p.Wb), kb_hi = P1;
    const int n_band_tiles = kb_hi >= kb_lo ? (int)((kb_hi - kb_lo + BN) / BN) : 0;
    const int n_tiles = n_sink_tiles + n_band_tiles;
    const int64_t ring_lo = kb_hi >= kb_lo ? kb_lo % p.band_cap : 0;
    const int wb_i = (int)min64(p.Wb, INT_MAX);

    const float scale2 = LOG2E / sqrtf((float)HD);
    const float slope2 = p.alibi ? p.alibi[h] * LOG2E : 0.0f;
    const bool extra = p.softmax_kind != SBK_SOFTMAX_STANDARD;
    const float e2 = extra_logit(p, h) * LOG2E;

    /* rows of this thread: r = warp*16*MA + ma*16 + lane/4 + hf*8 */
    const int rw0 = warp * 16 * MA;
    /* ldmatrix row addresses of this lane (bytes in the shared window):
     * Q (A operand, x4 = rows 0-7 / 8-15 x cols 0-7 / 8-15 of a 16x16 tile),
     * K (B operand of S, x4 = keys 0-7 x dims 0-7 / 8-15, keys 8-15 x dims 0-7 / 8-15),
     * V (B operand of O, transposed, x4 = keys 0-7 / 8-15 x dims 0-7, then dims 8-15) */
    const uint32_t q_lds = smem_addr(sQ + (rw0 + (lane % 8) + ((lane / 8) % 2) * 8) * LDS + (lane / 16) * 8);
    const uint32_t k_lds = smem_addr(sK + ((lane % 8) + (lane / 16) * 8) * LDS + ((lane / 8) % 2) * 8);
    const uint32_t v_lds = smem_addr(sV + ((lane % 8) + ((lane / 8) % 2) * 8) * LDS + (lane / 16) * 8);
    float o[MA][DT][4];
    float row_m[MA][2], row_l[MA][2];
#pragma unroll
    for (int ma = 0; ma < MA; ma++) {
#pragma unroll
        for (int dt = 0; dt < DT; dt++) o[ma][dt][0] = o[ma][dt][1] = o[ma][dt][2] = o[ma][dt][3] = 0.0f;
        row_m[ma][0] = row_m[ma][1] = extra ? e2 : -INFINITY;
        row_l[ma][0] = row_l[ma][1] = 0.0f;
    }

    auto load_q = [&](const void *qsrc) {
        const T *q = (const T *)qsrc;
        for (int c = tid; c < BQ * C::CH; c += C::THREADS) {
            const int r = c / C::CH, ch = c % C::CH;
            T *dst = sQ + r * LDS + ch * 8;
            const int t = t0 + r;
            if (t < p.T)
                cp_async16(dst, q + (size_t)t * p.q_stride + (size_t)h * HD + ch * 8);
            else
                *reinterpret_cast<uint4 *>(dst) = make_uint4(0u, 0u, 0u, 0u);
        }
    };
    /* tile `it` of K or V into dst: sink tile rows j, band tile rows at ring positions;
     * rows outside the block's keys are zero (never stale data, never NaN garbage) */
    auto load_kv = [&](T *dst_base, const void *sink_src, const void *band_src, int it) {
        const bool sink = it < n_sink_tiles;
        const int tb = sink ? it : it - n_sink_tiles;
        for (int c = tid; c < BN * C::CH; c += C::THREADS) {
            const int r = c / C::CH, ch = c % C::CH;
            T *dst = dst_base + r * LDS + ch * 8;
            const T *src = nullptr;
            if (sink) {
                const int j = tb * BN + r;
                if (j < ns_blk) src = (const T *)sink_src + (size_t)j * kvd + koff + ch * 8;
            } else {
                const int64_t off = (int64_t)tb * BN + r; /* position kb_lo + off */
                if (kb_lo + off <= kb_hi) {
                    int64_t row = ring_lo + off;
                    if (row >= p.band_cap) { /* off < band_cap when band_cap >= W + T: one wrap */
                        row -= p.band_cap;
                        if (row >= p.band_cap) row %= p.band_cap; /* a too small ring: wrong, in bounds */
                    }
                    src = (const T *)band_src + (size_t)row * kvd + koff + ch * 8;
                }
            }
            if (src)
                cp_async16(dst, src);
            else
                *reinterpret_cast<uint4 *>(dst) = make_uint4(0u, 0u, 0u, 0u);
        }
    };

    if (n_tiles > 0) {
        load_q(n_sink_tiles > 0 ? p.qs : p.qb);
        load_kv(sK, p.sink_k, p.band_k, 0);
        cp_async_commit();
    }

    for (int it = 0; it < n_tiles; it++) {
        cp_async_wait_all();
        __syncthreads(); /* K(it) and Q landed; every warp is done with V(it-1) */
        load_kv(sV, p.sink_v, p.band_v, it);
        cp_async_commit();

        /* ---- S = Q K^T: s[ma][nt][e], row lane/4 (+8 for e >= 2), key nt*8 + (lane%4)*2 + (e&1) */
        float sc[MA][NT][4];
#pragma unroll
        for (int ma = 0; ma < MA; ma++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++) sc[ma][nt][0] = sc[ma][nt][1] = sc[ma][nt][2] = sc[ma][nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            uint32_t a[MA][4];
#pragma unroll
            for (int ma = 0; ma < MA; ma++)
                ldsm_x4(a[ma], q_lds + (uint32_t)((ma * 16 * LDS + kk * 16) * 2));
#pragma unroll
            for (int nn = 0; nn < BN / 16; nn++) {
                uint32_t b[4];
                ldsm_x4(b, k_lds + (uint32_t)((nn * 16 * LDS + kk * 16) * 2));
#pragma unroll
                for (int ma = 0; ma < MA; ma++) {
                    mma16816<T>(sc[ma][2 * nn], a[ma], b[0], b[1]);
                    mma16816<T>(sc[ma][2 * nn + 1], a[ma], b[2], b[3]);
                }
            }
        }

        /* ---- scale, mask, ALiBi (log2 domain) */
        const bool sink = it < n_sink_tiles;
        const int tb = sink ? it : it - n_sink_tiles;
        if (sink) {
#pragma unroll
            for (int ma = 0; ma < MA; ma++)
#pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    const int64_t P = P0 + rw0 + ma * 16 + lane / 4 + hf * 8;
                    const int64_t sq = min64(P, p.K + p.W);
                    const int nsv = (int)min64(p.n_sink, P + 1);
                    const int64_t jlo = sq - p.max_dist; /* j >= jlo: within max_dist */
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
#pragma unroll
                        for (int e1 = 0; e1 < 2; e1++) {
                            const int j = tb * BN + nt * 8 + (lane % 4) * 2 + e1;
                            float v = sc[ma][nt][hf * 2 + e1] * scale2;
                            if (p.alibi) v -= slope2 * (float)(sq - j);
                            sc[ma][nt][hf * 2 + e1] = (j < nsv && (int64_t)j >= jlo) ? v : -INFINITY;
                        }
                }
        } else {
            const int64_t tile_pos = kb_lo + (int64_t)tb * BN; /* position of key column 0 */
            /* relative offsets P - tile_pos fit an int (see kernels.h) */
            const int rel_w0 = (int)(P0 + rw0 - tile_pos), rel_w1 = rel_w0 + 16 * MA - 1;
            const bool full = rel_w0 - (BN - 1) >= 0 && rel_w1 <= wb_i;
#pragma unroll
            for (int ma = 0; ma < MA; ma++)
#pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    const int rel = rel_w0 + ma * 16 + lane / 4 + hf * 8;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
#pragma unroll
                        for (int e1 = 0; e1 < 2; e1++) {
                            const int dist = rel - (nt * 8 + (lane % 4) * 2 + e1); /* P - key position */
                            float v = sc[ma][nt][hf * 2 + e1] * scale2;
                            if (p.alibi) v -= slope2 * (float)dist;
                            if (!full && (dist < 0 || dist > wb_i)) v = -INFINITY;
                            sc[ma][nt][hf * 2 + e1] = v;
                        }
                }
        }

        /* ---- online softmax per row; P replaces S */
#pragma unroll
        for (int ma = 0; ma < MA; ma++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                float tmax = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
                    tmax = fmaxf(tmax, fmaxf(sc[ma][nt][hf * 2], sc[ma][nt][hf * 2 + 1]));
                tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
                tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
                const float mold = row_m[ma][hf], mnew = fmaxf(mold, tmax);
                const float mref = mnew == -INFINITY ? 0.0f : mnew; /* nothing seen yet: p = 0 */
                const float alpha = ex2(mold - mref);
                row_m[ma][hf] = mnew;
                float rs = 0.0f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    const float p0 = ex2(sc[ma][nt][hf * 2] - mref), p1 = ex2(sc[ma][nt][hf * 2 + 1] - mref);
                    sc[ma][nt][hf * 2] = p0;
                    sc[ma][nt][hf * 2 + 1] = p1;
                    rs += p0 + p1;
                }
                row_l[ma][hf] = row_l[ma][hf] * alpha + rs;
#pragma unroll
                for (int dt = 0; dt < DT; dt++) {
                    o[ma][dt][hf * 2] *= alpha;
                    o[ma][dt][hf * 2 + 1] *= alpha;
                }
            }

        cp_async_wait_all();
        __syncthreads(); /* V(it) landed; every warp is done with K(it) and Q */
        if (it + 1 < n_tiles) {
            if (it + 1 == n_sink_tiles) load_q(p.qb); /* sinks done: band queries */
            load_kv(sK, p.sink_k, p.band_k, it + 1);
            cp_async_commit();
        }

        /* ---- O += P V; P as A fragments: the S accumulator layout of key tiles 2kk, 2kk+1 is
         * the A layout of the 16-key step kk (rows g / g+8, keys (lane%4)*2 and +8) */
        uint32_t pa[MA][BN / 16][4];
#pragma unroll
        for (int ma = 0; ma < MA; ma++)
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                pa[ma][kk][0] = pack2<T>(sc[ma][2 * kk][0], sc[ma][2 * kk][1]);
                pa[ma][kk][1] = pack2<T>(sc[ma][2 * kk][2], sc[ma][2 * kk][3]);
                pa[ma][kk][2] = pack2<T>(sc[ma][2 * kk + 1][0], sc[ma][2 * kk + 1][1]);
                pa[ma][kk][3] = pack2<T>(sc[ma][2 * kk + 1][2], sc[ma][2 * kk + 1][3]);
            }
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
            for (int dd = 0; dd < HD / 16; dd++) {
                uint32_t b[4];
                ldsm_x4_trans(b, v_lds + (uint32_t)((kk * 16 * LDS + dd * 16) * 2));
#pragma unroll
                for (int ma = 0; ma < MA; ma++) {
                    mma16816<T>(o[ma][2 * dd], pa[ma][kk], b[0], b[1]);
                    mma16816<T>(o[ma][2 * dd + 1], pa[ma][kk], b[2], b[3]);
                }
            }
        }
    }

    /* ---- normalise and store */
#pragma unroll
    for (int ma = 0; ma < MA; ma++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            float l = row_l[ma][hf];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            if (extra) l += ex2(e2 - row_m[ma][hf]);
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            const int t = t0 + rw0 + ma * 16 + lane / 4 + hf * 8;
            if (t < p.T) {
                const size_t obase = (size_t)t * p.out_stride + (size_t)h * HD + (lane % 4) * 2;
#pragma unroll
                for (int dt = 0; dt < DT; dt++) {
                    store_from_f32(p.out, p.odt, obase + dt * 8, o[ma][dt][hf * 2] * inv);
                    store_from_f32(p.out, p.odt, obase + dt * 8 + 1, o[ma][dt][hf * 2 + 1] * inv);
                }
            }
        }
}

/* Configurations: rows per warp 16*MA, keys per tile BN, NW warps, MINB blocks per SM for
 * __launch_bounds__. Chosen from `-Xptxas -v` (nvcc 13.0, sm_90): the spill-free ones with the
 * least shared-memory traffic per flop (ldmatrix bytes per warp and tile: Q 16*MA*hd*2 +
 * K and V BN*hd*2 each, for 16*MA*BN*hd*4 flops). MA = 2 with BN = 64 spills at every hd; MA = 2,
 * BN = 32 fits in 255 registers (2 blocks of 128 threads per SM); hd = 256 needs MA = 1. */
template <int HD> struct MmaPick;
template <> struct MmaPick<64> { static constexpr int MA = 2, BN = 32, NW = 4, MINB = 1; };
template <> struct MmaPick<80> { static constexpr int MA = 2, BN = 32, NW = 4, MINB = 1; };
template <> struct MmaPick<96> { static constexpr int MA = 2, BN = 32, NW = 4, MINB = 1; };
template <> struct MmaPick<128> { static constexpr int MA = 2, BN = 32, NW = 4, MINB = 1; };
template <> struct MmaPick<256> { static constexpr int MA = 1, BN = 32, NW = 4, MINB = 1; };

/* The shared-memory attribute, once per (kernel, device). Returns the first error. */
template <typename T, int HD> cudaError_t mma_attr() {
    using Pk = MmaPick<HD>;
    using C = MmaCfg<HD, Pk::MA, Pk::BN, Pk::NW>;
    static bool done[64];
    int dev = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err != cudaSuccess) return err;
    if (dev >= 0 && dev < 64 && done[dev]) return cudaSuccess;
    err = cudaFuncSetAttribute(band_mma_kernel<T, HD, Pk::MA, Pk::BN, Pk::NW, Pk::MINB>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, (int)C::SMEM);
    if (err == cudaSuccess && dev >= 0 && dev < 64) done[dev] = true;
    return err;
}

template <typename T, int HD> void launch_mma_hd(const BandParams &p, cudaStream_t s) {
    using Pk = MmaPick<HD>;
    using C = MmaCfg<HD, Pk::MA, Pk::BN, Pk::NW>;
    if (mma_attr<T, HD>() != cudaSuccess) return; /* the error stays for cudaGetLastError */
    dim3 grid((unsigned)((p.T + C::BQ - 1) / C::BQ), (unsigned)p.H);
    band_mma_kernel<T, HD, Pk::MA, Pk::BN, Pk::NW, Pk::MINB><<<grid, C::THREADS, C::SMEM, s>>>(p);
}

template <typename T> bool launch_mma(const BandParams &p, cudaStream_t s) {
    switch (p.hd) {
    case 64: launch_mma_hd<T, 64>(p, s); return true;
    case 80: launch_mma_hd<T, 80>(p, s); return true;
    case 96: launch_mma_hd<T, 96>(p, s); return true;
    case 128: launch_mma_hd<T, 128>(p, s); return true;
    case 256: launch_mma_hd<T, 256>(p, s); return true;
    default: return false;
    }
}

template <typename T> cudaError_t mma_attr_all() {
    cudaError_t e;
    if ((e = mma_attr<T, 64>()) != cudaSuccess) return e;
    if ((e = mma_attr<T, 80>()) != cudaSuccess) return e;
    if ((e = mma_attr<T, 96>()) != cudaSuccess) return e;
    if ((e = mma_attr<T, 128>()) != cudaSuccess) return e;
    return mma_attr<T, 256>();
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

} // namespace

extern "C" cudaError_t sbk_init(void) {
    cudaError_t e = mma_attr_all<__nv_bfloat16>();
    if (e == cudaSuccess) e = mma_attr_all<__half>();
    return e;
}

extern "C" void sbk_band_attention(void *out, sbk_dtype odt, size_t out_stride, const void *qb, const void *qs,
                                   size_t q_stride, const void *band_k, const void *band_v, int64_t band_cap,
                                   const void *sink_k, const void *sink_v, int n_sink, int64_t K, int64_t W,
                                   int64_t pos0, int T, int64_t max_dist, int H, int KV, int hd, int softmax_kind,
                                   const float *sink_logit, const float *alibi, sbk_dtype dt, cudaStream_t s) {
    if (T <= 0 || H <= 0 || KV <= 0 || H % KV != 0 || hd <= 0 || hd > 256 || band_cap < 1) return;
    BandParams p;
    p.out = out;
    p.odt = odt;
    p.out_stride = out_stride;
    p.qb = qb;
    p.qs = qs ? qs : qb;
    p.q_stride = q_stride;
    p.band_k = band_k;
    p.band_v = band_v;
    p.band_cap = band_cap;
    p.sink_k = sink_k;
    p.sink_v = sink_v;
    p.n_sink = n_sink > 0 && sink_k && sink_v ? n_sink : 0;
    p.K = K;
    p.W = W;
    p.pos0 = pos0;
    p.T = T;
    p.max_dist = max_dist < -1 ? -1 : max_dist;
    p.Wb = W < p.max_dist ? W : p.max_dist;
    p.H = H;
    p.KV = KV;
    p.hd = hd;
    p.softmax_kind = softmax_kind;
    p.sink_logit = sink_logit;
    p.alibi = alibi;
    if (dt == SBK_F32) {
        launch_simt<float>(p, s);
        return;
    }
    const bool tc = q_stride % 8 == 0 && aligned16(qb) && aligned16(p.qs) && aligned16(band_k) &&
                    aligned16(band_v) && (p.n_sink == 0 || (aligned16(sink_k) && aligned16(sink_v)));
    if (dt == SBK_BF16) {
        if (!(tc && launch_mma<__nv_bfloat16>(p, s))) launch_simt<__nv_bfloat16>(p, s);
    } else {
        if (!(tc && launch_mma<__half>(p, s))) launch_simt<__half>(p, s);
    }
}
