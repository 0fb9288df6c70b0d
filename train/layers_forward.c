/* Training-side forwards that engine/ops.h does not provide in a batched, state-keeping form. */
#include "train/train_layers.h"

#include <math.h>

#include "engine/cpu/ops.h"

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

/* log sum exp of one row: float exps (the row's max subtracted), double sum */
float train_row_lse(const float *x, int V) {
    float m = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > m) m = x[i];
    double s = 0.0;
    for (int i = 0; i < V; i++) s += expf(x[i] - m);
    return m + (float)log(s);
}

void crossentropy_forward(float *losses, float *lse, const float *logits, const int32_t *targets, int N, int V) {
#pragma omp parallel for schedule(static) if (N > 4)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        if (targets[n] < 0) {
            losses[n] = 0.0f;
            if (lse) lse[n] = train_row_lse(x, V);
            continue;
        }
        float l = train_row_lse(x, V);
        if (lse) lse[n] = l;
        losses[n] = l - x[targets[n]];
    }
}
