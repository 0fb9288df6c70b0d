/* A growing array of token ids with the two checks every token loader makes: ids inside the
 * model's vocabulary and at most max_tokens of them. Shared by the file formats
 * (datasets/tokens.c) and text encoding (tokenizer/textfile.c), which do not know each other. */
#ifndef SB_ID_BUF_H
#define SB_ID_BUF_H

#include <stddef.h>
#include <stdint.h>

/* sb_id_buf_push's "full": max ids are held, the caller stops reading (not an error). */
#define SB_ID_BUF_FULL 100

typedef struct {
    int32_t *ids;       /* malloc'd; NULL until the first push */
    size_t n, cap;
    int64_t max;        /* > 0: stop after this many */
    int32_t vocab;      /* > 0: ids must be below it */
    const char *path;   /* named in errors */
} sb_id_buf;

/* Append what fits of ids[n] under max: SB_OK, SB_ID_BUF_FULL once max ids are held, or an
 * error naming the file and position (an id outside the vocabulary, out of memory). */
int sb_id_buf_push(sb_id_buf *b, const int32_t *ids, size_t n);
/* Hand the ids over: *ids (never NULL, even for none) and *n; b is emptied. */
void sb_id_buf_take(sb_id_buf *b, int32_t **ids, int64_t *n);

#endif
