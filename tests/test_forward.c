/* Tests of engine/attention and engine/forward: the two attention kernels against naive
 * double-precision loops (masks, distances, GQA, ALiBi, softmax variants, positions in the
 * millions), the decode frame's invariance to a global position offset, and the chunk
 * state's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/attention.h"
#include "engine/common.h"
#include "engine/cpu/forward.h"
#include "engine/model.h"
#include "engine/cpu/ops.h"
#include "engine/policy.h"

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * scale;
}

/* Naive attention of one query head over keys (kv head g) with given distances. */
static void naive_head(double *out, const float *q, const float *const *k, const float *const *v, const int64_t *dist,
                       int n, int hd, double slope, sb_softmax_kind kind, double extra) {
    double sc[4096], mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int d = 0; d < hd; d++) s += (double)q[d] * k[i][d];
        sc[i] = s / sqrt((double)hd) - slope * (double)dist[i];
        mx = fmax(mx, sc[i]);
    }
    double e = kind == SB_SOFTMAX_STANDARD ? -INFINITY : kind == SB_SOFTMAX_OFF_BY_ONE ? 0.0 : extra;
    mx = fmax(mx, e);
    double sum = exp(e - mx);
    for (int i = 0; i < n; i++) sum += (sc[i] = exp(sc[i] - mx));
    for (int d = 0; d < hd; d++) out[d] = 0.0;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < hd; d++) out[d] += sc[i] / sum * v[i][d];
}

typedef struct {
    int H, KV, hd;
    int64_t K, W, pos0;
    int T;
    bool alibi;
    sb_softmax_kind kind;
    int64_t max_dist; /* sliding window - 1; 0: none */
} band_case;

static void run_band_case(const band_case *bc) {
    const int H = bc->H, KV = bc->KV, hd = bc->hd, G = H / KV, T = bc->T;
    const int64_t K = bc->K, W = bc->W, pos0 = bc->pos0;
    const size_t kvd = (size_t)KV * hd, ldq = (size_t)G * hd;
    /* the stream so far: positions [0, pos0 + T); the band holds [max(K, pos0 - W), pos0 + T) */
    int64_t band_start = pos0 - W > K ? pos0 - W : K;
    int L = (int)(pos0 + T - band_start > 0 ? pos0 + T - band_start : 0); /* empty while t < K */
    int n_sink = (int)(K < pos0 + T ? K : pos0 + T);
    float *qb = malloc((size_t)T * H * hd * sizeof(float)), *qs = malloc((size_t)T * H * hd * sizeof(float));
    float *bk = malloc((size_t)(L + 1) * kvd * sizeof(float)), *bv = malloc((size_t)(L + 1) * kvd * sizeof(float));
    float *sk = malloc((size_t)(K + 1) * kvd * sizeof(float)), *sv = malloc((size_t)(K + 1) * kvd * sizeof(float));
    float *out = malloc((size_t)T * H * hd * sizeof(float));
    fill(qb, (size_t)T * H * hd, 2.0f);
    fill(qs, (size_t)T * H * hd, 2.0f);
    fill(bk, (size_t)L * kvd, 2.0f);
    fill(bv, (size_t)L * kvd, 1.0f);
    fill(sk, (size_t)(K + 1) * kvd, 2.0f);
    fill(sv, (size_t)(K + 1) * kvd, 1.0f);
    float slopes[64], sink_logit[64];
    alibi_slopes(slopes, H, 8.0f);
    fill(sink_logit, (size_t)H, 2.0f);
    sb_attn_params p = {.n_heads = H, .n_kv_heads = KV, .head_dim = hd, .softmax = bc->kind,
                        .sink_logit = sink_logit, .alibi = bc->alibi ? slopes : NULL,
                        .n_threads = attention_max_threads(), .max_dist = bc->max_dist ? bc->max_dist : INT64_MAX};
    float *scratch = malloc((size_t)p.n_threads * attention_band_scratch_floats(&p, T, L, K, W) * sizeof(float));
    const sb_band_args args = {.qb = qb, .qs = qs, .band_k = bk, .band_v = bv, .band_start = band_start, .L = L,
                               .sink_k = sk, .sink_v = sv, .n_sink = n_sink, .K = K, .W = W, .pos0 = pos0, .T = T};
    attention_band_forward(out, scratch, &args, &p);

    const float *keys[4096], *vals[4096];
    int64_t dist[4096];
    double ref[256];
    double worst = 0.0;
    for (int i = 0; i < T; i++) {
        int64_t t = pos0 + i;
        for (int h = 0; h < H; h++) {
            int g = h / G, n = 0;
            /* sinks j < min(K, t+1) at distance min(t, K+W) - j; band [max(K, t-W), t] at t - pos */
            int ns = 0;
            const int64_t md = bc->max_dist ? bc->max_dist : INT64_MAX;
            for (int64_t j = 0; j < K && j <= t; j++) {
                if ((t < K + W ? t : K + W) - j > md) continue;
                keys[n] = sk + j * kvd + g * hd, vals[n] = sv + j * kvd + g * hd;
                dist[n++] = (t < K + W ? t : K + W) - j;
                ns++;
            }
            for (int64_t ps = (t - W > K ? t - W : K); ps <= t; ps++) {
                if (t - ps > md) continue;
                keys[n] = bk + (ps - band_start) * kvd + g * hd, vals[n] = bv + (ps - band_start) * kvd + g * hd;
                dist[n++] = t - ps;
            }
            /* sink keys are scored with qs (the query rotated at min(t, K+W)), band keys with qb */
            const size_t qoff = ((size_t)g * T + i) * ldq + (size_t)(h % G) * hd;
            double sc[4096], mx = -INFINITY;
            for (int a = 0; a < n; a++) {
                const float *qq = (a < ns ? qs : qb) + qoff;
                double s = 0.0;
                for (int d = 0; d < hd; d++) s += (double)qq[d] * keys[a][d];
                sc[a] = s / sqrt((double)hd) - (bc->alibi ? slopes[h] : 0.0) * (double)dist[a];
                mx = fmax(mx, sc[a]);
            }
            double e = bc->kind == SB_SOFTMAX_STANDARD    ? -INFINITY
                       : bc->kind == SB_SOFTMAX_OFF_BY_ONE ? 0.0
                                                           : sink_logit[h];
            mx = fmax(mx, e);
            double sum = exp(e - mx);
            for (int a = 0; a < n; a++) sum += (sc[a] = exp(sc[a] - mx));
            for (int d = 0; d < hd; d++) ref[d] = 0.0;
            for (int a = 0; a < n; a++)
                for (int d = 0; d < hd; d++) ref[d] += sc[a] / sum * vals[a][d];
            const float *o = out + ((size_t)g * T + i) * ldq + (size_t)(h % G) * hd;
            for (int d = 0; d < hd; d++) worst = fmax(worst, fabs(o[d] - ref[d]));
        }
    }
    if (!(worst < 2e-5))
        fail_msg("band H%d KV%d K%lld W%lld pos0 %lld T%d alibi %d kind %d: max error %.3g", H, KV, (long long)K,
                 (long long)W, (long long)pos0, T, bc->alibi, bc->kind, worst);
    free(qb), free(qs), free(bk), free(bv), free(sk), free(sv), free(out), free(scratch);
}

static void test_band_attention_matches_naive(void **state) {
    (void)state;
    const band_case cases[] = {
        {4, 4, 8, 4, 16, 0, 50, false, SB_SOFTMAX_STANDARD, 0},     /* first chunk: sinks filling up */
        {4, 2, 8, 4, 16, 2, 70, true, SB_SOFTMAX_STANDARD, 0},      /* chunk straddles K, K+W */
        {4, 4, 8, 4, 16, 100, 37, false, SB_SOFTMAX_OFF_BY_ONE, 0}, /* steady state */
        {6, 1, 4, 1, 9, 1000000, 130, true, SB_SOFTMAX_SINK_LOGIT, 0}, /* MQA, millions */
        {8, 2, 16, 0, 33, 5000, 200, false, SB_SOFTMAX_SINK_LOGIT, 0}, /* window, several blocks, threads */
        {4, 4, 32, 2, 300, 400, 150, true, SB_SOFTMAX_STANDARD, 0},  /* big enough to run in parallel */
        {2, 2, 8, 3, 1, 10, 20, false, SB_SOFTMAX_STANDARD, 0},      /* W = 1 */
        {4, 4, 8, 0, SB_FORWARD_W_ALL, 0, 90, true, SB_SOFTMAX_OFF_BY_ONE, 0}, /* dense */
        {4, 4, 8, 0, SB_FORWARD_W_ALL, 64, 70, false, SB_SOFTMAX_STANDARD, 0}, /* dense, second chunk */
        {3, 3, 8, 20, 4, 0, 40, false, SB_SOFTMAX_STANDARD, 0},     /* more sinks than the window */
        {4, 1, 8, 4, 16, 1, 1, true, SB_SOFTMAX_SINK_LOGIT, 0},     /* one query, no band yet */
        {4, 2, 8, 6, 3, 2, 3, false, SB_SOFTMAX_OFF_BY_ONE, 0},     /* a chunk inside the sinks */
        {4, 2, 8, 0, SB_FORWARD_W_ALL, 30, 100, true, SB_SOFTMAX_STANDARD, 9}, /* dense, sliding window 10 */
        {4, 4, 8, 4, 16, 50, 70, false, SB_SOFTMAX_OFF_BY_ONE, 12},  /* sinks beyond the sliding window */
        {4, 4, 8, 3, 5, 0, 40, false, SB_SOFTMAX_STANDARD, 6},       /* window reaches some sinks */
        {4, 2, 8, 100, 4, 200, 16, true, SB_SOFTMAX_STANDARD, 0},    /* many more sinks than band keys */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_band_case(&cases[i]);
}

static void test_token_attention_matches_naive(void **state) {
    (void)state;
    const int H = 6, KV = 2, hd = 8, G = H / KV, n_slots = 40;
    const size_t kvd = (size_t)KV * hd;
    float q[48], k[40 * 16], v[40 * 16], out[48], scratch[6 * 40], slopes[6], sl[6];
    int64_t slot_pos[40], slots[40];
    fill(q, sizeof q / sizeof q[0], 2.0f);
    fill(k, sizeof k / sizeof k[0], 2.0f);
    fill(v, sizeof v / sizeof v[0], 1.0f);
    fill(sl, 6, 2.0f);
    alibi_slopes(slopes, H, 8.0f);
    const int64_t qpos = 3000000;
    for (int layout = 0; layout < 2; layout++) {
    int n = 0;
    if (layout == 0) {
        for (int s = n_slots - 1; s >= 0; s -= 2) { /* filled slots in scrambled order */
            slots[n++] = s;
            slot_pos[s] = qpos - (s * 7) % 23;
        }
    } else {
        for (int s = 0; s < n_slots; s++) { /* a full cache: slots 0..n-1 (the sgemm path) */
            slots[n++] = s;
            slot_pos[s] = qpos - (s * 5) % 41;
        }
    }
    for (int kind = 0; kind < 3; kind++)
        for (int alibi = 0; alibi < 2; alibi++) {
            sb_attn_params p = {.n_heads = H, .n_kv_heads = KV, .head_dim = hd, .softmax = (sb_softmax_kind)kind,
                                .sink_logit = sl, .alibi = alibi ? slopes : NULL, .n_threads = 1};
            attention_token_forward(out, scratch, q, k, v, slots, slot_pos, qpos, n, &p);
            for (int h = 0; h < H; h++) {
                const float *keys[40], *vals[40];
                int64_t dist[40];
                for (int i = 0; i < n; i++) {
                    keys[i] = k + slots[i] * kvd + (h / G) * hd;
                    vals[i] = v + slots[i] * kvd + (h / G) * hd;
                    dist[i] = qpos - slot_pos[slots[i]];
                }
                double ref[8];
                naive_head(ref, q + h * hd, keys, vals, dist, n, hd, alibi ? slopes[h] : 0.0, (sb_softmax_kind)kind,
                           sl[h]);
                for (int d = 0; d < hd; d++)
                    if (fabs(out[h * hd + d] - ref[d]) > 2e-5)
                        fail_msg("token attention layout %d kind %d alibi %d head %d: %f vs %f", layout, kind, alibi, h,
                                 out[h * hd + d], ref[d]);
            }
        }
    }
}

/* ------------------------------------------------------------ decode frame */

static void tiny_model(sb_model *m, sb_pos_kind pos) {
    sb_model_config c;
    sb_model_config_default(&c);
    c.vocab_size = 48;
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.rotary_dim = 8;
    c.ffn_dim = 40;
    c.pos = pos;
    assert_int_equal(sb_model_alloc(m, &c), SB_OK);
    sb_model_init_random(m, 5, 12.0f);
}

/* Run sinks:3:6 for n tokens with every frame position shifted by `offset`; logits [n, V]. */
static void decode_with_offset(const sb_model *m, int64_t offset, int n, float *logits) {
    sb_policy_spec p;
    assert_int_equal(sb_policy_parse("sinks:3:6", &p), SB_OK);
    sb_kv_state s, shifted;
    assert_int_equal(sb_kv_state_init(&s, &p, m->cfg.n_layers, m->cfg.n_heads, 0), SB_OK);
    sb_slot_cache c;
    assert_int_equal(sb_slot_cache_init(&c, m, s.n_slots, s.n_moving, s.n_maps), SB_OK);
    int64_t pos[64];
    for (int t = 0; t < n; t++) {
        int64_t slot = p.def->reserve(&s);
        assert_true(slot >= 0);
        if (s.n_slots > c.n_slots) assert_int_equal(sb_slot_cache_grow(&c, s.n_slots), SB_OK);
        shifted = s;
        for (int64_t i = 0; i < s.n_slots; i++) pos[i] = s.slot_pos[i] + offset;
        shifted.slot_pos = pos;
        shifted.query_pos = s.query_pos + offset;
        sb_forward_token(logits + (size_t)t * m->cfg.vocab_size, &c, &shifted, (int32_t)((t * 5 + 1) % 48), NULL, NULL);
        p.def->evict(&s);
    }
    sb_slot_cache_free(&c);
    sb_kv_state_free(&s);
}

static void test_decode_frame_offset_invariance(void **state) {
    (void)state;
    sb_model m;
    tiny_model(&m, SB_POS_ROPE);
    const int n = 40, V = m.cfg.vocab_size;
    float *a = malloc((size_t)n * V * sizeof(float)), *b = malloc((size_t)n * V * sizeof(float));
    decode_with_offset(&m, 0, n, a);
    const int64_t offsets[] = {1000, 1000000, 4000000000LL};
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        decode_with_offset(&m, offsets[o], n, b);
        double worst = 0.0;
        for (int i = 0; i < n * V; i++) worst = fmax(worst, fabs(a[i] - b[i]));
        /* RoPE scores depend on distances only; angles are computed in double */
        if (!(worst < (offsets[o] > 10000000 ? 2e-3 : 2e-4)))
            fail_msg("offset %lld changes logits by %.3g", (long long)offsets[o], worst);
    }
    /* and the decode is deterministic */
    decode_with_offset(&m, 0, n, b);
    assert_memory_equal(a, b, (size_t)n * V * sizeof(float));
    free(a), free(b);
    sb_model_free(&m);
}

/* ------------------------------------------------------------ chunk state */

static void test_chunk_state_refusals(void **state) {
    (void)state;
    sb_model m;
    tiny_model(&m, SB_POS_ALIBI);
    sb_chunk_state s;
    assert_int_equal(sb_chunk_state_init(&s, &m, 2, 8, 16, sb_exact_band_rows(2, 8, 16, 1000)), SB_OK);
    int32_t tok[32];
    for (int i = 0; i < 32; i++) tok[i] = i % 48;
    assert_int_equal(sb_chunk_forward(&s, tok, 16, 0, 0), SB_OK);
    /* a gap in the stream and a chunk larger than the state are refused, not corrupted */
    assert_int_equal(sb_chunk_forward(&s, tok, 16, 17, 0), SB_ERR);
    assert_int_equal(sb_chunk_forward(&s, tok, 17, 16, 0), SB_ERR);
    assert_int_equal(sb_chunk_forward(&s, tok, 16, 16, 0), SB_OK);
    /* the band now holds [max(K, 16 - W), 32) = [8, 32) */
    assert_int_equal(s.band_start, 8);
    assert_int_equal(s.band_len, 24);
    assert_int_equal(s.n_sink, 2);
    /* a seek keeps the sinks, empties the band, and refuses to go back */
    assert_int_equal(sb_chunk_seek(&s, 20), SB_ERR);
    assert_int_equal(sb_chunk_seek(&s, 64), SB_OK);
    assert_int_equal(s.band_start, 56); /* W rows before 64, zeros */
    assert_int_equal(s.band_len, 8);
    assert_int_equal(sb_chunk_forward(&s, tok, 16, 32, 0), SB_ERR);
    assert_int_equal(sb_chunk_forward(&s, tok, 16, 64, 0), SB_OK);
    assert_int_equal(s.band_start, 56);
    assert_int_equal(s.band_len, 24);
    sb_chunk_state_reset(&s);
    assert_int_equal(sb_chunk_seek(&s, 16), SB_ERR); /* the sinks are not in yet */
    assert_int_equal(sb_chunk_forward(&s, tok, 16, 0, 16), SB_OK);
    sb_chunk_state_free(&s);
    /* sizes that overflow are refused up front */
    assert_int_equal(sb_chunk_state_bytes(&m.cfg, 2, 8, 16, (int64_t)1 << 40), 0);
    assert_int_equal(sb_slot_cache_bytes(&m.cfg, INT64_MAX / 4, 0, 1), 0);
    assert_true(sb_slot_cache_bytes(&m.cfg, 100, 4, 1) > 100 * 2 * 2 * 16 * sizeof(float));
    sb_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_band_attention_matches_naive),
        cmocka_unit_test(test_token_attention_matches_naive),
        cmocka_unit_test(test_decode_frame_offset_invariance),
        cmocka_unit_test(test_chunk_state_refusals),
    };
    return cmocka_run_group_tests_name("forward", tests, NULL, NULL);
}
