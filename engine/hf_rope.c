#include "engine/hf_rope.h"

#include <math.h>

#include "engine/cpu/ops.h"

#define MAX_HALF 1024 /* sb_model_config_validate caps rotary_dim at 2048 */

void sb_rope_inv_freq(double *inv_freq, const sb_model_config *c, int64_t seq_len) {
    const int rd = c->rotary_dim, half = rd / 2;
    double theta = c->rope_theta, factor = c->rope_factor;
    if (c->rope_scaling == SB_ROPE_SCALING_DYNAMIC && seq_len > c->rope_orig_ctx && rd > 2)
        theta *= pow(factor * (double)seq_len / c->rope_orig_ctx - (factor - 1.0), (double)rd / (rd - 2));
    for (int j = 0; j < half; j++) inv_freq[j] = pow(theta, -2.0 * j / rd);
    if (c->rope_scaling == SB_ROPE_SCALING_LINEAR) {
        for (int j = 0; j < half; j++) inv_freq[j] /= factor;
    } else if (c->rope_scaling == SB_ROPE_SCALING_LLAMA3) {
        const double orig = c->rope_orig_ctx, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
        const double lo_wavelen = orig / lo, hi_wavelen = orig / hi;
        for (int j = 0; j < half; j++) {
            double f = inv_freq[j], wavelen = 2.0 * M_PI / f;
            if (wavelen > lo_wavelen) {
                inv_freq[j] = f / factor;
            } else if (wavelen >= hi_wavelen) {
                double smooth = (orig / wavelen - lo) / (hi - lo);
                inv_freq[j] = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
    }
}

void sb_rope_table_fill(float *cos_tab, float *sin_tab, int64_t pos0, int n_pos, const sb_model_config *c) {
    const int half = c->rotary_dim / 2;
    if (c->rope_scaling == SB_ROPE_SCALING_NONE || half > MAX_HALF) {
        rope_table_fill(cos_tab, sin_tab, pos0, n_pos, c->rotary_dim, c->rope_theta);
        return;
    }
    double inv[MAX_HALF];
    sb_rope_inv_freq(inv, c, c->max_ctx);
#pragma omp parallel for if (n_pos > 64)
    for (int p = 0; p < n_pos; p++) {
        double pos = (double)(pos0 + p);
        for (int j = 0; j < half; j++) {
            cos_tab[(size_t)p * half + j] = (float)cos(pos * inv[j]);
            sin_tab[(size_t)p * half + j] = (float)sin(pos * inv[j]);
        }
    }
}
