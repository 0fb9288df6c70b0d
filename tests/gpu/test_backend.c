/* GPU fidelity of the cuda backend (run by tests/gpu/run.sh on a machine with a GPU):
 *   goldens    every golden fixture (7 families) under dense, sinks:4:16, sinks:1:16,
 *              window:16, recompute:16 in both modes with --compute f32: the GPU against the
 *              cpu engine per token (1e-5 of the NLL), the transformers goldens (1e-4
 *              absolute), and GPU exact mode against GPU decode mode (1e-5 of the NLL)
 *   scored     h2o and tova (decode mode, the attention observer on the GPU) against the cpu
 *   shards     a scored range on the GPU equals the GPU's whole run
 *   learned    learned:W, learned:4:W and sinks:4:W:newline on a random model with a <sink> token, GPU f32
 *              against the cpu
 *   bf16       bf16 compute on sb-base over the held-out stream (argument: .tok or .ids, its
 *              first 20,001 tokens): mean NLL within
 *              0.01 of f32 compute
 * Prints one line per check and "N passed, M failed"; exit status 1 on any failure. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/tokens.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "tests/gpu/gpu_check.h"

static int32_t *read_ids(const char *path, int64_t *n) {
    char *data;
    size_t size;
    *n = 0;
    if (sb_read_file(path, &data, &size)) return NULL;
    int32_t *ids = malloc((size / 2 + 1) * sizeof(int32_t));
    char *p = data, *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
    free(data);
    return ids;
}

static double max_abs(const float *a, const float *b, int64_t n) {
    double w = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= w)) w = isnan(d) ? INFINITY : d;
    }
    return w;
}

/* max |a - b| / max(1, |b|): float arithmetic in another order moves an NLL of 5 by a few
 * 1e-6, so "within 1e-5" is read relative to the value (absolute for values below 1) */
static double max_rel(const float *a, const float *b, int64_t n) {
    double w = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= w)) w = isnan(d) ? INFINITY : d;
    }
    return w;
}

static double mean(const float *a, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i];
    return s / (double)n;
}

/* nll over x[n] of spec on backend b (NULL: the cpu) in mode; false on error (printed). */
static bool eval(const sb_model *m, sb_backend *b, const char *spec, sb_eval_mode mode, const int32_t *x, int64_t n,
                 int64_t from, int64_t to, float *nll) {
    sb_policy_spec p;
    if (sb_policy_parse(spec, &p)) return printf("ERROR %s\n", sb_last_error()), false;
    sb_eval_opts o = {.mode = mode, .backend = b, .chunk = b ? 64 : 0, .score_from = from, .score_to = to};
    if (sb_eval_stream_nll(m, &p, x, n, &o, nll)) return printf("ERROR %s: %s\n", spec, sb_last_error()), false;
    return true;
}

static void goldens(const char *name) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    sb_model m;
    if (sb_model_load(&m, dir)) {
        check(false, "%s: %s", name, sb_last_error());
        return;
    }
    snprintf(path, sizeof path, "%s/golden.json", dir);
    char *text;
    size_t size;
    cJSON *g = NULL;
    if (!sb_read_file(path, &text, &size)) {
        g = cJSON_ParseWithLength(text, size);
        free(text);
    }
    snprintf(path, sizeof path, "%s/stream.ids", dir);
    int64_t n;
    int32_t *x = read_ids(path, &n);
    sb_backend *gpu;
    sb_backend_opts o = {.device = "cuda", .compute = SB_COMPUTE_F32};
    if (!g || !x || sb_backend_open(&gpu, &m, &o)) {
        check(false, "%s: setup: %s", name, sb_last_error());
        return;
    }
    const char *specs[] = {"dense", "sinks:4:16", "sinks:1:16", "window:16", "recompute:16"};
    float *cpu = malloc(n * sizeof(float)), *ge = malloc(n * sizeof(float)), *gd = malloc(n * sizeof(float));
    float *gold = malloc(n * sizeof(float));
    const cJSON *lists = cJSON_GetObjectItemCaseSensitive(g, "nll");
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(lists, specs[i]);
        for (int64_t t = 0; t < n - 1; t++) gold[t] = list ? (float)cJSON_GetArrayItem(list, (int)t)->valuedouble : NAN;
        for (int mode = 0; mode < 2; mode++) {
            float *gm = mode ? gd : ge;
            if (!eval(&m, NULL, specs[i], (sb_eval_mode)mode, x, n, 0, 0, cpu) ||
                !eval(&m, gpu, specs[i], (sb_eval_mode)mode, x, n, 0, 0, gm)) {
                check(false, "%s %s mode %d runs", name, specs[i], mode);
                continue;
            }
            double dc = max_rel(gm, cpu, n - 1), dg = max_abs(gm, gold, n - 1);
            check(dc <= 1e-5, "goldens %-10s %-13s %-6s gpu vs cpu     max |dNLL|/NLL %.3g", name, specs[i],
                  mode ? "decode" : "exact", dc);
            check(dg <= 1e-4, "goldens %-10s %-13s %-6s gpu vs golden  max |dNLL| %.3g", name, specs[i],
                  mode ? "decode" : "exact", dg);
        }
        double de = max_rel(ge, gd, n - 1);
        check(de <= 1e-5, "goldens %-10s %-13s exact vs decode on the gpu  max |dNLL|/NLL %.3g", name, specs[i], de);
    }
    /* the score-based policies: decode mode, observer on the GPU */
    const char *scored[] = {"h2o:4:8:16", "tova:24"};
    for (size_t i = 0; i < 2; i++)
        if (eval(&m, NULL, scored[i], SB_MODE_DECODE, x, n, 0, 0, cpu) &&
            eval(&m, gpu, scored[i], SB_MODE_DECODE, x, n, 0, 0, gd)) {
            double d = max_rel(gd, cpu, n - 1);
            check(d <= 1e-5, "scored  %-10s %-13s gpu vs cpu     max |dNLL|/NLL %.3g", name, scored[i], d);
        }
    /* a shard of the stream */
    if (eval(&m, gpu, "sinks:4:16", SB_MODE_EXACT, x, n, 0, 0, ge)) {
        for (int64_t t = 0; t < n; t++) gd[t] = NAN;
        if (eval(&m, gpu, "sinks:4:16", SB_MODE_EXACT, x, n, 100, n - 1, gd)) {
            double d = max_abs(gd + 100, ge + 100, n - 101);
            check(d <= 1e-6, "shards  %-10s sinks:4:16 [100, %lld) vs whole run  max |dNLL| %.3g", name,
                  (long long)(n - 1), d);
        }
    }
    free(cpu), free(ge), free(gd), free(gold), free(x);
    cJSON_Delete(g);
    sb_backend_close(gpu);
    sb_model_free(&m);
}

/* cpu vs gpu (compute cp) for spec over ids; returns the gpu's mean NLL (NAN on error). */
static double versus(const sb_model *m, const char *what, const char *spec, sb_compute cp, const int32_t *x, int64_t n,
                     double tol) {
    sb_backend *gpu;
    sb_backend_opts o = {.device = "cuda", .compute = cp};
    if (sb_backend_open(&gpu, m, &o)) {
        check(false, "%s: %s", what, sb_last_error());
        return NAN;
    }
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    double r = NAN;
    /* tol INFINITY: only the GPU's mean is wanted */
    if (eval(m, gpu, spec, SB_MODE_EXACT, x, n, 0, 0, b) && (isinf(tol) || eval(m, NULL, spec, SB_MODE_EXACT, x, n, 0, 0, a))) {
        r = mean(b, n - 1);
        if (!isinf(tol)) {
            double d = max_rel(b, a, n - 1);
            check(d <= tol, "%s %s (%s) gpu vs cpu over %lld tokens  max |dNLL|/NLL %.3g", what, spec, sb_compute_name(cp),
                  (long long)n, d);
        }
    }
    free(a), free(b);
    sb_backend_close(gpu);
    return r;
}

int main(int argc, char **argv) {
    const char *fixtures[] = {"llama", "llama_gqa", "mistral", "gpt_neox", "falcon7b", "falcon_new", "mpt"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) goldens(fixtures[i]);
    {
        /* a random model with a <sink> token (id 1) and a newline token (id 10) */
        sb_model_config c;
        sb_model_config_default(&c);
        c.vocab_size = 512, c.dim = 256, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64;
        c.rotary_dim = 64, c.ffn_dim = 512, c.max_ctx = 256, c.sink_token_id = 1, c.newline_token_id = 10;
        sb_model m;
        if (sb_model_alloc(&m, &c) == SB_OK) {
            sb_model_init_random(&m, 3, 8.0f);
            int64_t k = 3000;
            int32_t *r = malloc(k * sizeof(int32_t));
            uint32_t seed = 7;
            for (int64_t i = 0; i < k; i++) seed = seed * 1664525u + 1013904223u, r[i] = (int32_t)(seed >> 8) % 512;
            versus(&m, "learned", "learned:255", SB_COMPUTE_F32, r, k, 1e-5);
            versus(&m, "learned, sink + 3", "learned:4:252", SB_COMPUTE_F32, r, k, 1e-5);
            versus(&m, "newline", "sinks:4:252:newline", SB_COMPUTE_F32, r, k, 1e-5);
            free(r);
            sb_model_free(&m);
        } else check(false, "random model: %s", sb_last_error());
    }
    const char *ids_path = argc > 1 ? argv[1] : NULL;
    int64_t n = 0;
    int32_t *x = NULL;
    if (ids_path && sb_tokens_load(ids_path, 4096, 20001, &x, &n)) check(false, "%s", sb_last_error());
    if (x && n > 1) {
        sb_model m;
        if (sb_model_load(&m, "models/sb-base") == SB_OK) {
            int64_t k = n < 20001 ? n : 20001;
            double f32 = versus(&m, "bf16", "sinks:4:508", SB_COMPUTE_F32, x, k, INFINITY);
            double b16 = versus(&m, "bf16", "sinks:4:508", SB_COMPUTE_BF16, x, k, INFINITY);
            check(fabs(b16 - f32) <= 0.01, "bf16 sb-base sinks:4:508 over %lld tokens: mean NLL bf16 %.5f, f32 %.5f, "
                  "diff %.2g", (long long)(k - 1), b16, f32, fabs(b16 - f32));
            sb_model_free(&m);
        } else check(false, "models/sb-base: %s", sb_last_error());
    } else if (ids_path) check(false, "%s: no token ids", ids_path);
    free(x);
    printf("\n%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
