#include "engine/cpu/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "engine/common.h"

/* ---------------------------------------------------------------- matmul */

static void matmul_impl(float *out, const float *in, const float *w, const float *b, int T, int C, int OC,
                        float beta) {
    if (T <= 0 || OC <= 0) return;
    if (C <= 0) {
        for (size_t i = 0; i < (size_t)T * OC; i++) out[i] = beta * out[i];
    } else if (T == 1) {
        /* one token (decode): sgemm would pack the whole weight matrix for a single row */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, in, 1, beta, out, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f, in, C, w, C, beta, out, OC);
    }
    if (b) {
#pragma omp parallel for if ((size_t)T * OC > 65536)
        for (int t = 0; t < T; t++) {
            float *row = out + (size_t)t * OC;
            for (int o = 0; o < OC; o++) row[o] += b[o];
        }
    }
}

void matmul_forward(float *out, const float *in, const float *w, const float *b, int T, int C, int OC) {
    matmul_impl(out, in, w, b, T, C, OC, 0.0f);
}

void matmul_forward_acc(float *out, const float *in, const float *w, const float *b, int T, int C, int OC) {
    matmul_impl(out, in, w, b, T, C, OC, 1.0f);
}

/* ---------------------------------------------------------------- norms */

void rmsnorm_forward(float *out, const float *in, const float *w, float eps, int T, int C) {
#pragma omp parallel for if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * C;
        float *y = out + (size_t)t * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) y[c] = x[c] * r * w[c];
    }
}

void layernorm_forward(float *out, const float *in, const float *w, const float *b, float eps, int T, int C) {
#pragma omp parallel for if (T > 16)
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * C;
        float *y = out + (size_t)t * C;
        double mean = 0.0;
        for (int c = 0; c < C; c++) mean += x[c];
        mean /= C;
        double var = 0.0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - mean;
            var += d * d;
        }
        var /= C;
        float r = (float)(1.0 / sqrt(var + eps));
        float m = (float)mean;
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + (b ? b[c] : 0.0f);
    }
}

void norm_forward(float *out, const float *in, const float *w, const float *b, sb_norm_kind kind, float eps,
                  int T, int C) {
    if (kind == SB_NORM_LAYER)
        layernorm_forward(out, in, w, b, eps, T, C);
    else
        rmsnorm_forward(out, in, w, eps, T, C);
}

/* ---------------------------------------------------------------- RoPE */

static inline double rope_inv_freq(int j, int rotary_dim, float theta) {
    return pow((double)theta, -2.0 * j / rotary_dim);
}

/* The pair layout is the only difference between the styles. */
static inline void rope_rotate_head(float *h, const float *cs, const float *sn, int rotary_dim,
                                    sb_rope_style style) {
    int half = rotary_dim / 2;
    if (style == SB_ROPE_INTERLEAVED) {
        for (int j = 0; j < half; j++) {
            float a = h[2 * j], b = h[2 * j + 1];
            h[2 * j] = a * cs[j] - b * sn[j];
            h[2 * j + 1] = a * sn[j] + b * cs[j];
        }
    } else {
        for (int j = 0; j < half; j++) {
            float a = h[j], b = h[j + half];
            h[j] = a * cs[j] - b * sn[j];
            h[j + half] = a * sn[j] + b * cs[j];
        }
    }
}

void rope_apply_table(float *x, const float *cos_row, const float *sin_row, int n_heads, int head_dim,
                      int rotary_dim, sb_rope_style style) {
    for (int h = 0; h < n_heads; h++) rope_rotate_head(x + (size_t)h * head_dim, cos_row, sin_row, rotary_dim, style);
}

void rope_table_fill(float *cos_tab, float *sin_tab, int64_t pos0, int n_pos, int rotary_dim, float theta) {
    int half = rotary_dim / 2;
#pragma omp parallel for if (n_pos > 64)
    for (int p = 0; p < n_pos; p++) {
        double pos = (double)(pos0 + p);
        for (int j = 0; j < half; j++) {
            double ang = pos * rope_inv_freq(j, rotary_dim, theta);
            cos_tab[(size_t)p * half + j] = (float)cos(ang);
            sin_tab[(size_t)p * half + j] = (float)sin(ang);
        }
    }
}

/* Up to this many pairs live on the stack; larger rotary dims are not used by real models. */
#define ROPE_MAX_HALF 1024

static void rope_one(float *x, int n_heads, int head_dim, int rotary_dim, int64_t pos, float theta,
                     sb_rope_style style) {
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    int half = rotary_dim / 2;
    if (half <= 0) return;
    if (half > ROPE_MAX_HALF) half = ROPE_MAX_HALF, rotary_dim = 2 * ROPE_MAX_HALF;
    for (int j = 0; j < half; j++) {
        double ang = (double)pos * rope_inv_freq(j, rotary_dim, theta);
        cs[j] = (float)cos(ang);
        sn[j] = (float)sin(ang);
    }
    rope_apply_table(x, cs, sn, n_heads, head_dim, rotary_dim, style);
}

void rope_apply(float *x, int n_heads, int head_dim, int rotary_dim, int64_t pos, float theta,
                sb_rope_style style) {
    rope_one(x, n_heads, head_dim, rotary_dim, pos, theta, style);
}

void rope_forward(float *x, const int64_t *pos, int T, size_t row_stride, int n_heads, int head_dim,
                  int rotary_dim, float theta, sb_rope_style style) {
#pragma omp parallel for if (T > 8)
    for (int t = 0; t < T; t++) rope_one(x + (size_t)t * row_stride, n_heads, head_dim, rotary_dim, pos[t], theta, style);
}

void rope_rotate_delta(float *x, int T, size_t row_stride, int n_heads, int head_dim, int rotary_dim,
                       int64_t delta, float theta, sb_rope_style style) {
    int half = rotary_dim / 2;
    if (half <= 0 || T <= 0) return;
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    if (half > ROPE_MAX_HALF) half = ROPE_MAX_HALF, rotary_dim = 2 * ROPE_MAX_HALF;
    rope_table_fill(cs, sn, delta, 1, rotary_dim, theta);
#pragma omp parallel for if (T > 8)
    for (int t = 0; t < T; t++)
        rope_apply_table(x + (size_t)t * row_stride, cs, sn, n_heads, head_dim, rotary_dim, style);
}

/* ---------------------------------------------------------------- ALiBi */

void alibi_slopes(float *out, int n_heads, float alibi_bias_max) {
    if (n_heads <= 0) return;
    int np2 = 1;
    while (np2 < n_heads) np2 *= 2;
    /* slope of head k (1-based) in the power-of-two set */
#define SLOPE(k) ((float)(1.0 / pow(2.0, (double)(k) * alibi_bias_max / np2)))
    if (np2 == n_heads) {
        for (int h = 0; h < n_heads; h++) out[h] = SLOPE(h + 1);
        return;
    }
    /* MPT: concat(slopes[1::2], slopes[::2])[:n_heads] over 0-based indices of the np2 set */
    int h = 0;
    for (int i = 1; i < np2 && h < n_heads; i += 2) out[h++] = SLOPE(i + 1);
    for (int i = 0; i < np2 && h < n_heads; i += 2) out[h++] = SLOPE(i + 1);
#undef SLOPE
}

/* ---------------------------------------------------------------- activations */

float sb_silu(float x) { return x / (1.0f + expf(-x)); }
float sb_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
float sb_gelu_tanh(float x) {
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

float sb_act(float x, sb_act_kind act) {
    switch (act) {
    case SB_ACT_GELU_ERF: return sb_gelu_erf(x);
    case SB_ACT_GELU_TANH: return sb_gelu_tanh(x);
    case SB_ACT_SILU:
    default: return sb_silu(x);
    }
}

#define PAR_N 16384

void act_forward(float *out, const float *in, size_t n, sb_act_kind act) {
    switch (act) {
    case SB_ACT_GELU_ERF:
#pragma omp parallel for if (n > PAR_N)
        for (size_t i = 0; i < n; i++) out[i] = sb_gelu_erf(in[i]);
        break;
    case SB_ACT_GELU_TANH:
#pragma omp parallel for if (n > PAR_N)
        for (size_t i = 0; i < n; i++) out[i] = sb_gelu_tanh(in[i]);
        break;
    case SB_ACT_SILU:
    default:
#pragma omp parallel for if (n > PAR_N)
        for (size_t i = 0; i < n; i++) out[i] = sb_silu(in[i]);
        break;
    }
}

void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
#pragma omp parallel for if (n > PAR_N)
    for (size_t i = 0; i < n; i++) out[i] = sb_silu(gate[i]) * up[i];
}

void glu_forward(float *out, const float *gate, const float *up, size_t n, sb_act_kind act) {
    if (act == SB_ACT_SILU) {
        swiglu_forward(out, gate, up, n);
        return;
    }
#pragma omp parallel for if (n > PAR_N)
    for (size_t i = 0; i < n; i++) out[i] = sb_act(gate[i], act) * up[i];
}

/* ---------------------------------------------------------------- softmax */

void softmax_forward(float *p, const float *x, int n) {
    (void)softmax_extra_forward(p, x, n, SB_SOFTMAX_STANDARD, 0.0f);
}

float softmax_extra_forward(float *p, const float *scores, int n, sb_softmax_kind extra_kind, float extra_logit) {
    bool has_extra = extra_kind != SB_SOFTMAX_STANDARD;
    float e = extra_kind == SB_SOFTMAX_OFF_BY_ONE ? 0.0f : extra_logit;
    float m = has_extra ? e : -INFINITY;
    for (int i = 0; i < n; i++)
        if (scores[i] > m) m = scores[i];
    if (m == -INFINITY) {
        /* everything masked and no extra slot: no mass anywhere; keep it finite */
        for (int i = 0; i < n; i++) p[i] = 0.0f;
        return has_extra ? 1.0f : 0.0f;
    }
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        float v = expf(scores[i] - m);
        p[i] = v;
        sum += v;
    }
    float ex = has_extra ? expf(e - m) : 0.0f;
    float inv = 1.0f / (sum + ex);
    for (int i = 0; i < n; i++) p[i] *= inv;
    return ex * inv;
}

/* ---------------------------------------------------------------- embedding, loss, misc */

int embedding_forward(float *out, const int32_t *ids, const float *table, int T, int C, int V) {
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= V)
            return sb_error("token id %ld at position %d is outside the vocabulary [0, %d)", (long)ids[t], t, V);
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * C, table + (size_t)ids[t] * C, (size_t)C * sizeof(float));
    return SB_OK;
}

double nll_from_logits(const float *logits, int V, int target) {
    if (target < 0 || target >= V || V <= 0) return NAN;
    float m = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > m) m = logits[i];
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - m);
    return log(s) + m - (double)logits[target];
}

int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void residual_forward(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for if (n > PAR_N)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void clamp_forward(float *x, size_t n, float clip) {
    if (!(clip > 0.0f)) return;
    for (size_t i = 0; i < n; i++) {
        if (x[i] > clip) x[i] = clip;
        else if (x[i] < -clip) x[i] = -clip;
    }
}

float dot_f32(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
