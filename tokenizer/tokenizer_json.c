/* Hugging Face tokenizer.json: reading (cJSON) and the canonical writer.
 *
 * The writer is our own so that the bytes, and hence sb_tokenizer_hash, depend only on the
 * tokenizer and never on a JSON library's formatting. Two shapes are understood:
 *   byte-level   normalizer null, pre_tokenizer ByteLevel (GPT-2 regex, no prefix space),
 *                decoder ByteLevel, model BPE; vocab keys in the GPT-2 byte alphabet
 *   SentencePiece-style  model BPE with byte_fallback and "<0xNN>" byte tokens; "▁" for
 *                space put in by the normalizer (Prepend + Replace) or a Metaspace
 *                pre-tokenizer; decoder Replace/ByteFallback/Fuse/Strip
 * Anything else is refused with a message naming the file and the unsupported part,
 * rather than encoded differently from the Python library. */
#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"
#include "util/sha256.h"

/* ---- writer ---- */

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 4096;
        char *np = realloc(b->p, b->cap);
        if (!np) malloc_check((size_t)-1);
        b->p = np;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *tmp = malloc_check((size_t)n + 1);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    sb_put(b, tmp, (size_t)n);
    free(tmp);
}

static void put_utf8(sbuf *b, uint32_t cp) {
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        sb_put(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, u, 4);
    }
}

/* A JSON string literal of UTF-8 text s[0..n). */
static void put_jstr(sbuf *b, const char *s, size_t n) {
    if (!s) s = ""; /* an empty piece may be stored as NULL (found by fuzz_tokenizer_json) */
    sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            esc = tmp;
        }
        if (!esc) continue;
        sb_put(b, s + run, i - run);
        sb_puts(b, esc);
        run = i + 1;
    }
    sb_put(b, s + run, n - run);
    sb_put(b, "\"", 1);
}

/* The string a vocab entry has in the file. */
static void put_vocab_key(sbuf *b, const sb_tokenizer *t, int32_t id) {
    if (t->kind == SB_TOKENIZER_SENTENCEPIECE) {
        put_jstr(b, t->piece[id], strlen(t->piece[id]));
    } else if (t->flags[id] & SB_TOKF_ADDED) {
        /* an added token's content is its key (Hugging Face finds its id by that string) */
        for (int i = 0; i < t->n_added; i++)
            if (t->added[i].id == id) {
                put_jstr(b, t->added[i].content, t->added[i].len);
                break;
            }
    } else {
        sbuf k = {0};
        for (uint32_t i = 0; i < t->tok_len[id]; i++) put_utf8(&k, sb_bytelevel_char((uint8_t)t->tok[id][i]));
        put_jstr(b, k.p, k.n);
        free(k.p);
    }
}

static void put_tpl_item(sbuf *b, bool first, const char *kind, const char *id, int type_id) {
    sb_printf(b, "%s      {\n        \"%s\": {\n          \"id\": %s,\n          \"type_id\": %d\n        }\n      }",
              first ? "" : ",\n", kind, id, type_id);
}

static void put_tpl_special(sbuf *b, bool first, const char *key, int32_t id) {
    sb_printf(b,
              "%s      %s: {\n        \"id\": %s,\n        \"ids\": [\n          %d\n"
              "        ],\n        \"tokens\": [\n          %s\n        ]\n      }",
              first ? "" : ",\n", key, key, (int)id, key);
}

/* TemplateProcessing that puts the BOS token in front and the EOS token after (of each
 * sequence of a pair, as Llama with add_bos_token/add_eos_token) */
static void put_template(sbuf *b, const sb_tokenizer *t) {
    sbuf bk = {0}, ek = {0};
    if (t->bos_id >= 0) put_vocab_key(&bk, t, t->bos_id);
    if (t->eos_id >= 0) put_vocab_key(&ek, t, t->eos_id);
    sb_puts(b, "{\n    \"type\": \"TemplateProcessing\",\n    \"single\": [\n");
    bool first = true;
    if (bk.p) put_tpl_item(b, first, "SpecialToken", bk.p, 0), first = false;
    put_tpl_item(b, first, "Sequence", "\"A\"", 0);
    if (ek.p) put_tpl_item(b, false, "SpecialToken", ek.p, 0);
    sb_puts(b, "\n    ],\n    \"pair\": [\n");
    first = true;
    for (int s = 0; s < 2; s++) {
        if (bk.p) put_tpl_item(b, first, "SpecialToken", bk.p, s), first = false;
        put_tpl_item(b, first, "Sequence", s ? "\"B\"" : "\"A\"", s);
        first = false;
        if (ek.p) put_tpl_item(b, false, "SpecialToken", ek.p, s);
    }
    sb_puts(b, "\n    ],\n    \"special_tokens\": {\n");
    if (bk.p) put_tpl_special(b, true, bk.p, t->bos_id);
    if (ek.p && t->eos_id != t->bos_id) put_tpl_special(b, !bk.p, ek.p, t->eos_id);
    sb_puts(b, "\n    }\n  }");
    free(bk.p);
    free(ek.p);
}

static const char *BYTELEVEL_PRE =
    "{\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": false,\n    \"trim_offsets\": true,\n"
    "    \"use_regex\": true\n  }";
static const char *BYTELEVEL_POST =
    "{\n    \"type\": \"ByteLevel\",\n    \"add_prefix_space\": true,\n    \"trim_offsets\": false,\n"
    "    \"use_regex\": true\n  }";

int sb_tokenizer_to_json(const sb_tokenizer *t, char **json, size_t *len) {
    sbuf b = {0};
    bool sp = t->kind == SB_TOKENIZER_SENTENCEPIECE;
    sb_puts(&b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    for (int i = 0; i < t->n_added; i++) {
        const sb_added_token *a = &t->added[i];
        sb_printf(&b, "%s\n    {\n      \"id\": %d,\n      \"content\": ", i ? "," : "", (int)a->id);
        put_jstr(&b, a->content, a->len);
        sb_printf(&b,
                  ",\n      \"single_word\": %s,\n      \"lstrip\": %s,\n      \"rstrip\": %s,\n"
                  "      \"normalized\": %s,\n      \"special\": %s\n    }",
                  a->single_word ? "true" : "false", a->lstrip ? "true" : "false", a->rstrip ? "true" : "false",
                  a->normalized ? "true" : "false", a->special ? "true" : "false");
    }
    sb_puts(&b, t->n_added ? "\n  ],\n" : "],\n");
    if (!sp) {
        sb_printf(&b, "  \"normalizer\": null,\n  \"pre_tokenizer\": %s,\n  \"post_processor\": ", BYTELEVEL_PRE);
        if (t->bos_id >= 0 || t->eos_id >= 0) put_template(&b, t);
        else sb_puts(&b, BYTELEVEL_POST);
        sb_printf(&b, ",\n  \"decoder\": %s,\n", BYTELEVEL_POST);
    } else {
        if (t->prepend == SB_PREPEND_EVERY) {
            sb_puts(&b, "  \"normalizer\": {\n    \"type\": \"Sequence\",\n    \"normalizers\": [\n"
                        "      {\n        \"type\": \"Prepend\",\n        \"prepend\": \"\xE2\x96\x81\"\n      },\n"
                        "      {\n        \"type\": \"Replace\",\n        \"pattern\": {\n          \"String\": \" \"\n"
                        "        },\n        \"content\": \"\xE2\x96\x81\"\n      }\n    ]\n  },\n"
                        "  \"pre_tokenizer\": null,\n");
        } else {
            const char *scheme = t->prepend == SB_PREPEND_FIRST ? "first" : t->prepend == SB_PREPEND_ALWAYS ? "always" : "never";
            sb_printf(&b,
                      "  \"normalizer\": null,\n  \"pre_tokenizer\": {\n    \"type\": \"Metaspace\",\n"
                      "    \"replacement\": \"\xE2\x96\x81\",\n    \"prepend_scheme\": \"%s\",\n    \"split\": %s\n  },\n",
                      scheme, t->metaspace_split ? "true" : "false");
        }
        sb_puts(&b, "  \"post_processor\": ");
        if (t->bos_id >= 0 || t->eos_id >= 0) put_template(&b, t);
        else sb_puts(&b, "null");
        sb_puts(&b, ",\n  \"decoder\": {\n    \"type\": \"Sequence\",\n    \"decoders\": [\n"
                    "      {\n        \"type\": \"Replace\",\n        \"pattern\": {\n          \"String\": \"\xE2\x96\x81\"\n"
                    "        },\n        \"content\": \" \"\n      },\n"
                    "      {\n        \"type\": \"ByteFallback\"\n      },\n      {\n        \"type\": \"Fuse\"\n      }");
        if (t->prepend != SB_PREPEND_NONE)
            sb_puts(&b, ",\n      {\n        \"type\": \"Strip\",\n        \"content\": \" \",\n        \"start\": 1,\n"
                        "        \"stop\": 0\n      }");
        sb_puts(&b, "\n    ]\n  },\n");
    }
    sb_puts(&b, "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": ");
    if (sp && t->unk_id >= 0) put_vocab_key(&b, t, t->unk_id);
    else sb_puts(&b, "null");
    sb_printf(&b,
              ",\n    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
              "    \"fuse_unk\": %s,\n    \"byte_fallback\": %s,\n    \"ignore_merges\": %s,\n    \"vocab\": {",
              sp ? "true" : "false", sp ? "true" : "false", t->ignore_merges ? "true" : "false");
    bool first = true;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        if (!t->tok[id]) continue;
        sb_puts(&b, first ? "\n      " : ",\n      ");
        first = false;
        put_vocab_key(&b, t, id);
        sb_printf(&b, ": %d", (int)id);
    }
    sb_puts(&b, first ? "},\n    \"merges\": [" : "\n    },\n    \"merges\": [");
    for (int32_t r = 0; r < t->n_merges; r++) {
        /* "left right" strings, the form every tokenizers version reads; a piece that itself
         * holds a space needs the [left, right] form */
        int32_t a = t->merges[r][0], c = t->merges[r][1];
        bool pair_form = sp && (strchr(t->piece[a], ' ') || strchr(t->piece[c], ' '));
        sb_puts(&b, r ? ",\n      " : "\n      ");
        if (pair_form) {
            sb_puts(&b, "[");
            put_vocab_key(&b, t, a);
            sb_puts(&b, ", ");
            put_vocab_key(&b, t, c);
            sb_puts(&b, "]");
        } else {
            sbuf m = {0};
            put_vocab_key(&m, t, a);
            m.n--; /* drop the closing quote of the left side ... */
            sb_puts(&m, " ");
            sbuf r2 = {0};
            put_vocab_key(&r2, t, c);
            sb_put(&m, r2.p + 1, r2.n - 1); /* ... and the opening quote of the right */
            sb_put(&b, m.p, m.n);
            free(m.p);
            free(r2.p);
        }
    }
    sb_puts(&b, t->n_merges ? "\n    ]\n  }\n}\n" : "]\n  }\n}\n");
    *json = b.p;
    *len = b.n;
    return SB_OK;
}

int sb_tokenizer_save(const sb_tokenizer *t, const char *path) {
    char full[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (snprintf(full, sizeof full, "%s/tokenizer.json", path) >= (int)sizeof full)
            return sb_error("%s: path too long", path);
        path = full;
    }
    char *json;
    size_t len;
    int rc = sb_tokenizer_to_json(t, &json, &len);
    if (rc) return rc;
    rc = sb_write_file_atomic(path, json, len);
    free(json);
    return rc;
}

/* ---- reader ---- */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jtrue(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)); }

static bool jnull(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return !v || cJSON_IsNull(v);
}

static bool jtype(const cJSON *o, const char *type) {
    const char *s = o ? jstr(o, "type") : NULL;
    return s && !strcmp(s, type);
}

static const char *describe(const cJSON *o) {
    const char *s = o ? jstr(o, "type") : NULL;
    return s ? s : "?";
}

/* key string -> id, for resolving merges */
typedef struct {
    const char **key;
    int32_t *id;
    size_t cap;
} kmap;

static void kmap_put(kmap *m, const char *k, int32_t id) {
    size_t mask = m->cap - 1;
    size_t i = sb_tok_hash_bytes((const uint8_t *)k, strlen(k)) & mask;
    while (m->key[i] && strcmp(m->key[i], k)) i = (i + 1) & mask;
    if (!m->key[i]) {
        m->key[i] = k;
        m->id[i] = id;
    }
}

static int32_t kmap_get(const kmap *m, const char *k, size_t n) {
    size_t mask = m->cap - 1;
    for (size_t i = sb_tok_hash_bytes((const uint8_t *)k, n) & mask; m->key[i]; i = (i + 1) & mask)
        if (strlen(m->key[i]) == n && !memcmp(m->key[i], k, n)) return m->id[i];
    return -1;
}

/* Decoded bytes of a byte-level vocab key: the GPT-2 alphabet mapped back to bytes, or the
 * key's own UTF-8 when it uses a character outside that alphabet (as the Python decoder does). */
static char *bytelevel_decode_key(const char *k, uint32_t *out_len) {
    size_t n = strlen(k), m = 0;
    char *out = malloc_check(n + 1);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int cl = sb_utf8_decode((const uint8_t *)k + i, n - i, &cp);
        int b = cp == UINT32_MAX ? -1 : sb_bytelevel_byte(cp);
        if (b < 0) {
            memcpy(out, k, n + 1);
            *out_len = (uint32_t)n;
            return out;
        }
        out[m++] = (char)b;
        i += (size_t)cl;
    }
    out[m] = '\0';
    *out_len = (uint32_t)m;
    return out;
}

/* SentencePiece piece -> bytes: "▁" is a space, "<0xNN>" is that byte. */
static char *sp_decode_piece(const char *k, uint32_t *out_len) {
    size_t n = strlen(k), m = 0;
    char *out = malloc_check(n + 1);
    if (n == 6 && !memcmp(k, "<0x", 3) && k[5] == '>') {
        char *end;
        long v = strtol(k + 3, &end, 16);
        if (end == k + 5 && v >= 0 && v < 256) {
            out[0] = (char)v;
            out[1] = '\0';
            *out_len = 1;
            return out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && (uint8_t)k[i] == 0xE2 && (uint8_t)k[i + 1] == 0x96 && (uint8_t)k[i + 2] == 0x81) {
            out[m++] = ' ';
            i += 2;
        } else {
            out[m++] = k[i];
        }
    }
    out[m] = '\0';
    *out_len = (uint32_t)m;
    return out;
}

typedef struct {
    sb_tokenizer_kind kind;
    sb_prepend_scheme prepend;
    bool split;
} shape;

static int is_metaspace_char(const char *s) { return s && !strcmp(s, "\xE2\x96\x81"); }

static int replace_is(const cJSON *o, const char *from, const char *to) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *f = pat ? jstr(pat, "String") : NULL;
    const char *c = jstr(o, "content");
    return jtype(o, "Replace") && f && c && !strcmp(f, from) && !strcmp(c, to);
}

static int read_shape(const cJSON *root, const cJSON *model, const char *path, shape *sh) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    bool norm_null = !norm || cJSON_IsNull(norm), pre_null = !pre || cJSON_IsNull(pre);
    memset(sh, 0, sizeof *sh);
    if (jtrue(model, "byte_fallback")) {
        sh->kind = SB_TOKENIZER_SENTENCEPIECE;
        if (!norm_null) {
            const cJSON *ns = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
            const cJSON *n0 = cJSON_GetArrayItem(ns, 0), *n1 = cJSON_GetArrayItem(ns, 1);
            if (!jtype(norm, "Sequence") || cJSON_GetArraySize(ns) != 2 || !jtype(n0, "Prepend") ||
                !is_metaspace_char(jstr(n0, "prepend")) || !replace_is(n1, " ", "\xE2\x96\x81"))
                return sb_error("%s: normalizer %s is not supported (only Prepend+Replace of SentencePiece)", path,
                                describe(norm));
            if (!pre_null) return sb_error("%s: a pre_tokenizer after the SentencePiece normalizer is not supported", path);
            sh->prepend = SB_PREPEND_EVERY;
            return SB_OK;
        }
        if (!jtype(pre, "Metaspace") || !is_metaspace_char(jstr(pre, "replacement")))
            return sb_error("%s: pre_tokenizer %s is not supported with byte_fallback (need Metaspace)", path,
                            describe(pre));
        const char *scheme = jstr(pre, "prepend_scheme");
        if (scheme) {
            if (!strcmp(scheme, "first")) sh->prepend = SB_PREPEND_FIRST;
            else if (!strcmp(scheme, "always")) sh->prepend = SB_PREPEND_ALWAYS;
            else if (!strcmp(scheme, "never")) sh->prepend = SB_PREPEND_NONE;
            else return sb_error("%s: Metaspace prepend_scheme '%s' is not supported", path, scheme);
        } else {
            sh->prepend = jnull(pre, "add_prefix_space") || jtrue(pre, "add_prefix_space") ? SB_PREPEND_ALWAYS
                                                                                            : SB_PREPEND_NONE;
        }
        const cJSON *split = cJSON_GetObjectItemCaseSensitive(pre, "split");
        sh->split = !split || cJSON_IsTrue(split);
        return SB_OK;
    }
    sh->kind = SB_TOKENIZER_BYTE_LEVEL;
    if (!norm_null) return sb_error("%s: normalizer %s is not supported", path, describe(norm));
    const cJSON *bl = pre;
    if (jtype(pre, "Sequence")) {
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
        bl = cJSON_GetArraySize(ps) == 1 ? cJSON_GetArrayItem(ps, 0) : NULL;
    }
    if (!jtype(bl, "ByteLevel"))
        return sb_error("%s: pre_tokenizer %s is not supported (need ByteLevel or byte_fallback BPE)", path,
                        describe(pre));
    if (jtrue(bl, "add_prefix_space")) return sb_error("%s: ByteLevel add_prefix_space=true is not supported", path);
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(bl, "use_regex");
    if (ur && !cJSON_IsTrue(ur)) return sb_error("%s: ByteLevel use_regex=false is not supported", path);
    return SB_OK;
}

/* Id of a post-processor special token: its "ids" when it has exactly one, else its name in
 * the vocab; -1 if neither. */
static int32_t tpl_special_id(const cJSON *pp, const char *name, const kmap *km) {
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), name);
    const cJSON *ids = spec ? cJSON_GetObjectItemCaseSensitive(spec, "ids") : NULL;
    if (cJSON_GetArraySize(ids) == 1 && cJSON_IsNumber(cJSON_GetArrayItem(ids, 0))) {
        double v = cJSON_GetArrayItem(ids, 0)->valuedouble;
        return v >= 0 && v < 2147483647.0 ? (int32_t)v : -1;
    }
    return kmap_get(km, name, strlen(name));
}

/* Bert/RobertaProcessing keep a token as ["[CLS]", 101]: the number is the id. */
static int32_t pair_id(const cJSON *pp, const char *key) {
    const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, key), 1);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 2147483647.0 ? (int32_t)v->valuedouble : -1;
}

/* The BOS and EOS the post-processor puts around a single sequence (TemplateProcessing's
 * "single", or Bert/Roberta's cls/sep, maybe inside a Sequence); -1 where none. Pairs and
 * offsets do not change how a stream is encoded and are not kept. */
static void read_post(const cJSON *root, const kmap *km, int32_t *bos, int32_t *eos) {
    *bos = *eos = -1;
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (jtype(pp, "Sequence")) {
        const cJSON *p, *found = NULL;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors")) if (
            jtype(p, "TemplateProcessing") || jtype(p, "BertProcessing") || jtype(p, "RobertaProcessing")) found = p;
        pp = found;
    }
    if (jtype(pp, "BertProcessing") || jtype(pp, "RobertaProcessing")) {
        *bos = pair_id(pp, "cls");
        *eos = pair_id(pp, "sep");
        return;
    }
    if (!jtype(pp, "TemplateProcessing")) return;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    int n = cJSON_GetArraySize(single);
    for (int end = 0; end < 2 && n >= 2; end++) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, end ? n - 1 : 0), "SpecialToken");
        const char *name = st ? jstr(st, "id") : NULL;
        if (name) *(end ? eos : bos) = tpl_special_id(pp, name, km);
    }
}

/* A token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}; -1 if absent. */
static int32_t config_token(const sb_tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? sb_tokenizer_token_id(t, v->valuestring) : -1;
}

/* tokenizer_config.json beside the tokenizer.json (transformers' Llama/Mistral tokenizers):
 * add_bos_token / add_eos_token, where present, override the post-processor, as transformers
 * rebuilds the post-processor from them. Absent file: nothing changes. */
static int apply_config(sb_tokenizer *t, const char *json_path) {
    const char *slash = strrchr(json_path, '/');
    size_t dir = slash ? (size_t)(slash - json_path) + 1 : 0;
    char cpath[4096];
    if (dir + sizeof "tokenizer_config.json" > sizeof cpath) return SB_OK;
    memcpy(cpath, json_path, dir);
    strcpy(cpath + dir, "tokenizer_config.json");
    struct stat st;
    if (stat(cpath, &st) != 0) return SB_OK;
    char *data;
    size_t size;
    int rc = sb_read_file(cpath, &data, &size);
    if (rc) return rc;
    cJSON *cfg = cJSON_ParseWithLength(data, size);
    free(data);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return sb_error("%s: not a JSON object", cpath);
    }
    int32_t bos_tok = config_token(t, cfg, "bos_token"), eos_tok = config_token(t, cfg, "eos_token");
    if (bos_tok >= 0) t->bos_token = bos_tok;
    if (eos_tok >= 0) t->eos_token = eos_tok;
    static const char *const keys[2] = {"add_bos_token", "add_eos_token"};
    for (int k = 0; k < 2 && rc == SB_OK; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsBool(v)) {
            rc = sb_error("%s: %s must be true or false", cpath, keys[k]);
            break;
        }
        int32_t *added = k ? &t->eos_id : &t->bos_id, known = k ? t->eos_token : t->bos_token;
        if (cJSON_IsFalse(v)) *added = -1;
        else if (*added < 0 && known < 0)
            rc = sb_error("%s: %s is true but %s names no token of the vocabulary", cpath, keys[k],
                          k ? "eos_token" : "bos_token");
        else if (*added < 0) *added = known;
    }
    cJSON_Delete(cfg);
    return rc;
}

static int load_json(sb_tokenizer **out, const char *path, const char *data, size_t size) {
    cJSON *root = cJSON_ParseWithLength(data, size);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= data && at <= data + size ? (long)(at - data) : -1;
        return sb_error("%s: invalid JSON (near byte %ld)", path, off);
    }
    int rc = SB_ERR;
    char **tok = NULL, **piece = NULL;
    uint32_t *tok_len = NULL;
    int32_t(*merges)[2] = NULL;
    sb_added_token *added = NULL;
    int n_added = 0;
    int32_t vocab_size = 0;
    uint8_t *in_model = NULL;
    kmap km = {0};

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        sb_error("%s: no \"model\" object", path);
        goto done;
    }
    const char *mtype = jstr(model, "type");
    if (mtype && strcmp(mtype, "BPE")) {
        sb_error("%s: model type '%s' is not supported (BPE only)", path, mtype);
        goto done;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *mlist = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *alist = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(mlist)) {
        sb_error("%s: model needs a \"vocab\" object and a \"merges\" array", path);
        goto done;
    }
    if (alist && !cJSON_IsArray(alist) && !cJSON_IsNull(alist)) {
        sb_error("%s: \"added_tokens\" is not an array", path);
        goto done;
    }
    shape sh;
    if (read_shape(root, model, path, &sh)) goto done;
    if (!jnull(model, "dropout") || !jnull(model, "continuing_subword_prefix") || !jnull(model, "end_of_word_suffix")) {
        sb_error("%s: BPE dropout / continuing_subword_prefix / end_of_word_suffix are not supported", path);
        goto done;
    }

    /* ids must fit in the entries actually present (bounds every allocation by the file) */
    int n_vocab = cJSON_GetArraySize(vocab);
    int n_alist = alist ? cJSON_GetArraySize(alist) : 0;
    int64_t id_limit = (int64_t)n_vocab + n_alist;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v < 0 || v >= (double)id_limit || v != (double)(int64_t)v) {
            sb_error("%s: vocab entry \"%s\" has a bad id (must be an integer in [0, %lld))", path, it->string,
                     (long long)id_limit);
            goto done;
        }
        if ((int32_t)v + 1 > vocab_size) vocab_size = (int32_t)v + 1;
    }
    cJSON_ArrayForEach(it, alist) {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *content = jstr(it, "content");
        double v = cJSON_IsNumber(idv) ? idv->valuedouble : -1;
        if (!content || !content[0] || v < 0 || v >= (double)id_limit || v != (double)(int64_t)v) {
            sb_error("%s: added token %d needs a non-empty content and an id in [0, %lld)", path, n_added,
                     (long long)id_limit);
            goto done;
        }
        if (jtrue(it, "single_word") || jtrue(it, "lstrip") || jtrue(it, "rstrip")) {
            sb_error("%s: added token '%s': single_word/lstrip/rstrip are not supported", path, content);
            goto done;
        }
        n_added++;
    }
    if (vocab_size == 0) {
        sb_error("%s: empty vocabulary", path);
        goto done;
    }

    tok = calloc_check((size_t)vocab_size, sizeof *tok);
    tok_len = calloc_check((size_t)vocab_size, sizeof *tok_len);
    if (sh.kind == SB_TOKENIZER_SENTENCEPIECE) piece = calloc_check((size_t)vocab_size, sizeof *piece);
    km.cap = 16;
    while (km.cap < (size_t)n_vocab * 2 + 1) km.cap *= 2;
    km.key = calloc_check(km.cap, sizeof *km.key);
    km.id = calloc_check(km.cap, sizeof *km.id);
    cJSON_ArrayForEach(it, vocab) {
        int32_t id = (int32_t)it->valuedouble;
        if (tok[id]) {
            sb_error("%s: id %d appears twice in the vocab", path, (int)id);
            goto done;
        }
        tok[id] = sh.kind == SB_TOKENIZER_SENTENCEPIECE ? sp_decode_piece(it->string, &tok_len[id])
                                                        : bytelevel_decode_key(it->string, &tok_len[id]);
        if (piece) {
            piece[id] = malloc_check(strlen(it->string) + 1);
            strcpy(piece[id], it->string);
        }
        kmap_put(&km, it->string, id);
    }
    /* Ids of added tokens as Hugging Face assigns them on load: the model's id when the content
     * is a vocab key, else the next free id (the "id" field is not what decides) */
    in_model = calloc_check((size_t)vocab_size + (size_t)n_added + 1, 1);
    for (int32_t i = 0; i < vocab_size; i++) in_model[i] = tok[i] != NULL;
    added = calloc_check((size_t)n_added + 1, sizeof *added);
    n_added = 0;
    int32_t max_added = -1;
    cJSON_ArrayForEach(it, alist) {
        const char *content = jstr(it, "content");
        size_t n = strlen(content);
        int32_t id = kmap_get(&km, content, n);
        for (int i = 0; i < n_added && id < 0; i++)
            if (added[i].len == n && !memcmp(added[i].content, content, n)) id = added[i].id;
        if (id < 0) id = max_added >= n_vocab ? max_added + 1 : n_vocab;
        if (id > max_added) max_added = id;
        sb_added_token *a = &added[n_added++];
        *a = (sb_added_token){.content = malloc_check(n + 1), .len = n, .id = id, .special = jtrue(it, "special"),
                              .normalized = jtrue(it, "normalized")};
        memcpy(a->content, content, n + 1);
        if (id >= vocab_size) {
            char **nt = realloc(tok, ((size_t)id + 1) * sizeof *tok);
            uint32_t *nl = realloc(tok_len, ((size_t)id + 1) * sizeof *tok_len);
            char **np = piece ? realloc(piece, ((size_t)id + 1) * sizeof *piece) : NULL;
            if (!nt || !nl || (piece && !np)) malloc_check((size_t)-1);
            tok = nt;
            tok_len = nl;
            if (piece) piece = np;
            for (int32_t k = vocab_size; k <= id; k++) {
                tok[k] = NULL;
                tok_len[k] = 0;
                if (piece) piece[k] = NULL;
            }
            vocab_size = id + 1;
        }
        if (!in_model[id]) { /* an added-only token decodes to its content */
            free(tok[id]);
            tok[id] = malloc_check(n + 1);
            memcpy(tok[id], content, n + 1);
            tok_len[id] = (uint32_t)n;
            if (piece && !piece[id]) {
                piece[id] = malloc_check(n + 1);
                memcpy(piece[id], content, n + 1);
            }
        }
    }

    int n_merges = cJSON_GetArraySize(mlist);
    merges = malloc_check(((size_t)n_merges + 1) * sizeof *merges);
    int r = 0;
    cJSON_ArrayForEach(it, mlist) {
        const char *l = NULL, *rr = NULL;
        size_t ln = 0, rn = 0;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                l = it->valuestring;
                ln = (size_t)(sp - l);
                rr = sp + 1;
                rn = strlen(rr);
            }
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            l = cJSON_GetArrayItem(it, 0)->valuestring;
            rr = cJSON_GetArrayItem(it, 1)->valuestring;
            ln = strlen(l);
            rn = strlen(rr);
        }
        if (!l) {
            sb_error("%s: merge %d is not \"left right\" or [left, right]", path, r);
            goto done;
        }
        int32_t a = kmap_get(&km, l, ln), b = kmap_get(&km, rr, rn);
        if (a < 0 || b < 0) {
            sb_error("%s: merge %d references unknown token '%.*s'", path, r, (int)(a < 0 ? ln : rn),
                     a < 0 ? l : rr);
            goto done;
        }
        merges[r][0] = a;
        merges[r][1] = b;
        r++;
    }

    bool ignore_merges = jtrue(model, "ignore_merges");
    int32_t bos_id, eos_id;
    read_post(root, &km, &bos_id, &eos_id);
    /* the post-processor's "ids" are not checked against the vocab by anything else */
    if (bos_id >= vocab_size || eos_id >= vocab_size) {
        sb_error("%s: post_processor %s id %d is outside the vocabulary (%d tokens)", path,
                 bos_id >= vocab_size ? "BOS" : "EOS", (int)(bos_id >= vocab_size ? bos_id : eos_id), (int)vocab_size);
        goto done;
    }
    int32_t unk_id = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk && sh.kind == SB_TOKENIZER_SENTENCEPIECE) {
        unk_id = kmap_get(&km, unk, strlen(unk));
        if (unk_id < 0) {
            sb_error("%s: unk_token '%s' is not in the vocab", path, unk);
            goto done;
        }
    }
    sb_tokenizer *t;
    rc = sb_tokenizer_build(&t, sh.kind, vocab_size, tok, tok_len, in_model, piece, merges, n_merges, added, n_added,
                            path);
    tok = NULL;
    tok_len = NULL;
    piece = NULL;
    merges = NULL;
    added = NULL;
    n_added = 0;
    if (rc == SB_OK) {
        t->ignore_merges = ignore_merges;
        t->prepend = sh.prepend;
        t->metaspace_split = sh.split;
        t->unk_id = unk_id;
        t->bos_id = t->bos_token = bos_id;
        t->eos_id = t->eos_token = eos_id;
        if ((rc = apply_config(t, path)) != SB_OK) {
            sb_tokenizer_free(t);
            goto done;
        }
        /* the canonical form depends on these too: hash again */
        char *json;
        size_t len;
        sb_tokenizer_to_json(t, &json, &len);
        sb_sha256(json, len, t->hash);
        free(json);
        *out = t;
    }
done:
    if (tok)
        for (int32_t i = 0; i < vocab_size; i++) free(tok[i]);
    if (piece)
        for (int32_t i = 0; i < vocab_size; i++) free(piece[i]);
    free(tok);
    free(tok_len);
    free(piece);
    free(merges);
    free(in_model);
    /* n_added counts the list before `added` exists: an early error leaves it NULL */
    if (added)
        for (int i = 0; i < n_added; i++) free(added[i].content);
    free(added);
    free(km.key);
    free(km.id);
    cJSON_Delete(root);
    return rc;
}

int sb_tokenizer_load(sb_tokenizer **t, const char *path) {
    *t = NULL;
    char full[4096];
    struct stat st;
    if (stat(path, &st) != 0) return sb_error("%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (snprintf(full, sizeof full, "%s/tokenizer.json", path) >= (int)sizeof full)
            return sb_error("%s: path too long", path);
        path = full;
    }
    char *data;
    size_t size;
    int rc = sb_read_file(path, &data, &size);
    if (rc) return rc;
    rc = load_json(t, path, data, size);
    free(data);
    return rc;
}
