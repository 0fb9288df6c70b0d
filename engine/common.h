/* Shared helpers: error reporting, checked allocation and file I/O.
 *
 * Library code never exits on bad input: it calls sb_error(...) and returns a
 * non-zero status, so tests can exercise every error path. The CLI prints the
 * last error as one line on stderr and exits 1 (bad input) or 2 (bad usage).
 * Only genuine out-of-memory in a kernel aborts, through malloc_check(). */
#ifndef SB_COMMON_H
#define SB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

enum sb_status { SB_OK = 0, SB_ERR = 1, SB_ERR_USAGE = 2 };

/* Record a one-line error message (printf-style); returns SB_ERR for `return sb_error(...)`. */
int sb_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, returning SB_ERR_USAGE. */
int sb_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last recorded message ("" if none); thread-local. */
const char *sb_last_error(void);
void sb_clear_error(void);

/* Allocation that aborts with file:line on failure (for sizes already validated). */
void *sb_malloc_check(size_t size, const char *file, int line);
void *sb_calloc_check(size_t n, size_t size, const char *file, int line);
#define malloc_check(sz) sb_malloc_check((sz), __FILE__, __LINE__)
#define calloc_check(n, sz) sb_calloc_check((n), (sz), __FILE__, __LINE__)

/* Overflow-safe size arithmetic: return false on overflow. */
static inline bool sb_mul_size(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool sb_add_size(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Read a whole file into a NUL-terminated buffer. Returns SB_OK or sets an error naming path. */
int sb_read_file(const char *path, char **data, size_t *size);
/* Write a whole buffer atomically: path.tmp.<pid>, fsync, rename, fsync of the directory.
 * Refuses an existing path that is not a regular file (a device such as /dev/full). */
int sb_write_file_atomic(const char *path, const void *data, size_t size);
/* fsync the directory holding path (after a rename into it); best effort. */
void sb_fsync_dir(const char *path);

/* Monotonic wall clock in seconds. */
double sb_now(void);
/* Peak resident set size of this process in MiB (from /proc/self/status VmHWM). */
double sb_peak_rss_mb(void);
/* Current resident set size in MiB (VmRSS). */
double sb_rss_mb(void);

#endif
