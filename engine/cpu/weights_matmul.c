/* Matmuls with stored weights: bf16/fp16 kept compact (ops.h matmul_weight_forward). */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/half.h"
#include "engine/cpu/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* Outputs below this many weights stay on one thread: waking the team costs more. */
#define PAR_MIN_WEIGHTS ((size_t)1 << 16)
/* fp32 floats per conversion tile (1 MiB): a tile stays in L2 while sgemm streams it. */
#define TILE_FLOATS ((size_t)1 << 18)

static inline uint16_t load_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static float dot_half_scalar(const float *x, const unsigned char *w, int C, sb_dtype dt) {
    float acc[8] = {0};
    int c = 0;
    /* eight lanes, as the vector kernel sums, so both give the same order of additions */
    for (; c + 8 <= C; c += 8)
        for (int k = 0; k < 8; k++) {
            uint16_t h = load_u16(w + 2 * (size_t)(c + k));
            acc[k] += x[c + k] * (dt == SB_DTYPE_BF16 ? sb_bf16_to_f32(h) : sb_f16_to_f32(h));
        }
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < C; c++) {
        uint16_t h = load_u16(w + 2 * (size_t)c);
        s += x[c] * (dt == SB_DTYPE_BF16 ? sb_bf16_to_f32(h) : sb_f16_to_f32(h));
    }
    return s;
}

static void convert_scalar(float *out, const unsigned char *w, size_t n, sb_dtype dt) {
    if (dt == SB_DTYPE_BF16) sb_bf16_to_f32_array(out, w, n);
    else sb_f16_to_f32_array(out, w, n);
}

#ifdef HAVE_X86
__attribute__((target("avx2,fma,f16c"))) static inline __m256 load8(const unsigned char *w, sb_dtype dt) {
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)w);
    if (dt == SB_DTYPE_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* One accumulator of 8 lanes per 8 columns, lanes reduced as the scalar kernel does. FMA
 * rounds once where the scalar code rounds twice: the two agree to float precision, and
 * each build always uses the same one. */
__attribute__((target("avx2,fma,f16c"))) static float dot_half_avx2(const float *x, const unsigned char *w, int C,
                                                                    sb_dtype dt) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), load8(w + 2 * (size_t)c, dt), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 8), load8(w + 2 * (size_t)c + 16, dt), a1);
    }
    for (; c + 8 <= C; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), load8(w + 2 * (size_t)c, dt), a0);
    __m256 a = _mm256_add_ps(a0, a1);
    float l[8];
    _mm256_storeu_ps(l, a);
    float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    for (; c < C; c++) {
        uint16_t h = load_u16(w + 2 * (size_t)c);
        s += x[c] * (dt == SB_DTYPE_BF16 ? sb_bf16_to_f32(h) : sb_f16_to_f32(h));
    }
    return s;
}

__attribute__((target("avx2,fma,f16c"))) static void convert_avx2(float *out, const unsigned char *w, size_t n,
                                                                  sb_dtype dt) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(w + 2 * i, dt));
    convert_scalar(out + i, w + 2 * i, n - i, dt);
}

/* fp32 rows: the same two 8-lane accumulators and lane reduction as dot_half_avx2. */
__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *x, const float *w, int C) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(w + c), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c + 8), _mm256_loadu_ps(w + c + 8), a1);
    }
    for (; c + 8 <= C; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(w + c), a0);
    __m256 a = _mm256_add_ps(a0, a1);
    float l[8];
    _mm256_storeu_ps(l, a);
    float s = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    for (; c < C; c++) s += x[c] * w[c];
    return s;
}

static bool cpu_has_avx2(void) {
    static int have = -1;
    if (have < 0) {
        /* F16C is CPUID.1:ECX bit 29 (not every compiler's __builtin_cpu_supports knows it) */
        unsigned a, b, c = 0, d;
        bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    }
    return have;
}
#endif

static float dot_half(const float *x, const unsigned char *w, int C, sb_dtype dt) {
#ifdef HAVE_X86
    if (cpu_has_avx2()) return dot_half_avx2(x, w, C, dt);
#endif
    return dot_half_scalar(x, w, C, dt);
}

static float dot_f32_scalar(const float *x, const float *w, int C) {
    float acc[8] = {0};
    int c = 0;
    for (; c + 8 <= C; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[c + k] * w[c + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; c < C; c++) s += x[c] * w[c];
    return s;
}

static float dot_f32_rows(const float *x, const float *w, int C) {
#ifdef HAVE_X86
    if (cpu_has_avx2()) return dot_f32_avx2(x, w, C);
#endif
    return dot_f32_scalar(x, w, C);
}

static void convert_half(float *out, const unsigned char *w, size_t n, sb_dtype dt) {
#ifdef HAVE_X86
    if (cpu_has_avx2()) {
        convert_avx2(out, w, n, dt);
        return;
    }
#endif
    convert_scalar(out, w, n, dt);
}

void weight_row_f32(float *out, const sb_weight *w, size_t row, int C) {
    if (w->dtype == SB_DTYPE_F32) {
        memcpy(out, (const float *)w->data + row * (size_t)C, (size_t)C * sizeof(float));
        return;
    }
    convert_half(out, (const unsigned char *)w->data + 2 * row * (size_t)C, (size_t)C, w->dtype);
}

/* Few rows: out[t, o] from one pass over weight row o per output, converting as it goes. */
static void matmul_half_rows(float *out, const float *in, const sb_weight *w, const float *b, int T, int C, int OC,
                             bool acc) {
    const unsigned char *base = w->data;
    const bool par = (size_t)OC * (size_t)C * (size_t)T >= PAR_MIN_WEIGHTS && !omp_in_parallel();
/* dynamic: on a busy machine a descheduled thread does not hold the other at the barrier */
#pragma omp parallel for schedule(dynamic, 32) if (par)
    for (int o = 0; o < OC; o++) {
        const unsigned char *row = base + 2 * (size_t)o * (size_t)C;
        for (int t = 0; t < T; t++) {
            float y = dot_half(in + (size_t)t * C, row, C, w->dtype) + (b ? b[o] : 0.0f);
            float *dst = out + (size_t)t * OC + o;
            *dst = acc ? *dst + y : y;
        }
    }
}

/* Few rows of fp32 weights (decode): one pass over each weight row per output on OpenMP
 * threads. OpenBLAS's sgemv is as fast per byte, but hands every call to its own thread pool;
 * at a few dozen matrix-vector products per token that hand-over costs more than the
 * products themselves on a small model. */
static void matmul_f32_rows(float *out, const float *in, const float *w, const float *b, int T, int C, int OC,
                            bool acc) {
    const bool par = (size_t)OC * (size_t)C * (size_t)T >= PAR_MIN_WEIGHTS && !omp_in_parallel();
#pragma omp parallel for schedule(dynamic, 64) if (par)
    for (int o = 0; o < OC; o++) {
        const float *row = w + (size_t)o * (size_t)C;
        for (int t = 0; t < T; t++) {
            float y = dot_f32_rows(in + (size_t)t * C, row, C) + (b ? b[o] : 0.0f);
            float *dst = out + (size_t)t * OC + o;
            *dst = acc ? *dst + y : y;
        }
    }
}

/* Many rows: convert row tiles of w to fp32 and sgemm each (single-threaded BLAS per tile). */
static void matmul_half_tiled(float *out, const float *in, const sb_weight *w, const float *b, int T, int C, int OC,
                              bool acc) {
    int rows = (int)(TILE_FLOATS / (size_t)C);
    if (rows < 16) rows = 16;
    rows = (rows + 15) / 16 * 16;
    if (rows > OC) rows = OC;
    const int n_tiles = (OC + rows - 1) / rows;
    const bool par = n_tiles > 1 && !omp_in_parallel() && omp_get_max_threads() > 1;
    int blas_threads = 1;
    if (par) {
        blas_threads = openblas_get_num_threads();
        if (blas_threads != 1) openblas_set_num_threads(1);
    }
    /* one scratch tile per thread and call: a malloc per call is noise next to the sgemm, and
     * nothing outlives the call (thread-local buffers in OpenMP's pool are never freed) */
#pragma omp parallel if (par)
    {
        float *tile = malloc_check((size_t)rows * (size_t)C * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int k = 0; k < n_tiles; k++) {
            const int o0 = k * rows, n = o0 + rows <= OC ? rows : OC - o0;
            convert_half(tile, (const unsigned char *)w->data + 2 * (size_t)o0 * (size_t)C, (size_t)n * (size_t)C,
                         w->dtype);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n, C, 1.0f, in, C, tile, C, acc ? 1.0f : 0.0f,
                        out + o0, OC);
            if (b)
                for (int t = 0; t < T; t++) {
                    float *row = out + (size_t)t * OC + o0;
                    for (int o = 0; o < n; o++) row[o] += b[o0 + o];
                }
        }
        free(tile);
    }
    if (par && blas_threads != 1) openblas_set_num_threads(blas_threads);
}

static void matmul_weight(float *out, const float *in, const sb_weight *w, const float *b, int T, int C, int OC,
                          bool acc) {
    if (w->dtype == SB_DTYPE_F32 && T < MATMUL_GEMV_MAX_T && T > 0 && OC > 0 && C > 0) {
        matmul_f32_rows(out, in, (const float *)w->data, b, T, C, OC, acc);
        return;
    }
    if (w->dtype == SB_DTYPE_F32) {
        if (acc) matmul_forward_acc(out, in, (const float *)w->data, b, T, C, OC);
        else matmul_forward(out, in, (const float *)w->data, b, T, C, OC);
        return;
    }
    if (T <= 0 || OC <= 0) return;
    if (C <= 0) {
        for (int t = 0; t < T; t++)
            for (int o = 0; o < OC; o++) {
                float y = b ? b[o] : 0.0f;
                out[(size_t)t * OC + o] = acc ? out[(size_t)t * OC + o] + y : y;
            }
        return;
    }
    if (T < MATMUL_GEMV_MAX_T) matmul_half_rows(out, in, w, b, T, C, OC, acc);
    else matmul_half_tiled(out, in, w, b, T, C, OC, acc);
}

void matmul_weight_forward(float *out, const float *in, const sb_weight *w, const float *b, int T, int C, int OC) {
    matmul_weight(out, in, w, b, T, C, OC, false);
}

void matmul_weight_forward_acc(float *out, const float *in, const sb_weight *w, const float *b, int T, int C,
                               int OC) {
    matmul_weight(out, in, w, b, T, C, OC, true);
}
