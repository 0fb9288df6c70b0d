/* The two ceilings of a GPU, measured as the cuda backend uses it (bench/gpu/run_bench.sh):
 *   copy  device-to-device cudaMemcpy of 4 GiB, bytes read plus written over the time
 *   gemm  cublasGemmEx at a model's matmul shapes (bf16 inputs, fp32 accumulation and
 *         output, as backend_cuda.c calls it) for M rows: the fused q/k/v, o, fused gate/up,
 *         down and lm_head matrices of a Llama config
 * Usage: gemm_bw --dim D --kv-dim KD --ffn F --vocab V [--layers L] [--rows M] [--reps N]
 * gemm_tflop_s_all_shapes weights the shapes as one forward does (L of each layer matrix, one
 * head).
 * Prints one JSON object. Times are CUDA-event medians after warm-up, on random data. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(x)                                                                                                        \
    do {                                                                                                             \
        cudaError_t e_ = (x);                                                                                        \
        if (e_ != cudaSuccess) {                                                                                     \
            fprintf(stderr, "gemm_bw: %s: %s\n", #x, cudaGetErrorString(e_));                                      \
            exit(1);                                                                                                 \
        }                                                                                                            \
    } while (0)

static int cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median(float *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

/* random bits that are finite bf16 in [-1, 1) */
static void fill_bf16(uint16_t *h, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = (uint16_t)(0x3c00 | ((seed >> 16) & 0x3ff)) ^ ((seed & 1) << 15); /* |x| in [2^-7, 2^-6), sign random */
    }
}

int main(int argc, char **argv) {
    int dim = 4096, kvd = 4096, ffn = 11008, vocab = 32000, rows = 2048, reps = 20, layers = 32;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--dim")) dim = v;
        else if (!strcmp(argv[i], "--kv-dim")) kvd = v;
        else if (!strcmp(argv[i], "--ffn")) ffn = v;
        else if (!strcmp(argv[i], "--vocab")) vocab = v;
        else if (!strcmp(argv[i], "--rows")) rows = v;
        else if (!strcmp(argv[i], "--reps")) reps = v;
        else if (!strcmp(argv[i], "--layers")) layers = v;
        else {
            fprintf(stderr, "gemm_bw: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float *t = malloc(sizeof(float) * (size_t)reps);

    /* copy bandwidth */
    const size_t cb = (size_t)4 << 30;
    void *src, *dst;
    CK(cudaMalloc(&src, cb));
    CK(cudaMalloc(&dst, cb));
    CK(cudaMemset(src, 1, cb));
    for (int r = 0; r < 3; r++) CK(cudaMemcpy(dst, src, cb, cudaMemcpyDeviceToDevice));
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(e0, 0));
        CK(cudaMemcpy(dst, src, cb, cudaMemcpyDeviceToDevice));
        CK(cudaEventRecord(e1, 0));
        CK(cudaEventSynchronize(e1));
        CK(cudaEventElapsedTime(&t[r], e0, e1));
    }
    double copy_gbs = 2.0 * (double)cb / (median(t, reps) * 1e-3) / 1e9;
    CK(cudaFree(src));
    CK(cudaFree(dst));

    struct { const char *name; int out, in; } shapes[] = {
        {"qkv", dim + 2 * kvd, dim}, {"o", dim, dim}, {"gate_up", 2 * ffn, dim}, {"down", dim, ffn}, {"lm_head", vocab, dim},
    };
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return fprintf(stderr, "gemm_bw: no cublas\n"), 1;
    size_t maxw = 0, maxx = 0, maxy = 0;
    for (int i = 0; i < 5; i++) {
        size_t w = (size_t)shapes[i].out * shapes[i].in, x = (size_t)rows * shapes[i].in, y = (size_t)rows * shapes[i].out;
        maxw = w > maxw ? w : maxw, maxx = x > maxx ? x : maxx, maxy = y > maxy ? y : maxy;
    }
    uint16_t *hw = malloc(maxw * 2), *hx = malloc(maxx * 2);
    fill_bf16(hw, maxw, 1);
    fill_bf16(hx, maxx, 2);
    void *dw, *dx, *dy;
    CK(cudaMalloc(&dw, maxw * 2));
    CK(cudaMalloc(&dx, maxx * 2));
    CK(cudaMalloc(&dy, maxy * 4));
    CK(cudaMemcpy(dw, hw, maxw * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, hx, maxx * 2, cudaMemcpyHostToDevice));
    printf("{\"gpu\": \"%s\", \"sm_count\": %d, \"copy_gb_s\": %.1f, \"rows\": %d, \"gemm\": [", prop.name,
           prop.multiProcessorCount, copy_gbs, rows);
    double flops_all = 0, time_all = 0;
    for (int i = 0; i < 5; i++) {
        const float alpha = 1.0f, beta = 0.0f;
        const int OC = shapes[i].out, C = shapes[i].in;
        for (int r = -3; r < reps; r++) {
            CK(cudaEventRecord(e0, 0));
            if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, rows, C, &alpha, dw, CUDA_R_16BF, C, dx, CUDA_R_16BF, C,
                             &beta, dy, CUDA_R_32F, OC, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
                return fprintf(stderr, "gemm_bw: gemm failed\n"), 1;
            CK(cudaEventRecord(e1, 0));
            CK(cudaEventSynchronize(e1));
            if (r >= 0) CK(cudaEventElapsedTime(&t[r], e0, e1));
        }
        double ms = median(t, reps), fl = 2.0 * rows * (double)OC * C;
        const int count = i < 4 ? layers : 1; /* a forward's mix: every layer's four, one head */
        flops_all += fl * count, time_all += ms * count;
        printf("%s{\"name\": \"%s\", \"out\": %d, \"in\": %d, \"ms\": %.4f, \"tflop_s\": %.1f}", i ? ", " : "",
               shapes[i].name, OC, C, ms, fl / (ms * 1e-3) / 1e12);
    }
    printf("], \"gemm_tflop_s_all_shapes\": %.1f}\n", flops_all / (time_all * 1e-3) / 1e12);
    return 0;
}
