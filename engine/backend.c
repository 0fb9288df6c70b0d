/* Backend selection and the helpers every backend shares. */
#include "engine/backend.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

extern const sb_backend_ops sb_backend_cpu_ops;
#ifdef SB_HAVE_CUDA
extern const sb_backend_ops sb_backend_cuda_ops;
#endif

int sb_backend_ops_for(const char *device, const sb_backend_ops **ops, int *index) {
    *ops = NULL;
    *index = 0;
    if (!device || !*device || !strcmp(device, "cpu")) {
        *ops = &sb_backend_cpu_ops;
        return SB_OK;
    }
    if (!strncmp(device, "cuda", 4) && (device[4] == '\0' || device[4] == ':')) {
        if (device[4] == ':') {
            char *end;
            long v = strtol(device + 5, &end, 10);
            if (end == device + 5 || *end || v < 0 || v > 1023)
                return sb_usage_error("--device '%s': expected cuda or cuda:N with N a GPU index", device);
            *index = (int)v;
        }
#ifdef SB_HAVE_CUDA
        *ops = &sb_backend_cuda_ops;
        return SB_OK;
#else
        return sb_usage_error("--device %s: this sinkbench was built without CUDA (build it with `make CUDA=1` "
                              "on a machine with nvcc)",
                              device);
#endif
    }
    return sb_usage_error("--device '%s' is not cpu, cuda or cuda:N", device);
}

int sb_backend_open(sb_backend **out, const sb_model *m, const sb_backend_opts *o) {
    *out = NULL;
    const sb_backend_opts defaults = {0};
    if (!o) o = &defaults;
    const sb_backend_ops *ops;
    int index;
    int rc = sb_backend_ops_for(o->device, &ops, &index);
    if (rc) return rc;
    sb_backend *b = calloc_check(1, sizeof *b);
    b->ops = ops;
    b->m = m;
    b->device_index = index;
    b->compute = o->compute;
    snprintf(b->device, sizeof b->device, "%s", ops->name);
    rc = ops->open(b, o);
    if (rc) {
        free(b);
        return rc;
    }
    *out = b;
    return SB_OK;
}

void sb_backend_close(sb_backend *b) {
    if (!b) return;
    if (b->ops->close) b->ops->close(b);
    free(b);
}

int sb_compute_parse(const char *s, const char *what, sb_compute *out) {
    static const char *names[] = {"auto", "f32", "bf16", "f16"};
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (sb_compute)i;
            return SB_OK;
        }
    return sb_usage_error("%s: '%s' is not auto, f32, bf16 or f16", what, s ? s : "");
}

const char *sb_compute_name(sb_compute c) {
    switch (c) {
    case SB_COMPUTE_F32: return "f32";
    case SB_COMPUTE_BF16: return "bf16";
    case SB_COMPUTE_F16: return "f16";
    default: return "auto";
    }
}

int64_t sb_exact_band_rows(int64_t K, int64_t W, int max_T, int64_t n_pos) {
    /* the band holds [max(K, pos0-W), pos0+T) at most */
    int64_t rows = W + max_T < n_pos - K ? W + max_T : n_pos - K;
    return rows > 1 ? rows : 1;
}
