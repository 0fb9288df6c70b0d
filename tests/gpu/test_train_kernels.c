/* The GPU trainer's kernels (train/cuda/train_kernels.h) against the CPU trainer
 * (train/train_layers.h, engine/cpu/ops.h, train/adamw.c), run by tests/gpu/run.sh train on a
 * machine with a GPU. Fixed-seed random inputs over several shapes each (N = 1, odd C, T not a
 * multiple of any block size, rows long enough for the kernels' uncached paths). Outputs are
 * poisoned (0xff bytes: NaN) before each "=" kernel so unwritten elements show; attention
 * inputs above the diagonal are NaN so stray reads show.
 *
 * Tolerances: err = max |gpu - ref| / (|ref| + 1e-3 max|ref|) (relative, with an absolute floor
 * at a thousandth of the largest value for the tiny ones) <= 1e-5 on the f32 paths; for sums
 * of many terms of both signs (rmsnorm dw, the attention chain's dq/dk/dv/dsink) the 2-norm
 * relative error ||gpu - ref|| / ||ref|| <= 1e-5 instead, as the summation order moves their
 * small elements by the rounding of the large terms; <= 1e-12 on the double sums; bit-exact where the kernel does the CPU's float
 * operations in the CPU's order (bf16 conversion, embedding, RoPE). bf16 copies must equal
 * the bf16 rounding of the GPU's own f32 output (or lie within one bf16 ulp of the CPU's, where
 * no f32 output is written). Every reduction runs twice and must be bit-identical.
 * Prints one line per check and "N passed, M failed"; exit status 1 on any failure. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/ops.h"
#include "engine/half.h"
#include "train/cuda/train_kernels.h"
#include "train/train.h"
#include "train/train_layers.h"
#include "tests/gpu/gpu_check.h"

/* ------------------------------------------------------------ harness */

static void finish(void) {
    printf("%d passed, %d failed\n", n_pass, n_fail);
    exit(n_fail ? 1 : 0);
}

#define CK(call)                                                                                              \
    do {                                                                                                      \
        cudaError_t e_ = (call);                                                                              \
        if (e_ != cudaSuccess) {                                                                              \
            printf("FAIL CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #call); \
            n_fail++;                                                                                         \
            finish();                                                                                         \
        }                                                                                                     \
    } while (0)
/* after every kernel: launch errors and execution errors */
#define SYNC()                          \
    do {                                \
        CK(cudaGetLastError());         \
        CK(cudaDeviceSynchronize());    \
    } while (0)

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        printf("FAIL out of host memory (%zu bytes)\n", bytes);
        n_fail++;
        finish();
    }
    return p;
}
static void *dalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}
static void *upload(const void *h, size_t bytes) {
    void *d = dalloc(bytes);
    if (bytes) CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}
static void put(void *d, const void *h, size_t bytes) {
    if (bytes) CK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
}
static void get(void *h, const void *d, size_t bytes) {
    if (bytes) CK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
static void poison(void *d, size_t bytes) {
    if (bytes) CK(cudaMemset(d, 0xff, bytes));
}
static void *dupmem(const void *h, size_t bytes) {
    void *p = xmalloc(bytes);
    memcpy(p, h, bytes);
    return p;
}

/* xorshift64*: fixed seeds, the same inputs on every run */
static uint64_t rng;
static void seed(uint64_t s) { rng = s * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull; }
static uint64_t next_u64(void) {
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}
static float urand(void) { return (float)((next_u64() >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f; }
static float *rand_vec(size_t n, float scale) {
    float *v = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = urand() * scale;
    return v;
}

/* max |a - b| / (|b| + 1e-3 max|b|); NaN anywhere counts as infinite */
static double rel_err(const float *a, const float *b, size_t n) {
    double mx = 0.0, w = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)b[i]));
    double floor = 1e-3 * mx > 0.0 ? 1e-3 * mx : 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + floor);
        if (!(d <= w)) w = isnan(d) ? INFINITY : d;
    }
    return w;
}
static double rel_err_d(const double *a, const double *b, size_t n) {
    double w = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / fmax(fabs(b[i]), 1e-300);
        if (!(d <= w)) w = isnan(d) ? INFINITY : d;
    }
    return w;
}
/* ||a - b|| / ||b|| (2-norms): for sums of many terms of both signs, whose small results carry
 * the rounding of the large terms in any order of addition */
static double norm_err(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d, den += (double)b[i] * b[i];
    }
    double e = den > 0.0 ? sqrt(num / den) : sqrt(num);
    return isnan(e) ? INFINITY : e;
}
static bool same_bits(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }
/* bf16 copy == bf16 rounding of the GPU's own f32 values */
static bool bf16_of(const uint16_t *hb, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (hb[i] != sb_f32_to_bf16(f[i])) return false;
    return true;
}
static int bf16_ord(uint16_t b) { return b & 0x8000u ? -(int)(b & 0x7fffu) : (int)b; }
/* max distance in bf16 ulps between hb and the bf16 rounding of ref */
static int bf16_ulps(const uint16_t *hb, const float *ref, size_t n) {
    int w = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs(bf16_ord(hb[i]) - bf16_ord(sb_f32_to_bf16(ref[i])));
        if ((hb[i] & 0x7fffu) > 0x7f80u) d = 1 << 20; /* NaN */
        if (d > w) w = d;
    }
    return w;
}

/* ------------------------------------------------------------ conversion */

static void test_bf16(void) {
    const size_t sizes[] = {1, 7, 4099, (1u << 20) + 3};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (int off = 0; off < 2; off++) { /* off 1: misaligned, the scalar path */
            size_t n = sizes[si];
            seed(100 + si);
            float *x = rand_vec(n + 1, 100.0f);
            const uint32_t special[] = {0x7fc00001u, 0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u,
                                        0x00000001u, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x807fffffu};
            for (size_t i = 0; i < sizeof special / sizeof *special && i + off < n + 1; i++)
                x[i + off] = sb_bits_f32(special[i]);
            float *dx = upload(x, (n + 1) * 4);
            uint16_t *dy = dalloc((n + 1) * 2), *y = xmalloc(n * 2);
            poison(dy, (n + 1) * 2);
            sbt_f32_to_bf16(dy + off, dx + off, n, 0);
            SYNC();
            get(y, dy + off, n * 2);
            check(bf16_of(y, x + off, n), "f32_to_bf16 n=%zu offset=%d: bit-exact with engine/half.h", n, off);
            cudaFree(dx), cudaFree(dy), free(x), free(y);
        }
}

/* ------------------------------------------------------------ embedding */

static void test_embed(void) {
    const int shapes[][3] = {{1, 1, 1}, {37, 5, 11}, {300, 64, 50}, {4096, 512, 4096}, {1000, 130, 7}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int N = shapes[si][0], C = shapes[si][1], V = shapes[si][2];
        seed(200 + si);
        float *table = rand_vec((size_t)V * C, 1.0f), *dout = rand_vec((size_t)N * C, 1.0f);
        float *dtab0 = rand_vec((size_t)V * C, 1.0f);
        int32_t *ids = xmalloc((size_t)N * 4);
        for (int n = 0; n < N; n++) ids[n] = (int32_t)(next_u64() % (uint64_t)V);
        /* forward */
        float *ref = xmalloc((size_t)N * C * 4), *out = xmalloc((size_t)N * C * 4);
        embedding_forward(ref, ids, table, N, C, V);
        float *dtable = upload(table, (size_t)V * C * 4), *dres = dalloc((size_t)N * C * 4);
        int32_t *dids = upload(ids, (size_t)N * 4);
        poison(dres, (size_t)N * C * 4);
        sbt_embed_forward(dres, dtable, dids, N, C, 0);
        SYNC();
        get(out, dres, (size_t)N * C * 4);
        check(same_bits(out, ref, (size_t)N * C * 4), "embed_forward N=%d C=%d V=%d: bit-exact", N, C, V);
        /* backward: the host grouping train_gpu.c builds (ids in increasing order, positions
         * increasing within an id) */
        int32_t *count = calloc((size_t)V + 1, 4), *rows = xmalloc((size_t)V * 4), *start = xmalloc(((size_t)V + 1) * 4);
        int32_t *pos = xmalloc((size_t)N * 4), *fill = xmalloc((size_t)V * 4);
        for (int n = 0; n < N; n++) count[ids[n]]++;
        int nr = 0, acc = 0;
        for (int v = 0; v < V; v++)
            if (count[v]) rows[nr] = v, start[nr] = acc, fill[v] = acc, acc += count[v], nr++;
        start[nr] = acc;
        for (int n = 0; n < N; n++) pos[fill[ids[n]]++] = n;
        float *gref = dupmem(dtab0, (size_t)V * C * 4), *gout = xmalloc((size_t)V * C * 4);
        embedding_backward(gref, dout, ids, N, C);
        float *dg = upload(dtab0, (size_t)V * C * 4), *ddout = upload(dout, (size_t)N * C * 4);
        int32_t *drows = upload(rows, (size_t)nr * 4), *dstart = upload(start, ((size_t)nr + 1) * 4);
        int32_t *dpos = upload(pos, (size_t)N * 4);
        sbt_embed_backward(dg, ddout, drows, dstart, dpos, nr, C, 0);
        SYNC();
        get(gout, dg, (size_t)V * C * 4);
        check(same_bits(gout, gref, (size_t)V * C * 4), "embed_backward N=%d C=%d V=%d (%d distinct ids): bit-exact",
              N, C, V, nr);
        cudaFree(dtable), cudaFree(dres), cudaFree(dids), cudaFree(dg), cudaFree(ddout), cudaFree(drows);
        cudaFree(dstart), cudaFree(dpos);
        free(table), free(dout), free(dtab0), free(ids), free(ref), free(out), free(count), free(rows);
        free(start), free(pos), free(fill), free(gref), free(gout);
    }
}

/* ------------------------------------------------------------ RMSNorm */

static void test_rmsnorm(void) {
    const int shapes[][2] = {{1, 1}, {1, 7}, {33, 100}, {1000, 512}, {5, 4099}, {5000, 64}, {2049, 512}};
    const float eps = 1e-5f;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int N = shapes[si][0], C = shapes[si][1];
        const size_t nc = (size_t)N * C;
        seed(300 + si);
        float *x = rand_vec(nc, 2.0f), *w = rand_vec(C, 0.5f), *dy = rand_vec(nc, 1.0f);
        float *din0 = rand_vec(nc, 1.0f), *dw0 = rand_vec(C, 1.0f);
        for (int c = 0; c < C; c++) w[c] += 1.0f;
        /* forward */
        float *ref = xmalloc(nc * 4), *out = xmalloc(nc * 4), *rref = xmalloc((size_t)N * 4), *r = xmalloc((size_t)N * 4);
        uint16_t *ob = xmalloc(nc * 2);
        rmsnorm_forward(ref, x, w, eps, N, C);
        for (int n = 0; n < N; n++) {
            double ss = 0.0;
            for (int c = 0; c < C; c++) ss += (double)x[(size_t)n * C + c] * x[(size_t)n * C + c];
            rref[n] = (float)(1.0 / sqrt(ss / C + eps));
        }
        float *dx = upload(x, nc * 4), *dw = upload(w, (size_t)C * 4), *dout = dalloc(nc * 4), *drstd = dalloc((size_t)N * 4);
        uint16_t *dob = dalloc(nc * 2);
        poison(dout, nc * 4), poison(dob, nc * 2), poison(drstd, (size_t)N * 4);
        sbt_rmsnorm_forward(dout, dob, drstd, dx, dw, eps, N, C, 0);
        SYNC();
        get(out, dout, nc * 4), get(ob, dob, nc * 2), get(r, drstd, (size_t)N * 4);
        double e = rel_err(out, ref, nc), er = rel_err(r, rref, N);
        check(e <= 1e-6 && er <= 1e-6 && bf16_of(ob, out, nc),
              "rmsnorm_forward N=%d C=%d: out err %.2e, rstd err %.2e (<= 1e-6), bf16 copy exact", N, C, e, er);
        poison(dob, nc * 2);
        sbt_rmsnorm_forward(NULL, dob, NULL, dx, dw, eps, N, C, 0); /* the bf16 compute path */
        SYNC();
        get(ob, dob, nc * 2);
        int ul = bf16_ulps(ob, ref, nc);
        check(ul <= 1, "rmsnorm_forward N=%d C=%d bf16 only: %d bf16 ulp from the CPU (<= 1)", N, C, ul);
        /* backward, accumulating into random din and dw; rstd from the GPU forward */
        float *gin = dupmem(din0, nc * 4), *gw = dupmem(dw0, (size_t)C * 4);
        rmsnorm_backward(gin, gw, dy, x, w, eps, N, C);
        float *ddy = upload(dy, nc * 4), *ddin = upload(din0, nc * 4), *ddw = upload(dw0, (size_t)C * 4);
        size_t ns = sbt_rmsnorm_backward_scratch(N, C);
        float *dscr = dalloc(ns * 4);
        poison(dscr, ns * 4);
        sbt_rmsnorm_backward(ddin, ddw, dscr, ddy, dx, dw, drstd, N, C, 0);
        SYNC();
        float *oin = xmalloc(nc * 4), *ow = xmalloc((size_t)C * 4), *oin2 = xmalloc(nc * 4), *ow2 = xmalloc((size_t)C * 4);
        get(oin, ddin, nc * 4), get(ow, ddw, (size_t)C * 4);
        double ei = rel_err(oin, gin, nc), ew = norm_err(ow, gw, C);
        check(ei <= 1e-5 && ew <= 1e-5, "rmsnorm_backward N=%d C=%d: din err %.2e, dw norm err %.2e (<= 1e-5)", N, C,
              ei, ew);
        put(ddin, din0, nc * 4), put(ddw, dw0, (size_t)C * 4);
        sbt_rmsnorm_backward(ddin, ddw, dscr, ddy, dx, dw, drstd, N, C, 0);
        SYNC();
        get(oin2, ddin, nc * 4), get(ow2, ddw, (size_t)C * 4);
        check(same_bits(oin, oin2, nc * 4) && same_bits(ow, ow2, (size_t)C * 4),
              "rmsnorm_backward N=%d C=%d: two runs bit-identical", N, C);
        cudaFree(dx), cudaFree(dw), cudaFree(dout), cudaFree(drstd), cudaFree(dob), cudaFree(ddy), cudaFree(ddin);
        cudaFree(ddw), cudaFree(dscr);
        free(x), free(w), free(dy), free(din0), free(dw0), free(ref), free(out), free(rref), free(r), free(ob);
        free(gin), free(gw), free(oin), free(ow), free(oin2), free(ow2);
    }
}

/* ------------------------------------------------------------ RoPE */

static void test_rope(void) {
    const int shapes[][4] = {{1, 1, 1, 2}, {10, 4, 3, 6}, {34, 17, 8, 64}, {12, 5, 2, 7}, {1024, 512, 8, 64}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int style = 0; style < 2; style++) {
            const int N = shapes[si][0], T = shapes[si][1], NH = shapes[si][2], D = shapes[si][3], half = D / 2;
            const size_t n = (size_t)N * NH * D;
            seed(400 + si);
            float *x = rand_vec(n, 1.0f), *cs = xmalloc((size_t)T * half * 4), *sn = xmalloc((size_t)T * half * 4);
            rope_table_fill(cs, sn, 0, T, D, 10000.0f);
            float *ref = dupmem(x, n * 4), *out = xmalloc(n * 4);
            train_rope_forward(ref, cs, sn, N, T, NH, D, (sb_rope_style)style);
            float *dxx = upload(x, n * 4), *dcs = upload(cs, (size_t)T * half * 4), *dsn = upload(sn, (size_t)T * half * 4);
            sbt_rope_forward(dxx, dcs, dsn, N, T, NH, D, style, 0);
            SYNC();
            get(out, dxx, n * 4);
            check(same_bits(out, ref, n * 4), "rope_forward N=%d T=%d NH=%d D=%d style=%d: bit-exact", N, T, NH, D,
                  style);
            memcpy(ref, x, n * 4);
            rope_backward(ref, cs, sn, N, T, NH, D, (sb_rope_style)style);
            put(dxx, x, n * 4);
            sbt_rope_backward(dxx, dcs, dsn, N, T, NH, D, style, 0);
            SYNC();
            get(out, dxx, n * 4);
            check(same_bits(out, ref, n * 4), "rope_backward N=%d T=%d NH=%d D=%d style=%d: bit-exact", N, T, NH, D,
                  style);
            cudaFree(dxx), cudaFree(dcs), cudaFree(dsn);
            free(x), free(cs), free(sn), free(ref), free(out);
        }
}

/* ------------------------------------------------------------ attention softmax */

static const char *kind_name(int kind) { return kind == 0 ? "standard" : kind == 1 ? "off_by_one" : "sink_logit"; }

/* the CPU forward of one [BH, T, T] tensor of raw scores: softmax_extra_forward per row */
static void softmax_ref(float *p, float *extra, const float *raw, const float *sink, int kind, float scale, int BH,
                        int H, int T) {
    float *tmp = xmalloc((size_t)T * 4);
    for (int bh = 0; bh < BH; bh++)
        for (int i = 0; i < T; i++) {
            const float *r = raw + ((size_t)bh * T + i) * T;
            float *o = p + ((size_t)bh * T + i) * T;
            for (int j = 0; j <= i; j++) tmp[j] = scale * r[j];
            extra[(size_t)bh * T + i] =
                softmax_extra_forward(o, tmp, i + 1, (sb_softmax_kind)kind, kind == 2 ? sink[bh % H] : 0.0f);
            for (int j = i + 1; j < T; j++) o[j] = 0.0f;
        }
    free(tmp);
}

static bool upper_zero(const float *p, int BH, int T) {
    for (size_t r = 0; r < (size_t)BH * T; r++)
        for (int j = (int)(r % T) + 1; j < T; j++)
            if (sb_f32_bits(p[r * T + j]) != 0) return false;
    return true;
}
static void nan_upper(float *p, int BH, int T) {
    for (size_t r = 0; r < (size_t)BH * T; r++)
        for (int j = (int)(r % T) + 1; j < T; j++) p[r * T + j] = NAN;
}

static void test_softmax(void) {
    const int shapes[][3] = {{1, 1, 1}, {3, 3, 37}, {8, 4, 100}, {2, 2, 1100}, {16, 8, 512}, {2, 1, 33}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int kind = 0; kind < 3; kind++) {
            const int BH = shapes[si][0], H = shapes[si][1], T = shapes[si][2];
            const size_t nn = (size_t)BH * T * T, nr = (size_t)BH * T;
            const float scale = si % 2 ? 0.125f : 0.3f;
            seed(500 + si * 3 + kind);
            float *raw = rand_vec(nn, 12.0f), *sink = rand_vec(H, 2.0f);
            sink[0] = 6.0f; /* a head whose extra logit takes most of the mass */
            nan_upper(raw, BH, T);
            float *ref = xmalloc(nn * 4), *xref = xmalloc(nr * 4), *p = xmalloc(nn * 4), *p2 = xmalloc(nn * 4);
            float *xp = xmalloc(nr * 4);
            uint16_t *pb = xmalloc(nn * 2);
            softmax_ref(ref, xref, raw, sink, kind, scale, BH, H, T);
            float *dp = upload(raw, nn * 4), *dx = dalloc(nr * 4), *dsink = upload(sink, (size_t)H * 4);
            uint16_t *dpb = dalloc(nn * 2);
            poison(dx, nr * 4), poison(dpb, nn * 2);
            sbt_attn_softmax_forward(dp, dpb, dx, kind == 2 ? dsink : NULL, kind, scale, BH, H, T, 0);
            SYNC();
            get(p, dp, nn * 4), get(pb, dpb, nn * 2), get(xp, dx, nr * 4);
            double e = rel_err(p, ref, nn), ex = rel_err(xp, xref, nr);
            check(e <= 1e-5 && ex <= 1e-5 && upper_zero(p, BH, T) && bf16_of(pb, p, nn),
                  "softmax_forward %s BH=%d H=%d T=%d: p err %.2e, extra err %.2e (<= 1e-5), upper 0, bf16 exact",
                  kind_name(kind), BH, H, T, e, ex);
            put(dp, raw, nn * 4);
            sbt_attn_softmax_forward(dp, NULL, NULL, kind == 2 ? dsink : NULL, kind, scale, BH, H, T, 0);
            SYNC();
            get(p2, dp, nn * 4);
            check(same_bits(p, p2, nn * 4), "softmax_forward %s BH=%d T=%d without the copies: bit-identical",
                  kind_name(kind), BH, T);

            /* backward from the GPU's probabilities (NaN above the diagonal: must not be read) */
            float *dpr = rand_vec(nn, 1.0f), *pin = dupmem(p, nn * 4);
            nan_upper(dpr, BH, T), nan_upper(pin, BH, T);
            /* the reference is attention_backward's arithmetic: rowdot in double rounded to float,
             * p * (dp - rowdot) in float, the scale applied after (by its sgemm alpha) */
            float *dsref = xmalloc(nn * 4), *rdref = xmalloc(nr * 4);
            for (size_t r = 0; r < nr; r++) {
                const int n = (int)(r % T) + 1;
                const float *pr = pin + r * T, *gr = dpr + r * T;
                double dot = 0.0;
                for (int j = 0; j < n; j++) dot += (double)pr[j] * gr[j];
                const float fdot = (float)dot;
                rdref[r] = fdot;
                for (int j = 0; j < T; j++) dsref[r * T + j] = j < n ? scale * (pr[j] * (gr[j] - fdot)) : 0.0f;
            }
            float *dpin = upload(pin, nn * 4), *dgrad = upload(dpr, nn * 4), *dds = dalloc(nn * 4);
            float *drd = dalloc(nr * 4);
            uint16_t *ddsb = dpb;
            poison(dds, nn * 4), poison(drd, nr * 4), poison(ddsb, nn * 2);
            sbt_attn_softmax_backward(dds, ddsb, drd, dgrad, dpin, scale, BH, T, 0);
            SYNC();
            float *ds = xmalloc(nn * 4), *ds2 = xmalloc(nn * 4), *rd = xmalloc(nr * 4), *rd2 = xmalloc(nr * 4);
            get(ds, dds, nn * 4), get(rd, drd, nr * 4), get(pb, ddsb, nn * 2);
            double ed = rel_err(ds, dsref, nn), erd = rel_err(rd, rdref, nr);
            check(ed <= 1e-5 && erd <= 1e-6 && upper_zero(ds, BH, T) && bf16_of(pb, ds, nn),
                  "softmax_backward after %s BH=%d T=%d: ds err %.2e (<= 1e-5), rowdot err %.2e (<= 1e-6), "
                  "upper 0, bf16 exact",
                  kind_name(kind), BH, T, ed, erd);
            poison(drd, nr * 4);
            sbt_attn_softmax_backward(dgrad, NULL, drd, dgrad, dpin, scale, BH, T, 0); /* in place, as train_gpu.c */
            SYNC();
            get(ds2, dgrad, nn * 4), get(rd2, drd, nr * 4);
            check(same_bits(ds, ds2, nn * 4) && same_bits(rd, rd2, nr * 4),
                  "softmax_backward %s BH=%d T=%d in place (ds = dp): bit-identical", kind_name(kind), BH, T);
            cudaFree(dp), cudaFree(dx), cudaFree(dsink), cudaFree(dpb), cudaFree(dpin), cudaFree(dgrad);
            cudaFree(dds), cudaFree(drd);
            free(raw), free(sink), free(ref), free(xref), free(p), free(p2), free(xp), free(pb), free(dpr), free(pin);
            free(dsref), free(rdref), free(ds), free(ds2), free(rd), free(rd2);
        }
}

static void test_sink_reductions(void) {
    const int shapes[][3] = {{1, 1, 1}, {3, 4, 37}, {64, 8, 512}, {5, 3, 1100}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int B = shapes[si][0], H = shapes[si][1], T = shapes[si][2];
        const size_t ne = (size_t)B * H * T;
        seed(600 + si);
        float *ex = rand_vec(ne, 1.0f), *rd = rand_vec(ne, 3.0f), *d0 = rand_vec(H, 1.0f);
        float *ref = xmalloc((size_t)H * 4), *out = xmalloc((size_t)H * 4), *out2 = xmalloc((size_t)H * 4);
        for (int h = 0; h < H; h++) {
            double s = 0.0;
            for (int b = 0; b < B; b++)
                for (int i = 0; i < T; i++) s += (double)ex[((size_t)b * H + h) * T + i] * rd[((size_t)b * H + h) * T + i];
            ref[h] = d0[h] + (float)(-s);
        }
        float *dex = upload(ex, ne * 4), *drd = upload(rd, ne * 4), *dd = upload(d0, (size_t)H * 4);
        sbt_sink_logit_backward(dd, dex, drd, B, H, T, 0);
        SYNC();
        get(out, dd, (size_t)H * 4);
        put(dd, d0, (size_t)H * 4);
        sbt_sink_logit_backward(dd, dex, drd, B, H, T, 0);
        SYNC();
        get(out2, dd, (size_t)H * 4);
        double e = rel_err(out, ref, H);
        check(e <= 1e-6 && same_bits(out, out2, (size_t)H * 4),
              "sink_logit_backward B=%d H=%d T=%d: err %.2e (<= 1e-6), two runs bit-identical", B, H, T, e);
        cudaFree(dex), cudaFree(drd), cudaFree(dd);
        free(ex), free(rd), free(d0), free(ref), free(out), free(out2);
    }
    const int cases[][4] = {{1, 1, 1, 0}, {2, 3, 40, 16}, {4, 8, 512, 16}, {2, 2, 10, -3}, {2, 2, 10, 10}, {2, 2, 10, 9}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const int B = cases[ci][0], H = cases[ci][1], T = cases[ci][2], fq = cases[ci][3];
        const size_t nn = (size_t)B * H * T * T;
        seed(650 + ci);
        float *p = rand_vec(nn, 1.0f);
        double *s0 = xmalloc((size_t)H * 8), *ref = xmalloc((size_t)H * 8), *out = xmalloc((size_t)H * 8);
        double *out2 = xmalloc((size_t)H * 8);
        for (int h = 0; h < H; h++) {
            s0[h] = urand();
            double s = 0.0;
            for (int b = 0; b < B; b++)
                for (int i = fq < 0 ? 0 : fq; i < T; i++) s += p[(((size_t)b * H + h) * T + i) * T];
            ref[h] = s0[h] + s;
        }
        float *dp = upload(p, nn * 4);
        double *ds = upload(s0, (size_t)H * 8);
        sbt_sink_share(ds, dp, B, H, T, fq, 0);
        SYNC();
        get(out, ds, (size_t)H * 8);
        put(ds, s0, (size_t)H * 8);
        sbt_sink_share(ds, dp, B, H, T, fq, 0);
        SYNC();
        get(out2, ds, (size_t)H * 8);
        double e = rel_err_d(out, ref, H);
        check(e <= 1e-12 && same_bits(out, out2, (size_t)H * 8),
              "sink_share B=%d H=%d T=%d first_query=%d: err %.2e (<= 1e-12), two runs bit-identical", B, H, T, fq, e);
        cudaFree(dp), cudaFree(ds);
        free(p), free(s0), free(ref), free(out), free(out2);
    }
}

/* The softmax kernels inside the attention backward of the CPU trainer: the test does the
 * products (q k^T, dO v^T, then dS k, dS^T q, P^T dO) in double around the GPU's softmax
 * forward/backward and sink-logit reduction, and compares probabilities, extra mass, dq, dk,
 * dv and dsink with train_attention_forward / attention_backward (central-difference checked
 * in tests/test_train_grad.c). GQA (H = 4, KVH = 2), T past one CPU query block. */
static void test_attention_chain(void) {
    const int B = 2, H = 4, KVH = 2, D = 8, group = H / KVH;
    const int Ts[] = {37, 70};
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++)
        for (int kind = 0; kind < 3; kind++) {
            const int T = Ts[ti], BH = B * H;
            const size_t nq = (size_t)B * T * H * D, nk = (size_t)B * T * KVH * D, nn = (size_t)BH * T * T;
            const float scale = 1.0f / sqrtf((float)D);
            seed(700 + ti * 3 + kind);
            float *q = rand_vec(nq, 1.5f), *k = rand_vec(nk, 1.5f), *v = rand_vec(nk, 1.0f), *dO = rand_vec(nq, 1.0f);
            float *sink = rand_vec(H, 1.0f);
            float *out = xmalloc(nq * 4), *probs = xmalloc(nn * 4), *extra = xmalloc((size_t)BH * T * 4);
            float *dq = calloc(nq, 4), *dk = calloc(nk, 4), *dv = calloc(nk, 4), *dsink = calloc(H, 4);
            train_attention_forward(out, probs, extra, q, k, v, sink, (sb_softmax_kind)kind, B, T, H, KVH, D);
            attention_backward(dq, dk, dv, kind == 2 ? dsink : NULL, dO, probs, extra, q, k, v, (sb_softmax_kind)kind, B,
                               T, H, KVH, D);
#define QAT(b, t, h) (q + (((size_t)(b) * T + (t)) * H + (h)) * D)
#define KAT(b, t, g) (k + (((size_t)(b) * T + (t)) * KVH + (g)) * D)
#define VAT(b, t, g) (v + (((size_t)(b) * T + (t)) * KVH + (g)) * D)
#define DOAT(b, t, h) (dO + (((size_t)(b) * T + (t)) * H + (h)) * D)
            float *S = xmalloc(nn * 4), *dP = xmalloc(nn * 4);
            for (int bh = 0; bh < BH; bh++) {
                const int b = bh / H, h = bh % H, g = h / group;
                for (int i = 0; i < T; i++)
                    for (int j = 0; j < T; j++) {
                        double s = 0.0, d = 0.0;
                        for (int e = 0; e < D; e++) {
                            s += (double)QAT(b, i, h)[e] * KAT(b, j, g)[e];
                            d += (double)DOAT(b, i, h)[e] * VAT(b, j, g)[e];
                        }
                        S[((size_t)bh * T + i) * T + j] = j <= i ? (float)s : NAN;
                        dP[((size_t)bh * T + i) * T + j] = j <= i ? (float)d : NAN;
                    }
            }
            float *dS = upload(S, nn * 4), *dX = dalloc((size_t)BH * T * 4), *dsk = upload(sink, (size_t)H * 4);
            float *ddP = upload(dP, nn * 4), *drd = dalloc((size_t)BH * T * 4), *dgs = dalloc((size_t)H * 4);
            CK(cudaMemset(dgs, 0, (size_t)H * 4));
            sbt_attn_softmax_forward(dS, NULL, dX, kind == 2 ? dsk : NULL, kind, scale, BH, H, T, 0);
            sbt_attn_softmax_backward(ddP, NULL, drd, ddP, dS, scale, BH, T, 0);
            if (kind == 2) sbt_sink_logit_backward(dgs, dX, drd, B, H, T, 0);
            SYNC();
            float *P = xmalloc(nn * 4), *X = xmalloc((size_t)BH * T * 4), *G = xmalloc(nn * 4), *gs = xmalloc((size_t)H * 4);
            get(P, dS, nn * 4), get(X, dX, (size_t)BH * T * 4), get(G, ddP, nn * 4), get(gs, dgs, (size_t)H * 4);
            float *gq = calloc(nq, 4), *gk = calloc(nk, 4), *gv = calloc(nk, 4);
            for (int bh = 0; bh < BH; bh++) {
                const int b = bh / H, h = bh % H, g = h / group;
                for (int i = 0; i < T; i++)
                    for (int e = 0; e < D; e++) {
                        double a = 0.0;
                        for (int j = 0; j <= i; j++) a += (double)G[((size_t)bh * T + i) * T + j] * KAT(b, j, g)[e];
                        gq[(((size_t)b * T + i) * H + h) * D + e] = (float)a;
                    }
                for (int j = 0; j < T; j++)
                    for (int e = 0; e < D; e++) {
                        double a = 0.0, c = 0.0;
                        for (int i = j; i < T; i++) {
                            a += (double)G[((size_t)bh * T + i) * T + j] * QAT(b, i, h)[e];
                            c += (double)P[((size_t)bh * T + i) * T + j] * DOAT(b, i, h)[e];
                        }
                        gk[(((size_t)b * T + j) * KVH + g) * D + e] += (float)a;
                        gv[(((size_t)b * T + j) * KVH + g) * D + e] += (float)c;
                    }
            }
#undef QAT
#undef KAT
#undef VAT
#undef DOAT
            double ep = rel_err(P, probs, nn), ex = rel_err(X, extra, (size_t)BH * T);
            double eq = norm_err(gq, dq, nq), ek = norm_err(gk, dk, nk), ev = norm_err(gv, dv, nk);
            double es = kind == 2 ? norm_err(gs, dsink, H) : 0.0;
            check(ep <= 1e-5 && ex <= 1e-5 && eq <= 1e-5 && ek <= 1e-5 && ev <= 1e-5 && es <= 1e-5,
                  "attention chain %s T=%d vs attention_backward: P %.1e extra %.1e (<= 1e-5), norm errs dq %.1e "
                  "dk %.1e dv %.1e dsink %.1e (<= 1e-5)",
                  kind_name(kind), T, ep, ex, eq, ek, ev, es);
            cudaFree(dS), cudaFree(dX), cudaFree(dsk), cudaFree(ddP), cudaFree(drd), cudaFree(dgs);
            free(q), free(k), free(v), free(dO), free(sink), free(out), free(probs), free(extra), free(dq), free(dk);
            free(dv), free(dsink), free(S), free(dP), free(P), free(X), free(G), free(gs), free(gq), free(gk), free(gv);
        }
}

/* ------------------------------------------------------------ SwiGLU */

static void test_swiglu(void) {
    const size_t sizes[] = {1, 1001, (1u << 20) + 3};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const size_t n = sizes[si];
        seed(800 + si);
        float *g = rand_vec(n, 6.0f), *u = rand_vec(n, 2.0f), *dh = rand_vec(n, 1.0f);
        float *ref = xmalloc(n * 4), *out = xmalloc(n * 4), *rg = calloc(n, 4), *ru = calloc(n, 4);
        float *og = xmalloc(n * 4), *ou = xmalloc(n * 4);
        uint16_t *b1 = xmalloc(n * 2), *b2 = xmalloc(n * 2);
        swiglu_forward(ref, g, u, n);
        swiglu_backward(rg, ru, dh, g, u, n);
        float *dg = upload(g, n * 4), *du = upload(u, n * 4), *ddh = upload(dh, n * 4), *dout = dalloc(n * 4);
        float *dgg = dalloc(n * 4), *dgu = dalloc(n * 4);
        uint16_t *db1 = dalloc(n * 2), *db2 = dalloc(n * 2);
        poison(dout, n * 4), poison(db1, n * 2);
        sbt_swiglu_forward(dout, db1, dg, du, n, 0);
        SYNC();
        get(out, dout, n * 4), get(b1, db1, n * 2);
        double e = rel_err(out, ref, n);
        check(e <= 1e-5 && bf16_of(b1, out, n), "swiglu_forward n=%zu: err %.2e (<= 1e-5), bf16 copy exact", n, e);
        poison(dgg, n * 4), poison(dgu, n * 4), poison(db1, n * 2), poison(db2, n * 2);
        sbt_swiglu_backward(dgg, dgu, db1, db2, ddh, dg, du, n, 0);
        SYNC();
        get(og, dgg, n * 4), get(ou, dgu, n * 4), get(b1, db1, n * 2), get(b2, db2, n * 2);
        /* dgate carries 1 + g (1 - sigmoid(g)), which cancels near g = -1.28: there the one-ulp
         * difference of the GPU's expf from glibc's grows (seen: 1.4e-5 over 2^20 samples) */
        double eg = rel_err(og, rg, n), eu = rel_err(ou, ru, n);
        check(eg <= 1e-4 && eu <= 1e-5 && bf16_of(b1, og, n) && bf16_of(b2, ou, n),
              "swiglu_backward n=%zu: dgate err %.2e (<= 1e-4), dup err %.2e (<= 1e-5), bf16 copies exact", n, eg,
              eu);
        poison(dgg, n * 4), poison(dgu, n * 4);
        sbt_swiglu_backward(dgg, dgu, NULL, NULL, ddh, dg, du, n, 0);
        SYNC();
        get(out, dgg, n * 4);
        check(same_bits(out, og, n * 4), "swiglu_backward n=%zu without the copies: bit-identical", n);
        cudaFree(dg), cudaFree(du), cudaFree(ddh), cudaFree(dout), cudaFree(dgg), cudaFree(dgu), cudaFree(db1);
        cudaFree(db2);
        free(g), free(u), free(dh), free(ref), free(out), free(rg), free(ru), free(og), free(ou), free(b1), free(b2);
    }
}

/* ------------------------------------------------------------ cross-entropy */

static void test_crossentropy(void) {
    const int shapes[][2] = {{1, 1}, {3, 7}, {17, 1001}, {64, 4096}, {5, 9000}, {4, 5003}, {9, 1024}, {3, 8192}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const int N = shapes[si][0], V = shapes[si][1];
        const size_t nv = (size_t)N * V;
        seed(900 + si);
        float *x = rand_vec(nv, 4.0f);
        for (int i = 0; i < V && N > 1; i++) x[(size_t)V + i] *= 12.0f; /* a row of large logits */
        int32_t *t = xmalloc((size_t)N * 4);
        int valid = 0;
        for (int n = 0; n < N; n++) {
            t[n] = n % 3 == 2 ? -1 : (int32_t)(next_u64() % (uint64_t)V);
            valid += t[n] >= 0;
        }
        const float dscale = 1.0f / (float)(valid ? valid : 1);
        float *lref = xmalloc((size_t)N * 4), *dref = xmalloc(nv * 4);
        crossentropy_forward(lref, NULL, x, t, N, V);
        crossentropy_softmax_backward(dref, x, NULL, t, dscale, N, V);
        float *dx = upload(x, nv * 4), *dd = dalloc(nv * 4), *dl = dalloc((size_t)N * 4);
        int32_t *dt = upload(t, (size_t)N * 4);
        uint16_t *db = dalloc(nv * 2);
        float *l1 = xmalloc((size_t)N * 4), *l2 = xmalloc((size_t)N * 4), *g1 = xmalloc(nv * 4), *g2 = xmalloc(nv * 4);
        uint16_t *b1 = xmalloc(nv * 2), *b2 = xmalloc(nv * 2);
        poison(dd, nv * 4), poison(dl, (size_t)N * 4), poison(db, nv * 2);
        sbt_crossentropy(dl, dd, db, dx, dt, dscale, N, V, 0);
        SYNC();
        get(l1, dl, (size_t)N * 4), get(g1, dd, nv * 4), get(b1, db, nv * 2);
        double el = rel_err(l1, lref, N), eg = rel_err(g1, dref, nv);
        check(el <= 1e-5 && eg <= 1e-5 && bf16_of(b1, g1, nv),
              "crossentropy N=%d V=%d: loss err %.2e, dlogits err %.2e (<= 1e-5), bf16 copy exact", N, V, el, eg);
        /* in place on the logits, as the f32 path of train_gpu.c */
        poison(dl, (size_t)N * 4);
        sbt_crossentropy(dl, dx, NULL, dx, dt, dscale, N, V, 0);
        SYNC();
        get(l2, dl, (size_t)N * 4), get(g2, dx, nv * 4);
        check(same_bits(l1, l2, (size_t)N * 4) && same_bits(g1, g2, nv * 4),
              "crossentropy N=%d V=%d in place: losses and dlogits bit-identical", N, V);
        /* bf16 gradient only (the bf16 path), then the losses alone (the evaluation) */
        put(dx, x, nv * 4);
        poison(db, nv * 2), poison(dl, (size_t)N * 4);
        sbt_crossentropy(dl, NULL, db, dx, dt, dscale, N, V, 0);
        SYNC();
        get(b2, db, nv * 2), get(l2, dl, (size_t)N * 4);
        int ul = bf16_ulps(b2, dref, nv);
        check(ul <= 1 && same_bits(b1, b2, nv * 2) && same_bits(l1, l2, (size_t)N * 4),
              "crossentropy N=%d V=%d bf16 only: %d bf16 ulp from the CPU (<= 1), bit-identical to the first run", N, V,
              ul);
        poison(dl, (size_t)N * 4);
        sbt_crossentropy(dl, NULL, NULL, dx, dt, 0.0f, N, V, 0);
        SYNC();
        get(l2, dl, (size_t)N * 4);
        check(same_bits(l1, l2, (size_t)N * 4), "crossentropy N=%d V=%d losses only: bit-identical", N, V);
        cudaFree(dx), cudaFree(dd), cudaFree(dl), cudaFree(dt), cudaFree(db);
        free(x), free(t), free(lref), free(dref), free(l1), free(l2), free(g1), free(g2), free(b1), free(b2);
    }
}

/* ------------------------------------------------------------ optimizer */

static void test_sumsq(void) {
    const size_t sizes[] = {0, 1, 1000, 4096 * 16 + 5, 5000003, 29360131};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        const size_t n = sizes[si];
        seed(1000 + si);
        float *g = rand_vec(n, 0.01f);
        long double acc = 0.0L; /* the reference in extended precision: 29M terms */
        for (size_t i = 0; i < n; i++) acc += (long double)g[i] * g[i];
        double ref = (double)acc, out = 0.0, out2 = 0.0;
        float *dg = upload(g, n * 4);
        const size_t ns = sbt_sumsq_scratch(n);
        double *dscr = dalloc(ns * 8), *dout = dalloc(8);
        poison(dscr, ns * 8), poison(dout, 8);
        sbt_sumsq(dout, dscr, dg, n, 0);
        SYNC();
        get(&out, dout, 8);
        poison(dscr, ns * 8), poison(dout, 8);
        sbt_sumsq(dout, dscr, dg, n, 0);
        SYNC();
        get(&out2, dout, 8);
        double e = n ? fabs(out - ref) / ref : fabs(out);
        check(e <= 1e-12 && same_bits(&out, &out2, 8),
              "sumsq n=%zu (%zu scratch): err %.2e (<= 1e-12), two runs bit-identical", n, ns, e);
        cudaFree(dg), cudaFree(dscr), cudaFree(dout);
        free(g);
    }
}

static void test_adamw(void) {
    const size_t sizes[] = {1, 1000, 100003};
    const float clips[] = {0.0f, 1.0f, 1e9f};
    const double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, wd = 0.1;
    const int64_t t = 7;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t ci = 0; ci < sizeof clips / sizeof *clips; ci++) {
            const size_t n = sizes[si];
            const float clip = clips[ci];
            seed(1100 + si * 3 + ci);
            float *p = rand_vec(n, 1.0f), *g = rand_vec(n, 0.5f), *m = rand_vec(n, 0.1f), *v = rand_vec(n, 0.01f);
            uint8_t *mask = xmalloc(n);
            for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]), mask[i] = (uint8_t)(next_u64() & 1);
            double sumsq = 0.0;
            for (size_t i = 0; i < n; i++) sumsq += (double)g[i] * g[i];
            sumsq += 4.0; /* the norm above 1 so clip = 1 clips */
            const double gnorm = sqrt(sumsq);
            const float gscale = clip > 0 && gnorm > clip ? (float)((double)clip / (gnorm + 1e-6)) : 1.0f;
            float *rp = dupmem(p, n * 4), *rm = dupmem(m, n * 4), *rv = dupmem(v, n * 4);
            sb_adamw_update(rp, g, rm, rv, mask, n, t, lr, beta1, beta2, eps, wd, gscale);
            float *dp = upload(p, n * 4), *dg = upload(g, n * 4), *dm = upload(m, n * 4), *dv = upload(v, n * 4);
            uint8_t *dmask = upload(mask, n);
            double *dss = upload(&sumsq, 8);
            uint16_t *dpb = dalloc(n * 2), *pb = xmalloc(n * 2);
            poison(dpb, n * 2);
            sbt_adamw(dp, dpb, dg, dm, dv, dmask, n, (float)lr, (float)beta1, (float)beta2, (float)eps,
                      (float)(lr * wd), (float)(1.0 - pow(beta1, (double)t)), (float)(1.0 - pow(beta2, (double)t)), dss,
                      clip, 0);
            SYNC();
            float *op = xmalloc(n * 4), *om = xmalloc(n * 4), *ov = xmalloc(n * 4);
            get(op, dp, n * 4), get(om, dm, n * 4), get(ov, dv, n * 4), get(pb, dpb, n * 2);
            double ep = rel_err(op, rp, n), em = rel_err(om, rm, n), ev = rel_err(ov, rv, n);
            bool exact = same_bits(op, rp, n * 4) && same_bits(om, rm, n * 4) && same_bits(ov, rv, n * 4);
            check(ep <= 1e-6 && em <= 1e-6 && ev <= 1e-6 && bf16_of(pb, op, n),
                  "adamw n=%zu clip=%g (scale %.4f): p %.1e m %.1e v %.1e (<= 1e-6; %s), bf16 copy exact", n, clip,
                  gscale, ep, em, ev, exact ? "bit-exact" : "not bit-exact");
            cudaFree(dp), cudaFree(dg), cudaFree(dm), cudaFree(dv), cudaFree(dmask), cudaFree(dss), cudaFree(dpb);
            free(p), free(g), free(m), free(v), free(mask), free(rp), free(rm), free(rv), free(pb), free(op), free(om);
            free(ov);
        }
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("FAIL no CUDA device\n");
        n_fail++;
        finish();
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s\n", prop.name);
    test_bf16();
    test_embed();
    test_rmsnorm();
    test_rope();
    test_softmax();
    test_sink_reductions();
    test_attention_chain();
    test_swiglu();
    test_crossentropy();
    test_sumsq();
    test_adamw();
    finish();
    return 0;
}
