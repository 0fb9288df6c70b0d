/* Fuzz target: a llama2.c checkpoint (7-int32 header + fp32 tensors), loaded whole. */
#include "tests/fuzz/fuzz.h"

#include "engine/llama2c.h"

int sb_fuzz_llama2c(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("model.bin", data, size, buf, sizeof buf);
    sb_model m;
    int rc = sb_model_load_llama2c(&m, path);
    if (rc) return rc;
    if (sb_model_config_validate(&m.cfg)) abort();
    sb_model_free(&m);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_llama2c)
