/* Backward passes of the Llama layers (see train_layers.h for the conventions). */
#include "train/train_layers.h"

#include <math.h>
#include <stdlib.h>

#include "engine/common.h"
#include "engine/cpu/ops.h"
#include "train/train_sgemm.h"

/* Parameter-gradient sums over rows run column-block-parallel: each column is summed by one
 * thread in row order, so the result is the same for any thread count. 32 floats = 2 lines. */
#define COL_BLOCK 32

void matmul_backward(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                     int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    if (din) train_sgemm(false, false, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, din, C);
    train_sgemm(true, false, OC, C, N, 1.0f, dout, OC, in, C, 1.0f, dw, C);
    if (db) {
        int nblk = (OC + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (N * OC > 65536)
        for (int blk = 0; blk < nblk; blk++) {
            int o0 = blk * COL_BLOCK, o1 = o0 + COL_BLOCK < OC ? o0 + COL_BLOCK : OC;
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OC;
                for (int o = o0; o < o1; o++) db[o] += row[o];
            }
        }
    }
}

void rmsnorm_backward(float *din, float *dw, const float *dout, const float *in, const float *w, float eps,
                      int N, int C) {
    if (N <= 0 || C <= 0) return;
    float *rstd = malloc_check((size_t)N * sizeof(float));
#pragma omp parallel for schedule(static) if (N > 16)
    for (int n = 0; n < N; n++) {
        const float *x = in + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float *dx = din + (size_t)n * C;
        double ss = 0.0; /* same accumulation as rmsnorm_forward, so r matches the forward */
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        rstd[n] = r;
        /* y = x r w  =>  dx = r (dy w) - x r^3 / C * sum(dy w x) */
        double dot = 0.0;
        for (int c = 0; c < C; c++) dot += (double)dy[c] * w[c] * x[c];
        float k = (float)(dot * r * r * r / C);
        for (int c = 0; c < C; c++) dx[c] += r * dy[c] * w[c] - k * x[c];
    }
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = in + (size_t)n * C;
            const float *dy = dout + (size_t)n * C;
            float r = rstd[n];
            for (int c = c0; c < c1; c++) dw[c] += dy[c] * x[c] * r;
        }
    }
    free(rstd);
}

void embedding_backward(float *dtable, const float *dout, const int32_t *ids, int N, int C) {
    /* a token may repeat, so rows are scattered in order and only columns are split */
    int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            float *dst = dtable + (size_t)ids[n] * C;
            const float *src = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

void rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                   sb_rope_style style) {
    int half = D / 2;
#pragma omp parallel for schedule(static) if (N > 8)
    for (int n = 0; n < N; n++) {
        int t = n % T;
        const float *cs = cos_tab + (size_t)t * half, *sn = sin_tab + (size_t)t * half;
        for (int h = 0; h < NH; h++) {
            float *g = dx + ((size_t)n * NH + h) * D;
            for (int j = 0; j < half; j++) {
                int ia = style == SB_ROPE_INTERLEAVED ? 2 * j : j;
                int ib = style == SB_ROPE_INTERLEAVED ? 2 * j + 1 : j + half;
                float a = g[ia], b = g[ib];
                g[ia] = a * cs[j] + b * sn[j];
                g[ib] = -a * sn[j] + b * cs[j];
            }
        }
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up,
                     size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        float sig = 1.0f / (1.0f + expf(-g));
        float silu = g * sig;
        dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] += dout[i] * silu;
    }
}

void crossentropy_softmax_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                                   float dloss, int N, int V) {
#pragma omp parallel for schedule(static) if (N > 4)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        int tgt = targets[n];
        if (tgt < 0) {
            for (int i = 0; i < V; i++) d[i] = 0.0f;
            continue;
        }
        float l = lse ? lse[n] : train_row_lse(x, V);
        for (int i = 0; i < V; i++) d[i] = expf(x[i] - l) * dloss;
        d[tgt] -= dloss;
    }
}
