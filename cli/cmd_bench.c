/* sinkbench bench: micro-benchmarks behind `make bench` (bench/run_bench.sh).
 *
 *   bench sgemm   OpenBLAS sgemm GFLOP/s at the model's own matmul shapes (chunk x in -> out),
 *                 the ceiling the exact evaluation is compared against;
 *   bench decode  per-token decode latency and RSS at two points of one long stream
 *                 (e.g. token 2,000 and 200,000), through the decoder directly;
 *   bench report  merge those and two `ppl --json` runs into one JSON with FLOP/s, ratios
 *                 and the targets, written atomically.
 * Each prints one JSON object on stdout (report writes --out). */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/cpu/ops.h"
#include "engine/decoder.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "util/progress.h"
#include "util/provenance.h"

#define CMD "bench"

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: sinkbench bench sgemm  --model DIR [--chunk N] [--min-time S] [--threads N]\n"
            "       sinkbench bench decode --model DIR [--policy SPEC] [--at N] [--long N] [--window N]\n"
            "                              [--seed S] [--threads N]\n"
            "       sinkbench bench report --model DIR --exact F --decode F --sgemm F --latency F --out F\n"
            "  sgemm:  GFLOP/s of y = x W^T for every matmul shape of the model (x: chunk rows)\n"
            "  decode: ms/token over --window tokens ending at token --at (default 2000) and --long\n"
            "          (default 200000) of one random stream (default policy sinks:4:508), and RSS there\n"
            "  report: merge the JSON outputs of ppl --json (exact, decode), sgemm and decode\n");
}

/* Flags shared by the subcommands; unknown ones are usage errors. */
typedef struct {
    const char *model_dir, *policy, *exact, *decode, *sgemm, *latency, *out;
    int64_t chunk, threads, at, long_n, window, seed;
    double min_time;
} bench_args;

static int bench_parse(int argc, char **argv, bench_args *a) {
    memset(a, 0, sizeof *a);
    a->chunk = SB_EVAL_DEFAULT_CHUNK;
    a->at = 2000;
    a->long_n = 200000;
    a->window = 500;
    a->seed = 1;
    a->min_time = 0.3;
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            bench_usage(stdout);
            exit(0);
        }
        if (!v) return sb_usage_error("%s needs a value", f);
        i++;
        int rc = SB_OK;
        if (!strcmp(f, "--model")) a->model_dir = v;
        else if (!strcmp(f, "--policy")) a->policy = v;
        else if (!strcmp(f, "--exact")) a->exact = v;
        else if (!strcmp(f, "--decode")) a->decode = v;
        else if (!strcmp(f, "--sgemm")) a->sgemm = v;
        else if (!strcmp(f, "--latency")) a->latency = v;
        else if (!strcmp(f, "--out")) a->out = v;
        else if (!strcmp(f, "--chunk")) rc = cli_parse_int(f, v, 1, 1 << 20, &a->chunk);
        else if (!strcmp(f, "--threads")) rc = cli_parse_int(f, v, 1, 4096, &a->threads);
        else if (!strcmp(f, "--at")) rc = cli_parse_int(f, v, 1, INT64_MAX / 2, &a->at);
        else if (!strcmp(f, "--long")) rc = cli_parse_int(f, v, 1, INT64_MAX / 2, &a->long_n);
        else if (!strcmp(f, "--window")) rc = cli_parse_int(f, v, 1, 1 << 24, &a->window);
        else if (!strcmp(f, "--seed")) rc = cli_parse_int(f, v, 0, INT64_MAX, &a->seed);
        else if (!strcmp(f, "--min-time")) rc = cli_parse_float(f, v, 0.001, 60, &a->min_time);
        else return sb_usage_error("unknown option '%s' (see sinkbench bench --help)", f);
        if (rc) return rc;
    }
    if (!a->model_dir) return sb_usage_error("--model DIR is required");
    if (a->threads > 0) {
        sb_host_threads((int)a->threads);
    }
    return SB_OK;
}

static int load_config(const char *dir, sb_model_config *c) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return sb_error("%s: path too long", dir);
    return sb_hfconfig_load(c, path);
}

static int print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return sb_error("cannot format JSON output");
    int bad = printf("%s\n", s) < 0 || fflush(stdout) != 0;
    free(s);
    return bad ? sb_error("cannot write to stdout") : SB_OK;
}

static void add_provenance(cJSON *o) {
    sb_provenance p;
    sb_provenance_collect(&p);
    sb_provenance_to_json(&p, o);
}

/* ------------------------------------------------------------------------- matmul shapes */

typedef struct {
    const char *name;
    int64_t out, in;  /* y[chunk, out] = x[chunk, in] W[out, in]^T */
    int64_t count;    /* how many such products one forward over a chunk does */
} mm_shape;

static int model_shapes(const sb_model_config *c, mm_shape *s) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t L = c->n_layers, n = 0;
    s[n++] = (mm_shape){"attn_q", q, c->dim, L};
    s[n++] = (mm_shape){"attn_k_v", kv, c->dim, 2 * L};
    s[n++] = (mm_shape){"attn_out", c->dim, q, L};
    s[n++] = (mm_shape){"mlp_up", c->ffn_dim, c->dim, (c->mlp == SB_MLP_SWIGLU ? 2 : 1) * L};
    s[n++] = (mm_shape){"mlp_down", c->dim, c->ffn_dim, L};
    s[n++] = (mm_shape){"lm_head", c->vocab_size, c->dim, 1};
    return (int)n;
}

static int bench_sgemm(const bench_args *a) {
    sb_model_config c;
    int rc = load_config(a->model_dir, &c);
    if (rc) return rc;
    mm_shape shapes[8];
    int ns = model_shapes(&c, shapes);
    int64_t M = a->chunk;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    double total_flops = 0, total_time = 0;
    for (int i = 0; i < ns; i++) {
        const mm_shape *s = &shapes[i];
        size_t nx, nw, ny;
        if (!sb_mul_size((size_t)M, (size_t)s->in, &nx) || !sb_mul_size((size_t)s->out, (size_t)s->in, &nw) ||
            !sb_mul_size((size_t)M, (size_t)s->out, &ny) || nw > ((size_t)1 << 32)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return sb_error("%s: matmul shape %s too large to benchmark", a->model_dir, s->name);
        }
        float *x = malloc_check(nx * sizeof(float)), *w = malloc_check(nw * sizeof(float));
        float *y = malloc_check(ny * sizeof(float));
        for (size_t k = 0; k < nx; k++) x[k] = (float)((k * 7919) % 1000) * 1e-3f - 0.5f;
        for (size_t k = 0; k < nw; k++) w[k] = (float)((k * 104729) % 1000) * 1e-3f - 0.5f;
        /* warm-up: thread pool start, page faults, caches */
        matmul_forward(y, x, w, NULL, (int)M, (int)s->in, (int)s->out);
        int64_t reps = 0;
        double t0 = sb_now(), dt;
        do {
            matmul_forward(y, x, w, NULL, (int)M, (int)s->in, (int)s->out);
            reps++;
            dt = sb_now() - t0;
        } while (dt < a->min_time);
        double flops = 2.0 * (double)M * (double)s->out * (double)s->in;
        double per = dt / (double)reps;
        total_flops += flops * (double)s->count;
        total_time += per * (double)s->count;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", s->name);
        cJSON_AddNumberToObject(e, "m", (double)M);
        cJSON_AddNumberToObject(e, "n", (double)s->out);
        cJSON_AddNumberToObject(e, "k", (double)s->in);
        cJSON_AddNumberToObject(e, "per_forward", (double)s->count);
        cJSON_AddNumberToObject(e, "gflops", flops / per * 1e-9);
        cJSON_AddItemToArray(arr, e);
        free(x);
        free(w);
        free(y);
    }
    cJSON_AddNumberToObject(o, "chunk", (double)M);
    /* one forward's products in their real mix: what exact mode could reach at best */
    cJSON_AddNumberToObject(o, "gflops", total_flops / total_time * 1e-9);
    cJSON_AddItemToObject(o, "shapes", arr);
    cJSON_AddNumberToObject(o, "threads", sb_host_threads(0));
    add_provenance(o);
    return print_json(o);
}

/* ------------------------------------------------------------------------ decode latency */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

typedef struct {
    int64_t token;
    double mean_ms, p50_ms, p90_ms, rss_mb, peak_rss_mb;
    uint64_t cache_bytes;
    int64_t cache_len;
} latency_point;

static void point_to_json(cJSON *arr, const latency_point *p) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "token", (double)p->token);
    cJSON_AddNumberToObject(e, "ms_per_token_mean", p->mean_ms);
    cJSON_AddNumberToObject(e, "ms_per_token_p50", p->p50_ms);
    cJSON_AddNumberToObject(e, "ms_per_token_p90", p->p90_ms);
    cJSON_AddNumberToObject(e, "rss_mb", p->rss_mb);
    cJSON_AddNumberToObject(e, "peak_rss_mb", p->peak_rss_mb);
    cJSON_AddNumberToObject(e, "cache_bytes", (double)p->cache_bytes);
    cJSON_AddNumberToObject(e, "cache_len", (double)p->cache_len);
    cJSON_AddItemToArray(arr, e);
}

static int32_t next_token(uint64_t *rng, int32_t vocab) {
    *rng ^= *rng << 13; /* xorshift64: cheap, reproducible token ids */
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return (int32_t)(*rng % (uint64_t)vocab);
}

/* One step, timed into *dt when dt is not NULL. */
static int timed_step(sb_decoder *d, uint64_t *rng, int32_t vocab, float *logits, double *dt) {
    double t0 = dt ? sb_now() : 0;
    int rc = sb_decoder_step(d, next_token(rng, vocab), logits);
    if (dt) *dt = sb_now() - t0;
    return rc;
}

/* Mean, p50, p90 of n step times (sorts them). */
static void summarize(latency_point *p, double *times, int64_t n) {
    double sum = 0;
    for (int64_t k = 0; k < n; k++) sum += times[k];
    qsort(times, (size_t)n, sizeof *times, cmp_double);
    p->mean_ms = 1e3 * sum / (double)n;
    p->p50_ms = 1e3 * times[n / 2];
    p->p90_ms = 1e3 * times[(n * 9) / 10];
}

static void point_memory(latency_point *p, const sb_decoder *d) {
    p->rss_mb = sb_rss_mb();
    p->peak_rss_mb = sb_peak_rss_mb();
    p->cache_bytes = sb_decoder_cache_bytes(d);
    p->cache_len = sb_decoder_cache_len(d);
}

/* Steps of each decoder per turn in the paired measurement: long enough to keep each
 * cache warm for a while, short enough that load changes hit both sides alike. */
#define PAIRED_BLOCK 50

/* Two measurements of latency at token `at` vs token `long`:
 *   sequential: windows ending at `at` and at `long` of one stream (with RSS there); on a
 *               shared machine the load may differ between the two windows, minutes apart;
 *   paired:     a second decoder is brought to at - window, then the two decoders take
 *               turns (PAIRED_BLOCK steps each) over their next `window` tokens, so both
 *               sides see the same machine. The target uses the paired figures. */
static int bench_decode(const bench_args *a) {
    if (a->at >= a->long_n) return sb_usage_error("--at (%" PRId64 ") must be below --long (%" PRId64 ")", a->at, a->long_n);
    if (a->window > a->at || a->long_n - a->window < a->at)
        return sb_usage_error("--window (%" PRId64 ") must fit below --at and between --at and --long", a->window);
    sb_policy_spec pol;
    const char *spec = a->policy ? a->policy : "sinks:4:508";
    int rc = sb_policy_parse(spec, &pol);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_usage_error("--policy: %s", msg);
    }
    sb_model m;
    memset(&m, 0, sizeof m);
    if ((rc = sb_model_load(&m, a->model_dir))) return rc;
    if ((rc = sb_policy_check_model(&pol, &m.cfg))) {
        sb_model_free(&m);
        return rc;
    }
    sb_decoder *dl = NULL, *ds = NULL;
    if ((rc = sb_decoder_new(&dl, &m, &pol, a->long_n + a->window))) {
        sb_model_free(&m);
        return rc;
    }
    int32_t V = m.cfg.vocab_size;
    float *logits = malloc_check((size_t)V * sizeof(float));
    double *times = malloc_check((size_t)a->window * sizeof(double));
    double *times2 = malloc_check((size_t)a->window * sizeof(double));
    latency_point seq[2], pair[2];
    memset(seq, 0, sizeof seq);
    memset(pair, 0, sizeof pair);
    int64_t ends[2] = {a->at, a->long_n};
    uint64_t rng_l = (uint64_t)a->seed * 0x9E3779B97F4A7C15ull + 1, rng_s = rng_l ^ 0x5DEECE66Dull;
    sb_progress bar;
    sb_progress_begin(&bar, "decode", a->long_n + a->at + a->window);
    double t_start = sb_now();

    /* sequential: one stream to `long` */
    for (int64_t t = 0, pi = 0; t < a->long_n && !rc; t++) {
        int64_t w0 = ends[pi] - a->window;
        rc = timed_step(dl, &rng_l, V, logits, t >= w0 ? &times[t - w0] : NULL);
        if (!rc && t + 1 == ends[pi]) {
            seq[pi].token = ends[pi];
            summarize(&seq[pi], times, a->window);
            point_memory(&seq[pi], dl);
            pi++;
        }
        if ((t & 255) == 0) sb_progress_update(&bar, t, NAN);
    }
    double wall_seq = sb_now() - t_start;

    /* paired: a fresh decoder to at - window, then turns */
    if (!rc) rc = sb_decoder_new(&ds, &m, &pol, a->at);
    for (int64_t t = 0; t < a->at - a->window && !rc; t++) {
        rc = timed_step(ds, &rng_s, V, logits, NULL);
        if ((t & 255) == 0) sb_progress_update(&bar, a->long_n + t, NAN);
    }
    for (int64_t k0 = 0; k0 < a->window && !rc; k0 += PAIRED_BLOCK) {
        int64_t k1 = k0 + PAIRED_BLOCK < a->window ? k0 + PAIRED_BLOCK : a->window;
        /* alternate who goes first, so neither side always follows the other's cache misses */
        for (int side = 0; side < 2 && !rc; side++) {
            bool short_side = (side == 0) == ((k0 / PAIRED_BLOCK) % 2 == 0);
            for (int64_t k = k0; k < k1 && !rc; k++)
                rc = short_side ? timed_step(ds, &rng_s, V, logits, &times[k])
                                : timed_step(dl, &rng_l, V, logits, &times2[k]);
        }
    }
    if (!rc) {
        pair[0].token = a->at;
        summarize(&pair[0], times, a->window);
        point_memory(&pair[0], ds);
        pair[1].token = a->long_n + a->window;
        summarize(&pair[1], times2, a->window);
        point_memory(&pair[1], dl);
    }
    sb_progress_end(&bar);
    double wall = sb_now() - t_start;
    sb_decoder_free(ds);
    sb_decoder_free(dl);
    sb_model_free(&m);
    free(logits);
    free(times);
    free(times2);
    if (rc) return rc;
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray(), *parr = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "policy", pol.spec);
    cJSON_AddNumberToObject(o, "window", (double)a->window);
    cJSON_AddNumberToObject(o, "tokens", (double)a->long_n);
    cJSON_AddNumberToObject(o, "wall_s", wall);
    cJSON_AddNumberToObject(o, "tokens_per_s", (double)a->long_n / wall_seq);
    for (int k = 0; k < 2; k++) point_to_json(arr, &seq[k]);
    cJSON_AddItemToObject(o, "points", arr);
    for (int k = 0; k < 2; k++) point_to_json(parr, &pair[k]);
    cJSON_AddItemToObject(o, "paired", parr);
    cJSON_AddNumberToObject(o, "paired_block", PAIRED_BLOCK);
    cJSON_AddNumberToObject(o, "threads", sb_host_threads(0));
    add_provenance(o);
    return print_json(o);
}

/* ---------------------------------------------------------------------------------- report */

static int read_json(const char *flag, const char *path, cJSON **out) {
    *out = NULL;
    if (!path) return sb_usage_error("%s FILE is required", flag);
    char *text;
    size_t n;
    int rc = sb_read_file(path, &text, &n);
    if (rc) return rc;
    *out = cJSON_ParseWithLength(text, n);
    free(text);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return sb_error("%s: not a JSON object", path);
    }
    return SB_OK;
}

static int num(const cJSON *o, const char *key, const char *path, double *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x)) return sb_error("%s: no number '%s'", path, key);
    *v = x->valuedouble;
    return SB_OK;
}

/* Useful FLOPs per scored token of a stream of n tokens: 2 per weight of every matmul, plus
 * q.k and p.v over the keys each query really attends to (masked work not counted). */
static double flops_per_token(const sb_model_config *c, const sb_policy_spec *p, int64_t n) {
    mm_shape s[8];
    int ns = model_shapes(c, s);
    double linear = 0;
    for (int i = 0; i < ns; i++) linear += 2.0 * (double)s[i].out * (double)s[i].in * (double)s[i].count;
    double per_key = 4.0 * c->n_layers * (double)c->n_heads * c->head_dim;
    double keys = 0; /* sum over tokens t of keys attended */
    sb_exact_plan plan;
    if (sb_policy_exact_plan(p, c, &plan) && plan.kind == SB_EXACT_FRESH_WINDOW) {
        /* every prediction is a dense pass over up to W tokens */
        double w = (double)plan.W;
        return linear * w + per_key * w * (w + 1) / 2;
    }
    /* a query sees the kept tokens and itself */
    int64_t cap = sb_policy_capacity(p) == 0 ? n : sb_policy_capacity(p) + 1;
    if (cap > n) cap = n;
    keys = (double)cap * (double)(cap + 1) / 2 + (double)(n - cap) * (double)cap;
    return linear + per_key * keys / (double)n;
}

static int bench_report(const bench_args *a) {
    if (!a->out) return sb_usage_error("--out FILE is required");
    sb_model_config c;
    int rc = load_config(a->model_dir, &c);
    if (rc) return rc;
    cJSON *ex = NULL, *de = NULL, *sg = NULL, *la = NULL;
    if ((rc = read_json("--exact", a->exact, &ex)) || (rc = read_json("--decode", a->decode, &de)) ||
        (rc = read_json("--sgemm", a->sgemm, &sg)) || (rc = read_json("--latency", a->latency, &la)))
        goto done;
    double ex_tps = 0, ex_tokens = 0, de_tps = 0, sg_gflops = 0;
    if ((rc = num(ex, "tokens_per_s", a->exact, &ex_tps)) || (rc = num(ex, "tokens", a->exact, &ex_tokens)) ||
        (rc = num(de, "tokens_per_s", a->decode, &de_tps)) || (rc = num(sg, "gflops", a->sgemm, &sg_gflops)))
        goto done;
    const cJSON *pol_js = cJSON_GetObjectItemCaseSensitive(ex, "policy");
    sb_policy_spec pol;
    if (!cJSON_IsString(pol_js) || sb_policy_parse(pol_js->valuestring, &pol)) {
        rc = sb_error("%s: no valid 'policy'", a->exact);
        goto done;
    }
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(la, "points");
    const cJSON *paired = cJSON_GetObjectItemCaseSensitive(la, "paired");
    if (!cJSON_IsArray(pts) || cJSON_GetArraySize(pts) != 2 || !cJSON_IsArray(paired) ||
        cJSON_GetArraySize(paired) != 2) {
        rc = sb_error("%s: expected two sequential and two paired latency points", a->latency);
        goto done;
    }
    /* lat: paired (same machine state on both sides); lat_seq: one stream, minutes apart */
    double lat[2] = {0}, lat_seq[2] = {0}, rss[2] = {0}, tok[2] = {0};
    for (int k = 0; k < 2; k++) {
        const cJSON *p = cJSON_GetArrayItem(pts, k), *q = cJSON_GetArrayItem(paired, k);
        if ((rc = num(p, "ms_per_token_mean", a->latency, &lat_seq[k])) || (rc = num(p, "rss_mb", a->latency, &rss[k])) ||
            (rc = num(p, "token", a->latency, &tok[k])) || (rc = num(q, "ms_per_token_mean", a->latency, &lat[k])))
            goto done;
    }

    /* Timings on a shared machine mean little: keep the load seen by every run with them. */
    double load_max = 0;
    const cJSON *runs[4] = {ex, de, sg, la};
    for (int k = 0; k < 4; k++) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(runs[k], "loadavg1");
        if (cJSON_IsNumber(l) && l->valuedouble > load_max) load_max = l->valuedouble;
    }
    double fpt = flops_per_token(&c, &pol, (int64_t)ex_tokens);
    double ex_gflops = ex_tps * fpt * 1e-9;
    double r_sgemm = ex_gflops / sg_gflops, r_decode = ex_tps / de_tps;
    double r_lat = lat[1] / lat[0], r_rss = rss[1] / rss[0];

    cJSON *o = cJSON_CreateObject();
    cJSON *mo = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(mo, "path", a->model_dir);
    cJSON_AddNumberToObject(mo, "params", (double)sb_model_param_count(&c));
    cJSON_AddNumberToObject(mo, "vocab", c.vocab_size);
    cJSON_AddNumberToObject(mo, "dim", c.dim);
    cJSON_AddNumberToObject(mo, "layers", c.n_layers);
    cJSON_AddNumberToObject(mo, "heads", c.n_heads);
    cJSON_AddNumberToObject(mo, "ffn", c.ffn_dim);
    cJSON_AddNumberToObject(mo, "ctx", c.max_ctx);
    cJSON_AddNumberToObject(ex, "flops_per_token", fpt);
    cJSON_AddNumberToObject(ex, "gflops", ex_gflops);
    /* inputs go in whole: every figure stays traceable to the run that produced it */
    cJSON_AddItemToObject(o, "exact", ex);
    cJSON_AddItemToObject(o, "decode", de);
    cJSON_AddItemToObject(o, "sgemm", sg);
    cJSON_AddItemToObject(o, "decode_latency", la);
    ex = de = sg = la = NULL;
    cJSON *r = cJSON_AddObjectToObject(o, "ratios");
    cJSON_AddNumberToObject(r, "exact_gflops_over_sgemm", r_sgemm);
    cJSON_AddNumberToObject(r, "exact_over_decode_tokens_per_s", r_decode);
    cJSON_AddNumberToObject(r, "latency_long_over_short", r_lat);
    cJSON_AddNumberToObject(r, "latency_long_over_short_sequential", lat_seq[1] / lat_seq[0]);
    cJSON_AddNumberToObject(r, "rss_long_over_short", r_rss);
    cJSON *t = cJSON_AddObjectToObject(o, "targets");
    cJSON_AddBoolToObject(t, "exact_ge_50pct_sgemm", r_sgemm >= 0.5);
    cJSON_AddBoolToObject(t, "exact_ge_8x_decode", r_decode >= 8.0);
    cJSON_AddBoolToObject(t, "decode_latency_flat_10pct", fabs(r_lat - 1.0) <= 0.10);
    cJSON_AddBoolToObject(t, "rss_flat_10pct", fabs(r_rss - 1.0) <= 0.10);
    cJSON_AddNumberToObject(o, "latency_short_token", tok[0]);
    cJSON_AddNumberToObject(o, "latency_long_token", tok[1]);
    cJSON_AddNumberToObject(o, "threads", sb_host_threads(0));
    sb_provenance prov;
    sb_provenance_collect(&prov);
    sb_provenance_to_json(&prov, o);
    cJSON_AddNumberToObject(o, "loadavg1_max_during_runs", load_max);
    /* more runnable threads than cores: every figure above is depressed by contention */
    cJSON_AddBoolToObject(o, "machine_quiet", load_max <= 1.25 * prov.cores);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) {
        rc = sb_error("cannot format JSON");
        goto done;
    }
    size_t len = strlen(s);
    s[len] = '\n'; /* replaces the NUL: the file ends with a newline */
    rc = sb_write_file_atomic(a->out, s, len + 1);
    free(s);
    if (!rc) printf("wrote %s: exact %.0f tok/s (%.1f GFLOP/s, %.0f%% of sgemm %.1f), decode %.0f tok/s (x%.1f), "
                    "latency %.3f -> %.3f ms/token (x%.3f), RSS %.1f -> %.1f MB; max load %.1f on %d cores\n",
                    a->out, ex_tps, ex_gflops, 100 * r_sgemm, sg_gflops, de_tps, r_decode, lat[0], lat[1], r_lat,
                    rss[0], rss[1], load_max, prov.cores);
done:
    cJSON_Delete(ex);
    cJSON_Delete(de);
    cJSON_Delete(sg);
    cJSON_Delete(la);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error message, not a signal */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bench_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bench_args a;
    int rc = bench_parse(argc, argv, &a);
    if (!rc) {
        if (!strcmp(argv[1], "sgemm")) rc = bench_sgemm(&a);
        else if (!strcmp(argv[1], "decode")) rc = bench_decode(&a);
        else if (!strcmp(argv[1], "report")) rc = bench_report(&a);
        else rc = sb_usage_error("unknown benchmark '%s' (sgemm, decode or report)", argv[1]);
    }
    return rc ? cli_fail(CMD, rc) : 0;
}
