/* The study's cells over MPI ranks (`mpirun -np N sinkbench study run ...`).
 *
 * Every rank plans the same cells (rank 0 first: it makes the models the plan needs). Rank 0
 * keeps the queue of unfinished cells, largest first (tokens times the multiply-adds a token
 * costs under the cell's policy), and hands the next one to whichever rank asks: each rank,
 * rank 0 included, runs up to --jobs cells at a time as child processes exactly as a single
 * process does (sb_study_cell_start), so every cell writes its own atomic result and .key and
 * an interrupted study resumes cell by cell. A worker reports each finished cell to rank 0,
 * which prints the progress lines and, at the end, collects. Experiments marked serial
 * (timings) run on rank 0 alone, one cell at a time, as they do without MPI.
 *
 * The cells are single processes: SINKBENCH_MPI=0 keeps them out of MPI. A launcher ending the
 * job (Ctrl-C on mpirun, scancel) signals each rank's process group, its cells among them, and
 * those save their state as a single study's cells do; the ranks start nothing more and wait
 * for their cells before they exit (128 + the signal), so the job ends when every state is
 * saved (give the ranks time: mpirun --mca odls_base_sigkill_timeout 60, Slurm's KillWait). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dist/dist.h"
#include "engine/common.h"
#include "engine/policy.h"
#include "eval/study.h"
#include "eval/study_cells.h"
#include "util/signals.h"

enum { TAG_TO_BOSS = 7101, TAG_TO_WORKER = 7102 };
enum { MSG_REQUEST = 1, MSG_DONE, MSG_BYE, MSG_ASSIGN, MSG_NO_MORE };

typedef struct {
    int32_t type, cell, state, resumed;
    double wall_s;
    char id[SB_STUDY_TEXT];   /* the cell's id: both plans must agree on it */
    char why[SB_STUDY_TEXT];
} msg;

/* ---------------------------------------------------------------- cost */

/* Tokens a stream file holds, roughly (only to order cells that read all of it). */
static double stream_tokens(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return 1e6;
    size_t n = strlen(path);
    double per = n > 4 && !strcmp(path + n - 4, ".ids") ? 5.0 : n > 4 && !strcmp(path + n - 4, ".tok") ? 2.0 : 4.0;
    return (double)st.st_size / per;
}

double sb_study_cell_cost(const sb_study_plan *plan, const sb_study_cell *c) {
    const sb_model_config *m = &plan->models[c->model].cfg;
    double tokens = c->tokens > 0 ? (double)c->tokens : stream_tokens(plan->data);
    double weights = 2.0 * (double)sb_model_param_count(m);
    double per_key = 2.0 * m->n_layers * (double)m->n_heads * m->head_dim;
    double ctx = (double)m->max_ctx, factor = 1.0;
    sb_policy_spec p;
    sb_exact_plan e;
    if (plan->cfg->command == SB_STUDY_CMD_LATENCY && c->cache_size > 0) ctx = (double)c->cache_size;
    else if (sb_policy_parse(c->spec, &p) == SB_OK) {
        if (!sb_policy_exact_plan(&p, m, &e)) {
            ctx = (double)sb_policy_capacity(&p);
            factor = 4.0; /* one token per forward */
        } else if (e.kind == SB_EXACT_FRESH_WINDOW) {
            ctx = (double)e.W / 2;
            factor = (double)e.W; /* a pass of W tokens per prediction */
        } else if (e.W >= SB_POLICY_W_ALL / 2) ctx = tokens / 2;
        else ctx = (double)(e.K + e.W) < tokens ? (double)(e.K + e.W) : tokens;
    }
    sb_clear_error();
    return tokens * (weights + per_key * ctx) * factor;
}

/* ---------------------------------------------------------------- planning on every rank */

int sb_study_dist_plan(sb_study_plan *plan, const sb_study_config *cfg, const sb_study_opts *o) {
    const sb_dist_info *d = sb_dist();
    /* rank 0 first: it makes the models (sinkbench init) the others then find */
    int32_t rc0 = d->rank == 0 ? sb_study_plan_make(plan, cfg, o) : SB_OK;
    char msg0[512] = "";
    if (rc0) snprintf(msg0, sizeof msg0, "%s", sb_last_error());
    int e = sb_dist_bcast(&rc0, sizeof rc0, 0);
    if (!e) e = sb_dist_bcast(msg0, sizeof msg0, 0);
    if (e) return e;
    if (rc0) return d->rank == 0 ? rc0 : sb_error("%s", msg0);
    int32_t rc = d->rank == 0 ? SB_OK : sb_study_plan_make(plan, cfg, o);
    /* the same cells everywhere, or rank 0 names the rank that differs */
    struct {
        int32_t rc, n_cells;
        uint32_t ids;
        char why[468];
    } me = {.rc = rc, .n_cells = plan->n_cells}, *all = calloc((size_t)d->size, sizeof *all);
    if (!all) return sb_error("out of memory for %d ranks", d->size);
    if (rc) snprintf(me.why, sizeof me.why, "%s", sb_last_error());
    for (int i = 0; i < plan->n_cells; i++)
        for (const char *s = plan->cells[i].id; *s; s++) me.ids = me.ids * 31u + (unsigned char)*s;
    if ((e = sb_dist_allgather(&me, sizeof me, all))) {
        free(all);
        return e;
    }
    rc = SB_OK;
    for (int r = 1; r < d->size && !rc; r++) {
        if (all[r].rc) rc = sb_error("rank %d of %d: %s", r, d->size, all[r].why);
        else if (all[r].n_cells != all[0].n_cells || all[r].ids != all[0].ids)
            rc = sb_error("rank %d of %d plans other cells than rank 0 (%d against %d): every rank must see the same "
                          "configs, models and data",
                          r, d->size, all[r].n_cells, all[0].n_cells);
    }
    free(all);
    return rc;
}

/* ---------------------------------------------------------------- running */

static const struct timespec idle_pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};

static int send_msg(msg *m, int dest, int tag) { return sb_dist_send(m, sizeof *m, dest, tag); }

/* A finished child of this rank: the job's index in running[], or -1 (none yet). */
static int reap(sb_study_job *running, int n_running, int *status) {
    int ws;
    pid_t pid = waitpid(-1, &ws, WNOHANG);
    if (pid <= 0) return -1;
    for (int k = 0; k < n_running; k++)
        if (running[k].pid == pid) {
            *status = sb_study_exit_code(ws);
            return k;
        }
    return -1;
}

static void done_msg(const sb_study_plan *plan, int cell, const sb_study_job *j, msg *m) {
    const sb_study_cell *c = &plan->cells[cell];
    memset(m, 0, sizeof *m);
    m->type = MSG_DONE;
    m->cell = cell;
    m->state = (int32_t)c->state;
    m->resumed = j ? j->resumed : 0;
    m->wall_s = c->wall_s;
    sb_study_copy(m->id, sizeof m->id, c->id);
    sb_study_copy(m->why, sizeof m->why, c->why);
}

/* A rank other than 0: ask, run, report, until rank 0 has no more. */
static int worker(sb_study_plan *plan, const sb_study_opts *o, int slots) {
    sb_study_job running[64];
    int n_running = 0, rc = SB_OK;
    bool asked = false, no_more = false;
    msg m;
    while (!rc) {
        bool busy = false, stopping = sb_signal_caught() != 0;
        int status, k;
        while ((k = reap(running, n_running, &status)) >= 0) {
            busy = true;
            int cell = running[k].cell;
            if (sb_study_cell_finished(plan, &running[k], status, true) &&
                sb_study_cell_start(plan, o, cell, &running[k]) == SB_OK)
                continue; /* its refused state removed: the same slot, a fresh run */
            if (plan->cells[cell].state == SB_CELL_TODO) { /* the fresh run could not start */
                plan->cells[cell].state = SB_CELL_FAILED;
                sb_study_copy(plan->cells[cell].why, sizeof plan->cells[cell].why, sb_last_error());
            }
            done_msg(plan, cell, &running[k], &m);
            running[k] = running[--n_running];
            if ((rc = send_msg(&m, 0, TAG_TO_BOSS))) break;
        }
        if (rc) break;
        if (!stopping && !no_more && !asked && n_running < slots) {
            memset(&m, 0, sizeof m);
            m.type = MSG_REQUEST;
            if ((rc = send_msg(&m, 0, TAG_TO_BOSS))) break;
            asked = true;
        }
        bool got;
        int src;
        size_t n;
        if ((rc = sb_dist_try_recv(&m, sizeof m, TAG_TO_WORKER, &got, &src, &n))) break;
        if (got) {
            busy = true;
            asked = false;
            if (m.type == MSG_NO_MORE) no_more = true;
            else if (m.type == MSG_ASSIGN) {
                sb_study_cell *c = m.cell >= 0 && m.cell < plan->n_cells ? &plan->cells[m.cell] : NULL;
                if (!c || strcmp(c->id, m.id)) {
                    rc = sb_error("rank %d: cell %d is not %s in this rank's plan", sb_dist()->rank, m.cell, m.id);
                    break;
                }
                if (stopping) {
                    c->state = SB_CELL_FAILED;
                    sb_study_copy(c->why, sizeof c->why, "not started: the rank was stopping");
                    done_msg(plan, m.cell, NULL, &m);
                    if ((rc = send_msg(&m, 0, TAG_TO_BOSS))) break;
                } else if (sb_study_cell_start(plan, o, m.cell, &running[n_running]) == SB_OK) n_running++;
                else {
                    c->state = SB_CELL_FAILED;
                    sb_study_copy(c->why, sizeof c->why, sb_last_error());
                    done_msg(plan, m.cell, NULL, &m);
                    if ((rc = send_msg(&m, 0, TAG_TO_BOSS))) break;
                }
            }
        }
        if ((no_more || stopping) && n_running == 0) break;
        if (!busy) nanosleep(&idle_pause, NULL);
    }
    /* a worker that failed lets its cells finish, then says why; rank 0 waits for every BYE */
    for (int k = 0; k < n_running; k++) {
        int ws;
        while (waitpid(running[k].pid, &ws, 0) < 0 && errno == EINTR) {
        }
    }
    memset(&m, 0, sizeof m);
    m.type = MSG_BYE;
    if (rc) sb_study_copy(m.why, sizeof m.why, sb_last_error());
    else if (sb_signal_caught())
        snprintf(m.why, sizeof m.why, "interrupted by %s", sb_signal_caught() == SIGINT ? "SIGINT" : "SIGTERM");
    int e = send_msg(&m, 0, TAG_TO_BOSS);
    return rc ? rc : e;
}

typedef struct {
    int cell;
    double cost;
} ranked;

static int by_cost(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return x->cell - y->cell; /* stable: plan order among equals */
}

/* Rank 0: the queue, its own cells, the workers' requests and reports. */
static int boss(sb_study_plan *plan, const sb_study_opts *o, int slots) {
    const int ranks = sb_dist()->size;
    const bool serial = plan->cfg->serial;
    ranked *queue = calloc((size_t)(plan->n_cells ? plan->n_cells : 1), sizeof *queue);
    if (!queue) return sb_error("out of memory for the cell queue");
    int nq = 0, qi = 0, total = 0, done = 0, workers = ranks - 1, n_running = 0, rc = SB_OK;
    for (int i = 0; i < plan->n_cells; i++)
        if (plan->cells[i].state == SB_CELL_TODO) queue[nq++] = (ranked){i, sb_study_cell_cost(plan, &plan->cells[i])};
    qsort(queue, (size_t)nq, sizeof *queue, by_cost);
    total = nq;
    sb_study_job running[64];
    const double t_start = sb_now();
    bool stopping = false;
    msg m;
    while (!rc) {
        bool busy = false;
        if (!stopping && sb_signal_caught()) {
            /* start nothing more; idle workers are told so, busy ones stop on their signal */
            stopping = true;
            msg r = {.type = MSG_NO_MORE};
            for (int w = 1; w < ranks && !rc; w++) rc = send_msg(&r, w, TAG_TO_WORKER);
            if (rc) break;
        }
        int status, k;
        while ((k = reap(running, n_running, &status)) >= 0) {
            busy = true;
            int cell = running[k].cell;
            if (sb_study_cell_finished(plan, &running[k], status, false) &&
                sb_study_cell_start(plan, o, cell, &running[k]) == SB_OK)
                continue;
            if (plan->cells[cell].state == SB_CELL_TODO) {
                plan->cells[cell].state = SB_CELL_FAILED;
                sb_study_copy(plan->cells[cell].why, sizeof plan->cells[cell].why, sb_last_error());
            }
            sb_study_cell_print(plan, cell, ++done, total, t_start, running[k].resumed, 0);
            running[k] = running[--n_running];
        }
        while (!stopping && n_running < slots && qi < nq) {
            busy = true;
            sb_study_cell *c = &plan->cells[queue[qi].cell];
            fprintf(stderr, "study %s: start %s (%s) on rank 0\n", plan->cfg->name, c->id, c->spec);
            if (sb_study_cell_start(plan, o, queue[qi].cell, &running[n_running]) == SB_OK) n_running++;
            else {
                c->state = SB_CELL_FAILED;
                sb_study_copy(c->why, sizeof c->why, sb_last_error());
                sb_study_cell_print(plan, queue[qi].cell, ++done, total, t_start, false, 0);
            }
            qi++;
        }
        bool got;
        int src;
        size_t n;
        if ((rc = sb_dist_try_recv(&m, sizeof m, TAG_TO_BOSS, &got, &src, &n))) break;
        if (got) {
            busy = true;
            if (m.type == MSG_REQUEST) {
                msg r = {.type = MSG_NO_MORE};
                if (!serial && !stopping && qi < nq) {
                    sb_study_cell *c = &plan->cells[queue[qi].cell];
                    r.type = MSG_ASSIGN;
                    r.cell = queue[qi++].cell;
                    sb_study_copy(r.id, sizeof r.id, c->id);
                    fprintf(stderr, "study %s: start %s (%s) on rank %d\n", plan->cfg->name, c->id, c->spec, src);
                }
                rc = send_msg(&r, src, TAG_TO_WORKER);
            } else if (m.type == MSG_DONE) {
                sb_study_cell *c = m.cell >= 0 && m.cell < plan->n_cells ? &plan->cells[m.cell] : NULL;
                if (!c || strcmp(c->id, m.id))
                    rc = sb_error("rank %d reported cell %d (%s), which is not in the plan", src, m.cell, m.id);
                else {
                    c->state = m.state == SB_CELL_DONE ? SB_CELL_DONE : SB_CELL_FAILED;
                    c->wall_s = m.wall_s;
                    sb_study_copy(c->why, sizeof c->why, m.why);
                    sb_study_cell_print(plan, m.cell, ++done, total, t_start, m.resumed, src);
                }
            } else if (m.type == MSG_BYE) {
                workers--;
                if (m.why[0]) {
                    fprintf(stderr, "study %s: rank %d stopped: %s\n", plan->cfg->name, src, m.why);
                    sb_study_note(plan, "rank %d stopped: %.400s", src, m.why);
                }
            }
        }
        if (n_running == 0 && (stopping || (workers == 0 && qi >= nq))) break;
        if (!busy) nanosleep(&idle_pause, NULL);
    }
    /* a cell handed to a rank that stopped before reporting it */
    for (int i = 0; i < qi && !stopping; i++) {
        sb_study_cell *c = &plan->cells[queue[i].cell];
        if (c->state != SB_CELL_TODO) continue;
        c->state = SB_CELL_FAILED;
        sb_study_copy(c->why, sizeof c->why, "handed to a rank that stopped before reporting it");
    }
    free(queue);
    if (rc) return rc;
    if (stopping)
        return sb_error("interrupted by %s: the running cells saved their state; finished cells are kept and the "
                        "next study run resumes the rest",
                        sb_signal_caught() == SIGINT ? "SIGINT" : "SIGTERM");
    int failed = 0;
    for (int i = 0; i < plan->n_cells; i++) failed += plan->cells[i].state == SB_CELL_FAILED;
    if (failed) return sb_error("%s: %d of %d cells failed", plan->cfg->name, failed, total);
    return SB_OK;
}

int sb_study_run_cells_dist(sb_study_plan *plan, const sb_study_opts *o) {
    const sb_dist_info *d = sb_dist();
    int slots = plan->cfg->serial || o->jobs < 1 ? 1 : o->jobs;
    if (slots > 64) slots = 64;
    if (d->rank != 0) return worker(plan, o, slots);
    int total = 0, skipped = 0, already = 0;
    for (int i = 0; i < plan->n_cells; i++) {
        if (plan->cells[i].state == SB_CELL_TODO) total++;
        else if (plan->cells[i].state == SB_CELL_SKIP) skipped++;
        else if (plan->cells[i].state == SB_CELL_DONE) already++;
    }
    if (plan->cfg->serial)
        fprintf(stderr, "study %s: %d cells to run, %d already done, %d not applicable; timing cells: one at a time "
                        "on rank 0 (of %d), %d threads\n",
                plan->cfg->name, total, already, skipped, d->size, plan->threads);
    else
        fprintf(stderr, "study %s: %d cells to run, %d already done, %d not applicable; %d ranks, %d at a time on "
                        "each, %d threads each, largest first\n",
                plan->cfg->name, total, already, skipped, d->size, slots, plan->threads);
    return boss(plan, o, slots);
}
