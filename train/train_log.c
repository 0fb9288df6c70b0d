/* Loss history and the HDF5 training log (util/h5.h).
 *
 * train_log.h5 (rewritten atomically at every evaluation and checkpoint, so it always matches
 * the history a resume continues from):
 *   step [n] i64, train_loss [n], heldout_loss [n], tokens_per_s [n], lr [n] (f64),
 *   sink_share [n, layers, heads] f64: mean attention of queries at positions > 16 on
 *       position 0 over the held-out windows,
 *   step_loss [steps_done] f32: the training loss of every optimizer step;
 *   root attributes: variant, layers, heads, seq_len, sink_share_min_query, params, config
 *   (the resolved INI) and the provenance keys. */
#include "train/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "util/h5.h"
#include "util/provenance.h"

void sb_train_history_push(sb_train_history *h, int64_t step, double train_loss, double heldout_loss,
                           double tokens_per_s, double lr, const double *sink) {
    size_t lh = (size_t)h->n_layers * h->n_heads;
    if (h->n == h->cap) {
        int64_t cap = h->cap ? 2 * h->cap : 16;
        h->step = realloc(h->step, (size_t)cap * sizeof *h->step);
        h->train_loss = realloc(h->train_loss, (size_t)cap * sizeof(double));
        h->heldout_loss = realloc(h->heldout_loss, (size_t)cap * sizeof(double));
        h->tokens_per_s = realloc(h->tokens_per_s, (size_t)cap * sizeof(double));
        h->lr = realloc(h->lr, (size_t)cap * sizeof(double));
        h->sink_share = realloc(h->sink_share, (size_t)cap * (lh ? lh : 1) * sizeof(double));
        if (!h->step || !h->train_loss || !h->heldout_loss || !h->tokens_per_s || !h->lr || !h->sink_share) {
            fprintf(stderr, "sinkbench: out of memory growing the training history\n");
            exit(1);
        }
        h->cap = cap;
    }
    size_t i = (size_t)h->n++;
    h->step[i] = step;
    h->train_loss[i] = train_loss;
    h->heldout_loss[i] = heldout_loss;
    h->tokens_per_s[i] = tokens_per_s;
    h->lr[i] = lr;
    memcpy(h->sink_share + i * lh, sink, lh * sizeof(double));
}

void sb_train_history_free(sb_train_history *h) {
    free(h->step);
    free(h->train_loss);
    free(h->heldout_loss);
    free(h->tokens_per_s);
    free(h->lr);
    free(h->sink_share);
    int L = h->n_layers, H = h->n_heads;
    memset(h, 0, sizeof *h);
    h->n_layers = L;
    h->n_heads = H;
}

int sb_train_log_write(const sb_trainer *t, const char *path) {
    const sb_train_history *h = &t->hist;
    const sb_train_config *c = t->cfg;
    sb_h5 *f;
    if (sb_h5_create(&f, path)) return SB_ERR;
    int64_t n = h->n;
    int64_t dims3[3] = {n, h->n_layers, h->n_heads};
    char *ini = sb_train_config_to_ini(c);
    sb_provenance prov;
    sb_provenance_collect(&prov);
    int rc = sb_h5_write_i64(f, "step", h->step, n) || sb_h5_write_f64(f, "train_loss", h->train_loss, n) ||
             sb_h5_write_f64(f, "heldout_loss", h->heldout_loss, n) ||
             sb_h5_write_f64(f, "tokens_per_s", h->tokens_per_s, n) || sb_h5_write_f64(f, "lr", h->lr, n) ||
             sb_h5_write(f, "sink_share", SB_H5_F64, 3, dims3, h->sink_share) ||
             sb_h5_write_f32(f, "step_loss", t->step_loss, t->step) ||
             sb_h5_attr_str(f, NULL, "variant", sb_train_variant_name(c->variant)) ||
             sb_h5_attr_i64(f, NULL, "layers", h->n_layers) || sb_h5_attr_i64(f, NULL, "heads", h->n_heads) ||
             sb_h5_attr_i64(f, NULL, "seq_len", c->seq_len) ||
             sb_h5_attr_i64(f, NULL, "sink_share_min_query", 17) ||
             sb_h5_attr_i64(f, NULL, "params", (int64_t)t->model.n_params) ||
             sb_h5_attr_i64(f, NULL, "steps_done", t->step) ||
             sb_h5_attr_str(f, NULL, "config", ini ? ini : "") || sb_provenance_to_h5(&prov, f);
    free(ini);
    if (rc) {
        sb_h5_abort(f);
        return SB_ERR;
    }
    return sb_h5_commit(f);
}
