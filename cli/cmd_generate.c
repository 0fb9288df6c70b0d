/* sinkbench generate: text from a prompt, streamed to stdout token by token.
 *
 * Works with native checkpoint directories (tokenizer.json inside, or --tokenizer) and with
 * llama2.c .bin checkpoints plus their tokenizer .bin. The loop is llama2.c's: positions
 * 0..N-1 where the prompt (BOS first) is fed and every later token is sampled, so output
 * for `--max-tokens 64 --temperature 0` matches llama2.c `run -t 0 -n 64`. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/sampler.h"
#include "tokenizer/text_tok.h"

static const char generate_usage[] =
    "usage: sinkbench generate --model PATH --prompt TEXT --max-tokens N [--tokenizer PATH]\n"
    "                          [--policy SPEC] [--temperature T] [--top-p P] [--seed S]\n"
    "  --model PATH      checkpoint directory, or a llama2.c .bin file\n"
    "  --tokenizer PATH  a llama2.c tokenizer .bin (for .bin models), or a tokenizer.json;\n"
    "                    default: MODEL/tokenizer.json\n"
    "  --max-tokens N    total positions, prompt INCLUDED (BOS is position 0), as llama2.c -n:\n"
    "                    the prompt is fed, then tokens are sampled until N positions are used;\n"
    "                    stops early when the model emits BOS (llama2.c) or EOS (tokenizer.json)\n"
    "  --policy SPEC     KV-cache policy (dense, window:W, sinks:K:W, ...; default dense)\n"
    "  --temperature T   0 = greedy (argmax); default 1\n"
    "  --top-p P         nucleus sampling threshold in (0, 1]; default 0.9 (1 = plain sampling)\n"
    "  --seed S          sampling seed (default 42)\n"
    "  --device DEV      cpu (default), cuda or cuda:N; --compute auto|f32|bf16|f16 on a GPU\n"
    "Output: the prompt and the generated text, streamed, then a newline.\n";

typedef struct {
    const char *model, *tokenizer, *prompt, *policy, *device;
    sb_compute compute;
    int64_t max_tokens;
    double temperature, top_p;
    int64_t seed;
} gen_args;

/* llama2.c prints a lone byte only when it is printable or whitespace. */
static void print_piece(const char *p, size_t len) {
    if (!p || len == 0) return;
    if (len == 1 && !(isprint((unsigned char)p[0]) || isspace((unsigned char)p[0]))) return;
    fwrite(p, 1, len, stdout);
    fflush(stdout);
}

static int run_generate(const gen_args *a) {
    sb_model m;
    sb_policy_spec pol;
    int rc;
    if ((rc = sb_policy_parse(a->policy, &pol))) return rc;
    if (sb_model_load(&m, a->model)) return SB_ERR;
    sb_text_tok *tok = NULL;
    sb_backend *backend = NULL;
    sb_decoder *d = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    sb_sampler sampler;
    memset(&sampler, 0, sizeof sampler);
    size_t n_prompt = 0;
    char tokpath[4096];
    const char *tp = a->tokenizer;
    if (!tp) {
        snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", a->model);
        tp = tokpath;
    }
    if ((rc = sb_text_tok_load(&tok, tp)) || (rc = sb_text_tok_check_vocab(tok, m.cfg.vocab_size))) goto done;
    int32_t bos = sb_text_tok_bos(tok, m.cfg.bos_id), stop[2];
    bool has_bos = bos >= 0;
    if ((rc = sb_text_tok_encode(tok, a->prompt, bos, &ids, &n_prompt))) goto done;
    /* only the first end token: llama2.c's run stops at BOS alone */
    sb_text_tok_stops(tok, m.cfg.eos_id, stop);
    int32_t stop_id = stop[0];
    if (n_prompt == 0) {
        rc = sb_usage_error("--prompt is empty and the tokenizer has no BOS token to start from");
        goto done;
    }
    if ((rc = sb_policy_check_model(&pol, &m.cfg))) goto done;
    const sb_backend_opts bo = {.device = a->device, .compute = a->compute};
    if ((rc = sb_backend_open(&backend, &m, &bo)) || (rc = sb_decoder_new_on(&d, backend, &pol, a->max_tokens))) goto done;
    int32_t V = m.cfg.vocab_size;
    logits = malloc_check((size_t)V * sizeof *logits);
    if ((rc = sb_sampler_init(&sampler, V, a->temperature, a->top_p, (uint64_t)a->seed))) goto done;
    int32_t token = ids[0];
    if (!has_bos) { /* the first prompt token is text too */
        size_t len = 0;
        const char *piece = sb_text_tok_piece(tok, -1, token, &len);
        print_piece(piece, len);
    }
    for (int64_t pos = 0; pos < a->max_tokens; pos++) {
        if ((rc = sb_decoder_step(d, token, logits))) goto done;
        int32_t next;
        if ((size_t)pos + 1 < n_prompt) next = ids[pos + 1];
        else next = sb_sampler_sample(&sampler, logits);
        if (next == stop_id && (size_t)pos + 1 >= n_prompt) break; /* a prompt may contain it */
        size_t len = 0;
        const char *piece = sb_text_tok_piece(tok, token, next, &len);
        print_piece(piece, len);
        token = next;
    }
    printf("\n");
    fflush(stdout);
done:
    sb_decoder_free(d);
    sb_backend_close(backend);
    free(ids);
    free(logits);
    sb_sampler_free(&sampler);
    sb_text_tok_free(tok);
    sb_model_free(&m);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    gen_args a = {.policy = "dense", .max_tokens = -1, .temperature = 1.0, .top_p = 0.9, .seed = 42};
    /* every option but --help takes a value */
    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(generate_usage, stdout);
            return 0;
        }
        const char **str = !strcmp(o, "--model") ? &a.model : !strcmp(o, "--tokenizer") ? &a.tokenizer
                         : !strcmp(o, "--prompt") ? &a.prompt : !strcmp(o, "--policy") ? &a.policy
                         : !strcmp(o, "--device") ? &a.device : NULL;
        if (str) {
            if (!val) return cli_fail("generate", sb_usage_error("%s needs a value", o));
            *str = val;
        } else if (!strcmp(o, "--max-tokens")) {
            if (cli_parse_int(o, val, 1, INT32_MAX, &a.max_tokens)) return cli_fail("generate", SB_ERR_USAGE);
        } else if (!strcmp(o, "--seed")) {
            if (cli_parse_int(o, val, 0, INT64_MAX, &a.seed)) return cli_fail("generate", SB_ERR_USAGE);
        } else if (!strcmp(o, "--temperature")) {
            if (cli_parse_float(o, val, 0.0, 100.0, &a.temperature)) return cli_fail("generate", SB_ERR_USAGE);
        } else if (!strcmp(o, "--compute")) {
            if (sb_compute_parse(val, o, &a.compute)) return cli_fail("generate", SB_ERR_USAGE);
        } else if (!strcmp(o, "--top-p")) {
            if (cli_parse_float(o, val, 1e-6, 1.0, &a.top_p)) return cli_fail("generate", SB_ERR_USAGE);
        } else {
            return cli_fail("generate", sb_usage_error("unknown option '%s' (see sinkbench generate --help)", o));
        }
    }
    if (!a.model || !a.model[0]) return cli_fail("generate", sb_usage_error("--model is required"));
    if (!a.prompt) return cli_fail("generate", sb_usage_error("--prompt is required"));
    if (a.max_tokens < 0) return cli_fail("generate", sb_usage_error("--max-tokens is required"));
    int rc = run_generate(&a);
    return rc ? cli_fail("generate", rc) : 0;
}
