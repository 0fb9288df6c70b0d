/* Helpers shared by the .cu files of engine/cuda (internal, C++ only). */
#ifndef SB_CUDA_COMMON_CUH
#define SB_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "engine/cuda/kernels.h"

namespace sbk {

/* ---- bit-exact conversions, the same integer algorithms as engine/half.h ---- */

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) { return __uint_as_float((uint32_t)b << 16); }

__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
    uint32_t x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return __uint_as_float(sign);
        uint32_t e = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return __uint_as_float(sign | (e << 23) | ((mant & 0x3ffu) << 13));
    }
    if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    return __uint_as_float(sign | ((exp + 112) << 23) | (mant << 13));
}

__device__ __forceinline__ uint16_t f32_to_f16_bits(float f) {
    uint32_t x = __float_as_uint(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u)
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? (0x200u | ((ax >> 13) & 0x3ffu)) : 0u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        if (ax <= 0x33000000u) return sign;
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;
        uint32_t h = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax - 0x38000000u) >> 13;
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

/* Load element i of a buffer of runtime type dt as f32; store f32 v as element i. */
__device__ __forceinline__ float load_as_f32(const void *p, sbk_dtype dt, size_t i) {
    if (dt == SBK_F32) return ((const float *)p)[i];
    uint16_t b = ((const uint16_t *)p)[i];
    return dt == SBK_BF16 ? bf16_bits_to_f32(b) : f16_bits_to_f32(b);
}
__device__ __forceinline__ void store_from_f32(void *p, sbk_dtype dt, size_t i, float v) {
    if (dt == SBK_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = dt == SBK_BF16 ? f32_to_bf16_bits(v) : f32_to_f16_bits(v);
}

/* Compile-time element types: float, __nv_bfloat16, __half. */
template <typename T> struct elem;
template <> struct elem<float> {
    static constexpr sbk_dtype dt = SBK_F32;
    __device__ __forceinline__ static float to_f32(float x) { return x; }
    __device__ __forceinline__ static float from_f32(float x) { return x; }
};
template <> struct elem<__nv_bfloat16> {
    static constexpr sbk_dtype dt = SBK_BF16;
    __device__ __forceinline__ static float to_f32(__nv_bfloat16 x) {
        return bf16_bits_to_f32(__bfloat16_as_ushort(x));
    }
    __device__ __forceinline__ static __nv_bfloat16 from_f32(float x) {
        return __ushort_as_bfloat16(f32_to_bf16_bits(x));
    }
};
template <> struct elem<__half> {
    static constexpr sbk_dtype dt = SBK_F16;
    /* the hardware conversion is exact for every finite value and inf (NaN payloads aside) */
    __device__ __forceinline__ static float to_f32(__half x) { return __half2float(x); }
    __device__ __forceinline__ static __half from_f32(float x) { return __ushort_as_half(f32_to_f16_bits(x)); }
};

/* Grid for n elements with `threads` per block, grid-stride loops covering the rest. */
static inline unsigned grid_for(size_t n, unsigned threads, unsigned max_blocks = 65535u * 8u) {
    size_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > max_blocks) b = max_blocks;
    return (unsigned)b;
}

/* Programmatic dependent launch (compute capability 9.0+). A decode step is ~10 small kernels
 * per layer, each waiting for the one before: launched with launch_pdl, a kernel's blocks are
 * scheduled while its predecessor is still running (once every block of the predecessor has
 * called pdl_trigger) and sit in pdl_wait until it has finished and its writes are visible.
 * Contract of a kernel launched with launch_pdl: before pdl_wait it reads nothing but
 * constant weights and writes nothing. Results are unchanged: only the launch overlaps. */
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* kernel<<<grid, block, 0, s>>>(args...), with the programmatic-serialization attribute when
 * sbk_pdl_on(); launch errors are left for cudaGetLastError, as with <<<>>>. */
template <typename... K, typename... A>
static inline void launch_pdl(void (*kernel)(K...), dim3 grid, dim3 block, cudaStream_t s, A... args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = 0;
    cfg.stream = s;
    cfg.attrs = at;
    cfg.numAttrs = sbk_pdl_on() ? 1 : 0;
    (void)cudaLaunchKernelEx(&cfg, kernel, static_cast<K>(args)...);
}

} // namespace sbk

#endif
