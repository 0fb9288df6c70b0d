#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

int sb_sampler_init(sb_sampler *s, int32_t vocab_size, double temperature, double top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (vocab_size < 1) return sb_usage_error("sampler: vocab_size %d must be at least 1", vocab_size);
    if (!(temperature >= 0 && temperature <= 100))
        return sb_usage_error("--temperature: %g is out of range [0, 100]", temperature);
    if (!(top_p > 0 && top_p <= 1)) return sb_usage_error("--top-p: %g is out of range (0, 1]", top_p);
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->top_p = top_p;
    sb_rng_seed(&s->rng, seed);
    s->probs = malloc_check((size_t)vocab_size * sizeof *s->probs);
    s->order = malloc_check((size_t)vocab_size * sizeof *s->order);
    return SB_OK;
}

void sb_sampler_free(sb_sampler *s) {
    if (!s) return;
    free(s->probs);
    free(s->order);
    s->probs = NULL;
    s->order = NULL;
}

int32_t sb_sampler_argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* qsort has no context argument: the probabilities being sorted are passed through this. */
static _Thread_local const float *sort_probs;

static int cmp_desc(const void *a, const void *b) {
    int32_t ia = *(const int32_t *)a, ib = *(const int32_t *)b;
    float pa = sort_probs[ia], pb = sort_probs[ib];
    if (pa != pb) return pa < pb ? 1 : -1;
    return (ia > ib) - (ia < ib); /* a total order, so the result does not depend on qsort */
}

/* Fill s->probs with softmax(logits / T) and s->order[0..k) with the nucleus, most probable
 * first (or every id in id order when top_p == 1). Returns k; *mass = probability kept. */
static int32_t nucleus(sb_sampler *s, const float *logits, double *mass) {
    int32_t n = s->vocab_size;
    float mx = logits[0];
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n; i++) {
        s->probs[i] = expf((float)((logits[i] - mx) / s->temperature));
        sum += s->probs[i];
    }
    if (!(sum > 0) || !isfinite(sum)) { /* NaN logits: fall back to the argmax */
        s->order[0] = sb_sampler_argmax(logits, n);
        *mass = 1;
        memset(s->probs, 0, (size_t)n * sizeof *s->probs);
        s->probs[s->order[0]] = 1;
        return 1;
    }
    for (int32_t i = 0; i < n; i++) s->probs[i] = (float)(s->probs[i] / sum);
    if (s->top_p >= 1.0) {
        for (int32_t i = 0; i < n; i++) s->order[i] = i;
        *mass = 1;
        return n;
    }
    /* A token below (1 - p) / (n - 1) can never be in the nucleus: all such tokens together
     * hold less than 1 - p, so the others reach p first. Skipping them keeps the sort short. */
    float cutoff = n > 1 ? (float)((1.0 - s->top_p) / (n - 1)) : 0.0f;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (s->probs[i] >= cutoff) s->order[m++] = i;
    sort_probs = s->probs;
    qsort(s->order, (size_t)m, sizeof *s->order, cmp_desc);
    double cum = 0;
    int32_t k = m;
    for (int32_t i = 0; i < m; i++) {
        cum += s->probs[s->order[i]];
        if (cum >= s->top_p) {
            k = i + 1;
            break;
        }
    }
    if (k == m) { /* rounding kept cum just under p: everything that passed the cutoff */
        cum = 0;
        for (int32_t i = 0; i < m; i++) cum += s->probs[s->order[i]];
    }
    *mass = cum;
    return k;
}

int32_t sb_sampler_probs(sb_sampler *s, const float *logits, float *probs_out) {
    int32_t n = s->vocab_size;
    if (s->temperature == 0.0) {
        int32_t best = sb_sampler_argmax(logits, n);
        memset(probs_out, 0, (size_t)n * sizeof *probs_out);
        probs_out[best] = 1;
        return 1;
    }
    double mass;
    int32_t k = nucleus(s, logits, &mass);
    if (probs_out != s->probs) memcpy(probs_out, s->probs, (size_t)n * sizeof *probs_out);
    if (k < n) {
        /* zero everything, then put back the kept ids (order[] holds them) renormalised */
        float *kept = malloc_check((size_t)k * sizeof *kept);
        for (int32_t i = 0; i < k; i++) kept[i] = probs_out[s->order[i]];
        memset(probs_out, 0, (size_t)n * sizeof *probs_out);
        for (int32_t i = 0; i < k; i++) probs_out[s->order[i]] = (float)(kept[i] / mass);
        free(kept);
    } else {
        for (int32_t i = 0; i < n; i++) probs_out[i] = (float)(probs_out[i] / mass);
    }
    return k;
}

int32_t sb_sampler_sample(sb_sampler *s, const float *logits) {
    if (s->temperature == 0.0) return sb_sampler_argmax(logits, s->vocab_size);
    double mass;
    int32_t k = nucleus(s, logits, &mass);
    double u = sb_rng_uniform(&s->rng) * mass, cum = 0;
    for (int32_t i = 0; i < k; i++) {
        cum += s->probs[s->order[i]];
        if (u < cum) return s->order[i];
    }
    return s->order[k - 1];
}
