/* sinkbench: one binary, one subcommand per file (cli/cmd_<name>.c).
 * Each command is declared weak so the binary links while a module is still missing;
 * a missing command says so instead of crashing. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/provenance.h"

#define SB_WEAK __attribute__((weak))
SB_WEAK int cmd_init(int argc, char **argv);
SB_WEAK int cmd_info(int argc, char **argv);
SB_WEAK int cmd_ppl(int argc, char **argv);
SB_WEAK int cmd_tokenize(int argc, char **argv);
SB_WEAK int cmd_tokenizer_train(int argc, char **argv);
SB_WEAK int cmd_train(int argc, char **argv);
SB_WEAK int cmd_generate(int argc, char **argv);
SB_WEAK int cmd_stream(int argc, char **argv);
SB_WEAK int cmd_latency(int argc, char **argv);
SB_WEAK int cmd_attention(int argc, char **argv);
SB_WEAK int cmd_bench(int argc, char **argv);
SB_WEAK int cmd_study(int argc, char **argv);
SB_WEAK int cmd_convert(int argc, char **argv);
SB_WEAK int cmd_card(int argc, char **argv);

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command commands[] = {
    {"init", cmd_init, "write a random model (deterministic by seed)"},
    {"convert", cmd_convert, "rewrite a checkpoint in another dtype (f32, f16, bf16)"},
    {"card", cmd_card, "write a trained model's CARD.md from its logs and evaluations"},
    {"info", cmd_info, "print a model's architecture, parameters and memory"},
    {"ppl", cmd_ppl, "per-token NLL / perplexity of a token stream under a cache policy"},
    {"tokenize", cmd_tokenize, "turn text into a .tok token file"},
    {"tokenizer-train", cmd_tokenizer_train, "train a byte-level BPE tokenizer"},
    {"train", cmd_train, "train a model from an INI config"},
    {"generate", cmd_generate, "generate text from a prompt"},
    {"stream", cmd_stream, "one endless conversation under a cache policy"},
    {"latency", cmd_latency, "per-token decode latency and memory against cache size"},
    {"attention", cmd_attention, "attention maps and sink share"},
    {"bench", cmd_bench, "micro-benchmarks (used by make bench)"},
    {"study", cmd_study, "run the paper's experiments from configs/*.ini and write the report"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: sinkbench <command> [options]   (sinkbench <command> --help)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn) fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "sinkbench: command '%s' is not built in this version\n", argv[1]);
            return 2;
        }
        sb_provenance_pin_git_rev();
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "sinkbench: unknown command '%s' (try: sinkbench --help)\n", argv[1]);
    return 2;
}
