#include "engine/hfconfig.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

/* ---------------------------------------------------------------- enum names */

static const char *const norm_names[] = {"rms", "layer"};
static const char *const pos_names[] = {"rope", "alibi", "none"};
static const char *const rope_names[] = {"half", "interleaved"};
static const char *const mlp_names[] = {"swiglu", "gelu"};
static const char *const act_names[] = {"silu", "gelu", "gelu_tanh"};
static const char *const softmax_names[] = {"standard", "off_by_one", "sink_logit"};
static const char *const dtype_names[] = {"f32", "f16", "bf16"};

#define NAME_OF(tab, k) ((unsigned)(k) < sizeof tab / sizeof tab[0] ? tab[(unsigned)(k)] : "?")
const char *sb_norm_kind_name(sb_norm_kind k) { return NAME_OF(norm_names, k); }
const char *sb_pos_kind_name(sb_pos_kind k) { return NAME_OF(pos_names, k); }
const char *sb_rope_style_name(sb_rope_style k) { return NAME_OF(rope_names, k); }
const char *sb_mlp_kind_name(sb_mlp_kind k) { return NAME_OF(mlp_names, k); }
const char *sb_act_kind_name(sb_act_kind k) { return NAME_OF(act_names, k); }
const char *sb_softmax_kind_name(sb_softmax_kind k) { return NAME_OF(softmax_names, k); }
const char *sb_dtype_name(sb_dtype d) { return NAME_OF(dtype_names, d); }

static int find_name(const char *const *tab, int n, const char *s) {
    for (int i = 0; s && i < n; i++)
        if (!strcmp(tab[i], s)) return i;
    return -1;
}
#define PARSE_FN(fn, type, tab)                                   \
    int fn(const char *s, type *out) {                            \
        int i = find_name(tab, (int)(sizeof tab / sizeof tab[0]), s); \
        if (i < 0) return -1;                                     \
        *out = (type)i;                                           \
        return 0;                                                 \
    }
PARSE_FN(sb_norm_kind_parse, sb_norm_kind, norm_names)
PARSE_FN(sb_pos_kind_parse, sb_pos_kind, pos_names)
PARSE_FN(sb_rope_style_parse, sb_rope_style, rope_names)
PARSE_FN(sb_mlp_kind_parse, sb_mlp_kind, mlp_names)
PARSE_FN(sb_act_kind_parse, sb_act_kind, act_names)
PARSE_FN(sb_softmax_kind_parse, sb_softmax_kind, softmax_names)
PARSE_FN(sb_dtype_parse, sb_dtype, dtype_names)

/* ---------------------------------------------------------------- field tables */

typedef enum { F_INT, F_FLOAT, F_BOOL, F_TOKEN, F_ENUM } field_type;

typedef struct {
    const char *key;
    field_type type;
    size_t offset;                    /* into sb_model_config */
    bool required;
    const char *const *enum_names;    /* F_ENUM */
    int n_enum;
} field_spec;

_Static_assert(sizeof(sb_norm_kind) == sizeof(int) && sizeof(sb_softmax_kind) == sizeof(int),
               "enum fields are written through int");

#define OFF(f) offsetof(sb_model_config, f)
#define ENUM(tab) tab, (int)(sizeof tab / sizeof tab[0])

/* Hugging Face keys of the Llama family (llama, mistral). Keys that need more than a copy
 * (attention_bias, hidden_act, rope dicts, dtype) are handled by llama_extra(). */
static const field_spec llama_fields[] = {
    {"vocab_size", F_INT, OFF(vocab_size), true, NULL, 0},
    {"hidden_size", F_INT, OFF(dim), true, NULL, 0},
    {"num_hidden_layers", F_INT, OFF(n_layers), true, NULL, 0},
    {"num_attention_heads", F_INT, OFF(n_heads), true, NULL, 0},
    {"num_key_value_heads", F_INT, OFF(n_kv_heads), false, NULL, 0},
    {"head_dim", F_INT, OFF(head_dim), false, NULL, 0},
    {"intermediate_size", F_INT, OFF(ffn_dim), true, NULL, 0},
    {"max_position_embeddings", F_INT, OFF(max_ctx), false, NULL, 0},
    {"rms_norm_eps", F_FLOAT, OFF(norm_eps), false, NULL, 0},
    {"rope_theta", F_FLOAT, OFF(rope_theta), false, NULL, 0},
    {"tie_word_embeddings", F_BOOL, OFF(tie_embeddings), false, NULL, 0},
    {"mlp_bias", F_BOOL, OFF(mlp_bias), false, NULL, 0},
    {"bos_token_id", F_TOKEN, OFF(bos_id), false, NULL, 0},
    {"eos_token_id", F_TOKEN, OFF(eos_id), false, NULL, 0},
};

/* Our variants, inside "sinkbench": {...}. Unknown keys there are errors (typos). */
static const field_spec sinkbench_fields[] = {
    {"norm", F_ENUM, OFF(norm), false, ENUM(norm_names)},
    {"norm_bias", F_BOOL, OFF(norm_bias), false, NULL, 0},
    {"pos", F_ENUM, OFF(pos), false, ENUM(pos_names)},
    {"rope_style", F_ENUM, OFF(rope_style), false, ENUM(rope_names)},
    {"rotary_dim", F_INT, OFF(rotary_dim), false, NULL, 0},
    {"alibi_bias_max", F_FLOAT, OFF(alibi_bias_max), false, NULL, 0},
    {"parallel_residual", F_BOOL, OFF(parallel_residual), false, NULL, 0},
    {"shared_norm", F_BOOL, OFF(shared_norm), false, NULL, 0},
    {"mlp", F_ENUM, OFF(mlp), false, ENUM(mlp_names)},
    {"act", F_ENUM, OFF(act), false, ENUM(act_names)},
    {"qkv_bias", F_BOOL, OFF(qkv_bias), false, NULL, 0},
    {"out_bias", F_BOOL, OFF(out_bias), false, NULL, 0},
    {"softmax", F_ENUM, OFF(softmax), false, ENUM(softmax_names)},
    {"clip_qkv", F_FLOAT, OFF(clip_qkv), false, NULL, 0},
    {"sink_token_id", F_TOKEN, OFF(sink_token_id), false, NULL, 0},
    {"newline_token_id", F_TOKEN, OFF(newline_token_id), false, NULL, 0},
};

/* GPT-NeoX (Pythia). rotary_pct / rotary_emb_base / attention_bias / hidden_act: neox_extra. */
static const field_spec neox_fields[] = {
    {"vocab_size", F_INT, OFF(vocab_size), true, NULL, 0},
    {"hidden_size", F_INT, OFF(dim), true, NULL, 0},
    {"num_hidden_layers", F_INT, OFF(n_layers), true, NULL, 0},
    {"num_attention_heads", F_INT, OFF(n_heads), true, NULL, 0},
    {"intermediate_size", F_INT, OFF(ffn_dim), true, NULL, 0},
    {"max_position_embeddings", F_INT, OFF(max_ctx), false, NULL, 0},
    {"layer_norm_eps", F_FLOAT, OFF(norm_eps), false, NULL, 0},
    {"rotary_emb_base", F_FLOAT, OFF(rope_theta), false, NULL, 0},
    {"rope_theta", F_FLOAT, OFF(rope_theta), false, NULL, 0},
    {"use_parallel_residual", F_BOOL, OFF(parallel_residual), false, NULL, 0},
    {"tie_word_embeddings", F_BOOL, OFF(tie_embeddings), false, NULL, 0},
    {"bos_token_id", F_TOKEN, OFF(bos_id), false, NULL, 0},
    {"eos_token_id", F_TOKEN, OFF(eos_id), false, NULL, 0},
};

/* Falcon; the old RW names n_layer / n_head are read by falcon_extra. */
static const field_spec falcon_fields[] = {
    {"vocab_size", F_INT, OFF(vocab_size), true, NULL, 0},
    {"hidden_size", F_INT, OFF(dim), true, NULL, 0},
    {"num_hidden_layers", F_INT, OFF(n_layers), false, NULL, 0},
    {"num_attention_heads", F_INT, OFF(n_heads), false, NULL, 0},
    {"max_position_embeddings", F_INT, OFF(max_ctx), false, NULL, 0},
    {"layer_norm_epsilon", F_FLOAT, OFF(norm_eps), false, NULL, 0},
    {"rope_theta", F_FLOAT, OFF(rope_theta), false, NULL, 0},
    {"tie_word_embeddings", F_BOOL, OFF(tie_embeddings), false, NULL, 0},
    {"bos_token_id", F_TOKEN, OFF(bos_id), false, NULL, 0},
    {"eos_token_id", F_TOKEN, OFF(eos_id), false, NULL, 0},
};

/* MPT; attn_config, expansion_ratio and no_bias: mpt_extra. */
static const field_spec mpt_fields[] = {
    {"vocab_size", F_INT, OFF(vocab_size), true, NULL, 0},
    {"d_model", F_INT, OFF(dim), true, NULL, 0},
    {"n_layers", F_INT, OFF(n_layers), true, NULL, 0},
    {"n_heads", F_INT, OFF(n_heads), true, NULL, 0},
    {"max_seq_len", F_INT, OFF(max_ctx), false, NULL, 0},
    {"layer_norm_epsilon", F_FLOAT, OFF(norm_eps), false, NULL, 0},
    {"tie_word_embeddings", F_BOOL, OFF(tie_embeddings), false, NULL, 0},
    {"bos_token_id", F_TOKEN, OFF(bos_id), false, NULL, 0},
    {"eos_token_id", F_TOKEN, OFF(eos_id), false, NULL, 0},
};

/* What the extras learn beyond the config struct (resolved once head_dim is known). */
typedef struct {
    double rotary_pct;                /* < 0: full rotary */
} parse_ctx;

typedef struct family family;
struct family {
    const char *model_type;
    const char *architecture;
    const field_spec *fields;
    int n_fields;
    void (*defaults)(sb_model_config *c);
    int (*extra)(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x);
};

static void llama_defaults(sb_model_config *c) {
    c->max_ctx = 2048; /* transformers' LlamaConfig defaults */
    c->norm_eps = 1e-6f;
}
static void neox_defaults(sb_model_config *c) {
    c->max_ctx = 2048;
    c->norm_eps = 1e-5f;
    c->norm = SB_NORM_LAYER;
    c->norm_bias = true;
    c->parallel_residual = true;
    c->mlp = SB_MLP_GELU;
    c->act = SB_ACT_GELU_ERF;
    c->mlp_bias = c->qkv_bias = c->out_bias = true;
}
static void falcon_defaults(sb_model_config *c) {
    c->max_ctx = 2048;
    c->norm_eps = 1e-5f;
    c->norm = SB_NORM_LAYER;
    c->norm_bias = true;
    c->mlp = SB_MLP_GELU;
    c->act = SB_ACT_GELU_ERF;
    c->tie_embeddings = true;
}
static void mpt_defaults(sb_model_config *c) {
    c->max_ctx = 2048;
    c->norm_eps = 1e-5f;
    c->norm = SB_NORM_LAYER;
    c->pos = SB_POS_ALIBI;
    c->mlp = SB_MLP_GELU;
    c->act = SB_ACT_GELU_ERF;
    c->tie_embeddings = true;
}

static int llama_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x);
static int neox_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x);
static int falcon_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x);
static int mpt_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x);

#define FIELDS(t) t, (int)(sizeof t / sizeof t[0])
static const family families[] = {
    {"llama", "LlamaForCausalLM", FIELDS(llama_fields), llama_defaults, llama_extra},
    {"mistral", "MistralForCausalLM", FIELDS(llama_fields), llama_defaults, llama_extra},
    {"gpt_neox", "GPTNeoXForCausalLM", FIELDS(neox_fields), neox_defaults, neox_extra},
    {"falcon", "FalconForCausalLM", FIELDS(falcon_fields), falcon_defaults, falcon_extra},
    {"mpt", "MptForCausalLM", FIELDS(mpt_fields), mpt_defaults, mpt_extra},
};
#define N_WRITABLE_FAMILIES 2 /* llama and mistral are written back; the others save as llama */

/* ---------------------------------------------------------------- reading */

/* A value as it appears in messages: strings in single quotes, the rest as JSON. */
static void value_str(char *buf, size_t cap, const cJSON *v) {
    if (cJSON_IsString(v)) {
        snprintf(buf, cap, "'%.40s'", v->valuestring);
        return;
    }
    char *s = cJSON_PrintUnformatted(v);
    snprintf(buf, cap, "%s", s ? s : "?");
    if (strlen(buf) > 40) strcpy(buf + 37, "...");
    cJSON_free(s);
}

static int bad_value(const char *path, const char *prefix, const char *key, const cJSON *v, const char *why) {
    char vs[64];
    value_str(vs, sizeof vs, v);
    return sb_error("%s: %s%s %s %s", path, prefix, key, vs, why);
}

static int read_int(const char *path, const char *prefix, const char *key, const cJSON *v, int64_t lo, int64_t hi,
                    int *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi) {
        char why[80];
        snprintf(why, sizeof why, "is not an integer in [%lld, %lld]", (long long)lo, (long long)hi);
        return bad_value(path, prefix, key, v, why);
    }
    *out = (int)v->valuedouble;
    return SB_OK;
}

static int read_field(sb_model_config *c, const field_spec *f, const cJSON *v, const char *path, const char *prefix) {
    char *base = (char *)c + f->offset;
    switch (f->type) {
    case F_INT: {
        int x;
        if (read_int(path, prefix, f->key, v, 0, INT32_MAX, &x)) return SB_ERR;
        memcpy(base, &x, sizeof x);
        return SB_OK;
    }
    case F_TOKEN: {
        int32_t x = -1;
        if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0); /* eos lists: the first is the main one */
        if (v && !cJSON_IsNull(v)) {
            int xi;
            if (read_int(path, prefix, f->key, v, -1, INT32_MAX, &xi)) return SB_ERR;
            x = xi;
        }
        memcpy(base, &x, sizeof x);
        return SB_OK;
    }
    case F_FLOAT: {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.0e38)
            return bad_value(path, prefix, f->key, v, "is not a number");
        float x = (float)v->valuedouble;
        memcpy(base, &x, sizeof x);
        return SB_OK;
    }
    case F_BOOL: {
        if (!cJSON_IsBool(v)) return bad_value(path, prefix, f->key, v, "is not true or false");
        bool x = cJSON_IsTrue(v);
        memcpy(base, &x, sizeof x);
        return SB_OK;
    }
    case F_ENUM: {
        int i = cJSON_IsString(v) ? find_name(f->enum_names, f->n_enum, v->valuestring) : -1;
        if (i < 0) {
            char vs[64], opts[160] = "";
            value_str(vs, sizeof vs, v);
            for (int k = 0; k < f->n_enum; k++)
                snprintf(opts + strlen(opts), sizeof opts - strlen(opts), "%s%s", k ? ", " : "", f->enum_names[k]);
            return sb_error("%s: %s%s %s is not supported (%s)", path, prefix, f->key, vs, opts);
        }
        memcpy(base, &i, sizeof i);
        return SB_OK;
    }
    }
    return SB_OK;
}

static int read_fields(sb_model_config *c, const cJSON *obj, const field_spec *fields, int n, const char *path,
                       const char *prefix, bool *seen) {
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, fields[i].key);
        if (seen) seen[i] = v != NULL;
        if (!v) {
            if (fields[i].required) return sb_error("%s: required field %s%s is missing", path, prefix, fields[i].key);
            continue;
        }
        if (cJSON_IsNull(v) && fields[i].type != F_TOKEN && !fields[i].required) {
            if (seen) seen[i] = false; /* null means "default" in HF configs */
            continue;
        }
        if (read_field(c, &fields[i], v, path, prefix)) return SB_ERR;
    }
    return SB_OK;
}

static int unsupported(const char *path, const char *prefix, const char *key, const cJSON *v, const char *options) {
    char vs[64];
    value_str(vs, sizeof vs, v);
    return sb_error("%s: %s%s %s is not supported (%s)", path, prefix, key, vs, options);
}

/* A float member of a dict; missing + required is an error naming "<dict>.<key>". */
static int dict_float(const cJSON *d, const char *dict, const char *key, bool required, const char *why, float *out,
                      const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return sb_error("%s: %s.%s is missing (needed by %s)", path, dict, key, why);
        return SB_OK;
    }
    field_spec f = {key, F_FLOAT, 0, false, NULL, 0};
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", dict);
    sb_model_config tmp;
    f.offset = OFF(rope_factor);
    if (read_field(&tmp, &f, v, path, prefix)) return SB_ERR;
    *out = tmp.rope_factor;
    return SB_OK;
}

/* A rope dict: rope_scaling (older transformers; "type" or "rope_type") or rope_parameters
 * (newer; may also carry rope_theta and partial_rotary_factor). */
static int read_rope_dict(sb_model_config *c, const cJSON *d, const char *key, const char *path, parse_ctx *x) {
    if (!d || cJSON_IsNull(d)) return SB_OK;
    if (!cJSON_IsObject(d)) return bad_value(path, "", key, d, "is not an object");
    const char *tkey = "rope_type";
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, tkey);
    if (!t) t = cJSON_GetObjectItemCaseSensitive(d, tkey = "type");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", key);
    const char *ty = t && cJSON_IsString(t) ? t->valuestring : "default";
    if (t && !cJSON_IsNull(t) && !cJSON_IsString(t)) ty = "?";
    if (!strcmp(ty, "default")) c->rope_scaling = SB_ROPE_SCALING_NONE;
    else if (!strcmp(ty, "linear")) c->rope_scaling = SB_ROPE_SCALING_LINEAR;
    else if (!strcmp(ty, "dynamic")) c->rope_scaling = SB_ROPE_SCALING_DYNAMIC;
    else if (!strcmp(ty, "llama3")) c->rope_scaling = SB_ROPE_SCALING_LLAMA3;
    else return unsupported(path, prefix, tkey, t, "default, linear, dynamic, llama3");
    if (c->rope_scaling != SB_ROPE_SCALING_NONE) {
        char why[48];
        snprintf(why, sizeof why, "rope_type '%s'", ty);
        if (dict_float(d, key, "factor", true, why, &c->rope_factor, path)) return SB_ERR;
        if (!(c->rope_factor >= 1.0f))
            return sb_error("%s: %s.factor %g must be >= 1", path, key, (double)c->rope_factor);
        if (c->rope_scaling == SB_ROPE_SCALING_LLAMA3) {
            float orig = 0;
            if (dict_float(d, key, "low_freq_factor", true, why, &c->rope_low_freq_factor, path) ||
                dict_float(d, key, "high_freq_factor", true, why, &c->rope_high_freq_factor, path) ||
                dict_float(d, key, "original_max_position_embeddings", true, why, &orig, path))
                return SB_ERR;
            if (!(orig >= 1.0f && orig <= 1e9f && orig == floorf(orig)))
                return sb_error("%s: %s.original_max_position_embeddings %g is not a positive integer", path, key,
                                (double)orig);
            c->rope_orig_ctx = (int)orig;
        } else if (c->rope_scaling == SB_ROPE_SCALING_DYNAMIC) {
            float orig = 0;
            if (dict_float(d, key, "original_max_position_embeddings", false, why, &orig, path)) return SB_ERR;
            if (orig >= 1.0f && orig <= 1e9f) c->rope_orig_ctx = (int)orig;
        }
    }
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(d, "rope_theta");
    if (th) {
        static const field_spec f = {"rope_theta", F_FLOAT, OFF(rope_theta), false, NULL, 0};
        if (read_field(c, &f, th, path, prefix)) return SB_ERR;
    }
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(d, "partial_rotary_factor");
    if (pr && !cJSON_IsNull(pr)) {
        if (!cJSON_IsNumber(pr) || !(pr->valuedouble > 0.0 && pr->valuedouble <= 1.0))
            return bad_value(path, prefix, "partial_rotary_factor", pr, "is not a number in (0, 1]");
        x->rotary_pct = pr->valuedouble;
    }
    return SB_OK;
}

/* rope_scaling, then rope_parameters (newer transformers), which wins where both are set. */
static int read_rope(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x) {
    return read_rope_dict(c, cJSON_GetObjectItemCaseSensitive(root, "rope_scaling"), "rope_scaling", path, x) ||
           read_rope_dict(c, cJSON_GetObjectItemCaseSensitive(root, "rope_parameters"), "rope_parameters", path, x);
}

/* hidden_act / activation. */
static int read_act(sb_model_config *c, const cJSON *root, const char *key, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return SB_OK;
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    if (!strcmp(s, "silu") || !strcmp(s, "swish")) c->act = SB_ACT_SILU;
    else if (!strcmp(s, "gelu") || !strcmp(s, "gelu_python")) c->act = SB_ACT_GELU_ERF;
    /* the tanh approximation under its several names (gelu_fast is the same formula) */
    else if (!strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_new") || !strcmp(s, "gelu_fast"))
        c->act = SB_ACT_GELU_TANH;
    else return unsupported(path, "", key, v, "silu, gelu, gelu_new, gelu_fast, gelu_pytorch_tanh");
    return SB_OK;
}

/* "dtype" (transformers >= 4.56) wins over the older "torch_dtype". */
static int read_dtype(sb_model_config *c, const cJSON *root, const char *path) {
    const char *key = "dtype";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) v = cJSON_GetObjectItemCaseSensitive(root, key = "torch_dtype");
    if (!v || cJSON_IsNull(v)) return SB_OK;
    const char *s = cJSON_IsString(v) ? v->valuestring : "";
    if (!strcmp(s, "float32")) c->dtype = SB_DTYPE_F32;
    else if (!strcmp(s, "float16")) c->dtype = SB_DTYPE_F16;
    else if (!strcmp(s, "bfloat16")) c->dtype = SB_DTYPE_BF16;
    else return unsupported(path, "", key, v, "float32, float16, bfloat16");
    return SB_OK;
}

static int read_bool(const cJSON *root, const char *key, bool *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return SB_OK;
    if (!cJSON_IsBool(v)) return bad_value(path, "", key, v, "is not true or false");
    *out = cJSON_IsTrue(v);
    return SB_OK;
}

/* A key whose only supported value is `want` (absent or null is fine). */
static int require_bool(const cJSON *obj, const char *prefix, const char *key, bool want, const char *why,
                        const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v) || (cJSON_IsBool(v) && cJSON_IsTrue(v) == want)) return SB_OK;
    return unsupported(path, prefix, key, v, why);
}

static int llama_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x) {
    bool bias = c->qkv_bias;
    if (read_bool(root, "attention_bias", &bias, path)) return SB_ERR;
    c->qkv_bias = c->out_bias = bias; /* HF Llama: one flag for q, k, v and o */
    if (read_act(c, root, "hidden_act", path) || read_rope(c, root, path, x)) return SB_ERR;
    /* only MistralForCausalLM applies a sliding window; LlamaForCausalLM ignores the key */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (!strcmp(c->arch, "mistral") && v && !cJSON_IsNull(v) &&
        read_int(path, "", "sliding_window", v, 0, INT32_MAX, &c->sliding_window))
        return SB_ERR;
    return read_dtype(c, root, path);
}

static int neox_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x) {
    x->rotary_pct = 0.25; /* GPTNeoXConfig's default */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "rotary_pct");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0.0 && v->valuedouble <= 1.0))
            return bad_value(path, "", "rotary_pct", v, "is not a number in (0, 1]");
        x->rotary_pct = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "partial_rotary_factor");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0.0 && v->valuedouble <= 1.0))
            return bad_value(path, "", "partial_rotary_factor", v, "is not a number in (0, 1]");
        x->rotary_pct = v->valuedouble;
    }
    bool bias = true;
    if (read_bool(root, "attention_bias", &bias, path)) return SB_ERR;
    c->qkv_bias = c->out_bias = bias;
    if (read_act(c, root, "hidden_act", path) || read_rope(c, root, path, x) || read_dtype(c, root, path))
        return SB_ERR;
    if (c->act == SB_ACT_SILU)
        return sb_error("%s: hidden_act 'silu' is not supported for gpt_neox (gelu, gelu_new, gelu_fast)", path);
    return SB_OK;
}

static int falcon_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x) {
    /* the RefinedWeb-era names of layers and heads */
    static const field_spec alias[] = {
        {"n_layer", F_INT, OFF(n_layers), false, NULL, 0},
        {"n_head", F_INT, OFF(n_heads), false, NULL, 0},
    };
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, alias[i].key);
        const char *main_key = i ? "num_attention_heads" : "num_hidden_layers";
        if (v && !cJSON_IsNull(v) && !cJSON_GetObjectItemCaseSensitive(root, main_key) &&
            read_field(c, &alias[i], v, path, ""))
            return SB_ERR;
    }
    if (c->n_layers == 0) c->n_layers = 32; /* FalconConfig defaults */
    if (c->n_heads == 0) c->n_heads = 71;
    if (require_bool(root, "", "alibi", false, "only RoPE Falcon models, alibi false", path) ||
        require_bool(root, "", "apply_residual_connection_post_layernorm", false, "false", path))
        return SB_ERR;
    bool new_arch = false, multi_query = true, parallel = true, bias = false;
    if (read_bool(root, "new_decoder_architecture", &new_arch, path) ||
        read_bool(root, "multi_query", &multi_query, path) || read_bool(root, "parallel_attn", &parallel, path) ||
        read_bool(root, "bias", &bias, path))
        return SB_ERR;
    c->qkv_bias = c->out_bias = c->mlp_bias = bias;
    int kv = 0, nln = new_arch ? 2 : 1, ffn = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "num_kv_heads");
    if (v && !cJSON_IsNull(v) && read_int(path, "", "num_kv_heads", v, 1, INT32_MAX, &kv)) return SB_ERR;
    v = cJSON_GetObjectItemCaseSensitive(root, "num_ln_in_parallel_attn");
    if (v && !cJSON_IsNull(v) && read_int(path, "", "num_ln_in_parallel_attn", v, 1, 2, &nln)) return SB_ERR;
    v = cJSON_GetObjectItemCaseSensitive(root, "ffn_hidden_size");
    if (v && !cJSON_IsNull(v) && read_int(path, "", "ffn_hidden_size", v, 1, INT32_MAX, &ffn)) return SB_ERR;
    /* transformers: 1 kv head for multi_query unless new_decoder_architecture (num_kv_heads
     * is then ignored, as in Falcon-7B's config) */
    if (new_arch) c->n_kv_heads = kv ? kv : c->n_heads;
    else c->n_kv_heads = multi_query ? 1 : c->n_heads;
    c->parallel_residual = new_arch || parallel;
    c->shared_norm = c->parallel_residual && !(new_arch && nln == 2);
    c->ffn_dim = ffn ? ffn : (c->dim <= INT32_MAX / 4 ? 4 * c->dim : 0);
    if (read_act(c, root, "activation", path) || read_rope(c, root, path, x) || read_dtype(c, root, path))
        return SB_ERR;
    return SB_OK;
}

static int mpt_extra(sb_model_config *c, const cJSON *root, const char *path, parse_ctx *x) {
    (void)x;
    if (require_bool(root, "", "no_bias", true, "MptForCausalLM has no biases: true", path)) return SB_ERR;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "logit_scale");
    if (v && !cJSON_IsNull(v)) return unsupported(path, "", "logit_scale", v, "null");
    double ratio = 4.0;
    v = cJSON_GetObjectItemCaseSensitive(root, "expansion_ratio");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0.0 && v->valuedouble <= 1024.0))
            return bad_value(path, "", "expansion_ratio", v, "is not a positive number");
        ratio = v->valuedouble;
    }
    double ffn = ratio * c->dim;
    if (ffn != floor(ffn) || ffn > INT32_MAX)
        return sb_error("%s: expansion_ratio %g times d_model %d is not an integer size", path, ratio, c->dim);
    c->ffn_dim = (int)ffn;
    const cJSON *ac = cJSON_GetObjectItemCaseSensitive(root, "attn_config");
    if (ac && !cJSON_IsNull(ac) && !cJSON_IsObject(ac)) return bad_value(path, "", "attn_config", ac, "is not an object");
    /* MptForCausalLM always applies ALiBi; a checkpoint trained without it would be misread */
    const cJSON *al = ac ? cJSON_GetObjectItemCaseSensitive(ac, "alibi") : NULL;
    if (!al || !cJSON_IsTrue(al)) {
        if (!al) return sb_error("%s: attn_config.alibi is missing (only ALiBi MPT models are supported)", path);
        return unsupported(path, "attn_config.", "alibi", al, "true");
    }
    if (require_bool(ac, "attn_config.", "qk_ln", false, "false", path) ||
        require_bool(ac, "attn_config.", "prefix_lm", false, "false", path) ||
        require_bool(ac, "attn_config.", "attn_uses_sequence_id", false, "false", path))
        return SB_ERR;
    v = cJSON_GetObjectItemCaseSensitive(ac, "attn_type");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "multihead_attention")))
        return unsupported(path, "attn_config.", "attn_type", v, "multihead_attention");
    static const field_spec amax = {"alibi_bias_max", F_FLOAT, OFF(alibi_bias_max), false, NULL, 0};
    static const field_spec clip = {"clip_qkv", F_FLOAT, OFF(clip_qkv), false, NULL, 0};
    if (read_fields(c, ac, &amax, 1, path, "attn_config.", NULL) || read_fields(c, ac, &clip, 1, path, "attn_config.", NULL))
        return SB_ERR;
    v = cJSON_GetObjectItemCaseSensitive(ac, "softmax_scale");
    if (v && !cJSON_IsNull(v)) {
        /* the engine scales by 1/sqrt(head_dim), the MPT default */
        double want = c->n_heads > 0 && c->dim % c->n_heads == 0 ? 1.0 / sqrt((double)(c->dim / c->n_heads)) : 0.0;
        if (!cJSON_IsNumber(v) || fabs(v->valuedouble - want) > 1e-6 * want)
            return unsupported(path, "attn_config.", "softmax_scale", v, "null or 1/sqrt(head_dim)");
    }
    c->n_kv_heads = c->n_heads;
    return read_dtype(c, root, path);
}

int sb_hfconfig_parse(sb_model_config *c, const char *json, size_t len, const char *path) {
    sb_model_config_default(c);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= json && at <= json + len ? (long)(at - json) : -1;
        return sb_error("%s: not valid JSON (near byte %ld)", path, off);
    }
    int rc = SB_ERR;
    if (!cJSON_IsObject(root)) {
        sb_error("%s: not a JSON object", path);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!mt) {
        sb_error("%s: required field model_type is missing", path);
        goto done;
    }
    const family *fam = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (cJSON_IsString(mt) && !strcmp(mt->valuestring, families[i].model_type)) fam = &families[i];
    if (!fam) {
        char vs[64];
        value_str(vs, sizeof vs, mt);
        sb_error("%s: model_type %s is not supported (llama, mistral, gpt_neox, falcon, mpt)", path, vs);
        goto done;
    }
    snprintf(c->arch, sizeof c->arch, "%s", fam->model_type);
    c->n_kv_heads = 0; /* 0 = derive from the heads after reading */
    c->head_dim = 0;
    c->rotary_dim = 0;
    c->n_layers = c->n_heads = 0;
    fam->defaults(c);
    parse_ctx x = {.rotary_pct = -1.0};
    if (read_fields(c, root, fam->fields, fam->n_fields, path, "", NULL)) goto done;
    if (fam->extra(c, root, path, &x)) goto done;
    if (c->rope_scaling == SB_ROPE_SCALING_DYNAMIC && c->rope_orig_ctx == 0) c->rope_orig_ctx = c->max_ctx;

    const cJSON *sbj = cJSON_GetObjectItemCaseSensitive(root, "sinkbench");
    if (sbj && !cJSON_IsNull(sbj)) {
        if (!cJSON_IsObject(sbj)) {
            bad_value(path, "", "sinkbench", sbj, "is not an object");
            goto done;
        }
        int n = (int)(sizeof sinkbench_fields / sizeof sinkbench_fields[0]);
        for (const cJSON *it = sbj->child; it; it = it->next) {
            bool known = false;
            for (int i = 0; i < n && !known; i++) known = it->string && !strcmp(it->string, sinkbench_fields[i].key);
            if (!known) {
                sb_error("%s: sinkbench.%.60s is not a known key", path, it->string ? it->string : "?");
                goto done;
            }
        }
        if (read_fields(c, sbj, sinkbench_fields, n, path, "sinkbench.", NULL)) goto done;
    }

    if (c->n_heads > 0 && c->head_dim == 0) {
        if (c->dim % c->n_heads != 0) {
            sb_error("%s: hidden_size %d is not divisible by num_attention_heads %d (and no head_dim)", path, c->dim,
                     c->n_heads);
            goto done;
        }
        c->head_dim = c->dim / c->n_heads;
    }
    if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
    /* transformers: rotary dims = int(head_dim * factor) */
    if (c->rotary_dim == 0 && x.rotary_pct > 0.0) c->rotary_dim = (int)(c->head_dim * x.rotary_pct);
    if (c->rotary_dim == 0) c->rotary_dim = c->head_dim;
    if (sb_model_config_validate(c)) {
        char msg[1024];
        const char *e = sb_last_error();
        if (!strncmp(e, "config: ", 8)) e += 8;
        snprintf(msg, sizeof msg, "%s", e);
        sb_error("%s: %s", path, msg);
        goto done;
    }
    rc = SB_OK;
done:
    cJSON_Delete(root);
    return rc;
}

int sb_hfconfig_load(sb_model_config *c, const char *path) {
    char *data;
    size_t n;
    if (sb_read_file(path, &data, &n)) return SB_ERR;
    int rc = sb_hfconfig_parse(c, data, n, path);
    free(data);
    return rc;
}

/* ---------------------------------------------------------------- writing */

/* The shortest decimal that reads back as the same float: 1e-05, not 9.99999974737875e-06. */
static double float_for_json(float f) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

static cJSON *token_json(int32_t id) { return id < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(id); }

char *sb_hfconfig_to_json(const sb_model_config *c) {
    if (sb_model_config_validate(c)) return NULL;
    const family *fam = &families[0];
    for (size_t i = 0; i < N_WRITABLE_FAMILIES; i++)
        if (!strcmp(c->arch, families[i].model_type)) fam = &families[i];
    static const char *const act_hf[] = {"silu", "gelu", "gelu_pytorch_tanh"};
    static const char *const dtype_hf[] = {"float32", "float16", "bfloat16"};
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(fam->architecture));
    cJSON_AddStringToObject(r, "model_type", fam->model_type);
    cJSON_AddNumberToObject(r, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(r, "hidden_size", c->dim);
    cJSON_AddNumberToObject(r, "intermediate_size", c->ffn_dim);
    cJSON_AddNumberToObject(r, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(r, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(r, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(r, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(r, "max_position_embeddings", c->max_ctx);
    cJSON_AddNumberToObject(r, "rms_norm_eps", float_for_json(c->norm_eps));
    cJSON_AddNumberToObject(r, "rope_theta", float_for_json(c->rope_theta));
    if (c->rope_scaling == SB_ROPE_SCALING_NONE) {
        cJSON_AddNullToObject(r, "rope_scaling");
    } else {
        static const char *const types[] = {"default", "linear", "dynamic", "llama3"};
        cJSON *rs = cJSON_AddObjectToObject(r, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", types[c->rope_scaling]);
        cJSON_AddNumberToObject(rs, "factor", float_for_json(c->rope_factor));
        if (c->rope_scaling == SB_ROPE_SCALING_LLAMA3) {
            cJSON_AddNumberToObject(rs, "low_freq_factor", float_for_json(c->rope_low_freq_factor));
            cJSON_AddNumberToObject(rs, "high_freq_factor", float_for_json(c->rope_high_freq_factor));
        }
        if (c->rope_scaling != SB_ROPE_SCALING_LINEAR)
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_orig_ctx);
    }
    cJSON_AddBoolToObject(r, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddBoolToObject(r, "attention_bias", c->qkv_bias);
    cJSON_AddNumberToObject(r, "attention_dropout", 0.0);
    cJSON_AddBoolToObject(r, "mlp_bias", c->mlp_bias);
    cJSON_AddStringToObject(r, "hidden_act", act_hf[c->act]);
    cJSON_AddNumberToObject(r, "initializer_range", 0.02);
    cJSON_AddItemToObject(r, "bos_token_id", token_json(c->bos_id));
    cJSON_AddItemToObject(r, "eos_token_id", token_json(c->eos_id));
    cJSON_AddNumberToObject(r, "pretraining_tp", 1);
    cJSON_AddBoolToObject(r, "use_cache", true);
    cJSON_AddStringToObject(r, "torch_dtype", dtype_hf[c->dtype]);
    if (!strcmp(c->arch, "mistral")) {
        if (c->sliding_window > 0) cJSON_AddNumberToObject(r, "sliding_window", c->sliding_window);
        else cJSON_AddNullToObject(r, "sliding_window");
    }

    cJSON *s = cJSON_AddObjectToObject(r, "sinkbench");
    cJSON_AddStringToObject(s, "norm", norm_names[c->norm]);
    cJSON_AddBoolToObject(s, "norm_bias", c->norm_bias);
    cJSON_AddStringToObject(s, "pos", pos_names[c->pos]);
    cJSON_AddStringToObject(s, "rope_style", rope_names[c->rope_style]);
    cJSON_AddNumberToObject(s, "rotary_dim", c->rotary_dim);
    cJSON_AddNumberToObject(s, "alibi_bias_max", float_for_json(c->alibi_bias_max));
    cJSON_AddBoolToObject(s, "parallel_residual", c->parallel_residual);
    cJSON_AddBoolToObject(s, "shared_norm", c->shared_norm);
    cJSON_AddStringToObject(s, "mlp", mlp_names[c->mlp]);
    cJSON_AddStringToObject(s, "act", act_names[c->act]);
    cJSON_AddBoolToObject(s, "qkv_bias", c->qkv_bias);
    cJSON_AddBoolToObject(s, "out_bias", c->out_bias);
    cJSON_AddStringToObject(s, "softmax", softmax_names[c->softmax]);
    cJSON_AddNumberToObject(s, "clip_qkv", float_for_json(c->clip_qkv));
    cJSON_AddItemToObject(s, "sink_token_id", token_json(c->sink_token_id));
    cJSON_AddItemToObject(s, "newline_token_id", token_json(c->newline_token_id));

    char *out = cJSON_Print(r);
    cJSON_Delete(r);
    if (!out) sb_error("config: out of memory while writing JSON");
    return out;
}

int sb_hfconfig_save(const sb_model_config *c, const char *path) {
    char *js = sb_hfconfig_to_json(c);
    if (!js) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sb_last_error());
        return sb_error("%s: %s", path, msg);
    }
    size_t n = strlen(js);
    /* a trailing newline, as transformers writes */
    char *buf = malloc_check(n + 2);
    memcpy(buf, js, n);
    buf[n] = '\n';
    cJSON_free(js);
    int rc = sb_write_file_atomic(path, buf, n + 1);
    free(buf);
    return rc;
}
