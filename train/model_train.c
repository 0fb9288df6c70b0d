/* Forward and backward of the whole Llama model over a micro-batch, keeping activations. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cpu/ops.h"
#include "engine/rng.h"
#include "train/train_layers.h"
#include "train/train_sgemm.h"

int sb_train_model_check_config(const sb_model_config *c) {
    if (sb_model_config_validate(c)) return SB_ERR;
    if (c->norm != SB_NORM_RMS) return sb_error("trainer: norm must be rms");
    if (c->pos != SB_POS_ROPE) return sb_error("trainer: positions must be rope");
    if (c->rotary_dim != c->head_dim || c->head_dim % 2 != 0)
        return sb_error("trainer: rotary_dim %d must equal an even head_dim %d", c->rotary_dim, c->head_dim);
    if (c->mlp != SB_MLP_SWIGLU || c->act != SB_ACT_SILU) return sb_error("trainer: mlp must be swiglu (silu)");
    if (c->parallel_residual || c->shared_norm) return sb_error("trainer: parallel residual is not supported");
    if (c->norm_bias || c->mlp_bias || c->qkv_bias || c->out_bias) return sb_error("trainer: biases are not supported");
    if (c->clip_qkv > 0.0f) return sb_error("trainer: clip_qkv is not supported");
    return SB_OK;
}

/* Every activation buffer of a B x T micro-batch, as float counts n0 * n1 * n2. One table
 * serves both the allocation and the memory estimate, so the two cannot drift apart. */
typedef struct {
    float **dst;
    size_t n0, n1, n2;
} act_buf;

enum { ACT_BUFS = 28 };

static int act_table(const sb_model_config *c, int B, int T, sb_train_model *tm, act_buf out[ACT_BUFS]) {
    size_t N = (size_t)B * T, L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->ffn_dim;
    size_t HD = (size_t)c->n_heads * c->head_dim, KD = (size_t)c->n_kv_heads * c->head_dim;
    size_t BHT = (size_t)B * c->n_heads * T, V = (size_t)c->vocab_size, T2 = (size_t)T, D2 = (size_t)c->head_dim / 2;
    const act_buf t[ACT_BUFS] = {
        {&tm->x, L + 1, N, C},     {&tm->xmid, L, N, C},     {&tm->xn1, L, N, C},   {&tm->xn2, L, N, C},
        {&tm->q, L, N, HD},        {&tm->k, L, N, KD},       {&tm->v, L, N, KD},    {&tm->att, L, N, HD},
        {&tm->probs, L, BHT, T2},  {&tm->extra_p, L, BHT, 1}, {&tm->gate, L, N, F}, {&tm->up, L, N, F},
        {&tm->hmlp, L, N, F},      {&tm->xnf, 1, N, C},      {&tm->logits, 1, N, V}, {&tm->losses, 1, N, 1},
        {&tm->lse, 1, N, 1},       {&tm->rope_cos, 1, T2, D2}, {&tm->rope_sin, 1, T2, D2}, {&tm->dx, 1, N, C},
        {&tm->dxn, 1, N, C},       {&tm->dq, 1, N, HD},      {&tm->dk, 1, N, KD},   {&tm->dv, 1, N, KD},
        {&tm->datt, 1, N, HD},     {&tm->dh, 1, N, F},       {&tm->dgate, 1, N, F}, {&tm->dup, 1, N, F},
    };
    memcpy(out, t, sizeof t);
    return ACT_BUFS;
}

/* Bytes of one table entry; false on overflow. */
static bool act_bytes(const act_buf *a, size_t *bytes) {
    size_t n;
    return sb_mul_size(a->n0, a->n1, &n) && sb_mul_size(n, a->n2, &n) && sb_mul_size(n, sizeof(float), bytes);
}

int sb_train_model_bytes(const sb_model_config *c, int B, int T, uint64_t *activations, uint64_t *gradients) {
    if (B < 1 || T < 1) return sb_error("trainer: batch %d and sequence length %d must be >= 1", B, T);
    size_t np, g, total = 0, b;
    if (!sb_model_param_count_checked(c, &np) || !sb_mul_size(np, sizeof(float), &g))
        return sb_error("trainer: the parameter count overflows");
    sb_train_model dummy;
    act_buf t[ACT_BUFS];
    int n = act_table(c, B, T, &dummy, t);
    for (int i = 0; i < n; i++)
        if (!act_bytes(&t[i], &b) || !sb_add_size(total, b, &total))
            return sb_error("trainer: activations for batch %d x %d overflow", B, T);
    /* the token and target copies */
    if (!sb_mul_size((size_t)B * T, 2 * sizeof(int32_t), &b) || !sb_add_size(total, b, &total))
        return sb_error("trainer: activations for batch %d x %d overflow", B, T);
    *activations = total;
    *gradients = g;
    return SB_OK;
}

void sb_train_model_free(sb_train_model *tm) {
    if (!tm) return;
    /* only the pointers are wanted here, so any config will do */
    static const sb_model_config no_cfg;
    act_buf t[ACT_BUFS];
    int n = act_table(&no_cfg, 1, 1, tm, t);
    for (int i = 0; i < n; i++) {
        free(*t[i].dst);
        *t[i].dst = NULL;
    }
    free(tm->tokens);
    free(tm->targets);
    sb_model_free(&tm->grad);
    memset(tm, 0, sizeof *tm);
}

int sb_train_model_init(sb_train_model *tm, sb_model *m, int B, int T) {
    memset(tm, 0, sizeof *tm);
    const sb_model_config *c = &m->cfg;
    if (sb_train_model_check_config(c)) return SB_ERR;
    if (B < 1 || T < 1) return sb_error("trainer: batch %d and sequence length %d must be >= 1", B, T);
    tm->m = m;
    tm->cap_B = B;
    tm->cap_T = T;
    if (sb_model_alloc(&tm->grad, c)) return SB_ERR;
    /* sizes are products of config dims and B, T: each is overflow-checked, and a failure
     * becomes an error, not an abort */
    act_buf t[ACT_BUFS];
    int n = act_table(c, B, T, tm, t);
    bool failed = false;
    size_t so_far = 0, b;
    for (int i = 0; i < n && !failed; i++) {
        if (!act_bytes(&t[i], &b) || !sb_add_size(so_far, b, &so_far)) {
            failed = true;
            break;
        }
        *t[i].dst = calloc(b ? b / sizeof(float) : 1, sizeof(float));
        failed = !*t[i].dst;
    }
    size_t N = (size_t)B * T;
    tm->tokens = calloc(N, sizeof(int32_t));
    tm->targets = calloc(N, sizeof(int32_t));
    if (failed || !tm->tokens || !tm->targets) {
        size_t mib = so_far >> 20;
        sb_train_model_free(tm);
        return sb_error("trainer: cannot allocate activations for batch %d x %d (%zu MiB so far)", B, T, mib);
    }
    rope_table_fill(tm->rope_cos, tm->rope_sin, 0, T, c->head_dim, c->rope_theta);
    return SB_OK;
}

void sb_train_zero_grad(sb_train_model *tm) { memset(tm->grad.params, 0, tm->grad.n_params * sizeof(float)); }

int sb_train_forward(sb_train_model *tm, const int32_t *tokens, const int32_t *targets, int B, int T,
                     float *loss) {
    const sb_model_config *c = &tm->m->cfg;
    const sb_model_weights *w = &tm->m->w;
    if (B < 1 || T < 1 || B > tm->cap_B || T > tm->cap_T)
        return sb_error("trainer: batch %d x %d exceeds the allocated %d x %d", B, T, tm->cap_B, tm->cap_T);
    const int N = B * T, L = c->n_layers, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    const int H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim, HD = H * D, KD = KVH * D;
    for (int n = 0; n < N; n++)
        if (targets[n] >= V) return sb_error("target id %ld at position %d is outside the vocabulary [0, %d)",
                                             (long)targets[n], n, V);
    if (embedding_forward(tm->x, tokens, w->tok_embed, N, C, V)) return SB_ERR;
    tm->B = B;
    tm->T = T;
    memcpy(tm->tokens, tokens, (size_t)N * sizeof(int32_t));
    memcpy(tm->targets, targets, (size_t)N * sizeof(int32_t));
    const size_t NC = (size_t)N * C, NF = (size_t)N * F, NHD = (size_t)N * HD, NKD = (size_t)N * KD;
    const size_t P = (size_t)B * H * T * T, E = (size_t)B * H * T;
    for (int l = 0; l < L; l++) {
        const sb_layer_weights *lw = &w->layers[l];
        float *x = tm->x + l * NC, *xmid = tm->xmid + l * NC, *xo = tm->x + (l + 1) * NC;
        float *xn1 = tm->xn1 + l * NC, *xn2 = tm->xn2 + l * NC;
        float *q = tm->q + l * NHD, *k = tm->k + l * NKD, *v = tm->v + l * NKD, *att = tm->att + l * NHD;
        float *gate = tm->gate + l * NF, *up = tm->up + l * NF, *hm = tm->hmlp + l * NF;
        rmsnorm_forward(xn1, x, lw->attn_norm_w, c->norm_eps, N, C);
        train_matmul_forward(q, xn1, lw->wq, N, C, HD, false);
        train_matmul_forward(k, xn1, lw->wk, N, C, KD, false);
        train_matmul_forward(v, xn1, lw->wv, N, C, KD, false);
        train_rope_forward(q, tm->rope_cos, tm->rope_sin, N, T, H, D, c->rope_style);
        train_rope_forward(k, tm->rope_cos, tm->rope_sin, N, T, KVH, D, c->rope_style);
        train_attention_forward(att, tm->probs + l * P, tm->extra_p + l * E, q, k, v, lw->sink_logit, c->softmax,
                                B, T, H, KVH, D);
        memcpy(xmid, x, NC * sizeof(float));
        train_matmul_forward(xmid, att, lw->wo, N, HD, C, true);
        rmsnorm_forward(xn2, xmid, lw->mlp_norm_w, c->norm_eps, N, C);
        train_matmul_forward(gate, xn2, lw->w_gate, N, C, F, false);
        train_matmul_forward(up, xn2, lw->w_up, N, C, F, false);
        swiglu_forward(hm, gate, up, NF);
        memcpy(xo, xmid, NC * sizeof(float));
        train_matmul_forward(xo, hm, lw->w_down, N, F, C, true);
    }
    rmsnorm_forward(tm->xnf, tm->x + L * NC, w->final_norm_w, c->norm_eps, N, C);
    train_matmul_forward(tm->logits, tm->xnf, w->lm_head, N, C, V, false);
    crossentropy_forward(tm->losses, tm->lse, tm->logits, targets, N, V);
    double sum = 0.0;
    int n_valid = 0;
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) sum += tm->losses[n], n_valid++;
    tm->n_valid = n_valid;
    *loss = n_valid ? (float)(sum / n_valid) : 0.0f;
    return SB_OK;
}

void sb_train_backward(sb_train_model *tm, float dloss) {
    const sb_model_config *c = &tm->m->cfg;
    const sb_model_weights *w = &tm->m->w;
    sb_model_weights *g = &tm->grad.w;
    const int B = tm->B, T = tm->T, N = B * T, L = c->n_layers, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    const int H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim, HD = H * D, KD = KVH * D;
    const size_t NC = (size_t)N * C, NF = (size_t)N * F, NHD = (size_t)N * HD, NKD = (size_t)N * KD;
    const size_t P = (size_t)B * H * T * T, E = (size_t)B * H * T;
    if (tm->n_valid == 0) return;
    float *dlogits = tm->logits;
    crossentropy_softmax_backward(dlogits, tm->logits, tm->lse, tm->targets, dloss / (float)tm->n_valid, N, V);
    memset(tm->dxn, 0, NC * sizeof(float));
    matmul_backward(tm->dxn, g->lm_head, NULL, dlogits, tm->xnf, w->lm_head, N, C, V);
    memset(tm->dx, 0, NC * sizeof(float));
    rmsnorm_backward(tm->dx, g->final_norm_w, tm->dxn, tm->x + L * NC, w->final_norm_w, c->norm_eps, N, C);
    for (int l = L - 1; l >= 0; l--) {
        const sb_layer_weights *lw = &w->layers[l];
        sb_layer_weights *lg = &g->layers[l];
        const float *x = tm->x + l * NC, *xmid = tm->xmid + l * NC;
        const float *xn1 = tm->xn1 + l * NC, *xn2 = tm->xn2 + l * NC;
        const float *q = tm->q + l * NHD, *k = tm->k + l * NKD, *v = tm->v + l * NKD, *att = tm->att + l * NHD;
        const float *gate = tm->gate + l * NF, *up = tm->up + l * NF, *hm = tm->hmlp + l * NF;
        /* MLP: dx holds d(x_{l+1}), which is also the gradient reaching xmid by the residual */
        memset(tm->dh, 0, NF * sizeof(float));
        matmul_backward(tm->dh, lg->w_down, NULL, tm->dx, hm, lw->w_down, N, F, C);
        memset(tm->dgate, 0, NF * sizeof(float));
        memset(tm->dup, 0, NF * sizeof(float));
        swiglu_backward(tm->dgate, tm->dup, tm->dh, gate, up, NF);
        memset(tm->dxn, 0, NC * sizeof(float));
        matmul_backward(tm->dxn, lg->w_gate, NULL, tm->dgate, xn2, lw->w_gate, N, C, F);
        matmul_backward(tm->dxn, lg->w_up, NULL, tm->dup, xn2, lw->w_up, N, C, F);
        rmsnorm_backward(tm->dx, lg->mlp_norm_w, tm->dxn, xmid, lw->mlp_norm_w, c->norm_eps, N, C);
        /* attention: dx now holds d(xmid), also the gradient reaching x_l by the residual */
        memset(tm->datt, 0, NHD * sizeof(float));
        matmul_backward(tm->datt, lg->wo, NULL, tm->dx, att, lw->wo, N, HD, C);
        memset(tm->dq, 0, NHD * sizeof(float));
        memset(tm->dk, 0, NKD * sizeof(float));
        memset(tm->dv, 0, NKD * sizeof(float));
        attention_backward(tm->dq, tm->dk, tm->dv, lg->sink_logit, tm->datt, tm->probs + l * P, tm->extra_p + l * E,
                           q, k, v, c->softmax, B, T, H, KVH, D);
        rope_backward(tm->dq, tm->rope_cos, tm->rope_sin, N, T, H, D, c->rope_style);
        rope_backward(tm->dk, tm->rope_cos, tm->rope_sin, N, T, KVH, D, c->rope_style);
        memset(tm->dxn, 0, NC * sizeof(float));
        matmul_backward(tm->dxn, lg->wq, NULL, tm->dq, xn1, lw->wq, N, C, HD);
        matmul_backward(tm->dxn, lg->wk, NULL, tm->dk, xn1, lw->wk, N, C, KD);
        matmul_backward(tm->dxn, lg->wv, NULL, tm->dv, xn1, lw->wv, N, C, KD);
        rmsnorm_backward(tm->dx, lg->attn_norm_w, tm->dxn, x, lw->attn_norm_w, c->norm_eps, N, C);
    }
    embedding_backward(g->tok_embed, tm->dx, tm->tokens, N, C);
}

int64_t sb_train_sink_share_accumulate(const sb_train_model *tm, int first_query, double *sum) {
    const sb_model_config *c = &tm->m->cfg;
    const int B = tm->B, T = tm->T, H = c->n_heads, L = c->n_layers;
    if (first_query < 0) first_query = 0;
    if (first_query >= T) return 0;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) {
                const float *P = tm->probs + (((size_t)l * B + b) * H + h) * T * T;
                for (int i = first_query; i < T; i++) s += P[(size_t)i * T];
            }
            sum[l * H + h] += s;
        }
    return (int64_t)B * (T - first_query);
}

const char *sb_train_init_name(sb_train_init s) { return s == SB_INIT_PYTORCH ? "pytorch" : "gpt2"; }

void sb_train_init_weights(sb_model *m, uint64_t seed, float init_std) {
    sb_train_init_weights_scheme(m, seed, init_std, SB_INIT_GPT2);
}

void sb_train_init_weights_scheme(sb_model *m, uint64_t seed, float init_std, sb_train_init scheme) {
    const sb_model_config *c = &m->cfg;
    int nt = sb_model_tensor_count(c);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(c, m, t);
    /* residual out-projections: GPT-2's 1/sqrt(2L) keeps the residual stream's variance flat */
    float out_std = init_std / sqrtf(2.0f * (float)c->n_layers);
    for (int i = 0; i < nt; i++) {
        sb_rng r;
        sb_rng_seed_stream(&r, seed, (uint64_t)i);
        if (t[i].ndim == 2 && scheme == SB_INIT_PYTORCH) {
            if (strstr(t[i].name, "embed_tokens")) {
                sb_rng_fill_normal(&r, t[i].data, t[i].numel, 0.0f, 1.0f);
            } else {
                /* nn.Linear: kaiming_uniform(a = sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
                float bound = 1.0f / sqrtf((float)t[i].shape[1]);
                for (size_t j = 0; j < t[i].numel; j++) t[i].data[j] = (2.0f * sb_rng_uniformf(&r) - 1.0f) * bound;
            }
        } else if (t[i].ndim == 2) {
            bool out_proj = strstr(t[i].name, "o_proj") || strstr(t[i].name, "down_proj");
            sb_rng_fill_normal(&r, t[i].data, t[i].numel, 0.0f, out_proj ? out_std : init_std);
        } else if (strstr(t[i].name, "sinks")) {
            memset(t[i].data, 0, t[i].numel * sizeof(float));
        } else {
            for (size_t j = 0; j < t[i].numel; j++) t[i].data[j] = 1.0f;
        }
    }
    free(t);
}
