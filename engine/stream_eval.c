#include "engine/stream_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/forward.h"
#include "engine/ops.h"

#define SB_EVAL_MAX_CHUNK 65536
/* decode mode reports progress every this many tokens */
#define DECODE_PROGRESS_EVERY 256

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

typedef struct {
    const sb_eval_opts *o;
    sb_eval_progress pr;
} progress_ctx;

static int report(progress_ctx *pc) {
    if (!pc->o->progress) return SB_OK;
    if (pc->o->progress(&pc->pr, pc->o->user))
        return sb_error("evaluation aborted by the caller after %lld of %lld tokens", (long long)pc->pr.done,
                        (long long)pc->pr.total);
    return SB_OK;
}

static int chunk_of(const sb_eval_opts *o, int *out) {
    int64_t c = o->chunk ? o->chunk : SB_EVAL_DEFAULT_CHUNK;
    if (c < 1 || c > SB_EVAL_MAX_CHUNK)
        return sb_usage_error("chunk %lld is outside [1, %d]", (long long)o->chunk, SB_EVAL_MAX_CHUNK);
    *out = (int)c;
    return SB_OK;
}

/* Score rows [from, T) of a chunk: row r is at stream position pos0 + r and predicts the
 * token after it; targets are indexed from the first scored position `first`. */
static void score_rows(float *nll, double *sum, const float *logits, int V, const int32_t *stream, int64_t pos0,
                       int from, int T, int64_t first) {
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if ((size_t)(T - from) * V > ((size_t)1 << 16))
    for (int r = from; r < T; r++) {
        int64_t pos = pos0 + r;
        double v = nll_from_logits(logits + (size_t)(r - from) * V, V, stream[pos + 1]);
        nll[pos - first] = (float)v;
        s += v;
    }
    *sum += s;
}

/* ------------------------------------------------------------ exact mode */

/* Dense attention as a band: every earlier key, or the model's sliding window (Mistral:
 * keys at distance < sliding_window), which also bounds the stored band. */
static int64_t dense_window(const sb_model_config *c) {
    return c->sliding_window > 0 ? (int64_t)c->sliding_window - 1 : SB_FORWARD_W_ALL;
}

/* K sinks + W recent (dense: 0 + all) over stream[0..N), scoring positions >= first + skip
 * (nll indexed from first; skip: already scored by an interrupted run). */
static int exact_band(const sb_model *m, int64_t K, int64_t W, const int32_t *stream, int64_t N, int64_t first,
                      int64_t skip, int chunk, float *nll, progress_ctx *pc) {
    const int V = m->cfg.vocab_size;
    int T_max = (int)min64(chunk, N - 1);
    /* more sinks than tokens: every token is a sink at its true distance (K + W > t), the
     * same as K = N, which keeps the sink store to the stream's size */
    K = min64(K, N);
    sb_chunk_state s;
    int rc = sb_chunk_state_init(&s, m, K, W, T_max, sb_chunk_band_rows(K, W, T_max, N));
    if (rc) return rc;
    for (int64_t pos0 = 0; pos0 < N - 1 && !rc; pos0 += T_max) {
        int T = (int)min64(T_max, N - 1 - pos0);
        int from = pos0 >= first + skip ? 0 : (int)min64(first + skip - pos0, T);
        rc = sb_chunk_forward(&s, stream + pos0, T, pos0, from);
        if (rc) break;
        if (from < T) {
            score_rows(nll, &pc->pr.sum_nll, s.ws.logits, V, stream, pos0, from, T, first);
            pc->pr.done += T - from;
            rc = report(pc);
        }
    }
    sb_chunk_state_free(&s);
    return rc;
}

/* recompute:W: x_{t+1} is predicted by a fresh dense pass over x_{max(0,t-W+1)}..x_t at
 * positions 0... For t < W those windows are prefixes of one pass; later ones each need
 * their own pass, of which only the last row is scored. */
static int exact_recompute(const sb_model *m, int64_t W, const int32_t *x, int64_t n, int64_t skip, int chunk,
                           float *nll, progress_ctx *pc) {
    const int V = m->cfg.vocab_size;
    int64_t win = min64(W, n - 1);
    int T_max = (int)min64(chunk, win);
    sb_chunk_state s;
    int rc = sb_chunk_state_init(&s, m, 0, SB_FORWARD_W_ALL, T_max,
                                 sb_chunk_band_rows(0, SB_FORWARD_W_ALL, T_max, win));
    if (rc) return rc;
    /* a resume past the prefix windows needs none of them */
    for (int64_t pos0 = 0; pos0 < win && skip < win && !rc; pos0 += T_max) {
        int T = (int)min64(T_max, win - pos0);
        int from = pos0 >= skip ? 0 : (int)min64(skip - pos0, T);
        rc = sb_chunk_forward(&s, x + pos0, T, pos0, from);
        if (rc) break;
        if (from < T) {
            score_rows(nll, &pc->pr.sum_nll, s.ws.logits, V, x, pos0, from, T, 0);
            pc->pr.done += T - from;
            rc = report(pc);
        }
    }
    /* every later prediction is a pass of its own: a resume simply starts at its token */
    for (int64_t t = W > skip ? W : skip; t < n - 1 && !rc; t++) {
        const int32_t *w0 = x + (t - W + 1);
        sb_chunk_state_reset(&s);
        for (int64_t pos0 = 0; pos0 < W && !rc; pos0 += T_max) {
            int T = (int)min64(T_max, W - pos0);
            bool last = pos0 + T == W;
            rc = sb_chunk_forward(&s, w0 + pos0, T, pos0, last ? T - 1 : T);
        }
        if (rc) break;
        double v = nll_from_logits(s.ws.logits, V, x[t + 1]);
        nll[t] = (float)v;
        pc->pr.sum_nll += v;
        pc->pr.done++;
        if (pc->pr.done % DECODE_PROGRESS_EVERY == 0 || t == n - 2) rc = report(pc);
    }
    sb_chunk_state_free(&s);
    return rc;
}

/* ------------------------------------------------------------ decode mode */

static int decode_eval(const sb_model *m, const sb_policy_spec *p, const int32_t *x, int64_t n, int64_t skip,
                       float *nll, progress_ctx *pc) {
    const int V = m->cfg.vocab_size;
    sb_decoder *d;
    int rc = sb_decoder_new(&d, m, p, n);
    if (rc) return rc;
    float *logits = malloc_check((size_t)V * sizeof(float));
    for (int64_t i = 0; i < skip && !rc; i++) rc = sb_decoder_step(d, x[i], NULL); /* replay, no head */
    for (int64_t i = skip; i < n - 1 && !rc; i++) {
        rc = sb_decoder_step(d, x[i], logits);
        if (rc) break;
        double v = nll_from_logits(logits, V, x[i + 1]);
        nll[i] = (float)v;
        pc->pr.sum_nll += v;
        pc->pr.done++;
        if (pc->pr.done % DECODE_PROGRESS_EVERY == 0 || i == n - 2) rc = report(pc);
    }
    free(logits);
    sb_decoder_free(d);
    return rc;
}

/* ------------------------------------------------------------ public */

static int check_inputs(const sb_model *m, const sb_policy_spec *p, const int32_t *tokens, int64_t n,
                        const sb_eval_opts *o) {
    if (n < 0) return sb_usage_error("negative stream length %lld", (long long)n);
    if (o->mode != SB_MODE_EXACT && o->mode != SB_MODE_DECODE)
        return sb_usage_error("unknown evaluation mode %d", (int)o->mode);
    int chunk = SB_EVAL_DEFAULT_CHUNK;
    int rc = chunk_of(o, &chunk);
    if (rc) return rc;
    rc = sb_policy_check_model(p, &m->cfg);
    if (rc) return rc;
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->cfg.vocab_size)
            return sb_error("token id %ld at position %lld is outside the vocabulary [0, %d)", (long)tokens[i],
                            (long long)i, m->cfg.vocab_size);
    return SB_OK;
}

int sb_eval_stream_nll(const sb_model *m, const sb_policy_spec *p, const int32_t *tokens, int64_t n,
                       const sb_eval_opts *o, float *nll) {
    const sb_eval_opts defaults = {0};
    if (!o) o = &defaults;
    int rc = check_inputs(m, p, tokens, n, o);
    if (rc) return rc;
    progress_ctx pc = {.o = o, .pr = {.done = 0, .total = n > 1 ? n - 1 : 0, .sum_nll = 0.0}};
    const int64_t skip = o->resume_from;
    if (skip < 0 || skip > pc.pr.total)
        return sb_usage_error("resume point %lld is outside [0, %lld]", (long long)skip, (long long)pc.pr.total);
    for (int64_t i = 0; i < skip; i++) pc.pr.sum_nll += nll[i];
    pc.pr.done = skip;
    if (n < 2 || skip == pc.pr.total) return report(&pc);
    if (o->mode == SB_MODE_DECODE) return decode_eval(m, p, tokens, n, skip, nll, &pc);

    int chunk = SB_EVAL_DEFAULT_CHUNK;
    chunk_of(o, &chunk);
    if (p->kind == SB_POLICY_RECOMPUTE) return exact_recompute(m, p->window, tokens, n, skip, chunk, nll, &pc);
    if (p->kind == SB_POLICY_DENSE)
        return exact_band(m, 0, dense_window(&m->cfg), tokens, n, 0, skip, chunk, nll, &pc);

    /* sinks: the prefix (learned <sink>, newline tokens) joins the stream and is not scored */
    int64_t P = sb_policy_prefix_len(p);
    if (P == 0) return exact_band(m, p->n_sinks, p->window, tokens, n, 0, skip, chunk, nll, &pc);
    size_t bytes;
    if (!sb_mul_size((size_t)(P + n), sizeof(int32_t), &bytes)) return sb_error("stream too long");
    int32_t *stream = malloc(bytes);
    if (!stream) return sb_error("out of memory for a stream of %lld tokens", (long long)(P + n));
    sb_policy_prefix_tokens(p, &m->cfg, stream);
    memcpy(stream + P, tokens, (size_t)n * sizeof(int32_t));
    rc = exact_band(m, p->n_sinks, p->window, stream, P + n, P, skip, chunk, nll, &pc);
    free(stream);
    return rc;
}

uint64_t sb_eval_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t n, const sb_eval_opts *o) {
    const sb_eval_opts defaults = {0};
    if (!o) o = &defaults;
    int chunk = SB_EVAL_DEFAULT_CHUNK;
    if (chunk_of(o, &chunk) || n < 0) return UINT64_MAX;
    if (n < 2) return 0;
    if (o->mode == SB_MODE_DECODE) {
        uint64_t d = sb_decoder_memory_bytes(c, p, n);
        uint64_t extra = (uint64_t)c->vocab_size * sizeof(float);
        return d > UINT64_MAX - extra ? UINT64_MAX : d + extra;
    }
    size_t bytes;
    if (p->kind == SB_POLICY_RECOMPUTE) {
        int64_t win = min64(p->window, n - 1);
        int T = (int)min64(chunk, win);
        bytes = sb_chunk_state_bytes(c, 0, SB_FORWARD_W_ALL, T, sb_chunk_band_rows(0, SB_FORWARD_W_ALL, T, win));
        return bytes ? bytes : UINT64_MAX;
    }
    int64_t K = p->kind == SB_POLICY_DENSE ? 0 : p->n_sinks;
    int64_t W = p->kind == SB_POLICY_DENSE ? dense_window(c) : p->window;
    int64_t P = p->kind == SB_POLICY_DENSE ? 0 : sb_policy_prefix_len(p);
    int64_t N = P + n;
    int T = (int)min64(chunk, N - 1);
    K = min64(K, N);
    bytes = sb_chunk_state_bytes(c, K, W, T, sb_chunk_band_rows(K, W, T, N));
    if (!bytes) return UINT64_MAX;
    return (uint64_t)bytes + (P > 0 ? (uint64_t)N * sizeof(int32_t) : 0);
}
