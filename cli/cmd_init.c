/* sinkbench init: write a random model checkpoint (deterministic by seed). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/model.h"

static const char init_usage[] =
    "usage: sinkbench init --vocab N --dim D --layers L --heads H --out DIR [options]\n"
    "  --arch llama|mistral     family written to config.json (default llama)\n"
    "  --kv-heads G             key/value heads (default = heads; must divide heads)\n"
    "  --ffn F                  MLP width (default: 8/3*dim rounded up to 32 for swiglu, 4*dim for gelu)\n"
    "  --ctx T                  pre-training context, max_position_embeddings (default 512)\n"
    "  --seed S  --scale X      init seed (default 1); q/k projection scale (default 1)\n"
    "  --dtype f32|f16|bf16     storage dtype (default f32)\n"
    "  --norm rms|layer  --norm-bias  --norm-eps X\n"
    "  --pos rope|alibi|none  --rope-style half|interleaved  --rope-theta X\n"
    "  --rotary-dim N | --rotary-frac F   partial rotary (default: whole head)\n"
    "  --alibi-bias-max X       (default 8)\n"
    "  --mlp swiglu|gelu  --act silu|gelu|gelu_tanh  --mlp-bias\n"
    "  --parallel  --shared-norm  --qkv-bias  --out-bias  --tie\n"
    "  --softmax standard|off_by_one|sink_logit  --clip-qkv X\n"
    "  --sink-token ID  --newline-token ID  --bos ID  --eos ID\n";

#define FAIL_USAGE(...) return cli_fail("init", sb_usage_error(__VA_ARGS__))

/* An enum flag: "--flag value" with the value among the parser's names. */
#define ENUM_FLAG(flagname, parse, field, choices)                                             \
    if (!strcmp(a, flagname)) {                                                                \
        if (!val) FAIL_USAGE("%s needs a value (%s)", flagname, choices);                      \
        if (parse(val, &c.field)) FAIL_USAGE("%s: '%s' is not one of %s", flagname, val, choices); \
        i++;                                                                                   \
        continue;                                                                              \
    }

int cmd_init(int argc, char **argv) {
    sb_model_config c;
    sb_model_config_default(&c);
    int64_t vocab = -1, dim = -1, layers = -1, heads = -1, kv_heads = -1, ffn = -1, ctx = 512, rotary_dim = -1;
    int64_t seed = 1, sink = -1, newline = -1, bos = -1, eos = -1;
    double scale = 1.0, rotary_frac = -1.0, v;
    const char *out = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(init_usage, stdout);
            return 0;
        }
#define INT_FLAG(flagname, var, lo, hi)                                               \
    if (!strcmp(a, flagname)) {                                                       \
        if (cli_parse_int(flagname, val, lo, hi, &var)) return cli_fail("init", SB_ERR_USAGE); \
        i++;                                                                          \
        continue;                                                                     \
    }
#define FLOAT_FLAG(flagname, lo, hi, assign)                                          \
    if (!strcmp(a, flagname)) {                                                       \
        if (cli_parse_float(flagname, val, lo, hi, &v)) return cli_fail("init", SB_ERR_USAGE); \
        assign;                                                                       \
        i++;                                                                          \
        continue;                                                                     \
    }
#define BOOL_FLAG(flagname, field)   \
    if (!strcmp(a, flagname)) {      \
        c.field = true;              \
        continue;                    \
    }
        INT_FLAG("--vocab", vocab, 1, INT32_MAX)
        INT_FLAG("--dim", dim, 1, 1 << 24)
        INT_FLAG("--layers", layers, 1, 65536)
        INT_FLAG("--heads", heads, 1, 65536)
        INT_FLAG("--kv-heads", kv_heads, 1, 65536)
        INT_FLAG("--ffn", ffn, 1, 1 << 24)
        INT_FLAG("--ctx", ctx, 1, INT32_MAX)
        INT_FLAG("--seed", seed, 0, INT64_MAX)
        INT_FLAG("--rotary-dim", rotary_dim, 2, 65536)
        INT_FLAG("--sink-token", sink, 0, INT32_MAX)
        INT_FLAG("--newline-token", newline, 0, INT32_MAX)
        INT_FLAG("--bos", bos, 0, INT32_MAX)
        INT_FLAG("--eos", eos, 0, INT32_MAX)
        FLOAT_FLAG("--scale", 1e-6, 1e6, scale = v)
        FLOAT_FLAG("--rotary-frac", 1e-6, 1.0, rotary_frac = v)
        FLOAT_FLAG("--rope-theta", 1e-3, 1e12, c.rope_theta = (float)v)
        FLOAT_FLAG("--norm-eps", 1e-12, 1.0, c.norm_eps = (float)v)
        FLOAT_FLAG("--alibi-bias-max", 1e-3, 1e3, c.alibi_bias_max = (float)v)
        FLOAT_FLAG("--clip-qkv", 0.0, 1e30, c.clip_qkv = (float)v)
        ENUM_FLAG("--norm", sb_norm_kind_parse, norm, "rms, layer")
        ENUM_FLAG("--pos", sb_pos_kind_parse, pos, "rope, alibi, none")
        ENUM_FLAG("--rope-style", sb_rope_style_parse, rope_style, "half, interleaved")
        ENUM_FLAG("--mlp", sb_mlp_kind_parse, mlp, "swiglu, gelu")
        ENUM_FLAG("--act", sb_act_kind_parse, act, "silu, gelu, gelu_tanh")
        ENUM_FLAG("--softmax", sb_softmax_kind_parse, softmax, "standard, off_by_one, sink_logit")
        ENUM_FLAG("--dtype", sb_dtype_parse, dtype, "f32, f16, bf16")
        BOOL_FLAG("--norm-bias", norm_bias)
        BOOL_FLAG("--parallel", parallel_residual)
        BOOL_FLAG("--shared-norm", shared_norm)
        BOOL_FLAG("--qkv-bias", qkv_bias)
        BOOL_FLAG("--out-bias", out_bias)
        BOOL_FLAG("--mlp-bias", mlp_bias)
        BOOL_FLAG("--tie", tie_embeddings)
        if (!strcmp(a, "--arch")) {
            if (!val) FAIL_USAGE("--arch needs a value (llama, mistral)");
            if (strcmp(val, "llama") && strcmp(val, "mistral")) FAIL_USAGE("--arch: '%s' is not one of llama, mistral", val);
            snprintf(c.arch, sizeof c.arch, "%s", val);
            i++;
            continue;
        }
        if (!strcmp(a, "--out")) {
            if (!val || !val[0]) FAIL_USAGE("--out needs a directory");
            out = val;
            i++;
            continue;
        }
        FAIL_USAGE("unknown option '%s' (see sinkbench init --help)", a);
    }
#undef INT_FLAG
#undef FLOAT_FLAG
#undef BOOL_FLAG

    if (vocab < 0) FAIL_USAGE("--vocab is required");
    if (dim < 0) FAIL_USAGE("--dim is required");
    if (layers < 0) FAIL_USAGE("--layers is required");
    if (heads < 0) FAIL_USAGE("--heads is required");
    if (!out) FAIL_USAGE("--out is required");
    if (dim % heads != 0) FAIL_USAGE("--dim %lld is not divisible by --heads %lld", (long long)dim, (long long)heads);
    if (kv_heads < 0) kv_heads = heads;
    if (kv_heads > heads || heads % kv_heads != 0)
        FAIL_USAGE("--kv-heads %lld does not divide --heads %lld", (long long)kv_heads, (long long)heads);
    c.vocab_size = (int)vocab;
    c.dim = (int)dim;
    c.n_layers = (int)layers;
    c.n_heads = (int)heads;
    c.n_kv_heads = (int)kv_heads;
    c.head_dim = (int)(dim / heads);
    c.max_ctx = (int)ctx;
    if (ffn < 0) ffn = c.mlp == SB_MLP_SWIGLU ? ((8 * dim + 2) / 3 + 31) / 32 * 32 : 4 * dim;
    if (ffn > (1 << 24)) FAIL_USAGE("--ffn %lld is too large", (long long)ffn);
    c.ffn_dim = (int)ffn;
    if (rotary_dim > 0 && rotary_frac > 0) FAIL_USAGE("--rotary-dim and --rotary-frac are exclusive");
    if (rotary_frac > 0) rotary_dim = 2 * (int64_t)lround(c.head_dim * rotary_frac / 2.0);
    if (rotary_dim < 0) rotary_dim = c.head_dim;
    if (c.pos == SB_POS_ROPE && (rotary_dim < 2 || rotary_dim > c.head_dim || rotary_dim % 2))
        FAIL_USAGE("--rotary-dim %lld must be even and in [2, head_dim %d]", (long long)rotary_dim, c.head_dim);
    c.rotary_dim = rotary_dim > c.head_dim ? c.head_dim : (int)rotary_dim;
    if (sink >= vocab) FAIL_USAGE("--sink-token %lld is outside the vocabulary (%lld)", (long long)sink, (long long)vocab);
    if (newline >= vocab)
        FAIL_USAGE("--newline-token %lld is outside the vocabulary (%lld)", (long long)newline, (long long)vocab);
    if (bos >= vocab) FAIL_USAGE("--bos %lld is outside the vocabulary (%lld)", (long long)bos, (long long)vocab);
    if (eos >= vocab) FAIL_USAGE("--eos %lld is outside the vocabulary (%lld)", (long long)eos, (long long)vocab);
    c.sink_token_id = (int32_t)sink;
    c.newline_token_id = (int32_t)newline;
    c.bos_id = (int32_t)bos;
    c.eos_id = (int32_t)eos;
    if (c.norm_bias && c.norm != SB_NORM_LAYER) FAIL_USAGE("--norm-bias needs --norm layer");
    if (c.shared_norm && !c.parallel_residual) FAIL_USAGE("--shared-norm needs --parallel");
    if (sb_model_config_validate(&c)) return cli_fail("init", SB_ERR_USAGE);

    size_t n_params = sb_model_param_count(&c);
    sb_model m;
    if (sb_model_alloc(&m, &c)) return cli_fail("init", SB_ERR);
    sb_model_init_random(&m, (uint64_t)seed, (float)scale);
    int rc = sb_model_save(&m, out);
    sb_model_free(&m);
    if (rc) return cli_fail("init", SB_ERR);
    printf("wrote %s: %s, %zu parameters (%.2f M), %s weights, seed %lld\n", out, c.arch, n_params, n_params / 1e6,
           sb_dtype_name(c.dtype), (long long)seed);
    return 0;
}
