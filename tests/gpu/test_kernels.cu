/* Every kernel of engine/cuda/kernels.h against a plain CPU reference (double unless the CPU
 * engine's own float arithmetic is the reference), on fixed-seed random inputs, with outputs
 * poisoned (NaN bytes) beforehand so unwritten elements show, and inputs outside what a kernel
 * may read set to NaN so stray reads show.
 *
 *   build/gpu/test_kernels            one line per case, then "N passed, M failed"; exit 1 on failure
 *   build/gpu/test_kernels --bench    JSON lines: bf16 band attention at the Llama-2-7B shape, decode
 *                                     attention at 2048 and 4096 slots and the one-row matmuls at the
 *                                     7B shapes, default and legacy kernels (CUDA events, medians;
 *                                     decode kernels timed 10 launches back to back, per launch)
 *   build/gpu/test_kernels --filter S only the cases whose name contains S
 *
 * Tolerances: ||out - ref|| / ||ref|| <= 1e-5 on the f32 paths (1e-6 where the arithmetic is
 * the same as the CPU's), <= 1e-2 on the bf16/f16 paths; bit-exact where the kernel promises
 * it (conversions, RoPE, row stores). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/cuda/kernels.h"
#include "engine/half.h"

/* ------------------------------------------------------------ harness */

static int g_pass = 0, g_fail = 0;
static const char *g_filter = nullptr;

static void summary_and_exit(int code) {
    printf("%d passed, %d failed\n", g_pass, g_fail);
    exit(code);
}

#define CK(call)                                                                                                  \
    do {                                                                                                          \
        cudaError_t err_ = (call);                                                                                \
        if (err_ != cudaSuccess) {                                                                                \
            printf("FAIL  CUDA error %s (%s) at %s:%d: %s\n", cudaGetErrorName(err_), cudaGetErrorString(err_),   \
                   __FILE__, __LINE__, #call);                                                                    \
            g_fail++;                                                                                             \
            summary_and_exit(1);                                                                                  \
        }                                                                                                         \
    } while (0)

/* after every kernel: launch errors and execution errors */
#define SYNC_CHECK()                        \
    do {                                    \
        CK(cudaGetLastError());             \
        CK(cudaDeviceSynchronize());        \
    } while (0)

static bool selected(const std::string &name) { return !g_filter || name.find(g_filter) != std::string::npos; }

static void report(const std::string &name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const std::string &name, bool ok, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("%s  %-58s %s\n", ok ? "PASS" : "FAIL", name.c_str(), buf);
    fflush(stdout);
    if (ok)
        g_pass++;
    else
        g_fail++;
}

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    double uniform() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
    float uni(float a, float b) { return (float)(a + (b - a) * uniform()); }
    float normal() {
        double u1 = uniform(), u2 = uniform();
        if (u1 < 1e-300) u1 = 1e-300;
        return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    std::vector<float> normals(size_t n, float scale = 1.0f) {
        std::vector<float> v(n);
        for (auto &x : v) x = normal() * scale;
        return v;
    }
};

static const char *dt_name(sbk_dtype dt) { return dt == SBK_F32 ? "f32" : dt == SBK_BF16 ? "bf16" : "f16"; }
static size_t dsize(sbk_dtype dt) { return dt == SBK_F32 ? 4 : 2; }

/* value after rounding to dt (host, engine/half.h) */
static float round_dt(float x, sbk_dtype dt) {
    if (dt == SBK_BF16) return sb_bf16_to_f32(sb_f32_to_bf16(x));
    if (dt == SBK_F16) return sb_f16_to_f32(sb_f32_to_f16(x));
    return x;
}
static std::vector<float> round_vec(const std::vector<float> &v, sbk_dtype dt) {
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); i++) r[i] = round_dt(v[i], dt);
    return r;
}
/* raw bytes of v as dt */
static std::vector<unsigned char> to_bytes(const std::vector<float> &v, sbk_dtype dt) {
    std::vector<unsigned char> b(v.size() * dsize(dt));
    if (dt == SBK_F32)
        memcpy(b.data(), v.data(), b.size());
    else if (dt == SBK_BF16)
        sb_f32_to_bf16_array(b.data(), v.data(), v.size());
    else
        sb_f32_to_f16_array(b.data(), v.data(), v.size());
    return b;
}
static std::vector<float> from_bytes(const std::vector<unsigned char> &b, sbk_dtype dt) {
    size_t n = b.size() / dsize(dt);
    std::vector<float> v(n);
    if (dt == SBK_F32)
        memcpy(v.data(), b.data(), b.size());
    else if (dt == SBK_BF16)
        sb_bf16_to_f32_array(v.data(), b.data(), n);
    else
        sb_f16_to_f32_array(v.data(), b.data(), n);
    return v;
}

/* A device buffer; poison() fills it with 0xFF bytes (NaN as f32, bf16 and f16). */
struct DBuf {
    void *p = nullptr;
    size_t bytes = 0;
    DBuf() = default;
    explicit DBuf(size_t b) { alloc(b); }
    DBuf(const DBuf &) = delete;
    DBuf &operator=(const DBuf &) = delete;
    ~DBuf() {
        if (p) cudaFree(p);
    }
    void alloc(size_t b) {
        if (p) CK(cudaFree(p));
        p = nullptr;
        bytes = b;
        CK(cudaMalloc(&p, b ? b : 16));
    }
    void poison() { CK(cudaMemset(p, 0xFF, bytes ? bytes : 16)); }
    template <typename T> T *as() const { return (T *)p; }
    void upload(const void *src, size_t b) {
        if (b > bytes) {
            printf("FAIL  test bug: upload of %zu bytes into %zu\n", b, bytes);
            g_fail++;
            summary_and_exit(1);
        }
        CK(cudaMemcpy(p, src, b, cudaMemcpyHostToDevice));
    }
    std::vector<unsigned char> download() const {
        std::vector<unsigned char> h(bytes);
        CK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
        return h;
    }
};
template <typename T> static void upload_vec(DBuf &d, const std::vector<T> &v) {
    d.alloc(v.size() * sizeof(T));
    d.upload(v.data(), v.size() * sizeof(T));
}
static void upload_dt(DBuf &d, const std::vector<float> &v, sbk_dtype dt) {
    auto b = to_bytes(v, dt);
    d.alloc(b.size());
    d.upload(b.data(), b.size());
}
static std::vector<float> download_f32(const DBuf &d) {
    auto b = d.download();
    std::vector<float> v(b.size() / 4);
    memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}

/* Relative L2 error over the elements where mask (if given) is set; counts elements that are
 * NaN in out but not in ref (unwritten or spurious NaN) and the converse. */
struct Err {
    double rel = 0, max_abs = 0;
    size_t bad_nan = 0, n = 0;
};
static Err compare(const std::vector<float> &out, const std::vector<double> &ref, const std::vector<char> *mask = nullptr) {
    Err e;
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        if (mask && !(*mask)[i]) continue;
        e.n++;
        const bool on = std::isnan(out[i]), rn = std::isnan(ref[i]);
        if (on || rn) {
            if (on != rn) e.bad_nan++;
            continue;
        }
        const double d = (double)out[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        e.max_abs = std::max(e.max_abs, fabs(d));
    }
    e.rel = den > 0 ? sqrt(num / den) : sqrt(num);
    return e;
}
static bool err_ok(const Err &e, double tol) { return e.bad_nan == 0 && e.rel <= tol; }
#define ERR_FMT "rel=%.2e max_abs=%.2e nan_mismatch=%zu tol=%.0e"
#define ERR_ARGS(e, tol) (e).rel, (e).max_abs, (e).bad_nan, (tol)

/* ------------------------------------------------------------ conversion */

static void test_convert() {
    const sbk_dtype dts[3] = {SBK_F32, SBK_BF16, SBK_F16};
    Rng rng(1);
    const size_t n = 1000003; /* odd, more than every 16-bit pattern */
    /* f32 sources: normals at many scales, the specials, half subnormals and rounding ties */
    std::vector<float> src32(n);
    for (size_t i = 0; i < n; i++) {
        float x;
        switch (i % 8) {
        case 0: x = rng.normal(); break;
        case 1: x = rng.normal() * 1e4f; break;
        case 2: x = rng.normal() * 1e-6f; break; /* f16 subnormal range */
        case 3: x = rng.normal() * 7e4f; break;  /* f16 overflow */
        case 4: x = sb_bits_f32((uint32_t)rng.next()); break; /* any pattern, NaNs included */
        case 5: x = sb_bits_f32((sb_f32_bits(rng.normal()) & ~0x1fffu) | 0x1000u); break; /* f16 ties */
        case 6: x = sb_bits_f32((sb_f32_bits(rng.normal()) & ~0xffffu) | 0x8000u); break; /* bf16 ties */
        default: x = rng.normal() * 1e-40f; break; /* f32 subnormals */
        }
        src32[i] = x;
    }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65520.0f, -65520.0f, 5.96e-8f,
                              2.98e-8f, 1e-45f, 3.4e38f};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) src32[i * 97] = specials[i];
    /* 16-bit sources: every pattern, then random ones */
    std::vector<uint16_t> src16(n);
    for (size_t i = 0; i < n; i++) src16[i] = i < 65536 ? (uint16_t)i : (uint16_t)rng.next();

    for (sbk_dtype idt : dts)
        for (sbk_dtype odt : dts) {
            std::string name = std::string("convert ") + dt_name(idt) + "->" + dt_name(odt) + " n=1000003";
            if (!selected(name)) continue;
            DBuf in(n * dsize(idt)), out(n * dsize(odt));
            if (idt == SBK_F32)
                in.upload(src32.data(), n * 4);
            else
                in.upload(src16.data(), n * 2);
            out.poison();
            sbk_convert(out.p, odt, in.p, idt, n, 0);
            SYNC_CHECK();
            auto got = out.download();
            size_t mism = 0;
            for (size_t i = 0; i < n; i++) {
                float v = idt == SBK_F32 ? src32[i] : idt == SBK_BF16 ? sb_bf16_to_f32(src16[i]) : sb_f16_to_f32(src16[i]);
                uint32_t want, have;
                if (odt == SBK_F32) {
                    want = idt == SBK_F32 ? sb_f32_bits(src32[i]) : sb_f32_bits(v);
                    memcpy(&have, &got[4 * i], 4);
                } else {
                    uint16_t w16 = (idt == odt) ? src16[i] : odt == SBK_BF16 ? sb_f32_to_bf16(v) : sb_f32_to_f16(v);
                    uint16_t h16;
                    memcpy(&h16, &got[2 * i], 2);
                    want = w16, have = h16;
                }
                if (want != have) {
                    if (mism < 3)
                        printf("      element %zu: want 0x%08x got 0x%08x\n", i, want, have);
                    mism++;
                }
            }
            report(name, mism == 0, "bit mismatches=%zu (bit-exact vs engine/half.h)", mism);
        }
}

/* ------------------------------------------------------------ embedding */

static void test_embed() {
    const sbk_dtype dts[3] = {SBK_F32, SBK_BF16, SBK_F16};
    const int shapes[2][2] = {{1000, 37}, {300, 4096}};
    Rng rng(2);
    for (auto &sh : shapes)
        for (sbk_dtype tdt : dts) {
            const int V = sh[0], C = sh[1];
            std::string name = "embed " + std::string(dt_name(tdt)) + " V=" + std::to_string(V) + " C=" + std::to_string(C);
            if (!selected(name)) continue;
            std::vector<float> table = round_vec(rng.normals((size_t)V * C), tdt);
            std::vector<int32_t> ids = {0, V - 1, 17, -1, V, 5, 17};
            const int T = (int)ids.size();
            DBuf dtab, dids, dout((size_t)T * C * 4);
            upload_dt(dtab, table, tdt);
            upload_vec(dids, ids);
            dout.poison();
            sbk_embed(dout.as<float>(), dtab.p, tdt, dids.as<int32_t>(), T, C, V, 0);
            SYNC_CHECK();
            auto got = download_f32(dout);
            size_t bad = 0;
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    float g = got[(size_t)t * C + c];
                    bool oob = ids[t] < 0 || ids[t] >= V;
                    if (oob ? !std::isnan(g) : sb_f32_bits(g) != sb_f32_bits(table[(size_t)ids[t] * C + c])) bad++;
                }
            report(name, bad == 0, "mismatches=%zu (rows of ids -1 and V must be NaN)", bad);
        }
}

/* ------------------------------------------------------------ row stores */

static void test_store_rows() {
    const sbk_dtype dts[3] = {SBK_F32, SBK_BF16, SBK_F16};
    Rng rng(3);
    for (sbk_dtype ddt : dts)
        for (int mode = 0; mode < 3; mode++) { /* 0: rows t, 1: dst_rows, 2: ring with wrap */
            const int rows = 9, cols = 37;
            const size_t src_stride = 41, dst_stride = 40;
            const int64_t n_dst = 12, cap = 10, pos0 = 2000007; /* pos0 % cap = 7: wraps after 3 rows */
            const char *mname = mode == 0 ? "rows t" : mode == 1 ? "dst_rows" : "ring cap=10 pos0=2000007";
            std::string name = std::string("store_rows ") + dt_name(ddt) + " " + mname;
            if (!selected(name)) continue;
            std::vector<float> src = rng.normals((size_t)rows * src_stride);
            std::vector<int64_t> drows = {11, 0, 3, 7, 1, 9, 2, 10, 5};
            DBuf dsrc, ddr, ddst((size_t)n_dst * dst_stride * dsize(ddt));
            upload_vec(dsrc, src);
            upload_vec(ddr, drows);
            ddst.poison();
            if (mode == 0)
                sbk_store_rows(ddst.p, ddt, dst_stride, nullptr, dsrc.as<float>(), src_stride, rows, cols, 0);
            else if (mode == 1)
                sbk_store_rows(ddst.p, ddt, dst_stride, ddr.as<int64_t>(), dsrc.as<float>(), src_stride, rows, cols, 0);
            else
                sbk_store_rows_ring(ddst.p, ddt, dst_stride, cap, pos0, dsrc.as<float>(), src_stride, rows, cols, 0);
            SYNC_CHECK();
            auto got = from_bytes(ddst.download(), ddt);
            std::vector<int> src_of(n_dst, -1);
            for (int t = 0; t < rows; t++) {
                int64_t r = mode == 0 ? t : mode == 1 ? drows[t] : (pos0 + t) % cap;
                src_of[r] = t;
            }
            size_t bad = 0;
            for (int64_t r = 0; r < n_dst; r++)
                for (size_t c = 0; c < dst_stride; c++) {
                    float g = got[r * dst_stride + c];
                    if (src_of[r] < 0 || c >= (size_t)cols) {
                        if (!std::isnan(g)) bad++; /* must stay untouched */
                    } else if (sb_f32_bits(g) != sb_f32_bits(round_dt(src[src_of[r] * src_stride + c], ddt))) {
                        bad++;
                    }
                }
            report(name, bad == 0, "mismatches=%zu (bit-exact; other rows and columns untouched)", bad);
        }
}

/* ------------------------------------------------------------ norms */

static void test_norm() {
    Rng rng(4);
    const int shapes[4][2] = {{1, 1}, {7, 37}, {3, 4096}, {64, 5120}};
    for (int ln = 0; ln < 2; ln++)
        for (auto &sh : shapes)
            for (int variant = 0; variant < 3; variant++) { /* 0: out_f32, 1: in place + bf16, 2: f16 only (+bias) */
                const int T = sh[0], C = sh[1];
                std::string name = std::string("norm ") + (ln ? "layer" : "rms") + " T=" + std::to_string(T) +
                                   " C=" + std::to_string(C) +
                                   (variant == 0 ? " f32" : variant == 1 ? " in-place+bf16" : " f16-only");
                if (!selected(name)) continue;
                std::vector<float> x = rng.normals((size_t)T * C, 3.0f), w = rng.normals(C), b = rng.normals(C);
                for (auto &v : x) v += 0.5f; /* a mean for LayerNorm to remove */
                const float eps = 1e-5f;
                const bool use_b = ln && variant == 2;
                /* reference: engine/ops.c's arithmetic (double sums, then float) */
                std::vector<double> ref((size_t)T * C);
                for (int t = 0; t < T; t++) {
                    const float *xr = &x[(size_t)t * C];
                    if (!ln) {
                        double ss = 0;
                        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
                        float r = (float)(1.0 / sqrt(ss / C + eps));
                        for (int c = 0; c < C; c++) ref[(size_t)t * C + c] = xr[c] * r * w[c];
                    } else {
                        double mean = 0;
                        for (int c = 0; c < C; c++) mean += xr[c];
                        mean /= C;
                        double var = 0;
                        for (int c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
                        var /= C;
                        float r = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
                        for (int c = 0; c < C; c++) ref[(size_t)t * C + c] = (xr[c] - m) * r * w[c] + (use_b ? b[c] : 0.0f);
                    }
                }
                DBuf dx, dw, db, dout((size_t)T * C * 4), dh((size_t)T * C * 2);
                upload_vec(dx, x);
                upload_vec(dw, w);
                upload_vec(db, b);
                dout.poison();
                dh.poison();
                sbk_dtype hdt = variant == 1 ? SBK_BF16 : SBK_F16;
                if (variant == 0)
                    sbk_norm(dout.as<float>(), nullptr, hdt, dx.as<float>(), dw.as<float>(), nullptr, ln, eps, T, C, 0);
                else if (variant == 1)
                    sbk_norm(dx.as<float>(), dh.p, hdt, dx.as<float>(), dw.as<float>(), nullptr, ln, eps, T, C, 0);
                else
                    sbk_norm(nullptr, dh.p, hdt, dx.as<float>(), dw.as<float>(), use_b ? db.as<float>() : nullptr, ln,
                             eps, T, C, 0);
                SYNC_CHECK();
                bool ok = true;
                char msg[256] = "";
                if (variant != 2) {
                    auto got = download_f32(variant == 0 ? dout : dx);
                    Err e = compare(got, ref);
                    ok = err_ok(e, 1e-6);
                    snprintf(msg, sizeof msg, "f32 " ERR_FMT, ERR_ARGS(e, 1e-6));
                }
                if (variant != 0) {
                    auto goth = from_bytes(dh.download(), hdt);
                    std::vector<double> refh(ref.size());
                    for (size_t i = 0; i < ref.size(); i++) refh[i] = round_dt((float)ref[i], hdt);
                    Err e = compare(goth, refh);
                    ok = ok && err_ok(e, 1e-2);
                    size_t l = strlen(msg);
                    snprintf(msg + l, sizeof msg - l, "%s%s " ERR_FMT, l ? "; " : "", dt_name(hdt), ERR_ARGS(e, 1e-2));
                }
                report(name, ok, "%s", msg);
            }
}

/* ------------------------------------------------------------ elementwise */

static double ref_act(double x, int act) {
    switch (act) {
    case SBK_ACT_GELU_ERF: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case SBK_ACT_GELU_TANH: return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    default: return x / (1.0 + exp(-x));
    }
}

static void test_elementwise() {
    Rng rng(5);
    const int T = 37, C = 1031;
    const size_t n = (size_t)T * C;
    std::vector<float> x = rng.normals(n, 4.0f), y = rng.normals(n), b = rng.normals(C);
    x[5] = NAN;
    DBuf dx, dy, db, dout(n * 4);
    upload_vec(dy, y);
    upload_vec(db, b);
    {
        std::string name = "add_bias T=37 C=1031";
        if (selected(name)) {
            upload_vec(dx, x);
            sbk_add_bias(dx.as<float>(), db.as<float>(), T, C, 0);
            SYNC_CHECK();
            std::vector<double> ref(n);
            for (size_t i = 0; i < n; i++) ref[i] = x[i] + b[i % C];
            Err e = compare(download_f32(dx), ref);
            report(name, err_ok(e, 1e-6), ERR_FMT, ERR_ARGS(e, 1e-6));
        }
    }
    {
        std::string name = "add n=38147";
        if (selected(name)) {
            upload_vec(dx, x);
            sbk_add(dx.as<float>(), dy.as<float>(), n, 0);
            SYNC_CHECK();
            std::vector<double> ref(n);
            for (size_t i = 0; i < n; i++) ref[i] = x[i] + y[i];
            Err e = compare(download_f32(dx), ref);
            report(name, err_ok(e, 1e-6), ERR_FMT, ERR_ARGS(e, 1e-6));
        }
    }
    for (float clip : {2.5f, 0.0f}) {
        std::string name = "clamp clip=" + std::to_string(clip).substr(0, 3) + (clip > 0 ? "" : " (no-op)");
        if (!selected(name)) continue;
        upload_vec(dx, x);
        sbk_clamp(dx.as<float>(), n, clip, 0);
        SYNC_CHECK();
        std::vector<double> ref(n);
        for (size_t i = 0; i < n; i++) ref[i] = clip > 0 ? (x[i] > clip ? clip : x[i] < -clip ? -clip : x[i]) : x[i];
        Err e = compare(download_f32(dx), ref);
        report(name, err_ok(e, 0.0), ERR_FMT, ERR_ARGS(e, 0.0));
    }
    const char *anames[3] = {"silu", "gelu_erf", "gelu_tanh"};
    for (int act = 0; act < 3; act++)
        for (sbk_dtype odt : {SBK_F32, SBK_BF16}) {
            const double tol = odt == SBK_F32 ? 1e-6 : 1e-2;
            for (int kind = 0; kind < 3; kind++) { /* act, glu, glu_fused */
                std::string name = std::string(kind == 0 ? "act " : kind == 1 ? "glu " : "glu_fused ") + anames[act] +
                                   " out=" + dt_name(odt);
                if (!selected(name)) continue;
                std::vector<double> ref(n);
                std::vector<float> gu;
                dout.poison();
                if (kind == 0) {
                    upload_vec(dx, x);
                    sbk_act(dout.p, odt, dx.as<float>(), n, act, 0);
                    for (size_t i = 0; i < n; i++) ref[i] = ref_act(x[i], act);
                } else if (kind == 1) {
                    upload_vec(dx, x);
                    sbk_glu(dout.p, odt, dx.as<float>(), dy.as<float>(), n, act, 0);
                    for (size_t i = 0; i < n; i++) ref[i] = ref_act(x[i], act) * y[i];
                } else {
                    const int F = C;
                    gu.resize((size_t)T * 2 * F);
                    for (int t = 0; t < T; t++)
                        for (int f = 0; f < F; f++) {
                            gu[(size_t)t * 2 * F + f] = x[(size_t)t * F + f];
                            gu[(size_t)t * 2 * F + F + f] = y[(size_t)t * F + f];
                        }
                    DBuf dgu;
                    upload_vec(dgu, gu);
                    sbk_glu_fused(dout.p, odt, dgu.as<float>(), T, F, act, 0);
                    CK(cudaDeviceSynchronize());
                    for (size_t i = 0; i < n; i++) ref[i] = ref_act(x[i], act) * y[i];
                }
                SYNC_CHECK();
                std::vector<unsigned char> raw = dout.download();
                raw.resize(n * dsize(odt));
                Err e = compare(from_bytes(raw, odt), ref);
                report(name, err_ok(e, tol), ERR_FMT, ERR_ARGS(e, tol));
            }
        }
    /* in place (out aliases in / gate) */
    {
        std::string name = "act silu in place f32";
        if (selected(name)) {
            upload_vec(dx, x);
            sbk_act(dx.p, SBK_F32, dx.as<float>(), n, SBK_ACT_SILU, 0);
            SYNC_CHECK();
            std::vector<double> ref(n);
            for (size_t i = 0; i < n; i++) ref[i] = ref_act(x[i], 0);
            Err e = compare(download_f32(dx), ref);
            report(name, err_ok(e, 1e-6), ERR_FMT, ERR_ARGS(e, 1e-6));
        }
    }
}

/* ------------------------------------------------------------ RoPE */

/* engine/ops.c rope_table_fill */
static void rope_tables(std::vector<float> &cs, std::vector<float> &sn, int64_t pos0, int n_pos, int rotary_dim,
                        float theta) {
    const int half = rotary_dim / 2;
    cs.resize((size_t)n_pos * half);
    sn.resize((size_t)n_pos * half);
    for (int p = 0; p < n_pos; p++)
        for (int j = 0; j < half; j++) {
            double ang = (double)(pos0 + p) * pow((double)theta, -2.0 * j / rotary_dim);
            cs[(size_t)p * half + j] = (float)cos(ang);
            sn[(size_t)p * half + j] = (float)sin(ang);
        }
}
/* engine/ops.c rope_rotate_head, in float; every product goes through a volatile float, so no
 * host compiler can contract it into a fused multiply-add (the CPU engine's build does not) */
static void rope_head_cpu(float *h, const float *cs, const float *sn, int rotary_dim, int style) {
    int half = rotary_dim / 2;
    for (int j = 0; j < half; j++) {
        int ia = style == SBK_ROPE_INTERLEAVED ? 2 * j : j, ib = style == SBK_ROPE_INTERLEAVED ? 2 * j + 1 : j + half;
        volatile float a = h[ia], b = h[ib];
        volatile float ac = a * cs[j], bs = b * sn[j], as = a * sn[j], bc = b * cs[j];
        h[ia] = ac - bs;
        h[ib] = as + bc;
    }
}

static void test_rope() {
    Rng rng(6);
    for (int style = 0; style < 2; style++)
        for (int rot : {64, 32})
            for (int tstride : {32, 0}) {
                const int T = 37, n_heads = 3, hd = 64;
                const size_t row_stride = 5 * hd + 3; /* q inside a fused qkv row, odd stride */
                const int64_t pos0 = 2000000;
                std::string name = std::string("rope ") + (style ? "interleaved" : "half") + " rot=" +
                                   std::to_string(rot) + "/64 T=37 pos0=2e6" + (tstride ? "" : " table_stride=0");
                if (!selected(name)) continue;
                const int half = rot / 2;
                std::vector<float> cs, sn;
                rope_tables(cs, sn, pos0, T, rot, 10000.0f);
                const int trs = tstride ? half : 0;
                std::vector<float> x = rng.normals((size_t)T * row_stride), ref = x;
                for (int t = 0; t < T; t++)
                    for (int h = 0; h < n_heads; h++)
                        rope_head_cpu(&ref[(size_t)t * row_stride + (size_t)h * hd], &cs[(size_t)t * trs],
                                      &sn[(size_t)t * trs], rot, style);
                DBuf dx, dc, ds;
                upload_vec(dx, x);
                upload_vec(dc, cs);
                upload_vec(ds, sn);
                sbk_rope(dx.as<float>(), T, row_stride, n_heads, hd, rot, style, dc.as<float>(), ds.as<float>(), trs, 0);
                SYNC_CHECK();
                auto got = download_f32(dx);
                size_t mism = 0;
                for (size_t i = 0; i < got.size(); i++) mism += sb_f32_bits(got[i]) != sb_f32_bits(ref[i]);
                report(name, mism == 0, "bit mismatches=%zu of %zu (bit-exact vs rope_apply_table arithmetic)", mism,
                       got.size());
            }
    for (sbk_dtype dt : {SBK_F32, SBK_BF16, SBK_F16})
        for (int style = 0; style < 2; style++) {
            const int n_slots = 9, KVH = 2, hd = 16, rot = style ? 16 : 8, m = 5;
            const int kvd = KVH * hd;
            std::string name = std::string("rerotate ") + dt_name(dt) + (style ? " interleaved rot=16" : " half rot=8/16");
            if (!selected(name)) continue;
            std::vector<int32_t> slots = {3, 0, 7, 1, 5};
            std::vector<float> raw = rng.normals((size_t)n_slots * kvd), cache0 = round_vec(rng.normals((size_t)n_slots * kvd), dt);
            std::vector<float> cs, sn, c1, s1;
            cs.clear();
            sn.clear();
            for (int i = 0; i < m; i++) { /* table row i: position 4000 + 3 i */
                rope_tables(c1, s1, 4000 + 3 * i, 1, rot, 10000.0f);
                cs.insert(cs.end(), c1.begin(), c1.end());
                sn.insert(sn.end(), s1.begin(), s1.end());
            }
            std::vector<float> ref = cache0;
            for (int i = 0; i < m; i++) {
                std::vector<float> row(raw.begin() + (size_t)slots[i] * kvd, raw.begin() + (size_t)(slots[i] + 1) * kvd);
                for (int h = 0; h < KVH; h++) rope_head_cpu(&row[(size_t)h * hd], &cs[(size_t)i * rot / 2], &sn[(size_t)i * rot / 2], rot, style);
                for (int e = 0; e < kvd; e++) ref[(size_t)slots[i] * kvd + e] = round_dt(row[e], dt);
            }
            DBuf dcache, draw, dslots, dc, ds;
            upload_dt(dcache, cache0, dt);
            upload_vec(draw, raw);
            upload_vec(dslots, slots);
            upload_vec(dc, cs);
            upload_vec(ds, sn);
            sbk_rerotate(dcache.p, dt, draw.as<float>(), dslots.as<int32_t>(), m, dc.as<float>(), ds.as<float>(), KVH,
                         hd, rot, style, 0);
            SYNC_CHECK();
            auto got = from_bytes(dcache.download(), dt);
            size_t mism = 0;
            for (size_t i = 0; i < got.size(); i++) mism += sb_f32_bits(got[i]) != sb_f32_bits(ref[i]);
            report(name, mism == 0, "bit mismatches=%zu (other slots untouched)", mism);
        }
}

/* ------------------------------------------------------------ band attention */

struct BandCase {
    const char *name;
    int H, KV, hd, T;
    int64_t K;
    int n_sink;
    int64_t W, pos0, max_dist;
    int softmax;
    bool alibi;
    int64_t cap_extra; /* band_cap = min(W + T, ...) + cap_extra, see below */
    bool qs_same;      /* qs == qb */
    int q_pad, out_pad; /* extra elements per row of q and out */
};

static const int64_t BIG_W = (int64_t)1 << 50;
static const int64_t NO_MAX = INT64_MAX;

/* The appendix semantics, written out plainly in double. q*: [T][q_stride] (values as the
 * kernel sees them), band*: [cap][KV*hd], sink*: [n_sink][KV*hd]. */
static void ref_band(std::vector<double> &out, size_t out_stride, const std::vector<float> &qb,
                     const std::vector<float> &qs, size_t q_stride, const std::vector<float> &bk,
                     const std::vector<float> &bv, int64_t cap, const std::vector<float> &sk,
                     const std::vector<float> &sv, const BandCase &c, const std::vector<float> &slopes,
                     const std::vector<float> &sink_logit) {
    const int hd = c.hd, G = c.H / c.KV;
    const size_t kvd = (size_t)c.KV * hd;
    std::vector<double> sc;
    std::vector<const float *> vr;
    for (int t = 0; t < c.T; t++)
        for (int h = 0; h < c.H; h++) {
            const int64_t P = c.pos0 + t;
            const int g = h / G;
            const double slope = c.alibi ? slopes[h] : 0.0;
            sc.clear();
            vr.clear();
            const int64_t sq = std::min(P, c.K + c.W);
            for (int64_t j = 0; j < std::min<int64_t>(c.n_sink, P + 1); j++) {
                const int64_t dist = sq - j;
                if (dist > c.max_dist) continue;
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)qs[t * q_stride + h * hd + e] * sk[j * kvd + g * hd + e];
                sc.push_back(d / sqrt((double)hd) - slope * (double)dist);
                vr.push_back(&sv[j * kvd + g * hd]);
            }
            for (int64_t p = std::max(c.K, P - c.W); p <= P; p++) {
                const int64_t dist = P - p;
                if (dist > c.max_dist) continue;
                const int64_t row = p % cap;
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)qb[t * q_stride + h * hd + e] * bk[row * kvd + g * hd + e];
                sc.push_back(d / sqrt((double)hd) - slope * (double)dist);
                vr.push_back(&bv[row * kvd + g * hd]);
            }
            const bool extra = c.softmax != SBK_SOFTMAX_STANDARD;
            const double ex = c.softmax == SBK_SOFTMAX_SINK_LOGIT ? sink_logit[h] : 0.0;
            double m = extra ? ex : -INFINITY;
            for (double s : sc) m = std::max(m, s);
            double den = extra ? exp(ex - m) : 0.0;
            for (double s : sc) den += exp(s - m);
            for (int e = 0; e < hd; e++) {
                double acc = 0;
                for (size_t i = 0; i < sc.size(); i++) acc += exp(sc[i] - m) * vr[i][e];
                out[t * out_stride + h * hd + e] = den > 0 ? acc / den : 0.0;
            }
        }
}

static std::vector<float> mpt_slopes(int H) {
    std::vector<float> s(H);
    for (int h = 0; h < H; h++) s[h] = (float)(1.0 / pow(2.0, (h + 1) * 8.0 / H));
    return s;
}

static void run_band_case(const BandCase &c, sbk_dtype dt, sbk_dtype odt, uint64_t seed) {
    std::string name = std::string("band ") + dt_name(dt) + (odt != SBK_F32 ? std::string("->") + dt_name(odt) : "") +
                       " " + c.name;
    if (!selected(name)) return;
    Rng rng(seed);
    const int hd = c.hd;
    const size_t kvd = (size_t)c.KV * hd;
    const size_t q_stride = (size_t)c.H * hd + c.q_pad, out_stride = (size_t)c.H * hd + c.out_pad;
    /* the band ring must hold positions [max(K, pos0 - W), pos0 + T) */
    const int64_t lo = std::max(c.K, c.pos0 - c.W), hi = c.pos0 + c.T; /* exclusive */
    const int64_t span = std::max<int64_t>(hi - lo, 1);
    const int64_t cap = span + c.cap_extra;
    /* keys and values: random where a kernel may read, NaN elsewhere */
    std::vector<float> bk((size_t)cap * kvd, NAN), bv((size_t)cap * kvd, NAN);
    for (int64_t p = lo; p < hi; p++)
        for (size_t e = 0; e < kvd; e++) {
            bk[(p % cap) * kvd + e] = rng.normal();
            bv[(p % cap) * kvd + e] = rng.normal();
        }
    const int64_t sink_rows = std::max<int64_t>(c.K, 1);
    std::vector<float> sk((size_t)sink_rows * kvd, NAN), sv((size_t)sink_rows * kvd, NAN);
    for (int j = 0; j < c.n_sink; j++)
        for (size_t e = 0; e < kvd; e++) sk[j * kvd + e] = rng.normal(), sv[j * kvd + e] = rng.normal();
    /* queries scaled so attention is far from uniform; the padding of each row is NaN */
    std::vector<float> qb((size_t)c.T * q_stride, NAN), qs((size_t)c.T * q_stride, NAN);
    for (int t = 0; t < c.T; t++)
        for (int i = 0; i < c.H * hd; i++) {
            qb[t * q_stride + i] = rng.normal() * 2.0f;
            qs[t * q_stride + i] = c.qs_same ? qb[t * q_stride + i] : rng.normal() * 2.0f;
        }
    bk = round_vec(bk, dt), bv = round_vec(bv, dt), sk = round_vec(sk, dt), sv = round_vec(sv, dt);
    qb = round_vec(qb, dt), qs = round_vec(qs, dt);
    std::vector<float> slopes = mpt_slopes(c.H), sl(c.H);
    for (auto &x : sl) x = rng.normal() * 2.0f;

    std::vector<double> ref((size_t)c.T * out_stride, NAN);
    ref_band(ref, out_stride, qb, qs, q_stride, bk, bv, cap, sk, sv, c, slopes, sl);

    DBuf dqb, dqs, dbk, dbv, dsk, dsv, dsl, dal, dout((size_t)c.T * out_stride * dsize(odt));
    upload_dt(dqb, qb, dt);
    if (!c.qs_same) upload_dt(dqs, qs, dt);
    upload_dt(dbk, bk, dt);
    upload_dt(dbv, bv, dt);
    upload_dt(dsk, sk, dt);
    upload_dt(dsv, sv, dt);
    upload_vec(dsl, sl);
    upload_vec(dal, slopes);
    dout.poison();
    sbk_band_attention(dout.p, odt, out_stride, dqb.p, c.qs_same ? dqb.p : dqs.p, q_stride, dbk.p, dbv.p, cap, dsk.p,
                       dsv.p, c.n_sink, c.K, c.W, c.pos0, c.T, c.max_dist, c.H, c.KV, hd, c.softmax, dsl.as<float>(),
                       c.alibi ? dal.as<float>() : nullptr, dt, 0);
    SYNC_CHECK();
    auto got = from_bytes(dout.download(), odt);
    /* the padding of out must stay untouched (NaN), the rest must match */
    std::vector<char> mask(ref.size(), 0);
    size_t pad_written = 0;
    for (int t = 0; t < c.T; t++)
        for (size_t i = 0; i < out_stride; i++) {
            if (i < (size_t)c.H * hd)
                mask[t * out_stride + i] = 1;
            else if (!std::isnan(got[t * out_stride + i]))
                pad_written++;
        }
    Err e = compare(got, ref, &mask);
    const double tol = dt == SBK_F32 ? (odt == SBK_F32 ? 1e-5 : 1e-2) : 1e-2;
    report(name, err_ok(e, tol) && pad_written == 0, ERR_FMT " pad_written=%zu", ERR_ARGS(e, tol), pad_written);
}

static void test_band() {
    /* name, H, KV, hd, T, K, n_sink, W, pos0, max_dist, softmax, alibi, cap_extra, qs_same, q_pad, out_pad */
    const BandCase cases[] = {
        {"T=1 hd=64 K=4 W=16 pos0=100", 2, 2, 64, 1, 4, 4, 16, 100, NO_MAX, 0, false, 0, false, 0, 0},
        {"T=37 GQA H=8 KV=2 hd=64 K=4 W=50 pos0=1000", 8, 2, 64, 37, 4, 4, 50, 1000, NO_MAX, 0, false, 3, false, 0, 0},
        {"MQA H=4 KV=1 hd=128 T=70 K=1 W=100 pos0=130", 4, 1, 128, 70, 1, 1, 100, 130, NO_MAX, 0, false, 0, false, 0, 0},
        {"stream start pos0=0 T=37 K=4 W=8", 2, 2, 64, 37, 4, 4, 8, 0, NO_MAX, 0, false, 0, false, 0, 0},
        {"stream start pos0=0 T=3 K=4 n_sink=3 W=8", 2, 1, 64, 3, 4, 3, 8, 0, NO_MAX, 0, false, 0, false, 0, 0},
        {"window K=0 W=20 pos0=500 T=64 hd=16", 4, 2, 16, 64, 0, 0, 20, 500, NO_MAX, 0, false, 5, true, 0, 0},
        {"n_sink=2<K=4 W=40 pos0=50 T=45", 4, 4, 64, 45, 4, 2, 40, 50, NO_MAX, 0, false, 0, false, 0, 0},
        {"pos0=2e6 K=4 W=200 T=100 hd=128", 4, 2, 128, 100, 4, 4, 200, 2000000, NO_MAX, 0, false, 0, false, 0, 0},
        {"max_dist=30 W=100 pos0=10 T=80 (sinks fade)", 4, 4, 64, 80, 4, 4, 100, 10, 30, 0, false, 0, false, 0, 0},
        {"max_dist=0 (itself only) pos0=0 T=40 K=4", 2, 2, 64, 40, 4, 4, 16, 0, 0, 0, false, 0, false, 0, 0},
        {"ALiBi H=8 hd=64 K=4 W=64 pos0=300 T=90", 8, 8, 64, 90, 4, 4, 64, 300, NO_MAX, 0, true, 0, false, 0, 0},
        {"ALiBi pos0=2e6 K=4 W=100 T=50 hd=128", 8, 4, 128, 50, 4, 4, 100, 2000000, NO_MAX, 0, true, 0, false, 0, 0},
        {"off-by-one K=4 W=64 pos0=200 T=70", 4, 2, 64, 70, 4, 4, 64, 200, NO_MAX, 1, false, 0, false, 0, 0},
        {"off-by-one K=0 W=30 pos0=0 T=50", 4, 2, 64, 50, 0, 0, 30, 0, NO_MAX, 1, false, 0, true, 0, 0},
        {"sink-logit K=1 W=64 pos0=500 T=70 hd=128", 4, 4, 128, 70, 1, 1, 64, 500, NO_MAX, 2, false, 0, false, 0, 0},
        {"sink-logit+ALiBi+max_dist=40 K=4 W=64 pos0=90 T=64", 4, 2, 64, 64, 4, 4, 64, 90, 40, 2, true, 0, false, 0, 0},
        {"ring wrap cap=W+T pos0=977 W=60 T=50 padded strides", 4, 2, 64, 50, 4, 4, 60, 977, NO_MAX, 0, false, 0, false, 8, 8},
        {"ring wrap cap=W+T+13 pos0=4001 W=300 T=130 hd=128", 2, 2, 128, 130, 4, 4, 300, 4001, NO_MAX, 0, false, 13, false, 0, 0},
        {"dense K=0 W=2^50 pos0=0 T=200 hd=128", 4, 2, 128, 200, 0, 0, BIG_W, 0, NO_MAX, 0, false, 0, true, 0, 0},
        {"dense K=0 W=2^50 pos0=300 T=100 hd=64", 2, 2, 64, 100, 0, 0, BIG_W, 300, NO_MAX, 0, false, 0, true, 0, 0},
        {"dense+ALiBi+off-by-one pos0=0 T=130", 4, 4, 64, 130, 0, 0, BIG_W, 0, NO_MAX, 1, true, 0, true, 0, 0},
        {"hd=8 K=4 W=20 pos0=40 T=30", 2, 1, 8, 30, 4, 4, 20, 40, NO_MAX, 0, false, 0, false, 0, 0},
        {"hd=80 K=4 W=90 pos0=400 T=100", 4, 2, 80, 100, 4, 4, 90, 400, NO_MAX, 0, false, 0, false, 0, 0},
        {"hd=96 K=4 W=90 pos0=400 T=100", 4, 2, 96, 100, 4, 4, 90, 400, NO_MAX, 2, false, 0, false, 0, 0},
        {"hd=256 K=4 W=100 pos0=400 T=70", 2, 1, 256, 70, 4, 4, 100, 400, NO_MAX, 0, true, 0, false, 0, 0},
        {"hd=40 (fallback) K=4 W=30 pos0=60 T=20", 2, 2, 40, 20, 4, 4, 30, 60, NO_MAX, 0, false, 0, false, 0, 0},
        {"q_stride%8!=0 (fallback) hd=64 T=20", 2, 2, 64, 20, 4, 4, 30, 60, NO_MAX, 0, false, 0, false, 3, 1},
        {"W=4092 K=4 T=256 pos0=10000 hd=128", 2, 2, 128, 256, 4, 4, 4092, 10000, NO_MAX, 0, false, 0, false, 0, 0},
        {"W=2044 K=4 T=300 pos0=1500 hd=128 (crosses K+W)", 2, 1, 128, 300, 4, 4, 2044, 1900, NO_MAX, 0, false, 0, false, 0, 0},
    };
    uint64_t seed = 100;
    for (const BandCase &c : cases) {
        run_band_case(c, SBK_F32, SBK_F32, seed);
        run_band_case(c, SBK_BF16, SBK_F32, seed);
        seed++;
    }
    /* f16 inputs, and half outputs */
    run_band_case(cases[1], SBK_F16, SBK_F32, 200);
    run_band_case(cases[7], SBK_F16, SBK_F32, 201);
    run_band_case(cases[17], SBK_F16, SBK_F16, 202);
    run_band_case(cases[2], SBK_BF16, SBK_BF16, 203);
    run_band_case(cases[10], SBK_F32, SBK_BF16, 204);
}

/* Band attention inside a captured CUDA graph (the kernels must be capturable). */
static void test_band_graph() {
    std::string name = "band bf16 captured in a CUDA graph == direct launch";
    if (!selected(name)) return;
    const int H = 4, KV = 2, hd = 128, T = 100;
    const int64_t K = 4, W = 200, pos0 = 5000, cap = W + T;
    Rng rng(7);
    const size_t kvd = (size_t)KV * hd;
    DBuf q, bk, bv, sk, sv, o1((size_t)T * H * hd * 4), o2((size_t)T * H * hd * 4);
    upload_dt(q, rng.normals((size_t)T * H * hd), SBK_BF16);
    upload_dt(bk, rng.normals((size_t)cap * kvd), SBK_BF16);
    upload_dt(bv, rng.normals((size_t)cap * kvd), SBK_BF16);
    upload_dt(sk, rng.normals((size_t)K * kvd), SBK_BF16);
    upload_dt(sv, rng.normals((size_t)K * kvd), SBK_BF16);
    o1.poison();
    o2.poison();
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto launch = [&](DBuf &o) {
        sbk_band_attention(o.p, SBK_F32, (size_t)H * hd, q.p, q.p, (size_t)H * hd, bk.p, bv.p, cap, sk.p, sv.p, 4, K,
                           W, pos0, T, NO_MAX, H, KV, hd, 0, nullptr, nullptr, SBK_BF16, s);
    };
    launch(o1);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(s));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    launch(o2);
    CK(cudaGetLastError());
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, s));
    CK(cudaStreamSynchronize(s));
    auto a = o1.download(), b = o2.download();
    const bool same = a == b;
    report(name, same, "%s", same ? "identical bytes" : "outputs differ");
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    CK(cudaStreamDestroy(s));
}

/* ------------------------------------------------------------ decode: fused RoPE + KV store */

/* sbk_decode_qkv_store against the launches it replaces (sbk_store_rows of the raw k, sbk_rope
 * of q and k, sbk_store_rows of k and v), which the cases above check against the CPU:
 * identical bytes of the row, both caches and k_raw (poisoned alike, so stray writes show). */
static void test_decode_qkv_store() {
    Rng rng(77);
    struct { int H, KV, hd, rot, style; bool raw; } cs[] = {
        {8, 2, 64, 64, 0, true}, {4, 4, 80, 32, 1, false}, {2, 1, 256, 256, 0, true}, {4, 2, 64, 0, 0, true},
        {32, 32, 128, 128, 0, false}};
    for (auto c : cs)
        for (sbk_dtype dt : {SBK_F32, SBK_BF16, SBK_F16}) {
            char name[128];
            snprintf(name, sizeof name, "decode qkv store %s H=%d KV=%d hd=%d rotary=%d %s%s", dt_name(dt), c.H, c.KV,
                     c.hd, c.rot, c.style ? "interleaved" : "half", c.raw ? " k_raw" : "");
            if (!selected(name)) continue;
            const int qd = c.H * c.hd, kvd = c.KV * c.hd, qkvd = qd + 2 * kvd, rows = 10, half = c.rot / 2;
            const std::vector<float> row = rng.normals((size_t)qkvd);
            std::vector<float> tq, tqs, tk, tks;
            rope_tables(tq, tqs, 1234, 1, c.rot > 0 ? c.rot : 2, 10000.0f);
            rope_tables(tk, tks, 777, 1, c.rot > 0 ? c.rot : 2, 10000.0f);
            std::vector<int64_t> dst = {7};
            DBuf dtq, dtqs, dtk, dtks, ddst;
            upload_vec(dtq, tq);
            upload_vec(dtqs, tqs);
            upload_vec(dtk, tk);
            upload_vec(dtks, tks);
            upload_vec(ddst, dst);
            std::vector<unsigned char> out[2][4];
            for (int fused = 0; fused < 2; fused++) {
                DBuf dq, kc((size_t)rows * kvd * dsize(dt)), vc((size_t)rows * kvd * dsize(dt)), kr((size_t)rows * kvd * 4);
                upload_vec(dq, row);
                kc.poison();
                vc.poison();
                kr.poison();
                float *q = dq.as<float>(), *k = q + qd, *v = k + kvd;
                if (fused) {
                    sbk_decode_qkv_store(q, c.H, c.KV, c.hd, c.rot, c.style, dtq.as<float>(), dtqs.as<float>(),
                                         dtk.as<float>(), dtks.as<float>(), kc.p, vc.p, dt,
                                         c.raw ? kr.as<float>() : nullptr, ddst.as<int64_t>(), 0);
                } else {
                    if (c.raw) sbk_store_rows(kr.p, SBK_F32, (size_t)kvd, ddst.as<int64_t>(), k, (size_t)qkvd, 1, kvd, 0);
                    if (half > 0) {
                        sbk_rope(q, 1, (size_t)qkvd, c.H, c.hd, c.rot, c.style, dtq.as<float>(), dtqs.as<float>(), 0, 0);
                        sbk_rope(k, 1, (size_t)qkvd, c.KV, c.hd, c.rot, c.style, dtk.as<float>(), dtks.as<float>(), 0, 0);
                    }
                    sbk_store_rows(kc.p, dt, (size_t)kvd, ddst.as<int64_t>(), k, (size_t)qkvd, 1, kvd, 0);
                    sbk_store_rows(vc.p, dt, (size_t)kvd, ddst.as<int64_t>(), v, (size_t)qkvd, 1, kvd, 0);
                }
                CK(cudaGetLastError());
                CK(cudaDeviceSynchronize());
                out[fused][0] = dq.download();
                out[fused][1] = kc.download();
                out[fused][2] = vc.download();
                out[fused][3] = kr.download();
            }
            bool same = true;
            for (int i = 0; i < 4; i++) same = same && out[0][i] == out[1][i];
            /* and the row was written at all: the cache row is no longer the poison */
            const size_t off = (size_t)dst[0] * kvd * dsize(dt);
            const bool written = out[1][2][off] != 0xFF || out[1][2][off + 1] != 0xFF;
            report(name, same && written, "%s", !same ? "differs from the unfused launches" : !written ? "row not written" : "identical bytes");
        }
}

/* ------------------------------------------------------------ decode attention */

struct DecCase {
    const char *name;
    int H, KV, hd, n, n_slots;
    int64_t max_dist;
    int softmax;
    bool alibi, probs;
    bool ordered; /* positions ascending with i (the oldest first): whole splits fall beyond max_dist */
};

/* variant: 0 the default kernels, 1 the legacy ones (SBK_LEGACY_DECODE_ATTENTION), 2 the
 * default ones writing only the bf16 output (sbk_decode_attention_to) */
static void run_decode_case(const DecCase &c, sbk_dtype dt, uint64_t seed, bool graph, int variant = 0) {
    /* variant 0: default kernel, 1: legacy, 2: bf16 output, 3 / 4: split configurations 1 / 2 */
    std::string name = std::string("decode ") + dt_name(dt) + " " + c.name + (graph ? " [graph, n grows]" : "") +
                       (variant == 1 ? " [legacy]" : variant == 2 ? " [out bf16]" : variant == 3 ? " [split 128]"
                                                   : variant == 4 ? " [split 128, batches of 8]" : "");
    if (!selected(name)) return;
    sbk_set_legacy(variant == 1 ? SBK_LEGACY_DECODE_ATTENTION : 0);
    sbk_decode_config(variant == 3 ? 1 : variant == 4 ? 2 : 0);
    Rng rng(seed);
    const int hd = c.hd, G = c.H / c.KV;
    const size_t kvd = (size_t)c.KV * hd;
    /* slots: a random subset in random order; positions: distinct, within a frame */
    std::vector<int32_t> perm(c.n_slots);
    for (int i = 0; i < c.n_slots; i++) perm[i] = i;
    for (int i = c.n_slots - 1; i > 0; i--) std::swap(perm[i], perm[rng.next() % (uint64_t)(i + 1)]);
    const int n_max = c.n + 16;
    std::vector<int32_t> slots(perm.begin(), perm.begin() + std::min(n_max, c.n_slots));
    const int64_t query_pos = 2000000 + c.n;
    std::vector<int64_t> pos(slots.size());
    for (size_t i = 0; i < pos.size(); i++)
        pos[i] = c.ordered ? query_pos - (int64_t)(pos.size() - i) : query_pos - (int64_t)(rng.next() % (uint64_t)(c.n + 20));
    std::vector<float> k = round_vec(rng.normals((size_t)c.n_slots * kvd), dt),
                       v = round_vec(rng.normals((size_t)c.n_slots * kvd), dt), q = rng.normals((size_t)c.H * hd, 2.0f);
    std::vector<float> slopes = mpt_slopes(c.H), sl(c.H);
    for (auto &x : sl) x = rng.normal() * 2.0f;

    auto reference = [&](int n, std::vector<double> &out, std::vector<double> &probs) {
        out.assign((size_t)c.H * hd, 0.0);
        probs.assign((size_t)c.H * n, 0.0);
        for (int h = 0; h < c.H; h++) {
            const int g = h / G;
            std::vector<double> sc(n, -INFINITY);
            const bool extra = c.softmax != SBK_SOFTMAX_STANDARD;
            const double ex = c.softmax == SBK_SOFTMAX_SINK_LOGIT ? sl[h] : 0.0;
            double m = extra ? ex : -INFINITY;
            for (int i = 0; i < n; i++) {
                const int64_t dist = query_pos - pos[i];
                if (dist > c.max_dist) continue;
                double d = 0;
                for (int e = 0; e < hd; e++) d += (double)q[h * hd + e] * k[slots[i] * kvd + g * hd + e];
                sc[i] = d / sqrt((double)hd) - (c.alibi ? slopes[h] * (double)dist : 0.0);
                m = std::max(m, sc[i]);
            }
            double den = extra ? exp(ex - m) : 0.0;
            for (int i = 0; i < n; i++)
                if (sc[i] > -INFINITY) den += exp(sc[i] - m);
            for (int i = 0; i < n; i++) {
                double p = sc[i] > -INFINITY && den > 0 ? exp(sc[i] - m) / den : 0.0;
                probs[(size_t)h * n + i] = p;
                for (int e = 0; e < hd; e++) out[h * hd + e] += p * v[slots[i] * kvd + g * hd + e];
            }
        }
    };

    DBuf dq, dk, dv, dslots, dpos, dqp, dn, dout((size_t)c.H * hd * 4), dout16((size_t)c.H * hd * 2),
        dprobs((size_t)c.H * n_max * 4 + 16),
        dscr(sbk_decode_attention_scratch(c.H, hd, n_max) * 4);
    upload_vec(dq, q);
    upload_dt(dk, k, dt);
    upload_dt(dv, v, dt);
    upload_vec(dslots, slots);
    upload_vec(dpos, pos);
    std::vector<int64_t> qpv = {query_pos};
    upload_vec(dqp, qpv);
    std::vector<int> nv = {c.n};
    upload_vec(dn, nv);
    dout.poison();
    dout16.poison();
    dprobs.poison();
    dscr.poison();
    DBuf dsl, dal;
    upload_vec(dsl, sl);
    upload_vec(dal, slopes);
    float *dsl_ptr = dsl.as<float>(), *dal_ptr = dal.as<float>();
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto launch = [&]() {
        if (variant == 2)
            sbk_decode_attention_to(nullptr, dout16.p, SBK_BF16, c.probs ? dprobs.as<float>() : nullptr, dq.as<float>(),
                                    dk.p, dv.p, dslots.as<int32_t>(), dpos.as<int64_t>(), dqp.as<int64_t>(), dn.as<int>(),
                                    n_max, dscr.as<float>(), c.H, c.KV, hd, c.max_dist, c.softmax, dsl_ptr,
                                    c.alibi ? dal_ptr : nullptr, dt, s);
        else
            sbk_decode_attention(dout.as<float>(), c.probs ? dprobs.as<float>() : nullptr, dq.as<float>(), dk.p, dv.p,
                                 dslots.as<int32_t>(), dpos.as<int64_t>(), dqp.as<int64_t>(), dn.as<int>(), n_max,
                                 dscr.as<float>(), c.H, c.KV, hd, c.max_dist, c.softmax, dsl_ptr,
                                 c.alibi ? dal_ptr : nullptr, dt, s);
    };
    int n_check = c.n;
    bool same_rerun = true;
    if (!graph) {
        launch();
        CK(cudaGetLastError());
        CK(cudaStreamSynchronize(s));
        /* a second launch on the same inputs: the same bytes (fixed split and merge order) */
        if ((variant == 0 || variant >= 3) && !c.probs) {
            const auto first = dout.download();
            dout.poison();
            launch();
            CK(cudaGetLastError());
            CK(cudaStreamSynchronize(s));
            same_rerun = dout.download() == first;
        }
    } else {
        /* capture once at n, run, then let the cache grow (n += 9) and replay the same graph */
        cudaGraph_t gr;
        cudaGraphExec_t ex;
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        launch();
        CK(cudaGetLastError());
        CK(cudaStreamEndCapture(s, &gr));
        CK(cudaGraphInstantiate(&ex, gr, 0));
        CK(cudaGraphLaunch(ex, s));
        CK(cudaStreamSynchronize(s));
        n_check = std::min(c.n + 9, (int)slots.size());
        nv[0] = n_check;
        dn.upload(nv.data(), sizeof(int));
        dout.poison();
        dout16.poison();
        dprobs.poison();
        CK(cudaGraphLaunch(ex, s));
        CK(cudaStreamSynchronize(s));
        CK(cudaGraphExecDestroy(ex));
        CK(cudaGraphDestroy(gr));
    }
    CK(cudaStreamDestroy(s));
    sbk_set_legacy(0);
    sbk_decode_config(0);
    std::vector<double> ref_out, ref_probs;
    reference(n_check, ref_out, ref_probs);
    /* the bf16 output adds its rounding (2^-9 relative) */
    const double tol = variant == 2 ? 1e-2 : dt == SBK_F32 ? 1e-5 : 1e-2;
    Err e = compare(variant == 2 ? from_bytes(dout16.download(), SBK_BF16) : download_f32(dout), ref_out);
    bool ok = err_ok(e, tol) && same_rerun;
    char msg[320];
    snprintf(msg, sizeof msg, "out " ERR_FMT "%s", ERR_ARGS(e, tol), same_rerun ? "" : "; a rerun gave other bytes");
    if (c.probs) {
        auto pr = download_f32(dprobs);
        pr.resize((size_t)c.H * n_check);
        Err ep = compare(pr, ref_probs);
        ok = ok && err_ok(ep, 1e-5);
        size_t l = strlen(msg);
        snprintf(msg + l, sizeof msg - l, "; probs " ERR_FMT, ERR_ARGS(ep, 1e-5));
    }
    report(name, ok, "%s", msg);
}

static void test_decode() {
    /* the default kernel splits the keys in blocks of 64 (8 groups of 8 keys, batches of 4):
     * n = 63, 64, 65, 127, 129, 2048 sit at or next to those boundaries */
    const DecCase cases[] = {
        {"n=1 H=4 KV=4 hd=64", 4, 4, 64, 1, 8, NO_MAX, 0, false, true, false},
        {"n=37 GQA H=8 KV=2 hd=64", 8, 2, 64, 37, 50, NO_MAX, 0, false, true, false},
        {"n=4096 H=32 KV=32 hd=128", 32, 32, 128, 4096, 4100, NO_MAX, 0, false, false, false},
        {"n=1000 MQA H=8 KV=1 hd=128 probs", 8, 1, 128, 1000, 1200, NO_MAX, 0, false, true, false},
        {"n=300 max_dist=150 ALiBi", 8, 4, 64, 300, 400, 150, 0, true, true, false},
        {"n=257 off-by-one hd=80", 4, 2, 80, 257, 300, NO_MAX, 1, false, true, false},
        {"n=129 sink-logit hd=128", 4, 4, 128, 129, 200, NO_MAX, 2, false, true, false},
        {"n=50 hd=8 (scalar loads)", 2, 1, 8, 50, 60, NO_MAX, 0, false, true, false},
        {"n=70 hd=36 (scalar loads) sink-logit+ALiBi", 4, 2, 36, 70, 90, NO_MAX, 2, true, true, false},
        {"n=0 (empty cache) off-by-one", 4, 2, 64, 0, 8, NO_MAX, 1, false, true, false},
        {"n=200 hd=256", 2, 2, 256, 200, 256, NO_MAX, 0, false, true, false},
        {"n=64 (one full split) hd=128", 4, 4, 128, 64, 80, NO_MAX, 0, false, true, false},
        {"n=65 (one key in split 2) GQA H=8 KV=2 hd=128 sink-logit", 8, 2, 128, 65, 100, NO_MAX, 2, false, true, false},
        {"n=63 off-by-one hd=128", 4, 4, 128, 63, 70, NO_MAX, 1, false, true, false},
        {"n=127 GQA H=8 KV=4 hd=96 ALiBi", 8, 4, 96, 127, 140, NO_MAX, 0, true, true, false},
        {"n=2048 H=32 KV=32 hd=128 probs (Llama-2-7B)", 32, 32, 128, 2048, 2100, NO_MAX, 0, false, true, false},
        {"n=2048 H=32 KV=32 hd=128 (Llama-2-7B)", 32, 32, 128, 2048, 2048, NO_MAX, 0, false, false, false},
        {"n=700 max_dist=100 ordered (whole splits masked) sink-logit", 4, 2, 128, 700, 720, 100, 2, false, true, true},
        {"n=300 max_dist=40 ordered off-by-one ALiBi", 4, 4, 64, 300, 320, 40, 1, true, true, true},
        {"n=90 max_dist=-1 (no key visible) sink-logit", 4, 4, 128, 90, 100, -1, 2, false, true, true},
    };
    uint64_t seed = 300;
    for (const DecCase &c : cases) {
        for (int variant : {0, 1, 3, 4}) {
            run_decode_case(c, SBK_F32, seed, false, variant);
            run_decode_case(c, SBK_BF16, seed, false, variant);
        }
        seed++;
    }
    run_decode_case(cases[1], SBK_F16, 400, false);
    run_decode_case(cases[3], SBK_F16, 401, false);
    run_decode_case(cases[12], SBK_F16, 404, false);
    run_decode_case(cases[1], SBK_F32, 402, true);
    run_decode_case(cases[4], SBK_BF16, 403, true);
    run_decode_case(cases[15], SBK_BF16, 405, true);
    run_decode_case(cases[15], SBK_BF16, 410, true, 3);
    run_decode_case(cases[13], SBK_BF16, 411, true, 4);
    run_decode_case(cases[16], SBK_BF16, 406, true, 1);
    /* the converted output the decode step uses */
    run_decode_case(cases[16], SBK_BF16, 407, false, 2);
    run_decode_case(cases[4], SBK_BF16, 408, true, 2);
    run_decode_case(cases[8], SBK_F16, 409, false, 2);
}

/* ------------------------------------------------------------ loss, argmax */

static void test_loss() {
    Rng rng(8);
    for (int V : {37, 256000}) {
        const int T = 6;
        const size_t ldl = (size_t)V + 5;
        std::string name = "nll V=" + std::to_string(V) + " T=6 (targets -1 and V give NaN)";
        if (!selected(name)) continue;
        std::vector<float> lg = rng.normals((size_t)T * ldl, 3.0f);
        std::vector<int32_t> tg = {0, V - 1, V / 2, -1, V, 3};
        std::vector<double> ref(T);
        for (int t = 0; t < T; t++) {
            const float *x = &lg[t * ldl];
            if (tg[t] < 0 || tg[t] >= V) {
                ref[t] = NAN;
                continue;
            }
            float m = x[0];
            for (int i = 1; i < V; i++) m = std::max(m, x[i]);
            double s = 0;
            for (int i = 0; i < V; i++) s += exp((double)x[i] - m);
            ref[t] = log(s) + m - (double)x[tg[t]];
        }
        DBuf dl, dt, dn(T * 4);
        upload_vec(dl, lg);
        upload_vec(dt, tg);
        dn.poison();
        sbk_nll(dn.as<float>(), dl.as<float>(), ldl, dt.as<int32_t>(), T, V, 0);
        SYNC_CHECK();
        Err e = compare(download_f32(dn), ref);
        report(name, err_ok(e, 1e-6), ERR_FMT, ERR_ARGS(e, 1e-6));
    }
    for (int variant = 0; variant < 4; variant++) {
        const int V = variant == 3 ? 1 : 256000;
        const char *vn[4] = {"random", "tie (first wins)", "NaNs skipped", "V=1"};
        std::string name = std::string("argmax V=") + std::to_string(V) + " " + vn[variant];
        if (!selected(name)) continue;
        std::vector<float> x = rng.normals(V);
        int want = 0;
        if (variant == 1) {
            x[1000] = 50.0f, x[200000] = 50.0f, x[77] = 50.0f;
        }
        if (variant == 2) {
            x[5] = NAN, x[9] = 60.0f, x[100] = NAN;
        }
        for (int i = 1; i < V; i++)
            if (x[i] > x[want] || (std::isnan(x[want]) && !std::isnan(x[i]))) want = i;
        DBuf dx, dout(4);
        upload_vec(dx, x);
        dout.poison();
        sbk_argmax(dout.as<int32_t>(), dx.as<float>(), V, 0);
        SYNC_CHECK();
        int32_t got;
        CK(cudaMemcpy(&got, dout.p, 4, cudaMemcpyDeviceToHost));
        report(name, got == want, "got %d want %d", got, want);
    }
}

/* ------------------------------------------------------------ bench */

static double median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

template <typename F> static double time_ms(F &&launch, int warm, int reps) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < warm; i++) launch();
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    std::vector<float> ms;
    for (int i = 0; i < reps; i++) {
        CK(cudaEventRecord(a));
        launch();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float t;
        CK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
    }
    CK(cudaGetLastError());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return median(ms);
}

static void bench() {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    Rng rng(9);
    for (int64_t W : {(int64_t)4092, (int64_t)2044})
        for (sbk_dtype dt : {SBK_BF16, SBK_F16, SBK_F32}) {
            const int H = 32, KV = 32, hd = 128, T = 2048;
            const int64_t K = 4, cap = W + T, pos0 = 100000; /* every query sees 4 sinks + W + 1 band keys */
            const size_t kvd = (size_t)KV * hd;
            DBuf q, bk, bv, sk, sv, out((size_t)T * H * hd * dsize(dt));
            upload_dt(q, rng.normals((size_t)T * H * hd), dt);
            upload_dt(bk, rng.normals((size_t)cap * kvd), dt);
            upload_dt(bv, rng.normals((size_t)cap * kvd), dt);
            upload_dt(sk, rng.normals((size_t)K * kvd), dt);
            upload_dt(sv, rng.normals((size_t)K * kvd), dt);
            auto launch = [&]() {
                sbk_band_attention(out.p, dt, (size_t)H * hd, q.p, q.p, (size_t)H * hd, bk.p, bv.p, cap, sk.p, sv.p,
                                   (int)K, K, W, pos0, T, NO_MAX, H, KV, hd, 0, nullptr, nullptr, dt, 0);
            };
            const int reps = dt == SBK_F32 ? 3 : 20;
            const double ms = time_ms(launch, dt == SBK_F32 ? 1 : 3, reps);
            const double keys = (double)(K + W + 1);
            const double flops = 4.0 * hd * keys * T * H;
            const double bytes = (double)dsize(dt) * ((double)T * H * hd * 2 + (double)(W + T + K) * kvd * 2);
            printf("{\"bench\":\"band_attention\",\"dtype\":\"%s\",\"H\":%d,\"KV\":%d,\"hd\":%d,\"T\":%d,\"W\":%lld,"
                   "\"K\":%lld,\"band_cap\":%lld,\"median_ms\":%.4f,\"reps\":%d,\"tflops\":%.2f,\"gbps\":%.1f,"
                   "\"device\":\"%s\"}\n",
                   dt_name(dt), H, KV, hd, T, (long long)W, (long long)K, (long long)cap, ms, reps,
                   flops / ms * 1e-9, bytes / ms * 1e-6, prop.name);
            fflush(stdout);
        }
    /* decode attention at the Llama-2-7B shape, the StreamingLLM caches 4+2044 and 4+4092: the
     * default and the legacy kernels, with and without the observer's probabilities. NSET
     * caches (distinct slot ranges of one buffer) are rotated so that the 2048-key case (34 MB
     * per layer) is not served from L2; bytes = K and V of the n keys of every head. */
    for (int n : {2048, 4096})
        for (sbk_dtype dt : {SBK_BF16, SBK_F32})
            for (int variant : {0, 1, 3, 4})
                for (bool with_probs : {false, true}) {
                    if (dt == SBK_F32 && with_probs) continue;
                    if (variant >= 3 && (dt == SBK_F32 || with_probs)) continue;
                    const int H = 32, KV = 32, hd = 128, NSET = 4;
                    const size_t kvd = (size_t)KV * hd;
                    std::vector<int32_t> slots((size_t)NSET * n);
                    std::vector<int64_t> pos(n);
                    for (size_t i = 0; i < slots.size(); i++) slots[i] = (int32_t)i;
                    for (int i = 0; i < n; i++) pos[i] = i;
                    DBuf q, k, v, ds, dp, dqp, dn, out((size_t)H * hd * 4), probs((size_t)H * n * 4),
                        scr(sbk_decode_attention_scratch(H, hd, n) * 4);
                    upload_vec(q, rng.normals((size_t)H * hd));
                    upload_dt(k, rng.normals((size_t)NSET * n * kvd), dt);
                    upload_dt(v, rng.normals((size_t)NSET * n * kvd), dt);
                    upload_vec(ds, slots);
                    upload_vec(dp, pos);
                    std::vector<int64_t> qp = {n - 1};
                    std::vector<int> nn = {n};
                    upload_vec(dqp, qp);
                    upload_vec(dn, nn);
                    int set = 0;
                    sbk_set_legacy(variant == 1 ? SBK_LEGACY_DECODE_ATTENTION : 0);
                    sbk_decode_config(variant == 3 ? 1 : variant == 4 ? 2 : 0);
                    auto launch = [&]() {
                        sbk_decode_attention(out.as<float>(), with_probs ? probs.as<float>() : nullptr, q.as<float>(),
                                             k.p, v.p, ds.as<int32_t>() + (size_t)set * n, dp.as<int64_t>(),
                                             dqp.as<int64_t>(), dn.as<int>(), n, scr.as<float>(), H, KV, hd, NO_MAX, 0,
                                             nullptr, nullptr, dt, 0);
                        set = (set + 1) % NSET;
                    };
                    /* 10 launches back to back per timing, as in the decode step's graph */
                    const double ms = time_ms([&]() { for (int r = 0; r < 10; r++) launch(); }, 2, 20) / 10;
                    sbk_set_legacy(0);
                    sbk_decode_config(0);
                    const double flops = 4.0 * hd * n * H, bytes = (double)n * kvd * 2 * dsize(dt);
                    printf("{\"bench\":\"decode_attention\",\"kernel\":\"%s\",\"dtype\":\"%s\",\"H\":%d,\"KV\":%d,"
                           "\"hd\":%d,\"n\":%d,\"probs\":%s,\"median_ms\":%.4f,\"reps\":\"20x10\",\"tflops\":%.3f,"
                           "\"gbps\":%.1f,\"ms_per_token_32_layers\":%.3f,\"device\":\"%s\"}\n",
                           variant == 1 ? "legacy" : variant == 3 ? "split128" : variant == 4 ? "split128u8" : "split",
                           dt_name(dt), H, KV, hd, n, with_probs ? "true" : "false", ms,
                           flops / ms * 1e-9, bytes / ms * 1e-6, 32 * ms, prop.name);
                    fflush(stdout);
                }
    /* one-row matmuls at the Llama-2-7B shapes: bytes of weights over the time, every block
     * shape of the default kernel and the legacy one. Enough copies of the matrix are rotated
     * that at least 256 MB are streamed between two reads of one copy (L2: 50 MB). */
    struct { const char *name; int C, OC; } gs[] = {{"qkv", 4096, 12288}, {"o", 4096, 4096}, {"gate_up", 4096, 22016},
                                                    {"down", 11008, 4096}, {"lm_head", 4096, 32000}};
    const int cfgs[] = {0, 22, 24, 42, 44, 46, 82, -1};
    double tot_ms[8] = {0};
    for (auto g : gs) {
        const size_t wbytes = (size_t)g.OC * g.C * 2;
        const int copies = (int)std::min<size_t>(16, std::max<size_t>(1, ((size_t)256 << 20) / wbytes + 1));
        DBuf w(wbytes * copies), x((size_t)g.C * 2), y((size_t)g.OC * 4);
        {
            auto h = to_bytes(rng.normals((size_t)g.OC * g.C, 0.02f), SBK_BF16);
            for (int c = 0; c < copies; c++) CK(cudaMemcpy((char *)w.p + c * wbytes, h.data(), wbytes, cudaMemcpyHostToDevice));
        }
        upload_dt(x, rng.normals((size_t)g.C), SBK_BF16);
        for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
            const int cfg = cfgs[ci];
            sbk_set_legacy(cfg < 0 ? SBK_LEGACY_GEMV : 0);
            sbk_gemv_config(cfg < 0 ? 0 : cfg);
            int c = 0;
            auto launch = [&]() {
                sbk_gemv(y.as<float>(), (const char *)w.p + (size_t)c * wbytes, x.p, SBK_BF16, g.C, g.OC, 0.0f, 0);
                c = (c + 1) % copies;
            };
            const double ms = time_ms([&]() { for (int r = 0; r < 10; r++) launch(); }, 2, 20) / 10;
            /* per layer: qkv + o + gate_up + down; the head once */
            tot_ms[ci] += strcmp(g.name, "lm_head") ? 32 * ms : ms;
            char kern[16];
            snprintf(kern, sizeof kern, "%s", cfg < 0 ? "legacy" : cfg ? std::to_string(cfg).c_str() : "default");
            printf("{\"bench\":\"gemv\",\"kernel\":\"%s\",\"name\":\"%s\",\"dtype\":\"bf16\",\"C\":%d,\"OC\":%d,"
                   "\"copies\":%d,\"reps\":\"20x10\",\"median_ms\":%.4f,\"gbps\":%.1f,\"device\":\"%s\"}\n",
                   kern, g.name, g.C, g.OC, copies, ms, (double)wbytes / ms * 1e-6, prop.name);
            fflush(stdout);
        }
    }
    sbk_set_legacy(0);
    sbk_gemv_config(0);
    /* the matmuls of one 7B token (32 layers + head, 13.48 GB incl. the head) per block shape */
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const int cfg = cfgs[ci];
        printf("{\"bench\":\"gemv_token\",\"kernel\":\"%s\",\"ms_per_token\":%.3f,\"gbps\":%.1f,\"device\":\"%s\"}\n",
               cfg < 0 ? "legacy" : cfg ? std::to_string(cfg).c_str() : "default", tot_ms[ci],
               (32.0 * 2 * (12288.0 * 4096 + 4096.0 * 4096 + 22016.0 * 4096 + 4096.0 * 11008) + 2 * 32000.0 * 4096) /
                   tot_ms[ci] * 1e-6,
               prop.name);
    }
    fflush(stdout);
}


/* ------------------------------------------------------------ one-row matmul */

static void test_gemv() {
    Rng rng(31);
    /* every block shape of the default kernel (sbk_gemv_config) and the legacy kernel; the
     * shapes cover rows past OC in the last block (OC % R != 0), rows shorter than one batch
     * (C = 8), a partial last batch (C = 4104, 11008, 12296) and the 7B shapes */
    struct { int C, OC; } shapes[] = {{8, 1},       {16, 37},     {264, 5},      {384, 4096}, {4104, 7},
                                      {4096, 12288}, {11008, 4096}, {12296, 3}, {4096, 22016}};
    const int cfgs[] = {0, 22, 24, 42, 44, 46, 82, -1}; /* -1: legacy */
    for (auto sh : shapes)
        for (sbk_dtype dt : {SBK_BF16, SBK_F16})
            for (float beta : {0.0f, 1.0f}) {
                char base[96];
                snprintf(base, sizeof base, "gemv %s C=%d OC=%d beta=%g", dt_name(dt), sh.C, sh.OC, beta);
                bool any = false;
                for (int cfg : cfgs) {
                    std::string name = std::string(base) + (cfg < 0 ? " [legacy]" : cfg ? " [RU=" + std::to_string(cfg) + "]" : "");
                    any = any || selected(name);
                }
                if (!any) continue;
                auto w = round_vec(rng.normals((size_t)sh.OC * sh.C, 0.05f), dt);
                auto x = round_vec(rng.normals((size_t)sh.C), dt);
                auto y0 = rng.normals((size_t)sh.OC);
                DBuf dw, dx, dy;
                upload_dt(dw, w, dt);
                upload_dt(dx, x, dt);
                std::vector<double> ref(sh.OC);
                for (int o = 0; o < sh.OC; o++) {
                    double a = beta != 0.0f ? (double)beta * y0[o] : 0.0;
                    for (int c = 0; c < sh.C; c++) a += (double)w[(size_t)o * sh.C + c] * x[c];
                    ref[o] = a;
                }
                if (!sbk_gemv_ok(dt, dw.p, dx.p, sh.C)) {
                    report(base, false, "sbk_gemv_ok refused an aligned call");
                    continue;
                }
                for (int cfg : cfgs) {
                    std::string name = std::string(base) + (cfg < 0 ? " [legacy]" : cfg ? " [RU=" + std::to_string(cfg) + "]" : "");
                    if (!selected(name)) continue;
                    sbk_set_legacy(cfg < 0 ? SBK_LEGACY_GEMV : 0);
                    sbk_gemv_config(cfg < 0 ? 0 : cfg);
                    upload_vec(dy, beta != 0.0f ? y0 : std::vector<float>(sh.OC, NAN));
                    sbk_gemv(dy.as<float>(), dw.p, dx.p, dt, sh.C, sh.OC, beta, 0);
                    CK(cudaGetLastError());
                    const auto first = dy.download();
                    /* the same bytes again (a fixed summation order) */
                    upload_vec(dy, beta != 0.0f ? y0 : std::vector<float>(sh.OC, NAN));
                    sbk_gemv(dy.as<float>(), dw.p, dx.p, dt, sh.C, sh.OC, beta, 0);
                    CK(cudaGetLastError());
                    const bool same = dy.download() == first;
                    Err e = compare(download_f32(dy), ref);
                    report(name, err_ok(e, 1e-5) && same, ERR_FMT "%s", ERR_ARGS(e, 1e-5),
                           same ? "" : "; a rerun gave other bytes");
                }
                sbk_set_legacy(0);
                sbk_gemv_config(0);
            }
    /* what it refuses: f32, C not a multiple of 8, unaligned pointers */
    DBuf a(64), b(64);
    bool refuse = !sbk_gemv_ok(SBK_F32, a.p, b.p, 8) && !sbk_gemv_ok(SBK_BF16, a.p, b.p, 12) &&
                  !sbk_gemv_ok(SBK_BF16, (char *)a.p + 2, b.p, 8) && sbk_gemv_ok(SBK_BF16, a.p, b.p, 8);
    report("gemv preconditions", refuse, "f32, C %% 8 != 0 and misaligned pointers refused");
}

/* ------------------------------------------------------------ programmatic dependent launch */

/* A decode-like chain of the kernels launched with launch_pdl (norm, one-row matmuls, GLU; the
 * decode attention's pair is in the decode cases above), 7B-sized so that kernels overlap:
 * with PDL on, direct launches and a graph launched 20 times must give the bytes of the chain
 * with PDL off. A kernel that read its input before its wait would show as a difference. */
static void test_pdl_chain() {
    std::string name = "pdl decode chain (norm, gemv, glu, gemv += x) x 4 layers == no pdl";
    if (!selected(name)) return;
    const int C = 4096, F = 11008, L = 4;
    Rng rng(91);
    std::vector<DBuf> wgu(L), wdn(L);
    for (int l = 0; l < L; l++) {
        upload_dt(wgu[l], rng.normals((size_t)2 * F * C, 0.02f), SBK_BF16);
        upload_dt(wdn[l], rng.normals((size_t)C * F, 0.02f), SBK_BF16);
    }
    const auto x0 = rng.normals((size_t)C);
    DBuf x((size_t)C * 4), xinit((size_t)C * 4), nw((size_t)C * 4), xb((size_t)C * 2), gu((size_t)2 * F * 4),
        hb((size_t)F * 2);
    xinit.upload(x0.data(), (size_t)C * 4);
    upload_vec(nw, std::vector<float>(C, 1.0f));
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    auto chain = [&]() {
        CK(cudaMemcpyAsync(x.p, xinit.p, (size_t)C * 4, cudaMemcpyDeviceToDevice, s));
        for (int l = 0; l < L; l++) {
            sbk_norm(nullptr, xb.p, SBK_BF16, x.as<float>(), nw.as<float>(), nullptr, 0, 1e-5f, 1, C, s);
            sbk_gemv(gu.as<float>(), wgu[l].p, xb.p, SBK_BF16, C, 2 * F, 0.0f, s);
            sbk_glu_fused(hb.p, SBK_BF16, gu.as<float>(), 1, F, 0, s);
            sbk_gemv(x.as<float>(), wdn[l].p, hb.p, SBK_BF16, F, C, 1.0f, s);
        }
    };
    sbk_set_legacy(SBK_LEGACY_NO_PDL);
    chain();
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(s));
    const auto ref = x.download();
    sbk_set_legacy(0);
    const bool pdl = sbk_pdl_on() != 0;
    bool same = true;
    for (int rep = 0; rep < 20; rep++) {
        chain();
        CK(cudaGetLastError());
        CK(cudaStreamSynchronize(s));
        same = same && x.download() == ref;
    }
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    chain();
    CK(cudaGetLastError());
    CK(cudaStreamEndCapture(s, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    bool gsame = true;
    for (int rep = 0; rep < 20; rep++) {
        CK(cudaGraphLaunch(exec, s));
        CK(cudaStreamSynchronize(s));
        gsame = gsame && x.download() == ref;
    }
    report(name, same && gsame, "pdl %s; direct x20 %s, graph x20 %s", pdl ? "on" : "off (device before sm_90)",
           same ? "identical" : "DIFFER", gsame ? "identical" : "DIFFER");
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
    CK(cudaStreamDestroy(s));
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv) {
    bool do_bench = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench"))
            do_bench = true;
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            g_filter = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--bench] [--filter SUBSTRING]\n", argv[0]);
            return 2;
        }
    }
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (e != cudaSuccess || ndev == 0) {
        printf("FAIL  no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "count 0");
        g_fail++;
        summary_and_exit(1);
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("# device 0: %s, sm_%d%d, %d SMs\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    CK(sbk_init());
    if (do_bench) {
        bench();
        return 0;
    }
    test_convert();
    test_embed();
    test_store_rows();
    test_norm();
    test_elementwise();
    test_rope();
    test_band();
    test_band_graph();
    test_decode_qkv_store();
    test_decode();
    test_gemv();
    test_pdl_chain();
    test_loss();
    summary_and_exit(g_fail ? 1 : 0);
}
