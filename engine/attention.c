#include "engine/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "engine/ops.h"

/* Query rows per block in exact mode: a block's band spans W + BR keys, of which each query
 * uses W + 1, so small blocks waste little; large blocks make bigger sgemms. */
#define BAND_BLOCK 64

void sb_attn_params_init(sb_attn_params *p, const sb_model *m, int layer, const float *alibi_buf) {
    const sb_model_config *c = &m->cfg;
    p->n_heads = c->n_heads;
    p->n_kv_heads = c->n_kv_heads;
    p->head_dim = c->head_dim;
    p->softmax = c->softmax;
    p->sink_logit = c->softmax == SB_SOFTMAX_SINK_LOGIT ? m->w.layers[layer].sink_logit : NULL;
    p->alibi = c->pos == SB_POS_ALIBI ? alibi_buf : NULL;
    p->n_threads = 1;
}

static inline float extra_logit(const sb_attn_params *p, int h) { return p->sink_logit ? p->sink_logit[h] : 0.0f; }

void attention_token_forward(float *out, float *scratch, const float *q, const float *k, const float *v,
                             const int64_t *slots, const int64_t *slot_pos, int64_t query_pos, int n,
                             const sb_attn_params *p) {
    const int H = p->n_heads, G = p->n_heads / p->n_kv_heads, hd = p->head_dim;
    const size_t kvd = (size_t)p->n_kv_heads * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for if ((size_t)n * H * hd > 65536)
    for (int h = 0; h < H; h++) {
        const int g = h / G;
        const float *qh = q + (size_t)h * hd;
        float *sc = scratch + (size_t)h * n;
        for (int i = 0; i < n; i++) {
            float s = dot_f32(qh, k + (size_t)slots[i] * kvd + (size_t)g * hd, hd) * scale;
            if (p->alibi) s -= p->alibi[h] * (float)(query_pos - slot_pos[slots[i]]);
            sc[i] = s;
        }
        softmax_extra_forward(sc, sc, n, p->softmax, extra_logit(p, h));
        float *oh = out + (size_t)h * hd;
        memset(oh, 0, (size_t)hd * sizeof *oh);
        for (int i = 0; i < n; i++) {
            const float *vr = v + (size_t)slots[i] * kvd + (size_t)g * hd;
            const float pi = sc[i];
            for (int d = 0; d < hd; d++) oh[d] += pi * vr[d];
        }
    }
}

int attention_max_threads(void) { return omp_get_max_threads(); }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t band_block_cols(int L, int64_t W) { return min64(L, W > INT64_MAX - BAND_BLOCK ? INT64_MAX : W + BAND_BLOCK); }

size_t attention_band_scratch_floats(const sb_attn_params *p, int T, int L, int64_t K, int64_t W) {
    int G = p->n_heads / p->n_kv_heads;
    int64_t rows = (int64_t)min64(T, BAND_BLOCK) * G;
    return (size_t)(rows * (min64(K, T + (int64_t)L) + band_block_cols(L, W)));
}

void attention_band_forward(float *out, float *scratch, const float *qb, const float *qs, const float *band_k,
                            const float *band_v, int64_t band_start, int L, const float *sink_k,
                            const float *sink_v, int n_sink, int64_t K, int64_t W, int64_t pos0, int T,
                            const sb_attn_params *p) {
    const int KV = p->n_kv_heads, G = p->n_heads / KV, hd = p->head_dim;
    const size_t kvd = (size_t)KV * hd, ldq = (size_t)G * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int n_blocks = (T + BAND_BLOCK - 1) / BAND_BLOCK;
    const size_t per_thread = attention_band_scratch_floats(p, T, L, K, W);
    const int64_t sink_query = K + W; /* sinks see the query at min(t, K+W) */

    /* One task per (kv group, query block); each runs single-threaded sgemms so the tasks,
     * not OpenBLAS, share the cores. Small problems stay on one thread: waking a team costs
     * more than they do, and much more when other processes load the machine. */
    const double work = (double)p->n_heads * T * (double)band_block_cols(L, W) * hd;
    const bool par = p->n_threads > 1 && work > 4e6;
    int blas_threads = openblas_get_num_threads();
    if (par) openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(p->n_threads) if (par)
    for (int task = 0; task < KV * n_blocks; task++) {
        const int g = task / n_blocks, r0 = (task % n_blocks) * BAND_BLOCK;
        const int r1 = r0 + BAND_BLOCK < T ? r0 + BAND_BLOCK : T, nr = r1 - r0, rows = nr * G;
        float *S = scratch + (size_t)omp_get_thread_num() * per_thread;
        const int64_t p_first = pos0 + r0, p_last = pos0 + r1 - 1;
        /* band columns used by this block: positions [max(K, p_first-W), p_last] */
        int64_t lo = max64(0, max64(K, p_first - W) - band_start);
        int64_t hi = min64((int64_t)L - 1, p_last - band_start);
        const int ncol = hi >= lo ? (int)(hi - lo + 1) : 0;
        const int ns = (int)min64(n_sink, p_last + 1);
        const int width = ns + ncol;
        const float *qbg = qb + (size_t)g * T * ldq + (size_t)r0 * ldq;
        const float *qsg = qs + (size_t)g * T * ldq + (size_t)r0 * ldq;
        float *og = out + (size_t)g * T * ldq + (size_t)r0 * ldq;

        if (ncol > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ncol, hd, scale, qbg, hd,
                        band_k + (size_t)lo * kvd + (size_t)g * hd, (int)kvd, 0.0f, S + ns, width);
        if (ns > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ns, hd, scale, qsg, hd,
                        sink_k + (size_t)g * hd, (int)kvd, 0.0f, S, width);

        for (int R = 0; R < rows; R++) {
            const int h = g * G + R % G;
            const int64_t t = pos0 + r0 + R / G;
            float *row = S + (size_t)R * width;
            const float slope = p->alibi ? p->alibi[h] : 0.0f;
            const int64_t sq = min64(t, sink_query);
            for (int j = 0; j < ns; j++) {
                if (j > t) row[j] = -INFINITY;
                else if (p->alibi) row[j] -= slope * (float)(sq - j);
            }
            const int64_t vlo = max64(K, t - W + 1);
            float *brow = row + ns;
            for (int c = 0; c < ncol; c++) {
                const int64_t pos = band_start + lo + c;
                if (pos < vlo || pos > t) brow[c] = -INFINITY;
                else if (p->alibi) brow[c] -= slope * (float)(t - pos);
            }
            softmax_extra_forward(row, row, width, p->softmax, extra_logit(p, h));
        }

        if (ncol > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, ncol, 1.0f, S + ns, width,
                        band_v + (size_t)lo * kvd + (size_t)g * hd, (int)kvd, 0.0f, og, hd);
        else
            memset(og, 0, (size_t)rows * hd * sizeof *og);
        if (ns > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, ns, 1.0f, S, width,
                        sink_v + (size_t)g * hd, (int)kvd, 1.0f, og, hd);
    }
    if (par) openblas_set_num_threads(blas_threads);
}
