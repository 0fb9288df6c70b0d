/* sinkbench ppl: per-token NLL / perplexity of a token stream under a cache policy.
 *
 * Everything that can be wrong with the input is checked before the evaluation starts
 * (config, policy against the model, token ids, memory, output path), so a long run never
 * fails at the end for a reason that was knowable at the start. */
#include <cJSON.h>
#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "datasets/sha256.h"
#include "datasets/tokens.h"
#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "eval/h5.h"
#include "eval/progress.h"
#include "eval/provenance.h"
#include "tokenizer/tokenizer.h"

#define CMD "ppl"

typedef struct {
    const char *model_dir, *data, *policy, *out;
    sb_eval_mode mode;
    int64_t tokens;          /* 0 = all */
    int64_t threads;         /* 0 = library default */
    int64_t chunk;           /* 0 = engine default */
    uint64_t max_memory;     /* 0 = MemAvailable */
    bool json;
} ppl_args;

static void ppl_usage(FILE *f) {
    fprintf(f,
            "usage: sinkbench ppl --model DIR --data FILE [options]\n"
            "  --data FILE         token stream: .tok, .ids, or .txt (needs DIR/tokenizer.json)\n"
            "  --policy SPEC       dense | window:W | sinks:K:W[:newline] | learned:W | recompute:W\n"
            "                      (default sinks:4:<max_ctx-4>)\n"
            "  --mode exact|decode batched exact evaluation (default) or one token per forward\n"
            "  --tokens N          use the first N tokens (N-1 predictions)\n"
            "  --chunk N           exact-mode queries per batched forward\n"
            "  --threads N         BLAS/OpenMP threads\n"
            "  --max-memory SIZE   refuse runs needing more (default: MemAvailable), e.g. 512M\n"
            "  --json              one JSON object on stdout\n"
            "  --out FILE.h5       per-token NLL with the run's configuration, written atomically\n");
}

static int ppl_parse_args(int argc, char **argv, ppl_args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = SB_OK;
        if (!strcmp(f, "--json")) {
            a->json = true;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            ppl_usage(stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) != 0) return sb_usage_error("unexpected argument '%s'", f);
        if (!v) return sb_usage_error("%s needs a value", f);
        i++;
        if (!strcmp(f, "--model")) a->model_dir = v;
        else if (!strcmp(f, "--data")) a->data = v;
        else if (!strcmp(f, "--policy")) a->policy = v;
        else if (!strcmp(f, "--out")) a->out = v;
        else if (!strcmp(f, "--mode")) {
            if (!strcmp(v, "exact")) a->mode = SB_MODE_EXACT;
            else if (!strcmp(v, "decode")) a->mode = SB_MODE_DECODE;
            else return sb_usage_error("--mode: '%s' is not exact or decode", v);
        } else if (!strcmp(f, "--tokens")) rc = cli_parse_int(f, v, 2, INT64_MAX, &a->tokens);
        else if (!strcmp(f, "--threads")) rc = cli_parse_int(f, v, 1, 4096, &a->threads);
        else if (!strcmp(f, "--chunk")) rc = cli_parse_int(f, v, 1, SB_POLICY_MAX_LEN, &a->chunk);
        else if (!strcmp(f, "--max-memory")) {
            rc = cli_parse_bytes(f, v, &a->max_memory);
            if (!rc && a->max_memory == 0) rc = sb_usage_error("--max-memory must be positive");
        } else return sb_usage_error("unknown option '%s' (see sinkbench ppl --help)", f);
        if (rc) return rc;
    }
    if (!a->model_dir) return sb_usage_error("--model DIR is required");
    if (!a->data) return sb_usage_error("--data FILE is required");
    return SB_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* MemAvailable from /proc/meminfo in bytes; 0 if unknown (then no limit is applied). */
static uint64_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static void fmt_bytes(char *buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30)) snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else snprintf(buf, cap, "%.1f MiB", (double)b / (1ull << 20));
}

typedef struct {
    sb_progress bar;
} ppl_progress_ctx;

static int ppl_progress(const sb_eval_progress *p, void *user) {
    ppl_progress_ctx *c = user;
    sb_progress_update(&c->bar, p->done, p->sum_nll);
    return 0;
}

/* Everything the run produced, for JSON, the summary and the h5 attributes. */
typedef struct {
    sb_policy_spec policy;
    int64_t n_tokens, scored;
    double mean_nll, ppl, bpb; /* bpb NAN unless text input */
    uint64_t bytes_scored;
    double tokens_per_s, wall_s, load_s, peak_rss_mb;
    int threads;
    uint64_t mem_needed;
    char model_hash[65], data_hash[65];
    sb_provenance prov;
} ppl_result;

static const char *mode_name(sb_eval_mode m) { return m == SB_MODE_DECODE ? "decode" : "exact"; }

static void json_num_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static int ppl_print_json(const ppl_args *a, const ppl_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy", r->policy.spec);
    cJSON_AddStringToObject(o, "mode", mode_name(a->mode));
    cJSON_AddNumberToObject(o, "tokens", (double)r->n_tokens);
    cJSON_AddNumberToObject(o, "tokens_scored", (double)r->scored);
    json_num_or_null(o, "mean_nll", r->mean_nll);
    json_num_or_null(o, "ppl", r->ppl);
    json_num_or_null(o, "bpb", r->bpb);
    cJSON_AddNumberToObject(o, "tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(o, "load_s", r->load_s);
    cJSON_AddNumberToObject(o, "peak_rss_mb", r->peak_rss_mb);
    cJSON_AddNumberToObject(o, "memory_estimate_bytes", (double)r->mem_needed);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddNumberToObject(o, "chunk", (double)(a->chunk ? a->chunk : SB_EVAL_DEFAULT_CHUNK));
    cJSON_AddStringToObject(o, "model", a->model_dir);
    cJSON_AddStringToObject(o, "model_sha256", r->model_hash);
    cJSON_AddStringToObject(o, "data", a->data);
    cJSON_AddStringToObject(o, "data_sha256", r->data_hash);
    if (a->out) cJSON_AddStringToObject(o, "out", a->out);
    sb_provenance_to_json(&r->prov, o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return sb_error("cannot format JSON output");
    int bad = printf("%s\n", s) < 0 || fflush(stdout) != 0;
    free(s);
    return bad ? sb_error("cannot write to stdout") : SB_OK;
}

static void ppl_print_summary(const ppl_args *a, const ppl_result *r) {
    printf("policy %s, mode %s: %" PRId64 " tokens scored\n", r->policy.spec, mode_name(a->mode), r->scored);
    printf("mean NLL %.4f nats, perplexity %.3f", r->mean_nll, r->ppl);
    if (isfinite(r->bpb)) printf(", %.4f bits/byte", r->bpb);
    printf("\n%.1f tokens/s, %.2f s, peak RSS %.1f MB, %d threads, git %s\n", r->tokens_per_s, r->wall_s,
           r->peak_rss_mb, r->threads, r->prov.git_rev);
}

static int ppl_write_h5(sb_h5 *f, const ppl_args *a, const ppl_result *r, const float *nll) {
    int rc = sb_h5_write_f32(f, "nll", nll, r->scored);
    rc = rc ? rc : sb_h5_attr_str(f, "nll", "unit", "nats");
    rc = rc ? rc : sb_h5_attr_str(f, "nll", "meaning", "nll[i] = -ln p(x[i+1] | context of x[0..i] under the policy)");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "command", "sinkbench ppl");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "policy", r->policy.spec);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "mode", mode_name(a->mode));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", r->model_hash);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->data);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data_sha256", r->data_hash);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens", r->n_tokens);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens_scored", r->scored);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads", r->threads);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "chunk", a->chunk ? a->chunk : SB_EVAL_DEFAULT_CHUNK);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "mean_nll", r->mean_nll);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "ppl", r->ppl);
    if (isfinite(r->bpb)) rc = rc ? rc : sb_h5_attr_f64(f, NULL, "bpb", r->bpb);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "tokens_per_s", r->tokens_per_s);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "wall_s", r->wall_s);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "peak_rss_mb", r->peak_rss_mb);
    rc = rc ? rc : sb_provenance_to_h5(&r->prov, f);
    return rc;
}

/* Load the stream; .txt goes through the model's tokenizer. bytes_scored gets the UTF-8
 * bytes of the predicted tokens (x_1..x_{n-1}) for text input, 0 otherwise. */
static int ppl_load_tokens(const ppl_args *a, int32_t vocab, int32_t **ids, int64_t *n, uint64_t *bytes_scored) {
    *bytes_scored = 0;
    if (!ends_with(a->data, ".txt")) return sb_tokens_load(a->data, vocab, a->tokens, ids, n);
    char tok_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", a->model_dir);
    FILE *probe = fopen(tok_path, "rb");
    if (!probe)
        return sb_error("%s: text input needs the model's tokenizer, but %s does not exist "
                        "(use a .tok/.ids file, or add a tokenizer.json)", a->data, tok_path);
    fclose(probe);
    sb_tokenizer *tok;
    int rc = sb_tokenizer_load(&tok, tok_path);
    if (rc) return rc;
    rc = sb_tokens_load_text(a->data, tok, vocab, a->tokens, ids, n);
    if (!rc)
        for (int64_t i = 1; i < *n; i++) {
            size_t len = 0;
            if (sb_tokenizer_token_bytes(tok, (*ids)[i], &len)) *bytes_scored += len;
        }
    sb_tokenizer_free(tok);
    return rc;
}

int cmd_ppl(int argc, char **argv) {
    /* a closed stdout must be an error message and status 1, not death by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    ppl_args a;
    int rc = ppl_parse_args(argc, argv, &a);
    if (rc) {
        if (rc == SB_ERR_USAGE && argc <= 1) ppl_usage(stderr);
        return cli_fail(CMD, rc);
    }
    if (a.threads > 0) {
        openblas_set_num_threads((int)a.threads);
        omp_set_num_threads((int)a.threads);
    }
    double t_start = sb_now();
    ppl_result r;
    memset(&r, 0, sizeof r);
    r.bpb = NAN;

    struct stat st;
    if (stat(a.model_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sb_error("%s: no such model directory", a.model_dir), cli_fail(CMD, SB_ERR);
    sb_model_config cfg;
    char cfg_path[4096];
    if (snprintf(cfg_path, sizeof cfg_path, "%s/config.json", a.model_dir) >= (int)sizeof cfg_path)
        return sb_error("--model: path too long"), cli_fail(CMD, SB_ERR_USAGE);
    if ((rc = sb_hfconfig_load(&cfg, cfg_path))) return cli_fail(CMD, rc);

    char default_policy[64];
    if (!a.policy) {
        if (cfg.max_ctx > 4) snprintf(default_policy, sizeof default_policy, "sinks:4:%d", cfg.max_ctx - 4);
        else snprintf(default_policy, sizeof default_policy, "dense");
        a.policy = default_policy;
    }
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

    int32_t *ids = NULL;
    int64_t n = 0;
    if ((rc = ppl_load_tokens(&a, cfg.vocab_size, &ids, &n, &r.bytes_scored))) return cli_fail(CMD, rc);
    if (n < 2) {
        free(ids);
        return sb_error("%s: needs at least 2 tokens, has %" PRId64, a.data, n), cli_fail(CMD, SB_ERR);
    }
    r.n_tokens = n;
    r.scored = n - 1;

    sb_eval_opts opts = {.mode = a.mode, .chunk = a.chunk};
    uint64_t eval_bytes = sb_eval_memory_bytes(&cfg, &r.policy, n, &opts);
    uint64_t weight_bytes = (uint64_t)sb_model_param_count(&cfg) * sizeof(float);
    uint64_t io_bytes = (uint64_t)n * (sizeof(int32_t) + sizeof(float));
    if (eval_bytes == UINT64_MAX || weight_bytes / sizeof(float) != sb_model_param_count(&cfg) ||
        __builtin_add_overflow(eval_bytes, weight_bytes, &r.mem_needed) ||
        __builtin_add_overflow(r.mem_needed, io_bytes, &r.mem_needed))
        r.mem_needed = UINT64_MAX;
    uint64_t limit = a.max_memory ? a.max_memory : mem_available();
    if (limit && r.mem_needed > limit) {
        free(ids);
        char need[32], have[32];
        fmt_bytes(need, sizeof need, r.mem_needed);
        fmt_bytes(have, sizeof have, limit);
        if (r.mem_needed == UINT64_MAX) snprintf(need, sizeof need, "more than 2^64");
        return sb_error("policy %s over %" PRId64 " tokens needs %" PRIu64 " bytes (%s: weights %" PRIu64
                        " + evaluation %" PRIu64 "), more than the %s limit of %" PRIu64 " bytes (%s)",
                        r.policy.spec, n, r.mem_needed, need, weight_bytes, eval_bytes,
                        a.max_memory ? "--max-memory" : "available-memory", limit, have),
               cli_fail(CMD, SB_ERR);
    }

    /* Create the output first: an unwritable path fails now, not after the evaluation. */
    sb_h5 *out = NULL;
    if (a.out && (rc = sb_h5_create(&out, a.out))) {
        free(ids);
        return cli_fail(CMD, rc);
    }

    sb_model model;
    memset(&model, 0, sizeof model);
    if ((rc = sb_model_load(&model, a.model_dir))) goto fail;
    if ((rc = sb_provenance_hash_model(a.model_dir, r.model_hash))) goto fail;
    uint8_t dig[32];
    if ((rc = sb_sha256_file(a.data, dig))) goto fail;
    sb_sha256_hex(dig, r.data_hash);
    r.threads = a.threads > 0 ? (int)a.threads : openblas_get_num_threads();

    float *nll = malloc((size_t)r.scored * sizeof *nll);
    if (!nll) {
        rc = sb_error("cannot allocate %" PRId64 " NLL values", r.scored);
        goto fail;
    }
    ppl_progress_ctx pc;
    sb_progress_begin(&pc.bar, mode_name(a.mode), r.scored);
    opts.progress = ppl_progress;
    opts.user = &pc;
    double t0 = sb_now();
    r.load_s = t0 - t_start;
    rc = sb_eval_stream_nll(&model, &r.policy, ids, n, &opts, nll);
    r.wall_s = sb_now() - t0;
    sb_progress_end(&pc.bar);
    if (rc) {
        free(nll);
        goto fail;
    }
    double sum = 0;
    for (int64_t i = 0; i < r.scored; i++) sum += nll[i];
    r.mean_nll = sum / (double)r.scored;
    r.ppl = exp(r.mean_nll);
    if (r.bytes_scored > 0) r.bpb = sum / log(2.0) / (double)r.bytes_scored;
    r.tokens_per_s = r.wall_s > 0 ? (double)r.scored / r.wall_s : 0;
    r.peak_rss_mb = sb_peak_rss_mb();
    sb_provenance_collect(&r.prov); /* after the run: its load average covers the run */

    if (out) {
        rc = ppl_write_h5(out, &a, &r, nll);
        free(nll);
        if (rc) goto fail;
        rc = sb_h5_commit(out);
        out = NULL;
        if (rc) goto fail;
    } else {
        free(nll);
    }
    sb_model_free(&model);
    free(ids);
    if (a.json) {
        if ((rc = ppl_print_json(&a, &r))) return cli_fail(CMD, rc);
    } else {
        ppl_print_summary(&a, &r);
        if (fflush(stdout) != 0 || ferror(stdout))
            return sb_error("cannot write to stdout"), cli_fail(CMD, SB_ERR);
    }
    return 0;

fail:
    sb_h5_abort(out);
    sb_model_free(&model);
    free(ids);
    return cli_fail(CMD, rc);
}
