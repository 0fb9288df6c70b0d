/* Error checks of the host-side CUDA code (the cuda backend, the GPU trainer): a failed CUDA
 * or cuBLAS call becomes one sb_error line naming the call, the file and the line, and the
 * enclosing function returns it. C only; include after engine/common.h and the CUDA headers. */
#ifndef SB_CUDA_CHECK_H
#define SB_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/common.h"

static inline int sb_cuda_fail(cudaError_t e, const char *what, const char *file, int line) {
    cudaGetLastError(); /* a failed call also sets the sticky last error: clear it for the next check */
    return sb_error("cuda: %s: %s (%s:%d)", what, cudaGetErrorString(e), file, line);
}

#define CK(call)                                                                                                     \
    do {                                                                                                             \
        cudaError_t e_ = (call);                                                                                     \
        if (e_ != cudaSuccess) return sb_cuda_fail(e_, #call, __FILE__, __LINE__);                                   \
    } while (0)
#define CB(call)                                                                                                     \
    do {                                                                                                             \
        cublasStatus_t s_ = (call);                                                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                             \
            return sb_error("cublas: %s: status %d (%s:%d)", #call, (int)s_, __FILE__, __LINE__);                   \
    } while (0)
/* after a batch of kernel launches */
#define CL() CK(cudaGetLastError())

#endif
