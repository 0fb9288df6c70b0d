/* Fuzz target: a study/experiment INI (configs/NAME.ini) through sb_study_config_parse. The
 * first byte picks the mode (smoke, quick, full); the rest is the text. The W/C expression
 * evaluator and template expansion are fed from the same text. */
#include "tests/fuzz/fuzz.h"

#include "eval/study.h"

int sb_fuzz_study_config(const uint8_t *data, size_t size) {
    if (size < 1) return sb_error("empty fuzz input (no mode byte)");
    char *text = sb_fuzz_cstr(data + 1, size - 1);
    if (!text) return sb_error("fuzz input over %u bytes (skipped)", SB_FUZZ_MAX_INPUT);
    sb_study_mode mode = (sb_study_mode)(data[0] % 3);
    sb_study_config c;
    int rc = sb_study_config_parse(&c, text, "study.ini", mode);
    if (!rc) sb_study_config_free(&c);
    /* the expression language on its own: the first line of the text */
    char *nl = strchr(text, '\n');
    if (nl) *nl = '\0';
    int64_t v;
    (void)sb_study_eval_expr(text, 1020, 4096, &v);
    char out[256];
    (void)sb_study_expand(text, 508, 2048, out, sizeof out);
    free(text);
    sb_clear_error();
    return rc;
}

SB_FUZZ_ENTRY(sb_fuzz_study_config)
