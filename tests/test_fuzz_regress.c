/* Replays the fuzz inputs through every fuzz target's entry point in the normal build:
 * each file under tests/fuzz/regress/<target>/ (inputs that once crashed, leaked or hit UB)
 * and tests/fuzz/corpus/<target>/ (the seeds). Every input must return cleanly; a rejected
 * one must leave a one-line error message; seeds named valid_* must be accepted and every
 * regress input not named valid_* must be rejected. Under make test-asan this is the
 * sanitizer check of each fixed crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/fuzz/fuzz_hfconfig.c"
#include "tests/fuzz/fuzz_ids.c"
#include "tests/fuzz/fuzz_llama2c.c"
#include "tests/fuzz/fuzz_llama2c_tok.c"
#include "tests/fuzz/fuzz_model.c"
#include "tests/fuzz/fuzz_policy.c"
#include "tests/fuzz/fuzz_resume_state.c"
#include "tests/fuzz/fuzz_safetensors.c"
#include "tests/fuzz/fuzz_st_index.c"
#include "tests/fuzz/fuzz_study_config.c"
#include "tests/fuzz/fuzz_tokenizer_json.c"
#include "tests/fuzz/fuzz_tokfile.c"
#include "tests/fuzz/fuzz_train_config.c"

typedef struct {
    const char *name;
    int (*fn)(const uint8_t *data, size_t size);
} fuzz_target;

static const fuzz_target targets[] = {
    {"hfconfig", sb_fuzz_hfconfig},         {"ids", sb_fuzz_ids},
    {"llama2c", sb_fuzz_llama2c},           {"llama2c_tok", sb_fuzz_llama2c_tok},
    {"model", sb_fuzz_model},               {"policy", sb_fuzz_policy},
    {"resume_state", sb_fuzz_resume_state},
    {"safetensors", sb_fuzz_safetensors},   {"st_index", sb_fuzz_st_index},
    {"study_config", sb_fuzz_study_config}, {"tokenizer_json", sb_fuzz_tokenizer_json},
    {"tokfile", sb_fuzz_tokfile},           {"train_config", sb_fuzz_train_config},
};
#define N_TARGETS (sizeof targets / sizeof targets[0])

static const fuzz_target *find_target(const char *name) {
    for (size_t i = 0; i < N_TARGETS; i++)
        if (!strcmp(targets[i].name, name)) return &targets[i];
    return NULL;
}

/* Replays every file of dir through t; returns the number of files. must_reject: a file not
 * named valid_* must be rejected (regress inputs are all malformed unless named so). */
static int replay_dir(const fuzz_target *t, const char *dir, bool must_reject) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *data;
        size_t size;
        assert_int_equal(sb_read_file(path, &data, &size), SB_OK);
        sb_clear_error();
        int rc = t->fn((const uint8_t *)data, size);
        free(data);
        bool valid = !strncmp(e->d_name, "valid_", 6);
        if (valid && rc != SB_OK) fail_msg("%s: a valid_ input was rejected: %s", path, sb_last_error());
        if (!valid && must_reject && rc == SB_OK) fail_msg("%s: a malformed input was accepted", path);
        /* the policy and study harnesses clear errors they provoke on purpose */
        if (rc != SB_OK && strcmp(t->name, "study_config") != 0) {
            if (!sb_last_error()[0]) fail_msg("%s: rejected without an error message", path);
            if (strchr(sb_last_error(), '\n')) fail_msg("%s: multi-line error: %s", path, sb_last_error());
        }
        n++;
    }
    closedir(d);
    return n;
}

static void test_regress_inputs(void **state) {
    (void)state;
    DIR *d = opendir("tests/fuzz/regress");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        const fuzz_target *t = find_target(e->d_name);
        if (!t) fail_msg("tests/fuzz/regress/%s: no such fuzz target in test_fuzz_regress.c", e->d_name);
        char dir[512];
        snprintf(dir, sizeof dir, "tests/fuzz/regress/%s", e->d_name);
        n += replay_dir(t, dir, true);
    }
    closedir(d);
    assert_true(n > 0);
}

static void test_seed_corpora(void **state) {
    (void)state;
    for (size_t i = 0; i < N_TARGETS; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", targets[i].name);
        if (replay_dir(&targets[i], dir, false) == 0) fail_msg("%s: empty or missing seed corpus", dir);
    }
}

/* A target added under tests/fuzz/ must be listed above, or its inputs would go unreplayed. */
static void test_every_target_listed(void **state) {
    (void)state;
    DIR *d = opendir("tests/fuzz");
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "fuzz_", 5) != 0 || len < 8 || strcmp(e->d_name + len - 2, ".c") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - 7), e->d_name + 5);
        if (!find_target(name)) fail_msg("tests/fuzz/%s is not replayed by test_fuzz_regress.c", e->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, (int)N_TARGETS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_target_listed),
        cmocka_unit_test(test_regress_inputs),
        cmocka_unit_test(test_seed_corpora),
    };
    return cmocka_run_group_tests_name("fuzz_regress", tests, NULL, NULL);
}
