#include "engine/llama2c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"

bool sb_llama2c_is_checkpoint(const char *path) {
    size_t n = strlen(path);
    struct stat st;
    return n > 4 && !strcmp(path + n - 4, ".bin") && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Read n floats; the total size was checked up front, so a short read is an I/O error. */
static int read_floats(FILE *f, const char *path, float *dst, size_t n) {
    if (fread(dst, sizeof(float), n, f) != n) return sb_error("%s: short read (truncated file?)", path);
    return SB_OK;
}

/* Copy a [L, rows, cols] stacked tensor into the per-layer slots at `field` offset. */
static int read_stacked(FILE *f, const char *path, sb_model *m, size_t field, size_t per_layer) {
    for (int l = 0; l < m->cfg.n_layers; l++) {
        float **slot = (float **)((char *)&m->w.layers[l] + field);
        if (read_floats(f, path, *slot, per_layer)) return SB_ERR;
    }
    return SB_OK;
}

int sb_model_load_llama2c(sb_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return sb_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sb_error("%s: not a regular file", path);
    }
    uint64_t file_size = (uint64_t)st.st_size;
    int32_t h[7];
    if (fread(h, sizeof h, 1, f) != 1) {
        fclose(f);
        return sb_error("%s: truncated llama2.c header (%llu bytes, need 28)", path, (unsigned long long)file_size);
    }
    int32_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4], vocab = h[5], seq = h[6];
    bool shared = vocab > 0;
    int64_t V = vocab < 0 ? -(int64_t)vocab : vocab;
    if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv <= 0 || V <= 0 || seq <= 0 ||
        n_kv > n_heads || n_heads % n_kv != 0 || dim % n_heads != 0 || (dim / n_heads) % 2 != 0) {
        fclose(f);
        return sb_error("%s: bad llama2.c header (dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, "
                        "vocab_size %d, seq_len %d)",
                        path, dim, hidden, n_layers, n_heads, n_kv, vocab, seq);
    }
    /* Expected size in floats, overflow-checked, before anything is allocated. */
    size_t C = (size_t)dim, F = (size_t)hidden, L = (size_t)n_layers, hd = C / (size_t)n_heads;
    size_t KV = hd * (size_t)n_kv, total = 0;
    bool ok = true;
#define ADD(a, b, c)                                                                                 \
    do {                                                                                             \
        size_t p1, p2;                                                                               \
        ok = ok && sb_mul_size((a), (b), &p1) && sb_mul_size(p1, (c), &p2) && sb_add_size(total, p2, &total); \
    } while (0)
    ADD((size_t)V, C, 1);        /* token_embedding */
    ADD(L, C, 1);                /* rms_att */
    ADD(L, C, C);                /* wq */
    ADD(L, KV, C);               /* wk */
    ADD(L, KV, C);               /* wv */
    ADD(L, C, C);                /* wo */
    ADD(L, C, 1);                /* rms_ffn */
    ADD(L, F, C);                /* w1 */
    ADD(L, C, F);                /* w2 */
    ADD(L, F, C);                /* w3 */
    ADD(C, 1, 1);                /* rms_final */
    ADD((size_t)seq, hd, 1);     /* freq_cis_real + imag: seq * hd/2 each */
    if (!shared) ADD((size_t)V, C, 1);
#undef ADD
    size_t bytes;
    ok = ok && sb_mul_size(total, sizeof(float), &bytes) && sb_add_size(bytes, sizeof h, &bytes);
    if (!ok || bytes != file_size) {
        fclose(f);
        if (!ok) return sb_error("%s: llama2.c header sizes overflow", path);
        return sb_error("%s: file has %llu bytes, the header (dim %d, n_layers %d, vocab %d) implies %zu%s", path,
                        (unsigned long long)file_size, dim, n_layers, vocab, bytes,
                        file_size < bytes ? " (truncated)" : "");
    }

    sb_model_config c;
    sb_model_config_default(&c);
    c.vocab_size = (int)V;
    c.dim = dim;
    c.n_layers = n_layers;
    c.n_heads = n_heads;
    c.n_kv_heads = n_kv;
    c.head_dim = (int)hd;
    c.ffn_dim = hidden;
    c.max_ctx = seq;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rotary_dim = (int)hd;
    c.rope_style = SB_ROPE_INTERLEAVED;
    c.tie_embeddings = shared;
    c.bos_id = V > 1 ? 1 : -1;
    c.eos_id = V > 2 ? 2 : -1;
    int rc = sb_model_alloc(m, &c);
    if (rc) {
        fclose(f);
        return sb_error("%s: %s", path, sb_last_error());
    }
    rc = read_floats(f, path, m->w.tok_embed, (size_t)V * C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, attn_norm_w), C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, wq), C * C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, wk), KV * C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, wv), KV * C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, wo), C * C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, mlp_norm_w), C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, w_gate), F * C) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, w_down), C * F) ||
         read_stacked(f, path, m, offsetof(sb_layer_weights, w_up), F * C) ||
         read_floats(f, path, m->w.final_norm_w, C);
    if (!rc && fseeko(f, (off_t)((size_t)seq * hd * sizeof(float)), SEEK_CUR) != 0)
        rc = sb_error("%s: cannot seek past freq_cis", path);
    if (!rc && !shared) rc = read_floats(f, path, m->w.lm_head, (size_t)V * C);
    fclose(f);
    if (rc) {
        sb_model_free(m);
        return SB_ERR;
    }
    return SB_OK;
}
