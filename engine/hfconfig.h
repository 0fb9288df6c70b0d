/* config.json (Hugging Face) <-> sb_model_config.
 *
 * Table-driven: each model family (model_type llama, mistral, gpt_neox, falcon, mpt) has a
 * table mapping its JSON keys to config fields, defaults as transformers' config classes,
 * and an extra reader for keys that need more than a copy (fused-attention flags, rope dicts
 * with rope_scaling linear/dynamic/llama3, old and new spellings such as rope_theta at the
 * top level or in rope_parameters, torch_dtype or dtype, n_head/n_layer). Our variants live
 * in an extra object "sinkbench": {...}, which transformers ignores, so a Llama-family model
 * of ours loads in LlamaForCausalLM unchanged. Errors name the file, the field and its
 * value, e.g. "config.json: hidden_act 'relu' is not supported". Only llama and mistral are
 * written; other families serialise as llama with their variants in "sinkbench". */
#ifndef SB_HFCONFIG_H
#define SB_HFCONFIG_H

#include <stddef.h>

#include "engine/model.h"

/* Parse config JSON text; path only names the file in messages. The result is validated. */
int sb_hfconfig_parse(sb_model_config *c, const char *json, size_t len, const char *path);
int sb_hfconfig_load(sb_model_config *c, const char *path);
/* Serialise (Llama keys + the sinkbench object); returns a malloc'd string, NULL on error. */
char *sb_hfconfig_to_json(const sb_model_config *c);
/* Write atomically. */
int sb_hfconfig_save(const sb_model_config *c, const char *path);

/* Names used in config.json, the CLI and `info` (e.g. "rms", "half", "off_by_one"). */
const char *sb_norm_kind_name(sb_norm_kind k);
const char *sb_pos_kind_name(sb_pos_kind k);
const char *sb_rope_style_name(sb_rope_style k);
const char *sb_mlp_kind_name(sb_mlp_kind k);
const char *sb_act_kind_name(sb_act_kind k);       /* "silu", "gelu", "gelu_tanh" */
const char *sb_softmax_kind_name(sb_softmax_kind k);
const char *sb_dtype_name(sb_dtype d);             /* "f32", "f16", "bf16" */
/* Parse those names back; return 0 on success, -1 when unknown (no message set). */
int sb_norm_kind_parse(const char *s, sb_norm_kind *out);
int sb_pos_kind_parse(const char *s, sb_pos_kind *out);
int sb_rope_style_parse(const char *s, sb_rope_style *out);
int sb_mlp_kind_parse(const char *s, sb_mlp_kind *out);
int sb_act_kind_parse(const char *s, sb_act_kind *out);
int sb_softmax_kind_parse(const char *s, sb_softmax_kind *out);
int sb_dtype_parse(const char *s, sb_dtype *out);

#endif
