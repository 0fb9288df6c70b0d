/* Training-side forwards that engine/ops.h does not provide in a batched, state-keeping form. */
#include "train/train_layers.h"

#include <math.h>

#include "engine/ops.h"

void train_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int N, int T, int NH, int D,
                        sb_rope_style style) {
    int half = D / 2;
#pragma omp parallel for schedule(static) if (N > 8)
    for (int n = 0; n < N; n++) {
        int t = n % T;
        rope_apply_table(x + (size_t)n * NH * D, cos_tab + (size_t)t * half, sin_tab + (size_t)t * half, NH, D, D,
                         style);
    }
}

void crossentropy_forward(float *losses, const float *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for schedule(static) if (N > 4)
    for (int n = 0; n < N; n++)
        losses[n] = targets[n] < 0 ? 0.0f : (float)nll_from_logits(logits + (size_t)n * V, V, targets[n]);
}
