#include "engine/rng.h"

#include <math.h>

uint64_t sb_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sb_rng_seed(sb_rng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = sb_splitmix64(&st);
    r->has_spare = false;
    r->spare = 0.0;
}

void sb_rng_seed_stream(sb_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t st = stream;
    /* mix the stream id so streams 0,1,2.. of nearby seeds do not share states */
    sb_rng_seed(r, seed ^ sb_splitmix64(&st));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sb_rng_next(sb_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sb_rng_uniform(sb_rng *r) { return (double)(sb_rng_next(r) >> 11) * 0x1.0p-53; }
float sb_rng_uniformf(sb_rng *r) { return (float)(sb_rng_next(r) >> 40) * 0x1.0p-24f; }

uint64_t sb_rng_below(sb_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    /* reject the top partial block so every residue is equally likely */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = sb_rng_next(r);
    while (x >= limit);
    return x % n;
}

double sb_rng_normal(sb_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u1 = 1.0 - sb_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = sb_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double ang = 6.283185307179586476925 * u2;
    r->spare = rad * sin(ang);
    r->has_spare = true;
    return rad * cos(ang);
}

void sb_rng_fill_normal(sb_rng *r, float *out, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) out[i] = mean + std * (float)sb_rng_normal(r);
}
