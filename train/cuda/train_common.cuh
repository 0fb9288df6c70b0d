/* Helpers shared by the .cu files of train/cuda (internal, C++ only): fixed-order warp and
 * block reductions. The shuffle trees and the per-warp partials are combined in an order that
 * depends only on blockDim, so every reduction is bit-reproducible (no atomics). */
#ifndef SB_TRAIN_COMMON_CUH
#define SB_TRAIN_COMMON_CUH

#include <math.h>
#include <stdint.h>

#include "engine/cuda/common.cuh" /* sbk::f32_to_bf16_bits (engine/half.h rounding), grid_for */
#include "train/cuda/train_kernels.h"

namespace sbt {

using sbk::f32_to_bf16_bits;
using sbk::grid_for;

#define SBT_WARP 32

/* Every lane gets the sum / max of v over the warp (xor tree: the same order on every lane). */
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum / max for a block of NT threads (NT a multiple of 32); every thread gets the
 * result. red: NT/32 elements of shared memory. Starts with a barrier so red may be reused
 * right after a previous call. */
template <int NT> __device__ __forceinline__ double block_sum(double v, double *red) {
    v = warp_sum(v);
    __syncthreads();
    if (threadIdx.x % SBT_WARP == 0) red[threadIdx.x / SBT_WARP] = v;
    __syncthreads();
    double t = 0.0;
#pragma unroll
    for (int i = 0; i < NT / SBT_WARP; i++) t += red[i];
    return t;
}
template <int NT> __device__ __forceinline__ float block_max(float v, float *red) {
    v = warp_max(v);
    __syncthreads();
    if (threadIdx.x % SBT_WARP == 0) red[threadIdx.x / SBT_WARP] = v;
    __syncthreads();
    float t = red[0];
#pragma unroll
    for (int i = 1; i < NT / SBT_WARP; i++) t = fmaxf(t, red[i]);
    return t;
}

/* Whether a pointer allows vector accesses of `bytes` (nullptr counts as aligned). */
static inline bool aligned(const void *p, size_t bytes) { return ((uintptr_t)p % bytes) == 0; }

} // namespace sbt

#endif
