/* What ppl, latency and attention share: the option loop with the common flags, model
 * config + cache policy loading, token streams, thread setup and the JSON line. */
#ifndef SB_CLI_OPTS_H
#define SB_CLI_OPTS_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/backend.h"
#include "engine/model.h"
#include "engine/policy.h"

typedef struct {
    const char *model_dir, *data, *out;
    int64_t threads;          /* 0 = library default */
    const char *device;       /* --device: cpu (NULL too), cuda, cuda:N */
    sb_compute compute;       /* --compute auto|f32|bf16|f16 */
    uint64_t max_memory;      /* 0 = what is available */
    bool json, resume;
} cli_common_opts;

/* A command's own "--flag value": SB_OK when handled, an error status, or CLI_OPT_UNKNOWN. */
#define CLI_OPT_UNKNOWN (-1)
typedef int (*cli_opt_fn)(const char *flag, const char *value, void *user);

/* Walk argv[1..argc): --json, --resume, --help/-h (usage on stdout, exit 0), --model, --data,
 * --out, --threads N, --max-memory SIZE, --device DEV, --compute C go to c (zeroed first);
 * every other flag takes a
 * value and goes to own. Errors name the flag (usage errors). */
int cli_opts_parse(int argc, char **argv, const char *cmd, void (*usage)(FILE *), cli_common_opts *c,
                   cli_opt_fn own, void *user);
/* OpenBLAS and OpenMP threads (n > 0); returns the count in effect. */
int cli_set_threads(int64_t n);
/* The backend of --device/--compute/--threads for m. */
int cli_open_backend(const cli_common_opts *c, const sb_model *m, sb_backend **b);
/* Check that dir is a directory and load dir/config.json. */
int cli_load_model_config(const char *dir, sb_model_config *cfg);
/* Parse spec and check it against cfg; errors are prefixed with "--policy". */
int cli_parse_policy(const char *spec, const sb_model_config *cfg, sb_policy_spec *p);
/* The first `limit` (0 = all) tokens of data: .tok/.ids, or .txt through model_dir's
 * tokenizer.json. utf8_bytes (may be NULL) gets the bytes of tokens 1..n-1 for .txt. */
int cli_load_stream(const char *model_dir, const char *data, int32_t vocab, int64_t limit, int32_t **ids,
                    int64_t *n, uint64_t *utf8_bytes);
/* Print o as one line on stdout and delete it. */
int cli_print_json(cJSON *o);

#endif
