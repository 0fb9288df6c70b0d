/* Fuzz target: a .ids file (whitespace-separated decimal ids), read whole with a vocabulary
 * bound and again with a token limit. */
#include "tests/fuzz/fuzz.h"

#include "datasets/ids.h"

int sb_fuzz_ids(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    char buf[512];
    const char *path = sb_fuzz_write("x.ids", data, size, buf, sizeof buf);
    int32_t *ids;
    int64_t n;
    int rc = sb_ids_load(path, 50000, 0, &ids, &n);
    if (!rc) {
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= 50000) abort();
        free(ids);
    }
    if (!sb_ids_load(path, 0, 7, &ids, &n)) {
        if (n > 7) abort();
        free(ids);
    }
    return rc;
}

SB_FUZZ_ENTRY(sb_fuzz_ids)
