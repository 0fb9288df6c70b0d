/* Deterministic PRNG: xoshiro256** seeded through splitmix64, with Box-Muller normals.
 * Same seed -> same stream on every platform and compiler (no libc rand, no floating-point
 * tricks that depend on the math library beyond log/sqrt/cos/sin in the normals). */
#ifndef SB_RNG_H
#define SB_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
    double spare;      /* second Box-Muller value */
    bool has_spare;
} sb_rng;

/* One splitmix64 step: advances *state and returns a well-mixed 64-bit value. */
uint64_t sb_splitmix64(uint64_t *state);
void sb_rng_seed(sb_rng *r, uint64_t seed);
/* An independent stream derived from (seed, stream), e.g. one per tensor or per thread. */
void sb_rng_seed_stream(sb_rng *r, uint64_t seed, uint64_t stream);
uint64_t sb_rng_next(sb_rng *r);
/* Uniform in [0, 1) with 53 (double) or 24 (float) random bits. */
double sb_rng_uniform(sb_rng *r);
float sb_rng_uniformf(sb_rng *r);
/* Uniform integer in [0, n) without modulo bias; n >= 1. */
uint64_t sb_rng_below(sb_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
double sb_rng_normal(sb_rng *r);
/* out[n] = mean + std * N(0, 1). */
void sb_rng_fill_normal(sb_rng *r, float *out, size_t n, float mean, float std);

#endif
