#include "engine/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/half.h"

/* The Rust reference rejects headers above 100 MB; so do we, before parsing. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Largest integer a JSON number (double) holds exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} dtype_info[SB_ST_N_DTYPES] = {
    [SB_ST_F32] = {"F32", 4},  [SB_ST_F16] = {"F16", 2},         [SB_ST_BF16] = {"BF16", 2},
    [SB_ST_F64] = {"F64", 8},  [SB_ST_I64] = {"I64", 8},         [SB_ST_I32] = {"I32", 4},
    [SB_ST_I16] = {"I16", 2},  [SB_ST_I8] = {"I8", 1},           [SB_ST_U64] = {"U64", 8},
    [SB_ST_U32] = {"U32", 4},  [SB_ST_U16] = {"U16", 2},         [SB_ST_U8] = {"U8", 1},
    [SB_ST_BOOL] = {"BOOL", 1}, [SB_ST_F8_E4M3] = {"F8_E4M3", 1}, [SB_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *sb_st_dtype_name(sb_st_dtype d) { return (unsigned)d < SB_ST_N_DTYPES ? dtype_info[d].name : "?"; }
size_t sb_st_dtype_size(sb_st_dtype d) { return (unsigned)d < SB_ST_N_DTYPES ? dtype_info[d].size : 0; }

static int dtype_from_name(const char *s, sb_st_dtype *out) {
    for (int i = 0; i < SB_ST_N_DTYPES; i++)
        if (!strcmp(dtype_info[i].name, s)) {
            *out = (sb_st_dtype)i;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------- reader */

void sb_st_close(sb_st_file *f) {
    if (!f) return;
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->map_size);
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = malloc_check(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

/* A JSON number that is an exact non-negative integer representable in size_t. */
static bool json_size(const cJSON *v, size_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_JSON_INT || d != floor(d)) return false;
    if (d > (double)SIZE_MAX) return false;
    *out = (size_t)d;
    return true;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const sb_st_tensor *)a)->name, ((const sb_st_tensor *)b)->name);
}

typedef struct {
    size_t begin, end;
    int idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_tensor(sb_st_file *f, const cJSON *it, const unsigned char *data, size_t data_size, span *sp) {
    const char *path = f->path, *name = it->string;
    sb_st_tensor *t = &f->tensors[f->n_tensors];
    memset(t, 0, sizeof *t);
    if (!cJSON_IsObject(it)) return sb_error("%s: header entry '%.80s' is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt)) return sb_error("%s: tensor '%.80s' has no dtype string", path, name);
    if (dtype_from_name(dt->valuestring, &t->dtype))
        return sb_error("%s: tensor '%.80s' has unknown dtype '%.20s'", path, name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return sb_error("%s: tensor '%.80s' has no shape array", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > SB_ST_MAX_DIMS) return sb_error("%s: tensor '%.80s' has %d dims (max %d)", path, name, nd, SB_ST_MAX_DIMS);
    size_t numel = 1;
    int d = 0;
    for (const cJSON *e = sh->child; e; e = e->next, d++) {
        size_t v;
        if (!json_size(e, &v)) return sb_error("%s: tensor '%.80s' has a bad shape entry", path, name);
        if (!sb_mul_size(numel, v, &numel)) return sb_error("%s: tensor '%.80s' shape overflows", path, name);
        t->shape[d] = (int64_t)v;
    }
    t->ndim = nd;
    t->numel = numel;
    if (!sb_mul_size(numel, dtype_info[t->dtype].size, &t->nbytes))
        return sb_error("%s: tensor '%.80s' byte size overflows", path, name);
    size_t b, e;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_size(cJSON_GetArrayItem(off, 0), &b) ||
        !json_size(cJSON_GetArrayItem(off, 1), &e))
        return sb_error("%s: tensor '%.80s' has bad data_offsets", path, name);
    if (b > e) return sb_error("%s: tensor '%.80s' data_offsets [%zu, %zu] are reversed", path, name, b, e);
    if (e > data_size)
        return sb_error("%s: tensor '%.80s' ends at byte %zu of a %zu-byte data section (file truncated?)", path,
                        name, e, data_size);
    if (e - b != t->nbytes)
        return sb_error("%s: tensor '%.80s' holds %zu bytes, its shape and dtype need %zu", path, name, e - b,
                        t->nbytes);
    t->name = dup_str(name);
    t->data = data + b;
    sp->begin = b;
    sp->end = e;
    sp->idx = f->n_tensors;
    f->n_tensors++;
    return SB_OK;
}

static int parse_metadata(sb_st_file *f, const cJSON *m) {
    if (!cJSON_IsObject(m)) return sb_error("%s: __metadata__ is not an object", f->path);
    /* JSON allows the key twice; a second one would index past the first one's arrays */
    if (f->meta_keys) return sb_error("%s: __metadata__ appears twice", f->path);
    int n = cJSON_GetArraySize(m);
    f->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    f->meta_values = calloc((size_t)n + 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_values) return sb_error("%s: out of memory", f->path);
    for (const cJSON *e = m->child; e; e = e->next) {
        if (!cJSON_IsString(e)) return sb_error("%s: __metadata__ value of '%.80s' is not a string", f->path, e->string);
        f->meta_keys[f->n_meta] = dup_str(e->string);
        f->meta_values[f->n_meta] = dup_str(e->valuestring);
        f->n_meta++;
    }
    return SB_OK;
}

int sb_st_open(sb_st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = dup_str(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        sb_error("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        sb_error("%s: not a regular file", path);
        goto fail;
    }
    size_t fsize = (size_t)st.st_size;
    if (fsize < 8) {
        close(fd);
        sb_error("%s: truncated: %zu bytes, too short for the 8-byte header length", path, fsize);
        goto fail;
    }
    f->map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        sb_error("%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    f->map_size = fsize;
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > fsize - 8) {
        sb_error("%s: header length %llu exceeds the file size %zu (corrupted or truncated)", path,
                 (unsigned long long)hlen, fsize);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER || hlen < 2) {
        sb_error("%s: header length %llu is not plausible", path, (unsigned long long)hlen);
        goto fail;
    }
    const unsigned char *data = p + 8 + hlen;
    size_t data_size = fsize - 8 - (size_t)hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        sb_error("%s: header is not a JSON object", path);
        goto fail;
    }
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc((size_t)n + 1, sizeof *f->tensors);
    span *spans = calloc((size_t)n + 1, sizeof *spans);
    if (!f->tensors || !spans) {
        free(spans);
        cJSON_Delete(root);
        sb_error("%s: out of memory", path);
        goto fail;
    }
    int rc = SB_OK;
    for (const cJSON *it = root->child; it && !rc; it = it->next) {
        if (!strcmp(it->string, "__metadata__"))
            rc = parse_metadata(f, it);
        else
            rc = parse_tensor(f, it, data, data_size, &spans[f->n_tensors]);
    }
    cJSON_Delete(root);
    if (!rc) {
        /* data regions must not overlap (zero-byte tensors may share an offset) */
        qsort(spans, (size_t)f->n_tensors, sizeof *spans, cmp_span);
        for (int i = 1; i < f->n_tensors && !rc; i++)
            if (spans[i].begin < spans[i - 1].end && spans[i].begin != spans[i].end)
                rc = sb_error("%s: tensors '%.80s' and '%.80s' overlap", path, f->tensors[spans[i - 1].idx].name,
                              f->tensors[spans[i].idx].name);
    }
    if (!rc) {
        /* sorted by name for sb_st_find; JSON allows duplicate keys, safetensors does not */
        qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, cmp_name);
        for (int i = 1; i < f->n_tensors && !rc; i++)
            if (!strcmp(f->tensors[i].name, f->tensors[i - 1].name))
                rc = sb_error("%s: tensor '%.80s' appears twice", path, f->tensors[i].name);
    }
    free(spans);
    if (rc) goto fail;
    return SB_OK;
fail:
    sb_st_close(f);
    return SB_ERR;
}

const sb_st_tensor *sb_st_find(const sb_st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *sb_st_meta(const sb_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_values[i];
    return NULL;
}

int sb_st_read_f32(const sb_st_file *f, const sb_st_tensor *t, float *out) {
    switch (t->dtype) {
    case SB_ST_F32: memcpy(out, t->data, t->numel * sizeof(float)); return SB_OK;
    case SB_ST_F16: sb_f16_to_f32_array(out, t->data, t->numel); return SB_OK;
    case SB_ST_BF16: sb_bf16_to_f32_array(out, t->data, t->numel); return SB_OK;
    default:
        return sb_error("%s: tensor '%.80s' has dtype %s (supported: F32, F16, BF16)", f->path, t->name,
                        sb_st_dtype_name(t->dtype));
    }
}

void sb_st_release(const sb_st_file *f, const sb_st_tensor *t) {
    if (!f->map || t->nbytes == 0) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)f->map, b = (uintptr_t)t->data, e = b + t->nbytes;
    b -= (b - base) % page;
    /* neighbours sharing an edge page just fault it back in from the file */
    (void)madvise((void *)b, e - b, MADV_DONTNEED);
}

/* ---------------------------------------------------------------- sharded sets */

void sb_st_set_close(sb_st_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) sb_st_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}

const sb_st_tensor *sb_st_set_find(const sb_st_set *s, const char *name, const sb_st_file **file) {
    for (int i = 0; i < s->n_files; i++) {
        const sb_st_tensor *t = sb_st_find(&s->files[i], name);
        if (t) {
            if (file) *file = &s->files[i];
            return t;
        }
    }
    return NULL;
}

/* A shard name from an index must stay inside the model directory. */
static bool plain_file_name(const char *s) {
    return s[0] && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/') && strlen(s) < 256;
}

static int open_index(sb_st_set *s, const char *dir, const char *ipath) {
    char *json;
    size_t n;
    if (sb_read_file(ipath, &json, &n)) return SB_ERR;
    cJSON *root = cJSON_ParseWithLength(json, n);
    free(json);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return sb_error("%s: not a JSON object with a weight_map", ipath);
    }
    int count = cJSON_GetArraySize(wm);
    char **names = calloc((size_t)count + 1, sizeof(char *)); /* distinct shard file names */
    s->files = calloc((size_t)count + 1, sizeof(sb_st_file));
    int n_names = 0, rc = SB_OK;
    if (!names || !s->files) rc = sb_error("%s: out of memory", ipath);
    for (const cJSON *e = wm->child; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
            rc = sb_error("%s: weight_map entry '%.80s' does not name a file in %s", ipath, e->string, dir);
            break;
        }
        int k = 0;
        while (k < n_names && strcmp(names[k], e->valuestring)) k++;
        if (k == n_names) {
            names[n_names++] = e->valuestring;
            char p[4096];
            if (snprintf(p, sizeof p, "%s/%s", dir, e->valuestring) >= (int)sizeof p)
                rc = sb_error("%s: path too long", dir);
            else if (sb_st_open(&s->files[s->n_files], p))
                rc = SB_ERR;
            else
                s->n_files++;
        }
        if (!rc) {
            const sb_st_tensor *t = NULL;
            for (int i = 0; i < s->n_files && !t; i++)
                if (!strcmp(strrchr(s->files[i].path, '/') + 1, e->valuestring)) t = sb_st_find(&s->files[i], e->string);
            if (!t) rc = sb_error("%s/%s: tensor '%.80s' listed in the index is missing", dir, e->valuestring, e->string);
        }
    }
    free(names);
    cJSON_Delete(root);
    if (!rc && s->n_files == 0) rc = sb_error("%s: weight_map is empty", ipath);
    return rc;
}

int sb_st_set_open(sb_st_set *s, const char *dir) {
    memset(s, 0, sizeof *s);
    char p[4096];
    struct stat st;
    if (snprintf(p, sizeof p, "%s/model.safetensors", dir) >= (int)sizeof p) return sb_error("%s: path too long", dir);
    if (stat(p, &st) == 0) {
        s->files = calloc(1, sizeof(sb_st_file));
        if (!s->files) return sb_error("%s: out of memory", p);
        if (sb_st_open(&s->files[0], p)) {
            sb_st_set_close(s);
            return SB_ERR;
        }
        s->n_files = 1;
        return SB_OK;
    }
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (stat(p, &st) != 0)
        return sb_error("%s/model.safetensors: missing (and no model.safetensors.index.json)", dir);
    if (open_index(s, dir, p)) {
        sb_st_set_close(s);
        return SB_ERR;
    }
    return SB_OK;
}

/* ---------------------------------------------------------------- writer */

static int write_all(int fd, const void *buf, size_t n, const char *path) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sb_error("%s: write failed: %s", path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return SB_OK;
}

int sb_st_write(const char *path, const sb_st_write_tensor *tensors, int n, sb_dtype dtype,
                const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    return sb_st_write_raw(path, tensors, NULL, n, dtype, meta_keys, meta_values, n_meta);
}

int sb_st_write_raw(const char *path, const sb_st_write_tensor *tensors, const sb_weight *raws, int n, sb_dtype dtype,
                    const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    static const char *const names[] = {"F32", "F16", "BF16"};
    if ((unsigned)dtype > SB_DTYPE_BF16) return sb_error("%s: unsupported output dtype %d", path, (int)dtype);
    size_t esize = dtype == SB_DTYPE_F32 ? 4 : 2;
    cJSON *root = cJSON_CreateObject();
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(m, meta_keys[i], meta_values[i]);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const sb_st_write_tensor *t = &tensors[i];
        size_t numel = 1, nbytes, end;
        if (t->ndim < 0 || t->ndim > SB_ST_MAX_DIMS) {
            cJSON_Delete(root);
            return sb_error("%s: tensor '%s' has %d dims", path, t->name, t->ndim);
        }
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(e, "dtype", names[dtype]);
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        bool ok = true;
        for (int d = 0; d < t->ndim; d++) {
            ok = ok && t->shape[d] >= 0 && sb_mul_size(numel, (size_t)t->shape[d], &numel);
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        }
        ok = ok && sb_mul_size(numel, esize, &nbytes) && sb_add_size(off, nbytes, &end) &&
             (double)end <= ST_MAX_JSON_INT && (numel == 0 || t->data || (raws && raws[i].data));
        if (!ok) {
            cJSON_Delete(root);
            return sb_error("%s: tensor '%s' has an invalid shape or no data", path, t->name);
        }
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)end));
        off = end;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!hdr) return sb_error("%s: out of memory building the header", path);
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8; /* data stays 8-byte aligned */
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        cJSON_free(hdr);
        return sb_error("%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        cJSON_free(hdr);
        return sb_error("%s: cannot write: %s", path, strerror(errno));
    }
    int rc = write_all(fd, lenbuf, 8, path);
    if (!rc) rc = write_all(fd, hdr, hlen, path);
    if (!rc && padded > hlen) rc = write_all(fd, "        ", padded - hlen, path);
    cJSON_free(hdr);
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc_check(CHUNK * 4);
    float *fbuf = malloc_check(CHUNK * sizeof(float));
    for (int i = 0; i < n && !rc; i++) {
        const sb_st_write_tensor *t = &tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        const sb_weight *r = raws && raws[i].data ? &raws[i] : NULL;
        const bool raw = r && (unsigned)r->dtype <= SB_DTYPE_BF16;
        const size_t src_size = raw && r->dtype != SB_DTYPE_F32 ? 2 : 4;
        for (size_t s = 0; s < numel && !rc; s += CHUNK) {
            size_t k = numel - s < CHUNK ? numel - s : CHUNK;
            const float *x = raw ? NULL : t->data + s;
            if (raw && r->dtype == dtype) {
                rc = write_all(fd, (const unsigned char *)r->data + s * src_size, k * esize, path);
                continue;
            }
            if (raw) { /* through fp32: bf16/fp16 -> fp32 is exact */
                const unsigned char *p = (const unsigned char *)r->data + s * src_size;
                if (r->dtype == SB_DTYPE_F32) memcpy(fbuf, p, k * 4);
                else if (r->dtype == SB_DTYPE_F16) sb_f16_to_f32_array(fbuf, p, k);
                else sb_bf16_to_f32_array(fbuf, p, k);
                x = fbuf;
            }
            if (dtype == SB_DTYPE_F32) memcpy(buf, x, k * 4);
            else if (dtype == SB_DTYPE_F16) sb_f32_to_f16_array(buf, x, k);
            else sb_f32_to_bf16_array(buf, x, k);
            rc = write_all(fd, buf, k * esize, path);
        }
    }
    free(buf);
    free(fbuf);
    if (!rc && fsync(fd) != 0) rc = sb_error("%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !rc) rc = sb_error("%s: close failed: %s", path, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = sb_error("%s: cannot rename into place: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    else sb_fsync_dir(path);
    return rc;
}
