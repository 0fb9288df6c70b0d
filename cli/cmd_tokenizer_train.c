/* sinkbench tokenizer-train: train a byte-level BPE tokenizer and write DIR/tokenizer.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "tokenizer/tokenizer.h"

static const char *USAGE =
    "usage: sinkbench tokenizer-train --in TEXT --out DIR [--vocab N] [--threads N] [--special TOK]...\n"
    "  --in TEXT      training text (documents separated by the literal <|endoftext|>)\n"
    "  --out DIR      output directory (created if missing); writes DIR/tokenizer.json\n"
    "  --vocab N      total vocabulary size including special tokens (default 4096)\n"
    "  --threads N    threads for counting (default: all)\n"
    "  --special TOK  special token (repeatable; default: <|endoftext|> <sink>)\n";

int cmd_tokenizer_train(int argc, char **argv) {
    const char *cmd = "tokenizer-train";
    const char *in = NULL, *out = NULL;
    int64_t vocab = 4096, threads = 0;
    const char **special = calloc_check((size_t)argc + 2, sizeof *special);
    int n_special = 0;
    int rc = SB_OK;
    for (int i = 1; i < argc && rc == SB_OK; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            free(special);
            return 0;
        } else if (!strcmp(a, "--in")) {
            if (!v) rc = sb_usage_error("--in needs a value");
            in = v;
            i++;
        } else if (!strcmp(a, "--out")) {
            if (!v) rc = sb_usage_error("--out needs a value");
            out = v;
            i++;
        } else if (!strcmp(a, "--vocab")) {
            rc = cli_parse_int("--vocab", v, 256, 1 << 24, &vocab);
            i++;
        } else if (!strcmp(a, "--threads")) {
            rc = cli_parse_int("--threads", v, 0, 1024, &threads);
            i++;
        } else if (!strcmp(a, "--special")) {
            if (!v || !v[0]) rc = sb_usage_error("--special needs a non-empty value");
            special[n_special++] = v;
            i++;
        } else {
            rc = sb_usage_error("unknown option '%s' (see --help)", a);
        }
    }
    if (rc == SB_OK && !in) rc = sb_usage_error("--in is required (see --help)");
    if (rc == SB_OK && !out) rc = sb_usage_error("--out is required (see --help)");
    if (rc == SB_OK && n_special == 0) {
        special[n_special++] = SB_TOKEN_ENDOFTEXT;
        special[n_special++] = SB_TOKEN_SINK;
    }
    if (rc == SB_OK && vocab < 256 + n_special)
        rc = sb_usage_error("--vocab: %lld is too small (need at least %d: 256 bytes + %d special tokens)",
                            (long long)vocab, 256 + n_special, n_special);
    if (rc) {
        free(special);
        return cli_fail(cmd, rc);
    }

    char *text = NULL;
    size_t len = 0;
    sb_tokenizer *t = NULL;
    double t0 = sb_now();
    rc = sb_read_file(in, &text, &len);
    if (rc == SB_OK && mkdir(out, 0755) != 0 && errno != EEXIST)
        rc = sb_error("%s: cannot create directory: %s", out, strerror(errno));
    if (rc == SB_OK) {
        sb_bpe_train_opts o = {.vocab_size = (int32_t)vocab, .special = special, .n_special = n_special,
                               .threads = (int)threads};
        rc = sb_bpe_train(&t, text, len, &o);
    }
    double train_s = sb_now() - t0;
    if (rc == SB_OK) rc = sb_tokenizer_save(t, out);
    if (rc == SB_OK) {
        const uint8_t *h = sb_tokenizer_hash(t);
        printf("tokenizer-train: %zu bytes in %.2f s, vocab %d -> %s/tokenizer.json sha256 ", len, train_s,
               (int)sb_tokenizer_vocab_size(t), out);
        for (int i = 0; i < SB_TOKENIZER_HASH_BYTES; i++) printf("%02x", h[i]);
        printf("\n");
        if (sb_tokenizer_vocab_size(t) < vocab)
            fprintf(stderr, "sinkbench %s: warning: text too small, vocabulary stopped at %d\n", cmd,
                    (int)sb_tokenizer_vocab_size(t));
    }
    sb_tokenizer_free(t);
    free(text);
    free(special);
    return rc ? cli_fail(cmd, rc) : 0;
}
