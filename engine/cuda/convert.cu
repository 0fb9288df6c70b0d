/* Type conversion, embedding lookup and row stores into caches (engine/cuda/kernels.h). */
#include <math.h>

#include "engine/cuda/common.cuh"

using namespace sbk;

extern "C" size_t sbk_dtype_size(sbk_dtype dt) { return dt == SBK_F32 ? 4 : 2; }

/* Elementwise conversion; each thread handles elements i = tid + k*stride. */
__global__ void convert_kernel(void *out, sbk_dtype odt, const void *in, sbk_dtype idt, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        if (odt == idt) {
            if (odt == SBK_F32)
                ((float *)out)[i] = ((const float *)in)[i];
            else
                ((uint16_t *)out)[i] = ((const uint16_t *)in)[i];
        } else {
            store_from_f32(out, odt, i, load_as_f32(in, idt, i));
        }
    }
}

extern "C" void sbk_convert(void *out, sbk_dtype odt, const void *in, sbk_dtype idt, size_t n, cudaStream_t s) {
    if (n == 0) return;
    if (out == in && odt == idt) return;
    convert_kernel<<<grid_for(n, 256), 256, 0, s>>>(out, odt, in, idt, n);
}

/* One block per row t. */
__global__ void embed_kernel(float *out, const void *table, sbk_dtype tdt, const int32_t *ids, int C, int V) {
    const int t = blockIdx.x;
    const int32_t id = ids[t];
    float *o = out + (size_t)t * C;
    if (id < 0 || id >= V) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = __int_as_float(0x7fc00000);
        return;
    }
    const size_t base = (size_t)id * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = load_as_f32(table, tdt, base + c);
}

extern "C" void sbk_embed(float *out, const void *table, sbk_dtype tdt, const int32_t *ids, int T, int C, int V,
                          cudaStream_t s) {
    if (T <= 0 || C <= 0) return;
    embed_kernel<<<T, 256, 0, s>>>(out, table, tdt, ids, C, V);
}

/* Block (x: column chunk, y: row); destination row from dst_rows, the ring, or t. */
__global__ void store_rows_kernel(void *dst, sbk_dtype ddt, size_t dst_stride, const int64_t *dst_rows, int64_t cap,
                                  int64_t pos0, int ring, const float *src, size_t src_stride, int cols) {
    const int t = blockIdx.y;
    int64_t r;
    if (ring)
        r = (pos0 + t) % cap;
    else
        r = dst_rows ? dst_rows[t] : t;
    const float *srow = src + (size_t)t * src_stride;
    const size_t dbase = (size_t)r * dst_stride;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x)
        store_from_f32(dst, ddt, dbase + c, srow[c]);
}

static void store_rows_launch(void *dst, sbk_dtype ddt, size_t dst_stride, const int64_t *dst_rows, int64_t cap,
                              int64_t pos0, int ring, const float *src, size_t src_stride, int rows, int cols,
                              cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return;
    unsigned bx = (unsigned)((cols + 255) / 256);
    if (bx > 64) bx = 64;
    /* rows beyond the 65535 limit of grid.y go in several launches */
    for (int r0 = 0; r0 < rows; r0 += 65535) {
        int nr = rows - r0 < 65535 ? rows - r0 : 65535;
        dim3 grid(bx, (unsigned)nr);
        store_rows_kernel<<<grid, 256, 0, s>>>(dst, ddt, dst_stride, dst_rows ? dst_rows + r0 : nullptr, cap,
                                               pos0 + r0, ring, src + (size_t)r0 * src_stride, src_stride, cols);
        if (!ring && !dst_rows) dst = (char *)dst + (size_t)65535 * dst_stride * sbk_dtype_size(ddt);
    }
}

extern "C" void sbk_store_rows(void *dst, sbk_dtype ddt, size_t dst_stride, const int64_t *dst_rows, const float *src,
                               size_t src_stride, int rows, int cols, cudaStream_t s) {
    store_rows_launch(dst, ddt, dst_stride, dst_rows, 1, 0, 0, src, src_stride, rows, cols, s);
}

extern "C" void sbk_store_rows_ring(void *dst, sbk_dtype ddt, size_t dst_stride, int64_t cap, int64_t pos0,
                                    const float *src, size_t src_stride, int rows, int cols, cudaStream_t s) {
    if (cap < 1) return;
    store_rows_launch(dst, ddt, dst_stride, nullptr, cap, pos0, 1, src, src_stride, rows, cols, s);
}
