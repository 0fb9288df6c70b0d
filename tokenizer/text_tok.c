#include "tokenizer/text_tok.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "tokenizer/llama2c_tok.h"
#include "tokenizer/textfile.h"
#include "tokenizer/tokenizer.h"

/* Exactly one of the two is set. */
struct sb_text_tok {
    sb_l2c_tok *l2c;
    sb_tokenizer *hf;
    char path[4096];
};

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int sb_text_tok_load(sb_text_tok **out, const char *path) {
    *out = NULL;
    sb_text_tok *t = calloc(1, sizeof *t);
    if (!t) return sb_error("%s: out of memory", path);
    snprintf(t->path, sizeof t->path, "%s", path);
    int rc = ends_with(path, ".bin") ? sb_l2c_tok_load(&t->l2c, path) : sb_tokenizer_load(&t->hf, path);
    if (rc) {
        free(t);
        return rc;
    }
    *out = t;
    return SB_OK;
}

/* llama2.c keeps its tokenizer beside the checkpoint, named tokenizer.bin or tok<N>.bin. */
static int find_llama2c_tokenizer(const char *model_bin, const char *data, char *out, size_t cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_bin);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    struct stat st;
    snprintf(out, cap, "%s/tokenizer.bin", dir);
    if (stat(out, &st) == 0) return SB_OK;
    out[0] = '\0';
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "tok", 3) && ends_with(e->d_name, ".bin")) {
            snprintf(out, cap, "%s/%s", dir, e->d_name);
            break;
        }
    if (d) closedir(d);
    if (!out[0])
        return sb_error("%s: text input for a llama2.c model needs tokenizer.bin or tok*.bin in %s", data, dir);
    return SB_OK;
}

int sb_text_tok_open_model(sb_text_tok **t, const char *model, const char *data) {
    *t = NULL;
    char path[4352];
    if (ends_with(model, ".bin")) {
        int rc = find_llama2c_tokenizer(model, data, path, sizeof path);
        if (rc) return rc;
    } else {
        if (snprintf(path, sizeof path, "%s/tokenizer.json", model) >= 4096)
            return sb_usage_error("--model: path too long");
        struct stat st;
        if (stat(path, &st) != 0)
            return sb_error("%s: text input needs the model's tokenizer, but %s does not exist "
                            "(use a .tok/.ids file, or add a tokenizer.json)", data, path);
    }
    return sb_text_tok_load(t, path);
}

void sb_text_tok_free(sb_text_tok *t) {
    if (!t) return;
    sb_l2c_tok_free(t->l2c);
    if (t->hf) sb_tokenizer_free(t->hf);
    free(t);
}

int sb_text_tok_check_vocab(const sb_text_tok *t, int32_t model_vocab) {
    if (t->l2c && sb_l2c_tok_vocab_size(t->l2c) != model_vocab)
        return sb_error("%s: %d tokens, the model has vocab_size %d", t->path, sb_l2c_tok_vocab_size(t->l2c),
                        model_vocab);
    if (t->hf && sb_tokenizer_vocab_size(t->hf) > model_vocab)
        return sb_error("%s: %d tokens, more than the model's vocab_size %d", t->path,
                        sb_tokenizer_vocab_size(t->hf), model_vocab);
    return SB_OK;
}

int32_t sb_text_tok_bos(const sb_text_tok *t, int32_t model_bos) {
    if (t && t->l2c) return SB_L2C_BOS;
    int32_t bos = t ? sb_tokenizer_bos_id(t->hf) : -1;
    return bos >= 0 ? bos : model_bos;
}

void sb_text_tok_stops(const sb_text_tok *t, int32_t model_eos, int32_t stop[2]) {
    if (t && t->l2c) {
        stop[0] = SB_L2C_BOS;
        stop[1] = SB_L2C_EOS;
        return;
    }
    /* a config.json without eos_token_id: the tokenizer's end-of-text token still ends a text */
    stop[0] = model_eos;
    if (stop[0] < 0 && t) stop[0] = sb_tokenizer_token_id(t->hf, SB_TOKEN_ENDOFTEXT);
    if (stop[0] < 0 && t) stop[0] = sb_tokenizer_token_id(t->hf, "</s>");
    stop[1] = -1;
}

int sb_text_tok_encode(const sb_text_tok *t, const char *text, int32_t bos, int32_t **ids, size_t *n) {
    /* llama2.c merges with its BOS in place: its own encoder must put it there */
    if (t->l2c) return sb_l2c_tok_encode(t->l2c, text, bos >= 0, false, ids, n);
    int32_t *enc;
    size_t m;
    int rc = sb_tokenizer_encode(t->hf, text, strlen(text), &enc, &m);
    if (rc) return rc;
    size_t k = bos >= 0;
    *ids = malloc_check((m + 1) * sizeof **ids); /* + 1: malloc(0) may give NULL */
    if (k) (*ids)[0] = bos;
    memcpy(*ids + k, enc, m * sizeof *enc);
    *n = m + k;
    free(enc);
    return SB_OK;
}

const char *sb_text_tok_piece(const sb_text_tok *t, int32_t prev, int32_t token, size_t *len) {
    *len = 0;
    if (!t) return NULL;
    if (t->l2c) return sb_l2c_tok_decode(t->l2c, prev, token, len);
    return sb_tokenizer_token_bytes(t->hf, token, len);
}

/* llama2.c's merge loop is quadratic in the text, so with a token limit only a prefix of the
 * file (16 bytes a token) is read; the text is encoded whole, with BOS, as llama2.c does. */
static int load_text_llama2c(const sb_l2c_tok *t, const char *path, int32_t vocab, int64_t limit, int32_t **ids,
                             int64_t *n) {
    char *text;
    size_t size;
    int rc = sb_read_file(path, &text, &size);
    if (rc) return rc;
    bool cut = limit > 0 && (uint64_t)limit * 16 < size;
    if (cut) text[limit * 16] = '\0';
    if (strlen(text) != (cut ? (size_t)limit * 16 : size)) {
        free(text);
        return sb_error("%s: text contains a NUL byte", path);
    }
    size_t count = 0;
    rc = sb_l2c_tok_encode(t, text, true, false, ids, &count);
    free(text);
    if (rc) return rc;
    *n = limit > 0 && (int64_t)count > limit ? limit : (int64_t)count;
    for (int64_t i = 0; i < *n; i++)
        if ((*ids)[i] < 0 || (*ids)[i] >= vocab) {
            int32_t bad = (*ids)[i];
            free(*ids);
            *ids = NULL;
            return sb_error("%s: token %d at position %lld is outside the model's vocabulary %d", path, bad,
                            (long long)i, vocab);
        }
    return SB_OK;
}

int sb_text_tok_load_text(const sb_text_tok *t, const char *path, int32_t vocab, int64_t limit, int32_t **ids,
                          int64_t *n, uint64_t *text_bytes) {
    if (text_bytes) *text_bytes = 0;
    if (t->l2c) return load_text_llama2c(t->l2c, path, vocab, limit, ids, n);
    sb_tokens_added added;
    int rc = sb_tokens_load_text_ex(path, t->hf, vocab, limit, ids, n, &added);
    /* bytes of the predicted tokens (all but the first); an added BOS (first) or EOS (last)
     * stands for no text byte, and after a BOS the first text token is decoded as the text's
     * start (without the space a SentencePiece tokenizer prepends) */
    if (!rc && text_bytes)
        for (int64_t i = 1; i < *n - added.eos; i++) {
            size_t len = 0;
            char *s = NULL;
            if (i == 1 && added.bos && sb_tokenizer_decode(t->hf, *ids + 1, 1, &s, &len) == SB_OK) *text_bytes += len;
            else if (!s && sb_tokenizer_token_bytes(t->hf, (*ids)[i], &len)) *text_bytes += len;
            free(s);
        }
    return rc;
}
