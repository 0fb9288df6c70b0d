/* Fuzz target: model.safetensors.index.json. The checkpoint directory holds two fixed,
 * valid shards (model-00001-of-00002.safetensors with tensors "a" [2,3] and "b" [4];
 * model-00002-of-00002.safetensors with "c" [3]); the input is the index naming them. */
#include "tests/fuzz/fuzz.h"

#include "engine/safetensors.h"

static const char *st_index_dir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    char p[512];
    float v[6] = {1, 2, 3, 4, 5, 6};
    sb_st_write_tensor s1[2] = {{"a", v, 2, {2, 3}}, {"b", v, 1, {4}}};
    sb_st_write_tensor s2[1] = {{"c", v, 1, {3}}};
    if (sb_st_write(sb_fuzz_path("index/model-00001-of-00002.safetensors", p, sizeof p), s1, 2, SB_DTYPE_F32,
                    NULL, NULL, 0) ||
        sb_st_write(sb_fuzz_path("index/model-00002-of-00002.safetensors", p, sizeof p), s2, 1, SB_DTYPE_F16,
                    NULL, NULL, 0)) {
        fprintf(stderr, "sbfuzz: cannot write the shards: %s\n", sb_last_error());
        abort();
    }
    snprintf(dir, sizeof dir, "%s/index", sb_fuzz_dir());
    return dir;
}

int sb_fuzz_st_index(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    const char *dir = st_index_dir();
    char buf[512];
    sb_fuzz_write("index/model.safetensors.index.json", data, size, buf, sizeof buf);
    sb_st_set s;
    int rc = sb_st_set_open(&s, dir);
    if (rc) return rc;
    for (int i = 0; i < s.n_files; i++)
        for (int j = 0; j < s.files[i].n_tensors; j++) {
            const sb_st_file *in = NULL;
            if (!sb_st_set_find(&s, s.files[i].tensors[j].name, &in) || !in) abort();
        }
    (void)sb_st_set_find(&s, "missing", NULL);
    sb_st_set_close(&s);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_st_index)
