#include "cli/cli_shard.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/dist.h"
#include "engine/common.h"

int cli_shard_plan(cli_shard *s, const sb_model_config *c, const sb_policy_spec *p, sb_eval_mode mode, int64_t n_pred,
                   int64_t chunk) {
    s->rank = sb_dist()->rank;
    s->ranks = sb_dist()->size;
    s->shards = calloc((size_t)s->ranks, sizeof *s->shards);
    s->per = calloc((size_t)s->ranks, sizeof *s->per);
    if (!s->shards || !s->per) return sb_error("out of memory for %d shards", s->ranks);
    const char *how = getenv("SB_TEST_SHARDS");
    int rc = how && !strcmp(how, "equal") ? sb_shard_plan_equal(c, p, mode, n_pred, chunk, s->ranks, s->shards)
                                          : sb_shard_plan(c, p, mode, n_pred, chunk, s->ranks, s->shards);
    if (rc) return rc;
    s->from = s->shards[s->rank].from;
    s->to = s->shards[s->rank].to;
    s->halo_share = sb_shard_overhead(c, p, n_pred, chunk, s->shards, s->ranks);
    sb_shard whole;
    sb_shard_measure(c, p, n_pred, chunk, 0, n_pred, &whole);
    double max = 0;
    for (int r = 0; r < s->ranks; r++)
        if (s->shards[r].cost > max) max = s->shards[r].cost;
    s->speedup_model = max > 0 ? whole.cost / max : 1.0;
    return SB_OK;
}

void cli_shard_hash(const cli_shard *s, sb_resume_hash *h) {
    sb_resume_hash_i64(h, "mpi_ranks", s->ranks);
    sb_resume_hash_i64(h, "shard_from", s->from);
    sb_resume_hash_i64(h, "shard_to", s->to);
}

int cli_shard_test_fail(const cli_shard *s) {
    const char *e = getenv("SB_TEST_FAIL_RANK");
    if (!e || !*e) return SB_OK;
    char *end;
    long r = strtol(e, &end, 10);
    if (end == e || r != s->rank) return SB_OK;
    if (!strcmp(end, ":kill")) raise(SIGKILL);
    return sb_error("failing on purpose (SB_TEST_FAIL_RANK=%s)", e);
}

int cli_shard_gather(cli_shard *s, float *nll, const cli_shard_rank *mine) {
    int rc = sb_dist_allgather(mine, sizeof *mine, s->per);
    if (rc) return rc;
    int64_t *from = malloc((size_t)s->ranks * sizeof *from), *to = malloc((size_t)s->ranks * sizeof *to);
    if (!from || !to) rc = sb_error("out of memory for %d shards", s->ranks);
    for (int r = 0; r < s->ranks && !rc; r++) from[r] = s->shards[r].from, to[r] = s->shards[r].to;
    if (!rc) rc = sb_dist_gather_ranges_f32(nll, from, to, 0);
    free(from);
    free(to);
    return rc;
}

double cli_shard_wall_s(const cli_shard *s) {
    double w = 0;
    for (int r = 0; r < s->ranks; r++)
        if (s->per[r].wall_s > w) w = s->per[r].wall_s;
    return w;
}

int64_t cli_shard_resumed(const cli_shard *s) {
    int64_t n = 0;
    for (int r = 0; r < s->ranks; r++) n += s->per[r].resumed;
    return n;
}

/* ---------------------------------------------------------------- outputs */

typedef enum { F_SEGMENT, F_HALO, F_SINKS, F_FORWARDED, F_WALL, F_RSS, F_RESUMED, F_HOST, F_DEVICE } field;

static cJSON *field_array(const cli_shard *s, field f) {
    cJSON *a = cJSON_CreateArray();
    for (int r = 0; r < s->ranks; r++) {
        const sb_shard *x = &s->shards[r];
        const cli_shard_rank *m = &s->per[r];
        cJSON *v = NULL;
        switch (f) {
        case F_SEGMENT:
            v = cJSON_CreateArray();
            cJSON_AddItemToArray(v, cJSON_CreateNumber((double)x->from));
            cJSON_AddItemToArray(v, cJSON_CreateNumber((double)x->to));
            break;
        case F_HALO: v = cJSON_CreateNumber((double)(x->from < x->to ? x->halo : 0)); break;
        case F_SINKS: v = cJSON_CreateNumber((double)x->sink_tokens); break;
        case F_FORWARDED: v = cJSON_CreateNumber((double)x->forwarded); break;
        case F_WALL: v = cJSON_CreateNumber(m->wall_s); break;
        case F_RSS: v = cJSON_CreateNumber(m->peak_rss_mb); break;
        case F_RESUMED: v = cJSON_CreateNumber((double)m->resumed); break;
        case F_HOST: v = cJSON_CreateString(m->host); break;
        case F_DEVICE: v = cJSON_CreateString(m->device); break;
        }
        cJSON_AddItemToArray(a, v);
    }
    return a;
}

static const struct {
    const char *key;
    field f;
} fields[] = {
    {"segments", F_SEGMENT}, {"halos", F_HALO},     {"sink_tokens", F_SINKS}, {"forwarded", F_FORWARDED},
    {"wall_s", F_WALL},      {"peak_rss_mb", F_RSS}, {"resumed", F_RESUMED}, {"hosts", F_HOST},
    {"devices", F_DEVICE},
};

/* Per-rank lists as attributes holding JSON arrays ("[[0,34560],[34560,65535]]"): the
 * result keeps a single process's datasets, and any JSON reader takes the lists apart. */
int cli_shard_h5(const cli_shard *s, sb_h5 *f) {
    int rc = sb_h5_attr_i64(f, NULL, "mpi_ranks", s->ranks);
    rc = rc ? rc : sb_h5_attr_str(f, NULL, "mpi_library", sb_dist_library());
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "mpi_halo_share", s->halo_share);
    rc = rc ? rc : sb_h5_attr_f64(f, NULL, "mpi_speedup_model", s->speedup_model);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !rc; i++) {
        cJSON *a = field_array(s, fields[i].f);
        char *text = cJSON_PrintUnformatted(a);
        cJSON_Delete(a);
        if (!text) return sb_error("out of memory writing the shards");
        char key[64];
        snprintf(key, sizeof key, "mpi_%s", fields[i].key);
        rc = sb_h5_attr_str(f, NULL, key, text);
        free(text);
    }
    return rc;
}

void cli_shard_json(const cli_shard *s, cJSON *o) {
    cJSON *m = cJSON_AddObjectToObject(o, "mpi");
    cJSON_AddNumberToObject(m, "ranks", s->ranks);
    cJSON_AddStringToObject(m, "library", sb_dist_library());
    cJSON_AddNumberToObject(m, "halo_share", s->halo_share);
    cJSON_AddNumberToObject(m, "speedup_model", s->speedup_model);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cJSON_AddItemToObject(m, fields[i].key, field_array(s, fields[i].f));
}

void cli_shard_free(cli_shard *s) {
    free(s->shards);
    free(s->per);
    s->shards = NULL;
    s->per = NULL;
}
