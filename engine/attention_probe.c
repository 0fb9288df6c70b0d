#include "engine/attention_probe.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/policy.h"

typedef struct {
    float *maps;          /* [L, n, n] or NULL */
    double *share;        /* [L, H] sums over the counted queries */
    int H;
    int64_t n, t, q_from; /* t: the query of the current step */
} probe_ctx;

static void probe_record(void *user, int layer, const float *probs, const int64_t *slots, int cnt) {
    probe_ctx *p = user;
    const int H = p->H;
    if (p->maps) {
        float *row = p->maps + ((size_t)layer * p->n + p->t) * p->n;
        for (int i = 0; i < cnt; i++) {
            /* head mean in double, so it is the mean to float rounding whatever H is */
            double s = 0;
            for (int h = 0; h < H; h++) s += probs[(size_t)h * cnt + i];
            row[slots[i]] = (float)(s / H);
        }
    }
    /* slots are listed in ascending order, so position 0 (slot 0) can only be the first */
    if (p->t >= p->q_from && cnt > 0 && slots[0] == 0)
        for (int h = 0; h < H; h++) p->share[(size_t)layer * H + h] += probs[(size_t)h * cnt];
}

int sb_attention_probe_on(sb_backend *b, const sb_model *m, const int32_t *tokens, int64_t n, float *maps,
                          float *sink_share) {
    const sb_model_config *c = &m->cfg;
    const int L = c->n_layers, H = c->n_heads;
    if (n < 2) return sb_error("attention probe needs at least 2 tokens, got %lld", (long long)n);
    if (n > INT32_MAX) return sb_error("attention probe over %lld tokens is too long", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return sb_error("token %lld has id %d, outside the vocabulary of %d", (long long)i, (int)tokens[i],
                            c->vocab_size);
    size_t cells = 0;
    if (maps && (!sb_mul_size((size_t)n, (size_t)n, &cells) || !sb_mul_size(cells, (size_t)L, &cells) ||
                 !sb_mul_size(cells, sizeof(float), &cells)))
        return sb_error("attention maps over %lld tokens are too large", (long long)n);

    probe_ctx p = {.maps = maps, .H = H, .n = n, .q_from = n > SB_PROBE_SHARE_FROM ? SB_PROBE_SHARE_FROM : 1};
    p.share = calloc((size_t)L * H, sizeof(double));
    if (!p.share) return sb_error("out of memory for the attention probe over %lld tokens", (long long)n);
    if (maps) memset(maps, 0, cells);
    /* dense: token i in slot i at absolute position i; nothing moves, nothing is evicted */
    sb_policy_spec dense;
    int rc = sb_policy_parse("dense", &dense);
    sb_decoder *d = NULL;
    if (!rc) rc = b ? sb_decoder_new_on(&d, b, &dense, n) : sb_decoder_new(&d, m, &dense, n);
    if (rc == SB_OK) {
        sb_decoder_set_observer(d, probe_record, &p);
        for (int64_t t = 0; t < n && !rc; t++) {
            p.t = t;
            rc = sb_decoder_step(d, tokens[t], NULL);
        }
        sb_decoder_free(d);
        if (!rc && sink_share) {
            const double n_q = (double)(n - p.q_from);
            for (size_t i = 0; i < (size_t)L * H; i++) sink_share[i] = (float)(p.share[i] / n_q);
        }
    }
    free(p.share);
    return rc;
}

int sb_attention_probe(const sb_model *m, const int32_t *tokens, int64_t n, float *maps, float *sink_share) {
    return sb_attention_probe_on(NULL, m, tokens, n, maps, sink_share);
}
