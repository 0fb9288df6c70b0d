/* AdamW with decoupled weight decay, the learning-rate schedule and gradient clipping. */
#include "train/train.h"

#include <math.h>
#include <stdlib.h>

#include "engine/common.h"

double sb_train_lr(const sb_train_config *c, int64_t step) {
    if (step < c->warmup) return c->lr * (double)(step + 1) / (double)c->warmup;
    int64_t decay_steps = (int64_t)c->steps - 1 - c->warmup;
    if (decay_steps <= 0) return c->lr;
    double progress = (double)(step - c->warmup) / (double)decay_steps;
    if (progress > 1.0) progress = 1.0;
    return c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(M_PI * progress));
}

uint8_t *sb_train_decay_mask(const sb_model *m) {
    uint8_t *mask = calloc_check(m->n_params, 1);
    int nt = sb_model_tensor_count(&m->cfg);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(&m->cfg, m, t);
    /* matrices (embeddings, projections, head) decay; vectors (norm gains, biases, sink
     * logits) do not: shrinking them towards 0 changes what the layer computes */
    for (int i = 0; i < nt; i++)
        if (t[i].ndim == 2)
            for (size_t j = 0; j < t[i].numel; j++) mask[t[i].offset + j] = 1;
    free(t);
    return mask;
}

/* Fixed block size for the norm reduction: the blocks (not the threads) fix the order. */
#define NORM_BLOCK 65536

double sb_grad_global_norm(const float *g, size_t n) {
    size_t nblk = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double *part = malloc_check((nblk ? nblk : 1) * sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nblk; b++) {
        size_t i0 = b * NORM_BLOCK, i1 = i0 + NORM_BLOCK < n ? i0 + NORM_BLOCK : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)g[i] * g[i];
        part[b] = s;
    }
    double s = 0.0;
    for (size_t b = 0; b < nblk; b++) s += part[b];
    free(part);
    return sqrt(s);
}

void sb_adamw_update(float *p, const float *g, float *m, float *v, const uint8_t *mask, size_t n, int64_t t,
                     double lr, double beta1, double beta2, double eps, double weight_decay, float grad_scale) {
    const float b1 = (float)beta1, b2 = (float)beta2;
    const float bc1 = (float)(1.0 - pow(beta1, (double)t)), bc2 = (float)(1.0 - pow(beta2, (double)t));
    const float flr = (float)lr, feps = (float)eps, decay = (float)(lr * weight_decay);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * grad_scale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float pi = p[i];
        if (mask[i]) pi -= decay * pi;
        p[i] = pi - flr * (mi / bc1) / (sqrtf(vi / bc2) + feps);
    }
}
