/* safetensors checkpoints: a memory-mapped, fully validated reader (single file or shards
 * listed by model.safetensors.index.json) and an atomic writer.
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value"}}
 * then the data section; offsets are relative to its start. Every size in the header is
 * checked against the real file size with overflow-safe arithmetic before use, so a
 * corrupted or hostile file yields an error, never a crash or a huge allocation. */
#ifndef SB_SAFETENSORS_H
#define SB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h" /* sb_dtype */

#define SB_ST_MAX_DIMS 8

/* Every dtype the format defines; only F32/F16/BF16 convert to fp32. */
typedef enum {
    SB_ST_F32, SB_ST_F16, SB_ST_BF16, SB_ST_F64, SB_ST_I64, SB_ST_I32, SB_ST_I16, SB_ST_I8,
    SB_ST_U64, SB_ST_U32, SB_ST_U16, SB_ST_U8, SB_ST_BOOL, SB_ST_F8_E4M3, SB_ST_F8_E5M2,
    SB_ST_N_DTYPES
} sb_st_dtype;

typedef struct {
    char *name;
    sb_st_dtype dtype;
    int ndim;
    int64_t shape[SB_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const unsigned char *data;        /* inside the mapping; any alignment */
} sb_st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    sb_st_tensor *tensors;            /* in header (name) order of the JSON object */
    int n_tensors;
    char **meta_keys, **meta_values;  /* __metadata__ string pairs */
    int n_meta;
} sb_st_file;

const char *sb_st_dtype_name(sb_st_dtype d);
size_t sb_st_dtype_size(sb_st_dtype d);

/* Map and validate path. On error nothing stays open and the message names path. */
int sb_st_open(sb_st_file *f, const char *path);
void sb_st_close(sb_st_file *f);
/* NULL when absent. */
const sb_st_tensor *sb_st_find(const sb_st_file *f, const char *name);
/* __metadata__ value or NULL. */
const char *sb_st_meta(const sb_st_file *f, const char *key);
/* Convert a tensor to fp32: out[t->numel]. Errors (naming file, tensor and dtype) for dtypes
 * other than F32/F16/BF16. */
int sb_st_read_f32(const sb_st_file *f, const sb_st_tensor *t, float *out);

/* Drop the tensor's pages from this process's resident set once converted (the mapping stays
 * valid; a later access reads the file again). Keeps peak RSS of a load near the fp32 copy. */
void sb_st_release(const sb_st_file *f, const sb_st_tensor *t);

/* A checkpoint directory: model.safetensors, or the shards of model.safetensors.index.json. */
typedef struct {
    sb_st_file *files;
    int n_files;
} sb_st_set;

/* Open dir/model.safetensors if present, else dir/model.safetensors.index.json and its shards
 * (every weight_map entry must exist in the shard it names). */
int sb_st_set_open(sb_st_set *s, const char *dir);
void sb_st_set_close(sb_st_set *s);
/* Find a tensor in any shard; *file (optional) receives its file. NULL when absent. */
const sb_st_tensor *sb_st_set_find(const sb_st_set *s, const char *name, const sb_st_file **file);

/* ---- writer ---- */
typedef struct {
    const char *name;
    const float *data;                /* fp32 values, converted to the file dtype on write */
    int ndim;
    int64_t shape[SB_ST_MAX_DIMS];
} sb_st_write_tensor;

/* Write tensors (in the given order) as dtype F32, F16 or BF16, with optional metadata
 * (n_meta key/value string pairs). Atomic: temp file, fsync, rename. */
int sb_st_write(const char *path, const sb_st_write_tensor *tensors, int n, sb_dtype dtype,
                const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* Same, where raw[i].data (when not NULL) replaces tensors[i].data: values of raw[i].dtype at
 * any alignment, copied as they are when that is the file dtype (a compact model saves
 * without a detour through fp32). */
int sb_st_write_raw(const char *path, const sb_st_write_tensor *tensors, const sb_weight *raw, int n, sb_dtype dtype,
                    const char *const *meta_keys, const char *const *meta_values, int n_meta);

#endif
