/* Provenance of a result: which code, machine, threads and inputs produced it.
 * Attached as attributes to every result file (sb_provenance_to_h5) and as keys of every
 * JSON output (sb_provenance_to_json). */
#ifndef SB_PROVENANCE_H
#define SB_PROVENANCE_H

#include <cJSON.h>

#include "util/h5.h"

typedef struct {
    char git_rev[64];      /* "1a2b3c4", "1a2b3c4-dirty" or "unknown" */
    char hostname[128];
    char cpu_model[160];   /* /proc/cpuinfo "model name", "unknown" if absent */
    int cores;             /* online CPUs */
    int blas_threads;      /* openblas_get_num_threads() */
    int omp_threads;       /* omp_get_max_threads() */
    char blas_config[160]; /* openblas_get_config() */
    char date_utc[32];     /* ISO-8601, e.g. 2024-05-01T12:34:56Z */
    double loadavg1;       /* 1-minute load average when collected (-1 unknown): timings
                              taken while loadavg1 > cores are not comparable */
} sb_provenance;

/* Fill everything; the git revision is that of the checkout holding the running binary
 * (falling back to the current directory). Never fails: unknown fields say "unknown". */
void sb_provenance_collect(sb_provenance *p);

/* Short revision of the git checkout containing dir (+ "-dirty" when tracked files are
 * modified); "unknown" outside a checkout or without git. */
void sb_provenance_git_rev(const char *dir, char *out, size_t cap);
/* Reads the revision once and exports it as SINKBENCH_GIT_REV (unless set): a long run, and
 * every cell a study starts, then names the code that started it, not what is checked out
 * when it finishes. */
void sb_provenance_pin_git_rev(void);

/* sha256 of a model directory: one hash over config.json then model.safetensors, so a
 * change to either changes it. Error names the missing file. */
int sb_provenance_hash_model(const char *dir, char hex[65]);

/* Root attributes git_rev, hostname, cpu_model, cores, blas_threads, omp_threads,
 * blas_config, date_utc, loadavg1. */
int sb_provenance_to_h5(const sb_provenance *p, sb_h5 *f);
/* The same keys added to a JSON object. */
void sb_provenance_to_json(const sb_provenance *p, cJSON *obj);

#endif
