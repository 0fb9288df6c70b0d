/* A stream's predictions sharded over MPI ranks: the part of `sinkbench ppl` that knows about
 * ranks (the run sequence's meeting points are in cli_run.c, MPI itself in dist/).
 *
 * Rank r scores the predictions [from, to) of its shard (dist/shard.h: contiguous, of equal
 * cost including each rank's halo, boundaries on the chunk grid); the engine starts that
 * evaluation sb_eval_halo() tokens early with the true sinks, so its values are those of a
 * whole-stream run. cli_shard_gather brings every rank's values to rank 0 (MPI_Gatherv) with
 * what each rank measured; rank 0 then writes the one result, laid out as a single process's,
 * plus attributes naming the ranks, their shards, halos and the halo's share of the work. */
#ifndef SB_CLI_SHARD_H
#define SB_CLI_SHARD_H

#include <cJSON.h>
#include <stdint.h>

#include "dist/shard.h"
#include "util/h5.h"
#include "util/resume_state.h"

/* What each rank measured, gathered on every rank. */
typedef struct {
    double wall_s, peak_rss_mb;
    int64_t resumed;          /* predictions its resume state held */
    char host[64];
    char device[32];
} cli_shard_rank;

typedef struct {
    int rank, ranks;          /* 0 of 1 when not sharded */
    sb_shard *shards;         /* [ranks] */
    int64_t from, to;         /* this rank's predictions */
    double halo_share;        /* sb_shard_overhead: the share of the forwarded tokens a whole run would not compute */
    double speedup_model;     /* the cost model's speedup: a whole run's cost over the largest shard's */
    cli_shard_rank *per;      /* [ranks], after cli_shard_gather */
} cli_shard;

/* This rank's shard of n_pred predictions (rank and ranks from dist/dist.h). */
int cli_shard_plan(cli_shard *s, const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode, int64_t n_pred,
                   int64_t chunk);
/* The shard in the resume state's inputs hash: the rank count and this rank's segment. */
void cli_shard_hash(const cli_shard *s, sb_resume_hash *h);
/* The test hook SB_TEST_FAIL_RANK=R (rank R's part fails with an error) or R:kill (rank R
 * dies by SIGKILL): SB_OK on every other rank. */
int cli_shard_test_fail(const cli_shard *s);
/* Collective: nll[from, to) of every rank into rank 0's nll, and every rank's measurements. */
int cli_shard_gather(cli_shard *s, float *nll, const cli_shard_rank *mine);
/* The longest wall time and the resumed predictions over the ranks (after gather). */
double cli_shard_wall_s(const cli_shard *s);
int64_t cli_shard_resumed(const cli_shard *s);
/* The result's extra attributes (mpi_*) and JSON object ("mpi"). */
int cli_shard_h5(const cli_shard *s, sb_h5 *f);
void cli_shard_json(const cli_shard *s, cJSON *o);
void cli_shard_free(cli_shard *s);

#endif
