/* Which kernel variants run (engine/cuda/kernels.h sbk_legacy): the newer decode attention
 * and one-row matmul by default, the legacy ones when asked for, so a regression can be
 * compared in one run; and whether decode kernels use programmatic dependent launch. Host
 * code only. */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "engine/cuda/kernels.h"

static int g_set = 0;
static unsigned g_mask = 0;

static unsigned from_env(void) {
    const char *e = getenv("SINKBENCH_CUDA_LEGACY");
    if (!e) return 0;
    unsigned m = 0;
    if (strstr(e, "all")) m |= SBK_LEGACY_DECODE_ATTENTION | SBK_LEGACY_GEMV | SBK_LEGACY_NO_PDL;
    if (strstr(e, "attn")) m |= SBK_LEGACY_DECODE_ATTENTION;
    if (strstr(e, "gemv")) m |= SBK_LEGACY_GEMV;
    if (strstr(e, "pdl")) m |= SBK_LEGACY_NO_PDL;
    return m;
}

extern "C" unsigned sbk_legacy(void) {
    if (!g_set) {
        g_mask = from_env();
        g_set = 1;
    }
    return g_mask;
}

extern "C" void sbk_set_legacy(unsigned mask) {
    g_mask = mask & (SBK_LEGACY_DECODE_ATTENTION | SBK_LEGACY_GEMV | SBK_LEGACY_NO_PDL);
    g_set = 1;
}

static int g_cc_major = -1; /* of the device current at the first call */

extern "C" int sbk_pdl_on(void) {
    if (g_cc_major < 0) {
        int dev = 0, major = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
            major = 0;
        g_cc_major = major;
    }
    return g_cc_major >= 9 && !(sbk_legacy() & SBK_LEGACY_NO_PDL);
}
