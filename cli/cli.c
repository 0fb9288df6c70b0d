#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/common.h"

int cli_fail(const char *cmd, int status) {
    const char *msg = sb_last_error();
    fprintf(stderr, "sinkbench %s: %s\n", cmd, msg[0] ? msg : "failed");
    return status ? status : 1;
}

int cli_parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s) return sb_usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return sb_usage_error("%s: '%s' is not an integer", flag, s);
    if (v < lo || v > hi)
        return sb_usage_error("%s: %lld is out of range [%lld, %lld]", flag, v, (long long)lo, (long long)hi);
    *out = v;
    return SB_OK;
}

int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out) {
    if (!s) return sb_usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return sb_usage_error("%s: '%s' is not a number", flag, s);
    if (v < lo || v > hi) return sb_usage_error("%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    *out = v;
    return SB_OK;
}

int cli_parse_bytes(const char *flag, const char *s, uint64_t *out) {
    if (!s) return sb_usage_error("%s needs a value", flag);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return sb_usage_error("%s: '%s' is not a size (e.g. 512M, 8G)", flag, s);
    double mul = 1;
    switch (*end) {
    case 'K': case 'k': mul = 1024.0; end++; break;
    case 'M': case 'm': mul = 1024.0 * 1024; end++; break;
    case 'G': case 'g': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': case 't': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0') return sb_usage_error("%s: '%s' is not a size (e.g. 512M, 8G)", flag, s);
    *out = (uint64_t)(v * mul);
    return SB_OK;
}
