/* Causal attention for training: forward keeping the probabilities, and its backward.
 *
 * Work is split over (batch, head) in the forward and over (batch, kv head) in the backward,
 * so every dk/dv row is written by one thread in a fixed head order (no atomics, results
 * independent of the thread count). Queries go in blocks of ATT_BQ rows: a block only needs
 * the keys up to its last row, which skips most of the masked upper triangle in the sgemms. */
#include "train/train_layers.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cpu/ops.h"
#include "train/train_sgemm.h"

#define ATT_BQ 64


void train_attention_forward(float *out, float *probs, float *extra_p, const float *q, const float *k,
                             const float *v, const float *sink_logit, sb_softmax_kind kind, int B, int T,
                             int H, int KVH, int D) {
    const int group = H / KVH;
    const size_t ldq = (size_t)H * D, ldk = (size_t)KVH * D;
    const float scale = 1.0f / sqrtf((float)D);
    /* the sgemms below already run one per OpenMP thread: OpenBLAS must not fan out */
    train_blas_state bs;
    train_blas_begin(&bs);
#pragma omp parallel for schedule(dynamic, 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, g = h / group;
        const float *qh = q + (size_t)b * T * ldq + (size_t)h * D;
        const float *kg = k + (size_t)b * T * ldk + (size_t)g * D;
        const float *vg = v + (size_t)b * T * ldk + (size_t)g * D;
        float *oh = out + (size_t)b * T * ldq + (size_t)h * D;
        float *P = probs + (size_t)bh * T * T;
        float e = kind == SB_SOFTMAX_SINK_LOGIT ? sink_logit[h] : 0.0f;
        for (int r0 = 0; r0 < T; r0 += ATT_BQ) {
            int r1 = r0 + ATT_BQ < T ? r0 + ATT_BQ : T, m = r1 - r0;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, D, scale, qh + r0 * ldq, (int)ldq, kg,
                        (int)ldk, 0.0f, P + (size_t)r0 * T, T);
            for (int i = r0; i < r1; i++) {
                float *row = P + (size_t)i * T;
                float ex = softmax_extra_forward(row, row, i + 1, kind, e);
                memset(row + i + 1, 0, (size_t)(T - i - 1) * sizeof(float));
                if (extra_p) extra_p[(size_t)bh * T + i] = ex;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, r1, 1.0f, P + (size_t)r0 * T, T, vg,
                        (int)ldk, 0.0f, oh + r0 * ldq, (int)ldq);
        }
    }
    train_blas_end(&bs);
}

void attention_backward(float *dq, float *dk, float *dv, float *dsink_logit, const float *dout,
                        const float *probs, const float *extra_p, const float *q, const float *k,
                        const float *v, sb_softmax_kind kind, int B, int T, int H, int KVH, int D) {
    const int group = H / KVH;
    const size_t ldq = (size_t)H * D, ldk = (size_t)KVH * D;
    const float scale = 1.0f / sqrtf((float)D);
    const int want_sink = kind == SB_SOFTMAX_SINK_LOGIT && dsink_logit && extra_p;
    /* per (b, h) partial sums of the sink-logit gradient, reduced in b order afterwards */
    double *dsink_part = want_sink ? calloc_check((size_t)B * H, sizeof(double)) : NULL;
    /* the sgemms below already run one per OpenMP thread: OpenBLAS must not fan out */
    train_blas_state bs;
    train_blas_begin(&bs);
#pragma omp parallel
    {
        float *dS = malloc_check((size_t)ATT_BQ * T * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int bg = 0; bg < B * KVH; bg++) {
            int b = bg / KVH, g = bg % KVH;
            const float *kg = k + (size_t)b * T * ldk + (size_t)g * D;
            const float *vg = v + (size_t)b * T * ldk + (size_t)g * D;
            float *dkg = dk + (size_t)b * T * ldk + (size_t)g * D;
            float *dvg = dv + (size_t)b * T * ldk + (size_t)g * D;
            for (int h = g * group; h < (g + 1) * group; h++) {
                size_t bh = (size_t)b * H + h;
                const float *qh = q + (size_t)b * T * ldq + (size_t)h * D;
                const float *doh = dout + (size_t)b * T * ldq + (size_t)h * D;
                float *dqh = dq + (size_t)b * T * ldq + (size_t)h * D;
                const float *P = probs + bh * T * T;
                double dsink = 0.0;
                for (int r0 = 0; r0 < T; r0 += ATT_BQ) {
                    int r1 = r0 + ATT_BQ < T ? r0 + ATT_BQ : T, m = r1 - r0;
                    const float *Pb = P + (size_t)r0 * T;
                    /* dP = dO V^T, then dS = P * (dP - rowdot(P, dP)); the extra logit has no
                     * value, so its dp is 0 and its own gradient is -p_extra * rowdot. */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, r1, D, 1.0f, doh + r0 * ldq,
                                (int)ldq, vg, (int)ldk, 0.0f, dS, T);
                    for (int i = r0; i < r1; i++) {
                        const float *p = P + (size_t)i * T;
                        float *ds = dS + (size_t)(i - r0) * T;
                        double dot = 0.0;
                        for (int j = 0; j <= i; j++) dot += (double)p[j] * ds[j];
                        float fdot = (float)dot;
                        for (int j = 0; j <= i; j++) ds[j] = p[j] * (ds[j] - fdot);
                        for (int j = i + 1; j < r1; j++) ds[j] = 0.0f;
                        if (want_sink) dsink -= extra_p[bh * T + i] * dot;
                    }
                    /* S = scale * Q K^T */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, r1, scale, dS, T, kg, (int)ldk,
                                1.0f, dqh + r0 * ldq, (int)ldq);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, m, scale, dS, T, qh + r0 * ldq,
                                (int)ldq, 1.0f, dkg, (int)ldk);
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, D, m, 1.0f, Pb, T, doh + r0 * ldq,
                                (int)ldq, 1.0f, dvg, (int)ldk);
                }
                if (want_sink) dsink_part[bh] = dsink;
            }
        }
        free(dS);
    }
    train_blas_end(&bs);
    if (want_sink) {
        for (int h = 0; h < H; h++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) s += dsink_part[(size_t)b * H + h];
            dsink_logit[h] += (float)s;
        }
        free(dsink_part);
    }
}
