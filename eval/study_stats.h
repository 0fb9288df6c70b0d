/* Small statistics for the study: means, percentiles and perplexity curves.
 * Kept apart from the commands so tests can check them against hand-computed values. */
#ifndef SB_STUDY_STATS_H
#define SB_STUDY_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Arithmetic mean; NAN when n == 0. */
double sb_stats_mean(const double *x, size_t n);
/* p-th percentile (p in [0, 100]) by linear interpolation between order statistics
 * (Hyndman-Fan type 7, numpy's default); x is not modified. NAN when n == 0 or p is out of
 * range or a copy cannot be allocated. */
double sb_stats_percentile(const double *x, size_t n, double p);

/* Windowed perplexity along a stream of per-token NLLs (nats), for log-x plots.
 * Bin edges grow geometrically from 0 to n_ref (n_bins of them at most) but a bin is never
 * narrower than min_width tokens, so the first bins are not single noisy tokens. Streams
 * of one plot share n_ref (the longest), hence the same bins; a shorter stream (n < n_ref)
 * stops at its last bin that is at least half full.
 * Bin b covers nll[edge_b, edge_{b+1}); x_mid[b] is its middle as a 1-based token count
 * and ppl[b] = exp(mean NLL of the bin). Returns the number of bins written (<= n_bins),
 * 0 when n == 0. */
int sb_stats_ppl_curve(const float *nll, int64_t n, int64_t n_ref, int n_bins, int64_t min_width, double *x_mid,
                       double *ppl);

#endif
