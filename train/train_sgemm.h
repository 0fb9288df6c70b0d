/* Row-parallel sgemm for the trainer (see train_sgemm.c for why not OpenBLAS threads). */
#ifndef SB_TRAIN_SGEMM_H
#define SB_TRAIN_SGEMM_H

#include <stdbool.h>

/* OpenBLAS runs single-threaded between begin and end (restoring the previous count). */
typedef struct { int prev; } train_blas_state;
void train_blas_begin(train_blas_state *s);
void train_blas_end(const train_blas_state *s);

/* C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, row-major, rows of C split over OpenMP
 * threads. Call outside parallel regions. */
void train_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);

/* out[N,OC] (+)= in[N,C] . w[OC,C]^T, the training forward of a linear layer. */
void train_matmul_forward(float *out, const float *in, const float *w, int N, int C, int OC, bool accumulate);

#endif
