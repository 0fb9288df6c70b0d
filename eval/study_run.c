/* Running cells: each is a child sinkbench process (so a crash, a leak or a peak-RSS reading
 * stays inside its cell), `jobs` at a time, resumable because every result file is written
 * atomically and stamped with a .key sidecar only after it is complete. A cell interrupted
 * mid-way (Ctrl-C, SIGTERM) leaves <cell>.h5.resume; the next study run continues it with
 * --resume appended to the otherwise identical command, so the state's input hash matches. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/common.h"
#include "eval/study.h"
#include "eval/study_cells.h"
#include "util/h5.h"

extern char **environ;

int sb_study_spawn(const char *exe, char *const argv[], const char *log_path, int *pid) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const char *out = log_path ? log_path : "/dev/null";
    int flags = log_path ? O_WRONLY | O_CREAT | O_APPEND : O_WRONLY;
    posix_spawn_file_actions_addopen(&fa, 1, out, flags, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t p;
    int e = posix_spawn(&p, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) return sb_error("cannot start %s: %s", exe, strerror(e));
    *pid = (int)p;
    return SB_OK;
}

int sb_study_exit_code(int wstatus) {
    if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
    return 255;
}

int sb_study_run_sync(const char *exe, char *const argv[], const char *log_path, int *status) {
    int pid;
    int rc = sb_study_spawn(exe, argv, log_path, &pid);
    if (rc) return rc;
    int ws;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return sb_error("waiting for %s: %s", exe, strerror(errno));
    *status = sb_study_exit_code(ws);
    return SB_OK;
}

/* Last non-empty line of a log (the command's one-line error), for the failure note. */
static void log_tail(const char *path, char *out, size_t cap) {
    char *text;
    size_t n;
    out[0] = '\0';
    if (sb_read_file(path, &text, &n) != SB_OK) {
        sb_clear_error();
        return;
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) text[--n] = '\0';
    char *line = strrchr(text, '\n');
    sb_study_copy(out, cap, line ? line + 1 : text);
    free(text);
}

static void parent_dir(const char *path, char *out, size_t cap) {
    sb_study_copy(out, cap, path);
    char *slash = strrchr(out, '/');
    if (slash) *slash = '\0';
    else sb_study_copy(out, cap, ".");
}

static void state_path(const sb_study_cell *c, char *buf, size_t cap) { snprintf(buf, cap, "%s.resume", c->path); }

int sb_study_cell_start(sb_study_plan *plan, const sb_study_opts *o, int i, sb_study_job *j) {
    sb_study_cell *c = &plan->cells[i];
    char dir[SB_STUDY_TEXT], log[SB_STUDY_TEXT + 8], key[SB_STUDY_TEXT + 8], state[SB_STUDY_TEXT + 8];
    parent_dir(c->path, dir, sizeof dir);
    int rc = sb_study_mkdirs(dir);
    if (rc) return rc;
    snprintf(log, sizeof log, "%s.log", c->path);
    snprintf(key, sizeof key, "%s.key", c->path);
    state_path(c, state, sizeof state);
    unlink(key); /* a stale key must never vouch for a new result */
    /* an interrupted cell continues: the same argv plus --resume (c->argv and the key stay
     * as planned, so the finished cell is indistinguishable from an unbroken one) */
    char *argv[SB_CELL_MAX_ARGS + 2];
    int argc = c->argc;
    memcpy(argv, c->argv, (size_t)argc * sizeof *argv);
    j->resumed = access(state, F_OK) == 0 && argc + 1 < SB_CELL_MAX_ARGS + 2;
    if (j->resumed) argv[argc++] = "--resume";
    argv[argc] = NULL;
    /* the log starts with the command, so a cell can be rerun by hand; a resumed cell keeps
     * the log of its interrupted part above */
    if (!j->resumed) unlink(log);
    FILE *lf = fopen(log, "a");
    if (lf) {
        fprintf(lf, "#");
        for (int a = 0; a < argc; a++) fprintf(lf, " %s", argv[a]);
        fprintf(lf, "\n");
        fclose(lf);
    }
    if ((rc = sb_study_spawn(o->exe, argv, log, &j->pid))) return rc;
    j->cell = i;
    j->t0 = sb_now();
    return SB_OK;
}

bool sb_study_cell_finished(sb_study_plan *plan, sb_study_job *j, int status, bool quiet) {
    sb_study_cell *c = &plan->cells[j->cell];
    c->wall_s = sb_now() - j->t0;
    char log[SB_STUDY_TEXT + 8], key[SB_STUDY_TEXT + 8], state[SB_STUDY_TEXT + 8];
    snprintf(log, sizeof log, "%s.log", c->path);
    snprintf(key, sizeof key, "%s.key", c->path);
    state_path(c, state, sizeof state);
    if (j->resumed && status == 1) {
        char tail[SB_STUDY_TEXT];
        log_tail(log, tail, sizeof tail);
        /* the command's refusal names the state file; any other error is the cell's own */
        if (strstr(tail, ".resume") && unlink(state) == 0) {
            if (!quiet)
                fprintf(stderr, "study %s: %s: resume refused (%s); starting it afresh\n", plan->cfg->name, c->id,
                        tail);
            return true;
        }
    }
    if (status == 0 && sb_h5_is_complete(c->path) == 1 && sb_study_write_text(key, c->key) == SB_OK) {
        c->state = SB_CELL_DONE;
    } else {
        c->state = SB_CELL_FAILED;
        char tail[SB_STUDY_TEXT];
        log_tail(log, tail, sizeof tail);
        snprintf(c->why, sizeof c->why, "exit %d: %.400s", status, tail[0] ? tail : "no output");
    }
    sb_clear_error();
    return false;
}

void sb_study_cell_print(const sb_study_plan *plan, int cell, int done, int total, double t_start, bool resumed,
                         int rank) {
    const sb_study_cell *c = &plan->cells[cell];
    char where[32] = "";
    if (rank >= 0) snprintf(where, sizeof where, " (rank %d)", rank);
    fprintf(stderr, "study %s: [%d/%d] %-44s %s %7.1f s   (elapsed %.0f s)%s%s\n", plan->cfg->name, done, total,
            c->id, c->state == SB_CELL_DONE ? "ok    " : "FAILED", c->wall_s, sb_now() - t_start,
            resumed ? " resumed" : "", where);
    if (c->state == SB_CELL_FAILED) {
        char log[SB_STUDY_TEXT + 8], state[SB_STUDY_TEXT + 8];
        snprintf(log, sizeof log, "%s.log", c->path);
        state_path(c, state, sizeof state);
        fprintf(stderr, "study %s:   %s (log: %s)\n", plan->cfg->name, c->why, log);
        if (access(state, F_OK) == 0)
            fprintf(stderr, "study %s:   its state %s is kept: the next study run resumes the cell\n", plan->cfg->name,
                    state);
    }
}

/* Returns true when the cell must start again from scratch: its resume state was refused (made
 * for other inputs, or damaged), so the state is removed rather than failing every rerun. */
static bool finish_cell(sb_study_plan *plan, sb_study_job *j, int status, int *done, int total, double t_start) {
    if (sb_study_cell_finished(plan, j, status, false)) return true;
    (*done)++;
    sb_study_cell_print(plan, j->cell, *done, total, t_start, j->resumed, -1);
    return false;
}

int sb_study_run_cells(sb_study_plan *plan, const sb_study_opts *o) {
    int total = 0, skipped = 0, already = 0;
    for (int i = 0; i < plan->n_cells; i++) {
        if (plan->cells[i].state == SB_CELL_TODO) total++;
        else if (plan->cells[i].state == SB_CELL_SKIP) skipped++;
        else if (plan->cells[i].state == SB_CELL_DONE) already++;
    }
    int jobs = plan->cfg->serial || o->jobs < 1 ? 1 : o->jobs;
    fprintf(stderr, "study %s: %d cells to run, %d already done, %d not applicable; %d at a time, %d threads each\n",
            plan->cfg->name, total, already, skipped, jobs, plan->threads);
    sb_study_job running[64];
    if (jobs > 64) jobs = 64;
    int n_running = 0, done = 0, next = 0, failed = 0;
    double t_start = sb_now();
    for (;;) {
        while (n_running < jobs) {
            while (next < plan->n_cells && plan->cells[next].state != SB_CELL_TODO) next++;
            if (next == plan->n_cells) break;
            sb_study_cell *c = &plan->cells[next];
            fprintf(stderr, "study %s: start %s (%s)\n", plan->cfg->name, c->id, c->spec);
            if (sb_study_cell_start(plan, o, next, &running[n_running]) != SB_OK) {
                c->state = SB_CELL_FAILED;
                sb_study_copy(c->why, sizeof c->why, sb_last_error());
                fprintf(stderr, "study %s: %s: %s\n", plan->cfg->name, c->id, c->why);
                done++;
            } else n_running++;
            next++;
        }
        if (n_running == 0) break;
        int ws;
        pid_t pid = waitpid(-1, &ws, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            return sb_error("waiting for cells: %s", strerror(errno));
        }
        for (int k = 0; k < n_running; k++) {
            if (running[k].pid != pid) continue;
            if (finish_cell(plan, &running[k], sb_study_exit_code(ws), &done, total, t_start)) {
                int cell = running[k].cell;
                if (sb_study_cell_start(plan, o, cell, &running[k]) == SB_OK) break; /* same slot, fresh run */
                sb_study_cell *c = &plan->cells[cell];
                c->state = SB_CELL_FAILED;
                sb_study_copy(c->why, sizeof c->why, sb_last_error());
                done++;
            }
            running[k] = running[--n_running];
            break;
        }
    }
    for (int i = 0; i < plan->n_cells; i++) failed += plan->cells[i].state == SB_CELL_FAILED;
    if (failed) return sb_error("%s: %d of %d cells failed", plan->cfg->name, failed, total);
    return SB_OK;
}
