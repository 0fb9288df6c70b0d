/* Tests of engine/hfconfig (config.json of every family, old and new transformers spellings,
 * errors naming field and value), engine/hf_rope (scaled RoPE frequencies) and the loader's
 * per-family tensor mapping (engine/hf_tensors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/common.h"
#include "engine/hf_rope.h"
#include "engine/hf_tensors.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "tests/helpers/sb_test.h"

static int parse(sb_model_config *c, const char *js) { return sb_hfconfig_parse(c, js, strlen(js), "m/config.json"); }

static void expect_error(const char *js, const char *want) {
    sb_model_config c;
    sb_clear_error();
    if (parse(&c, js) != SB_ERR) fail_msg("accepted: %s", js);
    if (!strstr(sb_last_error(), "m/config.json")) fail_msg("no file name: %s", sb_last_error());
    if (!strstr(sb_last_error(), want)) fail_msg("'%s' not in: %s", want, sb_last_error());
}

#define NEOX_BASE "{\"model_type\":\"gpt_neox\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2," \
                  "\"num_attention_heads\":4,\"intermediate_size\":256"
#define FALCON_BASE "{\"model_type\":\"falcon\",\"vocab_size\":100,\"hidden_size\":64"
#define MPT_BASE "{\"model_type\":\"mpt\",\"vocab_size\":100,\"d_model\":64,\"n_layers\":2,\"n_heads\":4"
#define LLAMA_BASE "{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":64,\"num_hidden_layers\":2," \
                   "\"num_attention_heads\":4,\"intermediate_size\":128"

static void test_gpt_neox(void **state) {
    (void)state;
    sb_model_config c;
    /* Pythia as published (older transformers): rotary_pct, rotary_emb_base, torch_dtype */
    assert_int_equal(parse(&c, NEOX_BASE ",\"rotary_pct\":0.25,\"rotary_emb_base\":20000,\"hidden_act\":\"gelu\","
                               "\"layer_norm_eps\":1e-5,\"use_parallel_residual\":true,\"torch_dtype\":\"float16\","
                               "\"max_position_embeddings\":2048,\"bos_token_id\":0,\"eos_token_id\":0}"),
                     SB_OK);
    assert_string_equal(c.arch, "gpt_neox");
    assert_int_equal(c.norm, SB_NORM_LAYER);
    assert_true(c.norm_bias && c.parallel_residual && !c.shared_norm);
    assert_true(c.qkv_bias && c.out_bias && c.mlp_bias && !c.tie_embeddings);
    assert_int_equal(c.mlp, SB_MLP_GELU);
    assert_int_equal(c.act, SB_ACT_GELU_ERF);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.rotary_dim, 4);
    assert_float_equal(c.rope_theta, 20000.0f, 0);
    assert_int_equal(c.dtype, SB_DTYPE_F16);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.eos_id, 0);
    /* newer transformers: rope_parameters with partial_rotary_factor; dtype; no parallel */
    assert_int_equal(parse(&c, NEOX_BASE ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":10000.0,"
                               "\"partial_rotary_factor\":0.5},\"dtype\":\"bfloat16\",\"use_parallel_residual\":false,"
                               "\"attention_bias\":false,\"hidden_act\":\"gelu_new\"}"),
                     SB_OK);
    assert_int_equal(c.rotary_dim, 8);
    assert_float_equal(c.rope_theta, 10000.0f, 0);
    assert_int_equal(c.dtype, SB_DTYPE_BF16);
    assert_false(c.parallel_residual);
    assert_false(c.qkv_bias || c.out_bias);
    assert_true(c.mlp_bias);
    assert_int_equal(c.act, SB_ACT_GELU_TANH);
    /* defaults: rotary_pct 0.25, theta 10000 */
    assert_int_equal(parse(&c, NEOX_BASE "}"), SB_OK);
    assert_int_equal(c.rotary_dim, 4);
    assert_float_equal(c.rope_theta, 10000.0f, 0);
    expect_error(NEOX_BASE ",\"hidden_act\":\"relu\"}", "hidden_act 'relu' is not supported");
    expect_error(NEOX_BASE ",\"hidden_act\":\"silu\"}", "hidden_act 'silu'");
    expect_error(NEOX_BASE ",\"rotary_pct\":1.5}", "rotary_pct 1.5");
    expect_error(NEOX_BASE ",\"rope_parameters\":{\"partial_rotary_factor\":0}}",
                 "rope_parameters.partial_rotary_factor 0");
    expect_error(NEOX_BASE ",\"torch_dtype\":\"int8\"}", "torch_dtype 'int8' is not supported");
    expect_error(NEOX_BASE ",\"dtype\":\"float8_e4m3fn\"}", "dtype 'float8_e4m3fn'");
}

static void test_falcon(void **state) {
    (void)state;
    sb_model_config c;
    /* Falcon-7B: multi_query means 1 kv head whatever num_kv_heads says; one shared norm */
    assert_int_equal(parse(&c, FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_kv_heads\":4,"
                                 "\"multi_query\":true,\"parallel_attn\":true,\"bias\":false,\"alibi\":false,"
                                 "\"new_decoder_architecture\":false,\"layer_norm_epsilon\":1e-5}"),
                     SB_OK);
    assert_string_equal(c.arch, "falcon");
    assert_int_equal(c.n_kv_heads, 1);
    assert_true(c.parallel_residual && c.shared_norm && c.tie_embeddings && c.norm_bias);
    assert_false(c.qkv_bias || c.out_bias || c.mlp_bias);
    assert_int_equal(c.ffn_dim, 256);
    assert_int_equal(c.rotary_dim, 16);
    /* RefinedWeb-era names; new architecture: kv groups and two norms */
    assert_int_equal(parse(&c, FALCON_BASE ",\"n_layer\":3,\"n_head\":8,\"new_decoder_architecture\":true,"
                                 "\"num_kv_heads\":2,\"bias\":true,\"ffn_hidden_size\":100,"
                                 "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500000.0}}"),
                     SB_OK);
    assert_int_equal(c.n_layers, 3);
    assert_int_equal(c.n_heads, 8);
    assert_int_equal(c.n_kv_heads, 2);
    assert_true(c.parallel_residual && !c.shared_norm && c.qkv_bias && c.mlp_bias);
    assert_int_equal(c.ffn_dim, 100);
    assert_float_equal(c.rope_theta, 500000.0f, 0);
    /* new architecture with one norm; old architecture sequential with MHA */
    assert_int_equal(parse(&c, FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                                 "\"new_decoder_architecture\":true,\"num_ln_in_parallel_attn\":1}"),
                     SB_OK);
    assert_true(c.parallel_residual && c.shared_norm);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(parse(&c, FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                                 "\"multi_query\":false,\"parallel_attn\":false}"),
                     SB_OK);
    assert_false(c.parallel_residual || c.shared_norm);
    assert_int_equal(c.n_kv_heads, 4);
    expect_error(FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,\"alibi\":true}", "alibi true");
    expect_error(FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                             "\"apply_residual_connection_post_layernorm\":true}",
                 "apply_residual_connection_post_layernorm true");
    expect_error(FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,\"activation\":\"relu\"}",
                 "activation 'relu'");
    expect_error(FALCON_BASE ",\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_ln_in_parallel_attn\":3}",
                 "num_ln_in_parallel_attn 3");
}

static void test_mpt(void **state) {
    (void)state;
    sb_model_config c;
    assert_int_equal(parse(&c, MPT_BASE ",\"expansion_ratio\":4,\"max_seq_len\":2048,\"no_bias\":true,"
                               "\"attn_config\":{\"alibi\":true,\"alibi_bias_max\":8,\"clip_qkv\":6.0,\"qk_ln\":false,"
                               "\"softmax_scale\":null,\"attn_type\":\"multihead_attention\"},"
                               "\"torch_dtype\":\"bfloat16\",\"learned_pos_emb\":true,\"logit_scale\":null}"),
                     SB_OK);
    assert_string_equal(c.arch, "mpt");
    assert_int_equal(c.pos, SB_POS_ALIBI);
    assert_float_equal(c.alibi_bias_max, 8.0f, 0);
    assert_float_equal(c.clip_qkv, 6.0f, 0);
    assert_int_equal(c.norm, SB_NORM_LAYER);
    assert_false(c.norm_bias || c.qkv_bias || c.out_bias || c.mlp_bias || c.parallel_residual);
    assert_true(c.tie_embeddings);
    assert_int_equal(c.ffn_dim, 256);
    assert_int_equal(c.max_ctx, 2048);
    assert_int_equal(c.act, SB_ACT_GELU_ERF);
    assert_int_equal(c.dtype, SB_DTYPE_BF16);
    /* clip_qkv null = off; softmax_scale equal to the default is fine */
    assert_int_equal(parse(&c, MPT_BASE ",\"attn_config\":{\"alibi\":true,\"clip_qkv\":null,\"softmax_scale\":0.25}}"),
                     SB_OK);
    assert_float_equal(c.clip_qkv, 0.0f, 0);
    expect_error(MPT_BASE ",\"attn_config\":{\"alibi\":false}}", "attn_config.alibi false");
    expect_error(MPT_BASE "}", "attn_config.alibi is missing");
    expect_error(MPT_BASE ",\"no_bias\":false,\"attn_config\":{\"alibi\":true}}", "no_bias false");
    expect_error(MPT_BASE ",\"attn_config\":{\"alibi\":true,\"qk_ln\":true}}", "attn_config.qk_ln true");
    expect_error(MPT_BASE ",\"attn_config\":{\"alibi\":true,\"softmax_scale\":0.5}}", "attn_config.softmax_scale 0.5");
    expect_error(MPT_BASE ",\"attn_config\":{\"alibi\":true,\"attn_type\":\"grouped_query_attention\"}}",
                 "attn_config.attn_type 'grouped_query_attention'");
    expect_error(MPT_BASE ",\"attn_config\":{\"alibi\":true},\"logit_scale\":2.0}", "logit_scale 2");
    expect_error(MPT_BASE ",\"attn_config\":{\"alibi\":true},\"expansion_ratio\":1.01}", "expansion_ratio 1.01");
}

static void test_llama_spellings_and_errors(void **state) {
    (void)state;
    sb_model_config c;
    /* num_key_value_heads missing = MHA; rope_theta top level; torch_dtype */
    assert_int_equal(parse(&c, LLAMA_BASE ",\"rope_theta\":1000000.0,\"torch_dtype\":\"float16\"}"), SB_OK);
    assert_int_equal(c.n_kv_heads, 4);
    assert_float_equal(c.rope_theta, 1e6f, 0);
    assert_int_equal(c.dtype, SB_DTYPE_F16);
    /* dtype wins over torch_dtype */
    assert_int_equal(parse(&c, LLAMA_BASE ",\"torch_dtype\":\"float16\",\"dtype\":\"bfloat16\"}"), SB_OK);
    assert_int_equal(c.dtype, SB_DTYPE_BF16);
    expect_error("{\"model_type\":\"gpt2\"}", "model_type 'gpt2' is not supported");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}", "rope_scaling.rope_type 'yarn'");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"type\":\"longrope\"}}", "rope_scaling.type 'longrope'");
    expect_error(LLAMA_BASE ",\"rope_parameters\":{\"rope_type\":\"su\"}}", "rope_parameters.rope_type 'su'");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"linear\"}}", "rope_scaling.factor is missing");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":0.5}}", "factor 0.5");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8}}",
                 "rope_scaling.low_freq_factor is missing");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":\"big\"}}",
                 "rope_scaling.factor 'big'");
    expect_error(LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,"
                            "\"high_freq_factor\":1,\"original_max_position_embeddings\":8192}}",
                 "low < high");
}

/* Hand-computed frequencies: rotary_dim 8, theta 10000 -> 1, 0.1, 0.01, 0.001. */
static void test_rope_scaling(void **state) {
    (void)state;
    sb_model_config c;
    double inv[4];
    assert_int_equal(parse(&c, LLAMA_BASE ",\"head_dim\":8,\"rope_theta\":10000,"
                                "\"rope_scaling\":{\"type\":\"linear\",\"factor\":4.0}}"),
                     SB_OK);
    assert_int_equal(c.rope_scaling, SB_ROPE_SCALING_LINEAR);
    sb_rope_inv_freq(inv, &c, 100);
    const double lin[] = {0.25, 0.025, 0.0025, 0.00025};
    for (int j = 0; j < 4; j++) assert_true(fabs(inv[j] - lin[j]) <= 1e-12 * lin[j]);

    /* Llama 3.1: factor 8, low 1, high 4, original 1024: wavelengths 6.3 and 62.8 (< 256) kept,
     * 628 smoothed, 6283 (> 1024) divided by 8 */
    assert_int_equal(parse(&c, LLAMA_BASE ",\"head_dim\":8,\"max_position_embeddings\":8192,"
                                "\"rope_parameters\":{\"rope_type\":\"llama3\",\"rope_theta\":10000,\"factor\":8.0,"
                                "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                                "\"original_max_position_embeddings\":1024}}"),
                     SB_OK);
    assert_int_equal(c.rope_scaling, SB_ROPE_SCALING_LLAMA3);
    sb_rope_inv_freq(inv, &c, 100);
    const double l3[] = {1.0, 0.1, 0.00308676096701, 0.000125};
    for (int j = 0; j < 4; j++)
        if (!(fabs(inv[j] - l3[j]) <= 1e-11 * l3[j])) fail_msg("llama3 inv_freq[%d] = %.12g, want %.12g", j, inv[j], l3[j]);
    /* the tables use those frequencies */
    float cs[4], sn[4];
    sb_rope_table_fill(cs, sn, 1000, 1, &c);
    for (int j = 0; j < 4; j++) {
        assert_true(fabs(cs[j] - cos(1000.0 * l3[j])) < 1e-6);
        assert_true(fabs(sn[j] - sin(1000.0 * l3[j])) < 1e-6);
    }

    /* dynamic NTK: unscaled up to max_position_embeddings (100 here); at 300 positions the base
     * becomes 10000 * (2 * 300/100 - 1)^(8/6) */
    assert_int_equal(parse(&c, LLAMA_BASE ",\"head_dim\":8,\"max_position_embeddings\":100,\"rope_theta\":10000,"
                                "\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2.0}}"),
                     SB_OK);
    assert_int_equal(c.rope_scaling, SB_ROPE_SCALING_DYNAMIC);
    assert_int_equal(c.rope_orig_ctx, 100);
    sb_rope_inv_freq(inv, &c, 100);
    const double un[] = {1.0, 0.1, 0.01, 0.001};
    for (int j = 0; j < 4; j++) assert_true(fabs(inv[j] - un[j]) <= 1e-12 * un[j]);
    sb_rope_inv_freq(inv, &c, 300);
    const double dyn[] = {1.0, 0.0584803547643, 0.00341995189335, 0.0002};
    for (int j = 0; j < 4; j++)
        if (!(fabs(inv[j] - dyn[j]) <= 1e-11 * dyn[j])) fail_msg("dynamic inv_freq[%d] = %.12g", j, inv[j]);
    /* the engine evaluates dynamic at max_ctx: the plain tables */
    float c0[4], s0[4];
    sb_rope_table_fill(cs, sn, 77, 1, &c);
    c.rope_scaling = SB_ROPE_SCALING_NONE;
    sb_rope_table_fill(c0, s0, 77, 1, &c);
    assert_memory_equal(cs, c0, sizeof cs);

    /* written back and read again */
    assert_int_equal(parse(&c, LLAMA_BASE ",\"head_dim\":8,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
                                "\"low_freq_factor\":1,\"high_freq_factor\":4,"
                                "\"original_max_position_embeddings\":8192}}"),
                     SB_OK);
    char *js = sb_hfconfig_to_json(&c);
    assert_non_null(js);
    sb_model_config b;
    assert_int_equal(parse(&b, js), SB_OK);
    free(js);
    assert_int_equal(b.rope_scaling, SB_ROPE_SCALING_LLAMA3);
    assert_float_equal(b.rope_factor, 8.0f, 0);
    assert_float_equal(b.rope_high_freq_factor, 4.0f, 0);
    assert_int_equal(b.rope_orig_ctx, 8192);
}

/* The committed transformers checkpoints: configs as written by save_pretrained and where each
 * layout tensor comes from in the fused files. */
static void test_fixture_configs_and_sources(void **state) {
    (void)state;
    sb_model_config c;
    struct stat st;
    if (stat("tests/fixtures/falcon7b/config.json", &st) != 0) skip();
    assert_int_equal(sb_hfconfig_load(&c, "tests/fixtures/falcon7b/config.json"), SB_OK);
    assert_int_equal(c.n_kv_heads, 1);
    sb_tensor_ref t = {.role = SB_T_K_W, .layer = 1, .ndim = 2, .shape = {16, 64}};
    sb_hf_source s;
    sb_hf_tensor_source(&c, &t, &s);
    assert_string_equal(s.name, "transformer.h.1.self_attention.query_key_value.weight");
    assert_int_equal(s.shape[0], 96);
    assert_true(s.n_groups == 1 && s.first == 64 && s.take == 16);
    t.role = SB_T_ATTN_NORM_B;
    sb_hf_tensor_source(&c, &t, &s);
    assert_string_equal(s.name, "transformer.h.1.input_layernorm.bias");

    assert_int_equal(sb_hfconfig_load(&c, "tests/fixtures/falcon_new/config.json"), SB_OK);
    assert_int_equal(c.n_kv_heads, 2);
    assert_false(c.shared_norm);
    t = (sb_tensor_ref){.role = SB_T_Q_W, .layer = 0, .ndim = 2, .shape = {64, 64}};
    sb_hf_tensor_source(&c, &t, &s);
    /* per kv group [q q k v] of 16 rows each */
    assert_true(s.n_groups == 2 && s.group_rows == 64 && s.first == 0 && s.take == 32 && s.shape[0] == 128);
    t.role = SB_T_MLP_NORM_W;
    sb_hf_tensor_source(&c, &t, &s);
    assert_string_equal(s.name, "transformer.h.0.ln_mlp.weight");

    assert_int_equal(sb_hfconfig_load(&c, "tests/fixtures/gpt_neox/config.json"), SB_OK);
    assert_int_equal(c.rotary_dim, 4);
    t = (sb_tensor_ref){.role = SB_T_V_B, .layer = 1, .ndim = 1, .shape = {64, 0}};
    sb_hf_tensor_source(&c, &t, &s);
    assert_string_equal(s.name, "gpt_neox.layers.1.attention.query_key_value.bias");
    assert_true(s.n_groups == 4 && s.group_rows == 48 && s.first == 32 && s.take == 16 && s.shape[0] == 192);
    t = (sb_tensor_ref){.role = SB_T_LM_HEAD, .layer = -1, .ndim = 2, .shape = {320, 64}};
    sb_hf_tensor_source(&c, &t, &s);
    assert_string_equal(s.name, "embed_out.weight");

    assert_int_equal(sb_hfconfig_load(&c, "tests/fixtures/mpt/config.json"), SB_OK);
    assert_float_equal(c.clip_qkv, 6.0f, 0);
    t = (sb_tensor_ref){.role = SB_T_V_W, .layer = 0, .ndim = 2, .shape = {64, 64}};
    sb_hf_tensor_source(&c, &t, &s);
    assert_string_equal(s.name, "transformer.blocks.0.attn.Wqkv.weight");
    assert_true(s.n_groups == 1 && s.first == 128 && s.take == 64);
}

static void copy_file(const char *from, const char *to) {
    char *d;
    size_t n;
    assert_int_equal(sb_read_file(from, &d, &n), SB_OK);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    fwrite(d, 1, n, f);
    fclose(f);
    free(d);
}

/* A config that does not match the fused tensor's shape fails naming tensor and shapes. */
static void test_fused_shape_errors(void **state) {
    (void)state;
    struct stat st;
    if (stat("tests/fixtures/falcon7b/model.safetensors", &st) != 0) skip();
    char dir[64], p[128];
    assert_int_equal(sb_test_mkdtemp(dir, sizeof dir), 0);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    copy_file("tests/fixtures/falcon7b/model.safetensors", p);
    /* multi_query false: per-head [q k v] needs 192 rows, the file has 96 */
    char *cfg;
    size_t n;
    assert_int_equal(sb_read_file("tests/fixtures/falcon7b/config.json", &cfg, &n), SB_OK);
    char *mq = strstr(cfg, "\"multi_query\": true");
    assert_non_null(mq);
    memcpy(mq, "\"multi_query\":false", 19);
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "wb");
    fwrite(cfg, 1, n, f);
    fclose(f);
    free(cfg);
    sb_model m;
    assert_int_equal(sb_model_load(&m, dir), SB_ERR);
    if (!strstr(sb_last_error(), "'transformer.h.0.self_attention.query_key_value.weight' has shape [96, 64], "
                                 "config.json expects [192, 64]"))
        fail_msg("%s", sb_last_error());
    sb_test_rmtree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt_neox),
        cmocka_unit_test(test_falcon),
        cmocka_unit_test(test_mpt),
        cmocka_unit_test(test_llama_spellings_and_errors),
        cmocka_unit_test(test_rope_scaling),
        cmocka_unit_test(test_fixture_configs_and_sources),
        cmocka_unit_test(test_fused_shape_errors),
    };
    return cmocka_run_group_tests_name("hfconfig", tests, NULL, NULL);
}
