#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/helpers/sb_test.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"

char sb_test_dir[64];

int sb_test_mkdtemp(char *dir, size_t cap) {
    /* the binary's name in the directory's: a test that leaves it behind is known by it */
    if (snprintf(dir, cap, "/tmp/sb_%s_XXXXXX", program_invocation_short_name) >= (int)cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return mkdtemp(dir) ? 0 : -1;
}

void sb_test_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        unlink(dir);
        return;
    }
    char p[4096];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) sb_test_rmtree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int sb_test_dir_setup(void **state) {
    (void)state;
    return sb_test_mkdtemp(sb_test_dir, sizeof sb_test_dir);
}

int sb_test_dir_teardown(void **state) {
    (void)state;
    sb_test_rmtree(sb_test_dir);
    return 0;
}

const char *sb_test_path(const char *name) {
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", sb_test_dir, name);
    return buf[i];
}

void sb_test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void sb_test_write_text(const char *path, const char *text) { sb_test_write_file(path, text, strlen(text)); }

static void put_token(FILE *f, const char *s, float score) {
    int32_t len = (int32_t)strlen(s);
    fwrite(&score, 4, 1, f);
    fwrite(&len, 4, 1, f);
    fwrite(s, 1, (size_t)len, f);
}

void sb_test_write_llama2c_tok(const char *path) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t mtl = 6;
    fwrite(&mtl, 4, 1, f);
    put_token(f, "<unk>", 0);
    put_token(f, "\n<s>\n", 0);
    put_token(f, "\n</s>\n", 0);
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        put_token(f, s, 0);
    }
    put_token(f, " ", -10);
    put_token(f, "a", -10);
    put_token(f, "b", -10);
    put_token(f, "ab", -1);
    put_token(f, "ba", -2);
    put_token(f, " a", -3);
    put_token(f, "aba", -0.5f);
    assert_int_equal(fclose(f), 0);
}

void sb_test_omp_passive(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
}

void sb_test_small_config(sb_model_config *c, int32_t vocab, int n_layers, int n_kv_heads) {
    sb_model_config_default(c);
    c->vocab_size = vocab;
    c->dim = 32;
    c->n_layers = n_layers;
    c->n_heads = 4;
    c->n_kv_heads = n_kv_heads;
    c->head_dim = 8;
    c->rotary_dim = 8;
    c->ffn_dim = 48;
    c->max_ctx = 64;
}

void sb_test_perturb_vectors(const sb_model_config *c, sb_model *m, sb_rng *r, float scale) {
    int nt = sb_model_tensor_count(c);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(c, m, t);
    for (int i = 0; i < nt; i++)
        if (t[i].ndim == 1)
            for (size_t j = 0; j < t[i].numel; j++) t[i].data[j] += scale * (float)sb_rng_normal(r);
    free(t);
}
