#include "cli/cli_run.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "util/lock.h"
#include "util/sha256.h"
#include "util/signals.h"

static bool resumable(const cli_command *cmd) { return cmd->save != NULL; }

static int parse_options(const cli_command *cmd, void *self, cli_run *run, int argc, char **argv) {
    int rc;
    if (cmd->parse) {
        rc = cmd->parse(self, argc, argv);
    } else {
        rc = cli_opts_parse(argc, argv, cmd->name, cmd->usage, &run->c, cmd->option, self);
        if (!rc && cmd->check) rc = cmd->check(self);
    }
    if (!rc && resumable(cmd) && run->c.resume && !run->c.out)
        rc = sb_usage_error("--resume needs --out FILE.h5 (its state is FILE.h5.resume)");
    return rc;
}

/* Once: the model's SHA-256 reads every weight. */
static int hash_model(const cli_command *cmd, cli_run *run) {
    if (!cmd->model || run->model_sha256[0]) return SB_OK;
    return sb_provenance_hash_model(run->c.model_dir, run->model_sha256);
}

/* The SHA-256 of the inputs, which results and resume states name. */
static int digest_inputs(const cli_command *cmd, cli_run *run) {
    int rc = cmd->hash_model_late ? SB_OK : hash_model(cmd, run);
    if (rc || !run->c.data) return rc;
    uint8_t dig[32];
    if ((rc = sb_sha256_file(run->c.data, dig))) return rc;
    sb_sha256_hex(dig, run->data_sha256);
    return SB_OK;
}

/* The resume state's key: everything the command's result depends on. */
static int state_hash(const cli_command *cmd, void *self, cli_run *run, uint8_t hash[32]) {
    int rc = hash_model(cmd, run);
    if (rc) return rc;
    sb_resume_hash h;
    sb_resume_hash_init(&h, cmd->name);
    rc = cmd->inputs_hash(self, &h);
    sb_resume_hash_final(&h, hash);
    return rc;
}

/* --resume: the saved state, if there is one for these inputs. */
static int restore_state(const cli_command *cmd, void *self, cli_run *run) {
    uint8_t hash[32];
    int rc = state_hash(cmd, self, run, hash);
    if (rc) return rc;
    void *buf;
    size_t n;
    int missing;
    if ((rc = sb_resume_load(run->state_path, cmd->name, hash, &buf, &n, &missing))) {
        if (!missing) return rc;
        sb_clear_error();
        fprintf(stderr, "sinkbench %s: no saved state in %s, starting from the beginning\n", cmd->name,
                run->state_path);
        return SB_OK;
    }
    rc = cmd->restore(self, buf, n);
    free(buf);
    return rc;
}

/* A caught signal stopped the run: keep what can be kept. Returns the exit status. */
static int stop(const cli_command *cmd, void *self, cli_run *run, int argc, char **argv, int rc) {
    bool resume_line = true;
    if (!resumable(cmd)) {
        if (cmd->interrupted) resume_line = cmd->interrupted(self, rc);
        else fprintf(stderr, "sinkbench %s: interrupted; nothing written\n", cmd->name);
    } else if (!run->c.out) {
        fprintf(stderr, "sinkbench %s: interrupted after %" PRId64 " of %" PRId64 " %s; nothing saved (only runs "
                        "with --out can resume)\n", cmd->name, run->done, run->total, cmd->unit);
        resume_line = false;
    } else {
        uint8_t hash[32];
        char *buf = NULL;
        size_t n = 0;
        if ((rc = state_hash(cmd, self, run, hash)) || (rc = cmd->save(self, &buf, &n)) ||
            (rc = sb_resume_save(run->state_path, cmd->name, hash, buf, n))) {
            free(buf);
            return cli_fail(cmd->name, rc);
        }
        free(buf);
        fprintf(stderr, "sinkbench %s: interrupted after %" PRId64 " of %" PRId64 " %s, saved to %s\n", cmd->name,
                run->done, run->total, cmd->unit, run->state_path);
    }
    if (resume_line) sb_signal_print_resume(stderr, argc, argv);
    return sb_signal_exit_status();
}

/* A finished run: statistics, provenance, the committed result. */
static int finish(const cli_command *cmd, void *self, cli_run *run, sb_h5 **out) {
    int rc = cmd->finish ? cmd->finish(self) : SB_OK;
    if (!rc) rc = hash_model(cmd, run);
    if (rc) return rc;
    sb_provenance_collect(&run->prov); /* after the run: its load average covers the run */
    if (!*out) return SB_OK;
    if ((rc = cmd->write_h5(self, *out)) || (rc = sb_provenance_to_h5(&run->prov, *out))) return rc;
    rc = sb_h5_commit(*out);
    *out = NULL; /* commit frees it, failing or not */
    if (rc) return rc;
    if (run->state_path[0]) unlink(run->state_path); /* the result is complete: the partial state is spent */
    return SB_OK;
}

void cli_run_json_inputs(const cli_run *run, cJSON *o, bool with_data) {
    cJSON_AddStringToObject(o, "model", run->c.model_dir);
    cJSON_AddStringToObject(o, "model_sha256", run->model_sha256);
    if (with_data) {
        cJSON_AddStringToObject(o, "data", run->c.data);
        cJSON_AddStringToObject(o, "data_sha256", run->data_sha256);
    }
    if (run->c.out) cJSON_AddStringToObject(o, "out", run->c.out);
}

static int report(const cli_command *cmd, void *self, cli_run *run) {
    if (run->c.json && cmd->json) {
        cJSON *o = cmd->json(self);
        sb_provenance_to_json(&run->prov, o);
        int rc = cli_print_json(o);
        if (rc) return rc;
    } else if (cmd->summary) {
        cmd->summary(self);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) return sb_error("cannot write to stdout");
    return SB_OK;
}

int cli_run_main(const cli_command *cmd, void *self, cli_run *run, int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    /* from the start: a signal during loading is answered at the first check, after the
     * output's temp file and lock exist, so both are cleaned up */
    sb_signals_install();
    sb_lock *lock = NULL;
    sb_h5 *out = NULL;
    bool interrupted = false;
    int rc = parse_options(cmd, self, run, argc, argv);
    if (rc == SB_ERR_USAGE && argc <= 1 && cmd->usage) cmd->usage(stderr);
    if (rc) goto end;
    cli_set_threads(run->c.threads);
    if (cmd->prepare && (rc = cmd->prepare(self))) goto end;
    if (run->n_mem && (rc = sb_mem_check(run->mem_what, run->mem, run->n_mem, run->c.max_memory))) goto end;
    if (cmd->open && (rc = cmd->open(self))) goto end;
    /* the output before the work: a clash or an unwritable path fails now, not after it */
    if (run->c.out) {
        if (resumable(cmd) && (rc = sb_resume_path(run->state_path, sizeof run->state_path, run->c.out))) goto end;
        if ((rc = sb_lock_acquire(&lock, run->c.out))) goto end;
        if (cmd->out == CLI_OUT_H5 && (rc = sb_h5_create(&out, run->c.out))) goto end;
    }
    if (cmd->model) {
        double t0 = sb_now();
        if ((rc = sb_model_load(&run->model, run->c.model_dir))) goto end;
        run->model_load_s = sb_now() - t0;
    }
    if ((rc = digest_inputs(cmd, run))) goto end;
    if (cmd->load && (rc = cmd->load(self))) goto end;
    run->threads = cli_set_threads(run->c.threads);
    if (resumable(cmd) && run->c.resume && (rc = restore_state(cmd, self, run))) goto end;

    rc = sb_signal_caught() ? SB_ERR : cmd->run(self);
    if (cmd->stopped ? cmd->stopped(self, rc) : sb_signal_caught() != 0) {
        /* finished or not, a stop that was asked for exits as interrupted */
        interrupted = true;
        rc = stop(cmd, self, run, argc, argv, rc);
        goto end;
    }
    if (!rc) rc = finish(cmd, self, run, &out);
    sb_lock_release(lock);
    lock = NULL;
    if (!rc) rc = report(cmd, self, run);

end:
    sb_h5_abort(out);
    sb_lock_release(lock);
    if (cmd->cleanup) cmd->cleanup(self);
    sb_model_free(&run->model);
    if (interrupted) return rc;
    return rc && rc != CLI_RUN_DONE ? cli_fail(cmd->name, rc) : 0;
}
