/* One cell as a child process, for the study's runners (study_run.c: jobs at a time in one
 * process; study_dist.c: cells handed out to MPI ranks). Internal to eval/. */
#ifndef SB_STUDY_CELLS_H
#define SB_STUDY_CELLS_H

#include <stdbool.h>

#include "eval/study.h"

typedef struct {
    int pid;
    int cell;
    double t0;
    bool resumed;                /* started with --resume from <cell>.h5.resume */
} sb_study_job;

/* Start cell i (its log begins with the command; an interrupted cell continues with --resume). */
int sb_study_cell_start(sb_study_plan *plan, const sb_study_opts *o, int i, sb_study_job *j);
/* A cell's process ended with `status`: its state, key and reason. True when it must start
 * again from scratch (its resume state was refused and removed); quiet: no message for that. */
bool sb_study_cell_finished(sb_study_plan *plan, sb_study_job *j, int status, bool quiet);
/* The progress line of a finished cell ("[done/total] id ok|FAILED ..."), naming the rank that
 * ran it when rank >= 0, and for a failure its reason and log. */
void sb_study_cell_print(const sb_study_plan *plan, int cell, int done, int total, double t_start, bool resumed,
                         int rank);
/* A waitpid status as an exit status (128 + signal when killed). */
int sb_study_exit_code(int wstatus);

#endif
