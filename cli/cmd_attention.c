/* sinkbench attention: attention maps (head average) and the sink share per layer and head
 * over the first tokens of a stream (paper Fig. 2), from a dense forward at absolute
 * positions. Writes the datasets maps [L, n, n] and sink_share [L, H] that the study's
 * attention collector (eval/study_collect_other.c) reads.
 *
 * The probe is one pass with no partial result worth keeping: Ctrl-C / SIGTERM abandon it
 * (no output, the lock and temp file removed) and exit 130 / 143; --resume runs it again. */
#include <cJSON.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_opts.h"
#include "engine/attention_probe.h"
#include "engine/common.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "util/h5.h"
#include "util/lock.h"
#include "util/memcheck.h"
#include "util/provenance.h"
#include "util/sha256.h"
#include "util/signals.h"

#define CMD "attention"
#define ATT_DEFAULT_TOKENS 64
/* maps grow as L * n^2: a few thousand tokens is already a large figure */
#define ATT_MAX_TOKENS 4096

typedef struct {
    cli_common_opts c;       /* --model --data --out --threads --max-memory --json --resume */
    int64_t tokens;
} att_args;

static void att_usage(FILE *f) {
    fprintf(f, "usage: sinkbench attention --model DIR --data FILE [options]\n"
               "  --data FILE       token stream: .tok, .ids, or .txt (needs DIR/tokenizer.json)\n"
               "  --tokens N        probe the first N tokens (default %d, at most %d)\n"
               "  --threads N       BLAS/OpenMP threads\n"
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

static int att_option(const char *f, const char *v, void *user) {
    att_args *a = user;
    if (!strcmp(f, "--tokens")) return cli_parse_int(f, v, 2, ATT_MAX_TOKENS, &a->tokens);
    return CLI_OPT_UNKNOWN;
}

static int att_parse_args(int argc, char **argv, att_args *a) {
    memset(a, 0, sizeof *a);
    a->tokens = ATT_DEFAULT_TOKENS;
    int rc = cli_opts_parse(argc, argv, CMD, att_usage, &a->c, att_option, a);
    if (rc) return rc;
    if (!a->c.data) return sb_usage_error("--data FILE is required");
    return SB_OK;
}

typedef struct {
    int64_t n, L, H;
    double wall_s, mean_share, max_share;
    int threads;
    char model_hash[65], data_hash[65];
    sb_provenance prov;
} att_result;

static int att_write_h5(sb_h5 *f, const att_args *a, const att_result *r, const float *maps, const float *share) {
    const int64_t dm[3] = {r->L, r->n, r->n}, ds[2] = {r->L, r->H};
    int rc = sb_h5_write(f, "maps", SB_H5_F32, 3, dm, maps);
    rc = rc ? rc : sb_h5_attr_str(f, "maps", "meaning",
                                  "maps[l, q, k] = attention probability of query q on key k in layer l, mean over "
                                  "heads; dense forward at absolute positions; causal (0 for k > q)");
    rc = rc ? rc : sb_h5_write(f, "sink_share", SB_H5_F32, 2, ds, share);
    rc = rc ? rc : sb_h5_attr_str(f, "sink_share", "meaning",
                                  "sink_share[l, h] = mean attention of queries at positions >= 17 (>= 1 when "
                                  "tokens <= 17) on position 0");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "command", "sinkbench attention");
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->c.model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", r->model_hash);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->c.data);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data_sha256", r->data_hash);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "tokens", r->n);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "share_from", r->n > SB_PROBE_SHARE_FROM ? SB_PROBE_SHARE_FROM : 1);
    rc = rc ? rc : sb_h5_attr_i64(f, NULL, "threads", r->threads);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "wall_s", r->wall_s);
    rc = rc ? rc : sb_provenance_to_h5(&r->prov, f);
    return rc;
}

static int att_print_json(const att_args *a, const att_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tokens", (double)r->n);
    cJSON_AddNumberToObject(o, "layers", (double)r->L);
    cJSON_AddNumberToObject(o, "heads", (double)r->H);
    cJSON_AddNumberToObject(o, "sink_share_mean", r->mean_share);
    cJSON_AddNumberToObject(o, "sink_share_max_layer", r->max_share);
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddStringToObject(o, "model", a->c.model_dir);
    cJSON_AddStringToObject(o, "model_sha256", r->model_hash);
    cJSON_AddStringToObject(o, "data", a->c.data);
    cJSON_AddStringToObject(o, "data_sha256", r->data_hash);
    if (a->c.out) cJSON_AddStringToObject(o, "out", a->c.out);
    sb_provenance_to_json(&r->prov, o);
    return cli_print_json(o);
}

int cmd_attention(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    sb_signals_install();
    att_args a;
    int rc = att_parse_args(argc, argv, &a);
    if (rc) {
        if (rc == SB_ERR_USAGE && argc <= 1) att_usage(stderr);
        return cli_fail(CMD, rc);
    }
    cli_set_threads(a.c.threads);
    sb_model_config cfg;
    if ((rc = cli_load_model_config(a.c.model_dir, &cfg))) return cli_fail(CMD, rc);
    /* n <= ATT_MAX_TOKENS and L, H are validated config sizes: no overflow */
    size_t n_params = sb_model_param_count(&cfg), n_max = (size_t)a.tokens;
    sb_mem_part parts[3] = {
        {"weights", (uint64_t)n_params * sizeof(float)},
        {"dense cache", sb_slot_cache_bytes(&cfg, (int64_t)n_max, 0)},
        {"attention maps", ((uint64_t)cfg.n_layers * n_max * n_max + (uint64_t)cfg.n_layers * cfg.n_heads) *
                               sizeof(float)},
    };
    char what[128];
    snprintf(what, sizeof what, "attention over %zu tokens", n_max);
    if ((rc = sb_mem_check(what, parts, 3, a.c.max_memory))) return cli_fail(CMD, rc);

    att_result r;
    memset(&r, 0, sizeof r);
    sb_model model;
    memset(&model, 0, sizeof model);
    int32_t *ids = NULL;
    float *maps = NULL, *share = NULL;
    sb_h5 *out = NULL;
    sb_lock *lock = NULL;
    if ((rc = sb_model_load(&model, a.c.model_dir))) goto fail;
    int64_t n = 0;
    if ((rc = cli_load_stream(a.c.model_dir, a.c.data, model.cfg.vocab_size, a.tokens, &ids, &n, NULL))) goto fail;
    if (n < 2) {
        rc = sb_error("%s: needs at least 2 tokens, has %" PRId64, a.c.data, n);
        goto fail;
    }
    r.n = n;
    r.L = model.cfg.n_layers;
    r.H = model.cfg.n_heads;
    /* create the output before the forward: an unwritable path fails now */
    if (a.c.out && ((rc = sb_lock_acquire(&lock, a.c.out)) || (rc = sb_h5_create(&out, a.c.out)))) goto fail;
    if ((rc = sb_provenance_hash_model(a.c.model_dir, r.model_hash))) goto fail;
    uint8_t dig[32];
    if ((rc = sb_sha256_file(a.c.data, dig))) goto fail;
    sb_sha256_hex(dig, r.data_hash);
    r.threads = cli_set_threads(a.c.threads);

    maps = malloc((size_t)r.L * (size_t)n * (size_t)n * sizeof *maps);
    share = malloc((size_t)r.L * (size_t)r.H * sizeof *share);
    if (!maps || !share) {
        rc = sb_error("out of memory for attention maps of %" PRId64 " layers x %" PRId64 " tokens", r.L, n);
        goto fail;
    }
    double t0 = sb_now();
    if (!sb_signal_caught() && (rc = sb_attention_probe(&model, ids, n, maps, share))) goto fail;
    r.wall_s = sb_now() - t0;
    if (sb_signal_poll()) { /* also the SB_TEST_SIGNAL_AT hook of the tests */
        fprintf(stderr, "sinkbench attention: interrupted; nothing written\n");
        sb_signal_print_resume(stderr, argc, argv);
        rc = -1;
        goto fail;
    }
    double total = 0;
    for (int64_t l = 0; l < r.L; l++) {
        double s = 0;
        for (int64_t h = 0; h < r.H; h++) s += share[l * r.H + h];
        s /= (double)r.H;
        total += s;
        if (s > r.max_share) r.max_share = s;
    }
    r.mean_share = total / (double)r.L;
    sb_provenance_collect(&r.prov);
    if (out) {
        if ((rc = att_write_h5(out, &a, &r, maps, share))) goto fail;
        rc = sb_h5_commit(out);
        out = NULL;
        if (rc) goto fail;
    }
    sb_lock_release(lock);
    free(maps);
    free(share);
    free(ids);
    sb_model_free(&model);
    if (a.c.json) {
        if ((rc = att_print_json(&a, &r))) return cli_fail(CMD, rc);
    } else {
        printf("%" PRId64 " tokens, %" PRId64 " layers x %" PRId64 " heads: sink share (head mean) %.3f on "
               "average over layers, %.3f in the largest layer; %.2f s\n",
               n, r.L, r.H, r.mean_share, r.max_share, r.wall_s);
        if (fflush(stdout) != 0 || ferror(stdout)) return sb_error("cannot write to stdout"), cli_fail(CMD, SB_ERR);
    }
    return 0;

fail:
    sb_h5_abort(out);
    sb_lock_release(lock);
    free(maps);
    free(share);
    free(ids);
    sb_model_free(&model);
    return rc == -1 ? sb_signal_exit_status() : cli_fail(CMD, rc);
}
