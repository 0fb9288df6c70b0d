#include "util/signals.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig) { caught = sig; }

void sb_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    /* a second signal takes the default action: the user can always kill a stuck save */
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int sb_signal_caught(void) { return (int)caught; }

const volatile sig_atomic_t *sb_signal_flag(void) { return &caught; }

int sb_signal_exit_status(void) { return caught ? 128 + (int)caught : 1; }

static long poll_count, poll_at = -1;
static int poll_sig = SIGINT;

int sb_signal_poll(void) {
    if (poll_at < 0) {
        const char *e = getenv("SB_TEST_SIGNAL_AT");
        char *end = NULL;
        poll_at = e ? strtol(e, &end, 10) : 0;
        if (poll_at > 0 && end && !strcmp(end, ":TERM")) poll_sig = SIGTERM;
    }
    if (poll_at > 0 && ++poll_count == poll_at) raise(poll_sig);
    return (int)caught;
}

/* Single quotes unless the word is plainly safe, so the line can be pasted into a shell. */
static void put_word(FILE *f, const char *w) {
    bool plain = w[0] != '\0';
    for (const char *p = w; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:=,+@%", *p) != NULL;
    if (plain) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = w; *p; p++) {
        if (*p == '\'') fputs("'\\''", f);
        else fputc(*p, f);
    }
    fputc('\'', f);
}

void sb_signal_print_resume(FILE *f, int argc, char **argv) {
    fputs("resume with: ", f);
    put_word(f, program_invocation_name);
    bool has_resume = false;
    for (int i = 0; i < argc; i++) {
        fputc(' ', f);
        put_word(f, argv[i]);
        if (i > 0 && !strcmp(argv[i], "--resume")) has_resume = true;
    }
    if (!has_resume) fputs(" --resume", f);
    fputc('\n', f);
    fflush(f);
}
