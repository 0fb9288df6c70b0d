#include "engine/forward.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/ops.h"

/* Loops over fewer floats than this stay on one thread: waking the team costs more. */
#define PAR_MIN ((size_t)1 << 16)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------ one allocation, many arrays */

/* Carves 64-byte aligned arrays out of one block: a first pass with base == NULL only
 * counts (overflow-checked), a second hands out pointers. */
typedef struct {
    char *base;
    size_t off;
    bool ok;
} arena;

static void *arena_take(arena *a, size_t n, size_t elem) {
    size_t bytes, end;
    if (!a->ok || !sb_mul_size(n, elem, &bytes) || !sb_add_size(a->off, bytes, &end) ||
        !sb_add_size(end, 63, &end)) {
        a->ok = false;
        return NULL;
    }
    void *p = a->base ? a->base + a->off : NULL;
    a->off = end & ~(size_t)63;
    return p;
}

static size_t mul3(size_t a, size_t b, size_t c, bool *ok) {
    size_t ab, abc;
    if (!sb_mul_size(a, b, &ab) || !sb_mul_size(ab, c, &abc)) {
        *ok = false;
        return 0;
    }
    return abc;
}

static void block_ws_layout(arena *a, sb_block_ws *ws, const sb_model_config *c, int T) {
    size_t t = (size_t)T, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    ws->max_T = T;
    ws->x = arena_take(a, t * c->dim, sizeof(float));
    ws->xb = arena_take(a, t * c->dim, sizeof(float));
    ws->xb2 = arena_take(a, t * c->dim, sizeof(float));
    ws->q = arena_take(a, t * qd, sizeof(float));
    ws->k = arena_take(a, t * kvd, sizeof(float));
    ws->v = arena_take(a, t * kvd, sizeof(float));
    ws->att = arena_take(a, t * qd, sizeof(float));
    ws->hb = arena_take(a, t * c->ffn_dim, sizeof(float));
    ws->hb2 = arena_take(a, t * c->ffn_dim, sizeof(float));
    ws->logits = arena_take(a, t * c->vocab_size, sizeof(float));
    ws->alibi = arena_take(a, (size_t)c->n_heads, sizeof(float));
}

static void block_ws_setup(sb_block_ws *ws, const sb_model_config *c) {
    if (c->pos == SB_POS_ALIBI) alibi_slopes(ws->alibi, c->n_heads, c->alibi_bias_max);
}

static int rope_half(const sb_model_config *c) { return c->pos == SB_POS_ROPE ? c->rotary_dim / 2 : 0; }

/* ------------------------------------------------------------ block pieces shared by both modes */

/* Norms and q, k, v projections of T rows of ws->x. */
static void block_pre(sb_block_ws *ws, const sb_model *m, int l, int T) {
    const sb_model_config *c = &m->cfg;
    const sb_layer_weights *w = &m->w.layers[l];
    const int C = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    norm_forward(ws->xb, ws->x, w->attn_norm_w, w->attn_norm_b, c->norm, c->norm_eps, T, C);
    /* a parallel block normalises the MLP input from the same residual stream */
    if (c->parallel_residual && !c->shared_norm)
        norm_forward(ws->xb2, ws->x, w->mlp_norm_w, w->mlp_norm_b, c->norm, c->norm_eps, T, C);
    matmul_forward(ws->q, ws->xb, w->wq, w->bq, T, C, qd);
    matmul_forward(ws->k, ws->xb, w->wk, w->bk, T, C, kvd);
    matmul_forward(ws->v, ws->xb, w->wv, w->bv, T, C, kvd);
    if (c->clip_qkv > 0.0f) {
        clamp_forward(ws->q, (size_t)T * qd, c->clip_qkv);
        clamp_forward(ws->k, (size_t)T * kvd, c->clip_qkv);
        clamp_forward(ws->v, (size_t)T * kvd, c->clip_qkv);
    }
}

/* Output projection, residuals and MLP, given the attention output ws->att. */
static void block_post(sb_block_ws *ws, const sb_model *m, int l, int T) {
    const sb_model_config *c = &m->cfg;
    const sb_layer_weights *w = &m->w.layers[l];
    const int C = c->dim, F = c->ffn_dim, qd = c->n_heads * c->head_dim;
    matmul_forward_acc(ws->x, ws->att, w->wo, w->bo, T, qd, C);
    const float *in = ws->xb2;
    if (c->shared_norm) in = ws->xb;
    else if (!c->parallel_residual) norm_forward(ws->xb2, ws->x, w->mlp_norm_w, w->mlp_norm_b, c->norm, c->norm_eps, T, C);
    if (c->mlp == SB_MLP_SWIGLU) {
        matmul_forward(ws->hb, in, w->w_gate, w->b_gate, T, C, F);
        matmul_forward(ws->hb2, in, w->w_up, w->b_up, T, C, F);
        glu_forward(ws->hb, ws->hb, ws->hb2, (size_t)T * F, c->act);
    } else {
        matmul_forward(ws->hb, in, w->w_up, w->b_up, T, C, F);
        act_forward(ws->hb, ws->hb, (size_t)T * F, c->act);
    }
    matmul_forward_acc(ws->x, ws->hb, w->w_down, w->b_down, T, F, C);
}

/* Final norm and lm_head for rows [from, T) into ws->logits. */
static void block_head(sb_block_ws *ws, const sb_model *m, int from, int T) {
    const sb_model_config *c = &m->cfg;
    const int C = c->dim, n = T - from;
    if (n <= 0) return;
    float *xs = ws->xb + (size_t)from * C;
    norm_forward(xs, ws->x + (size_t)from * C, m->w.final_norm_w, m->w.final_norm_b, c->norm, c->norm_eps, n, C);
    matmul_forward(ws->logits, xs, m->w.lm_head, NULL, n, C, c->vocab_size);
}

/* ------------------------------------------------------------ exact mode */

int64_t sb_chunk_band_rows(int64_t K, int64_t W, int max_T, int64_t n_pos) {
    /* the band holds [max(K, pos0-W), pos0+T) at most */
    int64_t rows = min64(W + max_T, n_pos - K);
    return rows > 1 ? rows : 1;
}

static void chunk_layout(arena *a, sb_chunk_state *s, const sb_model_config *c, int64_t K, int64_t W, int T,
                         int64_t band_cap) {
    bool ok = true;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim;
    size_t half = (size_t)(rope_half(c) > 0 ? rope_half(c) : 1);
    size_t sink_n = mul3((size_t)c->n_layers, (size_t)(K > 0 ? K : 1), kvd, &ok);
    size_t band_n = mul3((size_t)c->n_layers, (size_t)band_cap, kvd, &ok);
    sb_attn_params ap = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim};
    size_t scratch_n = mul3((size_t)attention_max_threads(),
                            attention_band_scratch_floats(&ap, T, (int)band_cap, K, W), 1, &ok);
    if (!ok) a->ok = false;
    s->sink_k = arena_take(a, sink_n, sizeof(float));
    s->sink_v = arena_take(a, sink_n, sizeof(float));
    s->band_k = arena_take(a, band_n, sizeof(float));
    s->band_v = arena_take(a, band_n, sizeof(float));
    block_ws_layout(a, &s->ws, c, T);
    s->qb = arena_take(a, (size_t)T * qd, sizeof(float));
    s->qs = arena_take(a, (size_t)T * qd, sizeof(float));
    s->opack = arena_take(a, (size_t)T * qd, sizeof(float));
    s->scratch = arena_take(a, scratch_n, sizeof(float));
    s->cos_b = arena_take(a, (size_t)T * half, sizeof(float));
    s->sin_b = arena_take(a, (size_t)T * half, sizeof(float));
    s->cos_s = arena_take(a, (size_t)T * half, sizeof(float));
    s->sin_s = arena_take(a, (size_t)T * half, sizeof(float));
    s->pos = arena_take(a, (size_t)T, sizeof(int64_t));
}

size_t sb_chunk_state_bytes(const sb_model_config *c, int64_t K, int64_t W, int max_T, int64_t band_cap) {
    if (max_T < 1 || band_cap < 1 || band_cap > INT32_MAX || K < 0) return 0;
    sb_chunk_state s;
    arena a = {NULL, 0, true};
    chunk_layout(&a, &s, c, K, W, max_T, band_cap);
    return a.ok ? a.off : 0;
}

int sb_chunk_state_init(sb_chunk_state *s, const sb_model *m, int64_t K, int64_t W, int max_T, int64_t band_cap) {
    memset(s, 0, sizeof *s);
    size_t bytes = sb_chunk_state_bytes(&m->cfg, K, W, max_T, band_cap);
    if (!bytes) return sb_error("evaluation state for K=%lld W=%lld chunk=%d is too large", (long long)K,
                                (long long)W, max_T);
    s->block = aligned_alloc(64, bytes);
    if (!s->block) return sb_error("out of memory allocating %zu bytes for the evaluation state", bytes);
    arena a = {s->block, 0, true};
    chunk_layout(&a, s, &m->cfg, K, W, max_T, band_cap);
    s->bytes = bytes;
    s->m = m;
    s->K = K;
    s->W = W;
    s->band_cap = band_cap;
    block_ws_setup(&s->ws, &m->cfg);
    sb_chunk_state_reset(s);
    return SB_OK;
}

void sb_chunk_state_reset(sb_chunk_state *s) {
    s->band_start = s->K;
    s->band_len = 0;
    s->n_sink = 0;
}

void sb_chunk_state_free(sb_chunk_state *s) {
    free(s->block);
    memset(s, 0, sizeof *s);
}

/* Copy q [T, H*hd] into [KV][T][G*hd] and rotate row t with table row t. */
static void pack_queries(float *dst, const float *q, const float *cs, const float *sn, int half, int T,
                         const sb_model_config *c) {
    const int KV = c->n_kv_heads, G = c->n_heads / KV, hd = c->head_dim;
    const size_t ldq = (size_t)G * hd, qd = (size_t)c->n_heads * hd;
#pragma omp parallel for collapse(2) if ((size_t)T * qd > PAR_MIN)
    for (int g = 0; g < KV; g++)
        for (int t = 0; t < T; t++) {
            float *row = dst + ((size_t)g * T + t) * ldq;
            memcpy(row, q + (size_t)t * qd + (size_t)g * ldq, ldq * sizeof(float));
            if (half > 0)
                rope_apply_table(row, cs + (size_t)t * half, sn + (size_t)t * half, G, hd, c->rotary_dim,
                                 c->rope_style);
        }
}

static void unpack_output(float *att, const float *opack, int T, const sb_model_config *c) {
    const int KV = c->n_kv_heads, G = c->n_heads / KV, hd = c->head_dim;
    const size_t ldq = (size_t)G * hd, qd = (size_t)c->n_heads * hd;
#pragma omp parallel for if ((size_t)T * qd > PAR_MIN)
    for (int t = 0; t < T; t++)
        for (int g = 0; g < KV; g++)
            memcpy(att + (size_t)t * qd + (size_t)g * ldq, opack + ((size_t)g * T + t) * ldq, ldq * sizeof(float));
}

int sb_chunk_forward(sb_chunk_state *s, const int32_t *tokens, int T, int64_t pos0, int logits_from) {
    const sb_model *m = s->m;
    const sb_model_config *c = &m->cfg;
    const int C = c->dim, half = rope_half(c);
    const size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    const int64_t K = s->K, W = s->W;
    sb_block_ws *ws = &s->ws;
    if (T < 1 || T > ws->max_T || pos0 < 0 || logits_from < 0 || logits_from > T)
        return sb_error("chunk of %d tokens at position %lld does not fit the evaluation state", T, (long long)pos0);

    /* keys the queries of this chunk can still see: drop older band rows once per chunk */
    int64_t band_end = s->band_start + s->band_len;
    if (band_end != max64(K, pos0) || s->n_sink != min64(K, pos0))
        return sb_error("chunk at position %lld does not continue the stream (band ends at %lld)", (long long)pos0,
                        (long long)band_end);
    int64_t new_start = min64(max64(K, pos0 - W), band_end);
    int64_t drop = new_start - s->band_start;
    int64_t keep = s->band_len - drop;
    int64_t new_rows = pos0 + T - max64(K, pos0);
    if (new_rows < 0) new_rows = 0;
    if (keep + new_rows > s->band_cap)
        return sb_error("chunk at position %lld overflows the key band (%lld rows)", (long long)pos0,
                        (long long)s->band_cap);
    if (drop > 0 && keep > 0) {
        for (int l = 0; l < c->n_layers; l++) {
            float *bk = s->band_k + (size_t)l * s->band_cap * kvd, *bv = s->band_v + (size_t)l * s->band_cap * kvd;
            memmove(bk, bk + (size_t)drop * kvd, (size_t)keep * kvd * sizeof(float));
            memmove(bv, bv + (size_t)drop * kvd, (size_t)keep * kvd * sizeof(float));
        }
    }
    s->band_start = new_start;
    s->band_len = keep;
    const int64_t n_sink_after = min64(K, pos0 + T);
    const int64_t band_len_after = keep + new_rows;

    for (int t = 0; t < T; t++) s->pos[t] = pos0 + t;
    for (int t = 0; t < T; t++)
        memcpy(ws->x + (size_t)t * C, m->w.tok_embed + (size_t)tokens[t] * C, (size_t)C * sizeof(float));

    /* sinks see query t at min(t, K+W): a different rotation only once t > K+W */
    const bool split_q = half > 0 && K > 0 && pos0 + T - 1 > K + W;
    if (half > 0) {
        rope_table_fill(s->cos_b, s->sin_b, pos0, T, c->rotary_dim, c->rope_theta);
        if (split_q) {
            rope_table_fill(s->cos_s, s->sin_s, K + W, 1, c->rotary_dim, c->rope_theta);
            for (int t = T - 1; t >= 0; t--) {
                const float *cs = pos0 + t <= K + W ? s->cos_b + (size_t)t * half : s->cos_s;
                const float *sn = pos0 + t <= K + W ? s->sin_b + (size_t)t * half : s->sin_s;
                memmove(s->cos_s + (size_t)t * half, cs, (size_t)half * sizeof(float));
                memmove(s->sin_s + (size_t)t * half, sn, (size_t)half * sizeof(float));
            }
        }
    }

    for (int l = 0; l < c->n_layers; l++) {
        block_pre(ws, m, l, T);
        if (half > 0) {
#pragma omp parallel for if ((size_t)T * kvd > PAR_MIN)
            for (int t = 0; t < T; t++)
                rope_apply_table(ws->k + (size_t)t * kvd, s->cos_b + (size_t)t * half, s->sin_b + (size_t)t * half,
                                 c->n_kv_heads, c->head_dim, c->rotary_dim, c->rope_style);
        }
        pack_queries(s->qb, ws->q, s->cos_b, s->sin_b, half, T, c);
        if (split_q) pack_queries(s->qs, ws->q, s->cos_s, s->sin_s, half, T, c);

        float *sk = s->sink_k + (size_t)l * (K > 0 ? K : 1) * kvd, *sv = s->sink_v + (size_t)l * (K > 0 ? K : 1) * kvd;
        float *bk = s->band_k + (size_t)l * s->band_cap * kvd, *bv = s->band_v + (size_t)l * s->band_cap * kvd;
        for (int t = 0; t < T; t++) {
            int64_t p = pos0 + t;
            float *dk = p < K ? sk + (size_t)p * kvd : bk + (size_t)(p - s->band_start) * kvd;
            float *dv = p < K ? sv + (size_t)p * kvd : bv + (size_t)(p - s->band_start) * kvd;
            memcpy(dk, ws->k + (size_t)t * kvd, kvd * sizeof(float));
            memcpy(dv, ws->v + (size_t)t * kvd, kvd * sizeof(float));
        }

        sb_attn_params ap;
        sb_attn_params_init(&ap, m, l, ws->alibi);
        ap.n_threads = attention_max_threads();
        attention_band_forward(s->opack, s->scratch, s->qb, split_q ? s->qs : s->qb, bk, bv, s->band_start,
                               (int)band_len_after, sk, sv, (int)n_sink_after, K, W, pos0, T, &ap);
        unpack_output(ws->att, s->opack, T, c);
        block_post(ws, m, l, T);
    }
    s->band_len = band_len_after;
    s->n_sink = n_sink_after;
    block_head(ws, m, logits_from, T);
    return SB_OK;
}

/* ------------------------------------------------------------ decode mode */

static size_t slot_layer_bytes(const sb_model_config *c, int64_t n_slots, bool *ok) {
    return mul3((size_t)n_slots, (size_t)c->n_kv_heads * c->head_dim, sizeof(float), ok);
}

size_t sb_slot_cache_bytes(const sb_model_config *c, int64_t n_slots, int64_t n_raw) {
    if (n_slots < 1 || n_raw < 0) return 0;
    bool ok = true;
    size_t L = (size_t)c->n_layers, total = 0, part;
    size_t per_layer = slot_layer_bytes(c, n_slots, &ok);
    part = mul3(L, per_layer, 2, &ok);
    ok = ok && sb_add_size(total, part, &total);
    part = mul3(L, slot_layer_bytes(c, n_raw > 0 ? n_raw : 1, &ok), 1, &ok);
    ok = ok && sb_add_size(total, part, &total);
    part = mul3((size_t)n_slots, sizeof(int64_t) + (size_t)c->n_heads * sizeof(float), 1, &ok);
    ok = ok && sb_add_size(total, part, &total);
    arena a = {NULL, 0, true};
    sb_block_ws ws;
    block_ws_layout(&a, &ws, c, 1);
    size_t half = (size_t)(rope_half(c) > 0 ? rope_half(c) : 1);
    arena_take(&a, mul3((size_t)(n_raw + 2), half, 2, &ok), sizeof(float));
    arena_take(&a, (size_t)(n_raw > 0 ? n_raw : 1), sizeof(int64_t));
    ok = ok && a.ok && sb_add_size(total, a.off, &total);
    return ok ? total : 0;
}

int sb_slot_cache_init(sb_slot_cache *c, const sb_model *m, int64_t n_slots, int64_t n_raw) {
    memset(c, 0, sizeof *c);
    const sb_model_config *cfg = &m->cfg;
    if (!sb_slot_cache_bytes(cfg, n_slots, n_raw))
        return sb_error("decode cache of %lld slots is too large", (long long)n_slots);
    c->n_layers = cfg->n_layers;
    c->kvd = (size_t)cfg->n_kv_heads * cfg->head_dim;
    c->n_raw = n_raw;
    c->k = calloc_check((size_t)cfg->n_layers, sizeof(float *));
    c->v = calloc_check((size_t)cfg->n_layers, sizeof(float *));
    c->k_raw = calloc_check((size_t)cfg->n_layers, sizeof(float *));
    for (int l = 0; l < cfg->n_layers; l++)
        c->k_raw[l] = malloc_check((size_t)(n_raw > 0 ? n_raw : 1) * c->kvd * sizeof(float));
    c->raw_pos = malloc_check((size_t)(n_raw > 0 ? n_raw : 1) * sizeof(int64_t));
    for (int64_t j = 0; j < n_raw; j++) c->raw_pos[j] = -1;
    size_t half = (size_t)(rope_half(cfg) > 0 ? rope_half(cfg) : 1);
    c->cos_r = malloc_check((size_t)(n_raw + 2) * half * sizeof(float));
    c->sin_r = malloc_check((size_t)(n_raw + 2) * half * sizeof(float));
    arena a = {NULL, 0, true};
    block_ws_layout(&a, &c->ws, cfg, 1);
    void *blk = aligned_alloc(64, a.off);
    if (!blk) {
        sb_slot_cache_free(c);
        return sb_error("out of memory for the decode workspace");
    }
    c->ws_block = blk;
    a = (arena){blk, 0, true};
    block_ws_layout(&a, &c->ws, cfg, 1);
    block_ws_setup(&c->ws, cfg);
    int rc = sb_slot_cache_grow(c, m, n_slots);
    if (rc) sb_slot_cache_free(c);
    return rc;
}

int sb_slot_cache_grow(sb_slot_cache *c, const sb_model *m, int64_t n_slots) {
    if (n_slots <= c->n_slots) return SB_OK;
    bool ok = true;
    size_t bytes = slot_layer_bytes(&m->cfg, n_slots, &ok);
    size_t sc_bytes = mul3((size_t)n_slots, (size_t)m->cfg.n_heads, sizeof(float), &ok);
    if (!ok) return sb_error("decode cache of %lld slots is too large", (long long)n_slots);
    for (int l = 0; l < c->n_layers; l++) {
        float *k = realloc(c->k[l], bytes);
        if (!k) return sb_error("out of memory growing the decode cache to %lld slots", (long long)n_slots);
        c->k[l] = k;
        float *v = realloc(c->v[l], bytes);
        if (!v) return sb_error("out of memory growing the decode cache to %lld slots", (long long)n_slots);
        c->v[l] = v;
    }
    int64_t *slots = realloc(c->slots, (size_t)n_slots * sizeof(int64_t));
    if (!slots) return sb_error("out of memory growing the decode cache to %lld slots", (long long)n_slots);
    c->slots = slots;
    float *scores = realloc(c->scores, sc_bytes);
    if (!scores) return sb_error("out of memory growing the decode cache to %lld slots", (long long)n_slots);
    c->scores = scores;
    c->n_slots = n_slots;
    return SB_OK;
}

void sb_slot_cache_free(sb_slot_cache *c) {
    for (int l = 0; l < c->n_layers; l++) {
        if (c->k) free(c->k[l]);
        if (c->v) free(c->v[l]);
        if (c->k_raw) free(c->k_raw[l]);
    }
    free(c->k);
    free(c->v);
    free(c->k_raw);
    free(c->raw_pos);
    free(c->slots);
    free(c->scores);
    free(c->cos_r);
    free(c->sin_r);
    free(c->ws_block);
    memset(c, 0, sizeof *c);
}

size_t sb_slot_cache_kv_bytes(const sb_slot_cache *c) {
    return (size_t)c->n_layers * 2 * (size_t)c->n_slots * c->kvd * sizeof(float) +
           (size_t)c->n_layers * (size_t)c->n_raw * c->kvd * sizeof(float);
}

void sb_forward_token(float *logits, sb_slot_cache *c, const sb_model *m, const sb_kv_state *s, int64_t slot,
                      int32_t token) {
    const sb_model_config *cfg = &m->cfg;
    const int C = cfg->dim, half = rope_half(cfg);
    const size_t kvd = c->kvd;
    sb_block_ws *ws = &c->ws;
    memcpy(ws->x, m->w.tok_embed + (size_t)token * C, (size_t)C * sizeof(float));

    int n = 0;
    for (int64_t i = 0; i < s->n_slots; i++)
        if (s->slot_token[i] >= 0) c->slots[n++] = i;

    /* tables: row 0 the query, row 1 the new key, row 2+j moving slot j */
    float *cq = c->cos_r, *sq = c->sin_r, *ck = c->cos_r + half, *sk = c->sin_r + half;
    int64_t n_move = min64(c->n_raw, s->n_slots);
    bool any_move = false;
    if (half > 0) {
        rope_table_fill(cq, sq, s->query_pos, 1, cfg->rotary_dim, cfg->rope_theta);
        rope_table_fill(ck, sk, s->slot_pos[slot], 1, cfg->rotary_dim, cfg->rope_theta);
        for (int64_t j = 0; j < n_move; j++) {
            if (j == slot || s->slot_token[j] < 0 || c->raw_pos[j] == s->slot_pos[j]) continue;
            rope_table_fill(c->cos_r + (size_t)(2 + j) * half, c->sin_r + (size_t)(2 + j) * half, s->slot_pos[j], 1,
                            cfg->rotary_dim, cfg->rope_theta);
            any_move = true;
        }
    }

    for (int l = 0; l < cfg->n_layers; l++) {
        block_pre(ws, m, l, 1);
        if (slot < c->n_raw) memcpy(c->k_raw[l] + (size_t)slot * kvd, ws->k, kvd * sizeof(float));
        if (half > 0) {
            rope_apply_table(ws->q, cq, sq, cfg->n_heads, cfg->head_dim, cfg->rotary_dim, cfg->rope_style);
            rope_apply_table(ws->k, ck, sk, cfg->n_kv_heads, cfg->head_dim, cfg->rotary_dim, cfg->rope_style);
        }
        memcpy(c->k[l] + (size_t)slot * kvd, ws->k, kvd * sizeof(float));
        memcpy(c->v[l] + (size_t)slot * kvd, ws->v, kvd * sizeof(float));
        if (any_move) {
            /* sinks move with the frame: rotate from the pre-RoPE copy, so no error builds up */
            for (int64_t j = 0; j < n_move; j++) {
                if (j == slot || s->slot_token[j] < 0 || c->raw_pos[j] == s->slot_pos[j]) continue;
                float *dst = c->k[l] + (size_t)j * kvd;
                memcpy(dst, c->k_raw[l] + (size_t)j * kvd, kvd * sizeof(float));
                rope_apply_table(dst, c->cos_r + (size_t)(2 + j) * half, c->sin_r + (size_t)(2 + j) * half,
                                 cfg->n_kv_heads, cfg->head_dim, cfg->rotary_dim, cfg->rope_style);
            }
        }
        sb_attn_params ap;
        sb_attn_params_init(&ap, m, l, ws->alibi);
        attention_token_forward(ws->att, c->scores, ws->q, c->k[l], c->v[l], c->slots, s->slot_pos, s->query_pos, n,
                                &ap);
        block_post(ws, m, l, 1);
    }
    for (int64_t j = 0; j < n_move; j++)
        if (s->slot_token[j] >= 0) c->raw_pos[j] = s->slot_pos[j];
    if (logits) {
        block_head(ws, m, 0, 1);
        memcpy(logits, ws->logits, (size_t)cfg->vocab_size * sizeof(float));
    }
}
