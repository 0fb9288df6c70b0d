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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "cli/cli_run.h"
#include "cli/cli_shard.h"
#include "engine/common.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/stream_eval.h"
#include "util/progress.h"
#include "util/signals.h"

#define CMD "ppl"

static void ppl_usage(FILE *f) {
    fprintf(f,
            "usage: sinkbench ppl --model DIR --data FILE [options]\n"
            "  --data FILE         token stream: .tok, .ids, or .txt (needs DIR/tokenizer.json)\n"
            "  --policy SPEC       %s\n"
            "                      (default sinks:4:<max_ctx-4>)\n"
            "  --mode exact|decode batched exact evaluation (default) or one token per forward;\n"
            "                      policies without an exact plan (h2o, tova) run in decode mode\n"
            "  --device DEV        cpu (default), cuda or cuda:N\n"
            "  --compute C         auto (default), f32, bf16 or f16 (GPU arithmetic)\n"
            "  --tokens N          use the first N tokens (N-1 predictions)\n"
            "  --chunk N           exact-mode queries per batched forward\n"
            "  --threads N         BLAS/OpenMP threads\n"
            "  --max-memory SIZE   refuse runs needing more (default: MemAvailable), e.g. 512M\n"
            "  --json              one JSON object on stdout\n"
            "  --windows N         also the perplexity of N equal consecutive parts of the stream\n"
            "                      (JSON window_ppl, and their spread: is the curve flat?)\n"
            "  --out FILE.h5       per-token NLL with the run's configuration, written atomically;\n"
            "                      FILE.h5.lock keeps a second run off it; Ctrl-C / SIGTERM save\n"
            "                      the finished part to FILE.h5.resume and exit 130 / 143\n"
            "  --resume            continue from FILE.h5.resume (bit-identical to an unbroken run)\n"
            "under mpirun -np N (or srun): the stream is split over the ranks, each scoring its part after a\n"
            "halo of layers*W tokens (exact mode; not dense, h2o or tova); rank 0 writes the one result,\n"
            "each rank keeps FILE.h5.resume.rank<r>; --device cuda is cuda:<local rank> (docs/MPI.md)\n",
            sb_policy_syntax_list());
}

/* Everything the run produced, for JSON, the summary and the h5 attributes. */
typedef struct {
    sb_policy_spec policy;
    sb_eval_mode mode_used;   /* decode for a policy without an exact plan */
    int64_t chunk;            /* exact-mode chunk in effect */
    char device[32];
    sb_compute compute;
    int64_t n_tokens, scored;
    double mean_nll, ppl, bpb; /* bpb NAN unless text input */
    uint64_t bytes_scored;
    double tokens_per_s, wall_s, load_s, peak_rss_mb;
    uint64_t mem_needed;
} ppl_result;

typedef struct {
    sb_progress bar;
    int64_t *done;           /* predictions finished at the last report (cli_run's) */
} ppl_progress_ctx;

typedef struct {
    cli_run run;             /* the common options and the run's bookkeeping (cli/cli_run.h) */
    const char *policy;
    sb_eval_mode mode;
    int64_t tokens;          /* 0 = all */
    int64_t chunk;           /* 0 = engine default */
    int64_t windows;         /* --windows N: per-part perplexities (0 = off) */
    char default_policy[64];
    double t_start;
    sb_model_config cfg;
    int32_t *ids;
    float *nll;
    sb_eval_opts opts;
    sb_backend *backend;
    ppl_result r;
    int64_t resumed;         /* predictions restored from resume states (every rank's) */
    cli_shard shard;         /* the rank's part of a run over MPI ranks (cli/cli_shard.h) */
} ppl_cmd;

static int ppl_option(const char *f, const char *v, void *user) {
    ppl_cmd *a = user;
    if (!strcmp(f, "--policy")) a->policy = v;
    else if (!strcmp(f, "--mode")) {
        if (!strcmp(v, "exact")) a->mode = SB_MODE_EXACT;
        else if (!strcmp(v, "decode")) a->mode = SB_MODE_DECODE;
        else return sb_usage_error("--mode: '%s' is not exact or decode", v);
    } else if (!strcmp(f, "--tokens")) return cli_parse_int(f, v, 2, INT64_MAX, &a->tokens);
    else if (!strcmp(f, "--chunk")) return cli_parse_int(f, v, 1, SB_POLICY_MAX_LEN, &a->chunk);
    else if (!strcmp(f, "--windows")) return cli_parse_int(f, v, 1, 100000, &a->windows);
    else return CLI_OPT_UNKNOWN;
    return SB_OK;
}

static int ppl_check(void *self) {
    ppl_cmd *a = self;
    return a->run.c.data ? SB_OK : sb_usage_error("--data FILE is required");
}

/* Called after every chunk: a caught SIGINT/SIGTERM stops the evaluation here, with
 * nll[0, done) complete, so that part can be saved for --resume. */
static int ppl_progress(const sb_eval_progress *p, void *user) {
    ppl_progress_ctx *c = user;
    *c->done = p->done;
    sb_progress_update(&c->bar, p->done, p->sum_nll);
    return sb_signal_poll() != 0;
}


static void json_num_or_null(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

/* window_ppl[w]: perplexity over predictions [w*S/N, (w+1)*S/N); window_spread: max/min - 1. */
static void window_json(const ppl_cmd *a, cJSON *o) {
    const int64_t S = a->r.scored, N = a->windows;
    cJSON *arr = cJSON_AddArrayToObject(o, "window_ppl");
    double lo = INFINITY, hi = 0.0;
    for (int64_t w = 0; w < N; w++) {
        int64_t i0 = w * S / N, i1 = (w + 1) * S / N;
        double sum = 0.0;
        for (int64_t i = i0; i < i1; i++) sum += a->nll[i];
        double p = exp(sum / (double)(i1 - i0));
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(p));
    }
    cJSON_AddNumberToObject(o, "window_tokens", (double)(S / N));
    cJSON_AddNumberToObject(o, "window_spread", hi / lo - 1.0);
}

static cJSON *ppl_json(void *self) {
    const ppl_cmd *a = self;
    const ppl_result *r = &a->r;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "policy", r->policy.spec);
    cJSON_AddStringToObject(o, "mode", sb_eval_mode_name(a->mode));
    cJSON_AddStringToObject(o, "mode_used", sb_eval_mode_name(r->mode_used));
    cJSON_AddStringToObject(o, "device", r->device);
    if (a->backend && a->backend->device_name[0]) cJSON_AddStringToObject(o, "device_name", a->backend->device_name);
    cJSON_AddStringToObject(o, "compute", sb_compute_name(r->compute));
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
    cJSON_AddNumberToObject(o, "threads", a->run.threads);
    cJSON_AddNumberToObject(o, "chunk", (double)(r->chunk));
    if (a->windows > 0 && a->nll && r->scored >= a->windows) window_json(a, o);
    cli_run_json_inputs(&a->run, o, true);
    if (a->shard.ranks > 1) cli_shard_json(&a->shard, o);
    return o;
}

static void ppl_summary(void *self) {
    const ppl_cmd *a = self;
    const ppl_result *r = &a->r;
    printf("policy %s, mode %s%s, %s: %" PRId64 " tokens scored\n", r->policy.spec, sb_eval_mode_name(r->mode_used),
           r->mode_used != a->mode ? " (the policy has no exact plan)" : "", r->device, r->scored);
    printf("mean NLL %.4f nats, perplexity %.3f", r->mean_nll, r->ppl);
    if (isfinite(r->bpb)) printf(", %.4f bits/byte", r->bpb);
    printf("\n%.1f tokens/s, %.2f s, peak RSS %.1f MB, %d threads, git %s\n", r->tokens_per_s, r->wall_s,
           r->peak_rss_mb, a->run.threads, a->run.prov.git_rev);
    if (a->shard.ranks > 1)
        printf("%d MPI ranks, %d thread%s each; the halos are %.1f%% of the work\n", a->shard.ranks,
               a->run.threads, a->run.threads == 1 ? "" : "s", 100.0 * a->shard.halo_share);
}

static int ppl_write_h5(void *self, sb_h5 *f) {
    const ppl_cmd *a = self;
    const ppl_result *r = &a->r;
    int rc = sb_h5_write_f32(f, "nll", a->nll, r->scored);
    rc = rc ? rc : sb_h5_attr_str(f, "nll", "unit", "nats");
    rc = rc ? rc : sb_h5_attr_str(f, "nll", "meaning", "nll[i] = -ln p(x[i+1] | context of x[0..i] under the policy)");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "command", "sinkbench ppl");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "policy", r->policy.spec);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "mode", sb_eval_mode_name(a->mode));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "mode_used", sb_eval_mode_name(r->mode_used));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "device", r->device);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "compute", sb_compute_name(r->compute));
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->run.c.model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", a->run.model_sha256);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->run.c.data);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data_sha256", a->run.data_sha256);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens", r->n_tokens);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens_scored", r->scored);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads", a->run.threads);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "chunk", r->chunk);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "mean_nll", r->mean_nll);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "ppl", r->ppl);
    if (isfinite(r->bpb)) rc = rc ? rc : sb_h5_attr_f64(f, NULL, "bpb", r->bpb);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "tokens_per_s", r->tokens_per_s);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "wall_s", r->wall_s);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "peak_rss_mb", r->peak_rss_mb);
    if (a->opts.resume_from && a->shard.ranks <= 1)
        rc = rc ? rc : sb_h5_attr_i64(f, NULL, "resumed_at", a->opts.resume_from);
    if (a->shard.ranks > 1) rc = rc ? rc : cli_shard_h5(&a->shard, f);
    return rc;
}

/* Everything the result depends on: a resume under another hash would not continue the
 * interrupted run. Threads are in because BLAS reductions may split differently. */
static int ppl_inputs_hash(void *self, sb_resume_hash *h) {
    const ppl_cmd *a = self;
    const ppl_result *r = &a->r;
    sb_resume_hash_str(h, "model_sha256", a->run.model_sha256);
    sb_resume_hash_str(h, "data_sha256", a->run.data_sha256);
    sb_resume_hash_str(h, "policy", r->policy.spec);
    sb_resume_hash_str(h, "mode", sb_eval_mode_name(a->mode));
    /* another device or arithmetic gives other numbers; the cpu's hash stays as it was */
    if (strcmp(r->device, "cpu")) {
        sb_resume_hash_str(h, "device", r->device);
        sb_resume_hash_str(h, "compute", sb_compute_name(r->compute));
    }
    sb_resume_hash_i64(h, "tokens", r->n_tokens);
    sb_resume_hash_i64(h, "chunk", r->chunk);
    sb_resume_hash_i64(h, "threads", a->run.threads);
    if (a->shard.ranks > 1) cli_shard_hash(&a->shard, h);
    return SB_OK;
}

/* Resume payload: int64 done, then float nll[done] (of the rank's part under MPI). */
static int ppl_save(void *self, char **payload, size_t *n) {
    const ppl_cmd *a = self;
    int64_t done = a->run.done;
    *n = sizeof(int64_t) + (size_t)done * sizeof(float);
    char *buf = *payload = malloc(*n);
    if (!buf) return sb_error("%s: out of memory for the resume state", a->run.state_path);
    memcpy(buf, &done, sizeof done);
    if (done) memcpy(buf + sizeof done, a->nll + a->opts.score_from, (size_t)done * sizeof(float));
    return SB_OK;
}

/* Fill nll[0, done) from a saved state (nll[from, from + done) of the rank's part under MPI). */
static int ppl_restore(void *self, const char *buf, size_t n) {
    ppl_cmd *a = self;
    int64_t d = -1, scored = a->run.total;
    if (n >= sizeof d) memcpy(&d, buf, sizeof d);
    if (d < 0 || d > scored || n != sizeof d + (size_t)d * sizeof(float))
        return sb_error("%s: resume state does not match this stream (%" PRId64 " predictions)", a->run.state_path,
                        scored);
    if (d) memcpy(a->nll + a->opts.score_from, buf + sizeof d, (size_t)d * sizeof(float));
    a->opts.resume_from = a->run.done = a->resumed = d;
    return SB_OK;
}

/* Config, policy and the stream: everything that can be wrong with the input is known
 * before the evaluation starts. */
static int ppl_prepare(void *self) {
    ppl_cmd *a = self;
    ppl_result *r = &a->r;
    a->t_start = sb_now();
    r->bpb = NAN;
    int rc;
    if ((rc = cli_load_model_config(a->run.c.model_dir, &a->cfg))) return rc;
    if (!a->policy) {
        if (a->cfg.max_ctx > 4) snprintf(a->default_policy, sizeof a->default_policy, "sinks:4:%d", a->cfg.max_ctx - 4);
        else snprintf(a->default_policy, sizeof a->default_policy, "dense");
        a->policy = a->default_policy;
    }
    if ((rc = cli_parse_policy(a->policy, &a->cfg, &r->policy))) return rc;
    r->mode_used = sb_eval_mode_used(&r->policy, &a->cfg, a->mode);

    int64_t n = 0;
    if ((rc = cli_load_stream(a->run.c.model_dir, a->run.c.data, a->cfg.vocab_size, a->tokens, &a->ids, &n,
                              &r->bytes_scored)))
        return rc;
    if (n < 2) return sb_error("%s: needs at least 2 tokens, has %" PRId64, a->run.c.data, n);
    r->n_tokens = n;
    r->scored = a->run.total = n - 1;

    a->opts = (sb_eval_opts){.mode = a->mode, .chunk = a->chunk};
    size_t n_params = sb_model_param_count(&a->cfg);
    const sb_mem_part parts[3] = {
        {"weights", n_params > UINT64_MAX / sizeof(float) ? UINT64_MAX : (uint64_t)n_params * sizeof(float)},
        {"evaluation (KV cache, activations, logits)", sb_eval_memory_bytes(&a->cfg, &r->policy, n, &a->opts)},
        {"tokens and NLL", (uint64_t)n * (sizeof(int32_t) + sizeof(float))},
    };
    memcpy(a->run.mem, parts, sizeof parts);
    a->run.n_mem = 3;
    r->mem_needed = sb_mem_total(parts, 3);
    snprintf(a->run.mem_what, sizeof a->run.mem_what, "policy %s over %" PRId64 " tokens", r->policy.spec, n);
    return SB_OK;
}

static int ppl_load(void *self) {
    ppl_cmd *a = self;
    ppl_result *r = &a->r;
    if (!(a->nll = malloc((size_t)r->scored * sizeof *a->nll)))
        return sb_error("cannot allocate %" PRId64 " NLL values", r->scored);
    int rc = cli_open_backend(&a->run.c, &a->run.model, &a->backend);
    if (rc) return rc;
    snprintf(r->device, sizeof r->device, "%s", a->backend->device);
    r->compute = a->backend->compute;
    a->opts.backend = a->backend;
    r->chunk = sb_eval_chunk(&a->opts);
    return SB_OK;
}

static int ppl_run(void *self) {
    ppl_cmd *a = self;
    ppl_result *r = &a->r;
    ppl_progress_ctx pc = {.done = &a->run.done};
    if (a->shard.ranks > 1) {
        int rc = cli_shard_test_fail(&a->shard);
        if (rc || a->shard.from == a->shard.to) return rc; /* more ranks than chunks: nothing to score */
    }
    sb_progress_begin(&pc.bar, sb_eval_mode_name(r->mode_used), a->run.total);
    a->opts.progress = ppl_progress;
    a->opts.user = &pc;
    double t0 = sb_now();
    r->load_s = t0 - a->t_start;
    int rc = sb_eval_stream_nll(&a->run.model, &r->policy, a->ids, r->n_tokens, &a->opts, a->nll);
    r->wall_s = sb_now() - t0;
    sb_progress_end(&pc.bar);
    return rc;
}

static int ppl_finish(void *self) {
    ppl_cmd *a = self;
    ppl_result *r = &a->r;
    double sum = 0;
    for (int64_t i = 0; i < r->scored; i++) sum += a->nll[i];
    r->mean_nll = sum / (double)r->scored;
    r->ppl = exp(r->mean_nll);
    if (r->bytes_scored > 0) r->bpb = sum / log(2.0) / (double)r->bytes_scored;
    r->tokens_per_s = r->wall_s > 0 ? (double)(r->scored - a->resumed) / r->wall_s : 0;
    r->peak_rss_mb = sb_peak_rss_mb();
    return SB_OK;
}

static void ppl_cleanup(void *self) {
    ppl_cmd *a = self;
    free(a->nll);
    free(a->ids);
    sb_backend_close(a->backend);
    cli_shard_free(&a->shard);
}

/* Under MPI: this rank's part of the predictions (after load: the chunk is known). */
static int ppl_shard(void *self) {
    ppl_cmd *a = self;
    int rc = cli_shard_plan(&a->shard, &a->cfg, &a->r.policy, a->mode, a->r.scored, a->r.chunk);
    if (rc) return rc;
    a->opts.score_from = a->shard.from;
    a->opts.score_to = a->shard.to;
    a->run.total = a->shard.to - a->shard.from;
    return SB_OK;
}

/* Every rank's part on rank 0, with the longest wall time (the run's) and every resumed part. */
static int ppl_gather(void *self) {
    ppl_cmd *a = self;
    cli_shard_rank me = {.wall_s = a->r.wall_s, .peak_rss_mb = sb_peak_rss_mb(), .resumed = a->opts.resume_from};
    if (gethostname(me.host, sizeof me.host - 1)) snprintf(me.host, sizeof me.host, "?");
    snprintf(me.device, sizeof me.device, "%s", a->r.device);
    int rc = cli_shard_gather(&a->shard, a->nll, &me);
    if (rc) return rc;
    a->r.wall_s = cli_shard_wall_s(&a->shard);
    a->resumed = cli_shard_resumed(&a->shard);
    return SB_OK;
}

static const cli_command ppl_command = {
    .name = CMD, .model = true, .usage = ppl_usage, .option = ppl_option, .check = ppl_check,
    .prepare = ppl_prepare, .load = ppl_load, .run = ppl_run, .finish = ppl_finish, .cleanup = ppl_cleanup,
    /* --resume continues from the NLL finished so far */
    .unit = "predictions", .inputs_hash = ppl_inputs_hash, .save = ppl_save, .restore = ppl_restore,
    .write_h5 = ppl_write_h5, .json = ppl_json, .summary = ppl_summary,
    /* mpirun -np N: one stream split over the ranks */
    .shard = ppl_shard, .gather = ppl_gather,
};

int cmd_ppl(int argc, char **argv) {
    ppl_cmd a = {.mode = SB_MODE_EXACT};
    return cli_run_main(&ppl_command, &a, &a.run, argc, argv);
}
