#include "engine/cpu/attention.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "engine/cpu/ops.h"

/* GCC at -O2 refuses the softmax loops below: its cheap cost model rejects the lane-private
 * reductions, and trapping math keeps the clamp in exp_nonpos a branch. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")
#endif

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
    p->max_dist = c->sliding_window > 0 ? (int64_t)c->sliding_window - 1 : INT64_MAX;
}

static inline float extra_logit(const sb_attn_params *p, int h) { return p->sink_logit ? p->sink_logit[h] : 0.0f; }

/* e^x for x <= 0 (scores minus their max), about 1 ulp: Cody-Waite reduction by ln 2 and a
 * degree-6 polynomial (Cephes expf). Plain arithmetic, so `omp simd` loops vectorise it;
 * libm's expf does not, and the softmax of the attention rows is hot. */
static inline float exp_nonpos(float x) {
    x = x < -87.0f ? -87.0f : x;
    /* round to nearest by the 1.5 * 2^23 trick: no floorf call, so SSE2 vectorises it too */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float r2 = r * r;
    float y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
               1.6666665459e-1f) * r + 5.0000001201e-1f;
    y = y * r2 + r + 1.0f;
    int32_t bits;
    memcpy(&bits, &y, sizeof bits);
    bits += (int32_t)n * (1 << 23); /* times 2^n (n >= -126: no overflow) */
    memcpy(&y, &bits, sizeof y);
    return y;
}

/* Softmax over the union of a[na] and b[nb] plus the extra logit of the variant (none,
 * off-by-one 0, or the learned sink logit), as softmax_extra_forward but over two segments
 * and vectorised. */
__attribute__((target_clones("avx2", "default"))) static void attn_softmax(float *a, int na, float *b, int nb,
                                                                           sb_softmax_kind kind, float extra) {
    float m = kind == SB_SOFTMAX_STANDARD ? -INFINITY : kind == SB_SOFTMAX_OFF_BY_ONE ? 0.0f : extra;
    const float e = m;
    for (int i = 0; i < na; i++) m = a[i] > m ? a[i] : m;
    /* eight running maxima: vectorises in both compilers (a max reduction under omp simd
     * does not in clang) */
    float mm[8] = {m, m, m, m, m, m, m, m};
    int i8 = 0;
    for (; i8 + 8 <= nb; i8 += 8)
        for (int j = 0; j < 8; j++) mm[j] = b[i8 + j] > mm[j] ? b[i8 + j] : mm[j];
    for (; i8 < nb; i8++) mm[0] = b[i8] > mm[0] ? b[i8] : mm[0];
    for (int j = 0; j < 8; j++) m = mm[j] > m ? mm[j] : m;
    float sum = kind == SB_SOFTMAX_STANDARD ? 0.0f : exp_nonpos(e - m);
    for (int i = 0; i < na; i++) {
        a[i] = exp_nonpos(a[i] - m);
        sum += a[i];
    }
    float sb = 0.0f;
#pragma omp simd reduction(+ : sb)
    for (int i = 0; i < nb; i++) {
        b[i] = exp_nonpos(b[i] - m);
        sb += b[i];
    }
    const float inv = 1.0f / (sum + sb);
    for (int i = 0; i < na; i++) a[i] *= inv;
#pragma omp simd
    for (int i = 0; i < nb; i++) b[i] *= inv;
}

void attention_token_forward(float *out, float *scratch, const float *q, const float *k, const float *v,
                             const int64_t *slots, const int64_t *slot_pos, int64_t query_pos, int n,
                             const sb_attn_params *p) {
    const int H = p->n_heads, KV = p->n_kv_heads, G = p->n_heads / p->n_kv_heads, hd = p->head_dim;
    const size_t kvd = (size_t)KV * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    if (n > 0 && slots[n - 1] == n - 1) {
        /* the filled slots are 0..n-1 (the usual case: caches fill from slot 0 and a freed
         * ring slot is refilled at once): the G heads of a group score the cache in one sgemm */
        for (int g = 0; g < KV; g++) {
            float *sc = scratch + (size_t)g * G * n;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, G, n, hd, scale, q + (size_t)g * G * hd, hd,
                        k + (size_t)g * hd, (int)kvd, 0.0f, sc, n);
            for (int i = 0; i < G; i++) {
                const int h = g * G + i;
                float *row = sc + (size_t)i * n;
                if (p->alibi)
                    for (int j = 0; j < n; j++) row[j] -= p->alibi[h] * (float)(query_pos - slot_pos[j]);
                attn_softmax(NULL, 0, row, n, p->softmax, extra_logit(p, h));
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, G, hd, n, 1.0f, sc, n, v + (size_t)g * hd,
                        (int)kvd, 0.0f, out + (size_t)g * G * hd, hd);
        }
        return;
    }
    for (int h = 0; h < H; h++) {
        const int g = h / G;
        const float *qh = q + (size_t)h * hd;
        float *sc = scratch + (size_t)h * n;
        for (int i = 0; i < n; i++) {
            float s = dot_f32(qh, k + (size_t)slots[i] * kvd + (size_t)g * hd, hd) * scale;
            if (p->alibi) s -= p->alibi[h] * (float)(query_pos - slot_pos[slots[i]]);
            sc[i] = s;
        }
        attn_softmax(NULL, 0, sc, n, p->softmax, extra_logit(p, h));
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

/* Band columns one query block can touch: W + BAND_BLOCK, at most the band. */
static int64_t band_block_cols(int L, int64_t W) {
    return min64(L, W > INT64_MAX - BAND_BLOCK ? INT64_MAX : W + BAND_BLOCK);
}

size_t attention_band_scratch_floats(const sb_attn_params *p, int T, int L, int64_t K, int64_t W) {
    int G = p->n_heads / p->n_kv_heads;
    int64_t rows = (int64_t)min64(T, BAND_BLOCK) * G;
    return (size_t)(rows * (K + band_block_cols(L, W))); /* all K sinks can be in one block */
}

/* Exact-mode attention for one (kv group, query block) task. */
void attention_band_task(float *out, float *scratch, int task, const sb_band_args *a, const sb_attn_params *p) {
    const int KV = p->n_kv_heads, G = p->n_heads / KV, hd = p->head_dim, T = a->T;
    const size_t kvd = (size_t)KV * hd, ldq = (size_t)G * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int n_blocks = (T + BAND_BLOCK - 1) / BAND_BLOCK;
    const int64_t K = a->K, W = a->W, pos0 = a->pos0, band_start = a->band_start;
    const int64_t sink_query = K + W; /* sinks see the query at min(t, K+W) */
    const int64_t Wb = min64(W, p->max_dist); /* band keys sit at their true distance */
    const int g = task / n_blocks, r0 = (task % n_blocks) * BAND_BLOCK;
    const int r1 = r0 + BAND_BLOCK < T ? r0 + BAND_BLOCK : T, nr = r1 - r0, rows = nr * G;
    float *S = scratch;
    const int64_t p_first = pos0 + r0, p_last = pos0 + r1 - 1;
    /* band columns used by this block: positions [max(K, p_first-W), p_last] */
    int64_t lo = max64(0, max64(K, p_first - Wb) - band_start);
    int64_t hi = min64((int64_t)a->L - 1, p_last - band_start);
    const int ncol = hi >= lo ? (int)(hi - lo + 1) : 0;
    const int ns = (int)min64(a->n_sink, p_last + 1);
    const int width = ns + ncol;
    const float *qbg = a->qb + (size_t)g * T * ldq + (size_t)r0 * ldq;
    const float *qsg = a->qs + (size_t)g * T * ldq + (size_t)r0 * ldq;
    float *og = out + (size_t)g * T * ldq + (size_t)r0 * ldq;

    if (ncol > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ncol, hd, scale, qbg, hd,
                    a->band_k + (size_t)lo * kvd + (size_t)g * hd, (int)kvd, 0.0f, S + ns, width);
    if (ns > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ns, hd, scale, qsg, hd,
                    a->sink_k + (size_t)g * hd, (int)kvd, 0.0f, S, width);

    for (int R = 0; R < rows; R++) {
        const int h = g * G + R % G;
        const int64_t t = pos0 + r0 + R / G;
        float *row = S + (size_t)R * width;
        const float slope = p->alibi ? p->alibi[h] : 0.0f;
        /* sinks j <= t at distance min(t, K+W) - j (within max_dist) */
        const int nsv = (int)min64(ns, t + 1);
        const int64_t sq = min64(t, sink_query);
        const int j0 = (int)min64(nsv, max64(0, sq - p->max_dist));
        if (p->alibi)
            for (int j = j0; j < nsv; j++) row[j] -= slope * (float)(sq - j);
        /* band positions [max(K, t-W), t]: columns [c0, c1] of this block */
        const int64_t col0_pos = band_start + lo;
        const int c0 = (int)min64(ncol, max64(0, max64(K, t - Wb) - col0_pos));
        const int c1 = (int)max64(c0 - 1, min64(ncol - 1, t - col0_pos)); /* c1 < c0: none */
        float *brow = row + ns;
        if (p->alibi)
            for (int c = c0; c <= c1; c++) brow[c] -= slope * (float)(t - col0_pos - c);
        attn_softmax(row + j0, nsv - j0, brow + c0, c1 - c0 + 1, p->softmax, extra_logit(p, h));
        /* masked entries get probability 0 so P.V can run over the whole block */
        for (int j = 0; j < j0; j++) row[j] = 0.0f;
        for (int j = nsv; j < ns; j++) row[j] = 0.0f;
        for (int c = 0; c < c0; c++) brow[c] = 0.0f;
        for (int c = c1 + 1; c < ncol; c++) brow[c] = 0.0f;
    }

    if (ncol > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, ncol, 1.0f, S + ns, width,
                    a->band_v + (size_t)lo * kvd + (size_t)g * hd, (int)kvd, 0.0f, og, hd);
    else
        memset(og, 0, (size_t)rows * hd * sizeof *og);
    if (ns > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, ns, 1.0f, S, width,
                    a->sink_v + (size_t)g * hd, (int)kvd, 1.0f, og, hd);
}

int attention_band_tasks(const sb_attn_params *p, int T) { return p->n_kv_heads * ((T + BAND_BLOCK - 1) / BAND_BLOCK); }

void attention_band_forward(float *out, float *scratch, const sb_band_args *a, const sb_attn_params *p) {
    const size_t per_thread = attention_band_scratch_floats(p, a->T, a->L, a->K, a->W);
    const int n_tasks = attention_band_tasks(p, a->T);
    /* Tasks run single-threaded sgemms so the tasks, not OpenBLAS, share the cores. Small
     * problems stay on one thread: waking a team costs more than they do. */
    const double work = (double)p->n_heads * a->T * (double)band_block_cols(a->L, a->W) * p->head_dim;
    const bool par = p->n_threads > 1 && work > 4e6;
    int blas_threads = openblas_get_num_threads();
    if (par) openblas_set_num_threads(1);
#pragma omp parallel for schedule(dynamic, 1) num_threads(p->n_threads) if (par)
    for (int task = 0; task < n_tasks; task++)
        attention_band_task(out, scratch + (size_t)omp_get_thread_num() * per_thread, task, a, p);
    if (par) openblas_set_num_threads(blas_threads);
}
