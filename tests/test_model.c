/* Tests of engine/model, engine/hfconfig and engine/rng: layout, init, save/load, config.json. */
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

#include <cJSON.h>

#include "engine/common.h"
#include "engine/half.h"
#include "engine/hfconfig.h"
#include "engine/model.h"
#include "engine/cpu/ops.h"
#include "engine/rng.h"
#include "engine/policy.h"
#include "engine/safetensors.h"
#include "engine/stream_eval.h"
#include "tests/helpers/sb_test.h"

static void small_config(sb_model_config *c) { sb_test_small_config(c, 50, 2, 2); }

/* Configs that together switch on every feature. */
static int feature_configs(sb_model_config *out) {
    int n = 0;
    sb_model_config c;
    small_config(&c);
    out[n++] = c; /* plain Llama */
    small_config(&c);
    c.norm = SB_NORM_LAYER, c.norm_bias = true, c.norm_eps = 1e-6f;
    c.pos = SB_POS_ALIBI, c.alibi_bias_max = 6.0f;
    c.mlp = SB_MLP_GELU, c.act = SB_ACT_GELU_TANH, c.mlp_bias = true;
    c.parallel_residual = true, c.shared_norm = true;
    c.qkv_bias = true, c.tie_embeddings = true;
    c.softmax = SB_SOFTMAX_OFF_BY_ONE, c.clip_qkv = 8.0f;
    c.sink_token_id = 3, c.newline_token_id = 10, c.bos_id = 1, c.eos_id = 2;
    out[n++] = c;
    small_config(&c);
    c.rope_style = SB_ROPE_INTERLEAVED, c.rotary_dim = 4, c.rope_theta = 500000.0f;
    c.out_bias = true, c.parallel_residual = true, c.act = SB_ACT_GELU_ERF;
    c.softmax = SB_SOFTMAX_SINK_LOGIT, c.n_kv_heads = 1;
    c.dtype = SB_DTYPE_BF16;
    snprintf(c.arch, sizeof c.arch, "mistral");
    c.sliding_window = 32;
    out[n++] = c;
    small_config(&c);
    c.pos = SB_POS_NONE, c.dtype = SB_DTYPE_F16, c.head_dim = 6, c.rotary_dim = 6; /* head_dim != dim/heads */
    out[n++] = c;
    small_config(&c);
    c.norm = SB_NORM_LAYER, c.norm_bias = true, c.parallel_residual = true, c.mlp_bias = true; /* two biased norms */
    out[n++] = c;
    return n;
}

static void assert_config_equal(const sb_model_config *a, const sb_model_config *b) {
    assert_string_equal(a->arch, b->arch);
#define EQ(f) assert_true(a->f == b->f)
    EQ(vocab_size); EQ(dim); EQ(n_layers); EQ(n_heads); EQ(n_kv_heads); EQ(head_dim); EQ(ffn_dim); EQ(max_ctx);
    EQ(norm); EQ(norm_eps); EQ(norm_bias); EQ(parallel_residual); EQ(shared_norm); EQ(pos); EQ(rope_theta);
    EQ(rotary_dim); EQ(rope_style); EQ(alibi_bias_max); EQ(mlp); EQ(act); EQ(mlp_bias); EQ(qkv_bias); EQ(out_bias);
    EQ(tie_embeddings); EQ(softmax); EQ(clip_qkv); EQ(bos_id); EQ(eos_id); EQ(sink_token_id); EQ(newline_token_id);
    EQ(dtype); EQ(sliding_window);
#undef EQ
}

/* ---------------------------------------------------------------- rng */

static void test_rng(void **state) {
    (void)state;
    sb_rng a, b;
    sb_rng_seed(&a, 42);
    sb_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(sb_rng_next(&a) == sb_rng_next(&b));
    sb_rng_seed(&b, 43);
    assert_true(sb_rng_next(&a) != sb_rng_next(&b));
    /* splitmix64 reference value (seed 0 first output, from the published algorithm) */
    uint64_t st = 0;
    assert_true(sb_splitmix64(&st) == 0xE220A8397B1DCDAFull);
    /* pinned stream: checkpoints made by `init` and the trainer depend on it staying the same */
    sb_rng_seed(&a, 42);
    assert_true(sb_rng_next(&a) == 0x15780b2e0c2ec716ull);
    assert_true(sb_rng_next(&a) == 0x6104d9866d113a7eull);
    assert_true(sb_rng_next(&a) == 0xae17533239e499a1ull);
    sb_rng_seed(&a, 42);
    assert_float_equal(sb_rng_normal(&a), -0.30326306467873798, 1e-15);
    double s = 0, s2 = 0;
    enum { N = 200000 };
    sb_rng_seed(&a, 7);
    for (int i = 0; i < N; i++) {
        double x = sb_rng_normal(&a);
        s += x, s2 += x * x;
    }
    assert_true(fabs(s / N) < 0.01);
    assert_true(fabs(sqrt(s2 / N) - 1.0) < 0.01);
    for (int i = 0; i < 1000; i++) {
        double u = sb_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        assert_true(sb_rng_below(&a, 7) < 7);
    }
    sb_rng c1, c2;
    sb_rng_seed_stream(&c1, 5, 0);
    sb_rng_seed_stream(&c2, 5, 1);
    assert_true(sb_rng_next(&c1) != sb_rng_next(&c2));
}

/* ---------------------------------------------------------------- config and layout */

static void test_validate(void **state) {
    (void)state;
    sb_model_config c;
    sb_model_config_default(&c);
    assert_int_equal(sb_model_config_validate(&c), SB_OK);
    small_config(&c), c.n_kv_heads = 3;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "n_kv_heads"));
    small_config(&c), c.rotary_dim = 7;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "rotary_dim"));
    small_config(&c), c.norm_bias = true;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "norm_bias"));
    small_config(&c), c.shared_norm = true;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "shared_norm"));
    small_config(&c), c.sink_token_id = 50;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    assert_non_null(strstr(sb_last_error(), "sink_token_id"));
    small_config(&c), c.n_heads = 0;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    small_config(&c), c.norm_eps = 0.0f;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR);
    small_config(&c), c.vocab_size = INT32_MAX, c.dim = 1 << 24, c.n_layers = 65536, c.ffn_dim = 1 << 24;
    c.n_heads = 65536, c.head_dim = 256, c.n_kv_heads = 1;
    assert_int_equal(sb_model_config_validate(&c), SB_ERR); /* far too large, and no crash */
    small_config(&c), c.pos = SB_POS_ALIBI, c.rotary_dim = 7; /* rotary only matters for RoPE */
    assert_int_equal(sb_model_config_validate(&c), SB_OK);
}

static size_t manual_count(const sb_model_config *c) {
    size_t C = c->dim, V = c->vocab_size, F = c->ffn_dim, Q = (size_t)c->n_heads * c->head_dim,
           K = (size_t)c->n_kv_heads * c->head_dim, nb = c->norm_bias ? 2 : 1;
    size_t layer = nb * C + Q * C + 2 * K * C + C * Q;
    if (c->qkv_bias) layer += Q + 2 * K;
    if (c->out_bias) layer += C;
    if (c->softmax == SB_SOFTMAX_SINK_LOGIT) layer += c->n_heads;
    if (!c->shared_norm) layer += nb * C;
    layer += (c->mlp == SB_MLP_SWIGLU ? 3 : 2) * F * C;
    if (c->mlp_bias) layer += (c->mlp == SB_MLP_SWIGLU ? 2 * F : F) + C;
    return V * C + c->n_layers * layer + nb * C + (c->tie_embeddings ? 0 : V * C);
}

static void test_param_count_and_layout(void **state) {
    (void)state;
    sb_model_config cfgs[8];
    int n = feature_configs(cfgs);
    for (int k = 0; k < n; k++) {
        const sb_model_config *c = &cfgs[k];
        assert_int_equal(sb_model_param_count(c), manual_count(c));
        sb_model m;
        assert_int_equal(sb_model_alloc(&m, c), SB_OK);
        assert_int_equal(m.n_params, manual_count(c));
        int nt = sb_model_tensor_count(c);
        sb_tensor_ref *t = calloc((size_t)nt, sizeof *t);
        assert_int_equal(sb_model_tensor_list(c, &m, t), nt);
        size_t off = 0;
        for (int i = 0; i < nt; i++) {
            assert_int_equal(t[i].offset, off); /* contiguous, in order */
            assert_true(t[i].data == m.params + off);
            assert_int_equal(t[i].numel, (size_t)t[i].shape[0] * (size_t)(t[i].ndim == 2 ? t[i].shape[1] : 1));
            off += t[i].numel;
        }
        assert_int_equal(off, m.n_params);
        /* the weight pointers point at the tensors of the same name */
        for (int i = 0; i < nt; i++) {
            const char *nm = t[i].name;
            if (!strcmp(nm, "model.layers.1.self_attn.q_proj.weight")) assert_true(m.w.layers[1].wq == t[i].data);
            if (!strcmp(nm, "model.layers.1.self_attn.v_proj.weight")) assert_true(m.w.layers[1].wv == t[i].data);
            if (!strcmp(nm, "model.layers.0.mlp.down_proj.weight")) assert_true(m.w.layers[0].w_down == t[i].data);
            if (!strcmp(nm, "model.layers.0.self_attn.sinks")) assert_true(m.w.layers[0].sink_logit == t[i].data);
            if (!strcmp(nm, "model.layers.1.post_attention_layernorm.bias"))
                assert_true(m.w.layers[1].mlp_norm_b == t[i].data);
            if (!strcmp(nm, "model.norm.weight")) assert_true(m.w.final_norm_w == t[i].data);
            if (!strcmp(nm, "lm_head.weight")) assert_true(m.w.lm_head == t[i].data);
        }
        if (c->tie_embeddings) assert_true(m.w.lm_head == m.w.tok_embed);
        if (c->shared_norm) assert_null(m.w.layers[0].mlp_norm_w);
        if (c->mlp == SB_MLP_GELU) assert_null(m.w.layers[0].w_gate);
        else assert_non_null(m.w.layers[0].w_gate);
        assert_true((c->softmax == SB_SOFTMAX_SINK_LOGIT) == (m.w.layers[1].sink_logit != NULL));
        assert_true(c->qkv_bias == (m.w.layers[1].bk != NULL));
        assert_true(c->out_bias == (m.w.layers[1].bo != NULL));
        assert_true(c->norm_bias == (m.w.final_norm_b != NULL));
        free(t);
        sb_model_free(&m);
    }
    /* Llama-2-7B's published parameter count */
    const char *l2 = "{\"architectures\":[\"LlamaForCausalLM\"],\"bos_token_id\":1,\"eos_token_id\":2,"
                     "\"hidden_act\":\"silu\",\"hidden_size\":4096,\"initializer_range\":0.02,"
                     "\"intermediate_size\":11008,\"max_position_embeddings\":4096,\"model_type\":\"llama\","
                     "\"num_attention_heads\":32,\"num_hidden_layers\":32,\"num_key_value_heads\":32,"
                     "\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,\"rope_scaling\":null,"
                     "\"tie_word_embeddings\":false,\"torch_dtype\":\"float16\","
                     "\"transformers_version\":\"4.31.0.dev0\",\"use_cache\":true,\"vocab_size\":32000}";
    sb_model_config c;
    assert_int_equal(sb_hfconfig_parse(&c, l2, strlen(l2), "config.json"), SB_OK);
    assert_int_equal(sb_model_param_count(&c), 6738415616ull);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.rotary_dim, 128);
    assert_int_equal(c.n_kv_heads, 32);
    assert_int_equal(c.bos_id, 1);
    assert_int_equal(c.dtype, SB_DTYPE_F16);
    assert_float_equal(c.rope_theta, 10000.0f, 0);
    assert_int_equal(c.norm, SB_NORM_RMS);
    assert_int_equal(c.softmax, SB_SOFTMAX_STANDARD);
}

/* ---------------------------------------------------------------- init */

static void test_init_random(void **state) {
    (void)state;
    sb_model_config cfgs[8];
    feature_configs(cfgs);
    sb_model a, b;
    assert_int_equal(sb_model_alloc(&a, &cfgs[1]), SB_OK);
    assert_int_equal(sb_model_alloc(&b, &cfgs[1]), SB_OK);
    sb_model_init_random(&a, 7, 1.0f);
    sb_model_init_random(&b, 7, 1.0f);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    sb_model_init_random(&b, 8, 1.0f);
    assert_true(memcmp(a.params, b.params, a.n_params * sizeof(float)) != 0);
    for (size_t i = 0; i < a.n_params; i++) assert_true(isfinite(a.params[i]));
    /* norms near 1 but not all equal (so swapped tensors would show); biases small, not zero */
    const float *nw = a.w.layers[0].attn_norm_w;
    assert_true(fabsf(nw[0] - 1.0f) < 0.2f && nw[0] != nw[1]);
    assert_true(a.w.layers[0].attn_norm_w[0] != a.w.layers[1].attn_norm_w[0]);
    assert_true(a.w.layers[0].bq[0] != 0.0f && fabsf(a.w.layers[0].bq[0]) < 0.2f);
    sb_model_free(&b);
    sb_model_free(&a);

    /* scale multiplies the q/k projections only */
    sb_model_config c = cfgs[0];
    c.dim = 64, c.n_heads = 4, c.head_dim = 16, c.rotary_dim = 16, c.ffn_dim = 64;
    assert_int_equal(sb_model_alloc(&a, &c), SB_OK);
    assert_int_equal(sb_model_alloc(&b, &c), SB_OK);
    sb_model_init_random(&a, 3, 1.0f);
    sb_model_init_random(&b, 3, 4.0f);
    size_t nq = (size_t)c.n_heads * c.head_dim * c.dim;
    for (size_t i = 0; i < nq; i++) assert_float_equal(b.w.layers[0].wq[i], 4.0f * a.w.layers[0].wq[i], 1e-6);
    assert_memory_equal(a.w.layers[0].wv, b.w.layers[0].wv, (size_t)c.n_kv_heads * c.head_dim * c.dim * 4);
    double ss = 0;
    for (size_t i = 0; i < nq; i++) ss += (double)a.w.layers[0].wq[i] * a.w.layers[0].wq[i];
    assert_true(fabs(sqrt(ss / nq) - 0.02) < 0.002);
    sb_model_free(&b);
    sb_model_free(&a);
}

/* ---------------------------------------------------------------- save / load */

static void test_save_load_roundtrip(void **state) {
    (void)state;
    sb_model_config cfgs[8];
    int n = feature_configs(cfgs);
    for (int k = 0; k < n; k++) {
        for (int dt = SB_DTYPE_F32; dt <= SB_DTYPE_BF16; dt++) {
            sb_model_config c = cfgs[k];
            c.dtype = (sb_dtype)dt;
            sb_model a, b;
            assert_int_equal(sb_model_alloc(&a, &c), SB_OK);
            sb_model_init_random(&a, 11 + (uint64_t)k, 2.0f);
            const char *dir = sb_test_path("rt");
            assert_int_equal(sb_model_save(&a, dir), SB_OK);
            /* fp32 files map as the fp32 block; bf16/fp16 ones convert into one with F32 */
            sb_weights_mode mode = dt == SB_DTYPE_F32 ? SB_WEIGHTS_NATIVE : SB_WEIGHTS_F32;
            if (sb_model_load_mode(&b, dir, mode) != SB_OK) fail_msg("load: %s", sb_last_error());
            assert_config_equal(&a.cfg, &b.cfg);
            assert_int_equal(a.n_params, b.n_params);
            assert_non_null(b.params);
            if (dt == SB_DTYPE_F32) {
                assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
            } else {
                for (size_t i = 0; i < a.n_params; i++) {
                    float want = dt == SB_DTYPE_F16 ? sb_f16_to_f32(sb_f32_to_f16(a.params[i]))
                                                    : sb_bf16_to_f32(sb_f32_to_bf16(a.params[i]));
                    if (memcmp(&want, &b.params[i], 4)) fail_msg("param %zu: %g vs %g", i, (double)want, (double)b.params[i]);
                }
            }
            /* pointers of the loaded model are wired like a fresh one */
            assert_true(b.w.layers[1].w_down == b.params + (a.w.layers[1].w_down - a.params));
            assert_true(b.w.layers[1].mat.down.data == b.w.layers[1].w_down);
            if (dt != SB_DTYPE_F32) {
                /* native: matrices stay in the file's dtype, vectors become fp32 */
                sb_model n;
                if (sb_model_load(&n, dir) != SB_OK) fail_msg("load: %s", sb_last_error());
                assert_null(n.params);
                assert_null(n.w.layers[1].w_down);
                assert_int_equal(n.w.layers[1].mat.down.dtype, dt);
                assert_int_equal(n.w.embed.dtype, dt);
                assert_non_null(n.w.layers[0].attn_norm_w);
                int nt = sb_model_tensor_count(&c);
                sb_tensor_ref *ta = calloc((size_t)nt, sizeof *ta), *tn = calloc((size_t)nt, sizeof *tn);
                sb_model_tensor_list(&c, &b, ta);
                sb_model_tensor_list(&n.cfg, &n, tn);
                for (int i = 0; i < nt; i++) {
                    assert_string_equal(ta[i].name, tn[i].name);
                    for (size_t j = 0; j < tn[i].numel; j++) {
                        float x;
                        if (tn[i].stored.dtype == SB_DTYPE_F32) {
                            x = ((const float *)tn[i].stored.data)[j];
                        } else {
                            uint16_t h;
                            memcpy(&h, (const char *)tn[i].stored.data + 2 * j, 2);
                            x = dt == SB_DTYPE_F16 ? sb_f16_to_f32(h) : sb_bf16_to_f32(h);
                        }
                        if (memcmp(&x, &ta[i].data[j], 4)) fail_msg("%s[%zu]: %g vs %g", tn[i].name, j, (double)x,
                                                                  (double)ta[i].data[j]);
                    }
                }
                size_t compact, f32;
                sb_model_weight_bytes(&n, &compact, &f32);
                assert_true(compact > 0 && f32 > 0 && compact / 2 + f32 / 4 == n.n_params);
                /* a compact model saves back bit for bit */
                const char *dir2 = sb_test_path("rt2");
                assert_int_equal(sb_model_save(&n, dir2), SB_OK);
                char p1[600], p2[600];
                snprintf(p1, sizeof p1, "%s/model.safetensors", dir);
                snprintf(p2, sizeof p2, "%s/model.safetensors", dir2);
                char *d1, *d2;
                size_t n1, n2;
                assert_int_equal(sb_read_file(p1, &d1, &n1), SB_OK);
                assert_int_equal(sb_read_file(p2, &d2, &n2), SB_OK);
                assert_int_equal(n1, n2);
                assert_memory_equal(d1, d2, n1);
                free(d1), free(d2), free(ta), free(tn);
                sb_model_free(&n);
            }
            sb_model_config ic;
            uint64_t bytes = 0;
            assert_int_equal(sb_model_inspect(dir, &ic, &bytes), SB_OK);
            assert_config_equal(&ic, &a.cfg);
            assert_true(bytes > a.n_params * (dt == SB_DTYPE_F32 ? 4 : 2));
            sb_model_free(&a);
            sb_model_free(&b);
        }
    }
}

static void test_config_json_roundtrip(void **state) {
    (void)state;
    sb_model_config cfgs[8];
    int n = feature_configs(cfgs);
    for (int k = 0; k < n; k++) {
        char *js = sb_hfconfig_to_json(&cfgs[k]);
        assert_non_null(js);
        /* what transformers reads */
        assert_non_null(strstr(js, "\"model_type\":"));
        assert_non_null(strstr(js, "ForCausalLM"));
        assert_non_null(strstr(js, "\"num_key_value_heads\":"));
        sb_model_config back;
        if (sb_hfconfig_parse(&back, js, strlen(js), "config.json")) fail_msg("%s", sb_last_error());
        assert_config_equal(&back, &cfgs[k]);
        free(js);
    }
}

static int parse_str(sb_model_config *c, const char *extra_fields) {
    char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":32,\"num_hidden_layers\":2,"
             "\"num_attention_heads\":4,\"intermediate_size\":64%s}",
             extra_fields);
    return sb_hfconfig_parse(c, buf, strlen(buf), "dir/config.json");
}

static void expect_parse_error(const char *extra, const char *want) {
    sb_model_config c;
    sb_clear_error();
    if (parse_str(&c, extra) != SB_ERR) fail_msg("accepted: %s", extra);
    if (!strstr(sb_last_error(), "dir/config.json")) fail_msg("no file name: %s", sb_last_error());
    if (!strstr(sb_last_error(), want)) fail_msg("'%s' not in: %s", want, sb_last_error());
}

static void test_config_parse(void **state) {
    (void)state;
    sb_model_config c;
    assert_int_equal(parse_str(&c, ""), SB_OK);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.max_ctx, 2048);
    assert_float_equal(c.norm_eps, 1e-6f, 0);
    assert_int_equal(c.eos_id, -1);
    assert_false(c.tie_embeddings);
    /* rope_theta inside the newer dicts; eos as a list; dtype key */
    assert_int_equal(parse_str(&c, ",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500000.0},"
                                   "\"eos_token_id\":[7,8],\"dtype\":\"bfloat16\",\"head_dim\":16,"
                                   "\"num_key_value_heads\":1,\"attention_bias\":true,\"hidden_act\":\"gelu\""),
                     SB_OK);
    assert_float_equal(c.rope_theta, 500000.0f, 0);
    assert_int_equal(c.eos_id, 7);
    assert_int_equal(c.dtype, SB_DTYPE_BF16);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.n_kv_heads, 1);
    assert_true(c.qkv_bias && c.out_bias);
    assert_int_equal(c.act, SB_ACT_GELU_ERF);
    assert_int_equal(parse_str(&c, ",\"rope_scaling\":{\"type\":\"default\",\"rope_theta\":1234}"), SB_OK);
    assert_float_equal(c.rope_theta, 1234.0f, 0);
    assert_int_equal(parse_str(&c, ",\"sinkbench\":{\"rotary_dim\":4,\"softmax\":\"off_by_one\",\"sink_token_id\":5}"),
                     SB_OK);
    assert_int_equal(c.rotary_dim, 4);
    assert_int_equal(c.softmax, SB_SOFTMAX_OFF_BY_ONE);
    assert_int_equal(c.sink_token_id, 5);
    {
        const char *m = "{\"model_type\":\"mistral\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
                        "\"num_attention_heads\":2,\"intermediate_size\":8,\"sliding_window\":null}";
        assert_int_equal(sb_hfconfig_parse(&c, m, strlen(m), "x"), SB_OK);
        assert_string_equal(c.arch, "mistral");
    }

    expect_parse_error(",\"hidden_act\":\"relu\"", "hidden_act 'relu' is not supported");
    expect_parse_error(",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}", "llama3");
    expect_parse_error(",\"rope_parameters\":{\"rope_type\":\"yarn\"}", "yarn");
    expect_parse_error(",\"num_key_value_heads\":3", "n_kv_heads");
    expect_parse_error(",\"num_key_value_heads\":2.5", "num_key_value_heads 2.5");
    expect_parse_error(",\"tie_word_embeddings\":\"yes\"", "tie_word_embeddings 'yes'");
    expect_parse_error(",\"rms_norm_eps\":\"small\"", "rms_norm_eps");
    expect_parse_error(",\"torch_dtype\":\"int8\"", "int8");
    expect_parse_error(",\"sinkbench\":{\"norm\":\"batch\"}", "sinkbench.norm 'batch' is not supported");
    expect_parse_error(",\"sinkbench\":{\"softmax\":\"sparsemax\"}", "sinkbench.softmax");
    expect_parse_error(",\"sinkbench\":{\"rotary_dims\":4}", "sinkbench.rotary_dims");
    expect_parse_error(",\"sinkbench\":{\"sink_token_id\":100}", "sink_token_id");
    expect_parse_error(",\"sinkbench\":[]", "sinkbench");
    expect_parse_error(",\"bos_token_id\":-5", "bos_token_id");

    const char *cases[][2] = {
        {"not json", "JSON"},
        {"[]", "object"},
        {"{\"vocab_size\":5}", "model_type"},
        {"{\"model_type\":\"gpt2\"}", "model_type 'gpt2' is not supported"},
        {"{\"model_type\":\"llama\",\"vocab_size\":100}", "hidden_size"},
        {"{\"model_type\":\"llama\",\"vocab_size\":100,\"hidden_size\":30,\"num_hidden_layers\":1,"
         "\"num_attention_heads\":4,\"intermediate_size\":8}",
         "hidden_size 30 is not divisible"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_clear_error();
        assert_int_equal(sb_hfconfig_parse(&c, cases[i][0], strlen(cases[i][0]), "dir/config.json"), SB_ERR);
        if (!strstr(sb_last_error(), cases[i][1]) || !strstr(sb_last_error(), "dir/config.json"))
            fail_msg("case %zu: %s", i, sb_last_error());
    }
}

/* ---------------------------------------------------------------- loader errors */

static void copy_file(const char *from, const char *to, long truncate_to) {
    char *data;
    size_t n;
    assert_int_equal(sb_read_file(from, &data, &n), SB_OK);
    if (truncate_to >= 0 && (size_t)truncate_to < n) n = (size_t)truncate_to;
    FILE *f = fopen(to, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    free(data);
}

static void expect_load_error(const char *dir, const char *file_in_msg, const char *want) {
    sb_model m;
    sb_clear_error();
    if (sb_model_load(&m, dir) != SB_ERR) fail_msg("loaded %s", dir);
    assert_null(m.params);
    if (!strstr(sb_last_error(), file_in_msg)) fail_msg("'%s' not in: %s", file_in_msg, sb_last_error());
    if (want && !strstr(sb_last_error(), want)) fail_msg("'%s' not in: %s", want, sb_last_error());
}

static void test_load_errors(void **state) {
    (void)state;
    sb_model_config c;
    small_config(&c);
    sb_model m;
    assert_int_equal(sb_model_alloc(&m, &c), SB_OK);
    sb_model_init_random(&m, 1, 1.0f);
    const char *good = sb_test_path("good");
    assert_int_equal(sb_model_save(&m, good), SB_OK);
    char gcfg[512], gst[512];
    snprintf(gcfg, sizeof gcfg, "%s/config.json", good);
    snprintf(gst, sizeof gst, "%s/model.safetensors", good);

    expect_load_error(sb_test_path("nope"), sb_test_path("nope"), "cannot open");
    expect_load_error(gst, gst, "not a directory");

    const char *d = sb_test_path("bad");
    mkdir(d, 0755);
    char cfg[512], st[512];
    snprintf(cfg, sizeof cfg, "%s/config.json", d);
    snprintf(st, sizeof st, "%s/model.safetensors", d);
    expect_load_error(d, cfg, NULL); /* missing config.json */
    copy_file(gcfg, cfg, -1);
    expect_load_error(d, "model.safetensors", "missing"); /* missing weights */

    /* truncated weights */
    struct stat sst;
    stat(gst, &sst);
    copy_file(gst, st, sst.st_size - 100);
    expect_load_error(d, st, "truncated");
    copy_file(gst, st, 5);
    expect_load_error(d, st, "truncated");
    /* corrupted header length */
    copy_file(gst, st, -1);
    FILE *f = fopen(st, "r+b");
    fputc(0xff, f);
    fseek(f, 5, SEEK_SET);
    fputc(0x01, f);
    fclose(f);
    expect_load_error(d, st, "header length");

    /* shape mismatch: config says more layers' worth of width than the file holds */
    copy_file(gst, st, -1);
    sb_model_config big = c;
    big.ffn_dim = 64;
    assert_int_equal(sb_hfconfig_save(&big, cfg), SB_OK);
    expect_load_error(d, st, "has shape [48, 32], config.json expects [64, 32]");
    /* a config far larger than the file: rejected by the shape check, never allocated */
    big = c;
    big.vocab_size = 1 << 30;
    assert_int_equal(sb_hfconfig_save(&big, cfg), SB_OK);
    expect_load_error(d, st, "model.embed_tokens.weight");
    /* missing tensor: a tied-head config against an untied file is fine (extra tensor ignored),
     * the other way round is not */
    sb_model_config tied = c;
    tied.tie_embeddings = true;
    sb_model mt;
    assert_int_equal(sb_model_alloc(&mt, &tied), SB_OK);
    assert_int_equal(sb_model_save(&mt, d), SB_OK);
    sb_model_free(&mt);
    copy_file(gcfg, cfg, -1);
    expect_load_error(d, "model.safetensors", "'lm_head.weight' is missing");
    /* unsupported dtype in a tensor the model needs */
    {
        int nt = sb_model_tensor_count(&c);
        sb_tensor_ref *t = calloc((size_t)nt, sizeof *t);
        sb_model_tensor_list(&c, &m, t);
        /* rewrite the file by hand with the final norm as I32 */
        sb_st_write_tensor *wt = calloc((size_t)nt, sizeof *wt);
        for (int i = 0; i < nt; i++) {
            wt[i].name = t[i].name;
            wt[i].data = t[i].data;
            wt[i].ndim = t[i].ndim;
            wt[i].shape[0] = t[i].shape[0];
            wt[i].shape[1] = t[i].shape[1];
        }
        assert_int_equal(sb_st_write(st, wt, nt, SB_DTYPE_F32, NULL, NULL, 0), SB_OK);
        char *data;
        size_t n;
        assert_int_equal(sb_read_file(st, &data, &n), SB_OK);
        char *p = strstr(data + 8, "\"model.norm.weight\":{\"dtype\":\"F32\""); /* past the length bytes */
        assert_non_null(p);
        memcpy(strstr(p, "F32"), "I32", 3);
        FILE *g = fopen(st, "wb");
        fwrite(data, 1, n, g);
        fclose(g);
        free(data);
        free(t);
        free(wt);
        expect_load_error(d, st, "'model.norm.weight' has dtype I32");
    }
    /* the storage dtype comes from the weights, whatever torch_dtype says */
    {
        sb_model_config h = c;
        h.dtype = SB_DTYPE_F16;
        sb_model mh, back;
        assert_int_equal(sb_model_alloc(&mh, &h), SB_OK);
        assert_int_equal(sb_model_save(&mh, d), SB_OK);
        h.dtype = SB_DTYPE_F32;
        assert_int_equal(sb_hfconfig_save(&h, cfg), SB_OK);
        assert_int_equal(sb_model_load(&back, d), SB_OK);
        assert_int_equal(back.cfg.dtype, SB_DTYPE_F16);
        sb_model_free(&back);
        sb_model_free(&mh);
    }
    /* a bad config.json value */
    sb_test_write_text(cfg, "{\"model_type\":\"llama\",\"vocab_size\":50,\"hidden_size\":32,\"num_hidden_layers\":2,"
                            "\"num_attention_heads\":4,\"intermediate_size\":48,\"hidden_act\":\"relu\"}");
    expect_load_error(d, cfg, "hidden_act 'relu'");
    sb_model_free(&m);
}

/* Sharded checkpoint: split a saved model into two shards plus an index, load, compare. */
static void test_load_sharded(void **state) {
    (void)state;
    sb_model_config c;
    small_config(&c);
    sb_model m, b;
    assert_int_equal(sb_model_alloc(&m, &c), SB_OK);
    sb_model_init_random(&m, 5, 1.0f);
    const char *d = sb_test_path("sharded");
    mkdir(d, 0755);
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", d);
    assert_int_equal(sb_hfconfig_save(&c, p), SB_OK);
    int nt = sb_model_tensor_count(&c);
    sb_tensor_ref *t = calloc((size_t)nt, sizeof *t);
    sb_model_tensor_list(&c, &m, t);
    sb_st_write_tensor *wt = calloc((size_t)nt, sizeof *wt);
    char *index = malloc(65536);
    int k = snprintf(index, 65536, "{\"metadata\":{},\"weight_map\":{");
    for (int i = 0; i < nt; i++) {
        wt[i].name = t[i].name;
        wt[i].data = t[i].data;
        wt[i].ndim = t[i].ndim;
        wt[i].shape[0] = t[i].shape[0];
        wt[i].shape[1] = t[i].shape[1];
        k += snprintf(index + k, 65536 - k, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"", i ? "," : "", t[i].name,
                      i < nt / 2 ? 1 : 2);
    }
    snprintf(index + k, 65536 - k, "}}");
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    assert_int_equal(sb_st_write(p, wt, nt / 2, SB_DTYPE_F32, NULL, NULL, 0), SB_OK);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    assert_int_equal(sb_st_write(p, wt + nt / 2, nt - nt / 2, SB_DTYPE_F32, NULL, NULL, 0), SB_OK);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    sb_test_write_text(p, index);
    /* two files are not one block: mapped natively, copied with F32 */
    if (sb_model_load(&b, d)) fail_msg("%s", sb_last_error());
    assert_null(b.params);
    sb_tensor_ref *tb = calloc((size_t)nt, sizeof *tb);
    sb_model_tensor_list(&c, &b, tb);
    for (int i = 0; i < nt; i++) assert_memory_equal(tb[i].data, t[i].data, t[i].numel * sizeof(float));
    free(tb);
    sb_model_free(&b);
    if (sb_model_load_mode(&b, d, SB_WEIGHTS_F32)) fail_msg("%s", sb_last_error());
    assert_memory_equal(m.params, b.params, m.n_params * sizeof(float));
    sb_model_free(&b);
    free(index);
    free(wt);
    free(t);
    sb_model_free(&m);
}


/* ---------------------------------------------------------------- transformers fixtures
 * Checkpoints written by transformers' save_pretrained (tests/fixtures/README.md). At
 * position 0 attention over the single key is the identity on v, so the first token's logits
 * need only the loader and the ops: a check of every tensor name, layout, bias and norm gain
 * against transformers itself, without the forward pass. */
static void first_token_logits(const sb_model *m, int32_t id, float *logits) {
    const sb_model_config *c = &m->cfg;
    int C = c->dim, hd = c->head_dim, KD = c->n_kv_heads * hd, QD = c->n_heads * hd;
    float *x = calloc((size_t)C, 4), *h = calloc((size_t)C, 4), *v = calloc((size_t)KD, 4);
    float *att = calloc((size_t)QD, 4), *g = calloc((size_t)c->ffn_dim, 4), *u = calloc((size_t)c->ffn_dim, 4);
    assert_int_equal(embedding_forward(x, &id, m->w.tok_embed, 1, C, c->vocab_size), SB_OK);
    for (int l = 0; l < c->n_layers; l++) {
        const sb_layer_weights *L = &m->w.layers[l];
        norm_forward(h, x, L->attn_norm_w, L->attn_norm_b, c->norm, c->norm_eps, 1, C);
        matmul_forward(v, h, L->wv, L->bv, 1, C, KD);
        for (int q = 0; q < c->n_heads; q++)
            memcpy(att + q * hd, v + (q / (c->n_heads / c->n_kv_heads)) * hd, (size_t)hd * 4);
        matmul_forward_acc(x, att, L->wo, L->bo, 1, QD, C);
        norm_forward(h, x, L->mlp_norm_w, L->mlp_norm_b, c->norm, c->norm_eps, 1, C);
        matmul_forward(g, h, L->w_gate, L->b_gate, 1, C, c->ffn_dim);
        matmul_forward(u, h, L->w_up, L->b_up, 1, C, c->ffn_dim);
        glu_forward(g, g, u, (size_t)c->ffn_dim, c->act);
        matmul_forward_acc(x, g, L->w_down, L->b_down, 1, c->ffn_dim, C);
    }
    norm_forward(h, x, m->w.final_norm_w, m->w.final_norm_b, c->norm, c->norm_eps, 1, C);
    matmul_forward(logits, h, m->w.lm_head, NULL, 1, C, c->vocab_size);
    free(x), free(h), free(v), free(att), free(g), free(u);
}

/* info describes llama2.c checkpoints too: sb_model_inspect on a .bin file. */
static void test_inspect_llama2c(void **state) {
    (void)state;
    const char *bin = "../shared/fixtures/stories260K/stories260K.bin";
    struct stat st;
    if (stat(bin, &st) != 0) {
        printf("SKIP inspect llama2.c: no %s\n", bin);
        return;
    }
    sb_model_config c;
    uint64_t bytes = 0;
    if (sb_model_inspect(bin, &c, &bytes)) fail_msg("%s", sb_last_error());
    assert_int_equal(c.dim, 64);
    assert_int_equal(c.n_layers, 5);
    assert_int_equal(c.vocab_size, 512);
    assert_int_equal(c.rope_style, SB_ROPE_INTERLEAVED);
    assert_int_equal(bytes, (uint64_t)st.st_size);
    assert_int_equal(sb_model_inspect("tests/fixtures/no_such.bin", &c, &bytes), SB_ERR);
}

static void test_transformers_fixtures(void **state) {
    (void)state;
    const char *names[] = {"llama", "llama_gqa", "mistral"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char dir[256], p[300];
        snprintf(dir, sizeof dir, "tests/fixtures/%s", names[k]);
        struct stat st;
        if (stat(dir, &st) != 0) skip();
        sb_model m;
        if (sb_model_load(&m, dir)) fail_msg("%s", sb_last_error());
        const sb_model_config *c = &m.cfg;
        assert_int_equal(c->vocab_size, 320);
        assert_int_equal(c->dim, 64);
        assert_int_equal(c->head_dim, 16);
        if (k == 1) {
            assert_true(c->tie_embeddings && c->qkv_bias && c->out_bias);
            assert_int_equal(c->n_kv_heads, 2);
            assert_float_equal(c->rope_theta, 500000.0f, 0);
        }
        if (k == 2) {
            assert_string_equal(c->arch, "mistral");
            assert_int_equal(c->n_kv_heads, 1);
            assert_int_equal(c->sliding_window, 32);
        }
        char *text;
        size_t n;
        snprintf(p, sizeof p, "%s/stream.ids", dir);
        assert_int_equal(sb_read_file(p, &text, &n), SB_OK);
        int32_t first = (int32_t)strtol(text, NULL, 10);
        free(text);
        snprintf(p, sizeof p, "%s/golden.json", dir);
        assert_int_equal(sb_read_file(p, &text, &n), SB_OK);
        cJSON *g = cJSON_Parse(text);
        free(text);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(g, "logits_first_token");
        assert_int_equal(cJSON_GetArraySize(want), 320);
        float logits[320];
        first_token_logits(&m, first, logits);
        double maxerr = 0;
        int i = 0;
        for (const cJSON *e = want->child; e; e = e->next, i++)
            maxerr = fmax(maxerr, fabs(logits[i] - e->valuedouble) / (1.0 + fabs(e->valuedouble)));
        if (maxerr > 1e-4) fail_msg("%s: first-token logits differ from transformers by %g", names[k], maxerr);
        cJSON_Delete(g);
        sb_model_free(&m);
    }
}


/* ---------------------------------------------------------------- compact (bf16/fp16) weights */

/* matmul_weight_forward on bf16/fp16 weights against fp32 sgemm on the converted weights,
 * over both kernels (fused rows for T < MATMUL_GEMV_MAX_T, converted tiles above), odd sizes
 * (vector tails), bias and accumulation. */
static void test_matmul_weight_kernels(void **state) {
    (void)state;
    const int Ts[] = {1, 2, 3, 4, 5, 64, 130}, Cs[] = {7, 64, 203}, OCs[] = {5, 33, 300};
    sb_rng r;
    sb_rng_seed(&r, 77);
    for (int dt = SB_DTYPE_F16; dt <= SB_DTYPE_BF16; dt++)
        for (size_t ic = 0; ic < 3; ic++)
            for (size_t io = 0; io < 3; io++)
                for (size_t it = 0; it < sizeof Ts / sizeof Ts[0]; it++) {
                    int T = Ts[it], C = Cs[ic], OC = OCs[io];
                    float *w = malloc((size_t)OC * C * 4), *wc = malloc((size_t)OC * C * 4), *x = malloc((size_t)T * C * 4);
                    float *b = malloc((size_t)OC * 4), *y = malloc((size_t)T * OC * 4), *ref = malloc((size_t)T * OC * 4);
                    unsigned char *h = malloc((size_t)OC * C * 2 + 1);
                    sb_rng_fill_normal(&r, w, (size_t)OC * C, 0.0f, 1.0f);
                    sb_rng_fill_normal(&r, x, (size_t)T * C, 0.0f, 1.0f);
                    sb_rng_fill_normal(&r, b, (size_t)OC, 0.0f, 1.0f);
                    /* at an odd address, as a tensor may sit in a mapped file */
                    if (dt == SB_DTYPE_F16) sb_f32_to_f16_array(h + 1, w, (size_t)OC * C), sb_f16_to_f32_array(wc, h + 1, (size_t)OC * C);
                    else sb_f32_to_bf16_array(h + 1, w, (size_t)OC * C), sb_bf16_to_f32_array(wc, h + 1, (size_t)OC * C);
                    sb_weight sw = {(sb_dtype)dt, h + 1};
                    for (int acc = 0; acc < 2; acc++) {
                        const float *bias = acc ? b : NULL;
                        for (int i = 0; i < T * OC; i++) y[i] = ref[i] = acc ? 0.5f * (float)(i % 7) : 0.0f;
                        if (acc) {
                            matmul_weight_forward_acc(y, x, &sw, bias, T, C, OC);
                            matmul_forward_acc(ref, x, wc, bias, T, C, OC);
                        } else {
                            matmul_weight_forward(y, x, &sw, bias, T, C, OC);
                            matmul_forward(ref, x, wc, bias, T, C, OC);
                        }
                        for (int i = 0; i < T * OC; i++)
                            if (!(fabsf(y[i] - ref[i]) <= 1e-4f * (1.0f + sqrtf((float)C)) )) 
                                fail_msg("dt %d T %d C %d OC %d acc %d: [%d] %g vs %g", dt, T, C, OC, acc, i,
                                         (double)y[i], (double)ref[i]);
                    }
                    float row[203];
                    weight_row_f32(row, &sw, (size_t)(OC - 1), C);
                    assert_memory_equal(row, wc + (size_t)(OC - 1) * C, (size_t)C * 4);
                    free(w), free(wc), free(x), free(b), free(y), free(ref), free(h);
                }
}

/* The same bf16/fp16 checkpoint loaded compact (native) and converted to fp32 gives the same
 * NLLs in both evaluation modes and with chunks on both matmul kernels. */
static void test_compact_matches_f32(void **state) {
    (void)state;
    sb_model_config cfgs[8];
    int n = feature_configs(cfgs);
    enum { N = 80 };
    int32_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 37 + 11) % 50);
    float nf[N], nc[N];
    for (int k = 0; k < n; k++)
        for (int dt = SB_DTYPE_F16; dt <= SB_DTYPE_BF16; dt++) {
            sb_model_config c = cfgs[k];
            c.dtype = (sb_dtype)dt;
            sb_model a, f, m;
            assert_int_equal(sb_model_alloc(&a, &c), SB_OK);
            sb_model_init_random(&a, 3 + (uint64_t)k, 3.0f);
            const char *dir = sb_test_path("compact");
            assert_int_equal(sb_model_save(&a, dir), SB_OK);
            if (sb_model_load_mode(&f, dir, SB_WEIGHTS_F32) || sb_model_load_mode(&m, dir, SB_WEIGHTS_NATIVE))
                fail_msg("%s", sb_last_error());
            assert_non_null(f.params);
            assert_int_equal(m.w.layers[0].mat.q.dtype, dt);
            const char *specs[] = {"dense", "sinks:4:16"};
            for (int s = 0; s < 2; s++)
                for (int mode = 0; mode < 2; mode++)
                    for (int chunk = 2; chunk <= 64; chunk *= 32) {
                        sb_policy_spec p;
                        assert_int_equal(sb_policy_parse(specs[s], &p), SB_OK);
                        sb_eval_opts o = {.mode = (sb_eval_mode)mode, .chunk = chunk};
                        if (sb_eval_stream_nll(&f, &p, tok, N, &o, nf) || sb_eval_stream_nll(&m, &p, tok, N, &o, nc))
                            fail_msg("%s", sb_last_error());
                        for (int i = 0; i < N - 1; i++)
                            if (!(fabsf(nf[i] - nc[i]) <= 1e-5f))
                                fail_msg("config %d dtype %d %s mode %d chunk %d: NLL[%d] %.7g (f32) vs %.7g (compact)",
                                         k, dt, specs[s], mode, chunk, i, (double)nf[i], (double)nc[i]);
                    }
            sb_model_free(&a), sb_model_free(&f), sb_model_free(&m);
        }
    /* the mode's spelling */
    sb_weights_mode wm;
    assert_int_equal(sb_weights_mode_parse("f32", "--weights", &wm), SB_OK);
    assert_int_equal(wm, SB_WEIGHTS_F32);
    assert_int_equal(sb_weights_mode_parse("native", "--weights", &wm), SB_OK);
    assert_int_equal(wm, SB_WEIGHTS_NATIVE);
    assert_int_equal(sb_weights_mode_parse("int8", "--weights", &wm), SB_ERR_USAGE);
    assert_non_null(strstr(sb_last_error(), "--weights 'int8'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_weight_kernels),
        cmocka_unit_test(test_compact_matches_f32),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_param_count_and_layout),
        cmocka_unit_test(test_init_random),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_config_json_roundtrip),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_sharded),
        cmocka_unit_test(test_transformers_fixtures),
        cmocka_unit_test(test_inspect_llama2c),
    };
    return cmocka_run_group_tests_name("model", tests, sb_test_dir_setup, sb_test_dir_teardown);
}
