/* sinkbench tokenize: encode a text file with a model's tokenizer into a .tok file. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "datasets/tokfile.h"
#include "engine/common.h"
#include "tokenizer/textfile.h"
#include "tokenizer/tokenizer.h"
#include "util/sha256.h"

static const char *USAGE =
    "usage: sinkbench tokenize --model DIR --in TEXT --out FILE.tok [--chunk SIZE] [--bos MODE] [--eos MODE]\n"
    "  --model DIR    model directory holding tokenizer.json (or the tokenizer.json itself)\n"
    "  --in TEXT      text to encode (UTF-8; <|endoftext|> maps to its special token)\n"
    "  --out FILE     .tok file to write (atomically: temp file, fsync, rename)\n"
    "  --chunk SIZE   text encoded per piece, e.g. 4M (default); memory stays O(SIZE)\n"
    "  --bos MODE     auto (default): one BOS before the text if the tokenizer adds one\n"
    "                 (post_processor, or add_bos_token in tokenizer_config.json: Llama,\n"
    "                 Mistral); yes: always its bos_token; no: never\n"
    "  --eos MODE     the same for one EOS after the text (auto: add_eos_token)\n"
    "The whole file is one sequence: documents inside it are separated only by what the text\n"
    "holds (our corpora: a line <|endoftext|>).\n"
    "If TEXT.manifest.json sits beside TEXT (as `make datasets` writes), its token count is\n"
    "updated. Progress (MB/s, ETA) is shown on stderr when it is a terminal.\n";

typedef struct {
    sb_tok_writer *w;
    uint64_t total_bytes;
    bool show;
    double t0, last;
} tokenize_state;

static void show_progress(tokenize_state *s, uint64_t done, int64_t tokens, bool final) {
    double now = sb_now();
    if (!s->show || (!final && now - s->last < 0.25)) return;
    s->last = now;
    double el = now - s->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(s->total_bytes - done) / rate : NAN;
    char eta_s[32] = "?";
    if (isfinite(eta)) snprintf(eta_s, sizeof eta_s, "%ld:%02ld", (long)eta / 60, (long)eta % 60);
    fprintf(stderr, "\rtokenize %.1f/%.1f MB (%.1f%%) %.2f MB/s %lld tokens ETA %s\033[K", (double)done / 1e6,
            (double)s->total_bytes / 1e6, s->total_bytes ? 100.0 * (double)done / (double)s->total_bytes : 100.0,
            rate / 1e6, (long long)tokens, eta_s);
    fflush(stderr);
}

static int write_piece(const int32_t *ids, size_t n, uint64_t bytes_done, void *ctx) {
    tokenize_state *s = ctx;
    int rc = sb_tok_write(s->w, ids, (int64_t)n);
    if (rc == SB_OK) show_progress(s, bytes_done, sb_tok_writer_count(s->w), false);
    return rc;
}

/* TEXT.txt -> TEXT.manifest.json (the name make_datasets.sh uses); NULL if none exists. */
static char *manifest_for(const char *text_path) {
    size_t n = strlen(text_path);
    size_t base = n > 4 && !strcmp(text_path + n - 4, ".txt") ? n - 4 : n;
    char *p = malloc_check(base + 16);
    memcpy(p, text_path, base);
    strcpy(p + base, ".manifest.json");
    if (access(p, F_OK) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

/* Record the token count in the manifest beside the text, keyed by tokenizer hash; refuses when
 * the text no longer matches the manifest's sha256. */
static int update_manifest(const char *mpath, const char *text_path, const char *tok_path, int64_t tokens,
                           int32_t vocab, const uint8_t *tok_hash) {
    char *json;
    size_t len;
    int rc = sb_read_file(mpath, &json, &len);
    if (rc) return rc;
    cJSON *m = cJSON_Parse(json);
    free(json);
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return sb_error("%s: not a JSON object", mpath);
    }
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(m, "sha256");
    uint8_t digest[32];
    char hex[65], tok_hex[65];
    if ((rc = sb_sha256_file(text_path, digest)) != SB_OK) {
        cJSON_Delete(m);
        return rc;
    }
    sb_sha256_hex(digest, hex);
    if (!cJSON_IsString(sha) || strcmp(sha->valuestring, hex) != 0) {
        cJSON_Delete(m);
        return sb_error("%s: the text's sha256 no longer matches this manifest; not updated", mpath);
    }
    sb_sha256_hex(tok_hash, tok_hex);
    cJSON_DeleteItemFromObjectCaseSensitive(m, "token_count");
    cJSON_AddNumberToObject(m, "token_count", (double)tokens);
    cJSON *all = cJSON_GetObjectItemCaseSensitive(m, "tokenizations");
    if (!cJSON_IsObject(all)) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "tokenizations");
        all = cJSON_AddObjectToObject(m, "tokenizations");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(all, tok_hex);
    cJSON *entry = cJSON_AddObjectToObject(all, tok_hex);
    cJSON_AddNumberToObject(entry, "tokens", (double)tokens);
    cJSON_AddNumberToObject(entry, "vocab", vocab);
    cJSON_AddStringToObject(entry, "tok_file", tok_path);
    char *out = cJSON_Print(m);
    cJSON_Delete(m);
    if (!out) return sb_error("%s: cannot serialise JSON", mpath);
    size_t olen = strlen(out);
    char *text = malloc_check(olen + 1);
    memcpy(text, out, olen);
    text[olen] = '\n';
    cJSON_free(out);
    rc = sb_write_file_atomic(mpath, text, olen + 1);
    free(text);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    const char *model = NULL, *in = NULL, *out = NULL;
    uint64_t chunk = (uint64_t)4 << 20;
    int bos_mode = SB_TOKENS_AUTO, eos_mode = SB_TOKENS_AUTO;
    int rc = SB_OK;
    for (int i = 1; i < argc && rc == SB_OK; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--in") || !strcmp(a, "--out")) {
            if (!v) {
                rc = sb_usage_error("%s needs a value", a);
                break;
            }
            *(!strcmp(a, "--model") ? &model : !strcmp(a, "--in") ? &in : &out) = v;
            i++;
        } else if (!strcmp(a, "--chunk")) {
            rc = cli_parse_bytes("--chunk", v, &chunk);
            if (rc == SB_OK && (chunk < 1 || chunk > ((uint64_t)1 << 32)))
                rc = sb_usage_error("--chunk: must be between 1 byte and 4G");
            i++;
        } else if (!strcmp(a, "--bos") || !strcmp(a, "--eos")) {
            int *mode = a[2] == 'b' ? &bos_mode : &eos_mode;
            if (v && !strcmp(v, "auto")) *mode = SB_TOKENS_AUTO;
            else if (v && !strcmp(v, "yes")) *mode = SB_TOKENS_YES;
            else if (v && !strcmp(v, "no")) *mode = SB_TOKENS_NO;
            else rc = sb_usage_error("%s: expected auto, yes or no, got '%s'", a, v ? v : "");
            i++;
        } else {
            rc = sb_usage_error("unknown option '%s' (see --help)", a);
        }
    }
    if (rc == SB_OK && !model) rc = sb_usage_error("--model is required (see --help)");
    if (rc == SB_OK && !in) rc = sb_usage_error("--in is required (see --help)");
    if (rc == SB_OK && !out) rc = sb_usage_error("--out is required (see --help)");
    if (rc == SB_OK && strcmp(in, out) == 0) rc = sb_usage_error("--out must differ from --in");
    if (rc) return cli_fail(cmd, rc);

    struct stat st;
    if (stat(in, &st) != 0) return cli_fail(cmd, sb_error("%s: cannot open: %s", in, strerror(errno)));
    sb_tokenizer *tok = NULL;
    if ((rc = sb_tokenizer_load(&tok, model)) != SB_OK) return cli_fail(cmd, rc);
    int32_t bos, eos;
    if ((rc = sb_tokens_specials(tok, bos_mode, eos_mode, &bos, &eos)) != SB_OK) {
        sb_tokenizer_free(tok);
        return cli_fail(cmd, rc);
    }
    int32_t vocab = sb_tokenizer_vocab_size(tok);
    const uint8_t *hash = sb_tokenizer_hash(tok);
    tokenize_state s = {.total_bytes = (uint64_t)st.st_size, .show = isatty(STDERR_FILENO) == 1};
    s.t0 = s.last = sb_now();
    if ((rc = sb_tok_writer_open(&s.w, out, vocab, hash)) != SB_OK) {
        sb_tokenizer_free(tok);
        return cli_fail(cmd, rc);
    }
    rc = bos >= 0 ? sb_tok_write(s.w, &bos, 1) : SB_OK;
    if (rc == SB_OK) rc = sb_tokens_encode_file(in, tok, (size_t)chunk, write_piece, &s);
    if (rc == SB_OK && eos >= 0) rc = sb_tok_write(s.w, &eos, 1);
    int64_t tokens = sb_tok_writer_count(s.w);
    if (rc == SB_OK) {
        show_progress(&s, s.total_bytes, tokens, true);
        rc = sb_tok_writer_close(s.w);
    } else {
        sb_tok_writer_abort(s.w);
    }
    if (s.show) fprintf(stderr, "\r\033[K");
    if (rc) {
        sb_tokenizer_free(tok);
        return cli_fail(cmd, rc);
    }
    double el = sb_now() - s.t0;
    printf("%s: %lld tokens from %llu bytes (%.2f bytes/token, vocab %d) in %.1f s (%.2f MB/s)%s%s\n", out,
           (long long)tokens, (unsigned long long)s.total_bytes,
           tokens ? (double)s.total_bytes / (double)tokens : 0.0, (int)vocab, el,
           el > 0 ? (double)s.total_bytes / el / 1e6 : 0.0, bos >= 0 ? ", BOS first" : "", eos >= 0 ? ", EOS last" : "");
    char *mpath = manifest_for(in);
    if (mpath) {
        if (update_manifest(mpath, in, out, tokens, vocab, hash) == SB_OK)
            printf("%s: token count recorded\n", mpath);
        else
            fprintf(stderr, "sinkbench tokenize: warning: %s\n", sb_last_error());
        free(mpath);
    }
    sb_tokenizer_free(tok);
    return 0;
}
