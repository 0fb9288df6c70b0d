/* sinkbench latency: per-token decode latency and memory of a cache policy (paper Fig. 10).
 *
 * Streaming policies (sinks, window, learned, dense) run through the decoder, one token per
 * forward, as a deployed model does. The cache is filled first (--warmup, by default exactly
 * the policy's capacity), so the measured tokens all run at full cache.
 *
 * recompute:W is measured the way the paper's baseline runs it: every token rebuilds the KV
 * states of the last W tokens with one batched forward (the exact-mode chunk forward) and
 * reads the logits of the last row. Re-feeding the window one token at a time through the
 * decoder (--recompute decode) costs W matrix-vector forwards instead of one matrix-matrix
 * pass and would inflate StreamingLLM's speedup several-fold, so it is opt-in.
 *
 * Token ids are pseudo-random (--seed) unless --data is given: latency does not depend on
 * the text. RSS and cache bytes are sampled every --sample-every tokens, warmup included,
 * so the same run shows memory against tokens processed.
 *
 * Ctrl-C / SIGTERM stop after the current token; with --out the times and samples so far go
 * to FILE.h5.resume and --resume replays the finished tokens untimed (rebuilding the cache),
 * then times the rest: counts, samples and configuration come out as in an unbroken run. */
#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "cli/cli_run.h"
#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/stream_eval.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/rng.h"
#include "eval/study_stats.h"
#include "util/signals.h"

#define CMD "latency"
/* queries per batched forward when recomputing a window */
#define RECOMPUTE_CHUNK 256

typedef enum { RECOMPUTE_BATCHED, RECOMPUTE_DECODE } recompute_mode;

typedef struct {
    cli_run run;             /* the common options and the run's bookkeeping (cli/cli_run.h) */
    const char *policy;
    int64_t tokens, warmup, sample_every, seed;
    bool warmup_set;
    recompute_mode recompute;
} lat_args;

static void lat_usage(FILE *f) {
    fprintf(f,
            "usage: sinkbench latency --model DIR --policy SPEC --tokens N [options]\n"
            "  --policy SPEC         %s\n"
            "  --tokens N            timed tokens (after the warmup)\n"
            "  --warmup N            untimed tokens first (default: fill the cache, i.e. the tokens the\n"
            "                        policy keeps: K+W for sinks, 0 for dense, 1 for recompute)\n"
            "  --sample-every K      RSS / cache-size sample every K tokens (default 64)\n"
            "  --recompute batched|decode  how recompute:W rebuilds its window (default batched:\n"
            "                        one forward over the W tokens, like the paper's baseline)\n"
            "  --data FILE           token ids from .tok/.ids/.txt instead of pseudo-random ones\n"
            "  --seed S              seed of the pseudo-random ids (default 1)\n"
            "  --threads N           BLAS/OpenMP threads\n"
            "  --device DEV          cpu (default), cuda or cuda:N\n"
            "  --compute C           auto (default), f32, bf16 or f16 (GPU arithmetic)\n"
            "  --max-memory SIZE     refuse runs needing more (default: MemAvailable), e.g. 512M\n"
            "  --json                one JSON object on stdout\n"
            "  --out FILE.h5         per-token times and memory samples, written atomically;\n"
            "                        FILE.h5.lock keeps a second run off it; Ctrl-C / SIGTERM save\n"
            "                        the finished part to FILE.h5.resume and exit 130 / 143\n"
            "  --resume              continue from FILE.h5.resume\n",
            sb_policy_syntax_list());
}

static int lat_option(const char *f, const char *v, void *user) {
    lat_args *a = user;
    if (!strcmp(f, "--policy")) a->policy = v;
    else if (!strcmp(f, "--tokens")) return cli_parse_int(f, v, 1, (int64_t)1 << 32, &a->tokens);
    else if (!strcmp(f, "--warmup")) {
        a->warmup_set = true;
        return cli_parse_int(f, v, 0, (int64_t)1 << 32, &a->warmup);
    } else if (!strcmp(f, "--sample-every")) return cli_parse_int(f, v, 1, (int64_t)1 << 32, &a->sample_every);
    else if (!strcmp(f, "--seed")) return cli_parse_int(f, v, 0, INT64_MAX, &a->seed);
    else if (!strcmp(f, "--recompute")) {
        if (!strcmp(v, "batched")) a->recompute = RECOMPUTE_BATCHED;
        else if (!strcmp(v, "decode")) a->recompute = RECOMPUTE_DECODE;
        else return sb_usage_error("--recompute: '%s' is not batched or decode", v);
    } else return CLI_OPT_UNKNOWN;
    return SB_OK;
}

static int lat_check(void *self) {
    const lat_args *a = self;
    if (!a->policy) return sb_usage_error("--policy SPEC is required");
    if (!a->tokens) return sb_usage_error("--tokens N is required");
    return SB_OK;
}

/* A policy whose exact plan is a fresh window per token (recompute:W); its W, else 0. */
static int64_t fresh_window(const sb_policy_spec *p, const sb_model_config *c) {
    sb_exact_plan plan;
    return sb_policy_exact_plan(p, c, &plan) && plan.kind == SB_EXACT_FRESH_WINDOW ? plan.W : 0;
}

static bool batched_recompute(const lat_args *a, const sb_policy_spec *p, const sb_model_config *c) {
    return fresh_window(p, c) > 0 && a->recompute == RECOMPUTE_BATCHED;
}

/* Tokens the cache holds once full; warming up by this many makes every timed token pay the
 * full attention cost. The policy prefix (learned <sink>, newline sinks) is fed by the
 * decoder itself and counts toward it. */
static int64_t default_warmup(const lat_args *a, const sb_policy_spec *p, const sb_model_config *c) {
    if (batched_recompute(a, p, c)) return 1;
    int64_t w = sb_policy_capacity(p) - sb_policy_prefix_len(p);
    return w > 0 ? w : 0;
}

/* The stream: ids from --data, else pseudo-random in [0, vocab). */
static int lat_tokens(const lat_args *a, const sb_model_config *c, int64_t need, int32_t **ids) {
    *ids = NULL;
    if (!a->run.c.data) {
        size_t bytes;
        if (!sb_mul_size((size_t)need, sizeof(int32_t), &bytes) || !(*ids = malloc(bytes)))
            return sb_error("cannot allocate %" PRId64 " token ids", need);
        sb_rng r;
        sb_rng_seed(&r, (uint64_t)a->seed);
        for (int64_t i = 0; i < need; i++) (*ids)[i] = (int32_t)sb_rng_below(&r, (uint64_t)c->vocab_size);
        return SB_OK;
    }
    int64_t n = 0;
    int rc = cli_load_stream(a->run.c.model_dir, a->run.c.data, c->vocab_size, need, ids, &n, NULL);
    if (rc) return rc;
    if (n < need) {
        free(*ids);
        *ids = NULL;
        return sb_error("%s: the run needs %" PRId64 " tokens, the file has %" PRId64, a->run.c.data, need, n);
    }
    return SB_OK;
}

/* Memory samples (RSS and cache bytes against tokens fed), grown as needed. */
typedef struct {
    int64_t n, cap;
    int64_t *tokens, *cache_bytes;
    double *rss_mb;
} mem_samples;

static void samples_push(mem_samples *s, int64_t tokens, int64_t cache_bytes) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->tokens = realloc(s->tokens, (size_t)s->cap * sizeof *s->tokens);
        s->cache_bytes = realloc(s->cache_bytes, (size_t)s->cap * sizeof *s->cache_bytes);
        s->rss_mb = realloc(s->rss_mb, (size_t)s->cap * sizeof *s->rss_mb);
        if (!s->tokens || !s->cache_bytes || !s->rss_mb) {
            fprintf(stderr, "sinkbench latency: out of memory for memory samples\n");
            exit(1);
        }
    }
    s->tokens[s->n] = tokens;
    s->cache_bytes[s->n] = cache_bytes;
    s->rss_mb[s->n] = sb_rss_mb();
    s->n++;
}

static void samples_free(mem_samples *s) {
    free(s->tokens);
    free(s->cache_bytes);
    free(s->rss_mb);
}

typedef struct {
    sb_policy_spec policy;
    int64_t warmup, tokens;
    double load_s, wall_s;
    double mean_ms, p50_ms, p90_ms, p99_ms, min_ms, max_ms;
    double peak_rss_mb, weights_mb;
    int64_t cache_bytes, cache_len, kv_bytes; /* allocated cache, tokens held, their keys + values */
    int64_t fresh_w;          /* W of a fresh-window policy (recompute:W), else 0 */
    const char *recompute;    /* how it rebuilds: batched, decode, or n/a */
    bool batched;             /* recompute:W run as one forward over its window */
    char device[32];
    sb_compute compute;
} lat_result;

/* The command's state; a comes first because the option hooks, above, take it as lat_args. */
typedef struct {
    lat_args a;
    lat_result r;
    sb_model_config cfg;
    int64_t steps, need;
    int32_t *ids;
    double *step_ms;
    mem_samples ms;
    sb_backend *backend;
} lat_cmd;

/* Timed loop through the decoder. step_ms[warmup + tokens] receives every step's time. */
/* Keys and values of one cached token over all layers. */
static int64_t kv_bytes_per_token(const sb_model_config *c) {
    return 2 * (int64_t)c->n_layers * c->n_kv_heads * c->head_dim * (int64_t)sizeof(float);
}

/* Steps [*done, total) are timed; steps before *done (a resume) are replayed untimed to
 * rebuild the cache. A caught signal stops before the next step, *done = steps finished. */
static int run_decoder(sb_backend *b, const sb_policy_spec *p, const int32_t *ids, int64_t total,
                       int64_t sample_every, double *step_ms, mem_samples *ms, lat_result *r, int64_t *done) {
    const sb_model *m = b->m;
    sb_decoder *d;
    /* an unbounded (dense) cache gets no capacity hint: it then grows the way a deployed one would */
    int rc = sb_decoder_new_on(&d, b, p, sb_policy_capacity(p) == 0 ? 0 : total);
    if (rc) return rc;
    const int64_t per_token = kv_bytes_per_token(&m->cfg);
    float *logits = malloc_check((size_t)m->cfg.vocab_size * sizeof(float));
    int64_t start = *done;
    if (start == 0) samples_push(ms, 0, sb_decoder_cache_len(d) * per_token);
    for (int64_t i = 0; i < start && !rc; i++) rc = sb_decoder_step(d, ids[i], logits);
    for (int64_t i = start; i < total && !rc; i++) {
        if (sb_signal_poll()) break;
        *done = i + 1;
        double t0 = sb_now();
        rc = sb_decoder_step(d, ids[i], logits);
        step_ms[i] = 1e3 * (sb_now() - t0);
        if ((i + 1) % sample_every == 0 || i + 1 == total) samples_push(ms, i + 1, sb_decoder_cache_len(d) * per_token);
    }
    r->cache_bytes = (int64_t)sb_decoder_cache_bytes(d);
    r->cache_len = sb_decoder_cache_len(d);
    r->kv_bytes = r->cache_len * per_token;
    free(logits);
    sb_decoder_free(d);
    return rc;
}

/* recompute:W, batched: step i predicts from a fresh dense pass over ids[i..i+W). */
/* Each step is a fresh pass: a resume just starts at *done. */
static int run_recompute_batched(sb_backend *b, int64_t W, const int32_t *ids, int64_t total,
                                 int64_t sample_every, double *step_ms, mem_samples *ms, lat_result *r,
                                 int64_t *done) {
    const sb_model *m = b->m;
    const sb_backend_ops *ops = b->ops;
    int T_max = (int)(W < RECOMPUTE_CHUNK ? W : RECOMPUTE_CHUNK);
    const int64_t band = sb_exact_band_rows(0, SB_POLICY_W_ALL, T_max, W);
    sb_exact *s;
    int rc = ops->exact_new(b, &s, 0, SB_POLICY_W_ALL, T_max, band);
    if (rc) return rc;
    float *logits = malloc_check((size_t)m->cfg.vocab_size * sizeof(float));
    /* the part of the state that plays the cache: keys and values of the W window tokens */
    int64_t kv = W * kv_bytes_per_token(&m->cfg);
    if (*done == 0) samples_push(ms, 0, kv);
    for (int64_t i = *done; i < total && !rc; i++) {
        if (sb_signal_poll()) break;
        *done = i + 1;
        double t0 = sb_now();
        ops->exact_reset(s);
        for (int64_t pos0 = 0; pos0 < W && !rc; pos0 += T_max) {
            int T = (int)(W - pos0 < T_max ? W - pos0 : T_max);
            bool last = pos0 + T == W;
            rc = ops->exact_forward(s, ids + i + pos0, T, pos0, last ? T - 1 : T, NULL, last ? logits : NULL);
        }
        step_ms[i] = 1e3 * (sb_now() - t0);
        if ((i + 1) % sample_every == 0 || i + 1 == total) samples_push(ms, i + 1, kv);
    }
    r->cache_bytes = (int64_t)ops->exact_bytes(&m->cfg, 0, SB_POLICY_W_ALL, T_max, band);
    r->cache_len = W;
    r->kv_bytes = kv;
    free(logits);
    ops->exact_free(s);
    return rc;
}

static void lat_stats(lat_result *r, const double *ms, int64_t n) {
    r->mean_ms = sb_stats_mean(ms, (size_t)n);
    r->p50_ms = sb_stats_percentile(ms, (size_t)n, 50);
    r->p90_ms = sb_stats_percentile(ms, (size_t)n, 90);
    r->p99_ms = sb_stats_percentile(ms, (size_t)n, 99);
    r->min_ms = sb_stats_percentile(ms, (size_t)n, 0);
    r->max_ms = sb_stats_percentile(ms, (size_t)n, 100);
}

static const char *recompute_name(const lat_args *a, const sb_policy_spec *p, const sb_model_config *c) {
    if (!fresh_window(p, c)) return "n/a";
    return a->recompute == RECOMPUTE_BATCHED ? "batched" : "decode";
}

static int lat_write_h5(void *self, sb_h5 *f) {
    const lat_cmd *l = self;
    const lat_args *a = &l->a;
    const lat_result *r = &l->r;
    const double *step_ms = l->step_ms;
    const mem_samples *ms = &l->ms;
    int rc = sb_h5_write_f64(f, "step_ms", step_ms + r->warmup, r->tokens);
    rc = rc ? rc : sb_h5_attr_str(f, "step_ms", "unit", "milliseconds per token (wall clock)");
    rc = rc ? rc : sb_h5_write_f64(f, "warmup_ms", step_ms, r->warmup);
    rc = rc ? rc : sb_h5_attr_str(f, "warmup_ms", "meaning", "untimed warmup steps (cache filling), still recorded");
    rc = rc ? rc : sb_h5_write_i64(f, "sample_tokens", ms->tokens, ms->n);
    rc = rc ? rc : sb_h5_write_f64(f, "sample_rss_mb", ms->rss_mb, ms->n);
    rc = rc ? rc : sb_h5_write_i64(f, "sample_cache_bytes", ms->cache_bytes, ms->n);
    rc = rc ? rc : sb_h5_attr_str(f, "sample_cache_bytes", "meaning", "bytes of keys and values of the tokens in the cache");
    rc = rc ? rc : sb_h5_attr_str(f, "sample_tokens", "meaning", "tokens fed (warmup included) at each memory sample");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "command", "sinkbench latency");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "policy", r->policy.spec);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "recompute", r->recompute);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "device", r->device);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "compute", sb_compute_name(r->compute));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->run.c.model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", a->run.model_sha256);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->run.c.data ? a->run.c.data : "pseudo-random ids");
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "seed", a->seed);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens", r->tokens);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "warmup", r->warmup);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads", a->run.threads);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "mean_ms", r->mean_ms);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "p50_ms", r->p50_ms);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "p90_ms", r->p90_ms);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "p99_ms", r->p99_ms);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "min_ms", r->min_ms);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "max_ms", r->max_ms);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "peak_rss_mb", r->peak_rss_mb);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "weights_mb", r->weights_mb);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "cache_bytes", r->cache_bytes);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "kv_bytes", r->kv_bytes);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "cache_len", r->cache_len);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "load_s", r->load_s);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "wall_s", r->wall_s);
    return rc;
}

static cJSON *lat_json(void *self) {
    const lat_cmd *l = self;
    const lat_args *a = &l->a;
    const lat_result *r = &l->r;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy", r->policy.spec);
    cJSON_AddStringToObject(o, "recompute", r->recompute);
    cJSON_AddStringToObject(o, "device", r->device);
    cJSON_AddStringToObject(o, "compute", sb_compute_name(r->compute));
    cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(o, "warmup", (double)r->warmup);
    cJSON_AddNumberToObject(o, "mean_ms", r->mean_ms);
    cJSON_AddNumberToObject(o, "p50_ms", r->p50_ms);
    cJSON_AddNumberToObject(o, "p90_ms", r->p90_ms);
    cJSON_AddNumberToObject(o, "p99_ms", r->p99_ms);
    cJSON_AddNumberToObject(o, "min_ms", r->min_ms);
    cJSON_AddNumberToObject(o, "max_ms", r->max_ms);
    cJSON_AddNumberToObject(o, "peak_rss_mb", r->peak_rss_mb);
    cJSON_AddNumberToObject(o, "weights_mb", r->weights_mb);
    cJSON_AddNumberToObject(o, "cache_bytes", (double)r->cache_bytes);
    cJSON_AddNumberToObject(o, "kv_bytes", (double)r->kv_bytes);
    cJSON_AddNumberToObject(o, "cache_len", (double)r->cache_len);
    cJSON_AddNumberToObject(o, "threads", a->run.threads);
    cJSON_AddNumberToObject(o, "load_s", r->load_s);
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cli_run_json_inputs(&a->run, o, false);
    return o;
}

static void lat_summary(void *self) {
    const lat_cmd *l = self;
    const lat_args *a = &l->a;
    const lat_result *r = &l->r;
    printf("policy %s%s%s: %" PRId64 " timed tokens after %" PRId64 " warmup, cache %" PRId64 " tokens (keys+values %.2f MiB)\n",
           r->policy.spec, r->fresh_w ? ", recompute " : "", r->fresh_w ? r->recompute : "", r->tokens, r->warmup,
           r->cache_len, (double)r->kv_bytes / (1024.0 * 1024.0));
    printf("per token: mean %.3f ms, p50 %.3f ms, p99 %.3f ms (min %.3f, max %.3f)\n", r->mean_ms, r->p50_ms,
           r->p99_ms, r->min_ms, r->max_ms);
    printf("peak RSS %.1f MiB (weights %.1f MiB), %d threads, git %s\n", r->peak_rss_mb, r->weights_mb, a->run.threads,
           a->run.prov.git_rev);
}

/* Everything the counts and samples depend on; a resume under another hash is refused. */
static int lat_inputs_hash(void *self, sb_resume_hash *h) {
    lat_cmd *l = self;
    const lat_args *a = &l->a;
    const lat_result *r = &l->r;
    sb_resume_hash_str(h, "model_sha256", a->run.model_sha256);
    sb_resume_hash_str(h, "data_sha256", a->run.c.data ? a->run.data_sha256 : "pseudo-random");
    sb_resume_hash_str(h, "policy", r->policy.spec);
    sb_resume_hash_str(h, "recompute", r->recompute);
    if (strcmp(r->device, "cpu")) sb_resume_hash_str(h, "device", r->device);
    sb_resume_hash_i64(h, "seed", a->seed);
    sb_resume_hash_i64(h, "warmup", r->warmup);
    sb_resume_hash_i64(h, "tokens", r->tokens);
    sb_resume_hash_i64(h, "sample_every", a->sample_every);
    sb_resume_hash_i64(h, "threads", a->run.threads);
    return SB_OK;
}

/* Append bytes at *p; memcpy from a NULL source is undefined even for 0 bytes (no samples). */
static void put_bytes(char **p, const void *src, size_t bytes) {
    if (!bytes) return;
    memcpy(*p, src, bytes);
    *p += bytes;
}

/* Payload: int64 done, double step_ms[done], int64 n_samples, then the samples' tokens,
 * cache bytes and RSS, n_samples each. */
static int lat_save(void *self, char **payload, size_t *n) {
    const lat_cmd *l = self;
    const mem_samples *ms = &l->ms;
    int64_t done = l->a.run.done;
    *n = 2 * sizeof(int64_t) + (size_t)done * sizeof(double) + (size_t)ms->n * 3 * sizeof(int64_t);
    char *buf = *payload = malloc(*n), *p = buf;
    if (!buf) return sb_error("%s: out of memory for the resume state", l->a.run.state_path);
    put_bytes(&p, &done, sizeof done);
    put_bytes(&p, l->step_ms, (size_t)done * sizeof(double));
    put_bytes(&p, &ms->n, sizeof ms->n);
    put_bytes(&p, ms->tokens, (size_t)ms->n * sizeof(int64_t));
    put_bytes(&p, ms->cache_bytes, (size_t)ms->n * sizeof(int64_t));
    put_bytes(&p, ms->rss_mb, (size_t)ms->n * sizeof(double));
    return SB_OK;
}

static int lat_restore(void *self, const char *buf, size_t n) {
    lat_cmd *l = self;
    int64_t steps = l->steps;
    const char *p = buf, *end = p + n;
    int64_t d = -1, k = -1;
    if (n >= sizeof d) memcpy(&d, p, sizeof d);
    p += sizeof d;
    bool ok = d >= 0 && d <= steps && (size_t)(end - p) >= (size_t)d * sizeof(double) + sizeof k;
    if (ok) {
        memcpy(l->step_ms, p, (size_t)d * sizeof(double));
        p += (size_t)d * sizeof(double);
        memcpy(&k, p, sizeof k);
        p += sizeof k;
        /* samples: one at 0, one per sample_every and the last: never more than steps + 1 */
        ok = k >= 0 && k <= steps + 1 && (size_t)(end - p) == (size_t)k * 3 * sizeof(int64_t);
    }
    if (!ok)
        return sb_error("%s: resume state does not match this run (%" PRId64 " steps)", l->a.run.state_path, steps);
    for (int64_t i = 0; i < k; i++) {
        int64_t t, c;
        double rss;
        memcpy(&t, p + i * sizeof t, sizeof t);
        memcpy(&c, p + (k + i) * sizeof c, sizeof c);
        memcpy(&rss, p + (2 * k + i) * sizeof rss, sizeof rss);
        samples_push(&l->ms, t, c);
        l->ms.rss_mb[l->ms.n - 1] = rss;
    }
    l->a.run.done = d;
    return SB_OK;
}

static int lat_prepare(void *self) {
    lat_cmd *l = self;
    lat_args *a = &l->a;
    lat_result *r = &l->r;
    int rc;
    if ((rc = cli_load_model_config(a->run.c.model_dir, &l->cfg))) return rc;
    if ((rc = cli_parse_policy(a->policy, &l->cfg, &r->policy))) return rc;
    r->warmup = a->warmup_set ? a->warmup : default_warmup(a, &r->policy, &l->cfg);
    r->fresh_w = fresh_window(&r->policy, &l->cfg);
    r->recompute = recompute_name(a, &r->policy, &l->cfg);
    r->batched = batched_recompute(a, &r->policy, &l->cfg);
    r->tokens = a->tokens;
    int64_t steps = l->steps = a->run.total = r->warmup + r->tokens;
    /* a batched recompute step reads its whole window from the stream */
    l->need = steps + (r->batched ? r->fresh_w - 1 : 0);

    size_t n_params = sb_model_param_count(&l->cfg);
    uint64_t run_bytes;
    if (r->batched) {
        const sb_eval_opts eo = {.chunk = RECOMPUTE_CHUNK};
        run_bytes = sb_eval_memory_bytes(&l->cfg, &r->policy, r->fresh_w + 1, &eo);
    } else {
        run_bytes = sb_decoder_memory_bytes(&l->cfg, &r->policy, steps);
    }
    const sb_mem_part parts[3] = {
        {"weights", n_params > UINT64_MAX / sizeof(float) ? UINT64_MAX : (uint64_t)n_params * sizeof(float)},
        {r->batched ? "recompute pass (KV, activations, logits)" : "decoder (KV cache, logits)",
         run_bytes},
        {"token ids and step times", (uint64_t)l->need * sizeof(int32_t) + (uint64_t)steps * sizeof(double)},
    };
    memcpy(a->run.mem, parts, sizeof parts);
    a->run.n_mem = 3;
    snprintf(a->run.mem_what, sizeof a->run.mem_what, "policy %s over %" PRId64 " tokens", r->policy.spec, steps);
    return SB_OK;
}

static int lat_open(void *self) {
    lat_cmd *l = self;
    return lat_tokens(&l->a, &l->cfg, l->need, &l->ids);
}

static int lat_load(void *self) {
    lat_cmd *l = self;
    lat_args *a = &l->a;
    lat_result *r = &l->r;
    if (!(l->step_ms = malloc((size_t)l->steps * sizeof *l->step_ms)))
        return sb_error("cannot allocate %" PRId64 " step times", l->steps);
    r->load_s = a->run.model_load_s;
    r->weights_mb = (double)a->run.model.n_params * sizeof(float) / (1024.0 * 1024.0);
    int rc = cli_open_backend(&a->run.c, &a->run.model, &l->backend);
    if (rc) return rc;
    snprintf(r->device, sizeof r->device, "%s", l->backend->device);
    r->compute = l->backend->compute;
    return SB_OK;
}

static int lat_run(void *self) {
    lat_cmd *l = self;
    lat_args *a = &l->a;
    lat_result *r = &l->r;
    double t0 = sb_now();
    int rc;
    if (r->batched)
        rc = run_recompute_batched(l->backend, r->fresh_w, l->ids, l->steps, a->sample_every, l->step_ms, &l->ms, r,
                                   &a->run.done);
    else
        rc = run_decoder(l->backend, &r->policy, l->ids, l->steps, a->sample_every, l->step_ms, &l->ms, r,
                         &a->run.done);
    r->wall_s = sb_now() - t0;
    return rc;
}

static int lat_finish(void *self) {
    lat_cmd *l = self;
    lat_result *r = &l->r;
    r->peak_rss_mb = sb_peak_rss_mb();
    lat_stats(r, l->step_ms + r->warmup, r->tokens);
    return SB_OK;
}

static void lat_cleanup(void *self) {
    lat_cmd *l = self;
    samples_free(&l->ms);
    free(l->step_ms);
    free(l->ids);
    sb_backend_close(l->backend);
}

static const cli_command lat_command = {
    /* hashing the model reads every weight: after the timing, so it cannot disturb it */
    .name = CMD, .model = true, .hash_model_late = true, .usage = lat_usage, .option = lat_option, .check = lat_check,
    .prepare = lat_prepare, .open = lat_open, .load = lat_load, .run = lat_run, .finish = lat_finish,
    .cleanup = lat_cleanup,
    /* --resume replays the timed steps untimed and keeps their times and samples */
    .unit = "tokens", .inputs_hash = lat_inputs_hash, .save = lat_save, .restore = lat_restore,
    .write_h5 = lat_write_h5, .json = lat_json, .summary = lat_summary,
};

int cmd_latency(int argc, char **argv) {
    lat_cmd l = {.a = {.sample_every = 64, .seed = 1}};
    return cli_run_main(&lat_command, &l, &l.a.run, argc, argv);
}
