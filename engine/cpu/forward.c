#include "engine/cpu/forward.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/hf_rope.h"
#include "engine/cpu/ops.h"

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
    matmul_weight_forward(ws->q, ws->xb, &w->mat.q, w->bq, T, C, qd);
    matmul_weight_forward(ws->k, ws->xb, &w->mat.k, w->bk, T, C, kvd);
    matmul_weight_forward(ws->v, ws->xb, &w->mat.v, w->bv, T, C, kvd);
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
    matmul_weight_forward_acc(ws->x, ws->att, &w->mat.o, w->bo, T, qd, C);
    const float *in = ws->xb2;
    if (c->shared_norm)
        in = ws->xb;
    else if (!c->parallel_residual)
        norm_forward(ws->xb2, ws->x, w->mlp_norm_w, w->mlp_norm_b, c->norm, c->norm_eps, T, C);
    if (c->mlp == SB_MLP_SWIGLU) {
        matmul_weight_forward(ws->hb, in, &w->mat.gate, w->b_gate, T, C, F);
        matmul_weight_forward(ws->hb2, in, &w->mat.up, w->b_up, T, C, F);
        glu_forward(ws->hb, ws->hb, ws->hb2, (size_t)T * F, c->act);
    } else {
        matmul_weight_forward(ws->hb, in, &w->mat.up, w->b_up, T, C, F);
        act_forward(ws->hb, ws->hb, (size_t)T * F, c->act);
    }
    matmul_weight_forward_acc(ws->x, ws->hb, &w->mat.down, w->b_down, T, F, C);
}

/* Final norm and lm_head for rows [from, T) into ws->logits. */
static void block_head(sb_block_ws *ws, const sb_model *m, int from, int T) {
    const sb_model_config *c = &m->cfg;
    const int C = c->dim, n = T - from;
    if (n <= 0) return;
    float *xs = ws->xb + (size_t)from * C;
    norm_forward(xs, ws->x + (size_t)from * C, m->w.final_norm_w, m->w.final_norm_b, c->norm, c->norm_eps, n, C);
    matmul_weight_forward(ws->logits, xs, &m->w.head, NULL, n, C, c->vocab_size);
}

/* ------------------------------------------------------------ exact mode */

static void chunk_layout(arena *a, sb_chunk_state *s, const sb_model_config *c, int64_t K, int64_t W, int T,
                         int64_t band_cap) {
    bool ok = true;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim;
    size_t half = (size_t)(rope_half(c) > 0 ? rope_half(c) : 1);
    size_t sink_n = mul3((size_t)c->n_layers, (size_t)(K > 0 ? K : 1), kvd, &ok);
    size_t band_n = mul3((size_t)c->n_layers, (size_t)band_cap, kvd, &ok);
    sb_attn_params ap = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim};
    s->n_threads = attention_max_threads();
    s->scratch_per_thread = attention_band_scratch_floats(&ap, T, (int)band_cap, K, W);
    size_t scratch_n = mul3((size_t)s->n_threads, s->scratch_per_thread, 1, &ok);
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

int sb_chunk_seek(sb_chunk_state *s, int64_t pos) {
    int64_t band_end = s->band_start + s->band_len;
    if (pos < max64(s->K, band_end) || s->n_sink != s->K)
        return sb_error("cannot seek the evaluation to position %lld (band ends at %lld, %lld of %lld sinks)",
                        (long long)pos, (long long)band_end, (long long)s->n_sink, (long long)s->K);
    /* The band starts where a whole-stream run's would, W before pos, so every query block
     * spans the same band columns and sums in the same order; the rows before pos hold
     * zeros (only warm-up queries see them). */
    const size_t kvd = (size_t)s->m->cfg.n_kv_heads * s->m->cfg.head_dim;
    s->band_start = max64(s->K, pos - s->W);
    s->band_len = pos - s->band_start;
    if (s->band_len > s->band_cap) return sb_error("cannot seek: the key band holds %lld rows", (long long)s->band_cap);
    for (int l = 0; l < s->m->cfg.n_layers; l++) {
        memset(s->band_k + (size_t)l * s->band_cap * kvd, 0, (size_t)s->band_len * kvd * sizeof(float));
        memset(s->band_v + (size_t)l * s->band_cap * kvd, 0, (size_t)s->band_len * kvd * sizeof(float));
    }
    return SB_OK;
}

void sb_chunk_state_free(sb_chunk_state *s) {
    free(s->block);
    memset(s, 0, sizeof *s);
}

/* The rows [r0, ...) of a block workspace; logits row r of the view is chunk row r0 + r,
 * stored at (r0 + r - logits_from) in the chunk's logits. */
static sb_block_ws ws_rows(const sb_block_ws *ws, const sb_model_config *c, int r0, int logits_from) {
    const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    sb_block_ws v = *ws;
    v.x += (size_t)r0 * c->dim;
    v.xb += (size_t)r0 * c->dim;
    v.xb2 += (size_t)r0 * c->dim;
    v.q += (size_t)r0 * qd;
    v.k += (size_t)r0 * kvd;
    v.v += (size_t)r0 * kvd;
    v.att += (size_t)r0 * qd;
    v.hb += (size_t)r0 * c->ffn_dim;
    v.hb2 += (size_t)r0 * c->ffn_dim;
    v.logits += (ptrdiff_t)(r0 - logits_from) * c->vocab_size;
    return v;
}

/* Copy rows [r0, r1) of q [T, H*hd] into [KV][T][G*hd], rotating row t with table row t. */
static void pack_queries(float *dst, const float *q, const float *cs, const float *sn, int half, int r0, int r1,
                         int T, const sb_model_config *c) {
    const int KV = c->n_kv_heads, G = c->n_heads / KV, hd = c->head_dim;
    const size_t ldq = (size_t)G * hd, qd = (size_t)c->n_heads * hd;
    for (int g = 0; g < KV; g++)
        for (int t = r0; t < r1; t++) {
            float *row = dst + ((size_t)g * T + t) * ldq;
            memcpy(row, q + (size_t)t * qd + (size_t)g * ldq, ldq * sizeof(float));
            if (half > 0)
                rope_apply_table(row, cs + (size_t)t * half, sn + (size_t)t * half, G, hd, c->rotary_dim,
                                 c->rope_style);
        }
}

static void unpack_output(float *att, const float *opack, int r0, int r1, int T, const sb_model_config *c) {
    const int KV = c->n_kv_heads, G = c->n_heads / KV, hd = c->head_dim;
    const size_t ldq = (size_t)G * hd, qd = (size_t)c->n_heads * hd;
    for (int t = r0; t < r1; t++)
        for (int g = 0; g < KV; g++)
            memcpy(att + (size_t)t * qd + (size_t)g * ldq, opack + ((size_t)g * T + t) * ldq, ldq * sizeof(float));
}

/* Rows per work item of the row-parallel phases: threads take blocks dynamically, so one
 * that is descheduled on a busy machine does not hold the others at the next barrier. */
#define ROW_BLOCK 64

/* Everything of the chunk after the band shift: one parallel region for the whole chunk.
 * Rows are independent except in attention, so the projections, norms and MLP run on row
 * blocks (single-threaded sgemms, one block per work item) and the attention on (kv group,
 * query block) tasks; three barriers per layer instead of a team launch per op. */
static void chunk_layers(sb_chunk_state *s, const int32_t *tokens, int T, int64_t pos0, int logits_from,
                         bool split_q, int64_t band_len_after, int64_t n_sink_after, int n_threads) {
    const sb_model *m = s->m;
    const sb_model_config *c = &m->cfg;
    const int C = c->dim, half = rope_half(c);
    const size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    const int64_t K = s->K, W = s->W, sinks_rows = K > 0 ? K : 1;
    const int n_rb = (T + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel num_threads(n_threads)
    {
        float *scratch = s->scratch + (size_t)omp_get_thread_num() * s->scratch_per_thread;
#pragma omp for schedule(static)
        for (int t = 0; t < T; t++)
            sb_model_embed_row(s->ws.x + (size_t)t * C, m, tokens[t]);
        for (int l = 0; l < c->n_layers; l++) {
            float *sk = s->sink_k + (size_t)l * sinks_rows * kvd, *sv = s->sink_v + (size_t)l * sinks_rows * kvd;
            float *bk = s->band_k + (size_t)l * s->band_cap * kvd, *bv = s->band_v + (size_t)l * s->band_cap * kvd;
#pragma omp for schedule(dynamic, 1)
            for (int rb = 0; rb < n_rb; rb++) {
                const int r0 = rb * ROW_BLOCK, r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
                sb_block_ws v = ws_rows(&s->ws, c, r0, logits_from);
                block_pre(&v, m, l, r1 - r0);
                if (half > 0)
                    for (int t = r0; t < r1; t++)
                        rope_apply_table(s->ws.k + (size_t)t * kvd, s->cos_b + (size_t)t * half,
                                         s->sin_b + (size_t)t * half, c->n_kv_heads, c->head_dim, c->rotary_dim,
                                         c->rope_style);
                pack_queries(s->qb, s->ws.q, s->cos_b, s->sin_b, half, r0, r1, T, c);
                if (split_q) pack_queries(s->qs, s->ws.q, s->cos_s, s->sin_s, half, r0, r1, T, c);
                for (int t = r0; t < r1; t++) {
                    int64_t p = pos0 + t;
                    float *dk = p < K ? sk + (size_t)p * kvd : bk + (size_t)(p - s->band_start) * kvd;
                    float *dv = p < K ? sv + (size_t)p * kvd : bv + (size_t)(p - s->band_start) * kvd;
                    memcpy(dk, s->ws.k + (size_t)t * kvd, kvd * sizeof(float));
                    memcpy(dv, s->ws.v + (size_t)t * kvd, kvd * sizeof(float));
                }
            }
            sb_attn_params ap;
            sb_attn_params_init(&ap, m, l, s->ws.alibi);
            const sb_band_args args = {.qb = s->qb, .qs = split_q ? s->qs : s->qb, .band_k = bk, .band_v = bv,
                                       .band_start = s->band_start, .L = (int)band_len_after, .sink_k = sk,
                                       .sink_v = sv, .n_sink = (int)n_sink_after, .K = K, .W = W, .pos0 = pos0,
                                       .T = T};
            const int n_tasks = attention_band_tasks(&ap, T);
#pragma omp for schedule(dynamic, 1)
            for (int task = 0; task < n_tasks; task++) attention_band_task(s->opack, scratch, task, &args, &ap);
#pragma omp for schedule(dynamic, 1)
            for (int rb = 0; rb < n_rb; rb++) {
                const int r0 = rb * ROW_BLOCK, r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T;
                sb_block_ws v = ws_rows(&s->ws, c, r0, logits_from);
                unpack_output(s->ws.att, s->opack, r0, r1, T, c);
                block_post(&v, m, l, r1 - r0);
                /* the head of this block's scored rows right away (no barrier needed) */
                if (l == c->n_layers - 1) {
                    int h0 = r0 > logits_from ? r0 : logits_from;
                    if (h0 < r1) {
                        sb_block_ws hv = ws_rows(&s->ws, c, h0, logits_from);
                        block_head(&hv, m, 0, r1 - h0);
                    }
                }
            }
        }
    }
}

int sb_chunk_forward(sb_chunk_state *s, const int32_t *tokens, int T, int64_t pos0, int logits_from) {
    const sb_model *m = s->m;
    const sb_model_config *c = &m->cfg;
    const int half = rope_half(c);
    const size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
    const int64_t K = s->K, W = s->W;
    if (T < 1 || T > s->ws.max_T || pos0 < 0 || logits_from < 0 || logits_from > T)
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

    /* sinks see query t at min(t, K+W): a different rotation only once t > K+W */
    const bool split_q = half > 0 && K > 0 && pos0 + T - 1 > K + W;
    if (half > 0) {
        sb_rope_table_fill(s->cos_b, s->sin_b, pos0, T, c);
        if (split_q) {
            sb_rope_table_fill(s->cos_s, s->sin_s, K + W, 1, c);
            for (int t = T - 1; t >= 0; t--) {
                const float *cs = pos0 + t <= K + W ? s->cos_b + (size_t)t * half : s->cos_s;
                const float *sn = pos0 + t <= K + W ? s->sin_b + (size_t)t * half : s->sin_s;
                memmove(s->cos_s + (size_t)t * half, cs, (size_t)half * sizeof(float));
                memmove(s->sin_s + (size_t)t * half, sn, (size_t)half * sizeof(float));
            }
        }
    }

    /* a thread needs enough rows to be worth waking; BLAS runs single-threaded inside */
    int n_threads = omp_get_max_threads();
    if (n_threads > s->n_threads) n_threads = s->n_threads;
    if (n_threads > (T + ROW_BLOCK - 1) / ROW_BLOCK) n_threads = (T + ROW_BLOCK - 1) / ROW_BLOCK;
    int blas_threads = openblas_get_num_threads();
    if (n_threads > 1 && blas_threads != 1) openblas_set_num_threads(1);
    chunk_layers(s, tokens, T, pos0, logits_from, split_q, keep + new_rows, min64(K, pos0 + T), n_threads);
    if (n_threads > 1 && blas_threads != 1) openblas_set_num_threads(blas_threads);
    s->band_len = keep + new_rows;
    s->n_sink = min64(K, pos0 + T);
    return SB_OK;
}

/* ------------------------------------------------------------ decode mode */

/* Raw (pre-RoPE) key copies exist for the moving slots among the allocated ones. */
static int64_t raw_rows(int64_t n_moving, int64_t n_slots) { return n_moving < n_slots ? n_moving : n_slots; }

/* RoPE ring rows for n_slots: every position a moving slot can hold lies within n_slots of
 * the query (policy.h frames), plus the query itself. */
static int64_t ring_rows(int64_t n_slots) { return n_slots + 1; }

/* Bytes of the per-slot arrays for n_slots slots of which the first n_moving move. */
static size_t slot_arrays_bytes(const sb_model_config *c, int64_t n_slots, int64_t n_moving, int n_maps, bool *ok) {
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, half = (size_t)(rope_half(c) > 0 ? rope_half(c) : 1);
    size_t raw = (size_t)raw_rows(n_moving, n_slots), total = 0;
    size_t parts[] = {
        mul3((size_t)c->n_layers, (size_t)n_slots * 2 + raw, kvd * sizeof(float), ok), /* k, v, k_raw */
        mul3((size_t)n_slots, sizeof(int64_t) + (size_t)c->n_heads * sizeof(float), 1, ok), /* slots, scores */
        mul3(raw, (size_t)n_maps, sizeof(int64_t), ok),                               /* raw_pos */
        mul3(raw + 2, half, 2 * sizeof(float), ok),                                   /* cos_r, sin_r */
        mul3(raw > 0 ? (size_t)ring_rows(n_slots) : 0, half, 2 * sizeof(float), ok),  /* ring */
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) *ok = *ok && sb_add_size(total, parts[i], &total);
    return total;
}

size_t sb_slot_cache_bytes(const sb_model_config *c, int64_t n_slots, int64_t n_moving, int n_maps) {
    if (n_slots < 1 || n_moving < 0 || n_maps < 1 || n_slots > (INT64_MAX >> 8)) return 0;
    bool ok = true;
    size_t total = slot_arrays_bytes(c, n_slots, n_moving, n_maps, &ok);
    arena a = {NULL, 0, true};
    sb_block_ws ws;
    block_ws_layout(&a, &ws, c, 1);
    ok = ok && a.ok && sb_add_size(total, a.off, &total);
    return ok ? total : 0;
}

int sb_slot_cache_init(sb_slot_cache *c, const sb_model *m, int64_t n_slots, int64_t n_moving, int n_maps) {
    memset(c, 0, sizeof *c);
    const sb_model_config *cfg = &m->cfg;
    if (!sb_slot_cache_bytes(cfg, n_slots, n_moving, n_maps))
        return sb_error("decode cache of %lld slots is too large", (long long)n_slots);
    c->m = m;
    c->n_layers = cfg->n_layers;
    c->n_maps = n_maps;
    c->kvd = (size_t)cfg->n_kv_heads * cfg->head_dim;
    c->n_moving = n_moving;
    c->k = calloc_check((size_t)cfg->n_layers, sizeof(float *));
    c->v = calloc_check((size_t)cfg->n_layers, sizeof(float *));
    c->k_raw = calloc_check((size_t)cfg->n_layers, sizeof(float *));
    arena a = {NULL, 0, true};
    block_ws_layout(&a, &c->ws, cfg, 1);
    c->ws_block = aligned_alloc(64, a.off);
    if (!c->ws_block) {
        sb_slot_cache_free(c);
        return sb_error("out of memory for the decode workspace");
    }
    a = (arena){c->ws_block, 0, true};
    block_ws_layout(&a, &c->ws, cfg, 1);
    block_ws_setup(&c->ws, cfg);
    int rc = sb_slot_cache_grow(c, n_slots);
    if (rc) sb_slot_cache_free(c);
    return rc;
}

/* realloc that leaves *p alone on failure */
static bool grow_array(void **p, size_t bytes) {
    void *q = realloc(*p, bytes ? bytes : 1);
    if (!q) return false;
    *p = q;
    return true;
}

int sb_slot_cache_grow(sb_slot_cache *c, int64_t n_slots) {
    if (n_slots <= c->n_slots) return SB_OK;
    const sb_model_config *cfg = &c->m->cfg;
    bool ok = true;
    slot_arrays_bytes(cfg, n_slots, c->n_moving, c->n_maps, &ok);
    if (!ok || n_slots > (INT64_MAX >> 8))
        return sb_error("decode cache of %lld slots is too large", (long long)n_slots);
    const size_t rows = (size_t)n_slots, raw = (size_t)raw_rows(c->n_moving, n_slots), kv = c->kvd * sizeof(float);
    const size_t half = (size_t)(rope_half(cfg) > 0 ? rope_half(cfg) : 1), maps = (size_t)c->n_maps;
    const size_t ring = raw > 0 ? (size_t)ring_rows(n_slots) : 0;
    bool got = true;
    for (int l = 0; l < c->n_layers && got; l++)
        got = grow_array((void **)&c->k[l], rows * kv) && grow_array((void **)&c->v[l], rows * kv) &&
              grow_array((void **)&c->k_raw[l], raw * kv);
    got = got && grow_array((void **)&c->slots, rows * sizeof(int64_t)) &&
          grow_array((void **)&c->scores, rows * (size_t)cfg->n_heads * sizeof(float)) &&
          grow_array((void **)&c->raw_pos, raw * maps * sizeof(int64_t)) &&
          grow_array((void **)&c->cos_r, (raw + 2) * half * sizeof(float)) &&
          grow_array((void **)&c->sin_r, (raw + 2) * half * sizeof(float)) &&
          grow_array((void **)&c->ring_cos, ring * half * sizeof(float)) &&
          grow_array((void **)&c->ring_sin, ring * half * sizeof(float));
    if (!got) return sb_error("out of memory growing the decode cache to %lld slots", (long long)n_slots);
    /* raw_pos is [n_maps][n_raw]: spread the maps to the new row count, new rows hold no key */
    const size_t old_raw = (size_t)c->n_raw;
    for (size_t mp = maps; mp-- > 0;) {
        int64_t *dst = c->raw_pos + mp * raw, *src = c->raw_pos + mp * old_raw;
        if (mp > 0 && old_raw > 0) memmove(dst, src, old_raw * sizeof(int64_t));
        for (size_t j = old_raw; j < raw; j++) dst[j] = INT64_MIN;
    }
    c->n_raw = (int64_t)raw;
    c->n_slots = n_slots;
    c->ring_n = (int64_t)ring;
    c->ring_hi = INT64_MIN; /* the ring's rows moved: start it again */
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
    free(c->ring_cos);
    free(c->ring_sin);
    free(c->ws_block);
    memset(c, 0, sizeof *c);
}

size_t sb_slot_cache_kv_bytes(const sb_slot_cache *c) {
    return (size_t)c->n_layers * (2 * (size_t)c->n_slots + (size_t)c->n_raw) * c->kvd * sizeof(float);
}

/* Bring the ring up to the query's position; a query before the ring's newest row (a
 * rebuilt cache restarts at 0) starts it again. */
static void ring_advance(sb_slot_cache *c, int64_t qpos) {
    if (c->ring_n == 0) return;
    const sb_model_config *cfg = &c->m->cfg;
    const int half = rope_half(cfg);
    if (c->ring_hi != INT64_MIN && qpos < c->ring_hi) c->ring_hi = INT64_MIN;
    int64_t from = c->ring_hi == INT64_MIN ? qpos - c->ring_n + 1 : c->ring_hi + 1;
    if (from < qpos - c->ring_n + 1) from = qpos - c->ring_n + 1;
    if (from < 0) from = 0;
    for (int64_t p = from; p <= qpos; p++) {
        size_t row = (size_t)(p % c->ring_n) * half;
        sb_rope_table_fill(c->ring_cos + row, c->ring_sin + row, p, 1, cfg);
    }
    c->ring_hi = qpos;
}

/* Table row for position pos: the ring's when it holds pos, else computed into row `spare`
 * of cos_r/sin_r. */
static void table_row(sb_slot_cache *c, int64_t pos, size_t spare, const float **cs, const float **sn) {
    const int half = rope_half(&c->m->cfg);
    if (c->ring_n > 0 && c->ring_hi != INT64_MIN && pos <= c->ring_hi && pos > c->ring_hi - c->ring_n && pos >= 0) {
        size_t row = (size_t)(pos % c->ring_n) * half;
        *cs = c->ring_cos + row;
        *sn = c->ring_sin + row;
        return;
    }
    float *a = c->cos_r + spare * half, *b = c->sin_r + spare * half;
    sb_rope_table_fill(a, b, pos, 1, &c->m->cfg);
    *cs = a;
    *sn = b;
}

/* Rotate the moving keys of map mp at layer l whose position changed since they were last
 * rotated (from their pre-RoPE copy, so no error builds up). When l < 0, only report whether
 * any must move. */
static bool move_keys(sb_slot_cache *c, const sb_kv_state *s, int mp, int l, int64_t new_slot) {
    const sb_model_config *cfg = &c->m->cfg;
    const int64_t *tok = sb_kv_tokens(s, mp), *pos = sb_kv_pos(s, mp);
    const int64_t *raw_pos = c->raw_pos + (size_t)mp * c->n_raw;
    const int64_t n_move = min64(c->n_raw, s->n_slots);
    bool any = false;
    for (int64_t j = 0; j < n_move; j++) {
        if (j == new_slot || tok[j] < 0 || raw_pos[j] == pos[j]) continue;
        any = true;
        if (l < 0) break;
        const float *cs, *sn;
        table_row(c, pos[j], (size_t)(2 + j), &cs, &sn);
        float *dst = c->k[l] + (size_t)j * c->kvd;
        memcpy(dst, c->k_raw[l] + (size_t)j * c->kvd, c->kvd * sizeof(float));
        rope_apply_table(dst, cs, sn, cfg->n_kv_heads, cfg->head_dim, cfg->rotary_dim, cfg->rope_style);
    }
    return any;
}

void sb_forward_token(float *logits, sb_slot_cache *c, const sb_kv_state *s, int32_t token, sb_attn_observer_fn obs,
                      void *obs_user) {
    const sb_model *m = c->m;
    const sb_model_config *cfg = &m->cfg;
    const int half = rope_half(cfg);
    const size_t kvd = c->kvd;
    sb_block_ws *ws = &c->ws;
    sb_model_embed_row(ws->x, m, token);
    const int64_t max_dist = cfg->sliding_window > 0 ? (int64_t)cfg->sliding_window - 1 : INT64_MAX;
    if (half > 0 && c->n_raw > 0) ring_advance(c, s->query_pos);

    /* one-row matmuls run on OpenMP threads (weights_matmul.c): OpenBLAS's own pool (the
     * small attention sgemms) would spin against them on the same cores */
    const int blas_threads = openblas_get_num_threads();
    if (blas_threads != 1) openblas_set_num_threads(1);
    int n = 0, listed_map = -1;
    const float *cq = NULL, *sq = NULL, *ck = NULL, *sk = NULL;
    bool any_move = false;
    for (int l = 0; l < cfg->n_layers; l++) {
        const int mp = c->n_maps > 1 ? l : 0;
        const int64_t slot = s->new_slot[mp];
        const int64_t *pos = sb_kv_pos(s, mp);
        if (mp != listed_map) {
            /* the keys this query sees: filled slots within the model's sliding window */
            const int64_t *tok = sb_kv_tokens(s, mp);
            n = 0;
            for (int64_t i = 0; i < s->n_slots; i++)
                if (tok[i] >= 0 && s->query_pos - pos[i] <= max_dist) c->slots[n++] = i;
            if (half > 0) {
                table_row(c, s->query_pos, 0, &cq, &sq);
                table_row(c, pos[slot], 1, &ck, &sk);
                any_move = move_keys(c, s, mp, -1, slot);
            }
            listed_map = mp;
        }
        block_pre(ws, m, l, 1);
        if (slot < c->n_raw) memcpy(c->k_raw[l] + (size_t)slot * kvd, ws->k, kvd * sizeof(float));
        if (half > 0) {
            rope_apply_table(ws->q, cq, sq, cfg->n_heads, cfg->head_dim, cfg->rotary_dim, cfg->rope_style);
            rope_apply_table(ws->k, ck, sk, cfg->n_kv_heads, cfg->head_dim, cfg->rotary_dim, cfg->rope_style);
        }
        memcpy(c->k[l] + (size_t)slot * kvd, ws->k, kvd * sizeof(float));
        memcpy(c->v[l] + (size_t)slot * kvd, ws->v, kvd * sizeof(float));
        if (any_move) move_keys(c, s, mp, l, slot);
        sb_attn_params ap;
        sb_attn_params_init(&ap, m, l, ws->alibi);
        attention_token_forward(ws->att, c->scores, ws->q, c->k[l], c->v[l], c->slots, pos, s->query_pos, n, &ap);
        if (obs) obs(obs_user, l, c->scores, c->slots, n);
        block_post(ws, m, l, 1);
    }
    /* every moving key is now rotated at this step's position */
    for (int mp = 0; mp < c->n_maps; mp++) {
        const int64_t *tok = sb_kv_tokens(s, mp), *pos = sb_kv_pos(s, mp);
        int64_t *raw_pos = c->raw_pos + (size_t)mp * c->n_raw;
        for (int64_t j = 0; j < min64(c->n_raw, s->n_slots); j++)
            if (tok[j] >= 0) raw_pos[j] = pos[j];
    }
    if (logits) {
        block_head(ws, m, 0, 1);
        memcpy(logits, ws->logits, (size_t)cfg->vocab_size * sizeof(float));
    }
    if (blas_threads != 1) openblas_set_num_threads(blas_threads);
}
