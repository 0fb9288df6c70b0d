/* Policy specs through the registry, and the decode-mode state every plug-in shares. */
#include "engine/policy.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/policy_util.h"

#define MAX_FIELDS 6

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

const char *sb_policy_syntax_list(void) {
    static char list[512];
    if (!list[0]) {
        size_t off = 0;
        for (int i = 0; sb_policy_registry[i]; i++)
            off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", sb_policy_registry[i]->syntax);
    }
    return list;
}

int sb_policy_parse(const char *s, sb_policy_spec *out) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return sb_usage_error("empty cache policy (expected %s)", sb_policy_syntax_list());
    const char *b[MAX_FIELDS], *e[MAX_FIELDS];
    int nf = split_fields(s, b, e, MAX_FIELDS - 1);
    const char *why = NULL;
    if (nf < 0) {
        why = "too many fields";
    } else {
        const sb_policy_def *def = NULL;
        for (int i = 0; sb_policy_registry[i] && !def; i++)
            if (sb_field_is(b[0], e[0], sb_policy_registry[i]->name)) def = sb_policy_registry[i];
        if (!def) why = "unknown policy name";
        else {
            out->def = def;
            why = def->parse(out, nf - 1, b + 1, e + 1);
        }
    }
    if (why) {
        memset(out, 0, sizeof *out);
        return sb_usage_error("bad cache policy '%.80s': %s (expected %s; K, H >= 0, 1 <= W <= %" PRId64 ")", s, why,
                              sb_policy_syntax_list(), SB_POLICY_MAX_LEN);
    }
    return SB_OK;
}

int sb_policy_check_model(const sb_policy_spec *p, const sb_model_config *c) {
    /* specs built by hand (not parsed) get the same limits */
    const char *name = p->spec[0] ? p->spec : "(unnamed)";
    bool known = false;
    for (int i = 0; sb_policy_registry[i]; i++) known = known || sb_policy_registry[i] == p->def;
    if (!p->def || !known) return sb_usage_error("cache policy '%s': unknown kind", name);
    if (p->n_sinks < 0 || p->n_sinks > SB_POLICY_MAX_LEN || p->heavy < 0 || p->heavy > SB_POLICY_MAX_LEN)
        return sb_usage_error("cache policy '%s': bad number of sinks", name);
    if (p->window < 0 || p->window > SB_POLICY_MAX_LEN)
        return sb_usage_error("cache policy '%s': W must be in [1, %lld]", name, (long long)SB_POLICY_MAX_LEN);
    if (p->def->check) {
        int rc = p->def->check(p, c);
        if (rc) return rc;
    }
    return SB_OK;
}

int sb_check_fields(const sb_policy_spec *p, unsigned used, const char *wname) {
    if ((used & SB_FIELD_W) && p->window < 1)
        return sb_usage_error("cache policy '%s': %s must be in [1, %lld]", p->spec, wname, (long long)SB_POLICY_MAX_LEN);
    if ((!(used & SB_FIELD_K) && p->n_sinks != 0) || (!(used & SB_FIELD_H) && p->heavy != 0))
        return sb_usage_error("cache policy '%s': bad number of sinks", p->spec);
    if (!(used & SB_FIELD_PREFIX) && p->prefix != SB_PREFIX_NONE)
        return sb_usage_error("cache policy '%s': a prefix needs a sinks policy", p->spec);
    return SB_OK;
}

bool sb_policy_is(const sb_policy_spec *p, const char *name) { return p->def && !strcmp(p->def->name, name); }

int64_t sb_policy_capacity(const sb_policy_spec *p) { return p->def ? p->def->capacity(p) : 0; }

int64_t sb_policy_cache_size(const sb_policy_spec *p) { return p->def ? p->def->cache_size(p) : 0; }

void sb_policy_label(const sb_policy_spec *p, char *out, size_t cap) {
    if (p->def && p->def->label) p->def->label(p, out, cap);
    else snprintf(out, cap, "%s", p->spec);
}

int64_t sb_policy_prefix_len(const sb_policy_spec *p) {
    return p->def && p->def->prefix_len ? p->def->prefix_len(p) : 0;
}

void sb_policy_prefix_tokens(const sb_policy_spec *p, const sb_model_config *c, int32_t *out) {
    if (p->def && p->def->prefix_tokens) p->def->prefix_tokens(p, c, out);
}

bool sb_policy_exact_plan(const sb_policy_spec *p, const sb_model_config *c, sb_exact_plan *out) {
    if (!p->def || !p->def->exact_plan) return false;
    p->def->exact_plan(p, c, out);
    return true;
}

/* ------------------------------------------------------------ decode-mode state */

int sb_policy_maps(const sb_policy_spec *p, int n_layers) {
    return p->def && p->def->per_layer && n_layers > 1 ? n_layers : 1;
}

int64_t sb_policy_moving_slots(const sb_policy_spec *p) {
    return p->def && p->def->moving ? p->def->moving(p) : 0;
}

int64_t sb_kv_state_initial_slots(const sb_policy_spec *p, int64_t capacity_hint) {
    return p->def ? p->def->initial_slots(p, capacity_hint) : 0;
}

int sb_kv_state_init(sb_kv_state *s, const sb_policy_spec *p, int n_layers, int n_heads, int64_t capacity_hint) {
    memset(s, 0, sizeof *s);
    if (!p->def) return sb_usage_error("unknown cache policy kind in '%s'", p->spec);
    s->spec = *p;
    s->n_maps = sb_policy_maps(p, n_layers);
    s->n_heads = n_heads > 0 ? n_heads : 1;
    s->n_moving = sb_policy_moving_slots(p);
    s->new_slot = calloc_check((size_t)s->n_maps, sizeof(int64_t));
    int rc = p->def->init(s, capacity_hint);
    if (rc) sb_kv_state_free(s);
    return rc;
}

void sb_kv_state_free(sb_kv_state *s) {
    if (s->spec.def && s->spec.def->free) s->spec.def->free(s);
    free(s->slot_token);
    free(s->slot_pos);
    free(s->new_slot);
    free(s->score);
    s->slot_token = s->slot_pos = s->new_slot = NULL;
    s->score = NULL;
    s->n_slots = 0;
}

/* Grow one [n_maps][old] array to [n_maps][n], new entries `fill`. */
static bool regrow(void **arr, size_t elem, int n_maps, int64_t old, int64_t n, const void *fill) {
    size_t bytes;
    if (!sb_mul_size((size_t)n_maps * (size_t)n, elem, &bytes)) return false;
    char *a = realloc(*arr, bytes);
    if (!a) return false;
    *arr = a;
    /* maps are contiguous: move them apart from the last one down */
    for (int m = n_maps - 1; m >= 0; m--) {
        char *dst = a + (size_t)m * (size_t)n * elem, *src = a + (size_t)m * (size_t)old * elem;
        if (m > 0 && old > 0) memmove(dst, src, (size_t)old * elem);
        for (int64_t i = old; i < n; i++) memcpy(dst + (size_t)i * elem, fill, elem);
    }
    return true;
}

int sb_kv_state_resize(sb_kv_state *s, int64_t n_slots) {
    size_t bytes;
    if (n_slots < 1 || !sb_mul_size((size_t)n_slots * (size_t)(s->n_maps > 0 ? s->n_maps : 1), sizeof(int64_t), &bytes))
        return sb_error("cache policy '%s': cannot hold %" PRId64 " slots", s->spec.spec, n_slots);
    if (s->n_maps < 1) s->n_maps = 1;
    const int64_t free_tok = -1, zero = 0;
    const double fzero = 0.0;
    bool ok = regrow((void **)&s->slot_token, sizeof(int64_t), s->n_maps, s->n_slots, n_slots, &free_tok) &&
              regrow((void **)&s->slot_pos, sizeof(int64_t), s->n_maps, s->n_slots, n_slots, &zero) &&
              (!s->spec.def->observes ||
               regrow((void **)&s->score, sizeof(double), s->n_maps, s->n_slots, n_slots, &fzero));
    if (!ok) return sb_error("cache policy '%s': out of memory for %" PRId64 " slots", s->spec.spec, n_slots);
    s->n_slots = n_slots;
    return SB_OK;
}

void sb_kv_state_clear(sb_kv_state *s) {
    for (size_t i = 0; i < (size_t)s->n_maps * (size_t)s->n_slots; i++) s->slot_token[i] = -1;
    s->n_fed = 0;
    s->n_filled = 0;
}

void sb_kv_rank_evict(sb_kv_state *s, int m, int64_t slot) {
    int64_t *tok = sb_kv_tokens(s, m), *pos = sb_kv_pos(s, m);
    const int64_t gone = pos[slot];
    tok[slot] = -1;
    if (s->score) s->score[(size_t)m * s->n_slots + slot] = 0.0;
    for (int64_t i = 0; i < s->n_slots; i++)
        if (tok[i] >= 0 && pos[i] < gone) pos[i]++;
}

int64_t sb_kv_rank_reserve(sb_kv_state *s, int64_t max_slots) {
    const int64_t t = s->n_fed;
    /* the query follows the last one; the first token sits at 0 */
    const int64_t qpos = t == 0 ? 0 : s->query_pos + 1;
    if (s->n_filled >= s->n_slots) {
        if (s->n_slots >= max_slots) {
            sb_error("cache policy '%s': all %" PRId64 " slots in use", s->spec.spec, s->n_slots);
            return -1;
        }
        int64_t grow = s->n_slots * 2 < max_slots ? s->n_slots * 2 : max_slots;
        if (sb_kv_state_resize(s, grow)) return -1;
    }
    for (int m = 0; m < s->n_maps; m++) {
        int64_t *tok = sb_kv_tokens(s, m), *pos = sb_kv_pos(s, m);
        int64_t slot = 0;
        while (slot < s->n_slots && tok[slot] >= 0) slot++;
        tok[slot] = t;
        pos[slot] = qpos;
        if (s->score) s->score[(size_t)m * s->n_slots + slot] = 0.0;
        s->new_slot[m] = slot;
    }
    s->query_pos = qpos;
    s->n_fed++;
    s->n_filled++;
    return s->new_slot[0];
}
