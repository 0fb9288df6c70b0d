/* The run sequence of the long commands (ppl, latency, attention, train), written once.
 *
 * cli_run_main() does, in this order: SIGPIPE ignored (a closed stdout is an error message and
 * status 1, not death by signal) and SIGINT/SIGTERM caught from the start; the options (the
 * common ones of cli_opts.h, or the command's own parser); threads; prepare, then the memory
 * estimate it made against --max-memory; open; the output locked and, for an HDF5 result,
 * created as a temp file (so a clash or an unwritable path fails before the work); the model
 * and the SHA-256 of the inputs; load; threads in effect; for --resume the saved state under
 * the inputs hash; the run. A caught signal then keeps what the command can keep (its state
 * in <out>.resume), prints "resume with: ..." and exits 130 / 143. A finished run gets its
 * statistics, provenance, the result written and committed atomically, the spent resume
 * state removed, then the JSON line or summary. Every path, failure included, releases the
 * lock, removes the temp file, frees the model and calls cleanup. A command with shard and gather
 * hooks runs over MPI ranks (below).
 *
 * A command keeps its state in a struct of its own, which holds a cli_run; every hook gets
 * that struct (self). Hooks return SB_OK or an error status with sb_error() set; NULL hooks
 * are skipped. */
#ifndef SB_CLI_RUN_H
#define SB_CLI_RUN_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/cli_opts.h"
#include "engine/model.h"
#include "util/h5.h"
#include "util/memcheck.h"
#include "util/provenance.h"
#include "util/resume_state.h"

/* A parse hook's "done already" (--help, --print-config): exit 0 without a run. */
#define CLI_RUN_DONE 1000
#define CLI_RUN_MAX_MEM_PARTS 4

/* What the runner and the command share. */
typedef struct {
    cli_common_opts c;        /* --model --data --out --threads --max-memory --json --resume */
    /* the estimate prepare makes, checked against --max-memory before anything is loaded */
    sb_mem_part mem[CLI_RUN_MAX_MEM_PARTS];
    int n_mem;
    char mem_what[128];       /* "policy sinks:4:508 over 4096 tokens" */
    sb_model model;           /* --model, for commands with .model: loaded once the output exists */
    double model_load_s;      /* what loading it took */
    char model_sha256[65];    /* sb_provenance_hash_model of --model ("" until computed) */
    char data_sha256[65];     /* of --data, when given */
    int threads;              /* in effect for the run (set after load) */
    int64_t done, total;      /* how far the run got, for the interrupt line (resumable commands) */
    sb_provenance prov;       /* collected after a finished run, before write_h5/json/summary */
    char state_path[4096];    /* <out>.resume of a resumable command with --out, else "";
                               * <out>.resume.rank<r> for each rank of a sharded run */
    int rank, ranks;          /* this process among the MPI ranks of a sharded run (0 of 1 else) */
    char device[32];          /* --device cuda under MPI: cuda:<local rank> */
} cli_run;

typedef enum {
    CLI_OUT_H5,               /* --out FILE.h5: locked, created as a temp file, committed at the end */
    CLI_OUT_LOCK,             /* --out is only locked: the command writes it itself (train's directory) */
} cli_out_kind;

typedef struct {
    const char *name;                             /* "ppl": messages, cli_fail, the resume state */
    void (*usage)(FILE *f);                       /* for --help; on stderr after a usage error with
                                                   * no arguments at all */
    cli_out_kind out;
    bool model;                                   /* load and hash --model (run.model, run.model_sha256) */
    bool hash_model_late;                         /* the hash reads every weight: a timed run has it
                                                   * after the timing (or for a resume state) */

    /* Options: either option (the command's own flags, for cli_opts_parse) and check (the
     * required ones, after parsing), or parse (a parser of its own that fills run.c). */
    cli_opt_fn option;
    int (*check)(void *self);
    int (*parse)(void *self, int argc, char **argv);

    int (*prepare)(void *self);                   /* config, policy, the estimate (run.mem) */
    int (*open)(void *self);                      /* inputs, once the estimate fits */
    int (*load)(void *self);                      /* hashes, buffers: the output and model exist */

    /* --resume: a command that can continue an interrupted run has all three; unit names
     * what run.done and run.total count ("predictions"). */
    const char *unit;
    int (*inputs_hash)(void *self, sb_resume_hash *h); /* everything the result depends on */
    int (*save)(void *self, char **payload, size_t *n); /* the state so far (malloc'd) */
    int (*restore)(void *self, const char *payload, size_t n);

    int (*run)(void *self);                       /* the long part: polls sb_signal_poll() */
    /* Did a signal stop the run? NULL: any signal caught counts, finished or not. */
    bool (*stopped)(void *self, int rc);
    /* A stop without a resume state: say what became of the run and return whether the
     * command can be resumed (the resume line). NULL: "interrupted; nothing written". */
    bool (*interrupted)(void *self, int rc);

    int (*finish)(void *self);                    /* a finished run's statistics */
    int (*write_h5)(void *self, sb_h5 *f);        /* datasets and attributes; provenance follows */
    cJSON *(*json)(void *self);                   /* --json: the object; provenance keys follow */
    void (*summary)(void *self);                  /* the result for a reader (without --json) */
    void (*cleanup)(void *self);                  /* free what the hooks allocated; every path */

    /* MPI (dist/dist.h): a command with both hooks runs sharded when an MPI launcher started
     * more than one rank; without them it is one process per rank, as always. Every rank
     * parses, prepares and loads; only rank 0 locks and writes --out and prints (the others'
     * stdout is /dev/null), each rank keeps its own resume state (run.state_path). shard
     * (after load, before a resume state is read) picks this rank's part; the ranks then agree
     * that every one of them is ready (or rank 0 prints the one line of the first failure),
     * run their parts, and agree again: when every part finished, gather (a collective)
     * brings the parts to rank 0, which finishes, commits and reports; a stop or a failure
     * anywhere leaves no result and every rank's finished part saved for --resume. */
    int (*shard)(void *self);
    int (*gather)(void *self);
} cli_command;

/* The JSON keys naming what the run read and wrote: model, model_sha256, then data and
 * data_sha256 (with_data: latency's JSON never had them), then out when given. */
void cli_run_json_inputs(const cli_run *run, cJSON *o, bool with_data);

/* Run cmd with self (the command's struct) and run (the cli_run inside it); returns the
 * process exit status. */
int cli_run_main(const cli_command *cmd, void *self, cli_run *run, int argc, char **argv);

#endif
