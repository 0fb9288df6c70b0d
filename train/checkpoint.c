/* The resumable training state: DIR/train_state.bin.
 *
 * Layout (host byte order, checked by an endianness marker; offsets in bytes):
 *   0   "SBTRAIN1"  8      magic
 *   8   u32 0x01020304     endianness marker
 *   12  u32 version (1)
 *   16  u64 n_params, i64 step, u64 rng[4], f64 rng_spare, u64 rng_has_spare,
 *       i64 n_train_tokens, i64 n_step_loss, i64 n_evals, i32 n_layers, i32 n_heads,
 *       u32 n_fields, u32 0
 *   120 n_fields x {char name[40], f64 value}: config values a resume must match
 *       f32 params[n_params], f32 adam_m[n_params], f32 adam_v[n_params]
 *       f32 step_loss[n_step_loss]
 *       evals: i64 step[n], f64 train_loss[n], f64 heldout_loss[n], f64 tokens_per_s[n],
 *              f64 lr[n], f64 sink_share[n * n_layers * n_heads]
 *       u32 crc32 (zlib) of all bytes before it
 * The whole file is checked (size from the header counts, CRC) before anything is used. */
#include "train/trainer.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/common.h"

#define CKPT_MAGIC "SBTRAIN1"
#define CKPT_VERSION 1u
#define CKPT_ENDIAN 0x01020304u
#define CKPT_HEADER 120
#define FIELD_NAME 40
#define FIELD_BYTES (FIELD_NAME + 8)
#define MAX_FIELDS 64

typedef struct {
    char name[FIELD_NAME];
    double value;
} ckpt_field;

/* The values that fix the numbers a run produces; a resume under a config that differs in
 * any of them could not continue the same run. */
static int config_fields(const sb_trainer *t, ckpt_field *f) {
    const sb_train_config *c = t->cfg;
    const sb_model_config *m = &c->model;
    int n = 0;
    memset(f, 0, MAX_FIELDS * sizeof *f); /* names are written whole: no stack bytes in the file */
#define FIELD(nm, v) (snprintf(f[n].name, FIELD_NAME, "%s", nm), f[n].value = (double)(v), n++)
    FIELD("model.vocab", m->vocab_size);
    FIELD("model.dim", m->dim);
    FIELD("model.layers", m->n_layers);
    FIELD("model.heads", m->n_heads);
    FIELD("model.kv_heads", m->n_kv_heads);
    FIELD("model.head_dim", m->head_dim);
    FIELD("model.ffn", m->ffn_dim);
    FIELD("model.ctx", m->max_ctx);
    FIELD("model.rope_theta", m->rope_theta);
    FIELD("model.norm_eps", m->norm_eps);
    FIELD("model.tie_embeddings", m->tie_embeddings);
    FIELD("model.init_std", c->init_std);
    FIELD("data.seq_len", c->seq_len);
    FIELD("data.train_tokens", t->n_train_tokens);
    FIELD("optim.lr", c->lr);
    FIELD("optim.min_lr", c->min_lr);
    FIELD("optim.warmup", c->warmup);
    FIELD("optim.steps", c->steps);
    FIELD("optim.batch", c->batch);
    FIELD("optim.grad_accum", c->grad_accum);
    FIELD("optim.weight_decay", c->weight_decay);
    FIELD("optim.beta1", c->beta1);
    FIELD("optim.beta2", c->beta2);
    FIELD("optim.eps", c->eps);
    FIELD("optim.clip", c->clip);
    FIELD("run.seed", (double)c->seed);
    FIELD("variant.type", c->variant);
    FIELD("variant.sink_token_id", m->sink_token_id);
    FIELD("variant.sink_target", c->sink_target_first);
#undef FIELD
    return n;
}

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
#define PUT(b, v) put((b), &(v), sizeof(v))

/* Bytes after the fixed header and fields; false on overflow. */
static bool body_size(uint64_t n_params, int64_t n_loss, int64_t n_evals, int64_t lh, size_t *out) {
    size_t a, b, c, s = 0;
    if (n_loss < 0 || n_evals < 0 || lh < 0) return false;
    if (!sb_mul_size((size_t)n_params, 3 * sizeof(float), &a)) return false;
    if (!sb_mul_size((size_t)n_loss, sizeof(float), &b)) return false;
    if (!sb_mul_size((size_t)n_evals, 5 * 8, &c)) return false;
    if (!sb_add_size(a, b, &s) || !sb_add_size(s, c, &s)) return false;
    if (!sb_mul_size((size_t)n_evals, (size_t)lh, &c) || !sb_mul_size(c, 8, &c) || !sb_add_size(s, c, &s))
        return false;
    *out = s;
    return true;
}

int sb_train_checkpoint_save(const sb_trainer *t, const char *path) {
    ckpt_field fields[MAX_FIELDS];
    int nf = config_fields(t, fields);
    const sb_train_history *h = &t->hist;
    int64_t lh = (int64_t)h->n_layers * h->n_heads;
    size_t body;
    if (!body_size(t->model.n_params, t->step, h->n, lh, &body))
        return sb_error("%s: checkpoint too large", path);
    buf b = {0};
    b.cap = CKPT_HEADER + (size_t)nf * FIELD_BYTES + body + 4;
    b.p = malloc(b.cap);
    if (!b.p) return sb_error("%s: cannot allocate %zu bytes for the checkpoint", path, b.cap);
    uint32_t endian = CKPT_ENDIAN, version = CKPT_VERSION, zero = 0, u_nf = (uint32_t)nf;
    uint64_t np = t->model.n_params, spare_flag = t->rng.has_spare;
    int32_t L = h->n_layers, H = h->n_heads;
    int64_t n_loss = t->step;
    put(&b, CKPT_MAGIC, 8);
    PUT(&b, endian);
    PUT(&b, version);
    PUT(&b, np);
    PUT(&b, t->step);
    put(&b, t->rng.s, sizeof t->rng.s);
    PUT(&b, t->rng.spare);
    PUT(&b, spare_flag);
    PUT(&b, t->n_train_tokens);
    PUT(&b, n_loss);
    PUT(&b, h->n);
    PUT(&b, L);
    PUT(&b, H);
    PUT(&b, u_nf);
    PUT(&b, zero);
    for (int i = 0; i < nf; i++) {
        put(&b, fields[i].name, FIELD_NAME);
        PUT(&b, fields[i].value);
    }
    put(&b, t->model.params, np * sizeof(float));
    put(&b, t->adam_m, np * sizeof(float));
    put(&b, t->adam_v, np * sizeof(float));
    put(&b, t->step_loss, (size_t)n_loss * sizeof(float));
    size_t n = (size_t)h->n;
    put(&b, h->step, n * 8);
    put(&b, h->train_loss, n * 8);
    put(&b, h->heldout_loss, n * 8);
    put(&b, h->tokens_per_s, n * 8);
    put(&b, h->lr, n * 8);
    put(&b, h->sink_share, n * (size_t)lh * 8);
    uint32_t crc = (uint32_t)crc32_z(0L, b.p, b.len);
    PUT(&b, crc);
    int rc = sb_write_file_atomic(path, b.p, b.len);
    free(b.p);
    return rc;
}

typedef struct {
    const unsigned char *p;
    size_t pos;
} rd;

static void get(rd *r, void *dst, size_t n) {
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
}
#define GET(r, v) get((r), &(v), sizeof(v))

int sb_train_checkpoint_load(sb_trainer *t, const char *path) {
    char *data;
    size_t size;
    if (sb_read_file(path, &data, &size)) return SB_ERR;
    int rc = SB_ERR;
    rd r = {(const unsigned char *)data, 0};
    if (size < CKPT_HEADER + 4 || memcmp(data, CKPT_MAGIC, 8) != 0) {
        sb_error("%s: not a sinkbench training state (bad magic or too short)", path);
        goto out;
    }
    r.pos = 8;
    uint32_t endian, version, nf, reserved;
    uint64_t np, spare_flag;
    int64_t step, ntt, n_loss, n_evals;
    int32_t L, H;
    sb_rng rng;
    GET(&r, endian);
    GET(&r, version);
    if (endian != CKPT_ENDIAN || version != CKPT_VERSION) {
        sb_error("%s: unsupported training state (version %u, byte order %08x)", path, version, endian);
        goto out;
    }
    GET(&r, np);
    GET(&r, step);
    get(&r, rng.s, sizeof rng.s);
    GET(&r, rng.spare);
    GET(&r, spare_flag);
    rng.has_spare = spare_flag != 0;
    GET(&r, ntt);
    GET(&r, n_loss);
    GET(&r, n_evals);
    GET(&r, L);
    GET(&r, H);
    GET(&r, nf);
    GET(&r, reserved);
    (void)reserved;
    if (nf > MAX_FIELDS || size < CKPT_HEADER + (size_t)nf * FIELD_BYTES + 4) {
        sb_error("%s: corrupt header (%u config fields)", path, nf);
        goto out;
    }
    /* the config must agree before sizes are compared: a mismatch is the likelier mistake */
    ckpt_field want[MAX_FIELDS];
    int nw = config_fields(t, want);
    for (uint32_t i = 0; i < nf; i++) {
        ckpt_field f;
        get(&r, f.name, FIELD_NAME);
        GET(&r, f.value);
        f.name[FIELD_NAME - 1] = '\0';
        for (int j = 0; j < nw; j++)
            if (!strcmp(want[j].name, f.name) && want[j].value != f.value) {
                if (!strcmp(f.name, "data.train_tokens"))
                    sb_error("%s: the training data changed (%.17g tokens at the checkpoint, %.17g now)", path,
                             f.value, want[j].value);
                else
                    sb_error("%s: the checkpoint was made with %s = %.17g, the config says %.17g", path, f.name,
                             f.value, want[j].value);
                goto out;
            }
    }
    size_t body;
    size_t lh = (size_t)(L > 0 ? L : 0) * (size_t)(H > 0 ? H : 0);
    if (np != t->model.n_params || L != t->hist.n_layers || H != t->hist.n_heads) {
        sb_error("%s: holds %llu parameters in %d x %d heads, the model has %zu in %d x %d", path,
                 (unsigned long long)np, L, H, t->model.n_params, t->hist.n_layers, t->hist.n_heads);
        goto out;
    }
    if (step < 0 || step > t->cfg->steps || n_loss != step || n_evals < 0 || n_evals > step + 1 ||
        !body_size(np, n_loss, n_evals, (int64_t)lh, &body) || r.pos + body + 4 != size) {
        sb_error("%s: truncated or corrupt (size %zu does not match step %lld, %lld evaluations)", path, size,
                 (long long)step, (long long)n_evals);
        goto out;
    }
    uint32_t crc_file;
    memcpy(&crc_file, data + size - 4, 4);
    if ((uint32_t)crc32_z(0L, (const unsigned char *)data, size - 4) != crc_file) {
        sb_error("%s: checksum mismatch (corrupt file)", path);
        goto out;
    }
    get(&r, t->model.params, np * sizeof(float));
    get(&r, t->adam_m, np * sizeof(float));
    get(&r, t->adam_v, np * sizeof(float));
    get(&r, t->step_loss, (size_t)n_loss * sizeof(float));
    sb_train_history *h = &t->hist;
    h->n = 0;
    size_t ne = (size_t)n_evals;
    int64_t *es = malloc_check((ne ? ne : 1) * 8);
    double *cols[4];
    for (int c = 0; c < 4; c++) cols[c] = malloc_check((ne ? ne : 1) * 8);
    double *sink = malloc_check((ne * lh > 0 ? ne * lh : 1) * 8);
    get(&r, es, ne * 8);
    for (int c = 0; c < 4; c++) get(&r, cols[c], ne * 8);
    get(&r, sink, ne * lh * 8);
    for (size_t i = 0; i < ne; i++)
        sb_train_history_push(h, es[i], cols[0][i], cols[1][i], cols[2][i], cols[3][i], sink + i * lh);
    free(es);
    for (int c = 0; c < 4; c++) free(cols[c]);
    free(sink);
    t->step = step;
    t->rng = rng;
    t->n_train_tokens = ntt;
    rc = SB_OK;
out:
    free(data);
    return rc;
}
