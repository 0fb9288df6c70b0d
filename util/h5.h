/* HDF5 result files: a small wrapper that every command writing results uses.
 *
 * Writing is atomic: sb_h5_create() writes to "<path>.tmp.<pid>"; sb_h5_commit() writes the
 * root attribute complete=1 last, flushes, fsyncs and renames into place. A file without
 * complete=1 (a crash, a copy of a temp file, an old writer) is refused by sb_h5_open().
 * sb_h5_abort() (or commit failing) removes the temp file, so nothing half-written remains.
 *
 * Datasets are 1-D..3-D float32 / float64 / int64, chunked with shuffle+deflate. Appendable
 * datasets grow along their first axis (logs: [n] or [n, cols]). Attributes (string,
 * float64, int64) hang on the root (obj NULL, "" or "/") or on a dataset named by obj.
 *
 * HDF5's own error stack printing is switched off; every failure becomes one sb_error()
 * line naming the file (and the dataset/attribute). Not thread-safe (libhdf5-serial). */
#ifndef SB_H5_H
#define SB_H5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SB_H5_F32, SB_H5_F64, SB_H5_I64 } sb_h5_type;

#define SB_H5_MAX_RANK 3

typedef struct sb_h5 sb_h5;

/* --- writing ------------------------------------------------------------------------- */
/* New file for writing at path.tmp.<pid> (truncating a stale one). Refuses a path that
 * exists and is not a regular file (e.g. /dev/full). */
int sb_h5_create(sb_h5 **f, const char *path);
/* Reopen a complete file for appending (resume): its content is copied to path.tmp.<pid>,
 * its complete attribute removed; commit replaces the original atomically. */
int sb_h5_reopen(sb_h5 **f, const char *path);
/* Write complete=1, flush, fsync, rename into place; frees f on success and on failure
 * (the temp file is removed on failure). */
int sb_h5_commit(sb_h5 *f);
/* Discard: close and remove the temp file; frees f. NULL is fine. */
void sb_h5_abort(sb_h5 *f);
/* Flush the temp file so a crash leaves a readable (but incomplete) file behind. */
int sb_h5_flush(sb_h5 *f);

/* A whole dataset: rank 1..3, dims[rank] (0 allowed), data row-major of `type`. */
int sb_h5_write(sb_h5 *f, const char *name, sb_h5_type type, int rank, const int64_t *dims,
                const void *data);
/* 1-D conveniences */
int sb_h5_write_f32(sb_h5 *f, const char *name, const float *data, int64_t n);
int sb_h5_write_f64(sb_h5 *f, const char *name, const double *data, int64_t n);
int sb_h5_write_i64(sb_h5 *f, const char *name, const int64_t *data, int64_t n);

/* Appendable dataset of shape [0] (cols == 0) or [0, cols], growing along axis 0. */
int sb_h5_append_create(sb_h5 *f, const char *name, sb_h5_type type, int64_t cols);
/* Append n_rows rows (n_rows * max(cols,1) values of the dataset's type). */
int sb_h5_append(sb_h5 *f, const char *name, const void *rows, int64_t n_rows);
/* Shrink an appendable dataset to its first n_rows rows (resume from an earlier step). */
int sb_h5_truncate(sb_h5 *f, const char *name, int64_t n_rows);

/* Attributes; obj NULL/""/"/" = file root, else a dataset name. Rewriting a key replaces it. */
int sb_h5_attr_str(sb_h5 *f, const char *obj, const char *key, const char *value);
int sb_h5_attr_f64(sb_h5 *f, const char *obj, const char *key, double value);
int sb_h5_attr_i64(sb_h5 *f, const char *obj, const char *key, int64_t value);

/* --- reading ------------------------------------------------------------------------- */
/* Open read-only; fails (naming the file) unless the root has complete=1. */
int sb_h5_open(sb_h5 **f, const char *path);
/* 1 if path is an HDF5 file with complete=1, 0 if readable but incomplete, -1 otherwise
 * (missing, not HDF5; error set). Never prints. */
int sb_h5_is_complete(const char *path);
/* Close a file opened for reading (or abort one opened for writing). */
void sb_h5_close(sb_h5 *f);

bool sb_h5_has(sb_h5 *f, const char *name);
/* rank and dims (dims has room for SB_H5_MAX_RANK). */
int sb_h5_dims(sb_h5 *f, const char *name, int *rank, int64_t *dims);
/* Read the whole dataset converted to `type` into out, which holds cap_elems values. */
int sb_h5_read(sb_h5 *f, const char *name, sb_h5_type type, void *out, size_t cap_elems);
/* Same, allocating (free() it). The element count is checked against the bytes the dataset
 * really stores before allocating. dims may be NULL. */
int sb_h5_read_alloc(sb_h5 *f, const char *name, sb_h5_type type, void **out, int *rank,
                     int64_t *dims);

/* Read attributes (fixed- or variable-length strings; numbers converted). */
int sb_h5_attr_get_str(sb_h5 *f, const char *obj, const char *key, char *buf, size_t cap);
int sb_h5_attr_get_f64(sb_h5 *f, const char *obj, const char *key, double *value);
int sb_h5_attr_get_i64(sb_h5 *f, const char *obj, const char *key, int64_t *value);
bool sb_h5_attr_has(sb_h5 *f, const char *obj, const char *key);

/* The final path (as given to create/open). */
const char *sb_h5_path(const sb_h5 *f);

#endif
