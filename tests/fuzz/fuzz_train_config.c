/* Fuzz target: the trainer's INI config (sb_train_config_parse). An accepted config must
 * validate, and its resolved INI (what `train` writes as train.ini) must parse back to the
 * same text. */
#include "tests/fuzz/fuzz.h"

#include "train/train.h"

int sb_fuzz_train_config(const uint8_t *data, size_t size) {
    char *text = sb_fuzz_cstr(data, size);
    if (!text) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    /* [data] tokenizer names a file that parse loads (fuzzed by fuzz_tokenizer_json): a real
     * one costs seconds per run, and a mutated path could name a device file */
    if (strstr(text, "tokenizer")) {
        free(text);
        return sb_error("train.ini names a tokenizer (skipped by the harness)");
    }
    sb_train_config c;
    sb_train_config_default(&c);
    int rc = sb_train_config_parse(&c, text, "train.ini");
    free(text);
    if (rc) return rc;
    if (sb_train_config_validate(&c)) abort();
    char *ini = sb_train_config_to_ini(&c);
    if (!ini) abort();
    sb_train_config c2;
    sb_train_config_default(&c2);
    if (sb_train_config_parse(&c2, ini, "train.ini")) {
        fprintf(stderr, "sbfuzz: resolved config does not parse back: %s\n%s\n", sb_last_error(), ini);
        abort();
    }
    char *ini2 = sb_train_config_to_ini(&c2);
    if (!ini2 || strcmp(ini, ini2) != 0) {
        fprintf(stderr, "sbfuzz: resolved config changes on a round trip:\n%s\n---\n%s\n", ini, ini2 ? ini2 : "");
        abort();
    }
    free(ini);
    free(ini2);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_train_config)
