#include "engine/stream_eval.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cpu/ops.h" /* nll_from_logits */
#include "engine/decoder.h"

#define SB_EVAL_MAX_CHUNK 65536
/* decode mode reports progress every this many tokens */
#define DECODE_PROGRESS_EVERY 256

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* One evaluation: the stream, what to score, where the forward runs. */
typedef struct {
    const sb_eval_opts *o;
    sb_eval_progress pr;
    sb_backend *b;
    int chunk;
    int64_t a, e;             /* score nll[a, e): a past the resumed part */
} eval_ctx;

static int report(eval_ctx *x) {
    if (!x->o->progress) return SB_OK;
    if (x->o->progress(&x->pr, x->o->user))
        return sb_error("evaluation aborted by the caller after %lld of %lld tokens", (long long)x->pr.done,
                        (long long)x->pr.total);
    return SB_OK;
}

static int chunk_of(const sb_eval_opts *o, int *out) {
    int64_t c = o->chunk ? o->chunk
                : o->backend && o->backend->ops->default_chunk ? o->backend->ops->default_chunk
                                                               : SB_EVAL_DEFAULT_CHUNK;
    if (c < 1 || c > SB_EVAL_MAX_CHUNK)
        return sb_usage_error("chunk %lld is outside [1, %d]", (long long)o->chunk, SB_EVAL_MAX_CHUNK);
    *out = (int)c;
    return SB_OK;
}

int64_t sb_eval_chunk(const sb_eval_opts *o) {
    int c = SB_EVAL_DEFAULT_CHUNK;
    if (chunk_of(o, &c)) sb_clear_error();
    return c;
}

/* Account for scored values nll[i0, i1). */
static void count_scored(eval_ctx *x, const float *nll, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) x->pr.sum_nll += nll[i];
    x->pr.done += i1 - i0;
}

/* ------------------------------------------------------------ exact mode */

/* First stream position a band evaluation scoring stream position `first` computes: L*W
 * earlier (token t's keys at layer l depend on the sinks and tokens [t - l*W, t]), down to a
 * whole chunk so every chunk is the one a whole-stream run computes. 0: from the start. */
static int64_t band_warm_start(const sb_model_config *c, int64_t K, int64_t W, int64_t first, int T) {
    if (W >= SB_POLICY_W_ALL / 2) return 0;
    int64_t halo = W > (INT64_MAX / 4) / (c->n_layers > 0 ? c->n_layers : 1) ? first : (int64_t)c->n_layers * W;
    int64_t s0 = first - halo;
    if (s0 <= max64(K, T)) return 0;
    return s0 / T * T;
}

/* K sinks + W recent over stream[0..N), whose first `P` tokens are a prefix: nll[i] scores
 * stream position P + i for i in [x->a, x->e). */
static int exact_band(eval_ctx *x, const sb_model *m, int64_t K, int64_t W, const int32_t *stream, int64_t N, int64_t P,
                      float *nll) {
    const int T_max = (int)min64(x->chunk, N - 1);
    /* more sinks than tokens: every token is a sink at its true distance (K + W > t), the
     * same as K = N, which keeps the sink store to the stream's size */
    K = min64(K, N);
    const int64_t first = P + x->a, end = P + x->e; /* stream positions scored: [first, end) */
    const int64_t s0 = band_warm_start(&m->cfg, K, W, first, T_max);
    const sb_backend_ops *ops = x->b->ops;
    sb_exact *s;
    int rc = ops->exact_new(x->b, &s, K, W, T_max, sb_exact_band_rows(K, W, T_max, N));
    if (rc) return rc;
    int32_t *targets = malloc_check((size_t)T_max * sizeof(int32_t));
    float *out = malloc_check((size_t)T_max * sizeof(float));
    for (int64_t pos0 = 0; pos0 < end && !rc; pos0 += T_max) {
        if (pos0 >= K && pos0 < s0) {
            /* the sinks are in: jump to the warm-up of the first scored token */
            rc = ops->exact_seek(s, s0);
            pos0 = s0;
            if (rc) break;
        }
        int T = (int)min64(T_max, N - 1 - pos0);
        /* the head runs on the rows a whole-stream run gives it (past the prefix), so a row's
         * logits never depend on where a shard or a resume begins; rows [from, to) are kept */
        int head = (int)min64(max64(P - pos0, 0), T);
        int from = (int)min64(max64(first - pos0, 0), T);
        int to = (int)min64(max64(end - pos0, 0), T);
        if (from >= to) head = T;
        for (int r = head; r < T; r++) targets[r - head] = stream[pos0 + r + 1];
        rc = ops->exact_forward(s, stream + pos0, T, pos0, head, head < T ? targets : NULL, head < T ? out : NULL);
        if (rc || from >= to) continue;
        memcpy(nll + (pos0 + from - P), out + (from - head), (size_t)(to - from) * sizeof(float));
        count_scored(x, nll, pos0 + from - P, pos0 + to - P);
        rc = report(x);
    }
    free(targets);
    free(out);
    ops->exact_free(s);
    return rc;
}

/* recompute:W: x_{t+1} is predicted by a fresh dense pass over x_{max(0,t-W+1)}..x_t at
 * positions 0... For t < W those windows are prefixes of one pass; later ones each need
 * their own pass, of which only the last row is scored. */
static int exact_recompute(eval_ctx *x, int64_t W, const int32_t *tok, int64_t n, float *nll) {
    const sb_backend_ops *ops = x->b->ops;
    const int64_t win = min64(W, n - 1);
    const int T_max = (int)min64(x->chunk, win);
    sb_exact *s;
    int rc = ops->exact_new(x->b, &s, 0, SB_POLICY_W_ALL, T_max, sb_exact_band_rows(0, SB_POLICY_W_ALL, T_max, win));
    if (rc) return rc;
    int32_t *targets = malloc_check((size_t)T_max * sizeof(int32_t));
    float *out = malloc_check((size_t)T_max * sizeof(float));
    /* the prefix windows, when the scored range reaches into them */
    const int64_t pe = min64(x->e, win);
    for (int64_t pos0 = 0; pos0 < pe && x->a < pe && !rc; pos0 += T_max) {
        int T = (int)min64(T_max, win - pos0);
        int from = (int)min64(max64(x->a - pos0, 0), T), to = (int)min64(max64(pe - pos0, 0), T);
        /* the head runs on every row, as in a whole run (see exact_band) */
        int head = from < to ? 0 : T;
        for (int r = head; r < T; r++) targets[r] = tok[pos0 + r + 1];
        rc = ops->exact_forward(s, tok + pos0, T, pos0, head, head < T ? targets : NULL, head < T ? out : NULL);
        if (rc || from >= to) continue;
        memcpy(nll + pos0 + from, out + from, (size_t)(to - from) * sizeof(float));
        count_scored(x, nll, pos0 + from, pos0 + to);
        rc = report(x);
    }
    /* every later prediction is a pass of its own */
    for (int64_t t = max64(W, x->a); t < x->e && !rc; t++) {
        const int32_t *w0 = tok + (t - W + 1);
        ops->exact_reset(s);
        for (int64_t pos0 = 0; pos0 < W && !rc; pos0 += T_max) {
            int T = (int)min64(T_max, W - pos0);
            bool last = pos0 + T == W;
            rc = ops->exact_forward(s, w0 + pos0, T, pos0, last ? T - 1 : T, last ? tok + t + 1 : NULL,
                                    last ? nll + t : NULL);
        }
        if (rc) break;
        count_scored(x, nll, t, t + 1);
        if (x->pr.done % DECODE_PROGRESS_EVERY == 0 || t == x->e - 1) rc = report(x);
    }
    free(targets);
    free(out);
    ops->exact_free(s);
    return rc;
}

/* ------------------------------------------------------------ decode mode */

static int decode_eval(eval_ctx *x, const sb_model *m, const sb_policy_spec *p, const int32_t *tok, int64_t n,
                       float *nll) {
    const int V = m->cfg.vocab_size;
    sb_decoder *d;
    int rc = sb_decoder_new_on(&d, x->b, p, n);
    if (rc) return rc;
    float *logits = malloc_check((size_t)V * sizeof(float));
    for (int64_t i = 0; i < x->a && !rc; i++) rc = sb_decoder_step(d, tok[i], NULL); /* replay, no head */
    for (int64_t i = x->a; i < x->e && !rc; i++) {
        rc = sb_decoder_step(d, tok[i], logits);
        if (rc) break;
        double v = nll_from_logits(logits, V, tok[i + 1]);
        nll[i] = (float)v;
        x->pr.sum_nll += v;
        x->pr.done++;
        if (x->pr.done % DECODE_PROGRESS_EVERY == 0 || i == x->e - 1) rc = report(x);
    }
    free(logits);
    sb_decoder_free(d);
    return rc;
}

/* ------------------------------------------------------------ public */

const char *sb_eval_mode_name(sb_eval_mode m) { return m == SB_MODE_DECODE ? "decode" : "exact"; }

sb_eval_mode sb_eval_mode_used(const sb_policy_spec *p, const sb_model_config *c, sb_eval_mode requested) {
    sb_exact_plan plan;
    if (requested == SB_MODE_EXACT && !sb_policy_exact_plan(p, c, &plan)) return SB_MODE_DECODE;
    return requested;
}

int64_t sb_eval_halo(const sb_model_config *c, const sb_policy_spec *p, int64_t score_from, int64_t chunk) {
    sb_exact_plan plan;
    if (!sb_policy_exact_plan(p, c, &plan)) return -1;
    int T = (int)(chunk > 0 ? chunk : SB_EVAL_DEFAULT_CHUNK);
    if (plan.kind == SB_EXACT_FRESH_WINDOW) return min64(score_from, plan.W);
    if (plan.W >= SB_POLICY_W_ALL / 2) return -1;
    int64_t first = sb_policy_prefix_len(p) + score_from;
    int64_t s0 = band_warm_start(c, plan.K, plan.W, first, T);
    return first - s0;
}

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
    if (o->score_from || o->score_to) {
        int64_t total = n > 1 ? n - 1 : 0;
        if (o->score_from < 0 || o->score_to < o->score_from || o->score_to > total)
            return sb_usage_error("scored range [%lld, %lld) is outside the stream's %lld predictions",
                                  (long long)o->score_from, (long long)o->score_to, (long long)total);
        if (sb_eval_mode_used(p, &m->cfg, o->mode) != SB_MODE_EXACT)
            return sb_usage_error("policy '%s' in decode mode cannot score part of a stream (sharding needs "
                                  "exact mode)",
                                  p->spec);
        sb_exact_plan plan;
        if (sb_policy_exact_plan(p, &m->cfg, &plan) && plan.kind == SB_EXACT_BAND && plan.W >= SB_POLICY_W_ALL / 2 &&
            o->score_from > 0)
            return sb_usage_error("policy '%s' attends to every earlier token: its evaluation cannot be split "
                                  "into shards",
                                  p->spec);
    }
    return SB_OK;
}

static int run(eval_ctx *x, const sb_model *m, const sb_policy_spec *p, const int32_t *tokens, int64_t n, float *nll) {
    if (sb_eval_mode_used(p, &m->cfg, x->o->mode) == SB_MODE_DECODE) return decode_eval(x, m, p, tokens, n, nll);
    sb_exact_plan plan;
    sb_policy_exact_plan(p, &m->cfg, &plan);
    if (plan.kind == SB_EXACT_FRESH_WINDOW) return exact_recompute(x, plan.W, tokens, n, nll);
    /* the prefix (learned <sink>, newline tokens) joins the stream and is not scored */
    int64_t P = sb_policy_prefix_len(p);
    if (P == 0) return exact_band(x, m, plan.K, plan.W, tokens, n, 0, nll);
    size_t bytes;
    if (!sb_mul_size((size_t)(P + n), sizeof(int32_t), &bytes)) return sb_error("stream too long");
    int32_t *stream = malloc(bytes);
    if (!stream) return sb_error("out of memory for a stream of %lld tokens", (long long)(P + n));
    sb_policy_prefix_tokens(p, &m->cfg, stream);
    memcpy(stream + P, tokens, (size_t)n * sizeof(int32_t));
    int rc = exact_band(x, m, plan.K, plan.W, stream, P + n, P, nll);
    free(stream);
    return rc;
}

int sb_eval_stream_nll(const sb_model *m, const sb_policy_spec *p, const int32_t *tokens, int64_t n,
                       const sb_eval_opts *o, float *nll) {
    const sb_eval_opts defaults = {0};
    if (!o) o = &defaults;
    int rc = check_inputs(m, p, tokens, n, o);
    if (rc) return rc;
    eval_ctx x = {.o = o};
    chunk_of(o, &x.chunk);
    const int64_t total = n > 1 ? n - 1 : 0;
    const int64_t a = o->score_from || o->score_to ? o->score_from : 0;
    const int64_t e = o->score_from || o->score_to ? o->score_to : total;
    const int64_t skip = o->resume_from;
    x.pr = (sb_eval_progress){.done = 0, .total = e - a, .sum_nll = 0.0};
    if (skip < 0 || skip > x.pr.total)
        return sb_usage_error("resume point %lld is outside [0, %lld]", (long long)skip, (long long)x.pr.total);
    count_scored(&x, nll, a, a + skip);
    x.a = a + skip;
    x.e = e;
    if (n < 2 || x.a >= x.e) return report(&x);
    x.b = o->backend;
    sb_backend *own = NULL;
    if (!x.b && (rc = sb_backend_open(&own, m, NULL))) return rc;
    if (!x.b) x.b = own;
    if (x.b->m != m) rc = sb_usage_error("the evaluation's backend holds another model");
    else rc = run(&x, m, p, tokens, n, nll);
    sb_backend_close(own);
    return rc;
}

uint64_t sb_eval_memory_bytes(const sb_model_config *c, const sb_policy_spec *p, int64_t n, const sb_eval_opts *o) {
    const sb_eval_opts defaults = {0};
    if (!o) o = &defaults;
    extern const sb_backend_ops sb_backend_cpu_ops;
    const sb_backend_ops *ops = o->backend ? o->backend->ops : &sb_backend_cpu_ops;
    int chunk = SB_EVAL_DEFAULT_CHUNK;
    if (chunk_of(o, &chunk) || n < 0 || !p->def) return UINT64_MAX;
    if (n < 2) return 0;
    if (sb_eval_mode_used(p, c, o->mode) == SB_MODE_DECODE) {
        uint64_t d = sb_decoder_memory_bytes(c, p, n);
        uint64_t extra = (uint64_t)c->vocab_size * sizeof(float);
        return d > UINT64_MAX - extra ? UINT64_MAX : d + extra;
    }
    sb_exact_plan plan;
    sb_policy_exact_plan(p, c, &plan);
    /* the targets and NLL of one chunk, beside the backend's state */
    uint64_t io = (uint64_t)chunk * (sizeof(int32_t) + sizeof(float));
    uint64_t bytes;
    if (plan.kind == SB_EXACT_FRESH_WINDOW) {
        int64_t win = min64(plan.W, n - 1);
        int T = (int)min64(chunk, win);
        bytes = ops->exact_bytes(c, 0, SB_POLICY_W_ALL, T, sb_exact_band_rows(0, SB_POLICY_W_ALL, T, win));
        return bytes == UINT64_MAX ? UINT64_MAX : bytes + io;
    }
    int64_t P = sb_policy_prefix_len(p);
    int64_t N = P + n;
    int T = (int)min64(chunk, N - 1);
    int64_t K = min64(plan.K, N);
    bytes = ops->exact_bytes(c, K, plan.W, T, sb_exact_band_rows(K, plan.W, T, N));
    if (bytes == UINT64_MAX) return UINT64_MAX;
    return bytes + io + (P > 0 ? (uint64_t)N * sizeof(int32_t) : 0);
}
