/* The GPU trainer against the CPU trainer (tests/gpu/run.sh train):
 * - per variant (vanilla, sink_token targets, off-by-one, sink logit) and for MHA and GQA,
 *   fp32 GPU matmuls: the loss and every parameter's gradient match sb_train_forward /
 *   sb_train_backward (themselves central-difference checked in tests/test_train_grad.c), and
 *   one AdamW step matches sb_adamw_update; bf16 matmuls stay within bf16 accuracy;
 * - determinism: the same steps twice give bit-identical weights;
 * - sb_train_run with --device cuda: N steps straight == N/2, stop, resume, N/2 more, bit for
 *   bit (weights and losses), and its loss falls.
 * Prints one line per check and "N passed, M failed"; exit status 1 on any failure. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/model.h"
#include "engine/rng.h"
#include "train/train.h"
#include "train/train_gpu.h"
#include "tests/gpu/gpu_check.h"

typedef struct {
    const char *name;
    sb_softmax_kind softmax;
    bool sink_targets; /* position 0 of each sequence predicts nothing, as the sink-token variant */
    int kv_heads;
} variant;

static void make_config(sb_model_config *c, const variant *v) {
    sb_train_config tc;
    sb_train_config_default(&tc);
    *c = tc.model;
    c->vocab_size = 96;
    c->dim = 48;
    c->n_layers = 2;
    c->n_heads = 4;
    c->n_kv_heads = v->kv_heads;
    c->head_dim = 12;
    c->rotary_dim = 12;
    c->ffn_dim = 80;
    c->max_ctx = 64;
    c->tie_embeddings = false;
    c->softmax = v->softmax;
}

static void make_batch(int32_t *tok, int32_t *tgt, int B, int T, int V, bool sink, uint64_t seed) {
    sb_rng r;
    sb_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)sb_rng_below(&r, (uint64_t)V);
        tgt[i] = (int32_t)sb_rng_below(&r, (uint64_t)V);
        if (sink && i % T == 0) tgt[i] = -1;
    }
}

/* max |a - b| / max |b| over n */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0.0, m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > d || isnan(e)) d = isnan(e) ? INFINITY : e;
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
    }
    return m > 0 ? d / m : d;
}

/* Per tensor: the worst relative gradient difference and its name. */
static double worst_tensor(const sb_model *m, const float *a, const float *b, const char **name) {
    int nt = sb_model_tensor_count(&m->cfg);
    sb_tensor_ref *t = malloc((size_t)nt * sizeof *t);
    sb_model_tensor_list(&m->cfg, (sb_model *)m, t);
    double worst = 0.0;
    *name = "";
    for (int i = 0; i < nt; i++) {
        double d = rel_diff(a + t[i].offset, b + t[i].offset, t[i].numel);
        if (d > worst || isinf(d)) worst = d, *name = t[i].name;
    }
    free(t);
    return worst;
}

static void model_vs_cpu(const variant *v, sb_compute compute) {
    sb_model_config c;
    make_config(&c, v);
    sb_model m;
    if (sb_model_alloc(&m, &c)) {
        check(false, "%s: model alloc", v->name);
        return;
    }
    sb_train_init_weights(&m, 11, 0.08f);
    if (c.softmax == SB_SOFTMAX_SINK_LOGIT)
        for (int l = 0; l < c.n_layers; l++)
            for (int h = 0; h < c.n_heads; h++) m.w.layers[l].sink_logit[h] = 0.3f * (float)(h - 1);
    const int B = 3, T = 40, N = B * T;
    int32_t *tok = malloc(N * sizeof *tok), *tgt = malloc(N * sizeof *tgt);
    make_batch(tok, tgt, B, T, c.vocab_size, v->sink_targets, 7);
    sb_train_model tm;
    sb_train_model_init(&tm, &m, B, T);
    sb_train_zero_grad(&tm);
    float cpu_loss;
    sb_train_forward(&tm, tok, tgt, B, T, &cpu_loss);
    double cpu_sink[64] = {0}, gpu_sink[64] = {0};
    int64_t cq = sb_train_sink_share_accumulate(&tm, 5, cpu_sink);
    sb_train_backward(&tm, 0.5f);
    uint8_t *mask = sb_train_decay_mask(&m);
    sb_train_gpu *g;
    const char *mode = compute == SB_COMPUTE_F32 ? "f32" : "bf16";
    if (sb_train_gpu_open(&g, &m, mask, B, T, "cuda", compute)) {
        check(false, "%s %s: open", v->name, mode);
        goto out;
    }
    float gpu_loss = 0.0f;
    int nv = 0;
    int rc = sb_train_gpu_upload(g, m.params, NULL, NULL) || sb_train_gpu_zero_grad(g) ||
             sb_train_gpu_forward(g, tok, tgt, B, T, &gpu_loss, &nv);
    int64_t gq = rc ? -1 : sb_train_gpu_sink_share(g, 5, gpu_sink);
    rc = rc || gq < 0 || sb_train_gpu_backward(g, 0.5f);
    float *grad = malloc(m.n_params * sizeof(float));
    rc = rc || sb_train_gpu_download_grad(g, grad);
    check(!rc, "%s %s: GPU forward and backward run", v->name, mode);
    if (!rc) {
        bool f32 = compute == SB_COMPUTE_F32;
        double ltol = f32 ? 1e-5 : 2e-2, gtol = f32 ? 1e-4 : 8e-2;
        double dl = fabs((double)gpu_loss - cpu_loss) / fabs((double)cpu_loss);
        check(dl <= ltol, "%s %s: loss %.7f vs cpu %.7f (rel %.2e <= %.0e)", v->name, mode, gpu_loss, cpu_loss, dl, ltol);
        check(nv == tm.n_valid, "%s %s: %d valid targets", v->name, mode, nv);
        const char *name;
        double dg = worst_tensor(&m, grad, tm.grad.params, &name);
        check(dg <= gtol, "%s %s: gradients: worst tensor %s rel %.2e <= %.0e", v->name, mode, name, dg, gtol);
        double ds = 0.0;
        for (int i = 0; i < c.n_layers * c.n_heads; i++) ds = fmax(ds, fabs(gpu_sink[i] - cpu_sink[i]) / (double)cq);
        check(gq == cq && ds <= (f32 ? 1e-6 : 1e-2), "%s %s: sink share (%lld queries) max diff %.2e", v->name, mode,
              (long long)gq, ds);
        if (f32) {
            /* one AdamW step from the same gradients: the CPU update on the GPU's gradients */
            float *mm = calloc(m.n_params, sizeof(float)), *vv = calloc(m.n_params, sizeof(float));
            float *p_gpu = malloc(m.n_params * sizeof(float));
            double gn_cpu = sb_grad_global_norm(grad, m.n_params), gn_gpu = 0.0;
            float scale = gn_cpu > 0.05 ? (float)(0.05 / (gn_cpu + 1e-6)) : 1.0f;
            sb_adamw_update(m.params, grad, mm, vv, mask, m.n_params, 1, 1e-3, 0.9, 0.95, 1e-8, 0.5, scale);
            rc = sb_train_gpu_adamw(g, 1, 1e-3, 0.9, 0.95, 1e-8, 0.5, 0.05, &gn_gpu) ||
                 sb_train_gpu_download(g, p_gpu, NULL, NULL);
            double dp = rc ? INFINITY : rel_diff(p_gpu, m.params, m.n_params);
            check(!rc && dp <= 1e-6 && fabs(gn_gpu - gn_cpu) <= 1e-9 * gn_cpu,
                  "%s: AdamW step with clipping: weights rel %.2e, grad norm %.9g vs %.9g", v->name, dp, gn_gpu, gn_cpu);
            free(mm), free(vv), free(p_gpu);
        }
    }
    free(grad);
    sb_train_gpu_close(g);
out:
    free(mask);
    sb_train_model_free(&tm);
    sb_model_free(&m);
    free(tok), free(tgt);
}

/* Three steps twice from the same start: bit-identical weights (bf16 matmuls). */
static void determinism(void) {
    variant v = {"vanilla", SB_SOFTMAX_STANDARD, false, 4};
    sb_model_config c;
    make_config(&c, &v);
    sb_model m;
    sb_model_alloc(&m, &c);
    sb_train_init_weights(&m, 3, 0.05f);
    uint8_t *mask = sb_train_decay_mask(&m);
    const int B = 4, T = 64, N = B * T;
    int32_t *tok = malloc(N * sizeof *tok), *tgt = malloc(N * sizeof *tgt);
    float *out[2] = {malloc(m.n_params * 4), malloc(m.n_params * 4)};
    int rc = 0;
    for (int run = 0; run < 2 && !rc; run++) {
        sb_train_gpu *g;
        rc = sb_train_gpu_open(&g, &m, mask, B, T, "cuda", SB_COMPUTE_BF16) || sb_train_gpu_upload(g, m.params, NULL, NULL);
        for (int s = 0; s < 3 && !rc; s++) {
            float l;
            make_batch(tok, tgt, B, T, c.vocab_size, false, 100 + s);
            rc = sb_train_gpu_zero_grad(g) || sb_train_gpu_forward(g, tok, tgt, B, T, &l, NULL) ||
                 sb_train_gpu_backward(g, 1.0f) || sb_train_gpu_adamw(g, s + 1, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0, NULL);
        }
        rc = rc || sb_train_gpu_download(g, out[run], NULL, NULL);
        sb_train_gpu_close(g);
    }
    check(!rc && !memcmp(out[0], out[1], m.n_params * 4), "determinism: 3 bf16 steps twice, bit-identical weights");
    free(out[0]), free(out[1]), free(tok), free(tgt), free(mask);
    sb_model_free(&m);
}

/* ------------------------------------------------------------ sb_train_run on the GPU */

static char dir[256];

static void write_ids(const char *path, int64_t n, int vocab, uint64_t seed) {
    FILE *f = fopen(path, "w");
    sb_rng r;
    sb_rng_seed(&r, seed);
    int32_t prev = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t t = sb_rng_below(&r, 4) ? (prev * 5 + 3) % (vocab - 1) : (int32_t)sb_rng_below(&r, vocab - 1);
        fprintf(f, "%d%c", t, i % 20 == 19 ? '\n' : ' ');
        prev = t;
    }
    fclose(f);
}

static int run_config(sb_train_config *c) {
    char ini[2048];
    snprintf(ini, sizeof ini,
             "[model]\nvocab = 48\ndim = 64\nlayers = 2\nheads = 4\nffn = 128\nctx = 64\n"
             "[data]\ntrain = %s/train.ids\nheldout = %s/held.ids\nseq_len = 64\n"
             "[optim]\nlr = 3e-3\nmin_lr = 3e-4\nwarmup = 4\nsteps = 40\nbatch = 8\ngrad_accum = 2\nweight_decay = 0.1\n"
             "[run]\nseed = 5\nthreads = 2\neval_interval = 10\neval_tokens = 1024\ncheckpoint_interval = 15\n"
             "[variant]\ntype = sink_token\nsink_token_id = 47\n",
             dir, dir);
    sb_train_config_default(c);
    return sb_train_config_parse(c, ini, "test.ini");
}

static bool same_file(const char *a, const char *b) {
    char *da, *db;
    size_t na, nb;
    if (sb_read_file(a, &da, &na)) return false;
    if (sb_read_file(b, &db, &nb)) return free(da), false;
    bool same = na == nb && !memcmp(da, db, na);
    free(da), free(db);
    return same;
}

static void resume(void) {
    snprintf(dir, sizeof dir, "/tmp/sb_gpu_train_%d", (int)getpid());
    char p[512], q[512], cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd)) return check(false, "resume: temp dir");
    snprintf(p, sizeof p, "%s/train.ids", dir);
    write_ids(p, 40000, 48, 1);
    snprintf(p, sizeof p, "%s/held.ids", dir);
    write_ids(p, 4000, 48, 2);
    sb_train_config c;
    if (run_config(&c)) return check(false, "resume: config");
    sb_train_options o = {.quiet = true, .device = "cuda"};
    sb_train_result straight, first, second;
    snprintf(p, sizeof p, "%s/straight", dir);
    snprintf(q, sizeof q, "%s/split", dir);
    int rc = sb_train_run(&c, p, &o, &straight);
    o.stop_at_step = 20;
    rc = rc || sb_train_run(&c, q, &o, &first);
    o.stop_at_step = 0;
    o.resume = true;
    rc = rc || sb_train_run(&c, q, &o, &second);
    check(!rc && second.steps_done == 40, "resume: 40 steps straight, 20 + resume + 20 on the GPU");
    /* train_state.bin also holds each interval's tokens/s, which differ between runs: compare the
     * weights and the losses */
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/model.safetensors", p);
    snprintf(b, sizeof b, "%s/model.safetensors", q);
    check(!rc && same_file(a, b) && straight.last_heldout_loss == second.last_heldout_loss &&
              straight.last_train_loss == second.last_train_loss,
          "resume: weights bit-identical, held-out loss %.9g == %.9g, train loss %.9g == %.9g",
          straight.last_heldout_loss, second.last_heldout_loss, straight.last_train_loss, second.last_train_loss);
    check(!rc && straight.last_heldout_loss < log(48.0) - 0.5,
          "resume: held-out loss %.3f fell below uniform %.3f - 0.5", straight.last_heldout_loss, log(48.0));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    const variant vs[] = {
        {"vanilla MHA", SB_SOFTMAX_STANDARD, false, 4},
        {"vanilla GQA", SB_SOFTMAX_STANDARD, false, 2},
        {"sink-token targets", SB_SOFTMAX_STANDARD, true, 4},
        {"off-by-one GQA", SB_SOFTMAX_OFF_BY_ONE, false, 2},
        {"sink logit", SB_SOFTMAX_SINK_LOGIT, false, 4},
    };
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        model_vs_cpu(&vs[i], SB_COMPUTE_F32);
        model_vs_cpu(&vs[i], SB_COMPUTE_BF16);
    }
    determinism();
    resume();
    printf("\n%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
