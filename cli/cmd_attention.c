/* sinkbench attention: attention maps (head average) and the sink share per layer and head
 * over the first tokens of a stream (paper Fig. 2), from a dense forward at absolute
 * positions. Writes the datasets maps [L, n, n] and sink_share [L, H] that the study's
 * attention collector (eval/study_collect_other.c) reads.
 *
 * The probe is one pass with no partial result worth keeping: Ctrl-C / SIGTERM abandon it
 * (no output, the lock and temp file removed) and exit 130 / 143; --resume runs it again. */
#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "cli/cli_run.h"
#include "engine/attention_probe.h"
#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/model.h"
#include "util/signals.h"

#define CMD "attention"
#define ATT_DEFAULT_TOKENS 64
/* maps grow as L * n^2: a few thousand tokens is already a large figure */
#define ATT_MAX_TOKENS 4096

static void att_usage(FILE *f) {
    fprintf(f, "usage: sinkbench attention --model DIR --data FILE [options]\n"
               "  --data FILE       token stream: .tok, .ids, or .txt (needs DIR/tokenizer.json)\n"
               "  --tokens N        probe the first N tokens (default %d, at most %d)\n"
               "  --sink-token on|off  for a model with a learned <sink> token (sink_token_id): on\n"
               "                    (default) puts the <sink> at position 0, as in training, before\n"
               "                    the first N-1 tokens of the stream; off probes the text alone\n"
               "  --threads N       BLAS/OpenMP threads\n"
               "  --device DEV      cpu (default), cuda or cuda:N\n"
               "  --max-memory SIZE refuse runs needing more (default: MemAvailable), e.g. 512M\n"
               "  --json            one JSON object on stdout\n"
               "  --out FILE.h5     datasets maps [layers, N, N] (head-mean attention, row = query,\n"
               "                    column = key) and sink_share [layers, heads] (mean attention of\n"
               "                    queries at positions >= %d on position 0), written atomically;\n"
               "                    FILE.h5.lock keeps a second run off it\n"
               "  --resume          accepted for symmetry with ppl/latency: an interrupted probe\n"
               "                    keeps nothing, so it runs again\n",
            ATT_DEFAULT_TOKENS, ATT_MAX_TOKENS, SB_PROBE_SHARE_FROM);
}

typedef struct {
    int64_t n, L, H;
    double wall_s, mean_share, max_share;
} att_result;

typedef struct {
    cli_run run;             /* the common options and the run's bookkeeping (cli/cli_run.h) */
    int64_t tokens;
    bool no_sink_token;
    bool sink_prefixed; /* position 0 is the model's <sink>, not the stream's first token */
    sb_model_config cfg;
    int32_t *ids;
    float *maps, *share;
    sb_backend *backend;
    att_result r;
} att_cmd;

static int att_option(const char *f, const char *v, void *user) {
    att_cmd *a = user;
    if (!strcmp(f, "--tokens")) return cli_parse_int(f, v, 2, ATT_MAX_TOKENS, &a->tokens);
    if (!strcmp(f, "--sink-token")) {
        if (strcmp(v, "on") && strcmp(v, "off")) return sb_usage_error("--sink-token: '%s' is not on or off", v);
        a->no_sink_token = !strcmp(v, "off");
        return SB_OK;
    }
    return CLI_OPT_UNKNOWN;
}

static int att_check(void *self) {
    const att_cmd *a = self;
    return a->run.c.data ? SB_OK : sb_usage_error("--data FILE is required");
}

static int att_write_h5(void *self, sb_h5 *f) {
    const att_cmd *a = self;
    const att_result *r = &a->r;
    const int64_t dm[3] = {r->L, r->n, r->n}, ds[2] = {r->L, r->H};
    int rc = sb_h5_write(f, "maps", SB_H5_F32, 3, dm, a->maps);
    rc = rc ? rc : sb_h5_attr_str(f, "maps", "meaning",
                                  "maps[l, q, k] = attention probability of query q on key k in layer l, mean over "
                                  "heads; dense forward at absolute positions; causal (0 for k > q)");
    rc = rc ? rc : sb_h5_write(f, "sink_share", SB_H5_F32, 2, ds, a->share);
    rc = rc ? rc : sb_h5_attr_str(f, "sink_share", "meaning",
                                  "sink_share[l, h] = mean attention of queries at positions >= 17 (>= 1 when "
                                  "tokens <= 17) on position 0");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "command", "sinkbench attention");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->run.c.model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", a->run.model_sha256);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->run.c.data);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data_sha256", a->run.data_sha256);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens", r->n);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "sink_token_prefixed", a->sink_prefixed);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "share_from", r->n > SB_PROBE_SHARE_FROM ? SB_PROBE_SHARE_FROM : 1);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads", a->run.threads);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "wall_s", r->wall_s);
    return rc;
}

static cJSON *att_json(void *self) {
    const att_cmd *a = self;
    const att_result *r = &a->r;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tokens", (double)r->n);
    cJSON_AddBoolToObject(o, "sink_token_prefixed", a->sink_prefixed);
    cJSON_AddNumberToObject(o, "layers", (double)r->L);
    cJSON_AddNumberToObject(o, "heads", (double)r->H);
    cJSON_AddNumberToObject(o, "sink_share_mean", r->mean_share);
    cJSON_AddNumberToObject(o, "sink_share_max_layer", r->max_share);
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(o, "threads", a->run.threads);
    cli_run_json_inputs(&a->run, o, true);
    return o;
}

static void att_summary(void *self) {
    const att_result *r = &((const att_cmd *)self)->r;
    printf("%" PRId64 " tokens, %" PRId64 " layers x %" PRId64 " heads: sink share (head mean) %.3f on "
           "average over layers, %.3f in the largest layer; %.2f s\n",
           r->n, r->L, r->H, r->mean_share, r->max_share, r->wall_s);
}

static int att_prepare(void *self) {
    att_cmd *a = self;
    int rc;
    if ((rc = cli_load_model_config(a->run.c.model_dir, &a->cfg))) return rc;
    /* n <= ATT_MAX_TOKENS and L, H are validated config sizes: no overflow */
    size_t n_params = sb_model_param_count(&a->cfg), n_max = (size_t)a->tokens;
    sb_policy_spec dense;
    sb_policy_parse("dense", &dense);
    const sb_mem_part parts[3] = {
        {"weights", (uint64_t)n_params * sizeof(float)},
        {"dense cache", sb_decoder_memory_bytes(&a->cfg, &dense, (int64_t)n_max)},
        {"attention maps", ((uint64_t)a->cfg.n_layers * n_max * n_max + (uint64_t)a->cfg.n_layers * a->cfg.n_heads) *
                               sizeof(float)},
    };
    memcpy(a->run.mem, parts, sizeof parts);
    a->run.n_mem = 3;
    snprintf(a->run.mem_what, sizeof a->run.mem_what, "attention over %zu tokens", n_max);
    return SB_OK;
}

static int att_open(void *self) {
    att_cmd *a = self;
    att_result *r = &a->r;
    int64_t n = 0;
    /* a sink-token model was trained with its <sink> at position 0 of every window: without it the
     * probe would show the text's first token, which such a model has no reason to attend to */
    a->sink_prefixed = a->cfg.sink_token_id >= 0 && !a->no_sink_token;
    int64_t pre = a->sink_prefixed ? 1 : 0;
    int rc = cli_load_stream(a->run.c.model_dir, a->run.c.data, a->cfg.vocab_size, a->tokens - pre, &a->ids, &n, NULL);
    if (rc) return rc;
    if (n + pre < 2) return sb_error("%s: needs at least 2 tokens, has %" PRId64, a->run.c.data, n);
    if (pre) {
        int32_t *ids = realloc(a->ids, (size_t)(n + 1) * sizeof *ids);
        if (!ids) return sb_error("out of memory for %" PRId64 " token ids", n + 1);
        memmove(ids + 1, ids, (size_t)n * sizeof *ids);
        ids[0] = a->cfg.sink_token_id;
        a->ids = ids;
        n += 1;
    }
    r->n = n;
    r->L = a->cfg.n_layers;
    r->H = a->cfg.n_heads;
    return SB_OK;
}

static int att_load(void *self) {
    att_cmd *a = self;
    att_result *r = &a->r;
    a->maps = malloc((size_t)r->L * (size_t)r->n * (size_t)r->n * sizeof *a->maps);
    a->share = malloc((size_t)r->L * (size_t)r->H * sizeof *a->share);
    if (!a->maps || !a->share)
        return sb_error("out of memory for attention maps of %" PRId64 " layers x %" PRId64 " tokens", r->L, r->n);
    return cli_open_backend(&a->run.c, &a->run.model, &a->backend);
}

/* One pass, no partial result worth keeping: a stop abandons it. */
static int att_run(void *self) {
    att_cmd *a = self;
    double t0 = sb_now();
    int rc = sb_attention_probe_on(a->backend, &a->run.model, a->ids, a->r.n, a->maps, a->share);
    a->r.wall_s = sb_now() - t0;
    if (!rc) sb_signal_poll(); /* the pass is the one chunk: also the SB_TEST_SIGNAL_AT hook of the tests */
    return rc;
}

static int att_finish(void *self) {
    att_cmd *a = self;
    att_result *r = &a->r;
    double total = 0;
    for (int64_t l = 0; l < r->L; l++) {
        double s = 0;
        for (int64_t h = 0; h < r->H; h++) s += a->share[l * r->H + h];
        s /= (double)r->H;
        total += s;
        if (s > r->max_share) r->max_share = s;
    }
    r->mean_share = total / (double)r->L;
    return SB_OK;
}

static void att_cleanup(void *self) {
    att_cmd *a = self;
    free(a->maps);
    free(a->share);
    free(a->ids);
    sb_backend_close(a->backend);
}

/* not resumable: a stop abandons the probe ("interrupted; nothing written") */
static const cli_command att_command = {
    .name = CMD, .model = true, .usage = att_usage, .option = att_option, .check = att_check,
    .prepare = att_prepare, .open = att_open, .load = att_load, .run = att_run, .finish = att_finish,
    .write_h5 = att_write_h5, .json = att_json, .summary = att_summary, .cleanup = att_cleanup,
};

int cmd_attention(int argc, char **argv) {
    att_cmd a = {.tokens = ATT_DEFAULT_TOKENS};
    return cli_run_main(&att_command, &a, &a.run, argc, argv);
}
