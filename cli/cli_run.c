#include "cli/cli_run.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "dist/dist.h"
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

/* --resume: the saved state, if there is one for these inputs. *absent: there was none (a
 * sharded run's rank 0 says so for every rank). */
static int restore_state(const cli_command *cmd, void *self, cli_run *run, bool *absent) {
    uint8_t hash[32];
    int rc = state_hash(cmd, self, run, hash);
    if (rc) return rc;
    void *buf;
    size_t n;
    int missing;
    if ((rc = sb_resume_load(run->state_path, cmd->name, hash, &buf, &n, &missing))) {
        if (!missing) return rc;
        sb_clear_error();
        *absent = true;
        if (run->ranks <= 1)
            fprintf(stderr, "sinkbench %s: no saved state in %s, starting from the beginning\n", cmd->name,
                    run->state_path);
        return SB_OK;
    }
    rc = cmd->restore(self, buf, n);
    free(buf);
    return rc;
}

/* The state so far, to run.state_path under the inputs hash. */
static int save_state(const cli_command *cmd, void *self, cli_run *run) {
    uint8_t hash[32];
    char *buf = NULL;
    size_t n = 0;
    int rc;
    if (!(rc = state_hash(cmd, self, run, hash)) && !(rc = cmd->save(self, &buf, &n)))
        rc = sb_resume_save(run->state_path, cmd->name, hash, buf, n);
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
        if ((rc = save_state(cmd, self, run))) return cli_fail(cmd->name, rc);
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

/* ---------------------------------------------------------------- a sharded run (MPI ranks) */

static bool sharded(const cli_command *cmd, const cli_run *run) { return cmd->shard && cmd->gather && run->ranks > 1; }

/* What a rank tells every other where the ranks meet: before the run (ready or not) and
 * after it (finished, stopped or failed). Plain bytes: every rank runs the same binary. */
typedef struct {
    int32_t status;           /* SB_OK, or the status it failed with (CLI_RUN_DONE: nothing to run) */
    int32_t stopped;          /* a signal stopped its part: 128 + the signal */
    int32_t flag;             /* before: it found no resume state; after: its state is saved */
    int32_t pad;
    int64_t done, total;      /* how far its part got */
    char sha[2][65];          /* the model's and the data's SHA-256 (before) */
    char msg[418];            /* its error */
} rank_report;

static void report_error(rank_report *me, int status) {
    me->status = status;
    snprintf(me->msg, sizeof me->msg, "%s", sb_last_error()[0] ? sb_last_error() : "failed");
}

/* <out>.resume: the states' common part (without .rank<r>). */
static void state_base(const cli_run *run, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", run->state_path);
    char *dot = strrchr(buf, '.');
    if (dot && !strncmp(dot, ".rank", 5)) *dot = '\0';
}

/* Every rank's report on every rank (*all malloc'd). */
static int meet(const cli_run *run, const rank_report *me, rank_report **all) {
    *all = calloc((size_t)run->ranks, sizeof **all);
    if (!*all) return sb_error("out of memory for %d ranks' reports", run->ranks);
    return sb_dist_allgather(me, sizeof *me, *all);
}

/* A meeting that did not happen: a signal came while this rank waited for the others (the
 * launcher ending a job that lost a rank, or a cancel), or MPI failed. Rank 0 says so. */
static int met_badly(const cli_command *cmd, const cli_run *run, int e, const char *tail) {
    if (!sb_dist_abandoned()) return run->rank == 0 ? cli_fail(cmd->name, e) : e;
    if (run->rank == 0)
        fprintf(stderr, "sinkbench %s: %s (one may have died, or the job was cancelled); nothing written%s\n",
                cmd->name, sb_last_error(), tail);
    return 128 + sb_dist_abandoned();
}

/* Rank 0's one line for a run that failed somewhere: the first failure, naming its rank
 * unless every rank failed alike. */
static void print_failure(const cli_command *cmd, const cli_run *run, const rank_report *all, int first,
                          const char *tail) {
    int failed = 0;
    bool alike = true;
    for (int r = 0; r < run->ranks; r++) {
        if (all[r].status == SB_OK || all[r].status == CLI_RUN_DONE) continue;
        failed++;
        alike = alike && !strcmp(all[r].msg, all[first].msg);
    }
    if (failed == run->ranks && alike) fprintf(stderr, "sinkbench %s: %s%s\n", cmd->name, all[first].msg, tail);
    else if (failed > 1)
        fprintf(stderr, "sinkbench %s: rank %d of %d: %s (%d ranks failed)%s\n", cmd->name, first, run->ranks,
                all[first].msg, failed, tail);
    else fprintf(stderr, "sinkbench %s: rank %d of %d: %s%s\n", cmd->name, first, run->ranks, all[first].msg, tail);
}

/* Before the run: every rank ready, with the same inputs, or one line from rank 0 and the
 * failure's status on every rank (*reported). */
static int dist_ready(const cli_command *cmd, cli_run *run, int rc, bool absent, bool *reported) {
    rank_report me = {.flag = absent, .done = run->done, .total = run->total};
    if (rc) report_error(&me, rc);
    snprintf(me.sha[0], sizeof me.sha[0], "%s", run->model_sha256);
    snprintf(me.sha[1], sizeof me.sha[1], "%s", run->data_sha256);
    rank_report *all;
    int e = meet(run, &me, &all);
    if (e) {
        free(all);
        *reported = true;
        return met_badly(cmd, run, e, "");
    }
    int first = -1;
    bool all_done = true;
    for (int r = 0; r < run->ranks; r++) {
        if (all[r].status != SB_OK && first < 0) first = r;
        all_done = all_done && all[r].status == CLI_RUN_DONE;
    }
    int status = SB_OK;
    if (all_done) status = CLI_RUN_DONE;
    else if (first >= 0) {
        if (run->rank == 0) print_failure(cmd, run, all, first, "");
        status = all[first].status == CLI_RUN_DONE ? SB_ERR : all[first].status;
        *reported = true;
    }
    for (int r = 1; r < run->ranks && status == SB_OK; r++) {
        if (!strcmp(all[r].sha[0], all[0].sha[0]) && !strcmp(all[r].sha[1], all[0].sha[1])) continue;
        if (run->rank == 0)
            fprintf(stderr, "sinkbench %s: rank %d of %d reads other files than rank 0 (the SHA-256 of --model or "
                            "--data differs): every rank must see the same inputs\n", cmd->name, r, run->ranks);
        status = SB_ERR;
        *reported = true;
    }
    if (status == SB_OK && run->c.resume && run->rank == 0) {
        char list[256] = "", base[4096];
        size_t k = 0;
        int n = 0;
        for (int r = 0; r < run->ranks; r++)
            if (all[r].flag && k < sizeof list - 16) k += (size_t)snprintf(list + k, sizeof list - k, " %d", r), n++;
        state_base(run, base, sizeof base);
        if (n)
            fprintf(stderr, "sinkbench %s: no saved state for rank%s%s in %s.rank<r>; %s from the beginning\n",
                    cmd->name, n > 1 ? "s" : "", list, base, n == run->ranks ? "starting" : "their parts start");
    }
    free(all);
    return status;
}

/* "resume with: mpirun -np N <the command> --resume" */
static void print_resume_mpi(const cli_run *run, int argc, char **argv) {
    char *line = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&line, &n);
    if (!m) return;
    sb_signal_print_resume(m, argc, argv);
    fclose(m);
    const char *rest = strncmp(line, "resume with: ", 13) ? line : line + 13;
    fprintf(stderr, "resume with: mpirun -np %d %s", run->ranks, rest);
    fflush(stderr);
    free(line);
}

/* Every part finished: rank 0 gathers, finishes, commits and reports; the others drop their
 * spent states once the result is committed. */
static int dist_commit(const cli_command *cmd, void *self, cli_run *run, sb_h5 **out, sb_lock **lock) {
    rank_report me = {0};
    int rc = cmd->gather(self);
    if (rc && sb_dist_abandoned()) return met_badly(cmd, run, rc, "");
    if (rc) report_error(&me, rc);
    rank_report *all;
    int e = meet(run, &me, &all);
    if (e) {
        free(all);
        return met_badly(cmd, run, e, "");
    }
    for (int r = 0; r < run->ranks && !rc; r++)
        if (all[r].status) {
            if (run->rank == 0) print_failure(cmd, run, all, r, "");
            rc = all[r].status;
        }
    free(all);
    if (rc) return rc;
    if (run->rank == 0) rc = finish(cmd, self, run, out);
    int32_t committed = rc;
    if ((e = sb_dist_bcast(&committed, sizeof committed, 0))) {
        if (run->rank != 0) return met_badly(cmd, run, e, "");
        sb_clear_error(); /* rank 0 has its own outcome */
    }
    if (committed == SB_OK && run->rank != 0 && run->state_path[0]) unlink(run->state_path);
    if (run->rank != 0) return committed;
    sb_lock_release(*lock);
    *lock = NULL;
    if (!rc) rc = report(cmd, self, run);
    return rc ? cli_fail(cmd->name, rc) : SB_OK;
}

/* After the run, on every rank: commit when every part finished; else no result, every
 * part that got somewhere saved, and rank 0's account of it. Returns the exit status (every
 * line printed). */
static int dist_after_run(const cli_command *cmd, void *self, cli_run *run, int argc, char **argv, int rc,
                          bool stopped, sb_h5 **out, sb_lock **lock) {
    rank_report me = {.done = run->done, .total = run->total};
    if (stopped) me.stopped = sb_signal_exit_status();
    else if (rc) report_error(&me, rc);
    const bool can_save = resumable(cmd) && run->c.out;
    char base[4096];
    state_base(run, base, sizeof base);
    /* every part that got somewhere is saved before the ranks meet: a launcher that signalled
     * the job, or lost a rank, ends it soon after (Open MPI: SIGKILL a second later), and a
     * run that fails anywhere keeps the finished parts; the committed result removes them */
    if (can_save && (stopped || run->done > 0)) {
        if (save_state(cmd, self, run) == SB_OK) me.flag = 1;
        else if (stopped) report_error(&me, SB_ERR);
        else sb_clear_error(); /* a finished part does not need its state */
    }
    /* rank 0 stopped: say so now, the job may not live until the ranks meet */
    bool told = false;
    if (stopped && run->rank == 0 && !me.status) {
        if (can_save) {
            fprintf(stderr, "sinkbench %s: interrupted after %" PRId64 " of rank 0's %" PRId64 " %s, saved to "
                            "%s.rank0; each of the %d ranks saves its part to %s.rank<r>\n",
                    cmd->name, run->done, run->total, cmd->unit, base, run->ranks, base);
            print_resume_mpi(run, argc, argv);
        } else
            fprintf(stderr, "sinkbench %s: interrupted; nothing saved (only runs with --out can resume)\n", cmd->name);
        told = true;
    }
    rank_report *all;
    int e = meet(run, &me, &all);
    if (e) {
        free(all);
        if (told) return sb_signal_exit_status();
        char tail[4200] = "";
        if (me.flag) snprintf(tail, sizeof tail, "; rank 0's part is saved in %s.rank0 (--resume continues)", base);
        return met_badly(cmd, run, e, tail);
    }
    int failed = -1, stop_at = -1, saved = 0;
    int64_t done = 0, total = 0;
    for (int r = 0; r < run->ranks; r++) {
        if (all[r].status && failed < 0) failed = r;
        if (all[r].stopped && stop_at < 0) stop_at = r;
        done += all[r].done;
        total += all[r].total;
        saved += all[r].flag;
    }
    if (failed < 0 && stop_at < 0) {
        free(all);
        return dist_commit(cmd, self, run, out, lock);
    }
    int status = failed >= 0 ? all[failed].status : all[stop_at].stopped;
    if (run->rank == 0 && failed >= 0) {
        char tail[4200] = "; nothing written";
        if (saved)
            snprintf(tail, sizeof tail, "; nothing written, the finished part%s of %d rank%s saved in %s.rank<r> "
                                        "(--resume continues)",
                     saved > 1 ? "s" : "", saved, saved > 1 ? "s" : "", base);
        print_failure(cmd, run, all, failed, tail);
    } else if (run->rank == 0 && !told) {
        if (can_save) {
            fprintf(stderr, "sinkbench %s: rank %d of %d was interrupted; nothing written, %" PRId64 " of %" PRId64
                            " %s saved to %s.rank0..%d\n", cmd->name, stop_at, run->ranks, done, total, cmd->unit,
                    base, run->ranks - 1);
            print_resume_mpi(run, argc, argv);
        } else
            fprintf(stderr, "sinkbench %s: rank %d of %d was interrupted; nothing saved (only runs with --out can "
                            "resume)\n", cmd->name, stop_at, run->ranks);
    }
    free(all);
    return status;
}

int cli_run_main(const cli_command *cmd, void *self, cli_run *run, int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    /* from the start: a signal during loading is answered at the first check, after the
     * output's temp file and lock exist, so both are cleaned up */
    sb_signals_install();
    sb_lock *lock = NULL;
    sb_h5 *out = NULL;
    bool interrupted = false, reported = false, absent = false;
    int rc = SB_OK;
    /* the ranks of an MPI launch, for a command that can shard (one process otherwise) */
    run->rank = 0;
    run->ranks = 1;
    if (cmd->shard && cmd->gather) {
        if ((rc = sb_dist_init())) return cli_fail(cmd->name, rc);
        run->rank = sb_dist()->rank;
        run->ranks = sb_dist()->size;
    }
    const bool dist = sharded(cmd, run);
    /* rank 0 alone prints results */
    if (dist && run->rank != 0 && !freopen("/dev/null", "w", stdout))
        return cli_fail(cmd->name, sb_error("rank %d: cannot send stdout to /dev/null", run->rank));
    rc = parse_options(cmd, self, run, argc, argv);
    if (rc == SB_ERR_USAGE && argc <= 1 && cmd->usage && run->rank == 0) cmd->usage(stderr);
    if (rc) goto ready;
    /* one GPU per rank: `cuda` is the node's GPU of this rank's local index */
    if (dist && run->c.device && !strcmp(run->c.device, "cuda")) {
        snprintf(run->device, sizeof run->device, "cuda:%d", sb_dist()->local_rank);
        run->c.device = run->device;
    }
    cli_set_threads(run->c.threads);
    if (cmd->prepare && (rc = cmd->prepare(self))) goto ready;
    if (run->n_mem && (rc = sb_mem_check(run->mem_what, run->mem, run->n_mem, run->c.max_memory))) goto ready;
    if (cmd->open && (rc = cmd->open(self))) goto ready;
    /* the output before the work: a clash or an unwritable path fails now, not after it */
    if (run->c.out) {
        if (resumable(cmd) && (rc = sb_resume_path(run->state_path, sizeof run->state_path, run->c.out))) goto ready;
        if (dist) {
            size_t k = strlen(run->state_path);
            if (snprintf(run->state_path + k, sizeof run->state_path - k, ".rank%d", run->rank) >=
                (int)(sizeof run->state_path - k)) {
                rc = sb_error("%s: path too long", run->c.out);
                goto ready;
            }
        }
        /* rank 0 alone holds the output (its lock keeps a second run off every rank's state) */
        if (run->rank == 0 && (rc = sb_lock_acquire(&lock, run->c.out))) goto ready;
        if (run->rank == 0 && cmd->out == CLI_OUT_H5 && (rc = sb_h5_create(&out, run->c.out))) goto ready;
    }
    if (cmd->model) {
        double t0 = sb_now();
        if ((rc = sb_model_load(&run->model, run->c.model_dir))) goto ready;
        run->model_load_s = sb_now() - t0;
    }
    if ((rc = digest_inputs(cmd, run))) goto ready;
    if (cmd->load && (rc = cmd->load(self))) goto ready;
    run->threads = cli_set_threads(run->c.threads);
    if (dist && (rc = cmd->shard(self))) goto ready;
    if (resumable(cmd) && run->c.resume && (rc = restore_state(cmd, self, run, &absent))) goto ready;
ready:
    if (dist) rc = dist_ready(cmd, run, rc, absent, &reported);
    if (rc) goto end;

    rc = sb_signal_caught() ? SB_ERR : cmd->run(self);
    bool stopped = cmd->stopped ? cmd->stopped(self, rc) : sb_signal_caught() != 0;
    if (dist) {
        rc = dist_after_run(cmd, self, run, argc, argv, rc, stopped, &out, &lock);
        interrupted = true; /* every line is printed */
        goto end;
    }
    if (stopped) {
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
    if (rc == CLI_RUN_DONE) return 0;
    /* a sharded run's rank 0 printed the line (and the other ranks stay silent) */
    if (rc && (reported || (dist && run->rank != 0))) return rc;
    return rc ? cli_fail(cmd->name, rc) : 0;
}
