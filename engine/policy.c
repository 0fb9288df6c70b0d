/* Policy spec parsing and the plug-in registry. */
#include "engine/policy.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

/* Parse a decimal number spanning exactly [s, end): digits only, no sign or spaces, at
 * most SB_POLICY_MAX_LEN. Returns false on anything else. */
static bool parse_len(const char *s, const char *end, int64_t *out) {
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

/* Split s at ':' into at most max fields; returns the count, or -1 if there are more. */
static int split_fields(const char *s, const char **beg, const char **end, int max) {
    int n = 0;
    const char *p = s;
    for (;;) {
        if (n == max) return -1;
        const char *q = strchr(p, ':');
        beg[n] = p;
        end[n] = q ? q : p + strlen(p);
        n++;
        if (!q) return n;
        p = q + 1;
    }
}

static bool field_is(const char *b, const char *e, const char *word) {
    size_t n = strlen(word);
    return (size_t)(e - b) == n && memcmp(b, word, n) == 0;
}

int sb_policy_parse(const char *s, sb_policy_spec *out) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return sb_usage_error("empty cache policy (expected dense, window:W, sinks:K:W, "
                                         "sinks:K:W:newline, learned:W or recompute:W)");
    const char *b[5], *e[5];
    int nf = split_fields(s, b, e, 4);
    int64_t k = 0, w = 0;
    const char *why = NULL;
    if (nf < 0) {
        why = "too many fields";
    } else if (field_is(b[0], e[0], "dense")) {
        if (nf != 1) why = "dense takes no arguments";
        else {
            out->kind = SB_POLICY_DENSE;
            snprintf(out->spec, sizeof out->spec, "dense");
        }
    } else if (field_is(b[0], e[0], "window") || field_is(b[0], e[0], "learned") ||
               field_is(b[0], e[0], "recompute")) {
        if (nf != 2) why = "expected one argument W";
        else if (!parse_len(b[1], e[1], &w)) why = "W must be a whole number";
        else if (w < 1) why = "W must be at least 1";
        else if (field_is(b[0], e[0], "window")) {
            out->kind = SB_POLICY_SINKS;
            snprintf(out->spec, sizeof out->spec, "window:%" PRId64, w);
        } else if (field_is(b[0], e[0], "learned")) {
            out->kind = SB_POLICY_SINKS;
            out->n_sinks = 1;
            out->prefix = SB_PREFIX_SINK_TOKEN;
            snprintf(out->spec, sizeof out->spec, "learned:%" PRId64, w);
        } else {
            out->kind = SB_POLICY_RECOMPUTE;
            snprintf(out->spec, sizeof out->spec, "recompute:%" PRId64, w);
        }
    } else if (field_is(b[0], e[0], "sinks")) {
        if (nf != 3 && nf != 4) why = "expected sinks:K:W or sinks:K:W:newline";
        else if (!parse_len(b[1], e[1], &k)) why = "K must be a whole number";
        else if (!parse_len(b[2], e[2], &w)) why = "W must be a whole number";
        else if (w < 1) why = "W must be at least 1";
        else if (nf == 4 && !field_is(b[3], e[3], "newline")) why = "the only variant is :newline";
        else {
            out->kind = SB_POLICY_SINKS;
            out->n_sinks = k;
            if (nf == 4) out->prefix = SB_PREFIX_NEWLINE;
            snprintf(out->spec, sizeof out->spec, "sinks:%" PRId64 ":%" PRId64 "%s", k, w,
                     nf == 4 ? ":newline" : "");
        }
    } else {
        why = "unknown policy name";
    }
    if (why) {
        memset(out, 0, sizeof *out);
        return sb_usage_error("bad cache policy '%.80s': %s (expected dense, window:W, sinks:K:W, "
                              "sinks:K:W:newline, learned:W or recompute:W; K >= 0, 1 <= W <= %" PRId64 ")",
                              s, why, SB_POLICY_MAX_LEN);
    }
    out->window = w;
    return SB_OK;
}

int sb_policy_check_model(const sb_policy_spec *p, const sb_model_config *c) {
    /* specs built by hand (not parsed) get the same limits */
    const char *name = p->spec[0] ? p->spec : "(unnamed)";
    if (p->kind != SB_POLICY_DENSE && p->kind != SB_POLICY_SINKS && p->kind != SB_POLICY_RECOMPUTE)
        return sb_usage_error("cache policy '%s': unknown kind", name);
    if (p->kind != SB_POLICY_DENSE && (p->window < 1 || p->window > SB_POLICY_MAX_LEN))
        return sb_usage_error("cache policy '%s': W must be in [1, %lld]", name, (long long)SB_POLICY_MAX_LEN);
    if (p->n_sinks < 0 || p->n_sinks > SB_POLICY_MAX_LEN || (p->kind != SB_POLICY_SINKS && p->n_sinks != 0))
        return sb_usage_error("cache policy '%s': bad number of sinks", name);
    if (p->prefix != SB_PREFIX_NONE && (p->kind != SB_POLICY_SINKS || (p->prefix != SB_PREFIX_SINK_TOKEN &&
                                                                      p->prefix != SB_PREFIX_NEWLINE)))
        return sb_usage_error("cache policy '%s': a prefix needs a sinks policy", name);
    if (p->prefix == SB_PREFIX_SINK_TOKEN && p->n_sinks != 1)
        return sb_usage_error("cache policy '%s': the learned sink is exactly one token", name);
    return sb_policy_check_prefix(p, c);
}

/* ------------------------------------------------------------ plug-in registry */

const sb_kv_policy *sb_kv_policy_for(const sb_policy_spec *p) {
    switch (p->kind) {
    case SB_POLICY_DENSE: return &sb_kv_policy_dense;
    case SB_POLICY_SINKS: return &sb_kv_policy_sinks;
    case SB_POLICY_RECOMPUTE: return &sb_kv_policy_recompute;
    }
    return NULL;
}

int sb_kv_state_init(sb_kv_state *s, const sb_policy_spec *p, int64_t capacity_hint) {
    memset(s, 0, sizeof *s);
    s->spec = *p;
    const sb_kv_policy *pol = sb_kv_policy_for(p);
    if (!pol) return sb_usage_error("unknown cache policy kind in '%s'", p->spec);
    int rc = pol->init(s, capacity_hint);
    if (rc) sb_kv_state_free(s);
    return rc;
}

void sb_kv_state_free(sb_kv_state *s) {
    const sb_kv_policy *pol = sb_kv_policy_for(&s->spec);
    if (pol && pol->free) pol->free(s);
    free(s->slot_token);
    free(s->slot_pos);
    s->slot_token = s->slot_pos = NULL;
    s->n_slots = 0;
}

int sb_kv_state_resize(sb_kv_state *s, int64_t n_slots) {
    size_t bytes;
    if (n_slots < 1 || !sb_mul_size((size_t)n_slots, sizeof(int64_t), &bytes))
        return sb_error("cache policy '%s': cannot hold %" PRId64 " slots", s->spec.spec, n_slots);
    int64_t *tok = realloc(s->slot_token, bytes);
    if (!tok) return sb_error("cache policy '%s': out of memory for %" PRId64 " slots", s->spec.spec, n_slots);
    s->slot_token = tok;
    int64_t *pos = realloc(s->slot_pos, bytes);
    if (!pos) return sb_error("cache policy '%s': out of memory for %" PRId64 " slots", s->spec.spec, n_slots);
    s->slot_pos = pos;
    for (int64_t i = s->n_slots; i < n_slots; i++) {
        s->slot_token[i] = -1;
        s->slot_pos[i] = 0;
    }
    s->n_slots = n_slots;
    return SB_OK;
}

void sb_kv_state_clear(sb_kv_state *s) {
    for (int64_t i = 0; i < s->n_slots; i++) s->slot_token[i] = -1;
    s->n_fed = 0;
    s->n_filled = 0;
}
