/* Shared by the fuzz targets: a per-process scratch directory for readers that take a path,
 * and the entry-point macro.
 *
 * Each tests/fuzz/fuzz_<name>.c defines `int sb_fuzz_<name>(const uint8_t *data, size_t size)`
 * returning the parser's status (SB_OK when the input was accepted). Built with
 * -DSB_FUZZ_LIBFUZZER it also gets LLVMFuzzerTestOneInput; tests/test_fuzz_regress.c instead
 * includes every target and replays tests/fuzz/regress/ and the seed corpora through them in
 * the normal build, so a fixed crash stays fixed without clang. */
#ifndef SB_FUZZ_H
#define SB_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"

#ifdef SB_FUZZ_LIBFUZZER
#define SB_FUZZ_ENTRY(fn)                                                   \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);           \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {          \
        (void)fn(data, size);                                               \
        sb_clear_error();                                                   \
        return 0;                                                           \
    }
#else
#define SB_FUZZ_ENTRY(fn)
#endif

/* Inputs larger than this are rejected before parsing: the formats' interesting structure is
 * in the first kilobytes, and big inputs only slow the fuzzer down. */
#define SB_FUZZ_MAX_INPUT (1u << 20)

static char sb_fuzz_root[256];

/* Remove the scratch tree (one level of subdirectories is all the targets make). */
static inline void sb_fuzz_rm_tree(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (depth > 0 && lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) sb_fuzz_rm_tree(p, depth - 1);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static inline void sb_fuzz_cleanup(void) {
    if (sb_fuzz_root[0]) sb_fuzz_rm_tree(sb_fuzz_root, 2);
}

/* The process's scratch directory (tmpfs when available, so a run costs no disk I/O). */
static inline const char *sb_fuzz_dir(void) {
    if (sb_fuzz_root[0]) return sb_fuzz_root;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(sb_fuzz_root, sizeof sb_fuzz_root, "%s/sbfuzz.XXXXXX", base);
    if (!mkdtemp(sb_fuzz_root)) {
        perror("sbfuzz: mkdtemp");
        abort();
    }
    atexit(sb_fuzz_cleanup);
    return sb_fuzz_root;
}

/* Path of `name` inside the scratch directory (subdirectories are created on demand). */
static inline const char *sb_fuzz_path(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", sb_fuzz_dir(), name);
    const char *slash = strrchr(name, '/');
    if (slash) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%.*s", sb_fuzz_dir(), (int)(slash - name), name);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            perror("sbfuzz: mkdir");
            abort();
        }
    }
    return buf;
}

/* Write data to scratch file `name`, replacing it; returns its path in buf. A harness failure
 * (not the parser's) aborts, so it is never mistaken for a clean run. */
static inline const char *sb_fuzz_write(const char *name, const uint8_t *data, size_t size, char *buf, size_t cap) {
    const char *path = sb_fuzz_path(name, buf, cap);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror("sbfuzz: open");
        abort();
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) {
            perror("sbfuzz: write");
            abort();
        }
        off += (size_t)w;
    }
    close(fd);
    return path;
}

/* data as a NUL-terminated string (the caller frees); NULL for oversized input. */
static inline char *sb_fuzz_cstr(const uint8_t *data, size_t size) {
    if (size > SB_FUZZ_MAX_INPUT) return NULL;
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
