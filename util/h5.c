#include "util/h5.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"

#define H5_PATH_MAX 4096
/* Chunks of about 256 KiB (f32) compress well and keep per-chunk overhead negligible. */
#define H5_CHUNK_ELEMS 65536
/* Appendable logs grow a few rows at a time: smaller chunks keep short logs small. */
#define H5_APPEND_CHUNK_ELEMS 4096
/* deflate cannot expand data by more than ~1032:1; used to bound reads by stored bytes. */
#define H5_MAX_DEFLATE_RATIO 1100

struct sb_h5 {
    hid_t file;
    bool writing;
    char path[H5_PATH_MAX];
    char tmp[H5_PATH_MAX];
};

static void h5_quiet(void) {
    /* HDF5 prints its whole error stack by default; our callers print one line instead. */
    static bool done;
    if (!done) {
        /* Before the library initialises: its exit handler re-closes any file whose H5Fclose
         * failed (a full disk) and crashes in H5F__close_cb (HDF5 1.10); every file of ours
         * is closed explicitly, so the handler has nothing to do anyway. */
        H5dont_atexit();
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        done = true;
    }
}

static hid_t h5_file_type(sb_h5_type t) {
    switch (t) {
    case SB_H5_F32: return H5T_IEEE_F32LE;
    case SB_H5_F64: return H5T_IEEE_F64LE;
    case SB_H5_I64: return H5T_STD_I64LE;
    }
    return -1;
}

static hid_t h5_mem_type(sb_h5_type t) {
    switch (t) {
    case SB_H5_F32: return H5T_NATIVE_FLOAT;
    case SB_H5_F64: return H5T_NATIVE_DOUBLE;
    case SB_H5_I64: return H5T_NATIVE_INT64;
    }
    return -1;
}

static size_t h5_type_size(sb_h5_type t) { return t == SB_H5_F32 ? 4 : 8; }

static bool h5_type_ok(sb_h5_type t) { return t == SB_H5_F32 || t == SB_H5_F64 || t == SB_H5_I64; }

static const char *h5_name_or_root(const char *obj) { return (!obj || !obj[0]) ? "/" : obj; }

static bool h5_is_root(const char *obj) { return !obj || !obj[0] || !strcmp(obj, "/"); }

/* ---------------------------------------------------------------------------------------- */

static int h5_alloc_handle(sb_h5 **out, const char *path, bool writing) {
    *out = NULL;
    if (!path || !path[0]) return sb_error("HDF5 output: empty path");
    if (strlen(path) >= H5_PATH_MAX - 32) return sb_error("%s: path too long", path);
    sb_h5 *f = calloc(1, sizeof *f);
    if (!f) return sb_error("%s: out of memory", path);
    f->file = -1;
    f->writing = writing;
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
    *out = f;
    return SB_OK;
}

static hid_t h5_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* STRONG: closing the file closes any object a failed path left open, so the file is
     * really closed (and flushed) before we fsync and rename it. */
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    return fapl;
}

/* Refuse targets such as /dev/full: renaming a temp file over them would replace a device. */
static int h5_check_target(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return sb_error("%s: not a regular file, cannot write results there", path);
    return SB_OK;
}

int sb_h5_create(sb_h5 **out, const char *path) {
    h5_quiet();
    int rc = h5_alloc_handle(out, path, true);
    if (rc) return rc;
    sb_h5 *f = *out;
    if ((rc = h5_check_target(path))) goto fail;
    /* open(2) first: HDF5 does not say why a create failed, errno does. */
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = sb_error("%s: cannot write: %s", path, strerror(errno));
        goto fail;
    }
    close(fd);
    hid_t fapl = h5_fapl();
    f->file = H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f->file < 0) {
        unlink(f->tmp);
        rc = sb_error("%s: cannot create HDF5 file", path);
        goto fail;
    }
    return SB_OK;
fail:
    free(f);
    *out = NULL;
    return rc;
}

static int h5_copy_file(const char *src, const char *dst) {
    char *data;
    size_t n;
    int rc = sb_read_file(src, &data, &n);
    if (rc) return rc;
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(data);
        return sb_error("%s: cannot write: %s", src, strerror(errno));
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(dst);
            free(data);
            return sb_error("%s: cannot copy for update: %s", src, strerror(e));
        }
        off += (size_t)w;
    }
    free(data);
    if (close(fd) != 0) {
        unlink(dst);
        return sb_error("%s: cannot copy for update: %s", src, strerror(errno));
    }
    return SB_OK;
}

static int h5_root_complete(hid_t file) {
    if (H5Aexists(file, "complete") <= 0) return 0;
    hid_t a = H5Aopen(file, "complete", H5P_DEFAULT);
    if (a < 0) return 0;
    int64_t v = 0;
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    herr_t e = n == 1 ? H5Aread(a, H5T_NATIVE_INT64, &v) : -1;
    H5Aclose(a);
    return e >= 0 && v == 1;
}

int sb_h5_reopen(sb_h5 **out, const char *path) {
    h5_quiet();
    int rc = h5_alloc_handle(out, path, true);
    if (rc) return rc;
    sb_h5 *f = *out;
    if ((rc = h5_check_target(path)) || (rc = h5_copy_file(path, f->tmp))) goto fail;
    hid_t fapl = h5_fapl();
    f->file = H5Fopen(f->tmp, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (f->file < 0) {
        unlink(f->tmp);
        rc = sb_error("%s: not an HDF5 file", path);
        goto fail;
    }
    if (!h5_root_complete(f->file)) {
        H5Fclose(f->file);
        unlink(f->tmp);
        rc = sb_error("%s: incomplete result file (no complete=1 attribute), cannot resume it", path);
        goto fail;
    }
    H5Adelete(f->file, "complete");
    return SB_OK;
fail:
    free(f);
    *out = NULL;
    return rc;
}

void sb_h5_abort(sb_h5 *f) {
    if (!f) return;
    if (f->file >= 0) H5Fclose(f->file);
    if (f->writing) unlink(f->tmp);
    free(f);
}

void sb_h5_close(sb_h5 *f) { sb_h5_abort(f); }

int sb_h5_flush(sb_h5 *f) {
    if (!f || !f->writing) return sb_error("HDF5: flush of a file not open for writing");
    if (H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0) return sb_error("%s: write failed (flush)", f->path);
    return SB_OK;
}

static void h5_fsync_dir(const char *path) {
    char dir[H5_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd); /* best effort: makes the rename itself durable */
        close(fd);
    }
}

int sb_h5_commit(sb_h5 *f) {
    if (!f || !f->writing) {
        sb_h5_abort(f);
        return sb_error("HDF5: commit of a file not open for writing");
    }
    int rc = sb_h5_attr_i64(f, NULL, "complete", 1);
    errno = 0;
    if (!rc && H5Fflush(f->file, H5F_SCOPE_GLOBAL) < 0)
        /* HDF5 does not say why; the failed write(2) under it left errno (ENOSPC, EIO) */
        rc = sb_error("%s: write failed (flush): %s", f->path, errno ? strerror(errno) : "HDF5 error");
    herr_t ce = H5Fclose(f->file);
    f->file = -1;
    if (!rc && ce < 0) rc = sb_error("%s: write failed (close)", f->path);
    if (!rc) {
        int fd = open(f->tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) rc = sb_error("%s: write failed: %s", f->path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (!rc && rename(f->tmp, f->path) != 0)
        rc = sb_error("%s: cannot rename into place: %s", f->path, strerror(errno));
    if (rc) unlink(f->tmp);
    else h5_fsync_dir(f->path);
    free(f);
    return rc;
}

const char *sb_h5_path(const sb_h5 *f) { return f ? f->path : ""; }

/* --- datasets ------------------------------------------------------------------------- */

static int h5_check_writable(sb_h5 *f, const char *name) {
    if (!f || f->file < 0) return sb_error("HDF5: no open file");
    if (!f->writing) return sb_error("%s: opened read-only", f->path);
    if (!name || !name[0]) return sb_error("%s: empty dataset name", f->path);
    return SB_OK;
}

/* Chunk shape of about `target` elements: fill the innermost axes first, rows last. */
static void h5_chunk_dims(int rank, const hsize_t *dims, size_t target, hsize_t *chunk) {
    size_t left = target;
    for (int i = rank - 1; i >= 0; i--) {
        hsize_t c = dims[i] == H5S_UNLIMITED || dims[i] == 0 ? (hsize_t)left : dims[i];
        if (c > left) c = left;
        if (c < 1) c = 1;
        chunk[i] = c;
        left = left / (size_t)c;
        if (left < 1) left = 1;
    }
}

static hid_t h5_dcpl(int rank, const hsize_t *chunk) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl < 0) return -1;
    if (H5Pset_chunk(dcpl, rank, chunk) < 0) {
        H5Pclose(dcpl);
        return -1;
    }
    /* shuffle groups float bytes by significance, which deflate compresses far better */
    if (H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0) H5Pset_shuffle(dcpl);
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) H5Pset_deflate(dcpl, 4);
    return dcpl;
}

static hid_t h5_lcpl(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1); /* "group/name" just works */
    return lcpl;
}

int sb_h5_write(sb_h5 *f, const char *name, sb_h5_type type, int rank, const int64_t *dims,
                const void *data) {
    int rc = h5_check_writable(f, name);
    if (rc) return rc;
    if (!h5_type_ok(type)) return sb_error("%s: %s: bad element type", f->path, name);
    if (rank < 1 || rank > SB_H5_MAX_RANK) return sb_error("%s: %s: rank %d not in 1..3", f->path, name, rank);
    hsize_t hd[SB_H5_MAX_RANK];
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return sb_error("%s: %s: negative dimension", f->path, name);
        hd[i] = (hsize_t)dims[i];
        if (!sb_mul_size(n, (size_t)dims[i], &n)) return sb_error("%s: %s: dataset too large", f->path, name);
    }
    if (n > 0 && !data) return sb_error("%s: %s: no data", f->path, name);
    if (H5Lexists(f->file, name, H5P_DEFAULT) > 0) return sb_error("%s: %s: dataset exists", f->path, name);
    hid_t space = H5Screate_simple(rank, hd, NULL);
    hid_t dcpl = H5P_DEFAULT;
    if (n > 0) { /* an empty dataset cannot be chunked (chunk dims must be >= 1 and <= dims) */
        hsize_t chunk[SB_H5_MAX_RANK];
        h5_chunk_dims(rank, hd, H5_CHUNK_ELEMS, chunk);
        dcpl = h5_dcpl(rank, chunk);
    }
    hid_t lcpl = h5_lcpl();
    hid_t ds = space >= 0 && dcpl >= 0 ? H5Dcreate2(f->file, name, h5_file_type(type), space, lcpl, dcpl, H5P_DEFAULT) : -1;
    herr_t we = ds >= 0 && n > 0 ? H5Dwrite(ds, h5_mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (ds >= 0) H5Dclose(ds);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0 && dcpl != H5P_DEFAULT) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (ds < 0) return sb_error("%s: cannot create dataset %s", f->path, name);
    if (we < 0) return sb_error("%s: write failed (dataset %s)", f->path, name);
    return SB_OK;
}

int sb_h5_write_f32(sb_h5 *f, const char *name, const float *data, int64_t n) {
    return sb_h5_write(f, name, SB_H5_F32, 1, &n, data);
}
int sb_h5_write_f64(sb_h5 *f, const char *name, const double *data, int64_t n) {
    return sb_h5_write(f, name, SB_H5_F64, 1, &n, data);
}
int sb_h5_write_i64(sb_h5 *f, const char *name, const int64_t *data, int64_t n) {
    return sb_h5_write(f, name, SB_H5_I64, 1, &n, data);
}

int sb_h5_append_create(sb_h5 *f, const char *name, sb_h5_type type, int64_t cols) {
    int rc = h5_check_writable(f, name);
    if (rc) return rc;
    if (!h5_type_ok(type)) return sb_error("%s: %s: bad element type", f->path, name);
    if (cols < 0) return sb_error("%s: %s: negative column count", f->path, name);
    if (H5Lexists(f->file, name, H5P_DEFAULT) > 0) return sb_error("%s: %s: dataset exists", f->path, name);
    int rank = cols > 0 ? 2 : 1;
    hsize_t dims[2] = {0, (hsize_t)cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)cols}, chunk[2];
    h5_chunk_dims(rank, maxd, H5_APPEND_CHUNK_ELEMS, chunk);
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = h5_dcpl(rank, chunk);
    hid_t lcpl = h5_lcpl();
    hid_t ds = space >= 0 && dcpl >= 0 ? H5Dcreate2(f->file, name, h5_file_type(type), space, lcpl, dcpl, H5P_DEFAULT) : -1;
    if (ds >= 0) H5Dclose(ds);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (ds < 0) return sb_error("%s: cannot create dataset %s", f->path, name);
    return SB_OK;
}

/* Memory type matching a dataset's stored type (appendable datasets keep what they were
 * created with; callers pass data of that type). */
static hid_t h5_native_of(hid_t ds, size_t *elem) {
    hid_t t = H5Dget_type(ds);
    if (t < 0) return -1;
    H5T_class_t cls = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    H5Tclose(t);
    if (cls == H5T_FLOAT && sz == 4) { *elem = 4; return H5T_NATIVE_FLOAT; }
    if (cls == H5T_FLOAT && sz == 8) { *elem = 8; return H5T_NATIVE_DOUBLE; }
    if (cls == H5T_INTEGER) { *elem = 8; return H5T_NATIVE_INT64; }
    return -1;
}

/* Open an appendable dataset and return its current dims; rank 1 or 2, axis 0 unlimited. */
static hid_t h5_open_appendable(sb_h5 *f, const char *name, int *rank, hsize_t *dims) {
    if (H5Lexists(f->file, name, H5P_DEFAULT) <= 0) {
        sb_error("%s: no dataset %s", f->path, name);
        return -1;
    }
    hid_t ds = H5Dopen2(f->file, name, H5P_DEFAULT);
    if (ds < 0) {
        sb_error("%s: cannot open dataset %s", f->path, name);
        return -1;
    }
    hid_t sp = H5Dget_space(ds);
    hsize_t maxd[SB_H5_MAX_RANK];
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r >= 1 && r <= 2) H5Sget_simple_extent_dims(sp, dims, maxd);
    if (sp >= 0) H5Sclose(sp);
    if (r < 1 || r > 2 || maxd[0] != H5S_UNLIMITED) {
        H5Dclose(ds);
        sb_error("%s: dataset %s is not appendable", f->path, name);
        return -1;
    }
    *rank = r;
    return ds;
}

int sb_h5_append(sb_h5 *f, const char *name, const void *rows, int64_t n_rows) {
    int rc = h5_check_writable(f, name);
    if (rc) return rc;
    if (n_rows < 0) return sb_error("%s: %s: negative row count", f->path, name);
    if (n_rows == 0) return SB_OK;
    if (!rows) return sb_error("%s: %s: no data", f->path, name);
    int rank;
    hsize_t dims[2];
    hid_t ds = h5_open_appendable(f, name, &rank, dims);
    if (ds < 0) return SB_ERR;
    size_t elem;
    hid_t mt = h5_native_of(ds, &elem);
    hsize_t start[2] = {dims[0], 0}, count[2] = {(hsize_t)n_rows, rank == 2 ? dims[1] : 1};
    hsize_t nd[2] = {dims[0] + (hsize_t)n_rows, rank == 2 ? dims[1] : 1};
    herr_t e = mt >= 0 ? H5Dset_extent(ds, nd) : -1;
    hid_t fsp = e >= 0 ? H5Dget_space(ds) : -1;
    hid_t msp = fsp >= 0 ? H5Screate_simple(rank, count, NULL) : -1;
    if (msp >= 0) e = H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL);
    if (msp >= 0 && e >= 0) e = H5Dwrite(ds, mt, msp, fsp, H5P_DEFAULT, rows);
    if (msp < 0) e = -1;
    if (msp >= 0) H5Sclose(msp);
    if (fsp >= 0) H5Sclose(fsp);
    H5Dclose(ds);
    if (e < 0) return sb_error("%s: write failed (append to %s)", f->path, name);
    return SB_OK;
}

int sb_h5_truncate(sb_h5 *f, const char *name, int64_t n_rows) {
    int rc = h5_check_writable(f, name);
    if (rc) return rc;
    int rank;
    hsize_t dims[2];
    hid_t ds = h5_open_appendable(f, name, &rank, dims);
    if (ds < 0) return SB_ERR;
    if (n_rows < 0 || (hsize_t)n_rows > dims[0]) {
        H5Dclose(ds);
        return sb_error("%s: %s: cannot truncate %llu rows to %lld", f->path, name,
                        (unsigned long long)dims[0], (long long)n_rows);
    }
    dims[0] = (hsize_t)n_rows;
    herr_t e = H5Dset_extent(ds, dims);
    H5Dclose(ds);
    if (e < 0) return sb_error("%s: write failed (truncate %s)", f->path, name);
    return SB_OK;
}

/* --- attributes --------------------------------------------------------------------------- */

static hid_t h5_open_obj(sb_h5 *f, const char *obj) {
    if (!f || f->file < 0) {
        sb_error("HDF5: no open file");
        return -1;
    }
    if (h5_is_root(obj)) return f->file;
    if (H5Lexists(f->file, obj, H5P_DEFAULT) <= 0) {
        sb_error("%s: no object %s", f->path, obj);
        return -1;
    }
    hid_t o = H5Oopen(f->file, obj, H5P_DEFAULT);
    if (o < 0) sb_error("%s: cannot open %s", f->path, obj);
    return o;
}

static void h5_close_obj(sb_h5 *f, hid_t o) {
    if (o >= 0 && o != f->file) H5Oclose(o);
}

static int h5_attr_write(sb_h5 *f, const char *obj, const char *key, hid_t ftype, hid_t mtype,
                         const void *value) {
    if (!f || !f->writing) return sb_error("%s: opened read-only", f ? f->path : "HDF5");
    if (!key || !key[0]) return sb_error("%s: empty attribute name", f->path);
    hid_t o = h5_open_obj(f, obj);
    if (o < 0) return SB_ERR;
    if (H5Aexists(o, key) > 0) H5Adelete(o, key);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(o, key, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t e = a >= 0 ? H5Awrite(a, mtype, value) : -1;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    h5_close_obj(f, o);
    if (e < 0) return sb_error("%s: cannot write attribute %s on %s", f->path, key, h5_name_or_root(obj));
    return SB_OK;
}

int sb_h5_attr_str(sb_h5 *f, const char *obj, const char *key, const char *value) {
    if (!value) value = "";
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return sb_error("%s: HDF5 string type", f ? f->path : "HDF5");
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = h5_attr_write(f, obj, key, t, t, value);
    H5Tclose(t);
    return rc;
}

int sb_h5_attr_f64(sb_h5 *f, const char *obj, const char *key, double value) {
    return h5_attr_write(f, obj, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int sb_h5_attr_i64(sb_h5 *f, const char *obj, const char *key, int64_t value) {
    return h5_attr_write(f, obj, key, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

/* --- reading ------------------------------------------------------------------------------ */

static int h5_open_ro(sb_h5 **out, const char *path, bool quiet_incomplete, int *complete) {
    h5_quiet();
    int rc = h5_alloc_handle(out, path, false);
    if (rc) return rc;
    sb_h5 *f = *out;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = sb_error("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sb_error("%s: not a regular file", path);
        goto fail;
    }
    hid_t fapl = h5_fapl();
    f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f->file < 0) {
        rc = sb_error("%s: not an HDF5 file (or damaged)", path);
        goto fail;
    }
    *complete = h5_root_complete(f->file);
    if (!*complete && !quiet_incomplete) {
        H5Fclose(f->file);
        rc = sb_error("%s: incomplete result file (no complete=1 attribute)", path);
        goto fail;
    }
    return SB_OK;
fail:
    free(f);
    *out = NULL;
    return rc;
}

int sb_h5_open(sb_h5 **f, const char *path) {
    int complete;
    return h5_open_ro(f, path, false, &complete);
}

int sb_h5_is_complete(const char *path) {
    sb_h5 *f;
    int complete = 0;
    if (h5_open_ro(&f, path, true, &complete)) return -1;
    sb_h5_close(f);
    return complete ? 1 : 0;
}

bool sb_h5_has(sb_h5 *f, const char *name) {
    if (!f || f->file < 0 || !name || !name[0]) return false;
    return H5Lexists(f->file, name, H5P_DEFAULT) > 0;
}

static hid_t h5_open_ds(sb_h5 *f, const char *name) {
    if (!sb_h5_has(f, name)) {
        sb_error("%s: no dataset %s", f ? f->path : "HDF5", name ? name : "");
        return -1;
    }
    hid_t ds = H5Dopen2(f->file, name, H5P_DEFAULT);
    if (ds < 0) sb_error("%s: %s is not a dataset", f->path, name);
    return ds;
}

/* dims of an open dataset with the element count, overflow-checked. */
static int h5_ds_dims(sb_h5 *f, const char *name, hid_t ds, int *rank, hsize_t *dims, size_t *n) {
    hid_t sp = H5Dget_space(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r >= 1 && r <= SB_H5_MAX_RANK) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (r < 1 || r > SB_H5_MAX_RANK) return sb_error("%s: %s: rank %d not in 1..3", f->path, name, r);
    size_t total = 1;
    for (int i = 0; i < r; i++)
        if (dims[i] > SIZE_MAX || !sb_mul_size(total, (size_t)dims[i], &total))
            return sb_error("%s: %s: dataset too large", f->path, name);
    *rank = r;
    *n = total;
    return SB_OK;
}

int sb_h5_dims(sb_h5 *f, const char *name, int *rank, int64_t *dims) {
    hid_t ds = h5_open_ds(f, name);
    if (ds < 0) return SB_ERR;
    hsize_t hd[SB_H5_MAX_RANK];
    size_t n;
    int rc = h5_ds_dims(f, name, ds, rank, hd, &n);
    H5Dclose(ds);
    if (rc) return rc;
    for (int i = 0; i < *rank; i++) dims[i] = (int64_t)hd[i];
    return SB_OK;
}

static int h5_read_into(sb_h5 *f, const char *name, hid_t ds, sb_h5_type type, void *out, size_t n) {
    if (n == 0) return SB_OK;
    hid_t t = H5Dget_type(ds);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if (t >= 0) H5Tclose(t);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) return sb_error("%s: %s: not numeric", f->path, name);
    if (H5Dread(ds, h5_mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        return sb_error("%s: read failed (dataset %s)", f->path, name);
    return SB_OK;
}

int sb_h5_read(sb_h5 *f, const char *name, sb_h5_type type, void *out, size_t cap_elems) {
    if (!h5_type_ok(type)) return sb_error("HDF5: bad element type");
    hid_t ds = h5_open_ds(f, name);
    if (ds < 0) return SB_ERR;
    int rank;
    hsize_t dims[SB_H5_MAX_RANK];
    size_t n;
    int rc = h5_ds_dims(f, name, ds, &rank, dims, &n);
    if (!rc && n > cap_elems)
        rc = sb_error("%s: %s has %zu values, buffer holds %zu", f->path, name, n, cap_elems);
    if (!rc) rc = h5_read_into(f, name, ds, type, out, n);
    H5Dclose(ds);
    return rc;
}

int sb_h5_read_alloc(sb_h5 *f, const char *name, sb_h5_type type, void **out, int *rank_out,
                     int64_t *dims_out) {
    *out = NULL;
    if (!h5_type_ok(type)) return sb_error("HDF5: bad element type");
    hid_t ds = h5_open_ds(f, name);
    if (ds < 0) return SB_ERR;
    int rank;
    hsize_t dims[SB_H5_MAX_RANK];
    size_t n, bytes = 0;
    int rc = h5_ds_dims(f, name, ds, &rank, dims, &n);
    if (!rc && !sb_mul_size(n, h5_type_size(type), &bytes)) rc = sb_error("%s: %s: dataset too large", f->path, name);
    if (!rc) {
        /* A damaged header can claim any shape; the bytes really stored bound the values
         * (times the best deflate ratio), and the stored bytes are bounded by the file. */
        hsize_t stored = H5Dget_storage_size(ds);
        hsize_t fsize = 0;
        H5Fget_filesize(f->file, &fsize);
        hid_t ft = H5Dget_type(ds);
        size_t fel = ft >= 0 ? H5Tget_size(ft) : 0, fbytes = 0, bound = 0;
        if (ft >= 0) H5Tclose(ft);
        if (fel == 0 || stored > fsize || !sb_mul_size(n, fel, &fbytes) ||
            !sb_mul_size((size_t)stored, H5_MAX_DEFLATE_RATIO, &bound) ||
            !sb_add_size(bound, 65536, &bound) || fbytes > bound)
            rc = sb_error("%s: %s: shape claims %zu values but the file stores %llu bytes", f->path,
                          name, n, (unsigned long long)stored);
    }
    void *buf = NULL;
    if (!rc) {
        buf = malloc(bytes ? bytes : 1);
        if (!buf) rc = sb_error("%s: %s: cannot allocate %zu bytes", f->path, name, bytes);
    }
    if (!rc) rc = h5_read_into(f, name, ds, type, buf, n);
    H5Dclose(ds);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    if (rank_out) *rank_out = rank;
    if (dims_out)
        for (int i = 0; i < rank; i++) dims_out[i] = (int64_t)dims[i];
    return SB_OK;
}

/* Opens attribute key on obj; checks it holds exactly one value. */
static hid_t h5_attr_open(sb_h5 *f, const char *obj, const char *key, hid_t *o_out) {
    hid_t o = h5_open_obj(f, obj);
    *o_out = o;
    if (o < 0) return -1;
    if (!key || H5Aexists(o, key) <= 0) {
        sb_error("%s: no attribute %s on %s", f->path, key ? key : "", h5_name_or_root(obj));
        return -1;
    }
    hid_t a = H5Aopen(o, key, H5P_DEFAULT);
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    if (a < 0 || np != 1) {
        if (a >= 0) H5Aclose(a);
        sb_error("%s: attribute %s on %s is not a single value", f->path, key, h5_name_or_root(obj));
        return -1;
    }
    return a;
}

bool sb_h5_attr_has(sb_h5 *f, const char *obj, const char *key) {
    if (!f || f->file < 0 || !key) return false;
    hid_t o = h5_open_obj(f, obj);
    if (o < 0) return false;
    bool has = H5Aexists(o, key) > 0;
    h5_close_obj(f, o);
    return has;
}

static int h5_attr_num(sb_h5 *f, const char *obj, const char *key, hid_t mtype, void *value) {
    hid_t o;
    hid_t a = h5_attr_open(f, obj, key, &o);
    int rc = SB_OK;
    if (a < 0) {
        rc = SB_ERR;
    } else {
        hid_t t = H5Aget_type(a);
        H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
        if (t >= 0) H5Tclose(t);
        if (cls != H5T_FLOAT && cls != H5T_INTEGER)
            rc = sb_error("%s: attribute %s on %s is not a number", f->path, key, h5_name_or_root(obj));
        else if (H5Aread(a, mtype, value) < 0)
            rc = sb_error("%s: cannot read attribute %s", f->path, key);
        H5Aclose(a);
    }
    h5_close_obj(f, o);
    return rc;
}

int sb_h5_attr_get_f64(sb_h5 *f, const char *obj, const char *key, double *value) {
    return h5_attr_num(f, obj, key, H5T_NATIVE_DOUBLE, value);
}

int sb_h5_attr_get_i64(sb_h5 *f, const char *obj, const char *key, int64_t *value) {
    return h5_attr_num(f, obj, key, H5T_NATIVE_INT64, value);
}

int sb_h5_attr_get_str(sb_h5 *f, const char *obj, const char *key, char *buf, size_t cap) {
    if (!buf || cap == 0) return sb_error("HDF5: no buffer for attribute");
    buf[0] = '\0';
    hid_t o;
    hid_t a = h5_attr_open(f, obj, key, &o);
    if (a < 0) {
        h5_close_obj(f, o);
        return SB_ERR;
    }
    int rc = SB_OK;
    hid_t t = H5Aget_type(a);
    if (t < 0 || H5Tget_class(t) != H5T_STRING) {
        rc = sb_error("%s: attribute %s on %s is not a string", f->path, key, h5_name_or_root(obj));
    } else if (H5Tis_variable_str(t) > 0) { /* as h5py writes them */
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 converts no charsets: read as stored */
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || !s) rc = sb_error("%s: cannot read attribute %s", f->path, key);
        else if (strlen(s) >= cap) rc = sb_error("%s: attribute %s is too long", f->path, key);
        else memcpy(buf, s, strlen(s) + 1);
        if (s) H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(t);
        if (sz >= cap) {
            rc = sb_error("%s: attribute %s is too long", f->path, key);
        } else {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz + 1); /* room for a terminator whatever the stored padding */
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, buf) < 0) rc = sb_error("%s: cannot read attribute %s", f->path, key);
            buf[sz] = '\0';
            H5Tclose(mt);
        }
    }
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    h5_close_obj(f, o);
    return rc;
}
