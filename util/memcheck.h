/* Memory estimate before a run allocates: refuse a run that cannot fit, with the estimate
 * in the message, instead of being killed by the OOM killer hours later.
 *
 * The limit is --max-memory when given, else the smaller of MemAvailable (/proc/meminfo)
 * and what RLIMIT_AS (ulimit -v) leaves above the address space already mapped. */
#ifndef SB_MEMCHECK_H
#define SB_MEMCHECK_H

#include <stdint.h>

/* One component of an estimate ("weights", "KV cache", ...); bytes UINT64_MAX = overflow. */
typedef struct {
    const char *what;
    uint64_t bytes;
} sb_mem_part;

/* Bytes available to this process (see above); UINT64_MAX when unknown (no limit). *source
 * names where the limit comes from ("available memory", "ulimit -v"). */
uint64_t sb_mem_available(const char **source);
/* Sum of the parts, saturating at UINT64_MAX. */
uint64_t sb_mem_total(const sb_mem_part *parts, int n);
/* SB_OK if the parts fit max_memory (0 = sb_mem_available()); else an error "<what> needs
 * N bytes (estimate X GiB: weights ... + KV cache ...), more than the <source> limit of
 * M bytes (Y GiB)[; --max-memory SIZE overrides]". */
int sb_mem_check(const char *what, const sb_mem_part *parts, int n, uint64_t max_memory);
/* "1.50 GiB" / "12.3 MiB" / "512 B" */
void sb_mem_format(char *buf, int cap, uint64_t bytes);

#endif
