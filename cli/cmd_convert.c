/* sinkbench convert: rewrite a checkpoint in another storage dtype (fp32 training output ->
 * the bf16 files we ship), keeping config and tokenizer. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"

static const char convert_usage[] =
    "usage: sinkbench convert --model DIR --dtype f32|f16|bf16 --out DIR [--max-shard SIZE]\n"
    "  --model DIR   checkpoint to read (config.json + model.safetensors, or a llama2.c .bin)\n"
    "  --dtype T     storage dtype of the written model.safetensors\n"
    "  --out DIR     output directory (created; files written atomically); DIR/tokenizer.json\n"
    "                is copied when the input has one\n"
    "  --max-shard SIZE  split the weights into Hugging Face shards of at most SIZE bytes each\n"
    "                (e.g. 16M: model-0000i-of-0000n.safetensors + model.safetensors.index.json)\n";

int cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *dtype = NULL, *shard = NULL;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(convert_usage, stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--model") ? &in : !strcmp(a, "--out") ? &out : !strcmp(a, "--dtype") ? &dtype
                          : !strcmp(a, "--max-shard") ? &shard : NULL;
        if (!dst) return cli_fail("convert", sb_usage_error("unknown option '%s' (see sinkbench convert --help)", a));
        if (!val || !val[0]) return cli_fail("convert", sb_usage_error("%s needs a value", a));
        *dst = val;
    }
    if (!in || !out || !dtype) return cli_fail("convert", sb_usage_error("--model, --dtype and --out are required"));
    sb_dtype dt;
    if (!strcmp(dtype, "f32") || !strcmp(dtype, "fp32")) dt = SB_DTYPE_F32;
    else if (!strcmp(dtype, "f16") || !strcmp(dtype, "fp16")) dt = SB_DTYPE_F16;
    else if (!strcmp(dtype, "bf16")) dt = SB_DTYPE_BF16;
    else return cli_fail("convert", sb_usage_error("--dtype '%s' is not one of f32, f16, bf16", dtype));
    uint64_t max_shard = 0;
    if (shard && cli_parse_bytes("--max-shard", shard, &max_shard)) return cli_fail("convert", SB_ERR_USAGE);
    sb_model m;
    memset(&m, 0, sizeof m);
    if (sb_model_load(&m, in)) return cli_fail("convert", SB_ERR);
    m.cfg.dtype = dt;
    int rc = sb_model_save_sharded(&m, out, max_shard);
    sb_model_free(&m);
    if (rc) return cli_fail("convert", SB_ERR);
    char tok_path[4096];
    snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", in);
    FILE *probe = fopen(tok_path, "rb");
    if (probe) {
        fclose(probe);
        sb_tokenizer *t = NULL;
        if (sb_tokenizer_load(&t, tok_path)) return cli_fail("convert", SB_ERR);
        rc = sb_tokenizer_save(t, out);
        sb_tokenizer_free(t);
        if (rc) return cli_fail("convert", SB_ERR);
    }
    fprintf(stderr, "convert: %s -> %s (%s)\n", in, out, dtype);
    return 0;
}
