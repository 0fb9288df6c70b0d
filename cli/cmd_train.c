/* sinkbench train: train a Llama-family model from an INI config (train/train.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "train/train.h"
#include "util/lock.h"
#include "util/memcheck.h"
#include "util/signals.h"

static const char train_usage[] =
    "usage: sinkbench train --config FILE.ini --out DIR [--resume] [--stop-at STEP] [--threads N]\n"
    "                       [--max-memory SIZE] [--quiet]\n"
    "  --config FILE   INI with sections [model] [data] [optim] [run] [variant]\n"
    "                  (see configs/train_*.ini; unknown keys are errors)\n"
    "  --out DIR       a model directory: config.json, model.safetensors (+ tokenizer.json),\n"
    "                  and train_state.bin, train_log.h5, train.ini\n"
    "  --resume        continue from DIR/train_state.bin (bit-identical to an unbroken run)\n"
    "  --stop-at STEP  stop with a checkpoint once STEP optimizer steps are done\n"
    "  --threads N     override [run] threads (results are deterministic per thread count)\n"
    "  --max-memory SIZE  refuse runs whose estimate (weights, gradients, AdamW moments,\n"
    "                  activations, checkpoint, tokens) needs more (default: MemAvailable), e.g. 2G\n"
    "  --quiet         no progress output\n"
    "  --print-config  print the resolved config (defaults filled in) and exit\n";

int cmd_train(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    sb_train_options opt = {0};
    bool print_config = false;
    int64_t threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(train_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--config")) {
            if (!val || !val[0]) return cli_fail("train", sb_usage_error("--config needs a file"));
            config = val;
            i++;
        } else if (!strcmp(a, "--out")) {
            if (!val || !val[0]) return cli_fail("train", sb_usage_error("--out needs a directory"));
            out = val;
            i++;
        } else if (!strcmp(a, "--stop-at")) {
            if (cli_parse_int("--stop-at", val, 1, INT32_MAX, &opt.stop_at_step)) return cli_fail("train", SB_ERR_USAGE);
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int("--threads", val, 1, 1024, &threads)) return cli_fail("train", SB_ERR_USAGE);
            i++;
        } else if (!strcmp(a, "--max-memory")) {
            if (cli_parse_bytes(a, val, &opt.max_memory)) return cli_fail("train", SB_ERR_USAGE);
            if (opt.max_memory == 0) return cli_fail("train", sb_usage_error("--max-memory must be positive"));
            i++;
        } else if (!strcmp(a, "--resume")) {
            opt.resume = true;
        } else if (!strcmp(a, "--quiet")) {
            opt.quiet = true;
        } else if (!strcmp(a, "--print-config")) {
            print_config = true;
        } else {
            return cli_fail("train", sb_usage_error("unknown option '%s' (see sinkbench train --help)", a));
        }
    }
    if (!config) return cli_fail("train", sb_usage_error("--config is required"));
    sb_train_config cfg;
    sb_train_config_default(&cfg);
    if (sb_train_config_load(&cfg, config)) return cli_fail("train", SB_ERR);
    if (threads > 0) cfg.threads = (int)threads;
    if (print_config) {
        char *ini = sb_train_config_to_ini(&cfg);
        if (!ini) return cli_fail("train", SB_ERR);
        fputs(ini, stdout);
        free(ini);
        return 0;
    }
    if (!out) return cli_fail("train", sb_usage_error("--out is required"));
    /* Ctrl-C / SIGTERM: finish the step, checkpoint (train_state.bin, atomically), print how
     * to resume and exit 130 / 143; a second signal kills */
    sb_signals_install();
    opt.interrupt = sb_signal_flag();
    /* one trainer per output directory: two would overwrite each other's checkpoints */
    sb_lock *lock;
    if (sb_lock_acquire(&lock, out)) return cli_fail("train", SB_ERR);
    sb_train_result res;
    int rc = sb_train_run(&cfg, out, &opt, &res);
    sb_lock_release(lock);
    if (rc && sb_signal_caught()) {
        /* the trainer's own line says where it stopped (or why saving failed) */
        cli_fail("train", SB_ERR);
        if (strstr(sb_last_error(), "checkpoint saved")) sb_signal_print_resume(stderr, argc, argv);
        return sb_signal_exit_status();
    }
    if (rc) return cli_fail("train", SB_ERR);
    if (!opt.quiet) {
        char est[32];
        sb_mem_format(est, sizeof est, res.memory_estimate);
        fprintf(stderr,
                "sinkbench train: %lld steps, train loss %.4f, held-out loss %.4f, %.0f tok/s, %.1f s, "
                "memory estimate %s (%llu bytes), peak RSS %.1f MiB -> %s\n",
                (long long)res.steps_done, res.last_train_loss, res.last_heldout_loss, res.tokens_per_s, res.seconds,
                est, (unsigned long long)res.memory_estimate, sb_peak_rss_mb(), out);
    }
    return 0;
}
