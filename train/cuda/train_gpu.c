/* The GPU trainer (train/train_gpu.h): buffers, cuBLAS matmuls and the order of the kernels
 * of train/cuda/train_kernels.h, mirroring sb_train_forward / sb_train_backward
 * (train/model_train.c) step for step.
 *
 * Precision: fp32 master weights, gradients, moments, residual stream, norms, softmax and
 * loss. In bf16 mode every matmul input is a bf16 copy (weights: a bf16 mirror of the whole
 * parameter block, refreshed by the AdamW kernel; activations: written in bf16 by the kernel
 * that produces them) and cuBLAS accumulates in fp32. In f32 mode those "matmul views" are the
 * fp32 buffers themselves and cuBLAS runs in pedantic fp32.
 *
 * Attention keeps the probabilities [B*H, T, T] of every layer (the sink share and the
 * backward read them) and runs its four products as pointer-array batched GEMMs over the
 * (batch, head) pairs, so the [B, T, H, D] layout of the CPU trainer stays. */
#include "train/train_gpu.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cpu/ops.h"
#include "train/cuda/train_kernels.h"
#include "train/train.h"

/* Offsets (in parameters) of one layer's tensors inside the parameter block. */
typedef struct {
    size_t attn_norm, wq, wk, wv, wo, sink, mlp_norm, gate, up, down;
} layer_off;

/* One batched product: the pointer arrays of its A, B and C for every batch item. */
typedef struct {
    const void **a, **b;
    void **c;
    int count;
} batch_ptrs;

enum { ATT_S, ATT_PV, ATT_DP, ATT_DQ, ATT_N_FIXED };

struct sb_train_gpu {
    sb_model_config cfg;
    int dev, B, T, N;              /* capacity: B sequences of T, N = B*T rows */
    int f32;                       /* matmuls in fp32 */
    size_t es;                     /* bytes of a matmul-view element: 2 or 4 */
    char name[96];
    double peak;
    cudaStream_t st;
    cublasHandle_t blas;
    void *blas_ws;
    uint64_t bytes;

    size_t np;                     /* parameters */
    layer_off *lo;
    size_t tok_embed, final_norm, lm_head;
    float *p, *grad, *m, *v;       /* [np] */
    uint16_t *p16;                 /* [np] bf16 mirror (bf16 mode) */
    uint8_t *mask;                 /* [np] */
    double *sumsq, *sumsq_scratch;

    /* activations kept for the backward, per layer l (index l * size) */
    float *x;                      /* [L+1, N, C] */
    float *xmid;                   /* [L, N, C] */
    float *rstd1, *rstd2;          /* [L, N] */
    void *xn1, *xn2;               /* [L, N, C] matmul views */
    void *q, *k, *vv;              /* [L, N, HD], [L, N, KD] views, q and k after RoPE */
    void *att;                     /* [L, N, HD] view: attention output */
    float *probs;                  /* [L, BH, T, T] */
    void *probs_v;                 /* [L, BH, T, T] view (bf16 mode; == probs in f32) */
    float *extra_p;                /* [L, BH, T] */
    float *gate, *up;              /* [L, N, F] */
    void *hm;                      /* [L, N, F] view */
    void *xnf;                     /* [N, C] view */
    float *rstdf;                  /* [N] */
    float *logits;                 /* [N, V] */
    void *dlogits_v;               /* [N, V] view (bf16 mode) */
    float *losses;                 /* [N] */
    int32_t *tokens, *targets;     /* [N] device */
    int32_t *emb_rows, *emb_start, *emb_pos; /* embedding-backward grouping */
    float *rope_cos, *rope_sin;    /* [T, D/2] */

    /* scratch */
    float *qkv32;                  /* [N, HD + 2 KD] fp32 matmul outputs before RoPE / conversion */
    float *att32;                  /* [N, HD] */
    float *dx, *dxn;               /* [N, C] */
    void *dx_v;                    /* [N, C] view of dx for the weight gradients */
    float *dh, *dgate, *dup;       /* [N, F] */
    void *dgate_v, *dup_v;         /* views */
    float *datt;                   /* [N, HD] */
    void *datt_v;
    float *dq, *dk, *dv;           /* [N, HD], [N, KD] */
    void *dq_v, *dk_v, *dv_v;
    float *dp;                     /* [BH, T, T]: dL/dp, then dS in place */
    void *ds_v;                    /* [BH, T, T] view of dS (bf16 mode) */
    float *rowdot;                 /* [BH, T] */
    float *norm_scratch;
    double *sink_sum;              /* [L*H] */

    /* host */
    int B_last, n_valid;
    int32_t *h_tokens, *h_rows, *h_start, *h_pos, *h_count;
    float *h_losses;

    /* pointer arrays: [L][ATT_N_FIXED] for the forward/backward products of one layer (group
     * index 0), plus per (layer, group member j) the dV and dK products */
    void **ptr_dev;
    batch_ptrs *att_fixed;         /* [L * ATT_N_FIXED] */
    batch_ptrs *att_dv, *att_dk;   /* [L * group] */
};

/* ------------------------------------------------------------ allocation */

static int dalloc(sb_train_gpu *g, void **p, size_t bytes) {
    if (bytes == 0) bytes = 16;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return sb_error("cuda: cannot allocate %.1f MiB on the GPU (%.1f GiB allocated so far): %s",
                        (double)bytes / 1048576.0, (double)g->bytes / 1073741824.0, cudaGetErrorString(e));
    }
    g->bytes += bytes;
    return SB_OK;
}
#define DALLOC(ptr, n, type) dalloc(g, (void **)&(ptr), (size_t)(n) * sizeof(type))
/* a matmul view: bf16 storage, or none in f32 mode (the caller points it at the fp32 buffer) */
#define VALLOC(ptr, n) (g->f32 ? SB_OK : dalloc(g, (void **)&(ptr), (size_t)(n) * 2))

static const void *wview(const sb_train_gpu *g, size_t off) {
    return g->f32 ? (const void *)(g->p + off) : (const void *)(g->p16 + off);
}
static void *view_at(const sb_train_gpu *g, void *base, size_t elems) { return (char *)base + elems * g->es; }

/* ------------------------------------------------------------ matmuls */

static cudaDataType_t vtype(const sb_train_gpu *g) { return g->f32 ? CUDA_R_32F : CUDA_R_16BF; }
static cublasComputeType_t ctype(const sb_train_gpu *g) {
    return g->f32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
}

/* y[N, OC] (fp32) = beta * y + x[N, C] . w[OC, C]^T */
static int mm_forward(sb_train_gpu *g, float *y, const void *x, size_t w, int N, int C, int OC, float beta) {
    const float one = 1.0f;
    CB(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, wview(g, w), vtype(g), C, x, vtype(g), C, &beta,
                    y, CUDA_R_32F, OC, ctype(g), CUBLAS_GEMM_DEFAULT));
    return SB_OK;
}
/* din[N, C] (fp32) = beta * din + dy[N, OC] . w[OC, C] */
static int mm_backward_in(sb_train_gpu *g, float *din, const void *dy, size_t w, int N, int C, int OC, float beta) {
    const float one = 1.0f;
    CB(cublasGemmEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, wview(g, w), vtype(g), C, dy, vtype(g), OC,
                    &beta, din, CUDA_R_32F, C, ctype(g), CUBLAS_GEMM_DEFAULT));
    return SB_OK;
}
/* grad[w][OC, C] += dy[N, OC]^T . x[N, C] */
static int mm_backward_w(sb_train_gpu *g, size_t w, const void *dy, const void *x, int N, int C, int OC) {
    const float one = 1.0f;
    CB(cublasGemmEx(g->blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, x, vtype(g), C, dy, vtype(g), OC, &one,
                    g->grad + w, CUDA_R_32F, C, ctype(g), CUBLAS_GEMM_DEFAULT));
    return SB_OK;
}
/* One batched product in column-major terms (cuBLAS's): C = alpha op(A) op(B) + beta C over
 * the first `count` items of bp; fp32 output. */
static int mm_batched(sb_train_gpu *g, const batch_ptrs *bp, int count, cublasOperation_t ta, cublasOperation_t tb,
                      int m, int n, int k, int lda, int ldb, int ldc, float beta) {
    const float one = 1.0f;
    CB(cublasGemmBatchedEx(g->blas, ta, tb, m, n, k, &one, (const void *const *)bp->a, vtype(g), lda,
                           (const void *const *)bp->b, vtype(g), ldb, &beta, (void *const *)bp->c, CUDA_R_32F, ldc,
                           count, ctype(g), CUBLAS_GEMM_DEFAULT));
    return SB_OK;
}

/* ------------------------------------------------------------ pointer arrays */

/* Address of head `head` of sequence b in a [N, heads*D]-row buffer of element size es. */
static const void *head_at(const void *base, size_t es, int b, int T, int row_elems, int head, int D) {
    return (const char *)base + es * ((size_t)b * T * row_elems + (size_t)head * D);
}

typedef struct {
    const void *a_base, *b_base;
    void *c_base;
    /* how each operand is addressed: 0 = per (b, head) in rows of `row` elements with head
     * index from `head` (0: h, 1: kv head h / group, 2: kv head g of the dK/dV calls), 1 = a
     * [BH, T, T] block */
    int a_kind, b_kind, c_kind;
    int a_row, b_row, c_row;
    size_t a_es, b_es, c_es;
} batch_spec;

enum { HK_Q, HK_KV, HK_SQUARE };

static const void *operand(const sb_train_gpu *g, const void *base, int kind, int row, size_t es, int b, int h,
                           int group) {
    const int H = g->cfg.n_heads, D = g->cfg.head_dim, T = g->T;
    if (kind == HK_SQUARE) return (const char *)base + es * ((size_t)(b * H + h) * T * T);
    return head_at(base, es, b, T, row, kind == HK_KV ? h / group : h, D);
}

/* Fill items for heads h = hsel(i) of every sequence; ng heads per sequence. */
static void fill_batch(const sb_train_gpu *g, const batch_spec *s, batch_ptrs *bp, int ng, int j, int group,
                       void **host) {
    int i = 0;
    for (int b = 0; b < g->B; b++)
        for (int hh = 0; hh < ng; hh++) {
            int h = ng == g->cfg.n_heads ? hh : hh * group + j; /* dK/dV calls: kv head hh */
            host[i] = (void *)operand(g, s->a_base, s->a_kind, s->a_row, s->a_es, b, h, group);
            host[bp->count + i] = (void *)operand(g, s->b_base, s->b_kind, s->b_row, s->b_es, b, h, group);
            /* dK/dV outputs are addressed by kv head: with h = hh*group + j, h / group == hh */
            host[2 * bp->count + i] = (void *)operand(g, s->c_base, s->c_kind, s->c_row, s->c_es, b, h, group);
            i++;
        }
}

static int build_ptrs(sb_train_gpu *g) {
    const sb_model_config *c = &g->cfg;
    const int L = c->n_layers, H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim, group = H / KVH;
    const int HD = H * D, KD = KVH * D;
    const size_t NHD = (size_t)g->N * HD, NKD = (size_t)g->N * KD, P = (size_t)g->B * H * g->T * g->T;
    const size_t es = g->es;
    int n_fixed = L * ATT_N_FIXED, n_group = L * group;
    size_t items_fixed = (size_t)g->B * H, items_group = (size_t)g->B * KVH;
    size_t total = 3 * (items_fixed * (size_t)n_fixed + items_group * (size_t)n_group * 2);
    void **host = calloc(total, sizeof(void *));
    g->att_fixed = calloc((size_t)n_fixed, sizeof(batch_ptrs));
    g->att_dv = calloc((size_t)n_group, sizeof(batch_ptrs));
    g->att_dk = calloc((size_t)n_group, sizeof(batch_ptrs));
    if (!host || !g->att_fixed || !g->att_dv || !g->att_dk) {
        free(host);
        return sb_error("out of memory");
    }
    int rc = DALLOC(g->ptr_dev, total, void *);
    size_t at = 0;
    for (int l = 0; l < L && !rc; l++) {
        const void *ql = view_at(g, g->q, l * NHD), *kl = view_at(g, g->k, l * NKD), *vl = view_at(g, g->vv, l * NKD);
        const void *pv = view_at(g, g->probs_v, l * P);
        float *pl = g->probs + l * P;
        const void *ds = g->f32 ? (const void *)g->dp : g->ds_v;
        const batch_spec fixed[ATT_N_FIXED] = {
            /* S = Q K^T: col-major m = keys, n = queries */
            [ATT_S] = {kl, ql, pl, HK_KV, HK_Q, HK_SQUARE, KD, HD, 0, es, es, 4},
            /* O = P V */
            [ATT_PV] = {vl, pv, g->att32, HK_KV, HK_SQUARE, HK_Q, KD, 0, HD, es, es, 4},
            /* dP = dO V^T */
            [ATT_DP] = {vl, g->datt_v, g->dp, HK_KV, HK_Q, HK_SQUARE, KD, HD, 0, es, es, 4},
            /* dQ = dS K */
            [ATT_DQ] = {kl, ds, g->dq, HK_KV, HK_SQUARE, HK_Q, KD, 0, HD, es, es, 4},
        };
        for (int f = 0; f < ATT_N_FIXED; f++) {
            batch_ptrs *bp = &g->att_fixed[l * ATT_N_FIXED + f];
            bp->count = (int)items_fixed;
            fill_batch(g, &fixed[f], bp, H, 0, group, host + at);
            bp->a = (const void **)(g->ptr_dev + at);
            bp->b = (const void **)(g->ptr_dev + at + items_fixed);
            bp->c = g->ptr_dev + at + 2 * items_fixed;
            at += 3 * items_fixed;
        }
        for (int j = 0; j < group; j++) {
            /* dV = P^T dO and dK = dS^T Q, one call per member j of each kv group */
            const batch_spec dv = {g->datt_v, pv, g->dv, HK_Q, HK_SQUARE, HK_KV, HD, 0, KD, es, es, 4};
            const batch_spec dk = {ql, ds, g->dk, HK_Q, HK_SQUARE, HK_KV, HD, 0, KD, es, es, 4};
            batch_ptrs *pair[2] = {&g->att_dv[l * group + j], &g->att_dk[l * group + j]};
            const batch_spec *spec[2] = {&dv, &dk};
            for (int s = 0; s < 2; s++) {
                pair[s]->count = (int)items_group;
                fill_batch(g, spec[s], pair[s], KVH, j, group, host + at);
                pair[s]->a = (const void **)(g->ptr_dev + at);
                pair[s]->b = (const void **)(g->ptr_dev + at + items_group);
                pair[s]->c = g->ptr_dev + at + 2 * items_group;
                at += 3 * items_group;
            }
        }
    }
    if (!rc) {
        cudaError_t e = cudaMemcpy(g->ptr_dev, host, total * sizeof(void *), cudaMemcpyHostToDevice);
        if (e != cudaSuccess) rc = sb_cuda_fail(e, "cudaMemcpy(pointer arrays)", __FILE__, __LINE__);
    }
    free(host);
    return rc;
}

/* ------------------------------------------------------------ open / close */

int sb_train_gpu_available(void) { return 1; }

static size_t off_of(const sb_model *m, const float *p) { return p ? (size_t)(p - m->params) : 0; }

static int alloc_all(sb_train_gpu *g) {
    const sb_model_config *c = &g->cfg;
    const size_t N = (size_t)g->N, L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->ffn_dim;
    const size_t H = (size_t)c->n_heads, D = (size_t)c->head_dim, HD = H * D, KD = (size_t)c->n_kv_heads * D;
    const size_t V = (size_t)c->vocab_size, T = (size_t)g->T, BH = (size_t)g->B * H, P = BH * T * T;
    int rc = SB_OK;
    rc = rc ? rc : DALLOC(g->p, g->np, float);
    rc = rc ? rc : DALLOC(g->grad, g->np, float);
    rc = rc ? rc : DALLOC(g->m, g->np, float);
    rc = rc ? rc : DALLOC(g->v, g->np, float);
    rc = rc ? rc : VALLOC(g->p16, g->np);
    rc = rc ? rc : DALLOC(g->mask, g->np, uint8_t);
    rc = rc ? rc : DALLOC(g->sumsq, 1, double);
    rc = rc ? rc : DALLOC(g->sumsq_scratch, sbt_sumsq_scratch(g->np), double);
    rc = rc ? rc : DALLOC(g->x, (L + 1) * N * C, float);
    rc = rc ? rc : DALLOC(g->xmid, L * N * C, float);
    rc = rc ? rc : DALLOC(g->rstd1, L * N, float);
    rc = rc ? rc : DALLOC(g->rstd2, L * N, float);
    rc = rc ? rc : DALLOC(g->probs, L * P, float);
    rc = rc ? rc : DALLOC(g->extra_p, L * BH * T, float);
    rc = rc ? rc : DALLOC(g->gate, L * N * F, float);
    rc = rc ? rc : DALLOC(g->up, L * N * F, float);
    rc = rc ? rc : DALLOC(g->rstdf, N, float);
    rc = rc ? rc : DALLOC(g->logits, N * V, float);
    rc = rc ? rc : DALLOC(g->losses, N, float);
    rc = rc ? rc : DALLOC(g->tokens, N, int32_t);
    rc = rc ? rc : DALLOC(g->targets, N, int32_t);
    rc = rc ? rc : DALLOC(g->emb_rows, N, int32_t);
    rc = rc ? rc : DALLOC(g->emb_start, N + 1, int32_t);
    rc = rc ? rc : DALLOC(g->emb_pos, N, int32_t);
    rc = rc ? rc : DALLOC(g->rope_cos, T * D / 2, float);
    rc = rc ? rc : DALLOC(g->rope_sin, T * D / 2, float);
    rc = rc ? rc : DALLOC(g->qkv32, N * (HD + 2 * KD), float);
    rc = rc ? rc : DALLOC(g->att32, N * HD, float);
    rc = rc ? rc : DALLOC(g->dx, N * C, float);
    rc = rc ? rc : DALLOC(g->dxn, N * C, float);
    rc = rc ? rc : DALLOC(g->dh, N * F, float);
    rc = rc ? rc : DALLOC(g->dgate, N * F, float);
    rc = rc ? rc : DALLOC(g->dup, N * F, float);
    rc = rc ? rc : DALLOC(g->datt, N * HD, float);
    rc = rc ? rc : DALLOC(g->dq, N * HD, float);
    rc = rc ? rc : DALLOC(g->dk, N * KD, float);
    rc = rc ? rc : DALLOC(g->dv, N * KD, float);
    rc = rc ? rc : DALLOC(g->dp, P, float);
    rc = rc ? rc : DALLOC(g->rowdot, BH * T, float);
    rc = rc ? rc : DALLOC(g->norm_scratch, sbt_rmsnorm_backward_scratch(g->N, c->dim), float);
    rc = rc ? rc : DALLOC(g->sink_sum, L * H, double);
    /* matmul views: bf16 copies, or the fp32 buffers in f32 mode (below) */
    rc = rc ? rc : VALLOC(g->xn1, L * N * C);
    rc = rc ? rc : VALLOC(g->xn2, L * N * C);
    rc = rc ? rc : VALLOC(g->q, L * N * HD);
    rc = rc ? rc : VALLOC(g->k, L * N * KD);
    rc = rc ? rc : VALLOC(g->vv, L * N * KD);
    rc = rc ? rc : VALLOC(g->att, L * N * HD);
    rc = rc ? rc : VALLOC(g->probs_v, L * P);
    rc = rc ? rc : VALLOC(g->hm, L * N * F);
    rc = rc ? rc : VALLOC(g->xnf, N * C);
    rc = rc ? rc : VALLOC(g->dlogits_v, N * V);
    rc = rc ? rc : VALLOC(g->dx_v, N * C);
    rc = rc ? rc : VALLOC(g->dgate_v, N * F);
    rc = rc ? rc : VALLOC(g->dup_v, N * F);
    rc = rc ? rc : VALLOC(g->datt_v, N * HD);
    rc = rc ? rc : VALLOC(g->dq_v, N * HD);
    rc = rc ? rc : VALLOC(g->dk_v, N * KD);
    rc = rc ? rc : VALLOC(g->dv_v, N * KD);
    rc = rc ? rc : VALLOC(g->ds_v, P);
    if (rc) return rc;
    if (g->f32) {
        /* f32 mode: fp32 copies where the views would be, since no kernel writes bf16 then */
        rc = rc ? rc : dalloc(g, &g->xn1, L * N * C * 4);
        rc = rc ? rc : dalloc(g, &g->xn2, L * N * C * 4);
        rc = rc ? rc : dalloc(g, &g->q, L * N * HD * 4);
        rc = rc ? rc : dalloc(g, &g->k, L * N * KD * 4);
        rc = rc ? rc : dalloc(g, &g->vv, L * N * KD * 4);
        rc = rc ? rc : dalloc(g, &g->att, L * N * HD * 4);
        rc = rc ? rc : dalloc(g, &g->hm, L * N * F * 4);
        rc = rc ? rc : dalloc(g, &g->xnf, N * C * 4);
        g->probs_v = g->probs;
        g->dlogits_v = g->logits;
        g->dx_v = g->dx;
        g->dgate_v = g->dgate;
        g->dup_v = g->dup;
        g->datt_v = g->datt;
        g->dq_v = g->dq;
        g->dk_v = g->dk;
        g->dv_v = g->dv;
        g->ds_v = g->dp;
    }
    return rc;
}

static void dfree(void *p) {
    if (p) cudaFree(p);
}

void sb_train_gpu_close(sb_train_gpu *g) {
    if (!g) return;
    cudaSetDevice(g->dev);
    if (g->st) cudaStreamSynchronize(g->st);
    void *bufs[] = {g->p, g->grad, g->m, g->v, g->p16, g->mask, g->sumsq, g->sumsq_scratch, g->x, g->xmid,
                    g->rstd1, g->rstd2, g->probs, g->extra_p, g->gate, g->up, g->rstdf, g->logits, g->losses,
                    g->tokens, g->targets, g->emb_rows, g->emb_start, g->emb_pos, g->rope_cos, g->rope_sin,
                    g->qkv32, g->att32, g->dx, g->dxn, g->dh, g->dgate, g->dup, g->datt, g->dq, g->dk, g->dv,
                    g->dp, g->rowdot, g->norm_scratch, g->sink_sum, g->xn1, g->xn2, g->q, g->k, g->vv, g->att,
                    g->hm, g->xnf, g->ptr_dev, g->blas_ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dfree(bufs[i]);
    if (!g->f32) {
        void *views[] = {g->probs_v, g->dlogits_v, g->dx_v, g->dgate_v, g->dup_v, g->datt_v,
                         g->dq_v,    g->dk_v,      g->dv_v, g->ds_v};
        for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) dfree(views[i]);
    }
    if (g->blas) cublasDestroy(g->blas);
    if (g->st) cudaStreamDestroy(g->st);
    free(g->lo);
    free(g->att_fixed);
    free(g->att_dv);
    free(g->att_dk);
    free(g->h_tokens);
    free(g->h_rows);
    free(g->h_start);
    free(g->h_pos);
    free(g->h_count);
    free(g->h_losses);
    free(g);
}

static int parse_device(const char *device, int *index) {
    *index = 0;
    if (!device || !strcmp(device, "cuda")) return SB_OK;
    if (!strncmp(device, "cuda:", 5)) {
        char *end;
        long v = strtol(device + 5, &end, 10);
        if (*end == '\0' && end != device + 5 && v >= 0 && v < 1024) {
            *index = (int)v;
            return SB_OK;
        }
    }
    return sb_usage_error("--device '%s': expected cpu, cuda or cuda:N", device);
}

/* Dense bf16 tensor-core FLOP/s per SM per clock: Hopper 4096, Ampere/Ada 2048 (0: unknown). */
static double peak_flops(int dev) {
    int major = 0, minor = 0, sms = 0, khz = 0;
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev);
    double per_clk = major == 9 ? 4096.0 : major == 8 ? (minor == 0 ? 2048.0 : 1024.0) : 0.0;
    return per_clk * sms * (double)khz * 1e3;
}

int sb_train_gpu_open(sb_train_gpu **out, const sb_model *m, const uint8_t *decay, int B, int T, const char *device,
                      sb_compute compute) {
    *out = NULL;
    const sb_model_config *c = &m->cfg;
    if (sb_train_model_check_config(c)) return SB_ERR;
    if (!m->params) return sb_error("trainer: the model's weights are not one fp32 block");
    if (B < 1 || T < 2) return sb_error("trainer: batch %d x %d is too small for the GPU trainer", B, T);
    int index;
    if (parse_device(device, &index)) return SB_ERR_USAGE;
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0) {
        cudaGetLastError();
        return sb_usage_error("--device %s: no CUDA GPU is present (%s)", device ? device : "cuda",
                              e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    }
    if (index >= n_dev) return sb_usage_error("--device %s: only %d GPU(s) are present", device, n_dev);
    if (compute == SB_COMPUTE_F16) return sb_usage_error("--compute f16: the trainer computes in bf16 or f32");
    if ((size_t)B * T > INT32_MAX / 8) return sb_error("trainer: batch %d x %d is too large", B, T);
    sb_train_gpu *g = calloc(1, sizeof *g);
    if (!g) return sb_error("out of memory");
    g->cfg = *c;
    g->dev = index;
    g->B = B, g->T = T, g->N = B * T;
    g->f32 = compute == SB_COMPUTE_F32;
    g->es = g->f32 ? 4 : 2;
    g->np = m->n_params;
    int rc = SB_OK;
    if ((e = cudaSetDevice(index)) != cudaSuccess) rc = sb_cuda_fail(e, "cudaSetDevice", __FILE__, __LINE__);
    struct cudaDeviceProp prop;
    if (!rc && cudaGetDeviceProperties(&prop, index) == cudaSuccess) snprintf(g->name, sizeof g->name, "%.95s", prop.name);
    g->peak = peak_flops(index);
    if (!rc && (e = cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking)) != cudaSuccess)
        rc = sb_cuda_fail(e, "cudaStreamCreate", __FILE__, __LINE__);
    if (!rc && cublasCreate(&g->blas) != CUBLAS_STATUS_SUCCESS) rc = sb_error("cublas: cannot create a handle");
    if (!rc) rc = dalloc(g, &g->blas_ws, (size_t)32 << 20);
    if (!rc && (cublasSetStream(g->blas, g->st) != CUBLAS_STATUS_SUCCESS ||
                cublasSetWorkspace(g->blas, g->blas_ws, (size_t)32 << 20) != CUBLAS_STATUS_SUCCESS ||
                cublasSetMathMode(g->blas, g->f32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH) !=
                    CUBLAS_STATUS_SUCCESS))
        rc = sb_error("cublas: cannot configure the handle");
    const int L = c->n_layers;
    g->lo = calloc((size_t)L, sizeof *g->lo);
    size_t N = (size_t)g->N;
    g->h_tokens = malloc(N * sizeof(int32_t));
    g->h_rows = malloc(N * sizeof(int32_t));
    g->h_start = malloc((N + 1) * sizeof(int32_t));
    g->h_pos = malloc(N * sizeof(int32_t));
    g->h_count = malloc((size_t)c->vocab_size * sizeof(int32_t));
    g->h_losses = malloc(N * sizeof(float));
    if (!rc && (!g->lo || !g->h_tokens || !g->h_rows || !g->h_start || !g->h_pos || !g->h_count || !g->h_losses))
        rc = sb_error("out of memory");
    if (!rc) {
        const sb_model_weights *w = &m->w;
        for (int l = 0; l < L; l++) {
            const sb_layer_weights *lw = &w->layers[l];
            g->lo[l] = (layer_off){off_of(m, lw->attn_norm_w), off_of(m, lw->wq),         off_of(m, lw->wk),
                                   off_of(m, lw->wv),          off_of(m, lw->wo),         off_of(m, lw->sink_logit),
                                   off_of(m, lw->mlp_norm_w),  off_of(m, lw->w_gate),     off_of(m, lw->w_up),
                                   off_of(m, lw->w_down)};
        }
        g->tok_embed = off_of(m, w->tok_embed);
        g->final_norm = off_of(m, w->final_norm_w);
        g->lm_head = off_of(m, w->lm_head);
        rc = alloc_all(g);
    }
    if (!rc) rc = build_ptrs(g);
    if (!rc) {
        size_t half = (size_t)T * c->head_dim / 2;
        float *cs = malloc(2 * half * sizeof(float));
        if (!cs) rc = sb_error("out of memory");
        else {
            rope_table_fill(cs, cs + half, 0, T, c->head_dim, c->rope_theta);
            if ((e = cudaMemcpy(g->rope_cos, cs, half * 4, cudaMemcpyHostToDevice)) != cudaSuccess ||
                (e = cudaMemcpy(g->rope_sin, cs + half, half * 4, cudaMemcpyHostToDevice)) != cudaSuccess ||
                (e = cudaMemcpy(g->mask, decay, g->np, cudaMemcpyHostToDevice)) != cudaSuccess)
                rc = sb_cuda_fail(e, "cudaMemcpy", __FILE__, __LINE__);
            free(cs);
        }
    }
    if (!rc && (e = cudaMemset(g->grad, 0, g->np * sizeof(float))) != cudaSuccess)
        rc = sb_cuda_fail(e, "cudaMemset", __FILE__, __LINE__);
    if (rc) {
        sb_train_gpu_close(g);
        return rc;
    }
    *out = g;
    return SB_OK;
}

uint64_t sb_train_gpu_bytes(const sb_train_gpu *g) { return g->bytes; }
const char *sb_train_gpu_name(const sb_train_gpu *g) { return g->name; }
double sb_train_gpu_peak_flops(const sb_train_gpu *g) { return g->peak; }

/* ------------------------------------------------------------ weights and moments */

int sb_train_gpu_upload(sb_train_gpu *g, const float *params, const float *adam_m, const float *adam_v) {
    size_t b = g->np * sizeof(float);
    CK(cudaMemcpy(g->p, params, b, cudaMemcpyHostToDevice));
    if (adam_m) CK(cudaMemcpy(g->m, adam_m, b, cudaMemcpyHostToDevice));
    else CK(cudaMemset(g->m, 0, b));
    if (adam_v) CK(cudaMemcpy(g->v, adam_v, b, cudaMemcpyHostToDevice));
    else CK(cudaMemset(g->v, 0, b));
    if (!g->f32) sbt_f32_to_bf16(g->p16, g->p, g->np, g->st);
    CL();
    CK(cudaStreamSynchronize(g->st));
    return SB_OK;
}

int sb_train_gpu_download(sb_train_gpu *g, float *params, float *adam_m, float *adam_v) {
    size_t b = g->np * sizeof(float);
    CK(cudaStreamSynchronize(g->st));
    if (params) CK(cudaMemcpy(params, g->p, b, cudaMemcpyDeviceToHost));
    if (adam_m) CK(cudaMemcpy(adam_m, g->m, b, cudaMemcpyDeviceToHost));
    if (adam_v) CK(cudaMemcpy(adam_v, g->v, b, cudaMemcpyDeviceToHost));
    return SB_OK;
}

int sb_train_gpu_download_grad(sb_train_gpu *g, float *grad) {
    CK(cudaStreamSynchronize(g->st));
    CK(cudaMemcpy(grad, g->grad, g->np * sizeof(float), cudaMemcpyDeviceToHost));
    return SB_OK;
}

int sb_train_gpu_zero_grad(sb_train_gpu *g) {
    CK(cudaMemsetAsync(g->grad, 0, g->np * sizeof(float), g->st));
    return SB_OK;
}

/* ------------------------------------------------------------ forward */

/* f32 source -> the view dst (bf16 conversion, or a copy in f32 mode) */
static int to_view(sb_train_gpu *g, void *dst, const float *src, size_t n) {
    if (g->f32) {
        if (dst != src) CK(cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyDeviceToDevice, g->st));
    } else {
        sbt_f32_to_bf16((uint16_t *)dst, src, n, g->st);
    }
    return SB_OK;
}

/* RMSNorm into a view (and rstd) */
static void norm_view(sb_train_gpu *g, void *view, float *rstd, const float *in, size_t w, int N) {
    if (g->f32) sbt_rmsnorm_forward((float *)view, NULL, rstd, in, g->p + w, g->cfg.norm_eps, N, g->cfg.dim, g->st);
    else sbt_rmsnorm_forward(NULL, (uint16_t *)view, rstd, in, g->p + w, g->cfg.norm_eps, N, g->cfg.dim, g->st);
}

int sb_train_gpu_forward(sb_train_gpu *g, const int32_t *tokens, const int32_t *targets, int B, int T,
                         float *loss, int *n_valid) {
    const sb_model_config *c = &g->cfg;
    if (B < 1 || B > g->B || T != g->T)
        return sb_error("trainer: batch %d x %d does not fit the GPU buffers (%d x %d)", B, T, g->B, g->T);
    const int N = B * T, L = c->n_layers, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    const int H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim, HD = H * D, KD = KVH * D;
    for (int n = 0; n < N; n++) {
        if (tokens[n] < 0 || tokens[n] >= V)
            return sb_error("token id %ld at position %d is outside the vocabulary [0, %d)", (long)tokens[n], n, V);
        if (targets[n] >= V)
            return sb_error("target id %ld at position %d is outside the vocabulary [0, %d)", (long)targets[n], n, V);
    }
    CK(cudaSetDevice(g->dev));
    g->B_last = B;
    memcpy(g->h_tokens, tokens, (size_t)N * sizeof(int32_t));
    int nv = 0;
    for (int n = 0; n < N; n++) nv += targets[n] >= 0;
    g->n_valid = nv;
    CK(cudaMemcpyAsync(g->tokens, tokens, (size_t)N * 4, cudaMemcpyHostToDevice, g->st));
    CK(cudaMemcpyAsync(g->targets, targets, (size_t)N * 4, cudaMemcpyHostToDevice, g->st));
    const size_t NC = (size_t)g->N * C, NF = (size_t)g->N * F, NHD = (size_t)g->N * HD, NKD = (size_t)g->N * KD;
    const size_t P = (size_t)g->B * H * T * T, E = (size_t)g->B * H * T, NL = (size_t)g->N;
    const int BH = B * H;
    const float scale = 1.0f / sqrtf((float)D);
    sbt_embed_forward(g->x, g->p + g->tok_embed, g->tokens, N, C, g->st);
    for (int l = 0; l < L; l++) {
        const layer_off *o = &g->lo[l];
        float *x = g->x + l * NC, *xmid = g->xmid + l * NC, *xo = g->x + (l + 1) * NC;
        void *xn1 = view_at(g, g->xn1, l * NC), *xn2 = view_at(g, g->xn2, l * NC);
        void *ql = view_at(g, g->q, l * NHD), *kl = view_at(g, g->k, l * NKD), *vl = view_at(g, g->vv, l * NKD);
        void *att = view_at(g, g->att, l * NHD), *hm = view_at(g, g->hm, l * NF);
        float *gate = g->gate + l * NF, *up = g->up + l * NF, *pl = g->probs + l * P;
        float *q32 = g->qkv32, *k32 = q32 + (size_t)N * HD, *v32 = k32 + (size_t)N * KD;
        norm_view(g, xn1, g->rstd1 + l * NL, x, o->attn_norm, N);
        if (mm_forward(g, q32, xn1, o->wq, N, C, HD, 0.0f) || mm_forward(g, k32, xn1, o->wk, N, C, KD, 0.0f) ||
            mm_forward(g, v32, xn1, o->wv, N, C, KD, 0.0f))
            return SB_ERR;
        sbt_rope_forward(q32, g->rope_cos, g->rope_sin, N, T, H, D, (int)c->rope_style, g->st);
        sbt_rope_forward(k32, g->rope_cos, g->rope_sin, N, T, KVH, D, (int)c->rope_style, g->st);
        if (to_view(g, ql, q32, (size_t)N * HD) || to_view(g, kl, k32, (size_t)N * KD) ||
            to_view(g, vl, v32, (size_t)N * KD))
            return SB_ERR;
        const batch_ptrs *fx = &g->att_fixed[l * ATT_N_FIXED];
        /* scores S^T in column-major = S row-major [query, key] */
        if (mm_batched(g, &fx[ATT_S], BH, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, KD, HD, T, 0.0f)) return SB_ERR;
        sbt_attn_softmax_forward(pl, g->f32 ? NULL : (uint16_t *)view_at(g, g->probs_v, l * P), g->extra_p + l * E,
                                 c->softmax == SB_SOFTMAX_SINK_LOGIT ? g->p + o->sink : NULL, (int)c->softmax, scale,
                                 BH, H, T, g->st);
        if (mm_batched(g, &fx[ATT_PV], BH, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, KD, T, HD, 0.0f)) return SB_ERR;
        if (to_view(g, att, g->att32, (size_t)N * HD)) return SB_ERR;
        CK(cudaMemcpyAsync(xmid, x, (size_t)N * C * 4, cudaMemcpyDeviceToDevice, g->st));
        if (mm_forward(g, xmid, att, o->wo, N, HD, C, 1.0f)) return SB_ERR;
        norm_view(g, xn2, g->rstd2 + l * NL, xmid, o->mlp_norm, N);
        if (mm_forward(g, gate, xn2, o->gate, N, C, F, 0.0f) || mm_forward(g, up, xn2, o->up, N, C, F, 0.0f))
            return SB_ERR;
        /* f32 mode: h goes straight into the view, which is an fp32 buffer */
        if (g->f32) sbt_swiglu_forward((float *)hm, NULL, gate, up, (size_t)N * F, g->st);
        else sbt_swiglu_forward(g->dh, (uint16_t *)hm, gate, up, (size_t)N * F, g->st);
        CK(cudaMemcpyAsync(xo, xmid, (size_t)N * C * 4, cudaMemcpyDeviceToDevice, g->st));
        if (mm_forward(g, xo, hm, o->down, N, F, C, 1.0f)) return SB_ERR;
    }
    norm_view(g, g->xnf, g->rstdf, g->x + L * NC, g->final_norm, N);
    if (mm_forward(g, g->logits, g->xnf, g->lm_head, N, C, V, 0.0f)) return SB_ERR;
    sbt_crossentropy(g->losses, NULL, NULL, g->logits, g->targets, 0.0f, N, V, g->st);
    CL();
    CK(cudaMemcpyAsync(g->h_losses, g->losses, (size_t)N * 4, cudaMemcpyDeviceToHost, g->st));
    CK(cudaStreamSynchronize(g->st));
    double sum = 0.0;
    for (int n = 0; n < N; n++)
        if (targets[n] >= 0) sum += g->h_losses[n];
    *loss = nv ? (float)(sum / nv) : 0.0f;
    if (n_valid) *n_valid = nv;
    return SB_OK;
}

/* ------------------------------------------------------------ backward */

/* Positions grouped by token id (counting sort, increasing position inside an id) for the
 * deterministic embedding backward. Returns the number of distinct ids. */
static int group_tokens(sb_train_gpu *g, int N) {
    const int V = g->cfg.vocab_size;
    memset(g->h_count, 0, (size_t)V * sizeof(int32_t));
    for (int n = 0; n < N; n++) g->h_count[g->h_tokens[n]]++;
    int rows = 0, at = 0;
    for (int id = 0; id < V; id++) {
        if (!g->h_count[id]) continue;
        g->h_rows[rows] = id;
        g->h_start[rows] = at;
        int cnt = g->h_count[id];
        g->h_count[id] = at; /* becomes the write cursor */
        at += cnt;
        rows++;
    }
    g->h_start[rows] = at;
    for (int n = 0; n < N; n++) g->h_pos[g->h_count[g->h_tokens[n]]++] = n;
    return rows;
}

int sb_train_gpu_backward(sb_train_gpu *g, float dloss) {
    const sb_model_config *c = &g->cfg;
    if (g->n_valid == 0) return SB_OK;
    const int B = g->B_last, T = g->T, N = B * T, L = c->n_layers, C = c->dim, F = c->ffn_dim, V = c->vocab_size;
    const int H = c->n_heads, KVH = c->n_kv_heads, D = c->head_dim, HD = H * D, KD = KVH * D, group = H / KVH;
    const size_t NC = (size_t)g->N * C, NF = (size_t)g->N * F, NHD = (size_t)g->N * HD;
    const size_t P = (size_t)g->B * H * T * T, E = (size_t)g->B * H * T, NL = (size_t)g->N;
    const int BH = B * H;
    const float scale = 1.0f / sqrtf((float)D);
    CK(cudaSetDevice(g->dev));
    /* dlogits (in the view; in f32 mode over the logits themselves) */
    if (g->f32) sbt_crossentropy(g->losses, g->logits, NULL, g->logits, g->targets, dloss / (float)g->n_valid, N, V, g->st);
    else sbt_crossentropy(g->losses, NULL, (uint16_t *)g->dlogits_v, g->logits, g->targets, dloss / (float)g->n_valid,
                          N, V, g->st);
    if (mm_backward_in(g, g->dxn, g->dlogits_v, g->lm_head, N, C, V, 0.0f) ||
        mm_backward_w(g, g->lm_head, g->dlogits_v, g->xnf, N, C, V))
        return SB_ERR;
    CK(cudaMemsetAsync(g->dx, 0, (size_t)N * C * 4, g->st));
    sbt_rmsnorm_backward(g->dx, g->grad + g->final_norm, g->norm_scratch, g->dxn, g->x + L * NC, g->p + g->final_norm,
                         g->rstdf, N, C, g->st);
    for (int l = L - 1; l >= 0; l--) {
        const layer_off *o = &g->lo[l];
        const float *x = g->x + l * NC, *xmid = g->xmid + l * NC;
        void *xn1 = view_at(g, g->xn1, l * NC), *xn2 = view_at(g, g->xn2, l * NC);
        void *att = view_at(g, g->att, l * NHD), *hm = view_at(g, g->hm, l * NF);
        const float *gate = g->gate + l * NF, *up = g->up + l * NF;
        /* MLP: dx holds d(x_{l+1}), also the gradient reaching xmid by the residual */
        if (to_view(g, g->dx_v, g->dx, (size_t)N * C)) return SB_ERR;
        if (mm_backward_in(g, g->dh, g->dx_v, o->down, N, F, C, 0.0f) || mm_backward_w(g, o->down, g->dx_v, hm, N, F, C))
            return SB_ERR;
        sbt_swiglu_backward(g->dgate, g->dup, g->f32 ? NULL : (uint16_t *)g->dgate_v,
                            g->f32 ? NULL : (uint16_t *)g->dup_v, g->dh, gate, up, (size_t)N * F, g->st);
        if (mm_backward_in(g, g->dxn, g->dgate_v, o->gate, N, C, F, 0.0f) ||
            mm_backward_in(g, g->dxn, g->dup_v, o->up, N, C, F, 1.0f) ||
            mm_backward_w(g, o->gate, g->dgate_v, xn2, N, C, F) || mm_backward_w(g, o->up, g->dup_v, xn2, N, C, F))
            return SB_ERR;
        sbt_rmsnorm_backward(g->dx, g->grad + o->mlp_norm, g->norm_scratch, g->dxn, xmid, g->p + o->mlp_norm,
                             g->rstd2 + l * NL, N, C, g->st);
        /* attention: dx now holds d(xmid), also the gradient reaching x_l by the residual */
        if (to_view(g, g->dx_v, g->dx, (size_t)N * C)) return SB_ERR;
        if (mm_backward_in(g, g->datt, g->dx_v, o->wo, N, HD, C, 0.0f) || mm_backward_w(g, o->wo, g->dx_v, att, N, HD, C))
            return SB_ERR;
        if (to_view(g, g->datt_v, g->datt, (size_t)N * HD)) return SB_ERR;
        const batch_ptrs *fx = &g->att_fixed[l * ATT_N_FIXED];
        /* dP = dO V^T, then dV = P^T dO per kv-group member */
        if (mm_batched(g, &fx[ATT_DP], BH, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, KD, HD, T, 0.0f)) return SB_ERR;
        for (int j = 0; j < group; j++)
            if (mm_batched(g, &g->att_dv[l * group + j], B * KVH, CUBLAS_OP_N, CUBLAS_OP_T, D, T, T, HD, T, KD,
                           j ? 1.0f : 0.0f))
                return SB_ERR;
        sbt_attn_softmax_backward(g->dp, g->f32 ? NULL : (uint16_t *)g->ds_v, g->rowdot, g->dp, g->probs + l * P, scale,
                                  BH, T, g->st);
        if (c->softmax == SB_SOFTMAX_SINK_LOGIT)
            sbt_sink_logit_backward(g->grad + o->sink, g->extra_p + l * E, g->rowdot, B, H, T, g->st);
        /* dQ = dS K, dK = dS^T Q */
        if (mm_batched(g, &fx[ATT_DQ], BH, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, KD, T, HD, 0.0f)) return SB_ERR;
        for (int j = 0; j < group; j++)
            if (mm_batched(g, &g->att_dk[l * group + j], B * KVH, CUBLAS_OP_N, CUBLAS_OP_T, D, T, T, HD, T, KD,
                           j ? 1.0f : 0.0f))
                return SB_ERR;
        sbt_rope_backward(g->dq, g->rope_cos, g->rope_sin, N, T, H, D, (int)c->rope_style, g->st);
        sbt_rope_backward(g->dk, g->rope_cos, g->rope_sin, N, T, KVH, D, (int)c->rope_style, g->st);
        if (to_view(g, g->dq_v, g->dq, (size_t)N * HD) || to_view(g, g->dk_v, g->dk, (size_t)N * KD) ||
            to_view(g, g->dv_v, g->dv, (size_t)N * KD))
            return SB_ERR;
        if (mm_backward_in(g, g->dxn, g->dq_v, o->wq, N, C, HD, 0.0f) ||
            mm_backward_in(g, g->dxn, g->dk_v, o->wk, N, C, KD, 1.0f) ||
            mm_backward_in(g, g->dxn, g->dv_v, o->wv, N, C, KD, 1.0f) || mm_backward_w(g, o->wq, g->dq_v, xn1, N, C, HD) ||
            mm_backward_w(g, o->wk, g->dk_v, xn1, N, C, KD) || mm_backward_w(g, o->wv, g->dv_v, xn1, N, C, KD))
            return SB_ERR;
        sbt_rmsnorm_backward(g->dx, g->grad + o->attn_norm, g->norm_scratch, g->dxn, x, g->p + o->attn_norm,
                             g->rstd1 + l * NL, N, C, g->st);
    }
    int rows = group_tokens(g, N);
    CK(cudaMemcpyAsync(g->emb_rows, g->h_rows, (size_t)rows * 4, cudaMemcpyHostToDevice, g->st));
    CK(cudaMemcpyAsync(g->emb_start, g->h_start, (size_t)(rows + 1) * 4, cudaMemcpyHostToDevice, g->st));
    CK(cudaMemcpyAsync(g->emb_pos, g->h_pos, (size_t)N * 4, cudaMemcpyHostToDevice, g->st));
    sbt_embed_backward(g->grad + g->tok_embed, g->dx, g->emb_rows, g->emb_start, g->emb_pos, rows, C, g->st);
    CL();
    /* the host arrays above are reused by the next backward: wait for the copies */
    CK(cudaStreamSynchronize(g->st));
    return SB_OK;
}

/* ------------------------------------------------------------ sink share, optimizer */

int64_t sb_train_gpu_sink_share(sb_train_gpu *g, int first_query, double *sum) {
    const sb_model_config *c = &g->cfg;
    const int B = g->B_last, T = g->T, H = c->n_heads, L = c->n_layers;
    const size_t P = (size_t)g->B * H * T * T;
    if (first_query < 0) first_query = 0;
    if (first_query >= T) return 0;
    double *h = malloc((size_t)L * H * sizeof(double));
    if (!h) return sb_error("out of memory"), -1;
    if (cudaMemsetAsync(g->sink_sum, 0, (size_t)L * H * sizeof(double), g->st) != cudaSuccess) goto fail;
    for (int l = 0; l < L; l++) sbt_sink_share(g->sink_sum + (size_t)l * H, g->probs + l * P, B, H, T, first_query, g->st);
    if (cudaGetLastError() != cudaSuccess ||
        cudaMemcpyAsync(h, g->sink_sum, (size_t)L * H * sizeof(double), cudaMemcpyDeviceToHost, g->st) != cudaSuccess ||
        cudaStreamSynchronize(g->st) != cudaSuccess)
        goto fail;
    for (int i = 0; i < L * H; i++) sum[i] += h[i];
    free(h);
    return (int64_t)B * (T - first_query);
fail:
    free(h);
    sb_cuda_fail(cudaGetLastError(), "sink share", __FILE__, __LINE__);
    return -1;
}

int sb_train_gpu_adamw(sb_train_gpu *g, int64_t t, double lr, double beta1, double beta2, double eps,
                       double weight_decay, double clip, double *grad_norm) {
    CK(cudaSetDevice(g->dev));
    sbt_sumsq(g->sumsq, g->sumsq_scratch, g->grad, g->np, g->st);
    const float bc1 = (float)(1.0 - pow(beta1, (double)t)), bc2 = (float)(1.0 - pow(beta2, (double)t));
    sbt_adamw(g->p, g->f32 ? NULL : g->p16, g->grad, g->m, g->v, g->mask, g->np, (float)lr, (float)beta1, (float)beta2,
              (float)eps, (float)(lr * weight_decay), bc1, bc2, g->sumsq, (float)clip, g->st);
    CL();
    if (grad_norm) {
        double s;
        CK(cudaMemcpyAsync(&s, g->sumsq, sizeof s, cudaMemcpyDeviceToHost, g->st));
        CK(cudaStreamSynchronize(g->st));
        *grad_norm = sqrt(s);
    }
    return SB_OK;
}
