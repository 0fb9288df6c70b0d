/* Writing checkpoints: one model.safetensors, or shards in the Hugging Face layout
 * (model-0000i-of-0000n.safetensors plus model.safetensors.index.json: {"metadata":
 * {"total_size": bytes}, "weight_map": {tensor: file}}, which sb_st_set_open already reads), so
 * that no shipped file exceeds a size limit (the repository keeps files of at most 16 MiB). */
#include "engine/model.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/hfconfig.h"
#include "engine/safetensors.h"

#define INDEX_NAME "model.safetensors.index.json"

static bool is_weight_file(const char *name) {
    size_t n = strlen(name), s = strlen(".safetensors");
    if (!strcmp(name, INDEX_NAME)) return true;
    return !strncmp(name, "model", 5) && n > s && !strcmp(name + n - s, ".safetensors");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int sb_model_weight_files(const char *dir, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return sb_error("%s: cannot list the model directory: %s", dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    bool single = access(path, F_OK) == 0;
    int cap = 0, cnt = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* a single-file checkpoint is only that file; shards are read through the index */
        if (single ? strcmp(e->d_name, "model.safetensors") != 0 : !is_weight_file(e->d_name)) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) break;
            v = nv;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
        if (!(v[cnt] = strdup(path))) break;
        cnt++;
    }
    closedir(d);
    if (cnt > 1) qsort(v, (size_t)cnt, sizeof *v, cmp_str); /* v is NULL when nothing matched */
    *out = v;
    *n = cnt;
    return SB_OK;
}

void sb_model_weight_files_free(char **files, int n) {
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
}

/* Remove the files of the other layout, so a directory never holds both. */
static void remove_stale(const char *dir, bool keep_single, int n_shards) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[4096], want[64];
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_weight_file(e->d_name)) continue;
        bool keep;
        if (!strcmp(e->d_name, "model.safetensors")) keep = keep_single;
        else if (!strcmp(e->d_name, INDEX_NAME)) keep = !keep_single;
        else {
            keep = false;
            for (int i = 1; i <= n_shards && !keep_single && !keep; i++) {
                snprintf(want, sizeof want, "model-%05d-of-%05d.safetensors", i, n_shards);
                keep = !strcmp(e->d_name, want);
            }
        }
        if (!keep && snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) unlink(path);
    }
    closedir(d);
}

/* One tensor of the model as the writer takes it: fp32 values, or the stored compact ones. */
static void fill_entry(sb_st_write_tensor *wt, sb_weight *raw, const sb_tensor_ref *t) {
    memset(wt, 0, sizeof *wt);
    wt->name = t->name;
    wt->data = t->data;
    *raw = t->stored;
    wt->ndim = t->ndim;
    wt->shape[0] = t->shape[0];
    wt->shape[1] = t->shape[1];
}

static const char *const meta_keys[] = {"format"}, *const meta_values[] = {"pt"}; /* transformers insists */

static int save_single(const sb_model *m, const char *dir) {
    const sb_model_config *c = &m->cfg;
    if (sb_model_config_validate(c)) return SB_ERR;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return sb_error("%s: cannot create directory: %s", dir, strerror(errno));
    int nt = sb_model_tensor_count(c);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_st_write_tensor *wt = malloc_check((size_t)nt * sizeof *wt);
    sb_weight *raw = malloc_check((size_t)nt * sizeof *raw);
    sb_model_tensor_list(c, m, t);
    for (int i = 0; i < nt; i++) fill_entry(&wt[i], &raw[i], &t[i]);
    char path[4096];
    int rc = snprintf(path, sizeof path, "%s/model.safetensors", dir) >= (int)sizeof path
                 ? sb_error("%s: path too long", dir) : SB_OK;
    if (!rc) rc = sb_st_write_raw(path, wt, raw, nt, c->dtype, meta_keys, meta_values, 1);
    /* config last: a directory with a config.json always has its weights */
    if (!rc && snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        rc = sb_error("%s: path too long", dir);
    if (!rc) rc = sb_hfconfig_save(c, path);
    free(t), free(wt), free(raw);
    return rc;
}

int sb_model_save(const sb_model *m, const char *dir) { return sb_model_save_sharded(m, dir, 0); }

int sb_model_save_sharded(const sb_model *m, const char *dir, uint64_t max_shard_bytes) {
    const sb_model_config *c = &m->cfg;
    size_t es = c->dtype == SB_DTYPE_F32 ? 4 : 2;
    int nt = sb_model_tensor_count(c);
    sb_tensor_ref *t = malloc_check((size_t)nt * sizeof *t);
    sb_model_tensor_list(c, m, t);
    uint64_t total = 0;
    for (int i = 0; i < nt; i++) total += (uint64_t)t[i].numel * es;
    /* the JSON header: at most ~100 bytes per tensor beside its name, plus 8 + 64 + padding */
    const uint64_t base = 8 + 64 + 8;
    if (max_shard_bytes == 0 || total + base + (uint64_t)nt * 200 <= max_shard_bytes) {
        free(t);
        int rc = save_single(m, dir);
        if (!rc) remove_stale(dir, true, 0);
        return rc;
    }
    if (sb_model_config_validate(c)) return free(t), SB_ERR;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        free(t);
        return sb_error("%s: cannot create directory: %s", dir, strerror(errno));
    }
    /* greedy, in storage order: a tensor joins the current shard unless that would pass the
     * limit (a single tensor above the limit is an error: it cannot be split) */
    int *shard_of = malloc_check((size_t)nt * sizeof(int));
    int n_shards = 0;
    uint64_t in_shard = 0;
    for (int i = 0; i < nt; i++) {
        uint64_t b = (uint64_t)t[i].numel * es + strlen(t[i].name) + 100;
        if (b + base > max_shard_bytes) {
            int rc = sb_error("%s: tensor '%s' (%llu bytes) does not fit in a shard of %llu bytes", dir, t[i].name,
                              (unsigned long long)b, (unsigned long long)max_shard_bytes);
            free(t), free(shard_of);
            return rc;
        }
        if (n_shards == 0 || in_shard + b + base > max_shard_bytes) n_shards++, in_shard = 0;
        shard_of[i] = n_shards;
        in_shard += b;
    }
    sb_st_write_tensor *wt = malloc_check((size_t)nt * sizeof *wt);
    sb_weight *raw = malloc_check((size_t)nt * sizeof *raw);
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    char path[4096], name[64];
    int rc = SB_OK;
    for (int s = 1; s <= n_shards && !rc; s++) {
        int k = 0;
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s, n_shards);
        for (int i = 0; i < nt; i++) {
            if (shard_of[i] != s) continue;
            fill_entry(&wt[k], &raw[k], &t[i]);
            cJSON_AddStringToObject(map, t[i].name, name);
            k++;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) rc = sb_error("%s: path too long", dir);
        if (!rc) rc = sb_st_write_raw(path, wt, raw, k, c->dtype, meta_keys, meta_values, 1);
    }
    char *json = rc ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!rc && !json) rc = sb_error("%s: out of memory", dir);
    if (!rc && snprintf(path, sizeof path, "%s/%s", dir, INDEX_NAME) >= (int)sizeof path)
        rc = sb_error("%s: path too long", dir);
    if (!rc) rc = sb_write_file_atomic(path, json, strlen(json));
    cJSON_free(json);
    /* the index is in place: the single file (if any) and other shard sets would shadow it */
    if (!rc) remove_stale(dir, false, n_shards);
    if (!rc && snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        rc = sb_error("%s: path too long", dir);
    if (!rc) rc = sb_hfconfig_save(c, path);
    free(t), free(shard_of), free(wt), free(raw);
    return rc;
}
