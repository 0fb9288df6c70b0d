/* Helpers shared by the subcommands. */
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stdint.h>

/* Print "sinkbench <cmd>: <last error>" on stderr and return the status to exit with. */
int cli_fail(const char *cmd, int status);

/* Parse helpers: return 0 on success, else set an error naming the flag. */
int cli_parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out);
/* Parse a size such as 512M, 8G, 1024K or plain bytes. */
int cli_parse_bytes(const char *flag, const char *s, uint64_t *out);

#endif
