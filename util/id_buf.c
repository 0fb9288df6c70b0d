#include "util/id_buf.h"

#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

int sb_id_buf_push(sb_id_buf *b, const int32_t *ids, size_t n) {
    if (b->max > 0 && b->n + n > (size_t)b->max) n = (size_t)b->max - b->n;
    for (size_t i = 0; b->vocab > 0 && i < n; i++)
        if (ids[i] < 0 || ids[i] >= b->vocab)
            return sb_error("%s: token %zu has id %d outside the model's vocab [0, %d)", b->path, b->n + i,
                            (int)ids[i], (int)b->vocab);
    /* capacity is only ever raised to what has actually been produced */
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096, bytes;
        while (cap < b->n + n) cap *= 2;
        int32_t *p;
        if (!sb_mul_size(cap, sizeof *p, &bytes) || !(p = realloc(b->ids, bytes)))
            return sb_error("%s: out of memory holding %zu tokens", b->path, b->n + n);
        b->ids = p;
        b->cap = cap;
    }
    if (n) memcpy(b->ids + b->n, ids, n * sizeof *ids);
    b->n += n;
    return (b->max > 0 && b->n >= (size_t)b->max) ? SB_ID_BUF_FULL : SB_OK;
}

void sb_id_buf_take(sb_id_buf *b, int32_t **ids, int64_t *n) {
    /* callers free *ids whatever the count, so an empty stream still gets an allocation */
    *ids = b->ids ? b->ids : malloc_check(sizeof(int32_t));
    *n = (int64_t)b->n;
    b->ids = NULL;
    b->n = b->cap = 0;
}
