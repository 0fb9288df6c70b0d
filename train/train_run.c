/* The training loop: data windows, micro-batches, AdamW steps, evaluation, checkpoints. */
#include "train/trainer.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datasets/tokens.h"
#include "engine/common.h"
#include "tokenizer/tokenizer.h"
#include "train/train_gpu.h"
#include "util/memcheck.h"

/* "queries beyond position 16" */
#define SINK_SHARE_MIN_QUERY 17

typedef struct {
    sb_trainer t;
    int32_t *train, *held;
    int64_t n_train, n_held;
    int32_t *tok, *tgt;         /* [B*T] */
    char dir[SB_TRAIN_PATH_MAX];
    char state_path[SB_TRAIN_PATH_MAX + 32], model_dir[SB_TRAIN_PATH_MAX + 32], log_path[SB_TRAIN_PATH_MAX + 300];
    bool progress;
    sb_train_gpu *gpu;          /* NULL: the CPU trainer */
} run_ctx;

/* The model's forward over one micro-batch, on the GPU or the CPU. */
static int model_forward(run_ctx *r, int B, float *loss, int *n_valid) {
    sb_trainer *t = &r->t;
    if (r->gpu) return sb_train_gpu_forward(r->gpu, r->tok, r->tgt, B, t->cfg->seq_len, loss, n_valid);
    int rc = sb_train_forward(&t->tm, r->tok, r->tgt, B, t->cfg->seq_len, loss);
    *n_valid = t->tm.n_valid;
    return rc;
}

static int64_t model_sink_share(run_ctx *r, double *sink) {
    if (r->gpu) return sb_train_gpu_sink_share(r->gpu, SINK_SHARE_MIN_QUERY, sink);
    return sb_train_sink_share_accumulate(&r->t.tm, SINK_SHARE_MIN_QUERY, sink);
}

/* Data tokens one sample consumes: inputs and the shifted targets overlap by all but one;
 * with a sink token the first input is the sink, not data. */
static int64_t sample_span(const sb_train_config *c) {
    return c->variant == SB_VARIANT_SINK_TOKEN ? c->seq_len : (int64_t)c->seq_len + 1;
}

/* Sample b of a batch from data starting at `start`. */
void sb_train_make_sample(const sb_train_config *c, const int32_t *data, int64_t start, int32_t *tok, int32_t *tgt) {
    int T = c->seq_len;
    if (c->variant == SB_VARIANT_SINK_TOKEN) {
        tok[0] = c->model.sink_token_id;
        /* the sink position predicts nothing, or the window's first token (sink_target) */
        tgt[0] = c->sink_target_first ? data[start] : -1;
        for (int i = 1; i < T; i++) {
            tok[i] = data[start + i - 1];
            tgt[i] = data[start + i];
        }
    } else {
        for (int i = 0; i < T; i++) {
            tok[i] = data[start + i];
            tgt[i] = data[start + i + 1];
        }
    }
}

/* Held-out windows: consecutive from the start, each predicting new tokens only. */
static int64_t heldout_windows(const run_ctx *r) {
    const sb_train_config *c = r->t.cfg;
    int64_t stride = sample_span(c) - 1;
    if (!r->held || r->n_held < sample_span(c)) return 0;
    int64_t avail = (r->n_held - 1) / stride, want = c->eval_tokens / c->seq_len;
    if (want < 1) want = 1;
    return avail < want ? avail : want;
}

/* Mean held-out NLL and the sink share [L*H] (NAN without held-out data). */
static int evaluate(run_ctx *r, double *loss, double *sink) {
    sb_trainer *t = &r->t;
    const sb_train_config *c = t->cfg;
    int LH = t->hist.n_layers * t->hist.n_heads;
    int64_t nw = heldout_windows(r), stride = sample_span(c) - 1;
    for (int i = 0; i < LH; i++) sink[i] = 0.0;
    if (nw == 0) {
        *loss = NAN;
        for (int i = 0; i < LH; i++) sink[i] = NAN;
        return SB_OK;
    }
    double sum = 0.0;
    int64_t valid = 0, queries = 0;
    for (int64_t w0 = 0; w0 < nw; w0 += c->batch) {
        int B = (int)(nw - w0 < c->batch ? nw - w0 : c->batch);
        for (int b = 0; b < B; b++)
            sb_train_make_sample(c, r->held, (w0 + b) * stride, r->tok + (size_t)b * c->seq_len,
                        r->tgt + (size_t)b * c->seq_len);
        float l;
        int nv;
        if (model_forward(r, B, &l, &nv)) return SB_ERR;
        sum += (double)l * nv;
        valid += nv;
        int64_t q = model_sink_share(r, sink);
        if (q < 0) return SB_ERR;
        queries += q;
    }
    *loss = valid ? sum / (double)valid : NAN;
    for (int i = 0; i < LH; i++) sink[i] = queries ? sink[i] / (double)queries : NAN;
    return SB_OK;
}

static void fmt_duration(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long v = (long)(s + 0.5);
    if (v >= 3600) snprintf(buf, cap, "%ldh%02ldm", v / 3600, (v / 60) % 60);
    else snprintf(buf, cap, "%ldm%02lds", v / 60, v % 60);
}

static int save_checkpoint(run_ctx *r) {
    /* the GPU holds the live weights and moments: the checkpoint is made from a host copy */
    if (r->gpu && sb_train_gpu_download(r->gpu, r->t.model.params, r->t.adam_m, r->t.adam_v)) return SB_ERR;
    if (sb_train_checkpoint_save(&r->t, r->state_path)) return SB_ERR;
    if (sb_model_save(&r->t.model, r->model_dir)) return SB_ERR;
    return sb_train_log_write(&r->t, r->log_path);
}

static void run_free(run_ctx *r) {
    sb_trainer *t = &r->t;
    sb_train_gpu_close(r->gpu);
    r->gpu = NULL;
    sb_train_model_free(&t->tm);
    sb_model_free(&t->model);
    free(t->adam_m);
    free(t->adam_v);
    free(t->decay);
    free(t->step_loss);
    sb_train_history_free(&t->hist);
    free(r->train);
    free(r->held);
    free(r->tok);
    free(r->tgt);
}

/* Saturating arithmetic for the estimate: an absurd config shows as "more than 16 EiB". */
static uint64_t add_u(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
static uint64_t mul_u(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }

/* Resident memory the run adds beyond its buffers, found by measuring peak RSS: per thread an
 * OpenMP stack and OpenBLAS packing buffers, plus HDF5 and allocator overhead. */
#define RUNTIME_FIXED (4u << 20)
#define RUNTIME_PER_THREAD (1u << 20)

/* Kept next to setup() below: each part mirrors one of its allocations. */
int sb_train_memory_estimate(const sb_train_config *cfg, int64_t n_train, int64_t n_held, uint64_t runtime_base,
                             sb_train_memory *out) {
    memset(out, 0, sizeof *out);
    size_t np;
    if (!sb_model_param_count_checked(&cfg->model, &np)) return sb_error("config: the parameter count overflows");
    if (sb_train_model_bytes(&cfg->model, cfg->batch, cfg->seq_len, &out->activations, &out->gradients))
        return SB_ERR;
    const uint64_t P = np, steps = (uint64_t)(cfg->steps > 0 ? cfg->steps : 0);
    const uint64_t LH = (uint64_t)cfg->model.n_layers * (uint64_t)cfg->model.n_heads;
    /* evaluation rows: step 0, every eval_interval steps, the last step */
    uint64_t evals = 2 + (cfg->eval_interval > 0 ? steps / (uint64_t)cfg->eval_interval : 0);
    uint64_t history = mul_u(evals, mul_u(5 + LH, 8));
    out->weights = mul_u(P, sizeof(float));
    out->optimizer = add_u(mul_u(P, 2 * sizeof(float)), P);                   /* m, v, decay mask */
    /* sb_train_checkpoint_save builds the whole file in memory: weights, m, v, losses, log */
    out->checkpoint = add_u(add_u(mul_u(P, 3 * sizeof(float)), mul_u(steps, sizeof(float))),
                            add_u(history, 16u << 10));
    uint64_t tokens = mul_u((uint64_t)(n_train > 0 ? n_train : 0) + (uint64_t)(n_held > 0 ? n_held : 0),
                            sizeof(int32_t));
    uint64_t samples = mul_u(mul_u((uint64_t)cfg->batch, (uint64_t)cfg->seq_len), 2 * sizeof(int32_t));
    out->data = add_u(add_u(tokens, samples), add_u(mul_u(steps, sizeof(float)), history));
    int threads = cfg->threads > 0 ? cfg->threads : omp_get_max_threads();
    out->runtime = add_u(runtime_base, RUNTIME_FIXED + (uint64_t)threads * RUNTIME_PER_THREAD);
    return SB_OK;
}

/* Refuse before any model buffer exists, with the estimate and its parts in the message. */
static int check_memory(const sb_train_config *cfg, int64_t n_train, int64_t n_held, uint64_t runtime_base,
                        uint64_t max_memory, bool gpu, uint64_t *total) {
    sb_train_memory m;
    if (sb_train_memory_estimate(cfg, n_train, n_held, runtime_base, &m)) return SB_ERR;
    /* on the GPU trainer the activations and gradients live in device memory */
    if (gpu) m.activations = m.gradients = 0;
    sb_mem_part parts[] = {
        {"weights", m.weights},         {"gradients", m.gradients},   {"AdamW moments", m.optimizer},
        {"activations", m.activations}, {"checkpoint", m.checkpoint}, {"tokens", m.data},
        {"runtime", m.runtime},
    };
    int n = (int)(sizeof parts / sizeof parts[0]);
    *total = sb_mem_total(parts, n);
    char what[128];
    snprintf(what, sizeof what, "training (batch %d x %d)", cfg->batch, cfg->seq_len);
    return sb_mem_check(what, parts, n, max_memory);
}

static bool run_on_gpu(const sb_train_options *opt) { return opt->device && strcmp(opt->device, "cpu") != 0; }

static int setup(run_ctx *r, const sb_train_config *cfg, const char *out_dir, const sb_train_options *opt,
                 uint64_t runtime_base, uint64_t *mem_estimate) {
    sb_trainer *t = &r->t;
    t->cfg = cfg;
    if (snprintf(r->dir, sizeof r->dir, "%s", out_dir) >= (int)sizeof r->dir)
        return sb_error("%s: output path too long", out_dir);
    snprintf(r->state_path, sizeof r->state_path, "%s/train_state.bin", out_dir);
    snprintf(r->model_dir, sizeof r->model_dir, "%s", out_dir);
    snprintf(r->log_path, sizeof r->log_path, "%s/%s", out_dir, cfg->log_name);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return sb_error("%s: cannot create output directory: %s", out_dir, strerror(errno));
    struct stat st;
    if (stat(out_dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sb_error("%s: not a directory", out_dir);
    if (!opt->resume && access(r->state_path, F_OK) == 0)
        return sb_error("%s: already holds a training state; use --resume or another --out", out_dir);

    const sb_model_config *mc = &cfg->model;
    if (sb_tokens_load(cfg->train_path, mc->vocab_size, 0, &r->train, &r->n_train)) return SB_ERR;
    if (r->n_train < sample_span(cfg))
        return sb_error("%s: %lld tokens, a sample needs %lld", cfg->train_path, (long long)r->n_train,
                        (long long)sample_span(cfg));
    if (cfg->heldout_path[0]) {
        if (sb_tokens_load(cfg->heldout_path, mc->vocab_size, 0, &r->held, &r->n_held)) return SB_ERR;
        if (r->n_held < sample_span(cfg))
            return sb_error("%s: %lld tokens, a held-out window needs %lld", cfg->heldout_path,
                            (long long)r->n_held, (long long)sample_span(cfg));
    }
    t->n_train_tokens = r->n_train;
    bool gpu = run_on_gpu(opt);
    if (check_memory(cfg, r->n_train, r->n_held, runtime_base, opt->max_memory, gpu, mem_estimate)) return SB_ERR;

    if (sb_model_alloc(&t->model, mc)) return SB_ERR;
    if (gpu ? sb_train_model_check_config(mc) : sb_train_model_init(&t->tm, &t->model, cfg->batch, cfg->seq_len))
        return SB_ERR;
    size_t np = t->model.n_params;
    t->adam_m = calloc(np ? np : 1, sizeof(float));
    t->adam_v = calloc(np ? np : 1, sizeof(float));
    t->step_loss = calloc((size_t)cfg->steps, sizeof(float));
    if (!t->adam_m || !t->adam_v || !t->step_loss) return sb_error("cannot allocate optimizer state");
    t->decay = sb_train_decay_mask(&t->model);
    /* the device first: a missing GPU or a binary without CUDA fails before anything is written */
    if (gpu) {
        int rc = sb_train_gpu_open(&r->gpu, &t->model, t->decay, cfg->batch, cfg->seq_len, opt->device, opt->compute);
        if (rc) return rc;
    }
    t->hist.n_layers = mc->n_layers;
    t->hist.n_heads = mc->n_heads;
    r->tok = malloc_check((size_t)cfg->batch * cfg->seq_len * sizeof(int32_t));
    r->tgt = malloc_check((size_t)cfg->batch * cfg->seq_len * sizeof(int32_t));

    if (cfg->tokenizer_path[0]) {
        sb_tokenizer *tok;
        if (sb_tokenizer_load(&tok, cfg->tokenizer_path)) return SB_ERR;
        int rc = sb_tokenizer_save(tok, out_dir);
        sb_tokenizer_free(tok);
        if (rc) return SB_ERR;
    }
    if (opt->resume) {
        if (access(r->state_path, F_OK) != 0)
            return sb_error("%s: no training state to resume (train_state.bin is missing)", out_dir);
        if (sb_train_checkpoint_load(t, r->state_path)) return SB_ERR;
    } else {
        sb_train_init_weights_scheme(&t->model, cfg->seed, cfg->init_std, cfg->init);
        /* the data stream has its own seed stream, apart from the per-tensor init streams */
        sb_rng_seed_stream(&t->rng, cfg->seed, UINT64_C(0xDA7A));
        t->step = 0;
        char *ini = sb_train_config_to_ini(cfg);
        char path[SB_TRAIN_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/train.ini", out_dir);
        int rc = ini ? sb_write_file_atomic(path, ini, strlen(ini)) : SB_ERR;
        free(ini);
        if (rc) return SB_ERR;
    }
    if (gpu) {
        if (sb_train_gpu_upload(r->gpu, t->model.params, t->adam_m, t->adam_v)) return SB_ERR;
        if (!opt->quiet)
            fprintf(stderr, "train: %s, %s matmuls, %.2f GiB of GPU memory\n", sb_train_gpu_name(r->gpu),
                    opt->compute == SB_COMPUTE_F32 ? "fp32" : "bf16", (double)sb_train_gpu_bytes(r->gpu) / 1073741824.0);
    }
    return SB_OK;
}

int sb_train_run(const sb_train_config *cfg, const char *out_dir, const sb_train_options *opt,
                 sb_train_result *res) {
    sb_train_options defaults = {0};
    if (!opt) opt = &defaults;
    sb_train_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->last_heldout_loss = NAN;
    res->last_train_loss = NAN;
    if (sb_train_config_validate(cfg)) return SB_ERR;
    if (opt->device && strcmp(opt->device, "cpu") != 0 && !sb_train_gpu_available())
        return sb_usage_error("--device %s: this binary was built without CUDA (build with make CUDA=1)", opt->device);
    /* what is resident before the run: code, libraries, the caller's data */
    double rss_mb = sb_rss_mb();
    uint64_t runtime_base = rss_mb > 0 ? (uint64_t)(rss_mb * 1048576.0) : 0;
    if (cfg->threads > 0) {
        omp_set_num_threads(cfg->threads);
        openblas_set_num_threads(cfg->threads);
    }
    run_ctx r;
    memset(&r, 0, sizeof r);
    int rc = setup(&r, cfg, out_dir, opt, runtime_base, &res->memory_estimate);
    if (rc) {
        run_free(&r);
        return rc;
    }
    sb_trainer *t = &r.t;
    r.progress = !opt->quiet && isatty(STDERR_FILENO);
    const int B = cfg->batch, T = cfg->seq_len, LH = cfg->model.n_layers * cfg->model.n_heads;
    const int64_t span = sample_span(cfg), tokens_per_step = (int64_t)B * T * cfg->grad_accum;
    double *sink = malloc_check((size_t)(LH ? LH : 1) * sizeof(double));
    double t_start = sb_now(), train_time = 0.0, interval_time = 0.0;
    int64_t interval_steps = 0, steps_this_run = 0;
    int64_t end = cfg->steps;
    if (opt->stop_at_step > 0 && opt->stop_at_step < end) end = opt->stop_at_step;

    /* a fresh run records where it starts from */
    if (t->step == 0 && t->hist.n == 0 && r.held) {
        double hl;
        if ((rc = evaluate(&r, &hl, sink))) goto out;
        sb_train_history_push(&t->hist, 0, NAN, hl, 0.0, sb_train_lr(cfg, 0), sink);
    }
    while (t->step < end) {
        double t0 = sb_now();
        int64_t step = t->step;
        double lr = sb_train_lr(cfg, step);
        if (r.gpu ? sb_train_gpu_zero_grad(r.gpu) : (sb_train_zero_grad(&t->tm), SB_OK)) {
            rc = SB_ERR;
            goto out;
        }
        double loss = 0.0;
        for (int micro = 0; micro < cfg->grad_accum; micro++) {
            for (int b = 0; b < B; b++) {
                int64_t start = (int64_t)sb_rng_below(&t->rng, (uint64_t)(r.n_train - span + 1));
                sb_train_make_sample(cfg, r.train, start, r.tok + (size_t)b * T, r.tgt + (size_t)b * T);
            }
            float l;
            int nv;
            if ((rc = model_forward(&r, B, &l, &nv))) goto out;
            if (r.gpu) {
                if ((rc = sb_train_gpu_backward(r.gpu, 1.0f / (float)cfg->grad_accum))) goto out;
            } else {
                sb_train_backward(&t->tm, 1.0f / (float)cfg->grad_accum);
            }
            loss += (double)l / cfg->grad_accum;
        }
        if (!isfinite(loss)) {
            rc = sb_error("training diverged at step %lld (loss %g); lower optim.lr", (long long)step, loss);
            goto out;
        }
        if (r.gpu) {
            if ((rc = sb_train_gpu_adamw(r.gpu, step + 1, lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay,
                                         cfg->clip, NULL)))
                goto out;
        } else {
            double gnorm = sb_grad_global_norm(t->tm.grad.params, t->model.n_params);
            float scale = cfg->clip > 0 && gnorm > cfg->clip ? (float)(cfg->clip / (gnorm + 1e-6)) : 1.0f;
            sb_adamw_update(t->model.params, t->tm.grad.params, t->adam_m, t->adam_v, t->decay, t->model.n_params,
                            step + 1, lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, scale);
        }
        t->step_loss[step] = (float)loss;
        t->step = step + 1;
        double dt = sb_now() - t0;
        train_time += dt;
        interval_time += dt;
        interval_steps++;
        steps_this_run++;
        double tok_s = interval_time > 0 ? (double)(interval_steps * tokens_per_step) / interval_time : 0.0;
        if (r.progress) {
            char eta[32];
            fmt_duration(eta, sizeof eta, train_time / steps_this_run * (double)(cfg->steps - t->step));
            fprintf(stderr, "\rstep %lld/%d  loss %.4f  lr %.2e  %.0f tok/s  ETA %s   ", (long long)t->step,
                    cfg->steps, loss, lr, tok_s, eta);
            fflush(stderr);
        }
        bool interrupted = opt->interrupt && *opt->interrupt;
        bool last = t->step == cfg->steps, stopping = t->step == end || interrupted;
        bool do_eval = last || (cfg->eval_interval > 0 && t->step % cfg->eval_interval == 0);
        bool do_ckpt = last || stopping || (cfg->checkpoint_interval > 0 && t->step % cfg->checkpoint_interval == 0);
        if (do_eval) {
            double hl;
            if ((rc = evaluate(&r, &hl, sink))) goto out;
            /* from the per-step record, so a resume inside the interval logs the same mean */
            int64_t from = t->hist.n ? t->hist.step[t->hist.n - 1] : 0;
            double tl = 0.0;
            for (int64_t s = from; s < t->step; s++) tl += t->step_loss[s];
            tl /= (double)(t->step - from);
            sb_train_history_push(&t->hist, t->step, tl, hl, tok_s, lr, sink);
            res->last_train_loss = tl;
            res->last_heldout_loss = hl;
            if (!opt->quiet) {
                /* model FLOP utilisation against the GPU's dense bf16 peak */
                double peak = r.gpu ? sb_train_gpu_peak_flops(r.gpu) : 0.0;
                char mfu[48] = "";
                if (peak > 0)
                    snprintf(mfu, sizeof mfu, "  MFU %.1f%%",
                             100.0 * tok_s * sb_train_flops_per_token(&cfg->model, cfg->seq_len) / peak);
                fprintf(stderr, "%sstep %lld/%d  train %.4f  heldout %.4f  %.0f tok/s%s\n", r.progress ? "\r" : "",
                        (long long)t->step, cfg->steps, tl, hl, tok_s, mfu);
            }
            interval_time = 0.0;
            interval_steps = 0;
            if (!do_ckpt && (rc = sb_train_log_write(t, r.log_path))) goto out;
        }
        if (do_ckpt && (rc = save_checkpoint(&r))) goto out;
        if (interrupted) {
            if (r.progress) fputc('\n', stderr);
            rc = sb_error("interrupted after step %lld (checkpoint saved; --resume continues)", (long long)t->step);
            goto out;
        }
    }
    if (steps_this_run == 0 && (rc = save_checkpoint(&r))) goto out; /* e.g. resume of a finished run */
    res->tokens_per_s = train_time > 0 ? (double)(steps_this_run * tokens_per_step) / train_time : 0.0;
    if (isnan(res->last_train_loss) && t->step > 0) res->last_train_loss = t->step_loss[t->step - 1];
out:
    res->steps_done = t->step;
    res->seconds = sb_now() - t_start;
    free(sink);
    run_free(&r);
    return rc;
}
