/* sinkbench study: run the experiments described by configs/<experiment>.ini and write the
 * report. run_all.sh drives it; each subcommand is also usable alone:
 *   study run     plan the cells, run the unfinished ones, collect results/<experiment>.h5
 *   study collect collect again from the finished cells (no running)
 *   study plan    print the cells and their commands
 *   study report  write results/REPORT.md and results/index.html */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "engine/backend.h"
#include "dist/dist.h"
#include "engine/common.h"
#include "eval/report.h"
#include "eval/study.h"
#include "util/signals.h"

#define CMD "study"

static void study_usage(FILE *f) {
    fprintf(f,
            "usage: sinkbench study run|collect|plan --config FILE.ini [options]\n"
            "       sinkbench study report --experiments \"NAME ...\" [--results DIR] [--command TEXT] [--wall-s S]\n"
            "  --mode smoke|quick|full  picks the key.smoke / key.quick / key.full values (default quick)\n"
            "  --results DIR        results directory (default results)\n"
            "  --models-dir DIR     where the default models live (default models)\n"
            "  --models \"A B\"       use these models instead of the config's default models\n"
            "  --model-kind TEXT    how the --models were made, shown in the report (e.g. \"smoke: random init\")\n"
            "  --data FILE          token stream instead of the config's data\n"
            "  --jobs N             cells run at the same time (default 1; timing experiments run alone)\n"
            "  --threads N          threads per cell (default: cores / jobs, and / the MPI ranks on the machine)\n"
            "  --device DEV         where the cells run: cpu, cuda or cuda:N (default: the config's\n"
            "                       [experiment] device, else cpu)\n"
            "  --force              redo finished cells\n"
            "under mpirun -np N (or srun), `study run` hands the cells to the ranks, largest first; each rank\n"
            "runs --jobs cells at a time; rank 0 prints and collects (docs/MPI.md)\n");
}

typedef struct {
    const char *sub, *config, *mode, *experiments, *command;
    double wall_s;
    sb_study_opts o;
} study_args;

static int study_parse(int argc, char **argv, study_args *a) {
    memset(a, 0, sizeof *a);
    a->o.jobs = 1;
    if (argc < 2) return sb_usage_error("missing subcommand (run, collect, plan or report)");
    a->sub = argv[1];
    if (!strcmp(a->sub, "--help") || !strcmp(a->sub, "-h")) {
        study_usage(stdout);
        exit(0);
    }
    if (strcmp(a->sub, "run") && strcmp(a->sub, "collect") && strcmp(a->sub, "plan") && strcmp(a->sub, "report"))
        return sb_usage_error("unknown subcommand '%s' (run, collect, plan or report)", a->sub);
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x;
        int rc = SB_OK;
        if (!strcmp(f, "--force")) {
            a->o.force = true;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            study_usage(stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) != 0) return sb_usage_error("unexpected argument '%s'", f);
        if (!v) return sb_usage_error("%s needs a value", f);
        i++;
        if (!strcmp(f, "--config")) a->config = v;
        else if (!strcmp(f, "--mode")) a->mode = v;
        else if (!strcmp(f, "--results")) a->o.results_dir = v;
        else if (!strcmp(f, "--models-dir")) a->o.models_dir = v;
        else if (!strcmp(f, "--models")) a->o.models = v;
        else if (!strcmp(f, "--data")) a->o.data = v;
        else if (!strcmp(f, "--model-kind")) a->o.model_kind = v;
        else if (!strcmp(f, "--experiments")) a->experiments = v;
        else if (!strcmp(f, "--command")) a->command = v;
        else if (!strcmp(f, "--wall-s")) {
            double w;
            rc = cli_parse_float(f, v, 0, 1e9, &w);
            a->wall_s = w;
        } else if (!strcmp(f, "--jobs")) {
            rc = cli_parse_int(f, v, 1, 64, &x);
            a->o.jobs = (int)x;
        } else if (!strcmp(f, "--threads")) {
            rc = cli_parse_int(f, v, 1, 4096, &x);
            a->o.threads = (int)x;
        } else if (!strcmp(f, "--device")) {
            const sb_backend_ops *ops;
            int index;
            a->o.device = v;
            rc = sb_backend_ops_for(v, &ops, &index);
        } else return sb_usage_error("unknown option '%s' (see sinkbench study --help)", f);
        if (rc) return rc;
    }
    if (strcmp(a->sub, "report") && !a->config) return sb_usage_error("--config FILE.ini is required");
    if (!strcmp(a->sub, "report") && !a->experiments) return sb_usage_error("--experiments \"NAME ...\" is required");
    return SB_OK;
}

static int study_report(const study_args *a) {
    char *list = strdup(a->experiments);
    const char *names[64];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(list, " ,", &save); t && n < 64; t = strtok_r(NULL, " ,", &save)) names[n++] = t;
    sb_report_opts ro = {.results_dir = a->o.results_dir, .command = a->command, .wall_s = a->wall_s};
    int rc = sb_report_write(names, n, &ro);
    free(list);
    if (!rc) printf("%s/REPORT.md\n", a->o.results_dir ? a->o.results_dir : "results");
    return rc;
}

static void print_plan(const sb_study_plan *p) {
    static const char *const state[] = {"todo", "done", "skip", "failed"};
    for (int i = 0; i < p->n_models; i++)
        printf("model %-20s %-28s %s %s\n", p->models[i].name, p->models[i].kind, p->models[i].dir,
               p->models[i].status == SB_MODEL_OK ? "" : p->models[i].why);
    for (int i = 0; i < p->n_cells; i++) {
        const sb_study_cell *c = &p->cells[i];
        printf("%-6s %s", state[c->state], c->id);
        if (c->state == SB_CELL_SKIP) printf("  (%s)", c->why);
        else
            for (int j = 0; j < c->argc; j++) printf("%s%s", j ? " " : "  ", c->argv[j]);
        printf("\n");
    }
    if (p->notes[0]) printf("notes:\n%s", p->notes);
}

int cmd_study(int argc, char **argv) {
    study_args a;
    int rc = study_parse(argc, argv, &a);
    if (rc) {
        if (argc <= 1) study_usage(stderr);
        return cli_fail(CMD, rc);
    }
    if (!strcmp(a.sub, "report")) return (rc = study_report(&a)) ? cli_fail(CMD, rc) : 0;

    sb_study_mode mode = SB_STUDY_QUICK;
    if (a.mode && sb_study_mode_parse(a.mode, &mode) != 0)
        return sb_usage_error("--mode: '%s' is not smoke, quick or full", a.mode), cli_fail(CMD, SB_ERR_USAGE);
    static char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return sb_error("cannot find the sinkbench binary (/proc/self/exe)"), cli_fail(CMD, SB_ERR);
    exe[n] = '\0';
    a.o.exe = exe;
    a.o.dry_run = !strcmp(a.sub, "plan");
    /* study run under an MPI launcher: the cells go to the ranks; each cell is a single process */
    bool dist = false, agreed = false, printed = false;
    if (!strcmp(a.sub, "run")) {
        if ((rc = sb_dist_init())) return cli_fail(CMD, rc);
        dist = sb_dist_active();
    }
    if (dist) {
        setenv("SINKBENCH_MPI", "0", 1);
        sb_signals_install(); /* the ranks wait for their cells to save (eval/study_dist.c) */
        a.o.node_ranks = sb_dist()->local_size;
        if (sb_dist()->rank != 0 && !freopen("/dev/null", "w", stdout))
            return sb_error("rank %d: cannot send stdout to /dev/null", sb_dist()->rank), cli_fail(CMD, SB_ERR);
    }

    sb_study_config *cfg = calloc(1, sizeof *cfg);
    sb_study_plan *plan = calloc(1, sizeof *plan);
    if (!cfg || !plan) return sb_error("out of memory"), cli_fail(CMD, SB_ERR);
    if ((rc = sb_study_config_load(cfg, a.config, mode))) goto done;
    rc = dist ? sb_study_dist_plan(plan, cfg, &a.o) : sb_study_plan_make(plan, cfg, &a.o);
    agreed = dist; /* from here every rank knows every failure, and rank 0 prints it */
    if (rc) goto done;
    if (!strcmp(a.sub, "plan")) {
        print_plan(plan);
        goto done;
    }
    int run_rc = SB_OK;
    if (dist) run_rc = sb_study_run_cells_dist(plan, &a.o);
    else if (!strcmp(a.sub, "run")) run_rc = sb_study_run_cells(plan, &a.o);
    else
        for (int i = 0; i < plan->n_cells; i++)
            if (plan->cells[i].state == SB_CELL_TODO) plan->cells[i].state = SB_CELL_FAILED,
                                                      sb_study_copy(plan->cells[i].why, sizeof plan->cells[i].why, "not run yet");
    char run_err[1024];
    sb_study_copy(run_err, sizeof run_err, run_rc ? sb_last_error() : "");
    /* the other ranks ran their cells and reported them to rank 0, which collects */
    if (dist && (sb_dist()->rank != 0 || sb_signal_caught())) {
        rc = sb_signal_caught() ? sb_signal_exit_status() : run_rc;
        if (sb_signal_caught() && sb_dist()->rank == 0) fprintf(stderr, "sinkbench study: %s\n", run_err);
        printed = true; /* the other ranks stay silent */
        goto done;
    }
    rc = sb_study_collect(plan, &a.o);
    if (!rc && run_rc) rc = sb_error("%s", run_err);

done:
    sb_study_plan_free(plan);
    sb_study_config_free(cfg);
    free(plan);
    free(cfg);
    if (rc && (printed || (agreed && sb_dist()->rank != 0))) return rc; /* rank 0 says it */
    return rc ? cli_fail(CMD, rc) : 0;
}
