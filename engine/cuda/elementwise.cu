/* Elementwise ops (engine/cuda/kernels.h): bias, residual add, clamp, activations, GLU. */
#include "engine/cuda/common.cuh"

using namespace sbk;

#define EW_THREADS 256
#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* engine/ops.c sb_silu / sb_gelu_erf / sb_gelu_tanh with CUDA's libm (full precision). */
__device__ __forceinline__ float act_f(float x, int act) {
    switch (act) {
    case SBK_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case SBK_ACT_GELU_TANH: {
        const float k = 0.79788456080286536f;
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    default: return x / (1.0f + expf(-x));
    }
}

__global__ void add_bias_kernel(float *x, const float *b, size_t n, int C) {
    GRID_STRIDE(i, n) x[i] += b[i % (size_t)C];
}
extern "C" void sbk_add_bias(float *x, const float *b, int T, int C, cudaStream_t s) {
    if (T <= 0 || C <= 0 || !b) return;
    size_t n = (size_t)T * C;
    add_bias_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(x, b, n, C);
}

__global__ void add_kernel(float *x, const float *y, size_t n) { GRID_STRIDE(i, n) x[i] += y[i]; }
extern "C" void sbk_add(float *x, const float *y, size_t n, cudaStream_t s) {
    if (n == 0) return;
    add_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(x, y, n);
}

__global__ void clamp_kernel(float *x, size_t n, float clip) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        if (v > clip)
            x[i] = clip;
        else if (v < -clip)
            x[i] = -clip;
    }
}
extern "C" void sbk_clamp(float *x, size_t n, float clip, cudaStream_t s) {
    if (n == 0 || !(clip > 0.0f)) return;
    clamp_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(x, n, clip);
}

__global__ void act_kernel(void *out, sbk_dtype odt, const float *in, size_t n, int act) {
    GRID_STRIDE(i, n) store_from_f32(out, odt, i, act_f(in[i], act));
}
extern "C" void sbk_act(void *out, sbk_dtype odt, const float *in, size_t n, int act, cudaStream_t s) {
    if (n == 0) return;
    act_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(out, odt, in, n, act);
}

__global__ void glu_kernel(void *out, sbk_dtype odt, const float *gate, const float *up, size_t n, int act) {
    GRID_STRIDE(i, n) store_from_f32(out, odt, i, act_f(gate[i], act) * up[i]);
}
extern "C" void sbk_glu(void *out, sbk_dtype odt, const float *gate, const float *up, size_t n, int act,
                        cudaStream_t s) {
    if (n == 0) return;
    glu_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(out, odt, gate, up, n, act);
}

__global__ void glu_fused_kernel(void *out, sbk_dtype odt, const float *gu, size_t n, int F, int act) {
    pdl_trigger();
    pdl_wait();
    GRID_STRIDE(i, n) {
        const size_t t = i / (size_t)F, f = i % (size_t)F;
        const float *row = gu + t * 2 * (size_t)F;
        store_from_f32(out, odt, i, act_f(row[f], act) * row[F + f]);
    }
}
extern "C" void sbk_glu_fused(void *out, sbk_dtype odt, const float *gu, int T, int F, int act, cudaStream_t s) {
    if (T <= 0 || F <= 0) return;
    size_t n = (size_t)T * F;
    launch_pdl(glu_fused_kernel, dim3(grid_for(n, EW_THREADS)), dim3(EW_THREADS), s, out, odt, gu, n, F, act);
}
