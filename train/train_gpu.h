/* The GPU trainer: the whole-model forward, backward and AdamW step of train/model_train.c
 * and train/adamw.c on one CUDA device (`sinkbench train --device cuda`), for the run loop of
 * train_run.c. The master weights, gradients and Adam moments live on the GPU in fp32, in the
 * same single-block layout as sb_model params; matmuls run on cuBLAS with bf16 inputs and
 * fp32 accumulation (SB_COMPUTE_BF16, the default) or in fp32 (SB_COMPUTE_F32, for the
 * gradient checks against the CPU trainer). Every kernel is deterministic, so a step is
 * bit-reproducible on one GPU and a resume (upload of a checkpoint) continues bit-identically.
 *
 * Built with `make CUDA=1` (train/cuda/train_gpu.c); without CUDA every call fails with one
 * line saying so (train/train_gpu_none.c). */
#ifndef SB_TRAIN_GPU_H
#define SB_TRAIN_GPU_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/model.h"

typedef struct sb_train_gpu sb_train_gpu;

/* True when this binary was built with CUDA. */
int sb_train_gpu_available(void);

/* Open device `device` ("cuda" or "cuda:N") for model m's layout (m->params must be the one
 * fp32 block; the weights are not uploaded yet), micro-batches of up to B sequences of exactly
 * T positions, and the weight-decay mask decay[n_params]. Config limits as
 * sb_train_model_check_config. Errors name the flag. */
int sb_train_gpu_open(sb_train_gpu **out, const sb_model *m, const uint8_t *decay, int B, int T, const char *device,
                      sb_compute compute);
void sb_train_gpu_close(sb_train_gpu *g);

/* Bytes the device holds for this configuration (weights, gradients, moments, activations). */
uint64_t sb_train_gpu_bytes(const sb_train_gpu *g);
/* The GPU's name, and its dense bf16 tensor-core peak in FLOP/s (0 if unknown), for MFU. */
const char *sb_train_gpu_name(const sb_train_gpu *g);
double sb_train_gpu_peak_flops(const sb_train_gpu *g);

/* Copy weights and moments host -> device (adam_m/adam_v may be NULL: zeros), or back. */
int sb_train_gpu_upload(sb_train_gpu *g, const float *params, const float *adam_m, const float *adam_v);
int sb_train_gpu_download(sb_train_gpu *g, float *params, float *adam_m, float *adam_v);
/* The accumulated gradients, host copy [n_params] (tests). */
int sb_train_gpu_download_grad(sb_train_gpu *g, float *grad);

int sb_train_gpu_zero_grad(sb_train_gpu *g);
/* As sb_train_forward: B <= the opened B, T == the opened T; ids validated on the host. */
int sb_train_gpu_forward(sb_train_gpu *g, const int32_t *tokens, const int32_t *targets, int B, int T,
                         float *loss, int *n_valid);
/* As sb_train_backward: grad += dloss * d(mean loss of the last forward)/d(params). */
int sb_train_gpu_backward(sb_train_gpu *g, float dloss);
/* As sb_train_sink_share_accumulate for the last forward; returns the query count, -1 on error. */
int64_t sb_train_gpu_sink_share(sb_train_gpu *g, int first_query, double *sum);
/* Global-norm clipping and AdamW step t (1-based) as train_run.c + sb_adamw_update;
 * *grad_norm (may be NULL) gets the norm before clipping. */
int sb_train_gpu_adamw(sb_train_gpu *g, int64_t t, double lr, double beta1, double beta2, double eps,
                       double weight_decay, double clip, double *grad_norm);

/* Model FLOPs of one training token at sequence length T (PaLM's 6N + 12 L H D T, N without
 * the embedding table unless it is tied), for MFU. */
double sb_train_flops_per_token(const sb_model_config *c, int T);

#endif
