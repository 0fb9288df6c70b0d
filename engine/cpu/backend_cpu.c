/* The cpu backend: the forward of engine/cpu/forward.c behind engine/backend.h. Weights are
 * used where the model holds them (fp32, or bf16/fp16 converted inside the matmuls). */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/cpu/forward.h"
#include "engine/cpu/ops.h"

struct sb_exact {
    sb_chunk_state st;
};

struct sb_slots {
    sb_slot_cache c;
};

static int cpu_open(sb_backend *b, const sb_backend_opts *o) {
    if (o->compute != SB_COMPUTE_AUTO && o->compute != SB_COMPUTE_F32)
        return sb_usage_error("--compute %s: the cpu backend computes in f32", sb_compute_name(o->compute));
    b->compute = SB_COMPUTE_F32;
    snprintf(b->device, sizeof b->device, "cpu");
    if (o->threads > 0) b->ops->set_threads(b, o->threads);
    return SB_OK;
}

static void cpu_close(sb_backend *b) { (void)b; }

int sb_host_threads(int n) {
    if (n > 0) {
        openblas_set_num_threads(n);
        omp_set_num_threads(n);
        return n;
    }
    return openblas_get_num_threads();
}

void sb_host_thread_info(int *blas_threads, int *omp_threads, char *blas_config, size_t cap) {
    if (blas_threads) *blas_threads = openblas_get_num_threads();
    if (omp_threads) *omp_threads = omp_get_max_threads();
    if (blas_config && cap) {
        const char *c = openblas_get_config();
        snprintf(blas_config, cap, "%s", c ? c : "unknown");
    }
}

static int cpu_set_threads(sb_backend *b, int n) {
    (void)b;
    return sb_host_threads(n);
}

static uint64_t cpu_device_weight_bytes(const sb_model_config *c, sb_dtype stored, sb_compute compute) {
    (void)c;
    (void)stored;
    (void)compute;
    return 0;
}

static uint64_t cpu_exact_bytes(const sb_model_config *c, int64_t K, int64_t W, int max_T, int64_t band_cap) {
    size_t b = sb_chunk_state_bytes(c, K, W, max_T, band_cap);
    return b ? (uint64_t)b : UINT64_MAX;
}

static int cpu_exact_new(sb_backend *b, sb_exact **out, int64_t K, int64_t W, int max_T, int64_t band_cap) {
    sb_exact *s = calloc_check(1, sizeof *s);
    int rc = sb_chunk_state_init(&s->st, b->m, K, W, max_T, band_cap);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return SB_OK;
}

static void cpu_exact_reset(sb_exact *s) { sb_chunk_state_reset(&s->st); }

static int cpu_exact_seek(sb_exact *s, int64_t pos) { return sb_chunk_seek(&s->st, pos); }

static int cpu_exact_forward(sb_exact *s, const int32_t *tokens, int T, int64_t pos0, int from, const int32_t *targets,
                             float *out) {
    int rc = sb_chunk_forward(&s->st, tokens, T, pos0, from);
    if (rc || from >= T) return rc;
    const int V = s->st.m->cfg.vocab_size;
    const float *logits = s->st.ws.logits;
    const int n = T - from;
    if (!targets) {
        memcpy(out, logits, (size_t)n * V * sizeof(float));
        return SB_OK;
    }
#pragma omp parallel for if ((size_t)n * V > ((size_t)1 << 16))
    for (int r = 0; r < n; r++) out[r] = (float)nll_from_logits(logits + (size_t)r * V, V, targets[r]);
    return SB_OK;
}

static void cpu_exact_free(sb_exact *s) {
    if (!s) return;
    sb_chunk_state_free(&s->st);
    free(s);
}

static uint64_t cpu_slots_bytes(const sb_model_config *c, int64_t n_slots, int64_t n_moving, int n_maps) {
    size_t b = sb_slot_cache_bytes(c, n_slots, n_moving, n_maps);
    return b ? (uint64_t)b : UINT64_MAX;
}

static int cpu_slots_new(sb_backend *b, sb_slots **out, int64_t n_slots, int64_t n_moving, int n_maps) {
    sb_slots *c = calloc_check(1, sizeof *c);
    int rc = sb_slot_cache_init(&c->c, b->m, n_slots, n_moving, n_maps);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return SB_OK;
}

static int cpu_slots_grow(sb_slots *c, int64_t n_slots) { return sb_slot_cache_grow(&c->c, n_slots); }

static int cpu_token_forward(sb_slots *c, const sb_kv_state *s, int32_t token, float *logits, sb_attn_observer_fn obs,
                             void *obs_user) {
    sb_forward_token(logits, &c->c, s, token, obs, obs_user);
    return SB_OK;
}

static uint64_t cpu_slots_kv_bytes(const sb_slots *c) { return sb_slot_cache_kv_bytes(&c->c); }

static void cpu_slots_free(sb_slots *c) {
    if (!c) return;
    sb_slot_cache_free(&c->c);
    free(c);
}

const sb_backend_ops sb_backend_cpu_ops = {
    .name = "cpu",
    .default_chunk = 256,
    .open = cpu_open,
    .close = cpu_close,
    .set_threads = cpu_set_threads,
    .device_weight_bytes = cpu_device_weight_bytes,
    .exact_bytes = cpu_exact_bytes,
    .exact_new = cpu_exact_new,
    .exact_reset = cpu_exact_reset,
    .exact_seek = cpu_exact_seek,
    .exact_forward = cpu_exact_forward,
    .exact_free = cpu_exact_free,
    .slots_bytes = cpu_slots_bytes,
    .slots_new = cpu_slots_new,
    .slots_grow = cpu_slots_grow,
    .token_forward = cpu_token_forward,
    .slots_kv_bytes = cpu_slots_kv_bytes,
    .slots_free = cpu_slots_free,
};
