/* Helpers the policy files share: spec fields and numbers. Private to engine/policy*. */
#ifndef SB_POLICY_UTIL_H
#define SB_POLICY_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine/policy.h"

/* A decimal number spanning exactly [s, end): digits only, no sign or spaces, at most
 * SB_POLICY_MAX_LEN. False on anything else. */
static inline bool sb_parse_len(const char *s, const char *end, int64_t *out) {
    if (s == end) return false;
    int64_t v = 0;
    for (const char *c = s; c < end; c++) {
        if (*c < '0' || *c > '9') return false;
        v = v * 10 + (*c - '0');
        if (v > SB_POLICY_MAX_LEN) return false; /* also stops overflow */
    }
    *out = v;
    return true;
}

static inline bool sb_field_is(const char *b, const char *e, const char *word) {
    size_t n = strlen(word);
    return (size_t)(e - b) == n && memcmp(b, word, n) == 0;
}

static inline int64_t sb_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t sb_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Slots for capacity_hint tokens, at least 16, at most full. */
static inline int64_t sb_slots_for_hint(int64_t capacity_hint, int64_t full) {
    int64_t n = capacity_hint > 16 ? capacity_hint : 16;
    return full > 0 && n > full ? full : n;
}

/* The fields a policy uses (sb_check_fields): a spec built by hand gets the same limits as a
 * parsed one. */
enum { SB_FIELD_W = 1, SB_FIELD_K = 2, SB_FIELD_H = 4, SB_FIELD_PREFIX = 8 };
/* W >= 1 when used; K, H and a prefix only where used. Usage errors name p->spec; wname is the
 * window's letter in messages ("W", "C"). */
int sb_check_fields(const sb_policy_spec *p, unsigned used, const char *wname);

/* The sinks plug-in (policy_sinks.c): K slots + a ring of W+1, reused by window and learned. */
int64_t sb_sinks_initial_slots(const sb_policy_spec *p, int64_t capacity_hint);
int64_t sb_sinks_moving(const sb_policy_spec *p);
int sb_sinks_init(sb_kv_state *s, int64_t capacity_hint);
int64_t sb_sinks_reserve(sb_kv_state *s);
void sb_sinks_evict(sb_kv_state *s);
int64_t sb_sinks_capacity(const sb_policy_spec *p);
void sb_sinks_exact_plan(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out);
/* W of a spec's single W field: NULL or the reason. */
const char *sb_parse_window(const char *b, const char *e, int64_t *w);

#endif
