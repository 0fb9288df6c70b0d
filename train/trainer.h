/* Internal: the state of one training run, shared by the run loop (train_run.c), the
 * checkpoint (checkpoint.c) and the HDF5 log (train_log.c). Not part of the public API. */
#ifndef SB_TRAINER_H
#define SB_TRAINER_H

#include <stdint.h>

#include "engine/model.h"
#include "engine/rng.h"
#include "train/train.h"

/* One row per held-out evaluation. */
typedef struct {
    int64_t n, cap;
    int n_layers, n_heads;
    int64_t *step;
    double *train_loss;          /* mean training loss since the previous evaluation */
    double *heldout_loss;        /* NAN without held-out data */
    double *tokens_per_s;
    double *lr;
    double *sink_share;          /* [cap, n_layers, n_heads] */
} sb_train_history;

typedef struct {
    const sb_train_config *cfg;
    sb_model model;
    sb_train_model tm;
    float *adam_m, *adam_v;      /* [n_params] */
    uint8_t *decay;              /* [n_params] */
    sb_rng rng;                  /* draws the training windows */
    int64_t step;                /* optimizer steps done */
    float *step_loss;            /* [cfg->steps] training loss of each step */
    int64_t n_train_tokens;      /* recorded so a resume on other data is refused */
    sb_train_history hist;
} sb_trainer;

/* Append one evaluation row (sink[n_layers*n_heads]). */
void sb_train_history_push(sb_train_history *h, int64_t step, double train_loss, double heldout_loss,
                           double tokens_per_s, double lr, const double *sink);
void sb_train_history_free(sb_train_history *h);

/* Weights, Adam moments, step, RNG, loss history and the config values a resume must match,
 * in one CRC-checked file written atomically. */
int sb_train_checkpoint_save(const sb_trainer *t, const char *path);
/* Restore into t (model, tm and moments already allocated for t->cfg). A missing, truncated,
 * corrupt or incompatible file is an error naming it (and the mismatching config key). */
int sb_train_checkpoint_load(sb_trainer *t, const char *path);

/* Rewrite the HDF5 log (atomically) from t's history. */
int sb_train_log_write(const sb_trainer *t, const char *path);

/* One training sample of c->seq_len positions from data[start ..]: input ids tok and target
 * ids tgt (-1 = no prediction), by the variant ([<sink>] first for sink_token, whose own
 * target is -1 or, with sink_target = first, data[start]). */
void sb_train_make_sample(const sb_train_config *c, const int32_t *data, int64_t start, int32_t *tok, int32_t *tgt);

#endif
