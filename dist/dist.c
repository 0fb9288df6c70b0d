#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "util/signals.h"

static sb_dist_info g_info = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1, .mpi = false};

const sb_dist_info *sb_dist(void) { return &g_info; }
bool sb_dist_active(void) { return g_info.size > 1; }

static const char *env(const char *k) {
    const char *v = getenv(k);
    return v && *v ? v : NULL;
}

/* The world size a launcher announces, 0 when it does not say (PMIx), -1 when no launcher
 * started this process. */
static long launched_size(void) {
    const char *s = env("OMPI_COMM_WORLD_SIZE");
    if (!s) s = env("PMI_SIZE");
    if (!s && env("PMIX_RANK")) s = env("SLURM_STEP_NUM_TASKS");
    if (s) return strtol(s, NULL, 10);
    return env("PMIX_RANK") || env("PMI_RANK") ? 0 : -1;
}

/* SINKBENCH_MPI=0 / 1 decide; otherwise MPI exactly when a launcher started us. */
static bool want_mpi(void) {
    const char *v = env("SINKBENCH_MPI");
    if (v && !strcmp(v, "0")) return false;
    if (v && !strcmp(v, "1")) return true;
    return launched_size() >= 0;
}

#ifdef SB_HAVE_MPI
#include <mpi.h>
#include <time.h>

static int g_abandoned; /* the signal that made this rank leave a collective unfinished */
static char g_lib[MPI_MAX_LIBRARY_VERSION_STRING] = "none";

bool sb_dist_built(void) { return true; }
const char *sb_dist_library(void) { return g_lib; }

static int mpi_fail(const char *call, int err) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", err);
    return sb_error("MPI: %s failed: %s", call, s);
}
#define CHECK(call, expr)                                                                                              \
    do {                                                                                                               \
        int e_ = (expr);                                                                                               \
        if (e_ != MPI_SUCCESS) return mpi_fail(call, e_);                                                              \
    } while (0)

static int as_int(size_t n, const char *what, int *out) {
    if (n > (size_t)0x7fffffff) return sb_error("MPI: %s of %zu elements is too large for one message", what, n);
    *out = (int)n;
    return SB_OK;
}

static void finalize(void) {
    int done = 0;
    MPI_Finalized(&done);
    /* after an abandoned collective MPI_Finalize could wait forever for the missing rank */
    if (!done && !g_abandoned) MPI_Finalize();
}

int sb_dist_abandoned(void) { return g_abandoned; }

/* Wait for a collective, polling: a signal that arrives while this rank waits (the launcher
 * ending the job because a rank died, or a cancel) makes it give up at once, so it can still
 * say so and clean up before the launcher's SIGKILL (Open MPI: a second later). A rank whose
 * own part a signal stopped (it saved its state first) waits STOPPED_WAIT_S for the others,
 * then gives up too: they may never come. */
#define STOPPED_WAIT_S 0.5
static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int wait_for(MPI_Request *rq, const char *call) {
    const int at_entry = sb_signal_caught();
    const double t0 = seconds();
    const struct timespec pause = {.tv_sec = 0, .tv_nsec = 200000};
    for (;;) {
        int done = 0;
        int e = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) return mpi_fail(call, e);
        if (done) return SB_OK;
        if (sb_signal_caught() && (!at_entry || seconds() - t0 > STOPPED_WAIT_S)) {
            g_abandoned = sb_signal_caught();
            return sb_error("%s while waiting for the other ranks", g_abandoned == SIGINT ? "interrupted by SIGINT"
                                                                    : g_abandoned == SIGTERM ? "stopped by SIGTERM"
                                                                                             : "stopped by a signal");
        }
        nanosleep(&pause, NULL);
    }
}

int sb_dist_init(void) {
    if (g_info.mpi || !want_mpi()) return SB_OK;
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    /* the forward's OpenMP threads never call MPI: only the main thread does */
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return sb_error("MPI: MPI_Init_thread failed");
    g_info.mpi = true;
    atexit(finalize);
    CHECK("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    CHECK("MPI_Comm_rank", MPI_Comm_rank(MPI_COMM_WORLD, &g_info.rank));
    CHECK("MPI_Comm_size", MPI_Comm_size(MPI_COMM_WORLD, &g_info.size));
    MPI_Comm node;
    CHECK("MPI_Comm_split_type",
          MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_info.rank, MPI_INFO_NULL, &node));
    MPI_Comm_rank(node, &g_info.local_rank);
    MPI_Comm_size(node, &g_info.local_size);
    MPI_Comm_free(&node);
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(v, &len) == MPI_SUCCESS) {
        v[strcspn(v, ",\n")] = '\0';
        snprintf(g_lib, sizeof g_lib, "%s", v);
    }
    return SB_OK;
}

int sb_dist_barrier(void) {
    if (!g_info.mpi) return SB_OK;
    MPI_Request rq;
    CHECK("MPI_Ibarrier", MPI_Ibarrier(MPI_COMM_WORLD, &rq));
    return wait_for(&rq, "MPI_Ibarrier");
}

int sb_dist_bcast(void *buf, size_t n, int root) {
    if (!g_info.mpi) return SB_OK;
    int k = 0;
    int rc = as_int(n, "a broadcast", &k);
    if (rc) return rc;
    MPI_Request rq;
    CHECK("MPI_Ibcast", MPI_Ibcast(buf, k, MPI_BYTE, root, MPI_COMM_WORLD, &rq));
    return wait_for(&rq, "MPI_Ibcast");
}

int sb_dist_allgather(const void *mine, size_t n, void *all) {
    if (!g_info.mpi) {
        memmove(all, mine, n);
        return SB_OK;
    }
    int k = 0;
    int rc = as_int(n, "an allgather", &k);
    if (rc) return rc;
    MPI_Request rq;
    CHECK("MPI_Iallgather", MPI_Iallgather(mine, k, MPI_BYTE, all, k, MPI_BYTE, MPI_COMM_WORLD, &rq));
    return wait_for(&rq, "MPI_Iallgather");
}

int sb_dist_gather_ranges_f32(float *buf, const int64_t *from, const int64_t *to, int root) {
    if (!g_info.mpi) return SB_OK;
    const int n = g_info.size;
    int *counts = calloc((size_t)n, sizeof *counts), *displs = calloc((size_t)n, sizeof *displs);
    int rc = counts && displs ? SB_OK : sb_error("MPI: out of memory gathering %d ranks", n);
    for (int r = 0; r < n && !rc; r++) {
        if (from[r] < 0 || to[r] < from[r]) rc = sb_error("MPI: rank %d's range [%lld, %lld) is reversed", r,
                                                          (long long)from[r], (long long)to[r]);
        else if (!(rc = as_int((size_t)to[r], "a gathered stream", &displs[r]))) {
            displs[r] = (int)from[r];
            counts[r] = (int)(to[r] - from[r]);
        }
    }
    if (!rc) {
        const int me = g_info.rank;
        MPI_Request rq;
        int e = MPI_Igatherv(me == root ? MPI_IN_PLACE : (void *)(buf + from[me]), counts[me], MPI_FLOAT, buf, counts,
                             displs, MPI_FLOAT, root, MPI_COMM_WORLD, &rq);
        rc = e != MPI_SUCCESS ? mpi_fail("MPI_Igatherv", e) : wait_for(&rq, "MPI_Igatherv");
    }
    free(counts);
    free(displs);
    return rc;
}

int sb_dist_send(const void *buf, size_t n, int dest, int tag) {
    if (!g_info.mpi) return sb_error("MPI: no rank %d to send to (a single process)", dest);
    int k = 0;
    int rc = as_int(n, "a message", &k);
    if (rc) return rc;
    CHECK("MPI_Send", MPI_Send(buf, k, MPI_BYTE, dest, tag, MPI_COMM_WORLD));
    return SB_OK;
}

int sb_dist_try_recv(void *buf, size_t cap, int tag, bool *got, int *src, size_t *n) {
    *got = false;
    if (!g_info.mpi) return SB_OK;
    int flag = 0, count = 0;
    MPI_Status st;
    CHECK("MPI_Iprobe", MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st));
    if (!flag) return SB_OK;
    CHECK("MPI_Get_count", MPI_Get_count(&st, MPI_BYTE, &count));
    if (count < 0 || (size_t)count > cap)
        return sb_error("MPI: a message of %d bytes from rank %d is larger than expected (%zu)", count, st.MPI_SOURCE,
                        cap);
    CHECK("MPI_Recv", MPI_Recv(buf, count, MPI_BYTE, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
    *got = true;
    *src = st.MPI_SOURCE;
    *n = (size_t)count;
    return SB_OK;
}

#else /* ------------------------------------------------------------ built without MPI */

bool sb_dist_built(void) { return false; }
int sb_dist_abandoned(void) { return 0; }
const char *sb_dist_library(void) { return "none"; }

int sb_dist_init(void) {
    if (!want_mpi()) return SB_OK;
    long n = launched_size();
    if (n == 1) return SB_OK;
    if (n > 1)
        return sb_error("started as one of %ld MPI ranks, but this sinkbench is built without MPI (install Open MPI "
                        "with scripts/install_deps.sh, then make MPI=1)",
                        n);
    return sb_error("started by an MPI launcher (or SINKBENCH_MPI=1), but this sinkbench is built without MPI "
                    "(install Open MPI with scripts/install_deps.sh, then make MPI=1)");
}

int sb_dist_barrier(void) { return SB_OK; }
int sb_dist_bcast(void *buf, size_t n, int root) {
    (void)buf, (void)n, (void)root;
    return SB_OK;
}
int sb_dist_allgather(const void *mine, size_t n, void *all) {
    memmove(all, mine, n);
    return SB_OK;
}
int sb_dist_gather_ranges_f32(float *buf, const int64_t *from, const int64_t *to, int root) {
    (void)buf, (void)from, (void)to, (void)root;
    return SB_OK;
}
int sb_dist_send(const void *buf, size_t n, int dest, int tag) {
    (void)buf, (void)n, (void)tag;
    return sb_error("MPI: no rank %d to send to (built without MPI)", dest);
}
int sb_dist_try_recv(void *buf, size_t cap, int tag, bool *got, int *src, size_t *n) {
    (void)buf, (void)cap, (void)tag, (void)src, (void)n;
    *got = false;
    return SB_OK;
}

#endif
