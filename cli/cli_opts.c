#include "cli/cli_opts.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "datasets/tokens.h"
#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "tokenizer/llama2c_tok.h"
#include "tokenizer/textfile.h"
#include "tokenizer/tokenizer.h"

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

int cli_set_threads(int64_t n) {
    if (n > 0) {
        openblas_set_num_threads((int)n);
        omp_set_num_threads((int)n);
        return (int)n;
    }
    return openblas_get_num_threads();
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

/* Text for a llama2.c checkpoint (MODEL.bin): encoded with tokenizer.bin, or else the first
 * tok*.bin, beside it, with BOS as llama2.c does. llama2.c's merge loop is quadratic in the
 * text, so with a token limit only a prefix of the file (16 bytes a token) is read. */
static int load_text_llama2c(const char *model_bin, const char *data, int32_t vocab, int64_t limit, int32_t **ids,
                             int64_t *n) {
    char dir[4096], tok_path[4352] = "";
    snprintf(dir, sizeof dir, "%s", model_bin);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    struct stat st;
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.bin", dir);
    if (stat(tok_path, &st) != 0) {
        tok_path[0] = '\0';
        DIR *d = opendir(dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (!strncmp(e->d_name, "tok", 3) && ends_with(e->d_name, ".bin")) {
                snprintf(tok_path, sizeof tok_path, "%s/%s", dir, e->d_name);
                break;
            }
        if (d) closedir(d);
    }
    if (!tok_path[0])
        return sb_error("%s: text input for a llama2.c model needs tokenizer.bin or tok*.bin in %s", data, dir);
    char *text;
    size_t size;
    int rc = sb_read_file(data, &text, &size);
    if (rc) return rc;
    if (limit > 0 && (uint64_t)limit * 16 < size) text[limit * 16] = '\0';
    if (strlen(text) != ((limit > 0 && (uint64_t)limit * 16 < size) ? (size_t)limit * 16 : size)) {
        free(text);
        return sb_error("%s: text contains a NUL byte", data);
    }
    sb_l2c_tok *t;
    if ((rc = sb_l2c_tok_load(&t, tok_path))) {
        free(text);
        return rc;
    }
    size_t count = 0;
    rc = sb_l2c_tok_encode(t, text, true, false, ids, &count);
    sb_l2c_tok_free(t);
    free(text);
    if (rc) return rc;
    *n = limit > 0 && (int64_t)count > limit ? limit : (int64_t)count;
    for (int64_t i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= vocab) {
            int32_t bad = (*ids)[i];
            free(*ids);
            *ids = NULL;
            return sb_error("%s: token %d at position %lld is outside the model's vocabulary %d", data, bad,
                            (long long)i, vocab);
        }
    return SB_OK;
}

int cli_load_stream(const char *model_dir, const char *data, int32_t vocab, int64_t limit, int32_t **ids,
                    int64_t *n, uint64_t *utf8_bytes) {
    if (utf8_bytes) *utf8_bytes = 0;
    if (!ends_with(data, ".txt")) return sb_tokens_load(data, vocab, limit, ids, n);
    if (ends_with(model_dir, ".bin")) return load_text_llama2c(model_dir, data, vocab, limit, ids, n);
    char tok_path[4096];
    if (snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", model_dir) >= (int)sizeof tok_path)
        return sb_usage_error("--model: path too long");
    struct stat st;
    if (stat(tok_path, &st) != 0)
        return sb_error("%s: text input needs the model's tokenizer, but %s does not exist "
                        "(use a .tok/.ids file, or add a tokenizer.json)", data, tok_path);
    sb_tokenizer *tok;
    int rc = sb_tokenizer_load(&tok, tok_path);
    if (rc) return rc;
    sb_tokens_added added;
    rc = sb_tokens_load_text_ex(data, tok, vocab, limit, ids, n, &added);
    /* bytes of the predicted tokens (all but the first); an added BOS (first) or EOS (last)
     * stands for no text byte, and after a BOS the first text token is decoded as the text's
     * start (without the space a SentencePiece tokenizer prepends) */
    if (!rc && utf8_bytes)
        for (int64_t i = 1; i < *n - added.eos; i++) {
            size_t len = 0;
            char *s = NULL;
            if (i == 1 && added.bos && sb_tokenizer_decode(tok, *ids + 1, 1, &s, &len) == SB_OK) *utf8_bytes += len;
            else if (!s && sb_tokenizer_token_bytes(tok, (*ids)[i], &len)) *utf8_bytes += len;
            free(s);
        }
    sb_tokenizer_free(tok);
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
