/* Tokenizer micro-benchmark: BPE training time and single-thread encode/decode throughput.
 * Prints one JSON object on stdout.
 *
 * Build: make && cc $(CFLAGS) -o build/bench/bench_tokenizer bench/bench_tokenizer.c build/cli/cli.o \
 *            build/libsinkbench.a $(LDLIBS)     (flags as in the Makefile)
 * Run:   build/bench/bench_tokenizer --text corpus.txt [--train-bytes 50M] [--vocab 4096]
 *            [--threads N] [--tokenizer DIR|tokenizer.json] [--encode-bytes 20M] [--repeat 3] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/cli.h"
#include "engine/common.h"
#include "tokenizer/tokenizer.h"

static int usage(const char *msg) {
    fprintf(stderr, "bench_tokenizer: %s\nusage: bench_tokenizer --text FILE [--train-bytes N] [--vocab N] "
                    "[--threads N] [--tokenizer PATH] [--encode-bytes N] [--repeat N]\n", msg);
    return 2;
}

int main(int argc, char **argv) {
    const char *text_path = NULL, *tok_path = NULL;
    uint64_t train_bytes = 50ull << 20, encode_bytes = 20ull << 20;
    int64_t vocab = 4096, threads = 0, repeat = 3;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = SB_OK;
        if (!strcmp(a, "--text")) text_path = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--train-bytes")) rc = cli_parse_bytes(a, v, &train_bytes);
        else if (!strcmp(a, "--encode-bytes")) rc = cli_parse_bytes(a, v, &encode_bytes);
        else if (!strcmp(a, "--vocab")) rc = cli_parse_int(a, v, 258, 1 << 24, &vocab);
        else if (!strcmp(a, "--threads")) rc = cli_parse_int(a, v, 0, 1024, &threads);
        else if (!strcmp(a, "--repeat")) rc = cli_parse_int(a, v, 1, 100, &repeat);
        else return usage("unknown option");
        if (rc || !v) return usage(rc ? sb_last_error() : "option needs a value");
    }
    if (!text_path) return usage("--text is required");
    char *text;
    size_t len;
    if (sb_read_file(text_path, &text, &len)) {
        fprintf(stderr, "bench_tokenizer: %s\n", sb_last_error());
        return 1;
    }

    sb_tokenizer *t = NULL;
    double train_s = 0;
    size_t tb = train_bytes < len ? (size_t)train_bytes : len;
    int nt = (int)threads;
#ifdef _OPENMP
    if (nt <= 0) nt = omp_get_max_threads();
#else
    nt = 1;
#endif
    const char *specials[] = {SB_TOKEN_ENDOFTEXT, SB_TOKEN_SINK};
    if (tok_path) {
        if (sb_tokenizer_load(&t, tok_path)) {
            fprintf(stderr, "bench_tokenizer: %s\n", sb_last_error());
            return 1;
        }
        tb = 0;
    } else {
        sb_bpe_train_opts o = {.vocab_size = (int32_t)vocab, .special = specials, .n_special = 2, .threads = nt};
        double t0 = sb_now();
        if (sb_bpe_train(&t, text, tb, &o)) {
            fprintf(stderr, "bench_tokenizer: %s\n", sb_last_error());
            return 1;
        }
        train_s = sb_now() - t0;
    }

    /* encode/decode on one thread; best of --repeat runs */
    size_t eb = encode_bytes < len ? (size_t)encode_bytes : len;
    double enc_s = 1e30, dec_s = 1e30;
    size_t n_ids = 0;
    int roundtrip = 1;
    for (int r = 0; r < repeat; r++) {
        int32_t *ids;
        double t0 = sb_now();
        sb_tokenizer_encode(t, text, eb, &ids, &n_ids);
        double t1 = sb_now();
        char *out;
        size_t ol;
        sb_tokenizer_decode(t, ids, n_ids, &out, &ol);
        double t2 = sb_now();
        if (t1 - t0 < enc_s) enc_s = t1 - t0;
        if (t2 - t1 < dec_s) dec_s = t2 - t1;
        roundtrip = roundtrip && ol == eb && !memcmp(out, text, eb);
        free(out);
        free(ids);
    }
    const uint8_t *h = sb_tokenizer_hash(t);
    printf("{\n  \"text\": \"");
    for (const char *c = text_path; *c; c++) printf(*c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    printf("\",\n  \"text_bytes\": %zu,\n", len);
    printf("  \"vocab_size\": %d,\n  \"train_bytes\": %zu,\n  \"train_threads\": %d,\n  \"train_s\": %.3f,\n",
           (int)sb_tokenizer_vocab_size(t), tb, tok_path ? 0 : nt, train_s);
    printf("  \"encode_bytes\": %zu,\n  \"tokens\": %zu,\n  \"bytes_per_token\": %.3f,\n", eb, n_ids,
           n_ids ? (double)eb / (double)n_ids : 0.0);
    printf("  \"encode_s\": %.4f,\n  \"encode_mb_s\": %.2f,\n  \"decode_s\": %.4f,\n  \"decode_mb_s\": %.2f,\n", enc_s,
           (double)eb / 1e6 / enc_s, dec_s, (double)eb / 1e6 / dec_s);
    printf("  \"roundtrip_ok\": %s,\n  \"peak_rss_mb\": %.1f,\n  \"tokenizer_sha256\": \"", roundtrip ? "true" : "false",
           sb_peak_rss_mb());
    for (int i = 0; i < SB_TOKENIZER_HASH_BYTES; i++) printf("%02x", h[i]);
    printf("\"\n}\n");
    sb_tokenizer_free(t);
    free(text);
    return roundtrip ? 0 : 1;
}
