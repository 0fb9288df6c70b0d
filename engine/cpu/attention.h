/* Attention kernels of the two evaluation modes.
 *
 * Both take keys already rotated (RoPE) and add ALiBi biases from positional distances, so
 * they only see scores, masks and the softmax variant. Scores are q.k / sqrt(head_dim).
 * Query head h reads kv head h / (n_heads / n_kv_heads). */
#ifndef SB_ATTENTION_H
#define SB_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

typedef struct {
    int n_heads, n_kv_heads, head_dim;
    sb_softmax_kind softmax;
    const float *sink_logit;   /* [n_heads], read for SB_SOFTMAX_SINK_LOGIT only */
    const float *alibi;        /* [n_heads] slopes, NULL without ALiBi */
    int n_threads;             /* exact mode: threads the scratch has slabs for (>= 1) */
    int64_t max_dist;          /* keys farther than this are masked (the model's sliding window
                                  minus 1; INT64_MAX when it has none) */
} sb_attn_params;

/* Fill p for layer l of model m; alibi_buf [n_heads] holds the slopes when ALiBi is on. */
void sb_attn_params_init(sb_attn_params *p, const sb_model *m, int layer, const float *alibi_buf);

/* Decode: one query against the filled slots of a cache.
 * out[H*hd] = softmax(q.k_s / sqrt(hd) - slope * (query_pos - pos_s)) . v_s over s in slots[n]
 * (the caller leaves out slots beyond p->max_dist).
 * q[H*hd] rotated; k, v: [*, KV*hd] slot rows; slot_pos[slot] frame positions;
 * scratch [H * n] floats. */
void attention_token_forward(float *out, float *scratch, const float *q, const float *k, const float *v,
                             const int64_t *slots, const int64_t *slot_pos, int64_t query_pos, int n,
                             const sb_attn_params *p);

/* Exact mode: T consecutive queries at positions pos0..pos0+T-1 under K sinks + W recent.
 * Query at position t sees sink keys j < min(K, t+1) at distance min(t, K+W) - j and band keys
 * at positions [max(K, t-W), t] at distance t - pos; of those, only keys at distance <=
 * p->max_dist. */
typedef struct {
    /* Queries packed per kv group, [KV][T][G*hd] (G = H/KV): row t of group g holds the G query
     * heads that read kv head g. qb is rotated at t (for the band), qs at min(t, K+W) (for
     * the sinks; may equal qb). */
    const float *qb, *qs;
    const float *band_k, *band_v;   /* [L, KV*hd] positions band_start.. (all >= K), rotated at their position */
    int64_t band_start;
    int L;
    const float *sink_k, *sink_v;   /* [n_sink, KV*hd] positions 0..n_sink-1 (n_sink <= K) */
    int n_sink;
    int64_t K, W, pos0;
    int T;
} sb_band_args;

/* out [KV][T][G*hd] packed like the queries. The work is split in attention_band_tasks()
 * independent tasks (kv group x query block); attention_band_task() runs one with one
 * thread's scratch (attention_band_scratch_floats() floats). attention_band_forward() runs
 * them all, over p->n_threads threads (scratch holds that many slabs) when large enough. */
int attention_band_tasks(const sb_attn_params *p, int T);
void attention_band_task(float *out, float *scratch, int task, const sb_band_args *a, const sb_attn_params *p);
void attention_band_forward(float *out, float *scratch, const sb_band_args *a, const sb_attn_params *p);
/* Scratch floats one thread needs for attention_band_forward with at most T queries, a band of
 * at most L keys and K sinks (callers bound K by the stream length). */
size_t attention_band_scratch_floats(const sb_attn_params *p, int T, int L, int64_t K, int64_t W);
/* Threads to size the exact-mode scratch for (one slab each); put it in n_threads. */
int attention_max_threads(void);

#endif
