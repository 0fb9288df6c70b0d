/* .ids files: token ids as decimal integers separated by any whitespace (spaces, tabs,
 * newlines), the simplest interchange with other tools. */
#ifndef SB_IDS_H
#define SB_IDS_H

#include <stdint.h>

/* Read the ids of path. vocab > 0 rejects ids >= vocab; max_tokens > 0 stops after that many
 * (the rest of the file is not read). Errors name the file, the line and the bad token, e.g.
 * "x.ids:3: bad token '12a' (not a decimal id)". On success *ids is malloc'd (caller frees). */
int sb_ids_load(const char *path, int32_t vocab, int64_t max_tokens, int32_t **ids, int64_t *n);

#endif
