/* What the cmocka tests share: every .c file in tests/helpers/ is linked into each tests/test_*.c
 * binary. Include after <cmocka.h> (and the headers it needs before it). */
#ifndef SB_TEST_H
#define SB_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/rng.h"

/* A test binary's scratch directory: sb_test_dir_setup / sb_test_dir_teardown are cmocka group
 * setup and teardown that create sb_test_dir ("/tmp/sb_<binary>_XXXXXX") and remove it with
 * everything inside. */
extern char sb_test_dir[64];
int sb_test_dir_setup(void **state);
int sb_test_dir_teardown(void **state);
/* sb_test_dir/name, in one of 8 static buffers used in turn: a few paths can be live at once. */
const char *sb_test_path(const char *name);

/* A fresh directory like sb_test_dir's into dir (cap >= 64), for tests that want their own:
 * 0, or -1 with errno. */
int sb_test_mkdtemp(char *dir, size_t cap);
/* Remove dir and everything below it (links are removed, not followed). */
void sb_test_rmtree(const char *dir);

/* Write a whole file (asserting that it worked). */
void sb_test_write_file(const char *path, const void *data, size_t n);
void sb_test_write_text(const char *path, const char *text);

/* A llama2.c tokenizer file with a vocabulary small enough to work its merges out by hand:
 * ids 0 <unk>, 1 <s>, 2 </s>, 3..258 <0xNN>, 259 " ", 260 "a", 261 "b", 262 "ab" (score -1),
 * 263 "ba" (-2), 264 " a" (-3), 265 "aba" (-0.5); the single characters score -10. */
void sb_test_write_llama2c_tok(const char *path);

/* OpenMP workers that spin between the many small parallel regions of a tiny model starve
 * the computing thread on a busy 2-core machine (10x slower), so the training tests run them
 * passive; libgomp reads the policy when it loads, hence the re-exec with it set. */
void sb_test_omp_passive(char **argv);

/* A small Llama-style config: dim 32, 4 heads of 8 (all rotary), FFN 48, context 64. */
void sb_test_small_config(sb_model_config *c, int32_t vocab, int n_layers, int n_kv_heads);
/* Move the 1-D tensors (norm weights, sink logits) off their initial values by
 * scale * N(0, 1), so tests of the gradients or of an engine see generic values there. */
void sb_test_perturb_vectors(const sb_model_config *c, sb_model *m, sb_rng *r, float scale);

#endif
