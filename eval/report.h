/* The study report: results/REPORT.md and results/index.html, rendered from the experiment
 * files results/<experiment>.h5 (tables, finding, notes, figures, models, provenance) and the
 * paper's numbers kept in each experiment's INI ([paper NAME] sections, stored in the file). */
#ifndef SB_REPORT_H
#define SB_REPORT_H

typedef struct {
    const char *results_dir;   /* default "results" */
    const char *command;       /* the command line that produced the results, shown verbatim */
    double wall_s;             /* total time of that command, <= 0 when unknown */
} sb_report_opts;

/* experiments[n] in report order; an experiment without a complete results file gets a
 * section saying so. Both files are written atomically. */
int sb_report_write(const char *const *experiments, int n, const sb_report_opts *o);

#endif
