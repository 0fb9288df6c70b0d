/* The cuda backend: the forward of both evaluation modes on one GPU, behind engine/backend.h.
 *
 * Matmuls go through cuBLAS (GemmEx: half inputs, fp32 accumulation and output, or plain
 * fp32); everything else is engine/cuda/kernels.h. Weights are uploaded once, converted to
 * the compute type (bf16 by default, f16 for fp16 checkpoints, f32 with --compute f32), with
 * q/k/v and gate/up fused into one matrix each so a layer makes four GEMMs. The residual
 * stream, norms, softmax and logits stay fp32.
 *
 * Exact mode keeps the sinks and a ring of band rows per layer on the GPU (position p >= K at
 * row p mod band_cap), so a chunk moves no keys. Decode mode keeps a slot cache laid out as
 * the policy state says; per step the host uploads one small block (token, slot lists and
 * positions per map, RoPE rows), and the step's launches are captured once in a CUDA graph
 * and replayed while the shapes stay the same (a full ring), so a token costs one launch. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/common.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cpu/ops.h" /* alibi_slopes: host-side, as the cpu engine computes them */
#include "engine/cuda/kernels.h"
#include "engine/hf_rope.h"

/* ------------------------------------------------------------ weights */

typedef struct {
    void *wqkv, *wo, *wgu, *wdown;    /* compute dtype; wgu = [gate; up] (SwiGLU) or up (GELU) */
    float *bqkv, *bo, *bgu, *bdown;   /* NULL when the model has none */
    float *n1w, *n1b, *n2w, *n2b;
    float *sink_logit;                /* [H] */
} dlayer;

typedef struct {
    int dev;
    cudaStream_t st;
    cublasHandle_t blas;
    void *blas_ws;
    sbk_dtype cd;                     /* matmul inputs and caches */
    size_t elem;                      /* bytes of cd */
    void *embed;
    sbk_dtype embed_dt;
    void *head;                       /* [V, C] cd */
    float *fnw, *fnb, *alibi;
    dlayer *L;
    void **owned;                     /* every weight allocation, freed at close */
    int n_owned, cap_owned;
    /* dims */
    int C, H, KV, hd, qd, kvd, qkvd, F, V, nl, half;
    bool swiglu;
    uint64_t weight_bytes;
} cuda_ctx;

static size_t dtype_bytes(sbk_dtype d) { return d == SBK_F32 ? 4 : 2; }

static sbk_dtype sbk_of(sb_dtype d) { return d == SB_DTYPE_F32 ? SBK_F32 : d == SB_DTYPE_BF16 ? SBK_BF16 : SBK_F16; }

static int dalloc(cuda_ctx *x, void **p, size_t bytes) {
    *p = NULL;
    if (bytes == 0) return SB_OK;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        return sb_error("cuda:%d: out of GPU memory allocating %.2f GiB (%.2f GiB free of %.2f)", x->dev,
                        (double)bytes / (1 << 30), (double)fr / (1 << 30), (double)tot / (1 << 30));
    }
    return SB_OK;
}

/* A weight allocation the context frees at close. */
static int walloc(cuda_ctx *x, void **p, size_t bytes) {
    int rc = dalloc(x, p, bytes);
    if (rc || !*p) return rc;
    if (x->n_owned == x->cap_owned) {
        x->cap_owned = x->cap_owned ? 2 * x->cap_owned : 64;
        x->owned = realloc(x->owned, (size_t)x->cap_owned * sizeof *x->owned);
        if (!x->owned) return sb_error("out of memory");
    }
    x->owned[x->n_owned++] = *p;
    x->weight_bytes += bytes;
    return SB_OK;
}

/* rows x cols of host weight w into dst (compute dtype) at row offset row0, through a
 * device staging buffer when the dtype changes. */
static int upload_rows(cuda_ctx *x, void *dst, size_t row0, const sb_weight *w, size_t rows, size_t cols,
                       void *stage) {
    const sbk_dtype sd = sbk_of(w->dtype);
    const size_t n = rows * cols, sbytes = n * dtype_bytes(sd);
    char *d = (char *)dst + row0 * cols * x->elem;
    if (sd == x->cd) {
        CK(cudaMemcpyAsync(d, w->data, sbytes, cudaMemcpyHostToDevice, x->st));
        CK(cudaStreamSynchronize(x->st));
        return SB_OK;
    }
    /* on the stream the conversion runs on: a plain cudaMemcpy from pageable memory may
     * return before its DMA lands, and the stream is non-blocking */
    CK(cudaMemcpyAsync(stage, w->data, sbytes, cudaMemcpyHostToDevice, x->st));
    sbk_convert(d, x->cd, stage, sd, n, x->st);
    CL();
    CK(cudaStreamSynchronize(x->st));
    return SB_OK;
}

static int upload_vec(cuda_ctx *x, float **dst, const float *src, size_t n) {
    *dst = NULL;
    if (!src) return SB_OK;
    int rc = walloc(x, (void **)dst, n * sizeof(float));
    if (rc) return rc;
    CK(cudaMemcpyAsync(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice, x->st));
    CK(cudaStreamSynchronize(x->st));
    return SB_OK;
}

/* [a; b; c] of three optional bias vectors (absent ones as zeros when any is present). */
static int upload_bias3(cuda_ctx *x, float **dst, const float *a, size_t na, const float *b, size_t nb, const float *c,
                        size_t nc) {
    *dst = NULL;
    if (!a && !b && !c) return SB_OK;
    float *h = calloc(na + nb + nc, sizeof(float));
    if (!h) return sb_error("out of memory");
    if (a) memcpy(h, a, na * sizeof(float));
    if (b) memcpy(h + na, b, nb * sizeof(float));
    if (c) memcpy(h + na + nb, c, nc * sizeof(float));
    int rc = upload_vec(x, dst, h, na + nb + nc);
    free(h);
    return rc;
}

static int upload_weights(cuda_ctx *x, const sb_model *m) {
    const sb_model_config *c = &m->cfg;
    const size_t C = (size_t)x->C, qd = (size_t)x->qd, kvd = (size_t)x->kvd, F = (size_t)x->F, V = (size_t)x->V;
    size_t big = V * C;
    if (F * C > big) big = F * C;
    if (qd * C > big) big = qd * C;
    void *stage = NULL;
    int rc = dalloc(x, &stage, big * 4);
    if (rc) return rc;
    x->L = calloc((size_t)x->nl, sizeof(dlayer));
    if (!x->L) rc = sb_error("out of memory");
    for (int l = 0; l < x->nl && !rc; l++) {
        const sb_layer_weights *w = &m->w.layers[l];
        dlayer *d = &x->L[l];
        rc = walloc(x, &d->wqkv, (size_t)x->qkvd * C * x->elem);
        rc = rc ? rc : upload_rows(x, d->wqkv, 0, &w->mat.q, qd, C, stage);
        rc = rc ? rc : upload_rows(x, d->wqkv, qd, &w->mat.k, kvd, C, stage);
        rc = rc ? rc : upload_rows(x, d->wqkv, qd + kvd, &w->mat.v, kvd, C, stage);
        rc = rc ? rc : upload_bias3(x, &d->bqkv, w->bq, qd, w->bk, kvd, w->bv, kvd);
        rc = rc ? rc : walloc(x, &d->wo, C * qd * x->elem);
        rc = rc ? rc : upload_rows(x, d->wo, 0, &w->mat.o, C, qd, stage);
        rc = rc ? rc : upload_vec(x, &d->bo, w->bo, C);
        if (x->swiglu) {
            rc = rc ? rc : walloc(x, &d->wgu, 2 * F * C * x->elem);
            rc = rc ? rc : upload_rows(x, d->wgu, 0, &w->mat.gate, F, C, stage);
            rc = rc ? rc : upload_rows(x, d->wgu, F, &w->mat.up, F, C, stage);
            rc = rc ? rc : upload_bias3(x, &d->bgu, w->b_gate, F, w->b_up, F, NULL, 0);
        } else {
            rc = rc ? rc : walloc(x, &d->wgu, F * C * x->elem);
            rc = rc ? rc : upload_rows(x, d->wgu, 0, &w->mat.up, F, C, stage);
            rc = rc ? rc : upload_vec(x, &d->bgu, w->b_up, F);
        }
        rc = rc ? rc : walloc(x, &d->wdown, C * F * x->elem);
        rc = rc ? rc : upload_rows(x, d->wdown, 0, &w->mat.down, C, F, stage);
        rc = rc ? rc : upload_vec(x, &d->bdown, w->b_down, C);
        rc = rc ? rc : upload_vec(x, &d->n1w, w->attn_norm_w, C);
        rc = rc ? rc : upload_vec(x, &d->n1b, c->norm == SB_NORM_LAYER ? w->attn_norm_b : NULL, C);
        rc = rc ? rc : upload_vec(x, &d->n2w, w->mlp_norm_w, C);
        rc = rc ? rc : upload_vec(x, &d->n2b, c->norm == SB_NORM_LAYER ? w->mlp_norm_b : NULL, C);
        rc = rc ? rc : upload_vec(x, &d->sink_logit, c->softmax == SB_SOFTMAX_SINK_LOGIT ? w->sink_logit : NULL,
                                  (size_t)x->H);
    }
    /* the embedding stays as stored (the embed kernel converts rows); the head in cd */
    x->embed_dt = sbk_of(m->w.embed.dtype);
    if (!rc) rc = walloc(x, &x->embed, V * C * dtype_bytes(x->embed_dt));
    if (!rc) {
        cudaError_t e = cudaMemcpyAsync(x->embed, m->w.embed.data, V * C * dtype_bytes(x->embed_dt),
                                        cudaMemcpyHostToDevice, x->st);
        if (e == cudaSuccess) e = cudaStreamSynchronize(x->st);
        if (e != cudaSuccess) rc = sb_cuda_fail(e, "embedding upload", __FILE__, __LINE__);
    }
    if (!rc && m->w.head.data == m->w.embed.data && x->embed_dt == x->cd) x->head = x->embed;
    else if (!rc) {
        rc = walloc(x, &x->head, V * C * x->elem);
        rc = rc ? rc : upload_rows(x, x->head, 0, &m->w.head, V, C, stage);
    }
    rc = rc ? rc : upload_vec(x, &x->fnw, m->w.final_norm_w, C);
    rc = rc ? rc : upload_vec(x, &x->fnb, c->norm == SB_NORM_LAYER ? m->w.final_norm_b : NULL, C);
    if (!rc && c->pos == SB_POS_ALIBI) {
        float *sl = malloc((size_t)x->H * sizeof(float));
        alibi_slopes(sl, x->H, c->alibi_bias_max);
        rc = upload_vec(x, &x->alibi, sl, (size_t)x->H);
        free(sl);
    }
    cudaFree(stage);
    return rc;
}

/* ------------------------------------------------------------ open / close */

static void cuda_close(sb_backend *b) {
    cuda_ctx *x = b->ctx;
    if (!x) return;
    cudaSetDevice(x->dev);
    for (int i = 0; i < x->n_owned; i++) cudaFree(x->owned[i]);
    free(x->owned);
    free(x->L);
    if (x->blas) cublasDestroy(x->blas);
    if (x->blas_ws) cudaFree(x->blas_ws);
    if (x->st) cudaStreamDestroy(x->st);
    free(x);
    b->ctx = NULL;
}

static int cuda_open(sb_backend *b, const sb_backend_opts *o) {
    const sb_model *m = b->m;
    const sb_model_config *c = &m->cfg;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0)
        return sb_usage_error("--device %s: no CUDA GPU is present (%s)", o->device ? o->device : "cuda",
                              e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    if (b->device_index >= n_dev)
        return sb_usage_error("--device %s: only %d GPU(s) are present", o->device, n_dev);
    cuda_ctx *x = calloc(1, sizeof *x);
    if (!x) return sb_error("out of memory");
    b->ctx = x;
    x->dev = b->device_index;
    sb_compute cp = o->compute;
    sb_dtype stored = m->w.layers[0].mat.q.dtype;
    if (cp == SB_COMPUTE_AUTO) cp = stored == SB_DTYPE_F16 ? SB_COMPUTE_F16 : SB_COMPUTE_BF16;
    b->compute = cp;
    x->cd = cp == SB_COMPUTE_F32 ? SBK_F32 : cp == SB_COMPUTE_F16 ? SBK_F16 : SBK_BF16;
    x->elem = dtype_bytes(x->cd);
    x->C = c->dim, x->H = c->n_heads, x->KV = c->n_kv_heads, x->hd = c->head_dim;
    x->qd = x->H * x->hd, x->kvd = x->KV * x->hd, x->qkvd = x->qd + 2 * x->kvd;
    x->F = c->ffn_dim, x->V = c->vocab_size, x->nl = c->n_layers;
    x->half = c->pos == SB_POS_ROPE ? c->rotary_dim / 2 : 0;
    x->swiglu = c->mlp == SB_MLP_SWIGLU;
    snprintf(b->device, sizeof b->device, "cuda:%d", x->dev);
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, x->dev) == cudaSuccess)
        snprintf(b->device_name, sizeof b->device_name, "%.95s", prop.name);
    int rc = SB_OK;
    e = cudaSetDevice(x->dev);
    if (e != cudaSuccess) rc = sb_cuda_fail(e, "cudaSetDevice", __FILE__, __LINE__);
    if (!rc && (e = cudaStreamCreateWithFlags(&x->st, cudaStreamNonBlocking)) != cudaSuccess)
        rc = sb_cuda_fail(e, "cudaStreamCreate", __FILE__, __LINE__);
    if (!rc && cublasCreate(&x->blas) != CUBLAS_STATUS_SUCCESS) rc = sb_error("cublas: cannot create a handle");
    /* a fixed workspace, so cuBLAS allocates nothing while a graph is captured */
    if (!rc) rc = dalloc(x, &x->blas_ws, (size_t)32 << 20);
    if (!rc && (cublasSetStream(x->blas, x->st) != CUBLAS_STATUS_SUCCESS ||
                cublasSetWorkspace(x->blas, x->blas_ws, (size_t)32 << 20) != CUBLAS_STATUS_SUCCESS ||
                cublasSetMathMode(x->blas, x->cd == SBK_F32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH) !=
                    CUBLAS_STATUS_SUCCESS))
        rc = sb_error("cublas: cannot configure the handle");
    if (!rc && (e = sbk_init()) != cudaSuccess) rc = sb_cuda_fail(e, "sbk_init", __FILE__, __LINE__);
    if (!rc) rc = upload_weights(x, m);
    if (rc) cuda_close(b);
    return rc;
}

static int cuda_set_threads(sb_backend *b, int n) {
    (void)b;
    return sb_host_threads(n);
}

static uint64_t cuda_device_weight_bytes(const sb_model_config *c, sb_dtype stored, sb_compute compute) {
    size_t e = compute == SB_COMPUTE_F32 ? 4 : 2;
    if (compute == SB_COMPUTE_AUTO) e = 2;
    uint64_t n = sb_model_param_count(c);
    return n * e + (uint64_t)c->vocab_size * c->dim * (stored == SB_DTYPE_F32 ? 4 : 2);
}

/* ------------------------------------------------------------ the layer pieces */

/* y[T, OC] (fp32, leading dim ldy) = beta * y + x[T, C] (cd) . W[OC, C]^T (cd) */
static int gemm(cuda_ctx *x, float *y, int ldy, const void *in, int ldx, const void *w, int T, int C, int OC,
                float beta) {
    if (T == 1 && sbk_gemv_ok(x->cd, w, in, C)) {
        /* decode: a bandwidth-bound matrix-vector product (kernels.h) */
        sbk_gemv(y, w, in, x->cd, C, OC, beta, x->st);
        return SB_OK;
    }
    const float alpha = 1.0f;
    const cudaDataType_t t = x->cd == SBK_F32 ? CUDA_R_32F : x->cd == SBK_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const cublasComputeType_t ct = x->cd == SBK_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    CB(cublasGemmEx(x->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, T, C, &alpha, w, t, C, in, t, ldx, &beta, y, CUDA_R_32F,
                    ldy, ct, CUBLAS_GEMM_DEFAULT));
    return SB_OK;
}

/* out (cd) = norm(in) over T rows */
static void norm_to(cuda_ctx *x, const sb_model_config *c, void *out, const float *in, const float *w,
                    const float *b, int T) {
    if (x->cd == SBK_F32) sbk_norm((float *)out, NULL, SBK_F32, in, w, b, c->norm == SB_NORM_LAYER, c->norm_eps, T, x->C, x->st);
    else sbk_norm(NULL, out, x->cd, in, w, b, c->norm == SB_NORM_LAYER, c->norm_eps, T, x->C, x->st);
}

/* Activations of T rows, shared by both modes (max_T rows allocated). */
typedef struct {
    int max_T;
    float *x, *qkv, *qs, *gu, *logits, *nll, *att32;
    void *xb, *xb2, *qb, *qsh, *att, *hb;
    int32_t *tok, *tgt;
    float *tabs;                       /* RoPE rows, see the modes */
} acts;

static int acts_alloc(cuda_ctx *x, acts *a, int T, size_t tab_floats) {
    memset(a, 0, sizeof *a);
    a->max_T = T;
    const size_t t = (size_t)T, e = x->elem;
    const int gu = x->swiglu ? 2 * x->F : x->F;
    struct { void **p; size_t bytes; } parts[] = {
        {(void **)&a->x, t * x->C * 4},      {(void **)&a->qkv, t * x->qkvd * 4}, {(void **)&a->qs, t * x->qd * 4},
        {(void **)&a->gu, t * gu * 4},       {(void **)&a->logits, t * x->V * 4}, {(void **)&a->nll, t * 4},
        {(void **)&a->att32, t * x->qd * 4}, {&a->xb, t * x->C * e},              {&a->xb2, t * x->C * e},
        {&a->qb, t * x->qd * e},             {&a->qsh, t * x->qd * e},            {&a->att, t * x->qd * e},
        {&a->hb, t * x->F * e},              {(void **)&a->tok, t * 4},           {(void **)&a->tgt, t * 4},
        {(void **)&a->tabs, tab_floats * 4},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int rc = dalloc(x, parts[i].p, parts[i].bytes ? parts[i].bytes : 4);
        if (rc) return rc;
    }
    return SB_OK;
}

static void acts_free(acts *a) {
    void *ps[] = {a->x, a->qkv, a->qs, a->gu, a->logits, a->nll, a->att32, a->xb, a->xb2,
                  a->qb, a->qsh, a->att, a->hb, a->tok, a->tgt, a->tabs};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) cudaFree(ps[i]);
    memset(a, 0, sizeof *a);
}

static uint64_t acts_bytes(const sb_model_config *c, sb_compute cp, int T, size_t tab_floats) {
    const uint64_t e = cp == SB_COMPUTE_F32 ? 4 : 2, t = (uint64_t)T;
    const uint64_t qd = (uint64_t)c->n_heads * c->head_dim, kvd = (uint64_t)c->n_kv_heads * c->head_dim;
    return t * (c->dim * (4 + 2 * e) + (qd + 2 * kvd) * 4 + qd * (8 + 3 * e) + 2 * (uint64_t)c->ffn_dim * 4 +
                (uint64_t)c->ffn_dim * e + (uint64_t)c->vocab_size * 4 + 12) +
           tab_floats * 4;
}

/* Before attention: norms, fused q/k/v (biases, clip). */
static int block_pre(cuda_ctx *x, const sb_model_config *c, acts *a, int l, int T) {
    const dlayer *d = &x->L[l];
    norm_to(x, c, a->xb, a->x, d->n1w, d->n1b, T);
    if (c->parallel_residual && !c->shared_norm) norm_to(x, c, a->xb2, a->x, d->n2w, d->n2b, T);
    int rc = gemm(x, a->qkv, x->qkvd, a->xb, x->C, d->wqkv, T, x->C, x->qkvd, 0.0f);
    if (rc) return rc;
    if (d->bqkv) sbk_add_bias(a->qkv, d->bqkv, T, x->qkvd, x->st);
    if (c->clip_qkv > 0.0f) sbk_clamp(a->qkv, (size_t)T * x->qkvd, c->clip_qkv, x->st);
    return SB_OK;
}

/* After attention (a->att in cd): output projection into the residual, MLP. */
static int block_post(cuda_ctx *x, const sb_model_config *c, acts *a, int l, int T) {
    const dlayer *d = &x->L[l];
    int rc = gemm(x, a->x, x->C, a->att, x->qd, d->wo, T, x->qd, x->C, 1.0f);
    if (rc) return rc;
    if (d->bo) sbk_add_bias(a->x, d->bo, T, x->C, x->st);
    const void *in = c->shared_norm ? a->xb : a->xb2;
    if (!c->parallel_residual) norm_to(x, c, a->xb2, a->x, d->n2w, d->n2b, T);
    const int act = c->act == SB_ACT_GELU_ERF ? 1 : c->act == SB_ACT_GELU_TANH ? 2 : 0;
    if (x->swiglu) {
        rc = gemm(x, a->gu, 2 * x->F, in, x->C, d->wgu, T, x->C, 2 * x->F, 0.0f);
        if (rc) return rc;
        if (d->bgu) sbk_add_bias(a->gu, d->bgu, T, 2 * x->F, x->st);
        sbk_glu_fused(a->hb, x->cd, a->gu, T, x->F, act, x->st);
    } else {
        rc = gemm(x, a->gu, x->F, in, x->C, d->wgu, T, x->C, x->F, 0.0f);
        if (rc) return rc;
        if (d->bgu) sbk_add_bias(a->gu, d->bgu, T, x->F, x->st);
        sbk_act(a->hb, x->cd, a->gu, (size_t)T * x->F, act, x->st);
    }
    rc = gemm(x, a->x, x->C, a->hb, x->F, d->wdown, T, x->F, x->C, 1.0f);
    if (rc) return rc;
    if (d->bdown) sbk_add_bias(a->x, d->bdown, T, x->C, x->st);
    CL();
    return SB_OK;
}

/* Final norm and head of rows [from, T): logits (fp32) in a->logits, NLL of a->tgt when
 * want_nll. */
static int block_head(cuda_ctx *x, const sb_model_config *c, acts *a, int from, int T, bool want_nll) {
    const int n = T - from;
    if (n <= 0) return SB_OK;
    norm_to(x, c, a->xb, a->x + (size_t)from * x->C, x->fnw, x->fnb, n);
    int rc = gemm(x, a->logits, x->V, a->xb, x->C, x->head, n, x->C, x->V, 0.0f);
    if (rc) return rc;
    if (want_nll) sbk_nll(a->nll, a->logits, (size_t)x->V, a->tgt, n, x->V, x->st);
    CL();
    return SB_OK;
}

/* ------------------------------------------------------------ exact mode */

struct sb_exact {
    sb_backend *b;
    cuda_ctx *x;
    int64_t K, W, band_cap;
    int64_t n_sink, band_end;          /* sinks stored; band positions [band_lo, band_end) valid */
    void *sink_k, *sink_v;             /* [L][max(K,1)][kvd] cd */
    void *band_k, *band_v;             /* [L][band_cap][kvd] cd, ring */
    acts a;
    float *h_tabs;                     /* pinned: cos_b, sin_b, cos_s, sin_s [T][half] each */
    int32_t *h_io;                     /* pinned: tokens [T], targets [T] */
    float *h_out;                      /* pinned: nll [T] or logits [T][V] */
};

static uint64_t cuda_exact_bytes(const sb_model_config *c, int64_t K, int64_t W, int max_T, int64_t band_cap) {
    (void)W;
    /* host side only: the pinned staging buffers (the GPU side is checked when allocated) */
    int half = c->pos == SB_POS_ROPE ? c->rotary_dim / 2 : 1;
    (void)K;
    (void)band_cap;
    return (uint64_t)max_T * (4 * (uint64_t)half * 4 + 8 + (uint64_t)c->vocab_size * 4);
}

static void cuda_exact_free(sb_exact *s) {
    if (!s) return;
    cudaSetDevice(s->x->dev);
    cudaFree(s->sink_k), cudaFree(s->sink_v), cudaFree(s->band_k), cudaFree(s->band_v);
    acts_free(&s->a);
    cudaFreeHost(s->h_tabs), cudaFreeHost(s->h_io), cudaFreeHost(s->h_out);
    free(s);
}

static int exact_zero(sb_exact *s) {
    cuda_ctx *x = s->x;
    const size_t kv = (size_t)x->kvd * x->elem * x->nl;
    /* zeros, so a key row never written holds no NaN for a masked product */
    CK(cudaMemsetAsync(s->band_k, 0, (size_t)s->band_cap * kv, x->st));
    CK(cudaMemsetAsync(s->band_v, 0, (size_t)s->band_cap * kv, x->st));
    s->n_sink = 0;
    s->band_end = s->K;
    return SB_OK;
}

static int cuda_exact_new(sb_backend *b, sb_exact **out, int64_t K, int64_t W, int max_T, int64_t band_cap) {
    *out = NULL;
    cuda_ctx *x = b->ctx;
    CK(cudaSetDevice(x->dev));
    if (band_cap > INT32_MAX || max_T < 1) return sb_error("evaluation state for chunk %d is too large", max_T);
    sb_exact *s = calloc(1, sizeof *s);
    if (!s) return sb_error("out of memory");
    s->b = b, s->x = x, s->K = K, s->W = W;
    /* the ring must hold every key a chunk's queries see: W before its first and its T rows */
    s->band_cap = band_cap < W + max_T ? band_cap : W + max_T;
    if (s->band_cap < max_T) s->band_cap = max_T;
    const size_t kv = (size_t)x->kvd * x->elem * x->nl, half = (size_t)(x->half > 0 ? x->half : 1);
    int rc = dalloc(x, &s->sink_k, (size_t)(K > 0 ? K : 1) * kv);
    rc = rc ? rc : dalloc(x, &s->sink_v, (size_t)(K > 0 ? K : 1) * kv);
    rc = rc ? rc : dalloc(x, &s->band_k, (size_t)s->band_cap * kv);
    rc = rc ? rc : dalloc(x, &s->band_v, (size_t)s->band_cap * kv);
    rc = rc ? rc : acts_alloc(x, &s->a, max_T, 4 * (size_t)max_T * half);
    if (!rc) {
        cudaError_t e = cudaMallocHost((void **)&s->h_tabs, 4 * (size_t)max_T * half * sizeof(float));
        if (e == cudaSuccess) e = cudaMallocHost((void **)&s->h_io, 2 * (size_t)max_T * sizeof(int32_t));
        if (e == cudaSuccess) e = cudaMallocHost((void **)&s->h_out, (size_t)max_T * x->V * sizeof(float));
        if (e != cudaSuccess) rc = sb_cuda_fail(e, "pinned host buffers", __FILE__, __LINE__);
    }
    rc = rc ? rc : exact_zero(s);
    if (rc) {
        cuda_exact_free(s);
        return rc;
    }
    *out = s;
    return SB_OK;
}

static void cuda_exact_reset(sb_exact *s) { exact_zero(s); }

static int cuda_exact_seek(sb_exact *s, int64_t pos) {
    if (pos < s->band_end || s->n_sink != s->K)
        return sb_error("cannot seek the evaluation to position %lld (band ends at %lld, %lld of %lld sinks)",
                        (long long)pos, (long long)s->band_end, (long long)s->n_sink, (long long)s->K);
    s->band_end = pos;
    return SB_OK;
}

static int cuda_exact_forward(sb_exact *s, const int32_t *tokens, int T, int64_t pos0, int from,
                              const int32_t *targets, float *out) {
    cuda_ctx *x = s->x;
    const sb_model_config *c = &s->b->m->cfg;
    acts *a = &s->a;
    const int64_t K = s->K, W = s->W;
    if (T < 1 || T > a->max_T || pos0 < 0 || from < 0 || from > T)
        return sb_error("chunk of %d tokens at position %lld does not fit the evaluation state", T, (long long)pos0);
    if (s->band_end != (pos0 > K ? pos0 : K) || s->n_sink != (pos0 < K ? pos0 : K))
        return sb_error("chunk at position %lld does not continue the stream (band ends at %lld)", (long long)pos0,
                        (long long)s->band_end);
    CK(cudaSetDevice(x->dev));
    const int half = x->half, hrow = half > 0 ? half : 1;
    const bool split_q = half > 0 && K > 0 && pos0 + T - 1 > K + W;
    float *cb = s->h_tabs, *sb = cb + (size_t)T * hrow, *cs = sb + (size_t)T * hrow, *ss = cs + (size_t)T * hrow;
    if (half > 0) {
        sb_rope_table_fill(cb, sb, pos0, T, c);
        if (split_q) {
            /* sinks see query t at min(t, K+W) */
            for (int t = 0; t < T; t++) {
                const int64_t p = pos0 + t;
                if (p <= K + W) {
                    memcpy(cs + (size_t)t * half, cb + (size_t)t * half, (size_t)half * sizeof(float));
                    memcpy(ss + (size_t)t * half, sb + (size_t)t * half, (size_t)half * sizeof(float));
                } else sb_rope_table_fill(cs + (size_t)t * half, ss + (size_t)t * half, K + W, 1, c);
            }
        }
        CK(cudaMemcpyAsync(a->tabs, s->h_tabs, (split_q ? 4 : 2) * (size_t)T * hrow * sizeof(float),
                           cudaMemcpyHostToDevice, x->st));
    }
    memcpy(s->h_io, tokens, (size_t)T * sizeof(int32_t));
    const int n_out = T - from;
    if (targets && n_out > 0) memcpy(s->h_io + T, targets, (size_t)n_out * sizeof(int32_t));
    CK(cudaMemcpyAsync(a->tok, s->h_io, (size_t)T * sizeof(int32_t), cudaMemcpyHostToDevice, x->st));
    if (targets && n_out > 0)
        CK(cudaMemcpyAsync(a->tgt, s->h_io + T, (size_t)n_out * sizeof(int32_t), cudaMemcpyHostToDevice, x->st));
    const float *dcb = a->tabs, *dsb = dcb + (size_t)T * hrow, *dcs = dsb + (size_t)T * hrow, *dss = dcs + (size_t)T * hrow;

    sbk_embed(a->x, x->embed, x->embed_dt, a->tok, T, x->C, x->V, x->st);
    const int64_t ns_new = pos0 < K ? ((pos0 + T < K ? pos0 + T : K) - pos0) : 0; /* rows that are sinks */
    const int64_t n_sink_after = pos0 + T < K ? pos0 + T : K;
    const int64_t max_dist = c->sliding_window > 0 ? (int64_t)c->sliding_window - 1 : INT64_MAX;
    const size_t kvrow = (size_t)x->kvd * x->elem;
    for (int l = 0; l < x->nl; l++) {
        int rc = block_pre(x, c, a, l, T);
        if (rc) return rc;
        float *q = a->qkv, *k = a->qkv + x->qd, *v = a->qkv + x->qd + x->kvd;
        if (split_q) {
            sbk_store_rows(a->qs, SBK_F32, (size_t)x->qd, NULL, q, (size_t)x->qkvd, T, x->qd, x->st);
            sbk_rope(a->qs, T, (size_t)x->qd, x->H, x->hd, c->rotary_dim, c->rope_style == SB_ROPE_INTERLEAVED, dcs, dss,
                     half, x->st);
            sbk_store_rows(a->qsh, x->cd, (size_t)x->qd, NULL, a->qs, (size_t)x->qd, T, x->qd, x->st);
        }
        if (half > 0) {
            sbk_rope(q, T, (size_t)x->qkvd, x->H, x->hd, c->rotary_dim, c->rope_style == SB_ROPE_INTERLEAVED, dcb, dsb,
                     half, x->st);
            sbk_rope(k, T, (size_t)x->qkvd, x->KV, x->hd, c->rotary_dim, c->rope_style == SB_ROPE_INTERLEAVED, dcb, dsb,
                     half, x->st);
        }
        sbk_store_rows(a->qb, x->cd, (size_t)x->qd, NULL, q, (size_t)x->qkvd, T, x->qd, x->st);
        char *skl = (char *)s->sink_k + (size_t)l * (K > 0 ? K : 1) * kvrow;
        char *svl = (char *)s->sink_v + (size_t)l * (K > 0 ? K : 1) * kvrow;
        char *bkl = (char *)s->band_k + (size_t)l * s->band_cap * kvrow;
        char *bvl = (char *)s->band_v + (size_t)l * s->band_cap * kvrow;
        if (ns_new > 0) {
            sbk_store_rows(skl + (size_t)pos0 * kvrow, x->cd, (size_t)x->kvd, NULL, k, (size_t)x->qkvd, (int)ns_new,
                           x->kvd, x->st);
            sbk_store_rows(svl + (size_t)pos0 * kvrow, x->cd, (size_t)x->kvd, NULL, v, (size_t)x->qkvd, (int)ns_new,
                           x->kvd, x->st);
        }
        if (T - ns_new > 0) {
            sbk_store_rows_ring(bkl, x->cd, (size_t)x->kvd, s->band_cap, pos0 + ns_new, k + ns_new * x->qkvd,
                                (size_t)x->qkvd, (int)(T - ns_new), x->kvd, x->st);
            sbk_store_rows_ring(bvl, x->cd, (size_t)x->kvd, s->band_cap, pos0 + ns_new, v + ns_new * x->qkvd,
                                (size_t)x->qkvd, (int)(T - ns_new), x->kvd, x->st);
        }
        sbk_band_attention(a->att, x->cd, (size_t)x->qd, a->qb, split_q ? a->qsh : a->qb, (size_t)x->qd, bkl, bvl,
                           s->band_cap, skl, svl, (int)n_sink_after, K, W, pos0, T, max_dist, x->H, x->KV, x->hd,
                           (int)c->softmax, x->L[l].sink_logit, x->alibi, x->cd, x->st);
        CL();
        rc = block_post(x, c, a, l, T);
        if (rc) return rc;
    }
    s->n_sink = n_sink_after;
    s->band_end = pos0 + T > K ? pos0 + T : K;
    if (n_out > 0) {
        int rc = block_head(x, c, a, from, T, targets != NULL);
        if (rc) return rc;
        const size_t bytes = targets ? (size_t)n_out * sizeof(float) : (size_t)n_out * x->V * sizeof(float);
        CK(cudaMemcpyAsync(s->h_out, targets ? a->nll : a->logits, bytes, cudaMemcpyDeviceToHost, x->st));
        CK(cudaStreamSynchronize(x->st));
        memcpy(out, s->h_out, bytes);
    } else {
        CK(cudaStreamSynchronize(x->st));
    }
    return SB_OK;
}

/* ------------------------------------------------------------ decode mode */

/* The per-step block the host uploads, in one copy:
 *   int32 token | per map: int32 n, int32 m, int64 new_slot, int64 query_pos |
 *   per map: int32 slots[n_slots], int64 pos[n_slots], int32 move[n_slots] |
 *   float tabs: row 0 query, row 1 new key (each cos then sin), then per map the moving
 *   rows: n_slots cos rows, then n_slots sin rows */
typedef struct {
    size_t off_hdr, off_slots, off_pos, off_move, off_tabs, bytes;
} step_layout;

struct sb_slots {
    sb_backend *b;
    cuda_ctx *x;
    int n_maps;
    int64_t n_slots, n_moving, n_raw;
    void **k, **v;                     /* per layer [n_slots][kvd] cd */
    float **k_raw;                     /* per layer [n_raw][kvd] fp32 pre-RoPE */
    int64_t *raw_pos;                  /* host [n_maps][n_raw] */
    acts a;
    step_layout lay;
    char *h_step, *d_step;             /* pinned / device step blocks */
    float *h_logits, *probs, *h_probs; /* probs: [L][H][n_slots] device, pinned copy */
    float *scratch;                    /* decode attention split-K partials */
    int64_t *h_slots64;                /* host slot lists handed to the observer */
    /* the graph of the last step, valid while its key holds */
    cudaGraphExec_t graph;
    bool have_graph;
    int64_t graph_key[4];
    int64_t last_key[4];
    /* host RoPE ring of positions (ring_hi - ring_n, ring_hi] */
    float *ring;
    int64_t ring_n, ring_hi;
};

static step_layout layout_for(int n_maps, int64_t n_slots, int half) {
    step_layout l;
    size_t o = 16; /* token + padding */
    l.off_hdr = o;
    o += (size_t)n_maps * 24;
    o = (o + 15) & ~(size_t)15;
    l.off_slots = o;
    o += (size_t)n_maps * n_slots * 4;
    o = (o + 15) & ~(size_t)15;
    l.off_pos = o;
    o += (size_t)n_maps * n_slots * 8;
    l.off_move = o;
    o += (size_t)n_maps * n_slots * 4;
    o = (o + 15) & ~(size_t)15;
    l.off_tabs = o;
    o += (size_t)(2 + (size_t)n_maps * n_slots) * 2 * (size_t)(half > 0 ? half : 1) * sizeof(float);
    l.bytes = (o + 63) & ~(size_t)63;
    return l;
}

static uint64_t cuda_slots_bytes(const sb_model_config *c, int64_t n_slots, int64_t n_moving, int n_maps) {
    (void)n_moving;
    int half = c->pos == SB_POS_ROPE ? c->rotary_dim / 2 : 1;
    step_layout l = layout_for(n_maps, n_slots, half);
    return 2 * (uint64_t)l.bytes + (uint64_t)c->vocab_size * 4 + (uint64_t)n_slots * n_maps * 8 * 2 +
           (uint64_t)c->n_layers * c->n_heads * n_slots * 4;
}

static void graph_drop(sb_slots *c) {
    if (c->have_graph) cudaGraphExecDestroy(c->graph);
    c->have_graph = false;
}

static void slots_release(sb_slots *c) {
    for (int l = 0; c->k && l < c->x->nl; l++) {
        cudaFree(c->k[l]), cudaFree(c->v[l]);
        if (c->k_raw) cudaFree(c->k_raw[l]);
    }
}

static void cuda_slots_free(sb_slots *c) {
    if (!c) return;
    cudaSetDevice(c->x->dev);
    graph_drop(c);
    slots_release(c);
    free(c->k), free(c->v), free(c->k_raw), free(c->raw_pos), free(c->h_slots64), free(c->ring);
    acts_free(&c->a);
    cudaFree(c->d_step), cudaFree(c->probs), cudaFree(c->scratch);
    cudaFreeHost(c->h_step), cudaFreeHost(c->h_logits), cudaFreeHost(c->h_probs);
    free(c);
}

/* (Re)allocate everything sized by n_slots, keeping the cached rows. */
static int slots_resize(sb_slots *c, int64_t n_slots) {
    cuda_ctx *x = c->x;
    const int64_t old = c->n_slots, old_raw = c->n_raw;
    const int64_t raw = c->n_moving < n_slots ? c->n_moving : n_slots;
    const size_t row = (size_t)x->kvd * x->elem, rawrow = (size_t)x->kvd * sizeof(float);
    graph_drop(c);
    for (int l = 0; l < x->nl; l++) {
        void *nk, *nv, *nr = NULL;
        int rc = dalloc(x, &nk, (size_t)n_slots * row);
        rc = rc ? rc : dalloc(x, &nv, (size_t)n_slots * row);
        rc = rc ? rc : (raw > 0 ? dalloc(x, &nr, (size_t)raw * rawrow) : SB_OK);
        if (rc) return rc;
        if (old > 0) {
            CK(cudaMemcpyAsync(nk, c->k[l], (size_t)old * row, cudaMemcpyDeviceToDevice, x->st));
            CK(cudaMemcpyAsync(nv, c->v[l], (size_t)old * row, cudaMemcpyDeviceToDevice, x->st));
            if (old_raw > 0)
                CK(cudaMemcpyAsync(nr, c->k_raw[l], (size_t)old_raw * rawrow, cudaMemcpyDeviceToDevice, x->st));
        }
        /* never-written rows: zeros, no NaN for a product masked to zero */
        if (n_slots > old) {
            CK(cudaMemsetAsync((char *)nk + (size_t)old * row, 0, (size_t)(n_slots - old) * row, x->st));
            CK(cudaMemsetAsync((char *)nv + (size_t)old * row, 0, (size_t)(n_slots - old) * row, x->st));
        }
        CK(cudaStreamSynchronize(x->st));
        cudaFree(c->k[l]), cudaFree(c->v[l]);
        if (c->k_raw[l]) cudaFree(c->k_raw[l]);
        c->k[l] = nk, c->v[l] = nv, c->k_raw[l] = nr;
    }
    int64_t *rp = malloc((size_t)c->n_maps * (raw > 0 ? raw : 1) * sizeof(int64_t));
    if (!rp) return sb_error("out of memory");
    for (int m = 0; m < c->n_maps; m++)
        for (int64_t j = 0; j < raw; j++) rp[m * raw + j] = j < old_raw ? c->raw_pos[m * old_raw + j] : INT64_MIN;
    free(c->raw_pos);
    c->raw_pos = rp;
    c->n_raw = raw;
    c->n_slots = n_slots;
    const int half = x->half > 0 ? x->half : 1;
    c->lay = layout_for(c->n_maps, n_slots, half);
    cudaFree(c->d_step), cudaFreeHost(c->h_step), cudaFree(c->probs), cudaFreeHost(c->h_probs), cudaFree(c->scratch);
    c->d_step = NULL, c->h_step = NULL, c->probs = NULL, c->h_probs = NULL, c->scratch = NULL;
    int rc = dalloc(x, (void **)&c->d_step, c->lay.bytes);
    rc = rc ? rc : dalloc(x, (void **)&c->probs, (size_t)x->nl * x->H * n_slots * sizeof(float));
    rc = rc ? rc : dalloc(x, (void **)&c->scratch, sbk_decode_attention_scratch(x->H, x->hd, (int)n_slots) * sizeof(float));
    if (rc) return rc;
    CK(cudaMallocHost((void **)&c->h_step, c->lay.bytes));
    CK(cudaMallocHost((void **)&c->h_probs, (size_t)x->nl * x->H * n_slots * sizeof(float)));
    memset(c->h_step, 0, c->lay.bytes);
    int64_t *hs = realloc(c->h_slots64, (size_t)c->n_maps * n_slots * sizeof(int64_t));
    if (!hs) return sb_error("out of memory");
    c->h_slots64 = hs;
    c->ring_n = raw > 0 ? n_slots + 1 : 0;
    float *ring = realloc(c->ring, (size_t)(c->ring_n > 0 ? c->ring_n : 1) * 2 * half * sizeof(float));
    if (!ring) return sb_error("out of memory");
    c->ring = ring;
    c->ring_hi = INT64_MIN;
    return SB_OK;
}

static int cuda_slots_new(sb_backend *b, sb_slots **out, int64_t n_slots, int64_t n_moving, int n_maps) {
    *out = NULL;
    cuda_ctx *x = b->ctx;
    CK(cudaSetDevice(x->dev));
    sb_slots *c = calloc(1, sizeof *c);
    if (!c) return sb_error("out of memory");
    c->b = b, c->x = x, c->n_maps = n_maps, c->n_moving = n_moving;
    c->k = calloc((size_t)x->nl, sizeof(void *));
    c->v = calloc((size_t)x->nl, sizeof(void *));
    c->k_raw = calloc((size_t)x->nl, sizeof(float *));
    int rc = !c->k || !c->v || !c->k_raw ? sb_error("out of memory") : SB_OK;
    const int half = x->half > 0 ? x->half : 1;
    rc = rc ? rc : acts_alloc(x, &c->a, 1, (size_t)2 * half);
    if (!rc) {
        cudaError_t e = cudaMallocHost((void **)&c->h_logits, (size_t)x->V * sizeof(float));
        if (e != cudaSuccess) rc = sb_cuda_fail(e, "pinned logits", __FILE__, __LINE__);
    }
    rc = rc ? rc : slots_resize(c, n_slots);
    if (rc) {
        cuda_slots_free(c);
        return rc;
    }
    *out = c;
    return SB_OK;
}

static int cuda_slots_grow(sb_slots *c, int64_t n_slots) {
    if (n_slots <= c->n_slots) return SB_OK;
    CK(cudaSetDevice(c->x->dev));
    return slots_resize(c, n_slots);
}

/* Host RoPE row (cos then sin) of position pos, from the ring when it holds it. */
static const float *host_row(sb_slots *c, int64_t pos, float *spare) {
    const sb_model_config *cfg = &c->b->m->cfg;
    const int half = c->x->half;
    if (c->ring_n > 0 && c->ring_hi != INT64_MIN && pos <= c->ring_hi && pos > c->ring_hi - c->ring_n && pos >= 0)
        return c->ring + (size_t)(pos % c->ring_n) * 2 * half;
    sb_rope_table_fill(spare, spare + half, pos, 1, cfg);
    return spare;
}

static void ring_advance(sb_slots *c, int64_t qpos) {
    if (c->ring_n == 0) return;
    const int half = c->x->half;
    if (c->ring_hi != INT64_MIN && qpos < c->ring_hi) c->ring_hi = INT64_MIN;
    int64_t from = c->ring_hi == INT64_MIN ? qpos - c->ring_n + 1 : c->ring_hi + 1;
    if (from < qpos - c->ring_n + 1) from = qpos - c->ring_n + 1;
    if (from < 0) from = 0;
    for (int64_t p = from; p <= qpos; p++) {
        float *r = c->ring + (size_t)(p % c->ring_n) * 2 * half;
        sb_rope_table_fill(r, r + half, p, 1, &c->b->m->cfg);
    }
    c->ring_hi = qpos;
}

/* Fill the host step block for state s; returns the graph key (what the launches depend on). */
static void fill_step(sb_slots *c, const sb_kv_state *s, int32_t token, bool observe, int64_t key[4]) {
    cuda_ctx *x = c->x;
    const sb_model_config *cfg = &c->b->m->cfg;
    const int half = x->half, hrow = half > 0 ? half : 1;
    const int64_t max_dist = cfg->sliding_window > 0 ? (int64_t)cfg->sliding_window - 1 : INT64_MAX;
    char *h = c->h_step;
    memcpy(h, &token, sizeof token);
    float *tabs = (float *)(h + c->lay.off_tabs);
    if (half > 0) ring_advance(c, s->query_pos);
    int64_t moves = 0, raw_new = 0; /* launches depend on each map's moving count and on
                                     * whether the new key also keeps a pre-RoPE copy */
    for (int mp = 0; mp < c->n_maps; mp++) {
        const int64_t *tok = sb_kv_tokens(s, mp), *pos = sb_kv_pos(s, mp);
        int32_t *slots = (int32_t *)(h + c->lay.off_slots) + (size_t)mp * c->n_slots;
        int64_t *spos = (int64_t *)(h + c->lay.off_pos) + (size_t)mp * c->n_slots;
        int32_t *move = (int32_t *)(h + c->lay.off_move) + (size_t)mp * c->n_slots;
        int32_t n = 0, m = 0;
        for (int64_t i = 0; i < s->n_slots; i++)
            if (tok[i] >= 0 && s->query_pos - pos[i] <= max_dist) {
                c->h_slots64[(size_t)mp * c->n_slots + n] = i;
                spos[n] = pos[i];
                slots[n++] = (int32_t)i;
            }
        const int64_t slot = s->new_slot[mp];
        int64_t *raw_pos = c->raw_pos + (size_t)mp * c->n_raw;
        float *mcos = tabs + 4 * (size_t)hrow + (size_t)mp * c->n_slots * 2 * hrow, *msin = mcos + (size_t)c->n_slots * hrow;
        for (int64_t j = 0; half > 0 && j < c->n_raw && j < s->n_slots; j++) {
            if (j == slot || tok[j] < 0 || raw_pos[j] == pos[j]) continue;
            float spare[2 * 2048];
            const float *src = host_row(c, pos[j], spare);
            memcpy(mcos + (size_t)m * hrow, src, (size_t)half * sizeof(float));
            memcpy(msin + (size_t)m * hrow, src + half, (size_t)half * sizeof(float));
            move[m++] = (int32_t)j;
        }
        for (int64_t j = 0; j < c->n_raw && j < s->n_slots; j++)
            if (tok[j] >= 0) raw_pos[j] = pos[j];
        char *hdr = h + c->lay.off_hdr + (size_t)mp * 24;
        memcpy(hdr, &n, 4);
        memcpy(hdr + 4, &m, 4);
        memcpy(hdr + 8, &slot, 8);
        memcpy(hdr + 16, &s->query_pos, 8);
        moves = moves * 1000003 + m;
        raw_new = raw_new * 3 + (slot < c->n_raw);
        if (mp == 0 && half > 0) {
            float *r0 = tabs, *r1 = tabs + 2 * hrow;
            const float *q = host_row(c, s->query_pos, r0);
            if (q != r0) memcpy(r0, q, 2 * (size_t)half * sizeof(float));
            const float *k = host_row(c, pos[slot], r1);
            if (k != r1) memcpy(r1, k, 2 * (size_t)half * sizeof(float));
        }
    }
    key[0] = c->n_slots;
    key[1] = moves;
    key[2] = observe;
    key[3] = raw_new;
}

/* The step's launches (captured in a graph when they repeat). The moving-key counts are host
 * values and part of the key; the key counts n are read on the device. */
static int step_launch(sb_slots *c, const sb_kv_state *s, bool observe) {
    cuda_ctx *x = c->x;
    const sb_model_config *cfg = &c->b->m->cfg;
    acts *a = &c->a;
    const int half = x->half, hrow = half > 0 ? half : 1;
    const char *h = c->h_step;
    char *d = c->d_step;
    const int64_t max_dist = cfg->sliding_window > 0 ? (int64_t)cfg->sliding_window - 1 : INT64_MAX;
    const float *tq = (const float *)(d + c->lay.off_tabs), *tk = tq + 2 * hrow;
    CK(cudaMemcpyAsync(d, h, c->lay.bytes, cudaMemcpyHostToDevice, x->st));
    sbk_embed(a->x, x->embed, x->embed_dt, (const int32_t *)d, 1, x->C, x->V, x->st);
    const int interleaved = cfg->rope_style == SB_ROPE_INTERLEAVED;
    for (int l = 0; l < x->nl; l++) {
        const int mp = c->n_maps > 1 ? l : 0;
        const char *hdr_h = h + c->lay.off_hdr + (size_t)mp * 24;
        const char *hdr_d = d + c->lay.off_hdr + (size_t)mp * 24;
        int32_t m;
        int64_t slot;
        memcpy(&m, hdr_h + 4, 4);
        memcpy(&slot, hdr_h + 8, 8);
        const int32_t *slots = (const int32_t *)(d + c->lay.off_slots) + (size_t)mp * c->n_slots;
        const int64_t *spos = (const int64_t *)(d + c->lay.off_pos) + (size_t)mp * c->n_slots;
        const int32_t *move = (const int32_t *)(d + c->lay.off_move) + (size_t)mp * c->n_slots;
        const float *mcos = (const float *)(d + c->lay.off_tabs) + 4 * (size_t)hrow + (size_t)mp * c->n_slots * 2 * hrow;
        const float *msin = mcos + (size_t)c->n_slots * hrow;
        int rc = block_pre(x, cfg, a, l, 1);
        if (rc) return rc;
        float *q = a->qkv; /* then k and v: one fused row */
        const int64_t *dst = (const int64_t *)(hdr_d + 8);
        /* raw k (a moving key's), RoPE of q and k, k and v into the caches: one launch */
        sbk_decode_qkv_store(q, x->H, x->KV, x->hd, half > 0 ? cfg->rotary_dim : 0, interleaved, tq, tq + hrow, tk,
                             tk + hrow, c->k[l], c->v[l], x->cd, slot < c->n_raw ? c->k_raw[l] : NULL, dst, x->st);
        if (m > 0)
            sbk_rerotate(c->k[l], x->cd, c->k_raw[l], move, m, mcos, msin, x->KV, x->hd, cfg->rotary_dim, interleaved,
                         x->st);
        /* the output goes straight to the compute type of the output projection */
        sbk_decode_attention_to(NULL, a->att, x->cd, observe ? c->probs + (size_t)l * x->H * c->n_slots : NULL, q,
                                c->k[l], c->v[l], slots, spos, (const int64_t *)(hdr_d + 16), (const int *)hdr_d,
                                (int)c->n_slots, c->scratch, x->H, x->KV, x->hd, max_dist, (int)cfg->softmax,
                                x->L[l].sink_logit, x->alibi, x->cd, x->st);
        CL();
        rc = block_post(x, cfg, a, l, 1);
        if (rc) return rc;
    }
    int rc = block_head(x, cfg, a, 0, 1, false);
    if (rc) return rc;
    CK(cudaMemcpyAsync(c->h_logits, a->logits, (size_t)x->V * sizeof(float), cudaMemcpyDeviceToHost, x->st));
    if (observe)
        CK(cudaMemcpyAsync(c->h_probs, c->probs, (size_t)x->nl * x->H * c->n_slots * sizeof(float),
                           cudaMemcpyDeviceToHost, x->st));
    (void)s;
    return SB_OK;
}

static int cuda_token_forward(sb_slots *c, const sb_kv_state *s, int32_t token, float *logits, sb_attn_observer_fn obs,
                              void *obs_user) {
    cuda_ctx *x = c->x;
    CK(cudaSetDevice(x->dev));
    if (s->n_slots > c->n_slots) {
        int rc = slots_resize(c, s->n_slots);
        if (rc) return rc;
    }
    int64_t key[4];
    fill_step(c, s, token, obs != NULL, key);
    const bool same = !memcmp(key, c->last_key, sizeof key);
    memcpy(c->last_key, key, sizeof key);
    int rc = SB_OK;
    if (same && c->have_graph && !memcmp(key, c->graph_key, sizeof key)) {
        CK(cudaGraphLaunch(c->graph, x->st));
    } else if (same && !getenv("SINKBENCH_CUDA_NO_GRAPHS")) {
        /* the same launches twice in a row: capture them once for the steps to come */
        graph_drop(c);
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(x->st, cudaStreamCaptureModeThreadLocal));
        rc = step_launch(c, s, obs != NULL);
        cudaError_t e = cudaStreamEndCapture(x->st, &g);
        if (rc) return rc;
        if (e != cudaSuccess) return sb_cuda_fail(e, "cudaStreamEndCapture", __FILE__, __LINE__);
        e = cudaGraphInstantiate(&c->graph, g, 0);
        cudaGraphDestroy(g);
        if (e != cudaSuccess) return sb_cuda_fail(e, "cudaGraphInstantiate", __FILE__, __LINE__);
        c->have_graph = true;
        memcpy(c->graph_key, key, sizeof key);
        CK(cudaGraphLaunch(c->graph, x->st));
    } else {
        rc = step_launch(c, s, obs != NULL);
        if (rc) return rc;
    }
    CK(cudaStreamSynchronize(x->st));
    if (logits) memcpy(logits, c->h_logits, (size_t)x->V * sizeof(float));
    if (obs) {
        for (int l = 0; l < x->nl; l++) {
            const int mp = c->n_maps > 1 ? l : 0;
            int32_t n;
            memcpy(&n, c->h_step + c->lay.off_hdr + (size_t)mp * 24, 4);
            obs(obs_user, l, c->h_probs + (size_t)l * x->H * c->n_slots, c->h_slots64 + (size_t)mp * c->n_slots, n);
        }
    }
    return rc;
}

static uint64_t cuda_slots_kv_bytes(const sb_slots *c) {
    return (uint64_t)c->x->nl * ((uint64_t)2 * c->n_slots * c->x->kvd * c->x->elem + (uint64_t)c->n_raw * c->x->kvd * 4);
}

const sb_backend_ops sb_backend_cuda_ops = {
    .name = "cuda",
    .default_chunk = 2048,
    .open = cuda_open,
    .close = cuda_close,
    .set_threads = cuda_set_threads,
    .device_weight_bytes = cuda_device_weight_bytes,
    .exact_bytes = cuda_exact_bytes,
    .exact_new = cuda_exact_new,
    .exact_reset = cuda_exact_reset,
    .exact_seek = cuda_exact_seek,
    .exact_forward = cuda_exact_forward,
    .exact_free = cuda_exact_free,
    .slots_bytes = cuda_slots_bytes,
    .slots_new = cuda_slots_new,
    .slots_grow = cuda_slots_grow,
    .token_forward = cuda_token_forward,
    .slots_kv_bytes = cuda_slots_kv_bytes,
    .slots_free = cuda_slots_free,
};
