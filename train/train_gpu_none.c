/* Without CUDA (plain `make`): the GPU trainer's entry points say so in one line; the FLOP
 * count, which the CPU trainer's log uses too, is here for both builds. */
#include "train/train_gpu.h"

#include <stddef.h>

#include "engine/common.h"

double sb_train_flops_per_token(const sb_model_config *c, int T) {
    double C = c->dim, L = c->n_layers, F = c->ffn_dim, V = c->vocab_size;
    double HD = (double)c->n_heads * c->head_dim, KD = (double)c->n_kv_heads * c->head_dim;
    double per_layer = C * (HD + 2 * KD) + HD * C + 3 * C * F;
    /* the embedding lookup is no matmul; a tied table is the head's matmul */
    double n = L * per_layer + V * C;
    return 6.0 * n + 12.0 * L * HD * T;
}

#ifndef SB_HAVE_CUDA
#define NO_CUDA() sb_usage_error("--device cuda: this binary was built without CUDA (build with make CUDA=1)")

int sb_train_gpu_available(void) { return 0; }
int sb_train_gpu_open(sb_train_gpu **out, const sb_model *m, const uint8_t *decay, int B, int T, const char *device,
                      sb_compute compute) {
    (void)m, (void)decay, (void)B, (void)T, (void)device, (void)compute;
    *out = NULL;
    return NO_CUDA();
}
void sb_train_gpu_close(sb_train_gpu *g) { (void)g; }
uint64_t sb_train_gpu_bytes(const sb_train_gpu *g) { return (void)g, 0; }
const char *sb_train_gpu_name(const sb_train_gpu *g) { return (void)g, ""; }
double sb_train_gpu_peak_flops(const sb_train_gpu *g) { return (void)g, 0.0; }
int sb_train_gpu_upload(sb_train_gpu *g, const float *p, const float *m, const float *v) {
    (void)g, (void)p, (void)m, (void)v;
    return NO_CUDA();
}
int sb_train_gpu_download(sb_train_gpu *g, float *p, float *m, float *v) {
    (void)g, (void)p, (void)m, (void)v;
    return NO_CUDA();
}
int sb_train_gpu_download_grad(sb_train_gpu *g, float *grad) { return (void)g, (void)grad, NO_CUDA(); }
int sb_train_gpu_zero_grad(sb_train_gpu *g) { return (void)g, NO_CUDA(); }
int sb_train_gpu_forward(sb_train_gpu *g, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                         int *n_valid) {
    (void)g, (void)tokens, (void)targets, (void)B, (void)T, (void)loss, (void)n_valid;
    return NO_CUDA();
}
int sb_train_gpu_backward(sb_train_gpu *g, float dloss) { return (void)g, (void)dloss, NO_CUDA(); }
int64_t sb_train_gpu_sink_share(sb_train_gpu *g, int first_query, double *sum) {
    (void)g, (void)first_query, (void)sum;
    return NO_CUDA(), -1;
}
int sb_train_gpu_adamw(sb_train_gpu *g, int64_t t, double lr, double beta1, double beta2, double eps,
                       double weight_decay, double clip, double *grad_norm) {
    (void)g, (void)t, (void)lr, (void)beta1, (void)beta2, (void)eps, (void)weight_decay, (void)clip, (void)grad_norm;
    return NO_CUDA();
}
#endif
