/* Elementwise kernels of the GPU trainer (train/cuda/train_kernels.h): bf16 conversion,
 * SwiGLU forward/backward, RoPE forward/backward. Grid-stride loops, one element (or pair, or
 * float4) per thread per step. The float arithmetic is spelled with __f*_rn intrinsics so nvcc
 * cannot contract it into fused multiply-adds: the results then equal the CPU's (which builds
 * with -std=c11, i.e. no contraction) up to expf's last bit. */
#include "train/cuda/train_common.cuh"

using namespace sbt;

#define EW_THREADS 256
#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* ------------------------------------------------------------ f32 -> bf16 */

__global__ void bf16_kernel(uint16_t *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) out[i] = f32_to_bf16_bits(in[i]);
}
/* 4 elements per step: one 16-byte load, one 8-byte store */
__global__ void bf16_vec_kernel(ushort4 *out, const float4 *in, size_t n4) {
    GRID_STRIDE(i, n4) {
        float4 v = in[i];
        out[i] = make_ushort4(f32_to_bf16_bits(v.x), f32_to_bf16_bits(v.y), f32_to_bf16_bits(v.z),
                              f32_to_bf16_bits(v.w));
    }
}

extern "C" void sbt_f32_to_bf16(uint16_t *out, const float *in, size_t n, cudaStream_t s) {
    if (n == 0) return;
    size_t n4 = aligned(in, 16) && aligned(out, 8) ? n / 4 : 0;
    if (n4) bf16_vec_kernel<<<grid_for(n4, EW_THREADS), EW_THREADS, 0, s>>>((ushort4 *)out, (const float4 *)in, n4);
    if (n > n4 * 4)
        bf16_kernel<<<grid_for(n - n4 * 4, EW_THREADS), EW_THREADS, 0, s>>>(out + n4 * 4, in + n4 * 4, n - n4 * 4);
}

/* ------------------------------------------------------------ SwiGLU */

/* engine/ops.c sb_silu(x) = x / (1 + expf(-x)) */
__global__ void swiglu_fwd_kernel(float *h, uint16_t *hb, const float *gate, const float *up, size_t n) {
    GRID_STRIDE(i, n) {
        float g = gate[i];
        float y = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
        h[i] = y;
        if (hb) hb[i] = f32_to_bf16_bits(y);
    }
}

extern "C" void sbt_swiglu_forward(float *h, uint16_t *h_bf16, const float *gate, const float *up, size_t n,
                                   cudaStream_t s) {
    if (n == 0) return;
    swiglu_fwd_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(h, h_bf16, gate, up, n);
}

/* train/layers_backward.c swiglu_backward, overwriting instead of accumulating */
__global__ void swiglu_bwd_kernel(float *dgate, float *dup, uint16_t *dgb, uint16_t *dub, const float *dh,
                                  const float *gate, const float *up, size_t n) {
    GRID_STRIDE(i, n) {
        float g = gate[i], u = up[i], d = dh[i];
        float sig = __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g)));
        float silu = __fmul_rn(g, sig);
        /* dout * up * sig * (1 + g * (1 - sig)), left to right as the C expression */
        float dg = __fmul_rn(__fmul_rn(__fmul_rn(d, u), sig), __fadd_rn(1.0f, __fmul_rn(g, __fsub_rn(1.0f, sig))));
        float du = __fmul_rn(d, silu);
        dgate[i] = dg;
        dup[i] = du;
        if (dgb) dgb[i] = f32_to_bf16_bits(dg);
        if (dub) dub[i] = f32_to_bf16_bits(du);
    }
}

extern "C" void sbt_swiglu_backward(float *dgate, float *dup, uint16_t *dgate_bf16, uint16_t *dup_bf16,
                                    const float *dh, const float *gate, const float *up, size_t n, cudaStream_t s) {
    if (n == 0) return;
    swiglu_bwd_kernel<<<grid_for(n, EW_THREADS), EW_THREADS, 0, s>>>(dgate, dup, dgate_bf16, dup_bf16, dh, gate,
                                                                     up, n);
}

/* ------------------------------------------------------------ RoPE */

/* One thread per rotated pair (row n, head, j < D/2): consecutive threads take consecutive j,
 * so both halves (half split) or the float pairs (interleaved) are read coalesced. dir = +1
 * rotates by the angle (forward), -1 by its negative (backward, as rope_backward). */
__global__ void rope_kernel(float *x, const float *cos_tab, const float *sin_tab, size_t pairs, int T, int NH,
                            int D, int interleaved, int dir) {
    const int half = D / 2;
    GRID_STRIDE(u, pairs) {
        const int j = (int)(u % half);
        const size_t nh = u / half; /* row * NH + head */
        const int t = (int)((nh / NH) % T);
        const float cs = cos_tab[(size_t)t * half + j], sn = sin_tab[(size_t)t * half + j];
        float *hx = x + nh * D;
        const int ia = interleaved ? 2 * j : j, ib = interleaved ? 2 * j + 1 : j + half;
        const float a = hx[ia], b = hx[ib];
        if (dir > 0) {
            hx[ia] = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
            hx[ib] = __fadd_rn(__fmul_rn(a, sn), __fmul_rn(b, cs));
        } else {
            hx[ia] = __fadd_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
            hx[ib] = __fadd_rn(__fmul_rn(-a, sn), __fmul_rn(b, cs));
        }
    }
}

static void rope_launch(float *x, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D, int style,
                        int dir, cudaStream_t s) {
    if (N <= 0 || T <= 0 || NH <= 0 || D < 2) return;
    size_t pairs = (size_t)N * NH * (D / 2);
    rope_kernel<<<grid_for(pairs, EW_THREADS), EW_THREADS, 0, s>>>(x, cos_tab, sin_tab, pairs, T, NH, D,
                                                                   style == SBK_ROPE_INTERLEAVED, dir);
}

extern "C" void sbt_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                                 int style, cudaStream_t s) {
    rope_launch(x, cos_tab, sin_tab, N, T, NH, D, style, +1, s);
}

extern "C" void sbt_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                                  int style, cudaStream_t s) {
    rope_launch(dx, cos_tab, sin_tab, N, T, NH, D, style, -1, s);
}
