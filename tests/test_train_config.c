/* The trainer's INI config: defaults, strict keys, value checks naming section.key, echo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "tokenizer/tokenizer.h"
#include "train/train.h"
#include "train/trainer.h"
#include "tests/helpers/sb_test.h"

static const char base_ini[] =
    "; a small config\n"
    "[model]\nvocab = 300\ndim = 48\nlayers = 3\nheads = 6\nkv_heads = 2\nffn = 96\nctx = 128\n"
    "rope_theta = 500000\ntie_embeddings = true\n"
    "[data]\ntrain = a.tok\nheldout = b.tok\nseq_len = 64\n"
    "[optim]\nlr = 6e-4\nmin_lr = 6e-5\nwarmup = 10\nsteps = 100\nbatch = 4\ngrad_accum = 2\n"
    "weight_decay = 0.1\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\nclip = 1.0\n"
    "[run]\nseed = 7\nthreads = 2\neval_interval = 10\neval_tokens = 1024\ncheckpoint_interval = 50\n"
    "log = log.h5\n"
    "[variant]\ntype = sink_logit\n";

static int parse(sb_train_config *c, const char *text) {
    sb_train_config_default(c);
    sb_clear_error();
    return sb_train_config_parse(c, text, "test.ini");
}

static void test_parse_full(void **state) {
    (void)state;
    sb_train_config c;
    assert_int_equal(parse(&c, base_ini), SB_OK);
    assert_int_equal(c.model.vocab_size, 300);
    assert_int_equal(c.model.head_dim, 8);
    assert_int_equal(c.model.rotary_dim, 8);
    assert_int_equal(c.model.n_kv_heads, 2);
    assert_true(c.model.tie_embeddings);
    assert_float_equal(c.model.rope_theta, 500000.0f, 0.0);
    assert_string_equal(c.train_path, "a.tok");
    assert_int_equal(c.seq_len, 64);
    assert_int_equal(c.grad_accum, 2);
    assert_true(c.seed == 7);
    assert_string_equal(c.log_name, "log.h5");
    assert_int_equal(c.variant, SB_VARIANT_SINK_LOGIT);
    assert_int_equal(c.model.softmax, SB_SOFTMAX_SINK_LOGIT);
    assert_int_equal(c.model.sink_token_id, -1);
}

static void test_variants_set_model(void **state) {
    (void)state;
    sb_train_config c;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", base_ini);
    strcpy(strstr(buf, "type = sink_logit"), "type = zero_sink\n");
    assert_int_equal(parse(&c, buf), SB_OK);
    assert_int_equal(c.model.softmax, SB_SOFTMAX_OFF_BY_ONE);
    strcpy(strstr(buf, "type = zero_sink"), "type = sink_token\nsink_token_id = 299\n");
    assert_int_equal(parse(&c, buf), SB_OK);
    assert_int_equal(c.model.softmax, SB_SOFTMAX_STANDARD);
    assert_int_equal(c.model.sink_token_id, 299);
    assert_false(c.sink_target_first);
    strcpy(strstr(buf, "type = sink_token"), "type = sink_token\nsink_token_id = 299\nsink_target = first\n");
    assert_int_equal(parse(&c, buf), SB_OK);
    assert_true(c.sink_target_first);
    strcpy(strstr(buf, "type = sink_token"), "type = vanilla\nsink_token_id = 299\n");
    assert_int_equal(parse(&c, buf), SB_OK);
    assert_int_equal(c.model.sink_token_id, -1); /* only the sink_token variant has one */
}

/* Replace the line starting with `key =` in base_ini by `line` and expect an error
 * containing every needle. */
static void expect_error(const char *key, const char *line, const char *needle1, const char *needle2) {
    char buf[4096];
    const char *at = strstr(base_ini, key);
    assert_non_null(at);
    const char *eol = strchr(at, '\n');
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base_ini), base_ini, line, eol);
    sb_train_config c;
    assert_int_equal(parse(&c, buf), SB_ERR);
    const char *msg = sb_last_error();
    print_message("  %-28s -> %s\n", line, msg);
    assert_non_null(strstr(msg, "test.ini"));
    assert_non_null(strstr(msg, needle1));
    if (needle2) assert_non_null(strstr(msg, needle2));
}

static void test_errors_name_key_and_value(void **state) {
    (void)state;
    expect_error("lr = 6e-4", "lrr = 6e-4", "optim.lrr", NULL);
    expect_error("lr = 6e-4", "lr = fast", "optim.lr", "'fast'");
    expect_error("lr = 6e-4", "lr = -1", "optim.lr", "'-1'");
    expect_error("lr = 6e-4", "lr = nan", "optim.lr", "'nan'");
    expect_error("batch = 4", "batch = 0", "optim.batch", "'0'");
    expect_error("batch = 4", "batch = 4x", "optim.batch", "'4x'");
    expect_error("dim = 48", "dim = 99999999999", "model.dim", "99999999999");
    expect_error("tie_embeddings = true", "tie_embeddings = maybe", "model.tie_embeddings", "'maybe'");
    expect_error("tie_embeddings = true", "tie_embeddings = true\ninit = xavier", "model.init", "'xavier'");
    expect_error("type = sink_logit", "type = magic", "variant.type", "'magic'");
    expect_error("type = sink_logit", "type = sink_logit\nsink_target = all", "variant.sink_target", "'all'");
    expect_error("seed = 7", "seed = -3", "run.seed", "'-3'");
    expect_error("log = log.h5", "log = ../x.h5", "run.log", "../x.h5");
    /* the resolved train.ini must read back: libinih splits lines longer than 200 bytes */
    char line[300];
    snprintf(line, sizeof line, "train = %0190d", 7);
    expect_error("train = a.tok", line, "data.train", "180 bytes");
    snprintf(line, sizeof line, "log = %0190d", 7);
    expect_error("log = log.h5", line, "run.log", "180 bytes");
    expect_error("threads = 2", "[extra]\nfoo = 1", "[extra]", NULL);
    expect_error("threads = 2", "this is not ini", "line", NULL);
}

static void test_consistency_errors(void **state) {
    (void)state;
    expect_error("heads = 6", "heads = 5", "model.dim", "model.heads");
    expect_error("kv_heads = 2", "kv_heads = 4", "kv_heads", NULL);
    expect_error("seq_len = 64", "seq_len = 256", "data.seq_len", "model.ctx");
    expect_error("min_lr = 6e-5", "min_lr = 1e-3", "optim.min_lr", NULL);
    expect_error("warmup = 10", "warmup = 100", "optim.warmup", NULL);
    expect_error("type = sink_logit", "type = sink_token", "variant.sink_token_id", NULL);
    expect_error("type = sink_logit", "type = sink_token\nsink_token_id = 300", "variant.sink_token_id", NULL);
    expect_error("train = a.tok", "train =", "data.train", NULL);
    expect_error("eval_tokens = 1024", "eval_tokens = 10", "run.eval_tokens", NULL);
}

static void test_ini_roundtrip(void **state) {
    (void)state;
    sb_train_config a, b;
    assert_int_equal(parse(&a, base_ini), SB_OK);
    char *ini = sb_train_config_to_ini(&a);
    assert_non_null(ini);
    assert_int_equal(parse(&b, ini), SB_OK);
    assert_memory_equal(&a.model, &b.model, sizeof a.model);
    assert_true(a.lr == b.lr && a.min_lr == b.min_lr && a.eps == b.eps && a.beta2 == b.beta2);
    assert_int_equal(a.grad_accum, b.grad_accum);
    assert_string_equal(a.heldout_path, b.heldout_path);
    assert_int_equal(a.eval_tokens, b.eval_tokens);
    assert_int_equal(a.init, SB_INIT_GPT2);
    free(ini);
    /* the init scheme survives the echo */
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", base_ini);
    char *at = strstr(buf, "tie_embeddings = true\n");
    memmove(at + strlen("init = pytorch\n"), at, strlen(at) + 1);
    memcpy(at, "init = pytorch\n", strlen("init = pytorch\n"));
    assert_int_equal(parse(&a, buf), SB_OK);
    assert_int_equal(a.init, SB_INIT_PYTORCH);
    ini = sb_train_config_to_ini(&a);
    assert_non_null(strstr(ini, "init = pytorch\n"));
    assert_int_equal(parse(&b, ini), SB_OK);
    assert_int_equal(b.init, SB_INIT_PYTORCH);
    free(ini);
}

/* PyTorch's defaults: embedding N(0, 1), linears U(+-1/sqrt(fan_in)), norms 1, deterministic */
static void test_init_pytorch(void **state) {
    (void)state;
    sb_train_config c;
    assert_int_equal(parse(&c, base_ini), SB_OK);
    c.model.tie_embeddings = false;
    sb_model m, m2;
    assert_int_equal(sb_model_alloc(&m, &c.model), SB_OK);
    assert_int_equal(sb_model_alloc(&m2, &c.model), SB_OK);
    sb_train_init_weights_scheme(&m, 3, 0.02f, SB_INIT_PYTORCH);
    sb_train_init_weights_scheme(&m2, 3, 0.02f, SB_INIT_PYTORCH);
    assert_memory_equal(m.params, m2.params, m.n_params * sizeof(float));
    const size_t ne = (size_t)c.model.vocab_size * c.model.dim;
    double s2 = 0.0;
    for (size_t i = 0; i < ne; i++) s2 += (double)m.w.tok_embed[i] * m.w.tok_embed[i];
    double sd = sqrt(s2 / (double)ne);
    assert_true(sd > 0.95 && sd < 1.05);
    const sb_layer_weights *l = &m.w.layers[1];
    const size_t nq = (size_t)c.model.n_heads * c.model.head_dim * c.model.dim;
    float bound = 1.0f / sqrtf((float)c.model.dim), mx = 0.0f;
    for (size_t i = 0; i < nq; i++) mx = fabsf(l->wq[i]) > mx ? fabsf(l->wq[i]) : mx;
    assert_true(mx <= bound && mx > 0.9f * bound);
    const size_t nd = (size_t)c.model.dim * c.model.ffn_dim;
    float bd = 1.0f / sqrtf((float)c.model.ffn_dim), md = 0.0f;
    for (size_t i = 0; i < nd; i++) md = fabsf(l->w_down[i]) > md ? fabsf(l->w_down[i]) : md;
    assert_true(md <= bd && md > 0.9f * bd);
    assert_true(l->attn_norm_w[0] == 1.0f && l->sink_logit[0] == 0.0f);
    /* and the default scheme is untouched by the option */
    sb_train_init_weights_scheme(&m2, 3, 0.02f, SB_INIT_GPT2);
    sb_train_init_weights(&m, 3, 0.02f);
    assert_memory_equal(m.params, m2.params, m.n_params * sizeof(float));
    sb_model_free(&m);
    sb_model_free(&m2);
}

static void test_load_missing_file(void **state) {
    (void)state;
    sb_train_config c;
    sb_train_config_default(&c);
    assert_int_equal(sb_train_config_load(&c, "/nonexistent/train.ini"), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "/nonexistent/train.ini"));
}

static void test_lr_schedule(void **state) {
    (void)state;
    sb_train_config c;
    assert_int_equal(parse(&c, base_ini), SB_OK); /* lr 6e-4, min 6e-5, warmup 10, steps 100 */
    assert_float_equal(sb_train_lr(&c, 0), 6e-5, 1e-12);
    assert_float_equal(sb_train_lr(&c, 9), 6e-4, 1e-12);
    assert_float_equal(sb_train_lr(&c, 10), 6e-4, 1e-12);
    assert_float_equal(sb_train_lr(&c, 99), 6e-5, 1e-12);
    double mid = sb_train_lr(&c, 54);
    assert_true(mid < 6e-4 && mid > 6e-5);
    for (int s = 11; s < 100; s++) assert_true(sb_train_lr(&c, s) <= sb_train_lr(&c, s - 1));
}

/* [data] tokenizer supplies <sink>, <|endoftext|> and "\n" ids and must match model.vocab. */
static void test_tokenizer_ids(void **state) {
    (void)state;
    const char *text = "the cat sat on the mat\nthe dog sat on the log\nthe cat and the dog\n";
    const char *special[] = {SB_TOKEN_ENDOFTEXT, SB_TOKEN_SINK};
    sb_bpe_train_opts o = {.vocab_size = 270, .special = special, .n_special = 2, .threads = 1};
    sb_tokenizer *tok;
    assert_int_equal(sb_bpe_train(&tok, text, strlen(text), &o), SB_OK);
    char dir[64];
    assert_int_equal(sb_test_mkdtemp(dir, sizeof dir), 0);
    assert_int_equal(sb_tokenizer_save(tok, dir), SB_OK);
    int32_t vocab = sb_tokenizer_vocab_size(tok), sink = sb_tokenizer_token_id(tok, SB_TOKEN_SINK);
    int32_t nl = sb_tokenizer_token_id(tok, "\n");
    sb_tokenizer_free(tok);
    assert_true(sink > 0 && nl >= 0);
    char ini[1024];
    snprintf(ini, sizeof ini,
             "[model]\nvocab = %d\ndim = 16\nlayers = 1\nheads = 2\nffn = 32\nctx = 32\n"
             "[data]\ntrain = x.ids\ntokenizer = %s\nseq_len = 16\n[variant]\ntype = sink_token\n",
             vocab, dir);
    sb_train_config c;
    int rc = parse(&c, ini);
    if (rc) print_message("%s\n", sb_last_error());
    assert_int_equal(rc, SB_OK);
    assert_int_equal(c.model.sink_token_id, sink);
    assert_int_equal(c.model.eos_id, sink - 1);
    assert_int_equal(c.model.newline_token_id, nl);
    snprintf(ini, sizeof ini,
             "[model]\nvocab = %d\ndim = 16\nlayers = 1\nheads = 2\nffn = 32\nctx = 32\n"
             "[data]\ntrain = x.ids\ntokenizer = %s\nseq_len = 16\n",
             vocab + 1, dir);
    assert_int_equal(parse(&c, ini), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "data.tokenizer"));
    assert_non_null(strstr(sb_last_error(), "model.vocab"));
    snprintf(ini, sizeof ini, "[data]\ntrain = x.ids\ntokenizer = %s/nothing\n", dir);
    assert_int_equal(parse(&c, ini), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "data.tokenizer"));
    sb_test_rmtree(dir);
}

/* Samples of each variant: inputs, and which positions predict which token. */
static void test_make_sample(void **state) {
    (void)state;
    sb_train_config c;
    sb_train_config_default(&c);
    c.seq_len = 5;
    const int32_t data[] = {10, 11, 12, 13, 14, 15, 16, 17};
    int32_t tok[5], tgt[5];
    sb_train_make_sample(&c, data, 2, tok, tgt); /* vanilla: 12..16 predicting 13..17 */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tok[i], 12 + i);
        assert_int_equal(tgt[i], 13 + i);
    }
    c.variant = SB_VARIANT_SINK_TOKEN;
    c.model.sink_token_id = 99;
    sb_train_make_sample(&c, data, 2, tok, tgt); /* [<sink>, 12..15] predicting [-, 13..16] */
    assert_int_equal(tok[0], 99);
    assert_int_equal(tgt[0], -1);
    for (int i = 1; i < 5; i++) {
        assert_int_equal(tok[i], 11 + i);
        assert_int_equal(tgt[i], 12 + i);
    }
    c.sink_target_first = true; /* the sink predicts the window's first token */
    sb_train_make_sample(&c, data, 2, tok, tgt);
    assert_int_equal(tok[0], 99);
    assert_int_equal(tgt[0], 12);
    assert_int_equal(tok[1], 12);
    assert_int_equal(tgt[4], 16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_sample),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_variants_set_model),
        cmocka_unit_test(test_errors_name_key_and_value),
        cmocka_unit_test(test_consistency_errors),
        cmocka_unit_test(test_ini_roundtrip),
        cmocka_unit_test(test_init_pytorch),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_tokenizer_ids),
    };
    return cmocka_run_group_tests_name("train_config", tests, NULL, NULL);
}
