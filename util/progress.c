#include "util/progress.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "engine/common.h"

#define PROGRESS_MIN_INTERVAL_S 0.25

void sb_progress_begin(sb_progress *p, const char *label, int64_t total) {
    p->enabled = isatty(STDERR_FILENO) == 1;
    p->printed = false;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->t0 = p->last = sb_now();
}

static void fmt_duration(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

void sb_progress_format(char *buf, size_t cap, const char *label, int64_t done, int64_t total,
                        double elapsed_s, double sum_nll) {
    double rate = elapsed_s > 0 ? (double)done / elapsed_s : 0.0;
    char eta[32];
    fmt_duration(eta, sizeof eta, rate > 0 && total >= done ? (double)(total - done) / rate : NAN);
    double pct = total > 0 ? 100.0 * (double)done / (double)total : 0.0;
    int n = snprintf(buf, cap, "%s%s%lld/%lld (%.1f%%) %.1f tok/s ETA %s", label, label[0] ? " " : "",
                     (long long)done, (long long)total, pct, rate, eta);
    if (n >= 0 && (size_t)n < cap && isfinite(sum_nll) && done > 0)
        snprintf(buf + n, cap - (size_t)n, " ppl %.3f", exp(sum_nll / (double)done));
}

void sb_progress_update(sb_progress *p, int64_t done, double sum_nll) {
    if (!p->enabled) return;
    double now = sb_now();
    if (now - p->last < PROGRESS_MIN_INTERVAL_S) return;
    p->last = now;
    char line[256];
    sb_progress_format(line, sizeof line, p->label, done, p->total, now - p->t0, sum_nll);
    fprintf(stderr, "\r%s\033[K", line); /* \033[K clears what a longer previous line left */
    fflush(stderr);
    p->printed = true;
}

void sb_progress_end(sb_progress *p) {
    if (p->enabled && p->printed) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    p->printed = false;
}
