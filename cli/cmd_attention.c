/* sinkbench attention: attention maps (head average) and the sink share per layer and head
 * over the first tokens of a stream (paper Fig. 2), from a dense forward at absolute
 * positions. Writes the datasets maps [L, n, n] and sink_share [L, H] that the study's
 * attention collector (eval/study_collect_other.c) reads. */
#include <cJSON.h>
#include <cblas.h>
#include <inttypes.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "datasets/sha256.h"
#include "datasets/tokens.h"
#include "engine/attention_probe.h"
#include "engine/common.h"
#include "engine/model.h"
#include "eval/h5.h"
#include "eval/provenance.h"
#include "tokenizer/tokenizer.h"

#define CMD "attention"
#define ATT_DEFAULT_TOKENS 64
/* maps grow as L * n^2: a few thousand tokens is already a large figure */
#define ATT_MAX_TOKENS 4096

typedef struct {
    const char *model_dir, *data, *out;
    int64_t tokens, threads;
    bool json;
} att_args;

static void att_usage(FILE *f) {
    fprintf(f, "usage: sinkbench attention --model DIR --data FILE [options]\n"
               "  --data FILE       token stream: .tok, .ids, or .txt (needs DIR/tokenizer.json)\n"
               "  --tokens N        probe the first N tokens (default %d, at most %d)\n"
               "  --threads N       BLAS/OpenMP threads\n"
               "  --json            one JSON object on stdout\n"
               "  --out FILE.h5     datasets maps [layers, N, N] (head-mean attention, row = query,\n"
               "                    column = key) and sink_share [layers, heads] (mean attention of\n"
               "                    queries at positions >= %d on position 0), written atomically\n",
            ATT_DEFAULT_TOKENS, ATT_MAX_TOKENS, SB_PROBE_SHARE_FROM);
}

static int att_parse_args(int argc, char **argv, att_args *a) {
    memset(a, 0, sizeof *a);
    a->tokens = ATT_DEFAULT_TOKENS;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = SB_OK;
        if (!strcmp(f, "--json")) {
            a->json = true;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            att_usage(stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) != 0) return sb_usage_error("unexpected argument '%s'", f);
        if (!v) return sb_usage_error("%s needs a value", f);
        i++;
        if (!strcmp(f, "--model")) a->model_dir = v;
        else if (!strcmp(f, "--data")) a->data = v;
        else if (!strcmp(f, "--out")) a->out = v;
        else if (!strcmp(f, "--tokens")) rc = cli_parse_int(f, v, 2, ATT_MAX_TOKENS, &a->tokens);
        else if (!strcmp(f, "--threads")) rc = cli_parse_int(f, v, 1, 4096, &a->threads);
        else return sb_usage_error("unknown option '%s' (see sinkbench attention --help)", f);
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

static int att_load_tokens(const att_args *a, int32_t vocab, int32_t **ids, int64_t *n) {
    if (!ends_with(a->data, ".txt")) return sb_tokens_load(a->data, vocab, a->tokens, ids, n);
    char tok_path[4096];
    if (snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", a->model_dir) >= (int)sizeof tok_path)
        return sb_usage_error("--model: path too long");
    struct stat st;
    if (stat(tok_path, &st) != 0)
        return sb_error("%s: text input needs the model's tokenizer, but %s does not exist "
                        "(use a .tok/.ids file, or add a tokenizer.json)", a->data, tok_path);
    sb_tokenizer *tok;
    int rc = sb_tokenizer_load(&tok, tok_path);
    if (rc) return rc;
    rc = sb_tokens_load_text(a->data, tok, vocab, a->tokens, ids, n);
    sb_tokenizer_free(tok);
    return rc;
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
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model", a->model_dir);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "model_sha256", r->model_hash);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "data", a->data);
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

int cmd_attention(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    att_args a;
    int rc = att_parse_args(argc, argv, &a);
    if (rc) {
        if (rc == SB_ERR_USAGE && argc <= 1) att_usage(stderr);
        return cli_fail(CMD, rc);
    }
    if (a.threads > 0) {
        openblas_set_num_threads((int)a.threads);
        omp_set_num_threads((int)a.threads);
    }
    struct stat st;
    if (stat(a.model_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sb_error("%s: no such model directory", a.model_dir), cli_fail(CMD, SB_ERR);

    att_result r;
    memset(&r, 0, sizeof r);
    sb_model model;
    memset(&model, 0, sizeof model);
    int32_t *ids = NULL;
    float *maps = NULL, *share = NULL;
    sb_h5 *out = NULL;
    if ((rc = sb_model_load(&model, a.model_dir))) goto fail;
    int64_t n = 0;
    if ((rc = att_load_tokens(&a, model.cfg.vocab_size, &ids, &n))) goto fail;
    if (n < 2) {
        rc = sb_error("%s: needs at least 2 tokens, has %" PRId64, a.data, n);
        goto fail;
    }
    r.n = n;
    r.L = model.cfg.n_layers;
    r.H = model.cfg.n_heads;
    /* create the output before the forward: an unwritable path fails now */
    if (a.out && (rc = sb_h5_create(&out, a.out))) goto fail;
    if ((rc = sb_provenance_hash_model(a.model_dir, r.model_hash))) goto fail;
    uint8_t dig[32];
    if ((rc = sb_sha256_file(a.data, dig))) goto fail;
    sb_sha256_hex(dig, r.data_hash);
    r.threads = a.threads > 0 ? (int)a.threads : openblas_get_num_threads();

    /* n <= ATT_MAX_TOKENS and L, H are validated config sizes: no overflow */
    maps = malloc((size_t)r.L * (size_t)n * (size_t)n * sizeof *maps);
    share = malloc((size_t)r.L * (size_t)r.H * sizeof *share);
    if (!maps || !share) {
        rc = sb_error("out of memory for attention maps of %" PRId64 " layers x %" PRId64 " tokens", r.L, n);
        goto fail;
    }
    double t0 = sb_now();
    if ((rc = sb_attention_probe(&model, ids, n, maps, share))) goto fail;
    r.wall_s = sb_now() - t0;
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
    free(maps);
    free(share);
    free(ids);
    sb_model_free(&model);
    if (a.json) {
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
    free(maps);
    free(share);
    free(ids);
    sb_model_free(&model);
    return cli_fail(CMD, rc);
}
