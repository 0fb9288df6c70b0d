/* Ranks of an MPI launch (mpirun, mpiexec, srun): one sinkbench process per rank.
 *
 * This is the only place that knows about MPI. Built with it (`make MPI=1`, the default when
 * mpicc is found) dist.c wraps the few MPI calls sinkbench makes; built without it (`make
 * MPI=0`) the same functions describe a single process of rank 0 of 1, so no other file needs
 * an #ifdef. Two commands use it: `ppl` (one stream sharded over the ranks, cli/cli_shard.h)
 * and `study run` (cells handed out to the ranks, eval/study_dist.c).
 *
 * sb_dist_init() starts MPI only when a launcher started this process (its environment has
 * OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK or PMI_SIZE), so the same binary run by hand is
 * a plain single process and never touches the MPI runtime. SINKBENCH_MPI=0 keeps a process
 * out of MPI even under a launcher (the study sets it for the cells its ranks start: they
 * are single processes); SINKBENCH_MPI=1 starts MPI without a launcher (a singleton).
 * MPI_Finalize runs at exit.
 *
 * Errors: the world communicator returns errors (MPI_ERRORS_RETURN) and every call here
 * returns SB_OK or an sb_error() line naming the MPI call and MPI's own message. A rank that
 * dies is noticed by the launcher, which ends the job: it signals the other ranks (Open MPI:
 * SIGTERM, SIGKILL a second later). The collectives wait by polling, so a rank signalled while
 * it waits for the others gives up with an error (sb_dist_abandoned()) and can still say so;
 * a rank that was signalled before it began to wait gives up after half a second. */
#ifndef SB_DIST_H
#define SB_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;             /* 0 and 1 outside MPI */
    int local_rank, local_size; /* among the ranks on this node (MPI_COMM_TYPE_SHARED) */
    bool mpi;                   /* MPI was started */
} sb_dist_info;

/* Whether this binary was built with MPI. */
bool sb_dist_built(void);
/* Start MPI if this process was launched as a rank (see above); idempotent. Without MPI
 * built in, a launch of more than one rank is an error that says how to build with it. */
int sb_dist_init(void);
/* The ranks (rank 0 of 1 before sb_dist_init or outside MPI). */
const sb_dist_info *sb_dist(void);
/* More than one rank. */
bool sb_dist_active(void);
/* "Open MPI v4.1.4" (the library's version string, first line), or "none". */
const char *sb_dist_library(void);

/* Collectives over every rank (with one rank they copy or do nothing). A signal caught while
 * one waits for the other ranks ends the wait with an error. */
int sb_dist_barrier(void);
int sb_dist_bcast(void *buf, size_t n, int root);
/* all[size * n] receives every rank's n bytes, in rank order, on every rank. */
int sb_dist_allgather(const void *mine, size_t n, void *all);
/* buf has the same length on every rank; rank r's buf[from[r], to[r]) goes to the same place
 * of root's buf. */
int sb_dist_gather_ranges_f32(float *buf, const int64_t *from, const int64_t *to, int root);

/* The signal that ended a collective's wait on this rank (0: none): MPI is not finalized then. */
int sb_dist_abandoned(void);

/* Point to point (the study's cell dispatch): small messages of at most cap bytes. */
int sb_dist_send(const void *buf, size_t n, int dest, int tag);
/* A message with this tag from any rank, if one has arrived: *got, its source and length. */
int sb_dist_try_recv(void *buf, size_t cap, int tag, bool *got, int *src, size_t *n);

#endif
