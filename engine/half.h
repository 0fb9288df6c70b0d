/* fp16 (IEEE binary16) and bf16 <-> fp32 conversion, bit-exact: round to nearest even,
 * overflow to inf, subnormals, NaN kept NaN (quieted, sign and top payload bits kept).
 * Header-only so hot loops inline it. Array versions take raw bytes (checkpoint data need
 * not be 2-byte aligned) in little-endian order, the host order on every supported target. */
#ifndef SB_HALF_H
#define SB_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t sb_f32_bits(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}
static inline float sb_bits_f32(uint32_t x) {
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static inline float sb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return sb_bits_f32(sign);
        /* subnormal half: normalise into an fp32 normal */
        uint32_t e = 113;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return sb_bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
    }
    if (exp == 31) return sb_bits_f32(sign | 0x7f800000u | (mant << 13));
    return sb_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static inline uint16_t sb_f32_to_f16(float f) {
    uint32_t x = sb_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf, or NaN forced quiet so a payload in the low bits survives */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? (0x200u | ((ax >> 13) & 0x3ffu)) : 0u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                    /* below 2^-14: half subnormal */
        if (ax <= 0x33000000u) return sign;                    /* <= 2^-25 rounds (ties even) to 0 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24: value in units of 2^-24 is m >> shift */
        uint32_t h = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (ax - 0x38000000u) >> 13; /* rebias 127 -> 15 */
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++; /* a carry correctly bumps the exponent */
    return (uint16_t)(sign | h);
}

static inline float sb_bf16_to_f32(uint16_t b) { return sb_bits_f32((uint32_t)b << 16); }

static inline uint16_t sb_f32_to_bf16(float f) {
    uint32_t x = sb_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* out[n] from n little-endian 2-byte values at in (any alignment). */
static inline void sb_f16_to_f32_array(float *out, const void *in, size_t n) {
    const unsigned char *p = (const unsigned char *)in;
    for (size_t i = 0; i < n; i++) out[i] = sb_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}
static inline void sb_bf16_to_f32_array(float *out, const void *in, size_t n) {
    const unsigned char *p = (const unsigned char *)in;
    for (size_t i = 0; i < n; i++) out[i] = sb_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}
/* n values to n little-endian 2-byte values at out (any alignment). */
static inline void sb_f32_to_f16_array(void *out, const float *in, size_t n) {
    unsigned char *p = (unsigned char *)out;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = sb_f32_to_f16(in[i]);
        p[2 * i] = (unsigned char)(h & 0xff);
        p[2 * i + 1] = (unsigned char)(h >> 8);
    }
}
static inline void sb_f32_to_bf16_array(void *out, const float *in, size_t n) {
    unsigned char *p = (unsigned char *)out;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = sb_f32_to_bf16(in[i]);
        p[2 * i] = (unsigned char)(h & 0xff);
        p[2 * i + 1] = (unsigned char)(h >> 8);
    }
}

#endif
