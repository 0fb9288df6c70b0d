#include "util/memcheck.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "engine/common.h"

/* A "Key: N kB" line of a /proc file, in bytes; 0 when absent. */
static uint64_t proc_kb(const char *file, const char *key) {
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key);
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && sscanf(line + klen, " %" SCNu64, &kb) == 1) break;
    fclose(f);
    return kb > UINT64_MAX / 1024 ? UINT64_MAX : kb * 1024;
}

uint64_t sb_mem_available(const char **source) {
    const char *src = "available memory";
    uint64_t avail = proc_kb("/proc/meminfo", "MemAvailable:");
    if (!avail) avail = UINT64_MAX; /* unknown: no limit */
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        uint64_t used = proc_kb("/proc/self/status", "VmSize:");
        uint64_t left = (uint64_t)rl.rlim_cur > used ? (uint64_t)rl.rlim_cur - used : 0;
        if (left < avail) {
            avail = left;
            src = "ulimit -v";
        }
    }
    if (source) *source = src;
    return avail;
}

uint64_t sb_mem_total(const sb_mem_part *parts, int n) {
    uint64_t t = 0;
    for (int i = 0; i < n; i++)
        if (__builtin_add_overflow(t, parts[i].bytes, &t)) return UINT64_MAX;
    return t;
}

void sb_mem_format(char *buf, int cap, uint64_t b) {
    if (b == UINT64_MAX) snprintf(buf, (size_t)cap, "more than 16 EiB");
    else if (b >= (1ull << 30)) snprintf(buf, (size_t)cap, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, (size_t)cap, "%.1f MiB", (double)b / (1ull << 20));
    else if (b >= (1ull << 10)) snprintf(buf, (size_t)cap, "%.1f KiB", (double)b / (1ull << 10));
    else snprintf(buf, (size_t)cap, "%" PRIu64 " B", b);
}

int sb_mem_check(const char *what, const sb_mem_part *parts, int n, uint64_t max_memory) {
    const char *src = "--max-memory";
    uint64_t limit = max_memory ? max_memory : sb_mem_available(&src);
    uint64_t need = sb_mem_total(parts, n);
    if (need <= limit) return SB_OK;
    char detail[512] = "", tmp[64];
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof detail; i++) {
        sb_mem_format(tmp, sizeof tmp, parts[i].bytes);
        len += (size_t)snprintf(detail + len, sizeof detail - len, "%s%s %s", i ? " + " : "", parts[i].what, tmp);
    }
    char need_s[64], lim_s[64];
    sb_mem_format(need_s, sizeof need_s, need);
    sb_mem_format(lim_s, sizeof lim_s, limit);
    return sb_error("%s needs %" PRIu64 " bytes (estimate %s: %s), more than the %s limit of %" PRIu64
                    " bytes (%s)%s", what, need, need_s, detail, src, limit, lim_s,
                    max_memory ? "" : "; --max-memory SIZE overrides");
}
