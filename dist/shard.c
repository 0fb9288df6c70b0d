#include "dist/shard.h"

#include <string.h>

#include "engine/common.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t round_up(int64_t x, int64_t t) { return (x + t - 1) / t * t; }

int sb_shard_check(const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode) {
    if (mode == SB_MODE_DECODE)
        return sb_usage_error("--mode decode cannot be split over MPI ranks: a shard starts from its halo, which "
                              "needs exact mode (the default)");
    if (sb_eval_mode_used(p, c, mode) != SB_MODE_EXACT)
        return sb_usage_error("policy '%s' has no exact plan (it runs in decode mode, one token after another): it "
                              "cannot be split over MPI ranks; run it as one process",
                              p->spec);
    if (sb_eval_halo(c, p, 0, SB_EVAL_DEFAULT_CHUNK) < 0)
        return sb_usage_error("policy '%s' attends to every earlier token: one stream cannot be split over MPI "
                              "ranks (no halo is enough); run it as one process",
                              p->spec);
    return SB_OK;
}

/* Multiply-adds of one token through every layer with `ctx` keys in its attention. */
static double token_cost(const sb_model_config *c, double ctx) {
    double D = c->dim, q = (double)c->n_heads * c->head_dim, kv = (double)c->n_kv_heads * c->head_dim;
    double mlp = (c->mlp == SB_MLP_SWIGLU ? 3.0 : 2.0) * D * c->ffn_dim;
    return (double)c->n_layers * (D * q + 2.0 * D * kv + q * D + mlp + 2.0 * q * ctx);
}
static double head_cost(const sb_model_config *c) { return (double)c->vocab_size * c->dim; }

static int64_t chunk_of(int64_t chunk) { return chunk > 0 ? chunk : SB_EVAL_DEFAULT_CHUNK; }

void sb_shard_measure(const sb_model_config *c, const sb_policy_spec *p, int64_t n_pred, int64_t chunk, int64_t from,
                      int64_t to, sb_shard *out) {
    memset(out, 0, sizeof *out);
    out->from = from;
    out->to = to;
    if (from >= to) return;
    sb_exact_plan plan;
    if (!sb_policy_exact_plan(p, c, &plan)) return;
    const double scored = (double)(to - from);
    if (plan.kind == SB_EXACT_FRESH_WINDOW) {
        /* the windows shorter than W are prefixes of one pass; every later prediction is a
         * pass of W tokens of its own (engine/stream_eval.c exact_recompute) */
        const int64_t W = plan.W, win = min64(W, n_pred), T = min64(chunk_of(chunk), win);
        const int64_t pe = min64(to, win), t0 = max64(W, from);
        int64_t pass = from < pe ? min64(round_up(pe, T), win) : 0;
        int64_t each = to > t0 ? (to - t0) : 0;
        out->halo = sb_eval_halo(c, p, from, T);
        out->forwarded = pass + each * W;
        out->cost = (double)pass * token_cost(c, (double)win / 2) + (double)each * W * token_cost(c, (double)W / 2) +
                    scored * head_cost(c);
        return;
    }
    const int64_t P = sb_policy_prefix_len(p), N = P + n_pred + 1, T = min64(chunk_of(chunk), N - 1);
    const int64_t first = P + from, end = P + to;
    out->halo = sb_eval_halo(c, p, from, T);
    const int64_t s0 = first - out->halo;
    /* the chunks exact_band computes: from 0 when the halo reaches the start; else the
     * sinks' chunks, then from s0 (a multiple of T) to the chunk holding the last scored row */
    if (s0 <= 0) out->forwarded = min64(round_up(end, T), N - 1);
    else {
        out->sink_tokens = round_up(min64(plan.K, N), T);
        out->forwarded = out->sink_tokens + min64(s0 + round_up(end - s0, T), N - 1) - s0;
    }
    double ctx = (double)min64(plan.K + plan.W, N);
    out->cost = (double)out->forwarded * token_cost(c, ctx) + scored * head_cost(c);
}

/* The j-th cut of the grid: the predictions b in (0, n_pred) with P + b on the chunk grid,
 * then n_pred itself. */
typedef struct {
    int64_t P, T, n_pred, k0, G;
} grid;

static int64_t cut(const grid *g, int64_t j) { return j < g->G ? (g->k0 + j) * g->T - g->P : g->n_pred; }

/* Greedy cuts under a cost ceiling w: each shard reaches as far as w allows. True when the
 * last shard fits too. */
static bool greedy(const sb_model_config *c, const sb_policy_spec *p, int64_t chunk, const grid *g, int ranks, double w,
                   sb_shard *out) {
    int64_t from = 0, j0 = 0;
    for (int r = 0; r < ranks - 1; r++) {
        while (j0 <= g->G && cut(g, j0) <= from) j0++;
        int64_t lo = j0, hi = g->G, best = -1; /* the largest j with cost(from, cut(j)) <= w */
        while (lo <= hi) {
            int64_t mid = lo + (hi - lo) / 2;
            sb_shard s;
            sb_shard_measure(c, p, g->n_pred, chunk, from, cut(g, mid), &s);
            if (s.cost <= w) best = mid, lo = mid + 1;
            else hi = mid - 1;
        }
        int64_t to = best >= 0 ? cut(g, best) : from;
        sb_shard_measure(c, p, g->n_pred, chunk, from, to, &out[r]);
        from = to;
    }
    sb_shard_measure(c, p, g->n_pred, chunk, from, g->n_pred, &out[ranks - 1]);
    return out[ranks - 1].cost <= w;
}

int sb_shard_plan(const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode, int64_t n_pred, int64_t chunk,
                  int ranks, sb_shard *out) {
    if (ranks < 1) return sb_usage_error("%d ranks: at least one is needed", ranks);
    if (n_pred < 1) return sb_usage_error("a stream of %lld predictions cannot be sharded", (long long)n_pred);
    int rc = sb_shard_check(c, p, mode);
    if (rc) return rc;
    sb_exact_plan plan;
    sb_policy_exact_plan(p, c, &plan);
    grid g = {.n_pred = n_pred};
    if (plan.kind == SB_EXACT_FRESH_WINDOW) {
        /* every prediction past W is a pass of its own: any cut is as good, the grid is 1 */
        g.P = 0;
        g.T = 1;
    } else {
        g.P = sb_policy_prefix_len(p);
        g.T = min64(chunk_of(chunk), g.P + n_pred);
    }
    g.k0 = g.P / g.T + 1;
    int64_t k1 = (g.P + n_pred - 1) / g.T; /* the last k with k*T - P < n_pred */
    g.G = k1 >= g.k0 ? k1 - g.k0 + 1 : 0;
    if (ranks == 1) {
        sb_shard_measure(c, p, n_pred, chunk, 0, n_pred, &out[0]);
        return SB_OK;
    }
    sb_shard whole;
    sb_shard_measure(c, p, n_pred, chunk, 0, n_pred, &whole);
    /* the smallest ceiling whose greedy cuts cover the stream */
    double lo = whole.cost / ranks, hi = whole.cost;
    for (int it = 0; it < 64 && hi - lo > 1e-9 * hi; it++) {
        double mid = lo + (hi - lo) / 2;
        if (greedy(c, p, chunk, &g, ranks, mid, out)) hi = mid;
        else lo = mid;
    }
    greedy(c, p, chunk, &g, ranks, hi, out);
    return SB_OK;
}

int sb_shard_plan_equal(const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode, int64_t n_pred,
                        int64_t chunk, int ranks, sb_shard *out) {
    if (ranks < 1) return sb_usage_error("%d ranks: at least one is needed", ranks);
    if (n_pred < 1) return sb_usage_error("a stream of %lld predictions cannot be sharded", (long long)n_pred);
    int rc = sb_shard_check(c, p, mode);
    if (rc) return rc;
    sb_exact_plan plan;
    sb_policy_exact_plan(p, c, &plan);
    const int64_t P = plan.kind == SB_EXACT_FRESH_WINDOW ? 0 : sb_policy_prefix_len(p);
    const int64_t T = plan.kind == SB_EXACT_FRESH_WINDOW ? 1 : min64(chunk_of(chunk), P + n_pred);
    int64_t from = 0;
    for (int r = 0; r < ranks; r++) {
        int64_t to = r == ranks - 1 ? n_pred : n_pred * (r + 1) / ranks;
        to = (P + to + T / 2) / T * T - P; /* the nearest grid point */
        to = max64(from, min64(to, n_pred));
        if (r == ranks - 1) to = n_pred;
        sb_shard_measure(c, p, n_pred, chunk, from, to, &out[r]);
        from = to;
    }
    return SB_OK;
}

double sb_shard_overhead(const sb_model_config *c, const sb_policy_spec *p, int64_t n_pred, int64_t chunk,
                         const sb_shard *s, int ranks) {
    sb_shard whole;
    sb_shard_measure(c, p, n_pred, chunk, 0, n_pred, &whole);
    double sum = 0;
    for (int r = 0; r < ranks; r++) sum += (double)s[r].forwarded;
    return sum > 0 ? 1.0 - (double)whole.forwarded / sum : 0.0;
}
