/* sinkbench ppl: per-token NLL / perplexity of a token stream under a cache policy.
 *
 * Everything that can be wrong with the input is checked before the evaluation starts
 * (config, policy against the model, token ids, memory, output path), so a long run never
 * fails at the end for a reason that was knowable at the start.
 *
 * Ctrl-C / SIGTERM stop the evaluation after the current chunk; with --out the per-token
 * NLL done so far is saved to FILE.h5.resume (with a hash of every input), and --resume
 * replays the finished tokens through the forward without the head, then continues: the
 * result is bit-identical to an uninterrupted run. */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "datasets/tokens.h"
#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "util/h5.h"
#include "util/lock.h"
#include "util/memcheck.h"
#include "util/progress.h"
#include "util/provenance.h"
#include "util/resume_state.h"
#include "util/sha256.h"
#include "util/signals.h"

#define CMD "ppl"

typedef struct {
    cli_common_opts c;       /* --model --data --out --threads --max-memory --json --resume */
    const char *policy;
    sb_eval_mode mode;
    int64_t tokens;          /* 0 = all */
    int64_t chunk;           /* 0 = engine default */
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
            "  --out FILE.h5       per-token NLL with the run's configuration, written atomically;\n"
            "                      FILE.h5.lock keeps a second run off it; Ctrl-C / SIGTERM save\n"
            "                      the finished part to FILE.h5.resume and exit 130 / 143\n"
            "  --resume            continue from FILE.h5.resume (bit-identical to an unbroken run)\n");
}

static int ppl_option(const char *f, const char *v, void *user) {
    ppl_args *a = user;
    if (!strcmp(f, "--policy")) a->policy = v;
    else if (!strcmp(f, "--mode")) {
        if (!strcmp(v, "exact")) a->mode = SB_MODE_EXACT;
        else if (!strcmp(v, "decode")) a->mode = SB_MODE_DECODE;
        else return sb_usage_error("--mode: '%s' is not exact or decode", v);
    } else if (!strcmp(f, "--tokens")) return cli_parse_int(f, v, 2, INT64_MAX, &a->tokens);
    else if (!strcmp(f, "--chunk")) return cli_parse_int(f, v, 1, SB_POLICY_MAX_LEN, &a->chunk);
    else return CLI_OPT_UNKNOWN;
    return SB_OK;
}

static int ppl_parse_args(int argc, char **argv, ppl_args *a) {
    memset(a, 0, sizeof *a);
    int rc = cli_opts_parse(argc, argv, CMD, ppl_usage, &a->c, ppl_option, a);
    if (rc) return rc;
    if (!a->c.data) return sb_usage_error("--data FILE is required");
    if (a->c.resume && !a->c.out) return sb_usage_error("--resume needs --out FILE.h5 (its state is FILE.h5.resume)");
    return SB_OK;
}

typedef struct {
    sb_progress bar;
    int64_t done;            /* predictions finished at the last report */
} ppl_progress_ctx;

/* Called after every chunk: a caught SIGINT/SIGTERM stops the evaluation here, with
 * nll[0, done) complete, so that part can be saved for --resume. */
static int ppl_progress(const sb_eval_progress *p, void *user) {
    ppl_progress_ctx *c = user;
    c->done = p->done;
    sb_progress_update(&c->bar, p->done, p->sum_nll);
    return sb_signal_poll() != 0;
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
    cJSON_AddStringToObject(o, "model", a->c.model_dir);
    cJSON_AddStringToObject(o, "model_sha256", r->model_hash);
    cJSON_AddStringToObject(o, "data", a->c.data);
    cJSON_AddStringToObject(o, "data_sha256", r->data_hash);
    if (a->c.out) cJSON_AddStringToObject(o, "out", a->c.out);
    sb_provenance_to_json(&r->prov, o);
    return cli_print_json(o);
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
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->c.model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", r->model_hash);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->c.data);
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

/* Everything the result depends on: a resume under another hash would not continue the
 * interrupted run. Threads are in because BLAS reductions may split differently. */
static void ppl_inputs_hash(const ppl_args *a, const ppl_result *r, uint8_t hash[32]) {
    sb_resume_hash h;
    sb_resume_hash_init(&h, CMD);
    sb_resume_hash_str(&h, "model_sha256", r->model_hash);
    sb_resume_hash_str(&h, "data_sha256", r->data_hash);
    sb_resume_hash_str(&h, "policy", r->policy.spec);
    sb_resume_hash_str(&h, "mode", mode_name(a->mode));
    sb_resume_hash_i64(&h, "tokens", r->n_tokens);
    sb_resume_hash_i64(&h, "chunk", a->chunk ? a->chunk : SB_EVAL_DEFAULT_CHUNK);
    sb_resume_hash_i64(&h, "threads", r->threads);
    sb_resume_hash_final(&h, hash);
}

/* Resume payload: int64 done, then float nll[done]. */
static int ppl_save_state(const char *path, const uint8_t hash[32], const float *nll, int64_t done) {
    size_t n = sizeof(int64_t) + (size_t)done * sizeof(float);
    char *buf = malloc(n);
    if (!buf) return sb_error("%s: out of memory for the resume state", path);
    memcpy(buf, &done, sizeof done);
    if (done) memcpy(buf + sizeof done, nll, (size_t)done * sizeof(float));
    int rc = sb_resume_save(path, CMD, hash, buf, n);
    free(buf);
    return rc;
}

/* Fill nll[0, *done) from a saved state; *done = 0 when there is none. */
static int ppl_load_state(const char *path, const uint8_t hash[32], float *nll, int64_t scored, int64_t *done) {
    *done = 0;
    void *buf;
    size_t n;
    int missing;
    int rc = sb_resume_load(path, CMD, hash, &buf, &n, &missing);
    if (rc) {
        if (!missing) return rc;
        sb_clear_error();
        fprintf(stderr, "sinkbench ppl: no saved state in %s, starting from the beginning\n", path);
        return SB_OK;
    }
    int64_t d = -1;
    if (n >= sizeof d) memcpy(&d, buf, sizeof d);
    if (d < 0 || d > scored || n != sizeof d + (size_t)d * sizeof(float)) {
        free(buf);
        return sb_error("%s: resume state does not match this stream (%" PRId64 " predictions)", path, scored);
    }
    if (d) memcpy(nll, (char *)buf + sizeof d, (size_t)d * sizeof(float));
    free(buf);
    *done = d;
    return SB_OK;
}

int cmd_ppl(int argc, char **argv) {
    /* a closed stdout must be an error message and status 1, not death by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    /* from the start: a signal during loading is answered at the first check, after the
     * output's temp file and lock exist, so both are cleaned up */
    sb_signals_install();
    ppl_args a;
    int rc = ppl_parse_args(argc, argv, &a);
    if (rc) {
        if (rc == SB_ERR_USAGE && argc <= 1) ppl_usage(stderr);
        return cli_fail(CMD, rc);
    }
    cli_set_threads(a.c.threads);
    double t_start = sb_now();
    ppl_result r;
    memset(&r, 0, sizeof r);
    r.bpb = NAN;

    sb_model_config cfg;
    if ((rc = cli_load_model_config(a.c.model_dir, &cfg))) return cli_fail(CMD, rc);
    char default_policy[64];
    if (!a.policy) {
        if (cfg.max_ctx > 4) snprintf(default_policy, sizeof default_policy, "sinks:4:%d", cfg.max_ctx - 4);
        else snprintf(default_policy, sizeof default_policy, "dense");
        a.policy = default_policy;
    }
    if ((rc = cli_parse_policy(a.policy, &cfg, &r.policy))) return cli_fail(CMD, rc);

    int32_t *ids = NULL;
    int64_t n = 0;
    if ((rc = cli_load_stream(a.c.model_dir, a.c.data, cfg.vocab_size, a.tokens, &ids, &n, &r.bytes_scored)))
        return cli_fail(CMD, rc);
    if (n < 2) {
        free(ids);
        return sb_error("%s: needs at least 2 tokens, has %" PRId64, a.c.data, n), cli_fail(CMD, SB_ERR);
    }
    r.n_tokens = n;
    r.scored = n - 1;

    sb_eval_opts opts = {.mode = a.mode, .chunk = a.chunk};
    size_t n_params = sb_model_param_count(&cfg);
    sb_mem_part parts[3] = {
        {"weights", n_params > UINT64_MAX / sizeof(float) ? UINT64_MAX : (uint64_t)n_params * sizeof(float)},
        {"evaluation (KV cache, activations, logits)", sb_eval_memory_bytes(&cfg, &r.policy, n, &opts)},
        {"tokens and NLL", (uint64_t)n * (sizeof(int32_t) + sizeof(float))},
    };
    r.mem_needed = sb_mem_total(parts, 3);
    char what[128];
    snprintf(what, sizeof what, "policy %s over %" PRId64 " tokens", r.policy.spec, n);
    if ((rc = sb_mem_check(what, parts, 3, a.c.max_memory))) {
        free(ids);
        return cli_fail(CMD, rc);
    }

    /* Lock and create the output first: a clash or an unwritable path fails now, not after
     * the evaluation. */
    sb_lock *lock = NULL;
    sb_h5 *out = NULL;
    char state_path[4096] = "";
    if (a.c.out && ((rc = sb_resume_path(state_path, sizeof state_path, a.c.out)) ||
                    (rc = sb_lock_acquire(&lock, a.c.out)) || (rc = sb_h5_create(&out, a.c.out)))) {
        sb_lock_release(lock);
        free(ids);
        return cli_fail(CMD, rc);
    }

    sb_model model;
    memset(&model, 0, sizeof model);
    float *nll = NULL;
    if ((rc = sb_model_load(&model, a.c.model_dir))) goto fail;
    if ((rc = sb_provenance_hash_model(a.c.model_dir, r.model_hash))) goto fail;
    uint8_t dig[32], hash[32];
    if ((rc = sb_sha256_file(a.c.data, dig))) goto fail;
    sb_sha256_hex(dig, r.data_hash);
    r.threads = cli_set_threads(a.c.threads);
    ppl_inputs_hash(&a, &r, hash);

    nll = malloc((size_t)r.scored * sizeof *nll);
    if (!nll) {
        rc = sb_error("cannot allocate %" PRId64 " NLL values", r.scored);
        goto fail;
    }
    if (a.c.resume && (rc = ppl_load_state(state_path, hash, nll, r.scored, &opts.resume_from))) goto fail;
    ppl_progress_ctx pc = {.done = opts.resume_from};
    sb_progress_begin(&pc.bar, mode_name(a.mode), r.scored);
    opts.progress = ppl_progress;
    opts.user = &pc;
    double t0 = sb_now();
    r.load_s = t0 - t_start;
    rc = sb_signal_caught() ? SB_ERR : sb_eval_stream_nll(&model, &r.policy, ids, n, &opts, nll);
    r.wall_s = sb_now() - t0;
    sb_progress_end(&pc.bar);
    if (sb_signal_caught()) {
        /* finished or not, a stop that was asked for exits as interrupted */
        if (!a.c.out) {
            fprintf(stderr, "sinkbench ppl: interrupted after %" PRId64 " of %" PRId64
                            " predictions; nothing saved (only runs with --out can resume)\n", pc.done, r.scored);
        } else if ((rc = ppl_save_state(state_path, hash, nll, pc.done))) {
            goto fail;
        } else {
            fprintf(stderr, "sinkbench ppl: interrupted after %" PRId64 " of %" PRId64 " predictions, saved to %s\n",
                    pc.done, r.scored, state_path);
            sb_signal_print_resume(stderr, argc, argv);
        }
        sb_h5_abort(out);
        sb_lock_release(lock);
        sb_model_free(&model);
        free(nll);
        free(ids);
        return sb_signal_exit_status();
    }
    if (rc) goto fail;
    double sum = 0;
    for (int64_t i = 0; i < r.scored; i++) sum += nll[i];
    r.mean_nll = sum / (double)r.scored;
    r.ppl = exp(r.mean_nll);
    if (r.bytes_scored > 0) r.bpb = sum / log(2.0) / (double)r.bytes_scored;
    r.tokens_per_s = r.wall_s > 0 ? (double)(r.scored - opts.resume_from) / r.wall_s : 0;
    r.peak_rss_mb = sb_peak_rss_mb();
    sb_provenance_collect(&r.prov); /* after the run: its load average covers the run */

    if (out) {
        rc = ppl_write_h5(out, &a, &r, nll);
        if (!rc && opts.resume_from) rc = sb_h5_attr_i64(out, NULL, "resumed_at", opts.resume_from);
        if (rc) goto fail;
        rc = sb_h5_commit(out);
        out = NULL;
        if (rc) goto fail;
        unlink(state_path); /* the result is complete: the partial state is spent */
    }
    free(nll);
    nll = NULL;
    sb_lock_release(lock);
    lock = NULL;
    sb_model_free(&model);
    free(ids);
    if (a.c.json) {
        if ((rc = ppl_print_json(&a, &r))) return cli_fail(CMD, rc);
    } else {
        ppl_print_summary(&a, &r);
        if (fflush(stdout) != 0 || ferror(stdout))
            return sb_error("cannot write to stdout"), cli_fail(CMD, SB_ERR);
    }
    return 0;

fail:
    sb_h5_abort(out);
    sb_lock_release(lock);
    sb_model_free(&model);
    free(nll);
    free(ids);
    return cli_fail(CMD, rc);
}
