#include "cli/cli_opts.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "datasets/tokens.h"
#include "engine/backend.h"
#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "tokenizer/text_tok.h"

int cli_opts_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *), cli_common_opts *c,
                   cli_opt_fn own, void *user) {
    memset(c, 0, sizeof *c);
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--json")) {
            c->json = true;
            continue;
        }
        if (!strcmp(f, "--resume")) {
            c->resume = true;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) != 0) return sb_usage_error("unexpected argument '%s'", f);
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return sb_usage_error("%s needs a value", f);
        i++;
        int rc = SB_OK;
        if (!strcmp(f, "--model")) c->model_dir = v;
        else if (!strcmp(f, "--data")) c->data = v;
        else if (!strcmp(f, "--out")) c->out = v;
        else if (!strcmp(f, "--threads")) rc = cli_parse_int(f, v, 1, 4096, &c->threads);
        else if (!strcmp(f, "--device")) {
            const sb_backend_ops *ops;
            int index;
            c->device = v;
            rc = sb_backend_ops_for(v, &ops, &index);
        } else if (!strcmp(f, "--compute")) rc = sb_compute_parse(v, f, &c->compute);
        else if (!strcmp(f, "--max-memory")) {
            rc = cli_parse_bytes(f, v, &c->max_memory);
            if (!rc && c->max_memory == 0) rc = sb_usage_error("--max-memory must be positive");
        } else {
            rc = own ? own(f, v, user) : CLI_OPT_UNKNOWN;
            if (rc == CLI_OPT_UNKNOWN) return sb_usage_error("unknown option '%s' (see sinkbench %s --help)", f, cmd);
        }
        if (rc) return rc;
    }
    if (!c->model_dir) return sb_usage_error("--model DIR is required");
    return SB_OK;
}

int cli_set_threads(int64_t n) { return sb_host_threads((int)n); }

int cli_open_backend(const cli_common_opts *c, const sb_model *m, sb_backend **b) {
    sb_backend_opts o = {.device = c->device, .compute = c->compute, .threads = (int)c->threads};
    return sb_backend_open(b, m, &o);
}

static bool ends_with(const char *s, const char *suffix);

int cli_load_model_config(const char *dir, sb_model_config *cfg) {
    if (ends_with(dir, ".bin")) return sb_model_inspect(dir, cfg, NULL); /* a llama2.c checkpoint */
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sb_error("%s: no such model directory", dir);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return sb_usage_error("--model: path too long");
    return sb_hfconfig_load(cfg, path);
}

int cli_parse_policy(const char *spec, const sb_model_config *cfg, sb_policy_spec *p) {
    char msg[1024];
    if (sb_policy_parse(spec, p)) {
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_usage_error("--policy: %s", msg);
    }
    int rc = sb_policy_check_model(p, cfg);
    if (rc) {
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        sb_error("--policy %s: %s", spec, msg);
    }
    return rc;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int cli_load_stream(const char *model_dir, const char *data, int32_t vocab, int64_t limit, int32_t **ids,
                    int64_t *n, uint64_t *utf8_bytes) {
    if (utf8_bytes) *utf8_bytes = 0;
    if (!ends_with(data, ".txt")) return sb_tokens_load(data, vocab, limit, ids, n);
    sb_text_tok *tok;
    int rc = sb_text_tok_open_model(&tok, model_dir, data);
    if (rc) return rc;
    rc = sb_text_tok_load_text(tok, data, vocab, limit, ids, n, utf8_bytes);
    sb_text_tok_free(tok);
    return rc;
}

int cli_print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return sb_error("cannot format JSON output");
    int bad = printf("%s\n", s) < 0 || fflush(stdout) != 0;
    free(s);
    return bad ? sb_error("cannot write to stdout") : SB_OK;
}
