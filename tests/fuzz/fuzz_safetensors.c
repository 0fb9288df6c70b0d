/* Fuzz target: one safetensors file (u64 header length, JSON header, data section), opened
 * with sb_st_open; every tensor it accepts is read back, so an offset or size the validator
 * let through is touched. */
#include "tests/fuzz/fuzz.h"

#include "engine/safetensors.h"

int sb_fuzz_safetensors(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("model.safetensors", data, size, buf, sizeof buf);
    sb_st_file f;
    int rc = sb_st_open(&f, path);
    if (rc) return rc;
    volatile unsigned acc = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const sb_st_tensor *t = &f.tensors[i];
        size_t want;
        /* the reader's own invariants: the bytes hold exactly numel elements */
        if (!sb_mul_size(t->numel, sb_st_dtype_size(t->dtype), &want) || want != t->nbytes) abort();
        if (!sb_st_find(&f, t->name)) abort();
        for (size_t j = 0; j < t->nbytes; j++) acc += t->data[j];
        if ((t->dtype == SB_ST_F32 || t->dtype == SB_ST_F16 || t->dtype == SB_ST_BF16) && t->numel <= (1u << 20)) {
            float *out = malloc(t->numel ? t->numel * sizeof(float) : 1);
            if (!out) abort();
            if (sb_st_read_f32(&f, t, out)) abort();
            free(out);
        }
    }
    if (acc == 0xffffffffu) (void)sb_st_meta(&f, "never");
    (void)sb_st_meta(&f, "format");
    sb_st_close(&f);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_safetensors)
