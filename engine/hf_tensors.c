#include "engine/hf_tensors.h"

#include <stdio.h>
#include <string.h>

/* Tensor names of one family; "%d" is the layer. Weights get ".weight"/".bias" appended.
 * q, k and v name the same tensor in fused families (fused = true). */
typedef struct {
    const char *arch;
    bool fused;
    const char *embed, *attn_norm, *qkv, *o, *mlp_norm, *up, *down, *final_norm, *lm_head;
} family_names;

static const family_names families[] = {
    {"gpt_neox", true, "gpt_neox.embed_in", "gpt_neox.layers.%d.input_layernorm",
     "gpt_neox.layers.%d.attention.query_key_value", "gpt_neox.layers.%d.attention.dense",
     "gpt_neox.layers.%d.post_attention_layernorm", "gpt_neox.layers.%d.mlp.dense_h_to_4h",
     "gpt_neox.layers.%d.mlp.dense_4h_to_h", "gpt_neox.final_layer_norm", "embed_out"},
    {"falcon", true, "transformer.word_embeddings", NULL /* per variant */, "transformer.h.%d.self_attention.query_key_value",
     "transformer.h.%d.self_attention.dense", NULL, "transformer.h.%d.mlp.dense_h_to_4h",
     "transformer.h.%d.mlp.dense_4h_to_h", "transformer.ln_f", "lm_head"},
    {"mpt", true, "transformer.wte", "transformer.blocks.%d.norm_1", "transformer.blocks.%d.attn.Wqkv",
     "transformer.blocks.%d.attn.out_proj", "transformer.blocks.%d.norm_2", "transformer.blocks.%d.ffn.up_proj",
     "transformer.blocks.%d.ffn.down_proj", "transformer.norm_f", "lm_head"},
};

static bool is_bias(sb_tensor_role r) {
    return r == SB_T_ATTN_NORM_B || r == SB_T_Q_B || r == SB_T_K_B || r == SB_T_V_B || r == SB_T_O_B ||
           r == SB_T_MLP_NORM_B || r == SB_T_GATE_B || r == SB_T_UP_B || r == SB_T_DOWN_B || r == SB_T_FINAL_NORM_B;
}

void sb_hf_tensor_source(const sb_model_config *c, const sb_tensor_ref *t, sb_hf_source *out) {
    memset(out, 0, sizeof *out);
    out->ndim = t->ndim;
    out->shape[0] = t->shape[0];
    out->shape[1] = t->shape[1];
    out->n_groups = 1;
    out->group_rows = out->take = t->shape[0];
    const family_names *f = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(families[i].arch, c->arch)) f = &families[i];
    if (!f) { /* llama, mistral: the layout's own names */
        snprintf(out->name, sizeof out->name, "%s", t->name);
        return;
    }
    const char *fmt = NULL, *attn_norm = f->attn_norm, *mlp_norm = f->mlp_norm;
    if (!strcmp(c->arch, "falcon")) {
        /* new_decoder_architecture with two norms: ln_attn/ln_mlp; one shared norm, or the
         * sequential layout, use input_layernorm (+ post_attention_layernorm) */
        bool two = c->parallel_residual && !c->shared_norm;
        attn_norm = two ? "transformer.h.%d.ln_attn" : "transformer.h.%d.input_layernorm";
        mlp_norm = two ? "transformer.h.%d.ln_mlp" : "transformer.h.%d.post_attention_layernorm";
    }
    switch (t->role) {
    case SB_T_EMBED: fmt = f->embed; break;
    case SB_T_ATTN_NORM_W: case SB_T_ATTN_NORM_B: fmt = attn_norm; break;
    case SB_T_Q_W: case SB_T_Q_B: case SB_T_K_W: case SB_T_K_B: case SB_T_V_W: case SB_T_V_B: fmt = f->qkv; break;
    case SB_T_O_W: case SB_T_O_B: fmt = f->o; break;
    case SB_T_MLP_NORM_W: case SB_T_MLP_NORM_B: fmt = mlp_norm; break;
    case SB_T_UP_W: case SB_T_UP_B: fmt = f->up; break;
    case SB_T_DOWN_W: case SB_T_DOWN_B: fmt = f->down; break;
    case SB_T_FINAL_NORM_W: case SB_T_FINAL_NORM_B: fmt = f->final_norm; break;
    case SB_T_LM_HEAD: fmt = f->lm_head; break;
    case SB_T_SINKS: case SB_T_GATE_W: case SB_T_GATE_B: fmt = NULL; break; /* none of these families has them */
    }
    if (!fmt) { /* no such tensor in this family: the lookup reports it missing */
        snprintf(out->name, sizeof out->name, "%s", t->name);
        return;
    }
    char base[112];
    snprintf(base, sizeof base, fmt, t->layer);
    snprintf(out->name, sizeof out->name, "%s%s", base, is_bias(t->role) ? ".bias" : ".weight");

    bool q = t->role == SB_T_Q_W || t->role == SB_T_Q_B, k = t->role == SB_T_K_W || t->role == SB_T_K_B,
         v = t->role == SB_T_V_W || t->role == SB_T_V_B;
    if (!(q || k || v)) return;
    /* fused qkv: per group `a` query heads, `b` key heads, `b` value heads */
    int64_t hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, G, a, b;
    if (!strcmp(c->arch, "mpt")) G = 1, a = H, b = KV;
    else G = KV, a = H / KV, b = 1;
    out->n_groups = G;
    out->group_rows = (a + 2 * b) * hd;
    out->first = q ? 0 : k ? a * hd : (a + b) * hd;
    out->take = (q ? a : b) * hd;
    out->shape[0] = G * out->group_rows;
}
