/* Fuzz target: config.json text through sb_hfconfig_parse (from memory, not NUL-terminated).
 * An accepted config must validate and survive a save/parse round trip unchanged. */
#include "tests/fuzz/fuzz.h"

#include "engine/hfconfig.h"

int sb_fuzz_hfconfig(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    sb_model_config c;
    int rc = sb_hfconfig_parse(&c, (const char *)data, size, "config.json");
    if (rc) return rc;
    if (sb_model_config_validate(&c)) abort();
    char *json = sb_hfconfig_to_json(&c);
    if (!json) abort();
    sb_model_config c2;
    if (sb_hfconfig_parse(&c2, json, strlen(json), "config.json")) {
        fprintf(stderr, "sbfuzz: saved config does not parse back: %s\n%s\n", sb_last_error(), json);
        abort();
    }
    char *json2 = sb_hfconfig_to_json(&c2);
    if (!json2 || strcmp(json, json2) != 0) {
        fprintf(stderr, "sbfuzz: config changes on a round trip:\n%s\n%s\n", json, json2 ? json2 : "(null)");
        abort();
    }
    free(json);
    free(json2);
    return SB_OK;
}

SB_FUZZ_ENTRY(sb_fuzz_hfconfig)
