/* Fuzz target: a "<output>.resume" state (util/resume_state.c), loaded as the state of
 * `sinkbench ppl` under a fixed inputs hash (bytes 0..31). */
#include "tests/fuzz/fuzz.h"

#include "util/resume_state.h"

int sb_fuzz_resume_state(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("out.h5.resume", data, size, buf, sizeof buf);
    uint8_t hash[32];
    for (int i = 0; i < 32; i++) hash[i] = (uint8_t)i;
    void *payload;
    size_t n;
    int missing;
    int rc = sb_resume_load(path, "ppl", hash, &payload, &n, &missing);
    if (rc) return rc;
    if (n > size) abort();
    volatile unsigned acc = 0;
    for (size_t i = 0; i < n; i++) acc += ((const uint8_t *)payload)[i];
    free(payload);
    return acc == 0xffffffffu ? SB_ERR : SB_OK; /* keeps the reads */
}

SB_FUZZ_ENTRY(sb_fuzz_resume_state)
