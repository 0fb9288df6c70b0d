/* Weight storage benchmark: one load of a checkpoint with --weights f32|native, then one
 * timed evaluation (decode or exact mode) of a random token stream. Prints one JSON object:
 * load seconds, tokens/s, peak RSS (VmHWM, includes the mapped file pages it touched) and the
 * bytes held compact / as fp32. Run each option in its own process so peak RSS is its own;
 * bench/bench_weights.sh runs the grid and merges the results.
 *
 * Run: build/bench/bench_weights --model DIR --weights f32|native --mode decode|exact
 *          [--tokens N] [--chunk N] [--policy SPEC] [--threads N] [--warmup N] */
#include <cblas.h>
#include <cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"

static int usage(const char *msg) {
    fprintf(stderr, "bench_weights: %s\nusage: bench_weights --model DIR --weights f32|native --mode decode|exact "
                    "[--tokens N] [--chunk N] [--policy SPEC] [--threads N] [--warmup N]\n", msg);
    return 2;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *weights = "native", *mode_s = "decode", *policy = "sinks:4:508";
    int64_t tokens = 32, chunk = 256, threads = 0, warmup = 2;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = SB_OK;
        if (!v) return usage("option needs a value");
        if (!strcmp(a, "--model")) dir = v;
        else if (!strcmp(a, "--weights")) weights = v;
        else if (!strcmp(a, "--mode")) mode_s = v;
        else if (!strcmp(a, "--policy")) policy = v;
        else if (!strcmp(a, "--tokens")) rc = cli_parse_int(a, v, 2, 1 << 24, &tokens);
        else if (!strcmp(a, "--chunk")) rc = cli_parse_int(a, v, 1, 1 << 20, &chunk);
        else if (!strcmp(a, "--threads")) rc = cli_parse_int(a, v, 0, 1024, &threads);
        else if (!strcmp(a, "--warmup")) rc = cli_parse_int(a, v, 0, 1 << 20, &warmup);
        else return usage("unknown option");
        if (rc) return usage(sb_last_error());
    }
    if (!dir) return usage("--model is required");
    sb_weights_mode wm;
    if (sb_weights_mode_parse(weights, "--weights", &wm)) return usage(sb_last_error());
    sb_eval_mode mode;
    if (!strcmp(mode_s, "decode")) mode = SB_MODE_DECODE;
    else if (!strcmp(mode_s, "exact")) mode = SB_MODE_EXACT;
    else return usage("--mode must be decode or exact");
    if (threads > 0) {
        openblas_set_num_threads((int)threads);
        omp_set_num_threads((int)threads);
    }
    sb_policy_spec p;
    if (sb_policy_parse(policy, &p)) return usage(sb_last_error());

    double t0 = sb_now();
    sb_model m;
    if (sb_model_load_mode(&m, dir, wm)) {
        fprintf(stderr, "bench_weights: %s\n", sb_last_error());
        return 1;
    }
    double load_s = sb_now() - t0, rss_loaded = sb_rss_mb();
    int32_t *x = malloc((size_t)tokens * sizeof(int32_t));
    float *nll = malloc((size_t)tokens * sizeof(float));
    uint64_t s = 12345;
    for (int64_t i = 0; i < tokens; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (int32_t)(s % (uint64_t)m.cfg.vocab_size);
    }
    sb_eval_opts o = {.mode = mode, .chunk = chunk};
    /* warm-up: fault the weights in and let the thread pools start */
    if (warmup > 0 && sb_eval_stream_nll(&m, &p, x, warmup + 1 < tokens ? warmup + 1 : tokens, &o, nll)) {
        fprintf(stderr, "bench_weights: %s\n", sb_last_error());
        return 1;
    }
    t0 = sb_now();
    if (sb_eval_stream_nll(&m, &p, x, tokens, &o, nll)) {
        fprintf(stderr, "bench_weights: %s\n", sb_last_error());
        return 1;
    }
    double secs = sb_now() - t0;
    double mean = 0;
    for (int64_t i = 0; i + 1 < tokens; i++) mean += nll[i];
    mean /= (double)(tokens - 1);
    size_t compact, f32;
    sb_model_weight_bytes(&m, &compact, &f32);

    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "model", dir);
    cJSON_AddStringToObject(r, "weights", wm == SB_WEIGHTS_F32 ? "f32" : "native");
    cJSON_AddStringToObject(r, "file_dtype", m.cfg.dtype == SB_DTYPE_F32 ? "f32" : m.cfg.dtype == SB_DTYPE_F16 ? "f16" : "bf16");
    cJSON_AddStringToObject(r, "mode", mode_s);
    cJSON_AddStringToObject(r, "policy", policy);
    cJSON_AddNumberToObject(r, "tokens", (double)tokens);
    if (mode == SB_MODE_EXACT) cJSON_AddNumberToObject(r, "chunk", (double)chunk);
    cJSON_AddNumberToObject(r, "threads", omp_get_max_threads());
    cJSON_AddNumberToObject(r, "load_s", load_s);
    cJSON_AddNumberToObject(r, "eval_s", secs);
    cJSON_AddNumberToObject(r, "tokens_per_s", (double)tokens / secs);
    cJSON_AddNumberToObject(r, "ms_per_token", 1000.0 * secs / (double)tokens);
    cJSON_AddNumberToObject(r, "rss_after_load_mib", rss_loaded);
    cJSON_AddNumberToObject(r, "peak_rss_mib", sb_peak_rss_mb());
    cJSON_AddNumberToObject(r, "weights_compact_bytes", (double)compact);
    cJSON_AddNumberToObject(r, "weights_f32_bytes", (double)f32);
    cJSON_AddNumberToObject(r, "mean_nll", mean);
    char *js = cJSON_PrintUnformatted(r);
    puts(js);
    cJSON_free(js);
    cJSON_Delete(r);
    free(x), free(nll);
    sb_model_free(&m);
    return 0;
}
