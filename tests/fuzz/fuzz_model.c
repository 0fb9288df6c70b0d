/* Fuzz target: the safetensors file of a model directory, loaded by sb_model_load against a
 * fixed tiny config.json (llama, vocab 32, dim 8, 1 layer, 2 heads, ffn 16). This covers the
 * engine's checks of names, shapes and dtypes against the config, on top of the file reader. */
#include "tests/fuzz/fuzz.h"

#include "engine/hfconfig.h"
#include "engine/model.h"

void sb_fuzz_model_config(sb_model_config *c);
void sb_fuzz_model_config(sb_model_config *c) {
    sb_model_config_default(c);
    c->vocab_size = 32;
    c->dim = 8;
    c->n_layers = 1;
    c->n_heads = 2;
    c->n_kv_heads = 2;
    c->head_dim = 4;
    c->rotary_dim = 4;
    c->ffn_dim = 16;
    c->max_ctx = 64;
}

static const char *model_dir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    sb_model_config c;
    sb_fuzz_model_config(&c);
    char p[512];
    if (sb_hfconfig_save(&c, sb_fuzz_path("model/config.json", p, sizeof p))) {
        fprintf(stderr, "sbfuzz: cannot write config.json: %s\n", sb_last_error());
        abort();
    }
    snprintf(dir, sizeof dir, "%s/model", sb_fuzz_dir());
    return dir;
}

int sb_fuzz_model(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    const char *dir = model_dir();
    char buf[512];
    sb_fuzz_write("model/model.safetensors", data, size, buf, sizeof buf);
    sb_model m;
    int rc = sb_model_load(&m, dir);
    if (rc) return rc;
    sb_model_free(&m);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_model)
