/* A single updating progress line on stderr, only when stderr is a terminal, so logs and
 * pipes stay clean: done/total, tokens/s, ETA and running perplexity, at most ~4 updates/s. */
#ifndef SB_PROGRESS_H
#define SB_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    bool enabled;      /* isatty(stderr) at begin */
    bool printed;      /* a line is on screen (end clears it) */
    char label[32];
    int64_t total;
    double t0, last;   /* sb_now() at begin and at the last print */
} sb_progress;

void sb_progress_begin(sb_progress *p, const char *label, int64_t total);
/* done of total items; sum_nll of those items in nats, or NAN to omit the running ppl. */
void sb_progress_update(sb_progress *p, int64_t done, double sum_nll);
/* Clear the line (nothing printed if disabled or never shown). */
void sb_progress_end(sb_progress *p);

/* The line itself, without terminal control codes (separate for tests). */
void sb_progress_format(char *buf, size_t cap, const char *label, int64_t done, int64_t total,
                        double elapsed_s, double sum_nll);

#endif
