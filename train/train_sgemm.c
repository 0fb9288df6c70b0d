/* Matrix products of the trainer: one OpenMP team splits the rows of C and each thread runs a
 * single-threaded OpenBLAS sgemm on its block.
 *
 * Why not OpenBLAS's own threads: the trainer alternates matmuls with OpenMP loops (norms,
 * softmax, SwiGLU); two thread pools that each spin while the other works fight over the
 * cores. With one pool there is no such contention, and since OpenBLAS computes every element
 * of C with the same K order whatever rows surround it, the result does not depend on the
 * thread count either (checked by test_train_overfit). */
#include "train/train_sgemm.h"

#include <cblas.h>
#include <omp.h>

/* rows per block are rounded to this, the height of OpenBLAS's sgemm micro-kernel family */
#define ROW_ALIGN 16

void train_blas_begin(train_blas_state *s) {
    s->prev = openblas_get_num_threads();
    if (s->prev != 1) openblas_set_num_threads(1);
}

void train_blas_end(const train_blas_state *s) {
    if (s->prev != 1) openblas_set_num_threads(s->prev);
}

void train_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    train_blas_state bs;
    train_blas_begin(&bs);
    /* small products are not worth waking the team */
    int nt = (double)M * N * K < 2e6 ? 1 : omp_get_max_threads();
    int blocks = (M + ROW_ALIGN - 1) / ROW_ALIGN;
    if (nt > blocks) nt = blocks;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int b0 = (int)((long)blocks * t / n), b1 = (int)((long)blocks * (t + 1) / n);
        int m0 = b0 * ROW_ALIGN, m1 = b1 * ROW_ALIGN < M ? b1 * ROW_ALIGN : M;
        if (m1 > m0) {
            /* op(A) row m is A row m (no transpose) or A column m (transpose) */
            const float *a = trans_a ? A + m0 : A + (size_t)m0 * lda;
            cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                        m1 - m0, N, K, alpha, a, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
        }
    }
    train_blas_end(&bs);
}

void train_matmul_forward(float *out, const float *in, const float *w, int N, int C, int OC, bool accumulate) {
    train_sgemm(false, true, N, OC, C, 1.0f, in, C, w, C, accumulate ? 1.0f : 0.0f, out, OC);
}
