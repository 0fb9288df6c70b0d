#include "eval/study_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double sb_stats_mean(const double *x, size_t n) {
    if (n == 0) return NAN;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double sb_stats_percentile(const double *x, size_t n, double p) {
    if (n == 0 || !(p >= 0.0 && p <= 100.0)) return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s) return NAN;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)floor(h);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double v = s[lo] + (h - (double)lo) * (s[hi] - s[lo]);
    free(s);
    return v;
}

int sb_stats_ppl_curve(const float *nll, int64_t n, int64_t n_ref, int n_bins, int64_t min_width, double *x_mid,
                       double *ppl) {
    if (n <= 0 || n_bins <= 0) return 0;
    if (n_ref < n) n_ref = n;
    if (min_width < 1) min_width = 1;
    double ratio = pow((double)n_ref, 1.0 / n_bins);
    int out = 0;
    int64_t start = 0;
    for (int b = 1; b <= n_bins && start < n; b++) {
        int64_t end = b == n_bins ? n_ref : (int64_t)llround(pow(ratio, b));
        if (end < start + min_width) end = start + min_width;
        if (end > n_ref || n_ref - end < min_width / 2) end = n_ref; /* no sliver of a last bin */
        if (end > n) {
            if (n - start < (end - start + 1) / 2 && out > 0) break; /* less than half a bin left */
            end = n;
        }
        double s = 0.0;
        for (int64_t i = start; i < end; i++) s += nll[i];
        x_mid[out] = 0.5 * (double)(start + end) + 0.5;
        ppl[out] = exp(s / (double)(end - start));
        out++;
        start = end;
    }
    return out;
}
