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
 * so the same run shows memory against tokens processed. */
#include <cblas.h>
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "datasets/tokens.h"
#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/forward.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/rng.h"
#include "eval/h5.h"
#include "eval/provenance.h"
#include "eval/study_stats.h"
#include "tokenizer/tokenizer.h"

#define CMD "latency"
/* queries per batched forward when recomputing a window */
#define RECOMPUTE_CHUNK 256

typedef enum { RECOMPUTE_BATCHED, RECOMPUTE_DECODE } recompute_mode;

typedef struct {
    const char *model_dir, *policy, *out, *data;
    int64_t tokens, warmup, sample_every, threads, seed;
    bool warmup_set, json;
    recompute_mode recompute;
} lat_args;

static void lat_usage(FILE *f) {
    fprintf(f,
            "usage: sinkbench latency --model DIR --policy SPEC --tokens N [options]\n"
            "  --policy SPEC         dense | window:W | sinks:K:W[:newline] | learned:W | recompute:W\n"
            "  --tokens N            timed tokens (after the warmup)\n"
            "  --warmup N            untimed tokens first (default: fill the cache, i.e. K+W for\n"
            "                        sinks/window/learned, 0 for dense, 1 for recompute)\n"
            "  --sample-every K      RSS / cache-size sample every K tokens (default 64)\n"
            "  --recompute batched|decode  how recompute:W rebuilds its window (default batched:\n"
            "                        one forward over the W tokens, like the paper's baseline)\n"
            "  --data FILE           token ids from .tok/.ids/.txt instead of pseudo-random ones\n"
            "  --seed S              seed of the pseudo-random ids (default 1)\n"
            "  --threads N           BLAS/OpenMP threads\n"
            "  --json                one JSON object on stdout\n"
            "  --out FILE.h5         per-token times and memory samples, written atomically\n");
}

static int lat_parse_args(int argc, char **argv, lat_args *a) {
    memset(a, 0, sizeof *a);
    a->sample_every = 64;
    a->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = SB_OK;
        if (!strcmp(f, "--json")) {
            a->json = true;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            lat_usage(stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) != 0) return sb_usage_error("unexpected argument '%s'", f);
        if (!v) return sb_usage_error("%s needs a value", f);
        i++;
        if (!strcmp(f, "--model")) a->model_dir = v;
        else if (!strcmp(f, "--policy")) a->policy = v;
        else if (!strcmp(f, "--out")) a->out = v;
        else if (!strcmp(f, "--data")) a->data = v;
        else if (!strcmp(f, "--tokens")) rc = cli_parse_int(f, v, 1, (int64_t)1 << 32, &a->tokens);
        else if (!strcmp(f, "--warmup")) {
            rc = cli_parse_int(f, v, 0, (int64_t)1 << 32, &a->warmup);
            a->warmup_set = true;
        } else if (!strcmp(f, "--sample-every")) rc = cli_parse_int(f, v, 1, (int64_t)1 << 32, &a->sample_every);
        else if (!strcmp(f, "--threads")) rc = cli_parse_int(f, v, 1, 4096, &a->threads);
        else if (!strcmp(f, "--seed")) rc = cli_parse_int(f, v, 0, INT64_MAX, &a->seed);
        else if (!strcmp(f, "--recompute")) {
            if (!strcmp(v, "batched")) a->recompute = RECOMPUTE_BATCHED;
            else if (!strcmp(v, "decode")) a->recompute = RECOMPUTE_DECODE;
            else return sb_usage_error("--recompute: '%s' is not batched or decode", v);
        } else return sb_usage_error("unknown option '%s' (see sinkbench latency --help)", f);
        if (rc) return rc;
    }
    if (!a->model_dir) return sb_usage_error("--model DIR is required");
    if (!a->policy) return sb_usage_error("--policy SPEC is required");
    if (!a->tokens) return sb_usage_error("--tokens N is required");
    return SB_OK;
}

static bool batched_recompute(const lat_args *a, const sb_policy_spec *p) {
    return p->kind == SB_POLICY_RECOMPUTE && a->recompute == RECOMPUTE_BATCHED;
}

/* Tokens the cache holds once full; warming up by this many makes every timed token pay the
 * full attention cost. The policy prefix (learned <sink>, newline sinks) is fed by the
 * decoder itself and counts toward it. */
static int64_t default_warmup(const lat_args *a, const sb_policy_spec *p) {
    if (batched_recompute(a, p)) return 1;
    if (p->kind == SB_POLICY_DENSE) return 0;
    if (p->kind == SB_POLICY_RECOMPUTE) return p->window > 1 ? p->window - 1 : 0;
    int64_t w = p->n_sinks + p->window - sb_policy_prefix_len(p);
    return w > 0 ? w : 0;
}

/* The stream: ids from --data, else pseudo-random in [0, vocab). */
static int lat_tokens(const lat_args *a, const sb_model_config *c, int64_t need, int32_t **ids) {
    *ids = NULL;
    if (!a->data) {
        size_t bytes;
        if (!sb_mul_size((size_t)need, sizeof(int32_t), &bytes) || !(*ids = malloc(bytes)))
            return sb_error("cannot allocate %" PRId64 " token ids", need);
        sb_rng r;
        sb_rng_seed(&r, (uint64_t)a->seed);
        for (int64_t i = 0; i < need; i++) (*ids)[i] = (int32_t)sb_rng_below(&r, (uint64_t)c->vocab_size);
        return SB_OK;
    }
    int64_t n = 0;
    int rc;
    size_t len = strlen(a->data);
    if (len >= 4 && !strcmp(a->data + len - 4, ".txt")) {
        char tok_path[4096];
        snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", a->model_dir);
        sb_tokenizer *tok;
        if ((rc = sb_tokenizer_load(&tok, tok_path))) return rc;
        rc = sb_tokens_load_text(a->data, tok, c->vocab_size, need, ids, &n);
        sb_tokenizer_free(tok);
    } else {
        rc = sb_tokens_load(a->data, c->vocab_size, need, ids, &n);
    }
    if (rc) return rc;
    if (n < need) {
        free(*ids);
        *ids = NULL;
        return sb_error("%s: the run needs %" PRId64 " tokens, the file has %" PRId64, a->data, need, n);
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
    int threads;
    char model_hash[65];
    sb_provenance prov;
} lat_result;

/* Timed loop through the decoder. step_ms[warmup + tokens] receives every step's time. */
/* Keys and values of one cached token over all layers. */
static int64_t kv_bytes_per_token(const sb_model_config *c) {
    return 2 * (int64_t)c->n_layers * c->n_kv_heads * c->head_dim * (int64_t)sizeof(float);
}

static int run_decoder(const sb_model *m, const sb_policy_spec *p, const int32_t *ids, int64_t total,
                       int64_t sample_every, double *step_ms, mem_samples *ms, lat_result *r) {
    sb_decoder *d;
    /* dense gets no capacity hint: its cache then grows the way a deployed one would */
    int rc = sb_decoder_new(&d, m, p, p->kind == SB_POLICY_DENSE ? 0 : total);
    if (rc) return rc;
    const int64_t per_token = kv_bytes_per_token(&m->cfg);
    float *logits = malloc_check((size_t)m->cfg.vocab_size * sizeof(float));
    samples_push(ms, 0, sb_decoder_cache_len(d) * per_token);
    for (int64_t i = 0; i < total && !rc; i++) {
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
static int run_recompute_batched(const sb_model *m, int64_t W, const int32_t *ids, int64_t total,
                                 int64_t sample_every, double *step_ms, mem_samples *ms, lat_result *r) {
    int T_max = (int)(W < RECOMPUTE_CHUNK ? W : RECOMPUTE_CHUNK);
    sb_chunk_state s;
    int rc = sb_chunk_state_init(&s, m, 0, SB_FORWARD_W_ALL, T_max, sb_chunk_band_rows(0, SB_FORWARD_W_ALL, T_max, W));
    if (rc) return rc;
    /* the part of the state that plays the cache: keys and values of the W window tokens */
    int64_t kv = W * kv_bytes_per_token(&m->cfg);
    samples_push(ms, 0, kv);
    for (int64_t i = 0; i < total && !rc; i++) {
        double t0 = sb_now();
        sb_chunk_state_reset(&s);
        for (int64_t pos0 = 0; pos0 < W && !rc; pos0 += T_max) {
            int T = (int)(W - pos0 < T_max ? W - pos0 : T_max);
            bool last = pos0 + T == W;
            rc = sb_chunk_forward(&s, ids + i + pos0, T, pos0, last ? T - 1 : T);
        }
        step_ms[i] = 1e3 * (sb_now() - t0);
        if ((i + 1) % sample_every == 0 || i + 1 == total) samples_push(ms, i + 1, kv);
    }
    r->cache_bytes = (int64_t)s.bytes;
    r->cache_len = W;
    r->kv_bytes = kv;
    sb_chunk_state_free(&s);
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

static const char *recompute_name(const lat_args *a, const sb_policy_spec *p) {
    if (p->kind != SB_POLICY_RECOMPUTE) return "n/a";
    return a->recompute == RECOMPUTE_BATCHED ? "batched" : "decode";
}

static int lat_write_h5(sb_h5 *f, const lat_args *a, const lat_result *r, const double *step_ms,
                        const mem_samples *ms) {
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
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "recompute", recompute_name(a, &r->policy));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", r->model_hash);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->data ? a->data : "pseudo-random ids");
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "seed", a->seed);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens", r->tokens);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "warmup", r->warmup);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads", r->threads);
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
    rc = rc ? rc : sb_provenance_to_h5(&r->prov, f);
    return rc;
}

static int lat_print_json(const lat_args *a, const lat_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy", r->policy.spec);
    cJSON_AddStringToObject(o, "recompute", recompute_name(a, &r->policy));
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
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddNumberToObject(o, "load_s", r->load_s);
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cJSON_AddStringToObject(o, "model", a->model_dir);
    cJSON_AddStringToObject(o, "model_sha256", r->model_hash);
    if (a->out) cJSON_AddStringToObject(o, "out", a->out);
    sb_provenance_to_json(&r->prov, o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return sb_error("cannot format JSON output");
    int bad = printf("%s\n", s) < 0 || fflush(stdout) != 0;
    free(s);
    return bad ? sb_error("cannot write to stdout") : SB_OK;
}

int cmd_latency(int argc, char **argv) {
    lat_args a;
    int rc = lat_parse_args(argc, argv, &a);
    if (rc) {
        if (rc == SB_ERR_USAGE && argc <= 1) lat_usage(stderr);
        return cli_fail(CMD, rc);
    }
    if (a.threads > 0) {
        openblas_set_num_threads((int)a.threads);
        omp_set_num_threads((int)a.threads);
    }
    lat_result r;
    memset(&r, 0, sizeof r);

    struct stat st;
    if (stat(a.model_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sb_error("%s: no such model directory", a.model_dir), cli_fail(CMD, SB_ERR);
    sb_model_config cfg;
    char cfg_path[4096];
    if (snprintf(cfg_path, sizeof cfg_path, "%s/config.json", a.model_dir) >= (int)sizeof cfg_path)
        return sb_usage_error("--model: path too long"), cli_fail(CMD, SB_ERR_USAGE);
    if ((rc = sb_hfconfig_load(&cfg, cfg_path))) return cli_fail(CMD, rc);
    if ((rc = sb_policy_parse(a.policy, &r.policy))) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_usage_error("--policy: %s", msg), cli_fail(CMD, SB_ERR_USAGE);
    }
    if ((rc = sb_policy_check_model(&r.policy, &cfg))) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_error("--policy %s: %s", a.policy, msg), cli_fail(CMD, rc);
    }
    r.warmup = a.warmup_set ? a.warmup : default_warmup(&a, &r.policy);
    r.tokens = a.tokens;
    int64_t steps = r.warmup + r.tokens;
    /* a batched recompute step reads its whole window from the stream */
    int64_t need = steps + (batched_recompute(&a, &r.policy) ? r.policy.window - 1 : 0);

    int32_t *ids = NULL;
    if ((rc = lat_tokens(&a, &cfg, need, &ids))) return cli_fail(CMD, rc);

    sb_h5 *out = NULL;
    if (a.out && (rc = sb_h5_create(&out, a.out))) {
        free(ids);
        return cli_fail(CMD, rc);
    }
    double *step_ms = malloc((size_t)steps * sizeof *step_ms);
    mem_samples ms = {0};
    sb_model model;
    memset(&model, 0, sizeof model);
    if (!step_ms) {
        rc = sb_error("cannot allocate %" PRId64 " step times", steps);
        goto done;
    }
    double t_load = sb_now();
    if ((rc = sb_model_load(&model, a.model_dir))) goto done;
    r.load_s = sb_now() - t_load;
    r.weights_mb = (double)model.n_params * sizeof(float) / (1024.0 * 1024.0);
    r.threads = a.threads > 0 ? (int)a.threads : openblas_get_num_threads();

    double t0 = sb_now();
    if (batched_recompute(&a, &r.policy))
        rc = run_recompute_batched(&model, r.policy.window, ids, steps, a.sample_every, step_ms, &ms, &r);
    else
        rc = run_decoder(&model, &r.policy, ids, steps, a.sample_every, step_ms, &ms, &r);
    r.wall_s = sb_now() - t0;
    if (rc) goto done;
    r.peak_rss_mb = sb_peak_rss_mb();
    lat_stats(&r, step_ms + r.warmup, r.tokens);
    /* hashing reads every weight: done after timing so it cannot disturb it */
    if ((rc = sb_provenance_hash_model(a.model_dir, r.model_hash))) goto done;
    sb_provenance_collect(&r.prov);

    if (out) {
        if ((rc = lat_write_h5(out, &a, &r, step_ms, &ms))) goto done;
        rc = sb_h5_commit(out);
        out = NULL;
        if (rc) goto done;
    }
    if (a.json) rc = lat_print_json(&a, &r);
    else {
        printf("policy %s%s%s: %" PRId64 " timed tokens after %" PRId64 " warmup, cache %" PRId64 " tokens (keys+values %.2f MiB)\n",
               r.policy.spec, r.policy.kind == SB_POLICY_RECOMPUTE ? ", recompute " : "",
               r.policy.kind == SB_POLICY_RECOMPUTE ? recompute_name(&a, &r.policy) : "", r.tokens, r.warmup,
               r.cache_len, (double)r.kv_bytes / (1024.0 * 1024.0));
        printf("per token: mean %.3f ms, p50 %.3f ms, p99 %.3f ms (min %.3f, max %.3f)\n", r.mean_ms, r.p50_ms,
               r.p99_ms, r.min_ms, r.max_ms);
        printf("peak RSS %.1f MiB (weights %.1f MiB), %d threads, git %s\n", r.peak_rss_mb, r.weights_mb, r.threads,
               r.prov.git_rev);
    }

done:
    sb_h5_abort(out);
    sb_model_free(&model);
    samples_free(&ms);
    free(step_ms);
    free(ids);
    return rc ? cli_fail(CMD, rc) : 0;
}
