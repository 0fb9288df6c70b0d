/* Where each tensor of the storage layout (model.h: sb_tensor_ref, native Llama names) lives
 * in a Hugging Face checkpoint of the config's family, table-driven per family.
 *
 * GPT-NeoX, Falcon and MPT store q, k and v as one fused matrix; a layout tensor is then a
 * selection of its rows: for each of n_groups groups of group_rows rows, the rows
 * [first, first + take). GPT-NeoX groups per head [q_h; k_h; v_h]; Falcon per kv head
 * [q heads of the group; k; v] (7B multi-query: one group); MPT [q; k; v] (one group).
 * A selection with one group is a contiguous slice and can be used in place. */
#ifndef SB_HF_TENSORS_H
#define SB_HF_TENSORS_H

#include <stdint.h>

#include "engine/model.h"

typedef struct {
    char name[128];          /* tensor name in the file */
    int ndim;                /* 1 or 2 */
    int64_t shape[2];        /* the file tensor's full shape (fused: all of q, k, v) */
    int64_t n_groups, group_rows, first, take;
} sb_hf_source;

/* Fill out for layout tensor t of config c (t from sb_model_tensor_list). */
void sb_hf_tensor_source(const sb_model_config *c, const sb_tensor_ref *t, sb_hf_source *out);

#endif
