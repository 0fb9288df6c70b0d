/* Graceful stop of long commands on SIGINT / SIGTERM.
 *
 * The handler only records the signal (a sig_atomic_t); the command polls sb_signal_caught()
 * between chunks, finishes or abandons the chunk, saves its state, prints
 * sb_signal_resume_line() and exits with sb_signal_exit_status() (130 for SIGINT, 143 for
 * SIGTERM, as a shell reports a process killed by them). The handler resets itself, so a
 * second Ctrl-C kills at once. */
#ifndef SB_SIGNALS_H
#define SB_SIGNALS_H

#include <signal.h>
#include <stdio.h>

/* Catch SIGINT and SIGTERM (one time each). */
void sb_signals_install(void);
/* The signal caught so far, 0 if none. */
int sb_signal_caught(void);
/* The flag itself, for loops that poll a pointer (sb_train_options.interrupt). */
const volatile sig_atomic_t *sb_signal_flag(void);
/* 128 + the signal caught (130, 143); 1 when none was. */
int sb_signal_exit_status(void);
/* Print "resume with: <program> <args...> --resume" on f, each argument shell-quoted and
 * --resume added unless already there. argv[0] is the subcommand name (as cmd_* receive it);
 * the program is the path the user ran. */
void sb_signal_print_resume(FILE *f, int argc, char **argv);
/* The per-chunk check of a long loop: sb_signal_caught(), and a test hook: with the
 * environment variable SB_TEST_SIGNAL_AT=N (or N:TERM) the process raises SIGINT (SIGTERM) at
 * its N-th poll, so a test can interrupt at an exact point (valgrind and sanitizer runs, where
 * timing-based kills are slow or flaky). */
int sb_signal_poll(void);

#endif
