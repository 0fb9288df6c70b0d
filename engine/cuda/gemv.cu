/* One-row matmul of decode mode: y[OC] (f32) = beta * y + W[OC, C] (bf16/f16) . x[C] (same type).
 *
 * At T = 1 a transformer layer is four matrix-vector products that must stream every weight
 * once; cuBLAS's GemmEx with n = 1 reads them at about 2.6 TB/s on an H200 (bench/gpu), this
 * kernel aims at the read bandwidth. Each warp owns ROWS rows; every lane loads 16 bytes
 * (8 weights) of each row per step, so a warp reads 512 contiguous bytes of ROWS rows at once
 * and keeps ROWS x UNROLL loads in flight; x is read the same way (it stays in L1/L2). Lane
 * sums are reduced with shuffles in a fixed order, so the result does not depend on the launch.
 * Needs C % 8 == 0 and 16-byte aligned W and x (sbk_gemv_ok). */
#include "engine/cuda/common.cuh"

namespace {

constexpr int WARPS = 8, ROWS = 2, UNROLL = 4;

template <typename T> __device__ __forceinline__ void acc8(float &a, const uint4 &w, const uint4 &x) {
    const T *wp = reinterpret_cast<const T *>(&w);
    const T *xp = reinterpret_cast<const T *>(&x);
#pragma unroll
    for (int i = 0; i < 8; i++) a = fmaf(sbk::elem<T>::to_f32(wp[i]), sbk::elem<T>::to_f32(xp[i]), a);
}

template <typename T>
__global__ void __launch_bounds__(WARPS * 32) gemv_kernel(float *y, const T *W, const T *x, int C, int OC, float beta) {
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

} // namespace

extern "C" int sbk_gemv_ok(sbk_dtype dt, const void *W, const void *x, int C) {
    return dt != SBK_F32 && C > 0 && C % 8 == 0 && ((uintptr_t)W % 16) == 0 && ((uintptr_t)x % 16) == 0;
}

extern "C" void sbk_gemv(float *y, const void *W, const void *x, sbk_dtype dt, int C, int OC, float beta,
                         cudaStream_t s) {
    if (OC <= 0 || !sbk_gemv_ok(dt, W, x, C)) return;
    const unsigned blocks = (unsigned)((OC + WARPS * ROWS - 1) / (WARPS * ROWS));
    if (dt == SBK_BF16)
        gemv_kernel<__nv_bfloat16><<<blocks, WARPS * 32, 0, s>>>(y, (const __nv_bfloat16 *)W, (const __nv_bfloat16 *)x, C,
                                                                 OC, beta);
    else
        gemv_kernel<__half><<<blocks, WARPS * 32, 0, s>>>(y, (const __half *)W, (const __half *)x, C, OC, beta);
}
