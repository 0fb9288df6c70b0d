/* One-row matmul of decode mode: y[OC] (f32) = beta * y + W[OC, C] (bf16/f16) . x[C] (same type).
 *
 * At T = 1 a transformer layer is four matrix-vector products that must stream every weight
 * once; cuBLAS's GemmEx with n = 1 reads them at about 2.6 TB/s on an H200 (bench/gpu).
 *
 * Default kernel (gemv_rows): a block of 256 threads owns R consecutive rows, i.e. R * C * 2
 * contiguous bytes, and its threads split the columns: thread t reads 16-byte vectors t,
 * t + 256, ... of each of the R rows, U vectors per row per batch, so R * U independent
 * 16-byte loads are in flight per thread (R = 4, U = 2 at every shape: C = 11008 takes several
 * batches), weights with L1::no_allocate (the first batch before the launch_pdl wait), x
 * with coherent loads after it. The
 * grid sweeps the matrix in order, as a copy does. Per-thread sums are reduced with warp
 * shuffles, then over the 8 warps in order through shared memory: a fixed order, so the
 * result does not depend on the launch.
 *
 * Legacy kernel (gemv_warp, sbk_legacy() & SBK_LEGACY_GEMV): each warp owns ROWS = 2 rows;
 * every lane loads 16 bytes of each row per step, UNROLL = 4 steps ahead.
 *
 * Both need C % 8 == 0 and 16-byte aligned W and x (sbk_gemv_ok). */
#include <stdlib.h>

#include "engine/cuda/common.cuh"

namespace {

template <typename T> __device__ __forceinline__ void acc8(float &a, const uint4 &w, const uint4 &x) {
    const T *wp = reinterpret_cast<const T *>(&w);
    const T *xp = reinterpret_cast<const T *>(&x);
#pragma unroll
    for (int i = 0; i < 8; i++) a = fmaf(sbk::elem<T>::to_f32(wp[i]), sbk::elem<T>::to_f32(xp[i]), a);
}

/* a weight vector, read once: not kept in L1 */
__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

/* ---------------------------------------------------------------- block per R rows */

constexpr int GR_THREADS = 256, GR_WARPS = GR_THREADS / 32;

template <typename T, int R, int U>
__global__ void __launch_bounds__(GR_THREADS) gemv_rows(float *y, const T *W, const T *x, int C, int OC, float beta) {
    __shared__ float red[GR_WARPS][R];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row0 = blockIdx.x * R;
    const int n16 = C / 8; /* 16-byte vectors per row */
    const uint4 *xv = reinterpret_cast<const uint4 *>(x);
    const uint4 *wv[R];
#pragma unroll
    for (int r = 0; r < R; r++) wv[r] = reinterpret_cast<const uint4 *>(W + (size_t)min(row0 + r, OC - 1) * C);
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f;
    sbk::pdl_trigger();
    /* the weights are constant: the first batch is requested before the wait for x (and y) */
    uint4 wr[R][U];
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int jc = min(tid + GR_THREADS * u, n16 - 1);
#pragma unroll
        for (int r = 0; r < R; r++) wr[r][u] = ld_stream(wv[r] + jc);
    }
    sbk::pdl_wait();
    for (int j0 = tid; j0 < n16; j0 += GR_THREADS * U) {
        uint4 xr[U];
        /* a vector past the row's end loads the last one (no branch around the loads) and
         * is then zeroed */
        if (j0 != tid) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int jc = min(j0 + GR_THREADS * u, n16 - 1);
#pragma unroll
                for (int r = 0; r < R; r++) wr[r][u] = ld_stream(wv[r] + jc);
            }
        }
#pragma unroll
        /* x is the previous kernel's output: a coherent load (.ca), not the read-only path,
         * which may not be used for data written during the kernel's lifetime (launch_pdl) */
        for (int u = 0; u < U; u++) xr[u] = __ldca(xv + min(j0 + GR_THREADS * u, n16 - 1));
#pragma unroll
        for (int u = 0; u < U; u++)
            if (j0 + GR_THREADS * u >= n16) {
                xr[u] = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
                for (int r = 0; r < R; r++) wr[r][u] = make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int r = 0; r < R; r++) acc8<T>(acc[r], wr[r][u], xr[u]);
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        float a = acc[r];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
        if (lane == 0) red[warp][r] = a;
    }
    __syncthreads();
    if (tid < R && row0 + tid < OC) {
        float a = 0.0f;
#pragma unroll
        for (int w = 0; w < GR_WARPS; w++) a += red[w][tid];
        y[row0 + tid] = beta == 0.0f ? a : fmaf(beta, y[row0 + tid], a);
    }
}

template <typename T, int R, int U> void launch_rows(float *y, const void *W, const void *x, int C, int OC, float beta,
                                                     cudaStream_t s) {
    const unsigned blocks = (unsigned)((OC + R - 1) / R);
    sbk::launch_pdl(gemv_rows<T, R, U>, dim3(blocks), dim3(GR_THREADS), s, y, (const T *)W, (const T *)x, C, OC, beta);
}

/* ---------------------------------------------------------------- legacy: warp per 2 rows */

constexpr int WARPS = 8, ROWS = 2, UNROLL = 4;

template <typename T>
__global__ void __launch_bounds__(WARPS * 32) gemv_warp(float *y, const T *W, const T *x, int C, int OC, float beta) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row0 = (blockIdx.x * WARPS + warp) * ROWS;
    if (row0 >= OC) return;
    const int n16 = C / 8; /* 16-byte vectors per row */
    const uint4 *xv = reinterpret_cast<const uint4 *>(x);
    const uint4 *wv[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; r++) wv[r] = reinterpret_cast<const uint4 *>(W + (size_t)min(row0 + r, OC - 1) * C);
    float acc[ROWS] = {};
    int i = lane;
    for (; i + 32 * (UNROLL - 1) < n16; i += 32 * UNROLL) {
        uint4 wr[ROWS][UNROLL], xr[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            xr[u] = __ldg(xv + i + 32 * u);
#pragma unroll
            for (int r = 0; r < ROWS; r++) wr[r][u] = __ldcs(wv[r] + i + 32 * u); /* streamed once */
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
#pragma unroll
            for (int r = 0; r < ROWS; r++) acc8<T>(acc[r], wr[r][u], xr[u]);
    }
    for (; i < n16; i += 32) {
        const uint4 xr = __ldg(xv + i);
#pragma unroll
        for (int r = 0; r < ROWS; r++) acc8<T>(acc[r], __ldcs(wv[r] + i), xr);
    }
#pragma unroll
    for (int r = 0; r < ROWS; r++) {
        float a = acc[r];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
        if (lane == 0 && row0 + r < OC) y[row0 + r] = beta == 0.0f ? a : fmaf(beta, y[row0 + r], a);
    }
}

template <typename T> void launch_warp(float *y, const void *W, const void *x, int C, int OC, float beta,
                                       cudaStream_t s) {
    const unsigned blocks = (unsigned)((OC + WARPS * ROWS - 1) / (WARPS * ROWS));
    gemv_warp<T><<<blocks, WARPS * 32, 0, s>>>(y, (const T *)W, (const T *)x, C, OC, beta);
}

int g_cfg = -1; /* R * 10 + U, 0 for the default, -1 before the environment is read */

/* The configuration: sbk_gemv_config, else SINKBENCH_CUDA_GEMV=RU (22, 24, 42, 44, 46, 82: R rows, U vectors per
 * batch; tests/gpu/test_kernels --bench sweeps them) or the default. Read once. */
template <typename T> void launch_gemv(float *y, const void *W, const void *x, int C, int OC, float beta,
                                       cudaStream_t s) {
    if (sbk_legacy() & SBK_LEGACY_GEMV) {
        launch_warp<T>(y, W, x, C, OC, beta, s);
        return;
    }
    if (g_cfg < 0) {
        const char *e = getenv("SINKBENCH_CUDA_GEMV");
        g_cfg = e ? atoi(e) : 0;
    }
    switch (g_cfg) {
    case 22: launch_rows<T, 2, 2>(y, W, x, C, OC, beta, s); return;
    case 24: launch_rows<T, 2, 4>(y, W, x, C, OC, beta, s); return;
    case 42: launch_rows<T, 4, 2>(y, W, x, C, OC, beta, s); return;
    case 44: launch_rows<T, 4, 4>(y, W, x, C, OC, beta, s); return;
    case 46: launch_rows<T, 4, 6>(y, W, x, C, OC, beta, s); return;
    case 82: launch_rows<T, 8, 2>(y, W, x, C, OC, beta, s); return;
    default: break;
    }
    /* measured on an H200 (docs/bench/gpu/PERF_NOTES.md): R = 4, U = 2 at every 7B shape, the
     * down projection (C = 11008) included, beat U = 4 there: 3.42 against 3.53 ms per token */
    launch_rows<T, 4, 2>(y, W, x, C, OC, beta, s);
}

} // namespace

extern "C" void sbk_gemv_config(int ru) { g_cfg = ru; }

extern "C" int sbk_gemv_ok(sbk_dtype dt, const void *W, const void *x, int C) {
    return dt != SBK_F32 && C > 0 && C % 8 == 0 && ((uintptr_t)W % 16) == 0 && ((uintptr_t)x % 16) == 0;
}

extern "C" void sbk_gemv(float *y, const void *W, const void *x, sbk_dtype dt, int C, int OC, float beta,
                         cudaStream_t s) {
    if (OC <= 0 || !sbk_gemv_ok(dt, W, x, C)) return;
    if (dt == SBK_BF16)
        launch_gemv<__nv_bfloat16>(y, W, x, C, OC, beta, s);
    else
        launch_gemv<__half>(y, W, x, C, OC, beta, s);
}
