/* sinkbench train: train a Llama-family model from an INI config (train/train.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_run.h"
#include "engine/common.h"
#include "train/train.h"
#include "util/memcheck.h"
#include "util/signals.h"

static const char train_usage[] =
    "usage: sinkbench train --config FILE.ini --out DIR [--resume] [--stop-at STEP] [--threads N]\n"
    "                       [--device cpu|cuda[:N]] [--compute bf16|f32]\n"
    "                       [--max-memory SIZE] [--quiet]\n"
    "  --config FILE   INI with sections [model] [data] [optim] [run] [variant]\n"
    "                  (see configs/train_*.ini; unknown keys are errors)\n"
    "  --out DIR       a model directory: config.json, model.safetensors (+ tokenizer.json),\n"
    "                  and train_state.bin, train_log.h5, train.ini\n"
    "  --resume        continue from DIR/train_state.bin (bit-identical to an unbroken run)\n"
    "  --stop-at STEP  stop with a checkpoint once STEP optimizer steps are done\n"
    "  --threads N     override [run] threads (results are deterministic per thread count)\n"
    "  --device D      cpu (default) or cuda[:N]: the GPU trainer (make CUDA=1), bf16 matmuls with\n"
    "                  fp32 master weights; deterministic, resumes bit-identically on one GPU\n"
    "  --compute C     GPU matmuls in bf16 (default) or f32\n"
    "  --max-memory SIZE  refuse runs whose estimate (weights, gradients, AdamW moments,\n"
    "                  activations, checkpoint, tokens) needs more (default: MemAvailable), e.g. 2G\n"
    "  --quiet         no progress output\n"
    "  --print-config  print the resolved config (defaults filled in) and exit\n";

typedef struct {
    cli_run run;              /* --out DIR is locked by the runner (cli/cli_run.h) */
    sb_train_config cfg;
    sb_train_options opt;
    sb_train_result res;
} train_cmd;

/* train's own options: the trainer's threads and memory limit live in its config and options,
 * so the common ones of cli_opts.h do not apply. */
static int train_parse(void *self, int argc, char **argv) {
    train_cmd *t = self;
    const char *config = NULL;
    bool print_config = false;
    int64_t threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(train_usage, stdout);
            return CLI_RUN_DONE;
        } else if (!strcmp(a, "--config")) {
            if (!val || !val[0]) return sb_usage_error("--config needs a file");
            config = val;
            i++;
        } else if (!strcmp(a, "--out")) {
            if (!val || !val[0]) return sb_usage_error("--out needs a directory");
            t->run.c.out = val;
            i++;
        } else if (!strcmp(a, "--stop-at")) {
            if (cli_parse_int("--stop-at", val, 1, INT32_MAX, &t->opt.stop_at_step)) return SB_ERR_USAGE;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int("--threads", val, 1, 1024, &threads)) return SB_ERR_USAGE;
            i++;
        } else if (!strcmp(a, "--max-memory")) {
            if (cli_parse_bytes(a, val, &t->opt.max_memory)) return SB_ERR_USAGE;
            if (t->opt.max_memory == 0) return sb_usage_error("--max-memory must be positive");
            i++;
        } else if (!strcmp(a, "--device")) {
            if (!val || !val[0]) return sb_usage_error("--device needs cpu, cuda or cuda:N");
            t->opt.device = val;
            i++;
        } else if (!strcmp(a, "--compute")) {
            if (sb_compute_parse(val, "--compute", &t->opt.compute)) return SB_ERR_USAGE;
            if (t->opt.compute == SB_COMPUTE_F16) return sb_usage_error("--compute f16: the trainer computes in bf16 or f32");
            i++;
        } else if (!strcmp(a, "--resume")) {
            t->opt.resume = true;
        } else if (!strcmp(a, "--quiet")) {
            t->opt.quiet = true;
        } else if (!strcmp(a, "--print-config")) {
            print_config = true;
        } else {
            return sb_usage_error("unknown option '%s' (see sinkbench train --help)", a);
        }
    }
    if (!config) return sb_usage_error("--config is required");
    sb_train_config_default(&t->cfg);
    if (sb_train_config_load(&t->cfg, config)) return SB_ERR;
    if (threads > 0) t->cfg.threads = (int)threads;
    if (print_config) {
        char *ini = sb_train_config_to_ini(&t->cfg);
        if (!ini) return SB_ERR;
        fputs(ini, stdout);
        free(ini);
        return CLI_RUN_DONE;
    }
    if (!t->run.c.out) return sb_usage_error("--out is required");
    return SB_OK;
}

/* Ctrl-C / SIGTERM: the trainer finishes the step, checkpoints (train_state.bin,
 * atomically) and returns an error saying so; a second signal kills. */
static int train_run(void *self) {
    train_cmd *t = self;
    t->opt.interrupt = sb_signal_flag();
    int rc = sb_train_run(&t->cfg, t->run.c.out, &t->opt, &t->res);
    /* a usage error (--device on a binary without CUDA, no GPU) keeps its exit status 2 */
    return rc == SB_ERR_USAGE ? rc : rc ? SB_ERR : SB_OK;
}

/* A run the trainer completed stands, even with a signal caught after its last step. */
static bool train_stopped(void *self, int rc) {
    (void)self;
    return rc && sb_signal_caught();
}

static bool train_interrupted(void *self, int rc) {
    (void)self;
    /* the trainer's own line says where it stopped (or why saving failed) */
    cli_fail("train", rc);
    return strstr(sb_last_error(), "checkpoint saved") != NULL;
}

static void train_summary(void *self) {
    const train_cmd *t = self;
    if (t->opt.quiet) return;
    char est[32];
    sb_mem_format(est, sizeof est, t->res.memory_estimate);
    fprintf(stderr,
            "sinkbench train: %lld steps, train loss %.4f, held-out loss %.4f, %.0f tok/s, %.1f s, "
            "memory estimate %s (%llu bytes), peak RSS %.1f MiB -> %s\n",
            (long long)t->res.steps_done, t->res.last_train_loss, t->res.last_heldout_loss, t->res.tokens_per_s,
            t->res.seconds, est, (unsigned long long)t->res.memory_estimate, sb_peak_rss_mb(), t->run.c.out);
}

/* One trainer per output directory (two would overwrite each other's checkpoints): --out is
 * locked, not created. No .usage: a bare "sinkbench train" has always been one error line. */
static const cli_command train_command = {
    .name = "train", .out = CLI_OUT_LOCK, .parse = train_parse,
    .run = train_run, .stopped = train_stopped, .interrupted = train_interrupted, .summary = train_summary,
};

int cmd_train(int argc, char **argv) {
    train_cmd t;
    memset(&t, 0, sizeof t);
    return cli_run_main(&train_command, &t, &t.run, argc, argv);
}
