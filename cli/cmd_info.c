/* sinkbench info: a checkpoint's architecture, parameters and memory. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/model.h"

static const char info_usage[] =
    "usage: sinkbench info --model DIR|FILE.bin [--json] [--cache N] [--verify]\n"
    "  --model P    a checkpoint directory (any supported family) or a llama2.c .bin file\n"
    "  --cache N    KV-cache size in tokens for the memory figure (default: max_ctx)\n"
    "  --verify     also load every weight (fp32), check they are finite and print a checksum\n";

/* FNV-1a over the fp32 bit patterns: equal checksums mean bit-identical weights. */
static uint64_t weights_checksum(const sb_model *m, size_t *n_nonfinite) {
    uint64_t h = 1469598103934665603ull;
    size_t bad = 0;
    const unsigned char *p = (const unsigned char *)m->params;
    for (size_t i = 0; i < m->n_params; i++) {
        if (!isfinite(m->params[i])) bad++;
        for (int k = 0; k < 4; k++) h = (h ^ p[4 * i + k]) * 1099511628211ull;
    }
    *n_nonfinite = bad;
    return h;
}

static const char *yes(bool b) { return b ? "yes" : "no"; }

int cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    bool json = false, verify = false;
    int64_t cache = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(info_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--model")) {
            if (!val || !val[0]) return cli_fail("info", sb_usage_error("--model needs a directory"));
            dir = val;
            i++;
        } else if (!strcmp(a, "--cache")) {
            if (cli_parse_int("--cache", val, 1, INT64_MAX / 2, &cache)) return cli_fail("info", SB_ERR_USAGE);
            i++;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--verify")) {
            verify = true;
        } else {
            return cli_fail("info", sb_usage_error("unknown option '%s' (see sinkbench info --help)", a));
        }
    }
    if (!dir) return cli_fail("info", sb_usage_error("--model is required"));

    sb_model_config c;
    uint64_t disk = 0;
    if (sb_model_inspect(dir, &c, &disk)) return cli_fail("info", SB_ERR);
    size_t n_params = sb_model_param_count(&c);
    double ram_mib = (double)n_params * 4.0 / (1024.0 * 1024.0);
    /* what a default (native) load keeps in RAM: bf16/fp16 matrices stay compact */
    double native_mib = c.dtype == SB_DTYPE_F32 ? ram_mib : (double)disk / (1024.0 * 1024.0);
    /* K and V per layer, fp32 as the engine keeps them */
    uint64_t kv_tok = 2ull * (uint64_t)c.n_layers * (uint64_t)c.n_kv_heads * (uint64_t)c.head_dim * 4ull;
    if (cache < 0) cache = c.max_ctx;
    double kv_cache = (double)kv_tok * (double)cache;

    uint64_t checksum = 0;
    size_t nonfinite = 0;
    if (verify) {
        sb_model m;
        /* fp32 in one block, whatever the storage dtype: the checksum is over fp32 values */
        if (sb_model_load_mode(&m, dir, SB_WEIGHTS_F32)) return cli_fail("info", SB_ERR);
        checksum = weights_checksum(&m, &nonfinite);
        sb_model_free(&m);
        if (nonfinite) return cli_fail("info", sb_error("%s: %zu weights are not finite", dir, nonfinite));
    }

    const char *attn_kind = c.n_kv_heads == c.n_heads ? "MHA" : c.n_kv_heads == 1 ? "MQA" : "GQA";
    if (json) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "model", dir);
        cJSON_AddStringToObject(r, "arch", c.arch);
        cJSON_AddNumberToObject(r, "vocab_size", c.vocab_size);
        cJSON_AddNumberToObject(r, "dim", c.dim);
        cJSON_AddNumberToObject(r, "n_layers", c.n_layers);
        cJSON_AddNumberToObject(r, "n_heads", c.n_heads);
        cJSON_AddNumberToObject(r, "n_kv_heads", c.n_kv_heads);
        cJSON_AddStringToObject(r, "attention", attn_kind);
        cJSON_AddNumberToObject(r, "head_dim", c.head_dim);
        cJSON_AddNumberToObject(r, "ffn_dim", c.ffn_dim);
        cJSON_AddNumberToObject(r, "max_ctx", c.max_ctx);
        cJSON_AddStringToObject(r, "norm", sb_norm_kind_name(c.norm));
        cJSON_AddNumberToObject(r, "norm_eps", c.norm_eps);
        cJSON_AddBoolToObject(r, "norm_bias", c.norm_bias);
        cJSON_AddBoolToObject(r, "parallel_residual", c.parallel_residual);
        cJSON_AddBoolToObject(r, "shared_norm", c.shared_norm);
        cJSON_AddStringToObject(r, "pos", sb_pos_kind_name(c.pos));
        cJSON_AddNumberToObject(r, "rope_theta", c.rope_theta);
        cJSON_AddStringToObject(r, "rope_style", sb_rope_style_name(c.rope_style));
        cJSON_AddNumberToObject(r, "rotary_dim", c.rotary_dim);
        cJSON_AddNumberToObject(r, "alibi_bias_max", c.alibi_bias_max);
        cJSON_AddStringToObject(r, "mlp", sb_mlp_kind_name(c.mlp));
        cJSON_AddStringToObject(r, "act", sb_act_kind_name(c.act));
        cJSON_AddBoolToObject(r, "mlp_bias", c.mlp_bias);
        cJSON_AddBoolToObject(r, "qkv_bias", c.qkv_bias);
        cJSON_AddBoolToObject(r, "out_bias", c.out_bias);
        cJSON_AddBoolToObject(r, "tie_embeddings", c.tie_embeddings);
        cJSON_AddStringToObject(r, "softmax", sb_softmax_kind_name(c.softmax));
        cJSON_AddNumberToObject(r, "clip_qkv", c.clip_qkv);
        cJSON_AddNumberToObject(r, "bos_token_id", c.bos_id);
        cJSON_AddNumberToObject(r, "eos_token_id", c.eos_id);
        cJSON_AddNumberToObject(r, "sink_token_id", c.sink_token_id);
        cJSON_AddNumberToObject(r, "newline_token_id", c.newline_token_id);
        cJSON_AddStringToObject(r, "dtype", sb_dtype_name(c.dtype));
        cJSON_AddNumberToObject(r, "n_params", (double)n_params);
        cJSON_AddNumberToObject(r, "weights_ram_bytes", (double)n_params * 4.0);
        cJSON_AddNumberToObject(r, "weights_native_ram_bytes", native_mib * 1024.0 * 1024.0);
        cJSON_AddNumberToObject(r, "weights_disk_bytes", (double)disk);
        cJSON_AddNumberToObject(r, "kv_bytes_per_token", (double)kv_tok);
        cJSON_AddNumberToObject(r, "kv_cache_tokens", (double)cache);
        cJSON_AddNumberToObject(r, "kv_cache_bytes", kv_cache);
        if (verify) {
            char hex[32];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)checksum);
            cJSON_AddStringToObject(r, "checksum", hex);
        }
        char *s = cJSON_Print(r);
        cJSON_Delete(r);
        if (!s) return cli_fail("info", sb_error("out of memory"));
        puts(s);
        cJSON_free(s);
        return 0;
    }

    printf("model        %s\n", dir);
    printf("arch         %s, %d layers, dim %d, vocab %d, ffn %d, max_ctx %d\n", c.arch, c.n_layers, c.dim,
           c.vocab_size, c.ffn_dim, c.max_ctx);
    printf("attention    %d heads, %d kv heads (%s), head_dim %d, softmax %s, qkv_bias %s, out_bias %s, clip_qkv %g\n",
           c.n_heads, c.n_kv_heads, attn_kind, c.head_dim, sb_softmax_kind_name(c.softmax), yes(c.qkv_bias),
           yes(c.out_bias), (double)c.clip_qkv);
    if (c.pos == SB_POS_ROPE)
        printf("position     rope, theta %g, style %s, rotary_dim %d of %d\n", (double)c.rope_theta,
               sb_rope_style_name(c.rope_style), c.rotary_dim, c.head_dim);
    else if (c.pos == SB_POS_ALIBI)
        printf("position     alibi, bias_max %g\n", (double)c.alibi_bias_max);
    else
        printf("position     none\n");
    if (c.pos == SB_POS_ROPE && c.rope_scaling != SB_ROPE_SCALING_NONE) {
        static const char *const kinds[] = {"none", "linear", "dynamic", "llama3"};
        printf("rope scaling %s, factor %g", kinds[c.rope_scaling], (double)c.rope_factor);
        if (c.rope_scaling == SB_ROPE_SCALING_LLAMA3)
            printf(", low_freq_factor %g, high_freq_factor %g", (double)c.rope_low_freq_factor,
                   (double)c.rope_high_freq_factor);
        if (c.rope_scaling != SB_ROPE_SCALING_LINEAR) printf(", original context %d", c.rope_orig_ctx);
        printf("\n");
    }
    printf("norm         %s, eps %g, bias %s\n", sb_norm_kind_name(c.norm), (double)c.norm_eps, yes(c.norm_bias));
    printf("residual     %s\n", c.parallel_residual ? (c.shared_norm ? "parallel, shared norm" : "parallel") : "sequential");
    printf("mlp          %s, act %s, bias %s\n", sb_mlp_kind_name(c.mlp), sb_act_kind_name(c.act), yes(c.mlp_bias));
    printf("embeddings   tied %s\n", yes(c.tie_embeddings));
    printf("tokens       bos %d, eos %d, sink %d, newline %d\n", c.bos_id, c.eos_id, c.sink_token_id,
           c.newline_token_id);
    printf("parameters   %zu (%.3f M)\n", n_params, n_params / 1e6);
    printf("weights      %.2f MiB on disk (%s); in RAM %.2f MiB as loaded, %.2f MiB with SINKBENCH_WEIGHTS=f32\n",
           disk / (1024.0 * 1024.0), sb_dtype_name(c.dtype), native_mib, ram_mib);
    printf("kv cache     %llu bytes/token (fp32), %.2f MiB for %lld tokens\n", (unsigned long long)kv_tok,
           kv_cache / (1024.0 * 1024.0), (long long)cache);
    if (verify) printf("verify       all weights finite, checksum %016llx\n", (unsigned long long)checksum);
    return 0;
}
