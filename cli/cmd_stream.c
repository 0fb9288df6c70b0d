/* sinkbench stream: one conversation that never restarts (the paper's use case).
 *
 * Prompts are read one per line (a file, or stdin); each is framed as
 * "USER: <prompt>\nASSISTANT: " and appended to the SAME decoder, whose cache the policy
 * keeps bounded; the answer is generated until EOS, a newline or --max-answer tokens. The
 * token that ended an answer (newline/EOS) is fed at the start of the next turn, so the
 * conversation the model sees is exactly the text that was printed.
 *
 * Soak mode (--tokens N) runs N tokens through the decoder (cycling the prompts, or sampling
 * freely without --prompts) and ends with a JSON summary: RSS at 10k tokens and at N, and
 * per-token latency right after the cache fills and over the last tokens, which is how the
 * constant-memory/constant-time claim is checked.
 *
 * A dense cache grows with every token and leaves the positions the model was trained on, so
 * dense is refused when --tokens exceeds the model's context and otherwise stops with a
 * clear error when the context is full; bounded policies must fit in the context too. */
#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "engine/common.h"
#include "engine/decoder.h"
#include "engine/model.h"
#include "engine/policy.h"
#include "engine/sampler.h"
#include "tokenizer/text_tok.h"
#include "util/provenance.h"

#define CMD "stream"
/* tokens over which the start/end per-token latency of a soak run is averaged */
#define LAT_WINDOW 1000
#define RSS_MILESTONE 10000

static const char stream_usage[] =
    "usage: sinkbench stream --model PATH --policy SPEC [options]\n"
    "  --model PATH        checkpoint directory, or a llama2.c .bin file\n"
    "  --policy SPEC       sinks:K:W | window:W | learned:W | sinks:K:W:newline | recompute:W;\n"
    "                      the cache must fit the model's context. dense stops when the context\n"
    "                      is full (and is refused when --tokens is larger)\n"
    "  --tokenizer PATH    tokenizer.json or llama2.c tokenizer .bin (default MODEL/tokenizer.json)\n"
    "  --prompts FILE      prompts, one per line ('-' = stdin, the default)\n"
    "  --max-answer N      tokens per answer at most (default 128); answers also end at EOS\n"
    "                      or a newline\n"
    "  --temperature T     0 = greedy (default 0.8)\n"
    "  --top-p P           nucleus threshold in (0, 1] (default 0.9)\n"
    "  --seed S            sampling seed (default 42)\n"
    "  --status-every N    status line on stderr every N tokens (default 1000; 0 = never)\n"
    "  --tokens N          soak mode: run exactly N tokens (prompt and answer tokens alike),\n"
    "                      cycling the prompts of --prompts, or sampling freely without it;\n"
    "                      ends with a JSON summary on stderr (RSS, per-token latency)\n"
    "  --json FILE         write the summary JSON to FILE instead (atomically)\n"
    "  --threads N         BLAS/OpenMP threads\n"
    "  --device DEV        cpu (default), cuda or cuda:N\n"
    "  --compute C         auto (default), f32, bf16 or f16 (GPU arithmetic)\n"
    "Answers go to stdout as they are produced, one line per prompt.\n";

typedef struct {
    const char *model, *tokenizer, *prompts, *policy, *json, *device;
    int64_t max_answer, status_every, tokens, seed, threads;
    sb_compute compute;
    double temperature, top_p;
} stream_args;

/* Everything a run accumulates. */
typedef struct {
    const stream_args *a;
    sb_policy_spec pol;
    sb_decoder *d;
    sb_sampler sampler;
    sb_text_tok *tok;              /* NULL: none (free-running soak) */
    float *logits;
    int64_t max_ctx, capacity;     /* capacity: cache slots the policy keeps at most */
    int32_t bos, eos, eos2;        /* -1 when absent; eos2: a second end token (llama2.c: EOS besides BOS) */
    int32_t prev;                  /* last token fed (llama2.c decoding depends on it) */
    int64_t n_fed, n_generated, n_turns;
    double t_start, t_status;
    int64_t n_status;              /* n_fed at the last status line */
    double rss_10k, peak_10k;      /* -1 until reached */
    int64_t fill_at;               /* n_fed when the cache first held `capacity` tokens, -1 */
    double lat_start_s, lat_end_s;
    int64_t lat_start_n, lat_end_n;
    double max_step_ms;
} stream_run;

static int parse_args(int argc, char **argv, stream_args *a) {
    *a = (stream_args){.max_answer = 128, .status_every = 1000, .tokens = -1, .seed = 42,
                       .temperature = 0.8, .top_p = 0.9};
    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **str = !strcmp(o, "--model") ? &a->model : !strcmp(o, "--tokenizer") ? &a->tokenizer
                         : !strcmp(o, "--prompts") ? &a->prompts : !strcmp(o, "--policy") ? &a->policy
                         : !strcmp(o, "--json") ? &a->json : !strcmp(o, "--device") ? &a->device : NULL;
        int rc = SB_OK;
        if (str) {
            if (!v || !v[0]) return sb_usage_error("%s needs a value", o);
            *str = v;
        } else if (!strcmp(o, "--max-answer")) rc = cli_parse_int(o, v, 1, INT32_MAX, &a->max_answer);
        else if (!strcmp(o, "--status-every")) rc = cli_parse_int(o, v, 0, INT64_MAX, &a->status_every);
        else if (!strcmp(o, "--tokens")) rc = cli_parse_int(o, v, 1, INT64_MAX / 2, &a->tokens);
        else if (!strcmp(o, "--seed")) rc = cli_parse_int(o, v, 0, INT64_MAX, &a->seed);
        else if (!strcmp(o, "--threads")) rc = cli_parse_int(o, v, 1, 4096, &a->threads);
        else if (!strcmp(o, "--compute")) rc = sb_compute_parse(v, o, &a->compute);
        else if (!strcmp(o, "--temperature")) rc = cli_parse_float(o, v, 0.0, 100.0, &a->temperature);
        else if (!strcmp(o, "--top-p")) rc = cli_parse_float(o, v, 1e-6, 1.0, &a->top_p);
        else return sb_usage_error("unknown option '%s' (see sinkbench stream --help)", o);
        if (rc) return rc;
    }
    if (!a->model) return sb_usage_error("--model is required");
    if (!a->policy) return sb_usage_error("--policy is required (e.g. sinks:4:508)");
    return SB_OK;
}

/* ------------------------------------------------------------------ tokenizer */

static int tok_load(sb_text_tok **t, const stream_args *a, const sb_model_config *cfg, bool needed) {
    char path[4096];
    const char *tp = a->tokenizer;
    if (!tp) {
        if (snprintf(path, sizeof path, "%s/tokenizer.json", a->model) >= (int)sizeof path)
            return sb_usage_error("--model: path too long");
        tp = path;
        struct stat st;
        if (stat(tp, &st) != 0) {
            if (!needed) return SB_OK;
            return sb_usage_error("%s: no tokenizer beside the model; pass --tokenizer PATH", tp);
        }
    }
    int rc = sb_text_tok_load(t, tp);
    return rc ? rc : sb_text_tok_check_vocab(*t, cfg->vocab_size);
}

/* ------------------------------------------------------------------ the run */

/* The cache size shown in the status line; an unbounded cache is shown against the context. */
static int64_t policy_capacity(const sb_policy_spec *p, int64_t max_ctx) {
    int64_t n = sb_policy_cache_size(p);
    return n > 0 ? n : max_ctx;
}

static void print_status(stream_run *r) {
    double now = sb_now();
    double dt = now - r->t_status;
    double rate = dt > 0 ? (double)(r->n_fed - r->n_status) / dt : 0;
    fprintf(stderr, "stream: %" PRId64 " tokens (%" PRId64 " generated, %" PRId64 " turns), %.1f tok/s, cache %" PRId64
                    "/%" PRId64 ", rss %.1f MiB (peak %.1f MiB)\n",
            r->n_fed, r->n_generated, r->n_turns, rate, sb_decoder_cache_len(r->d), r->capacity, sb_rss_mb(),
            sb_peak_rss_mb());
    fflush(stderr);
    r->t_status = now;
    r->n_status = r->n_fed;
}

/* Feed one token; logits of the next token when want_logits. */
static int feed(stream_run *r, int32_t token, bool want_logits) {
    if (sb_policy_capacity(&r->pol) == 0 && r->n_fed + sb_policy_prefix_len(&r->pol) >= r->max_ctx)
        return sb_error("the dense cache reached the model's context of %" PRId64 " tokens after %" PRId64
                        " turns; an endless conversation needs a bounded policy such as sinks:4:%" PRId64,
                        r->max_ctx, r->n_turns, r->max_ctx - 4);
    double t0 = sb_now();
    int rc = sb_decoder_step(r->d, token, want_logits ? r->logits : NULL);
    if (rc) return rc;
    double dt = sb_now() - t0;
    r->prev = token;
    r->n_fed++;
    if (dt * 1e3 > r->max_step_ms) r->max_step_ms = dt * 1e3;
    if (r->fill_at < 0 && sb_decoder_cache_len(r->d) >= r->capacity) r->fill_at = r->n_fed;
    /* start window: the first tokens that run at full cache */
    if (r->fill_at >= 0 && r->lat_start_n < LAT_WINDOW) {
        r->lat_start_s += dt;
        r->lat_start_n++;
    }
    if (r->a->tokens > 0 && r->n_fed > r->a->tokens - LAT_WINDOW) {
        r->lat_end_s += dt;
        r->lat_end_n++;
    }
    if (r->n_fed == RSS_MILESTONE) {
        r->rss_10k = sb_rss_mb();
        r->peak_10k = sb_peak_rss_mb();
    }
    if (r->a->status_every > 0 && r->n_fed % r->a->status_every == 0) print_status(r);
    return SB_OK;
}

static bool budget_left(const stream_run *r) { return r->a->tokens < 0 || r->n_fed < r->a->tokens; }

static void emit(const char *p, size_t len) {
    if (!p || !len) return;
    fwrite(p, 1, len, stdout);
    fflush(stdout);
}

/* One turn: feed the pending stop token of the previous answer (if any), the framed prompt,
 * then generate. *pending receives the token that ended this answer (-1: none). */
static int turn(stream_run *r, const char *prompt, int32_t *pending) {
    bool need_sep = r->n_turns > 0 && *pending < 0; /* the previous answer hit --max-answer */
    size_t plen = strlen(prompt);
    char *text = malloc_check(plen + 32);
    snprintf(text, plen + 32, "%sUSER: %s\nASSISTANT: ", need_sep ? "\n" : "", prompt);
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = sb_text_tok_encode(r->tok, text, -1, &ids, &n);
    free(text);
    if (rc) return rc;
    r->n_turns++;
    if (*pending >= 0 && budget_left(r)) rc = feed(r, *pending, n == 0);
    *pending = -1;
    for (size_t i = 0; !rc && i < n && budget_left(r); i++) rc = feed(r, ids[i], i + 1 == n);
    free(ids);
    if (rc || !budget_left(r)) return rc;
    for (int64_t k = 0; k < r->a->max_answer && budget_left(r); k++) {
        int32_t next = sb_sampler_sample(&r->sampler, r->logits);
        r->n_generated++;
        if (next == r->eos || next == r->eos2) {
            *pending = next;
            break;
        }
        size_t len;
        const char *p = sb_text_tok_piece(r->tok, r->prev, next, &len);
        const char *nl = p ? memchr(p, '\n', len) : NULL;
        if (nl) {
            emit(p, (size_t)(nl - p));
            *pending = next;
            break;
        }
        emit(p, len);
        if ((rc = feed(r, next, true))) return rc;
    }
    printf("\n");
    fflush(stdout);
    return SB_OK;
}

/* Soak mode without prompts: sample and feed until the budget is spent. */
static int free_run(stream_run *r) {
    int32_t start = r->bos >= 0 ? r->bos : r->eos >= 0 ? r->eos : 0;
    int rc = feed(r, start, true);
    while (!rc && budget_left(r)) {
        int32_t next = sb_sampler_sample(&r->sampler, r->logits);
        r->n_generated++;
        size_t len;
        const char *p = sb_text_tok_piece(r->tok, r->prev, next, &len);
        emit(p, len);
        rc = feed(r, next, true);
    }
    printf("\n");
    fflush(stdout);
    return rc;
}

/* Read the whole prompts file (soak mode cycles it); empty lines are skipped. */
static int read_prompts(FILE *f, const char *name, char ***out, size_t *n) {
    char *line = NULL;
    size_t cap = 0, count = 0, alloc = 0;
    char **lines = NULL;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (count == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            char **grown = realloc(lines, alloc * sizeof *lines);
            if (!grown) abort();
            lines = grown;
        }
        lines[count++] = strdup(line);
    }
    free(line);
    if (ferror(f)) {
        for (size_t i = 0; i < count; i++) free(lines[i]);
        free(lines);
        return sb_error("%s: read error", name);
    }
    *out = lines;
    *n = count;
    return SB_OK;
}

static int write_summary(stream_run *r, double wall_s, double load_s) {
    const stream_args *a = r->a;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "command", "stream");
    cJSON_AddStringToObject(o, "policy", r->pol.spec);
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "mode", a->tokens > 0 ? (a->prompts ? "soak_prompts" : "soak_free") : "prompts");
    cJSON_AddNumberToObject(o, "tokens", (double)r->n_fed);
    cJSON_AddNumberToObject(o, "generated", (double)r->n_generated);
    cJSON_AddNumberToObject(o, "turns", (double)r->n_turns);
    cJSON_AddNumberToObject(o, "cache_len", (double)sb_decoder_cache_len(r->d));
    cJSON_AddNumberToObject(o, "cache_capacity", (double)r->capacity);
    cJSON_AddNumberToObject(o, "cache_bytes", (double)sb_decoder_cache_bytes(r->d));
    cJSON_AddNumberToObject(o, "wall_s", wall_s);
    cJSON_AddNumberToObject(o, "load_s", load_s);
    cJSON_AddNumberToObject(o, "tokens_per_s", wall_s > 0 ? (double)r->n_fed / wall_s : 0);
    double rss_end = sb_rss_mb(), peak_end = sb_peak_rss_mb();
    if (r->rss_10k >= 0) {
        cJSON_AddNumberToObject(o, "rss_mb_at_10k", r->rss_10k);
        cJSON_AddNumberToObject(o, "peak_rss_mb_at_10k", r->peak_10k);
        /* the acceptance figure: how much the peak grew after the first 10k tokens */
        cJSON_AddNumberToObject(o, "peak_growth_pct_after_10k", 100.0 * (peak_end / r->rss_10k - 1.0));
    } else {
        cJSON_AddNullToObject(o, "rss_mb_at_10k");
        cJSON_AddNullToObject(o, "peak_rss_mb_at_10k");
        cJSON_AddNullToObject(o, "peak_growth_pct_after_10k");
    }
    cJSON_AddNumberToObject(o, "rss_mb_at_end", rss_end);
    cJSON_AddNumberToObject(o, "peak_rss_mb_at_end", peak_end);
    cJSON_AddNumberToObject(o, "cache_full_at", (double)r->fill_at);
    cJSON_AddNumberToObject(o, "latency_window", LAT_WINDOW);
    if (r->lat_start_n > 0) cJSON_AddNumberToObject(o, "ms_per_token_start", 1e3 * r->lat_start_s / (double)r->lat_start_n);
    else cJSON_AddNullToObject(o, "ms_per_token_start");
    if (r->lat_end_n > 0) cJSON_AddNumberToObject(o, "ms_per_token_end", 1e3 * r->lat_end_s / (double)r->lat_end_n);
    else cJSON_AddNullToObject(o, "ms_per_token_end");
    cJSON_AddNumberToObject(o, "max_step_ms", r->max_step_ms);
    cJSON_AddNumberToObject(o, "temperature", a->temperature);
    cJSON_AddNumberToObject(o, "top_p", a->top_p);
    cJSON_AddNumberToObject(o, "seed", (double)a->seed);
    cJSON_AddNumberToObject(o, "threads", sb_host_threads(0));
    sb_provenance prov;
    sb_provenance_collect(&prov);
    sb_provenance_to_json(&prov, o);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return sb_error("cannot format the JSON summary");
    int rc = SB_OK;
    if (a->json) {
        size_t len = strlen(s);
        s[len] = '\n';
        rc = sb_write_file_atomic(a->json, s, len + 1);
        s[len] = '\0';
    } else {
        fprintf(stderr, "%s\n", s);
    }
    free(s);
    return rc;
}

static int run_stream(const stream_args *a) {
    stream_run r;
    memset(&r, 0, sizeof r);
    r.a = a;
    r.rss_10k = r.peak_10k = -1;
    r.fill_at = -1;
    int rc = sb_policy_parse(a->policy, &r.pol);
    if (rc) return rc;
    sb_model m;
    memset(&m, 0, sizeof m);
    FILE *pf = NULL;
    char **lines = NULL;
    size_t n_lines = 0;
    sb_backend *backend = NULL;
    double t_load = sb_now();
    if ((rc = sb_model_load(&m, a->model))) return rc;
    double load_s = sb_now() - t_load;
    r.max_ctx = m.cfg.max_ctx;
    r.capacity = policy_capacity(&r.pol, r.max_ctx);
    if ((rc = sb_policy_check_model(&r.pol, &m.cfg))) goto done;
    if (sb_policy_capacity(&r.pol) == 0) {
        if (a->tokens > 0 && a->tokens + sb_policy_prefix_len(&r.pol) > r.max_ctx) {
            rc = sb_usage_error("--policy dense: --tokens %" PRId64 " exceeds the model's context of %" PRId64
                                " tokens and the cache would grow without bound; use sinks:4:%" PRId64,
                                a->tokens, r.max_ctx, r.max_ctx - 4);
            goto done;
        }
    } else if (r.capacity > r.max_ctx) {
        rc = sb_usage_error("--policy %s keeps %" PRId64 " tokens, more than the model's context of %" PRId64
                            " (positions past it were never trained); use a smaller window",
                            r.pol.spec, r.capacity, r.max_ctx);
        goto done;
    }
    bool free_running = a->tokens > 0 && !a->prompts;
    if ((rc = tok_load(&r.tok, a, &m.cfg, !free_running))) goto done;
    r.bos = sb_text_tok_bos(r.tok, m.cfg.bos_id);
    int32_t stop[2];
    sb_text_tok_stops(r.tok, m.cfg.eos_id, stop);
    r.eos = stop[0];
    r.eos2 = stop[1];
    if (a->prompts && a->tokens > 0) {
        pf = strcmp(a->prompts, "-") ? fopen(a->prompts, "r") : stdin;
        if (!pf) {
            rc = sb_error("%s: cannot open the prompts file", a->prompts);
            goto done;
        }
        if ((rc = read_prompts(pf, a->prompts, &lines, &n_lines))) goto done;
        if (n_lines == 0) {
            rc = sb_error("%s: no prompts (every line is empty)", a->prompts);
            goto done;
        }
    } else if (!free_running) {
        pf = a->prompts && strcmp(a->prompts, "-") ? fopen(a->prompts, "r") : stdin;
        if (!pf) {
            rc = sb_error("%s: cannot open the prompts file", a->prompts);
            goto done;
        }
    }
    int64_t hint = sb_policy_capacity(&r.pol) == 0 ? r.max_ctx : r.capacity + 1;
    sb_backend_opts bo = {.device = a->device, .compute = a->compute, .threads = (int)a->threads};
    if ((rc = sb_backend_open(&backend, &m, &bo))) goto done;
    if ((rc = sb_decoder_new_on(&r.d, backend, &r.pol, hint))) goto done;
    if ((rc = sb_sampler_init(&r.sampler, m.cfg.vocab_size, a->temperature, a->top_p, (uint64_t)a->seed))) goto done;
    r.logits = malloc_check((size_t)m.cfg.vocab_size * sizeof *r.logits);
    r.t_start = r.t_status = sb_now();

    /* BOS once, at the very start of the conversation */
    if (!free_running && r.bos >= 0 && (rc = feed(&r, r.bos, false))) goto done;
    int32_t pending = -1;
    if (free_running) {
        rc = free_run(&r);
    } else if (lines) {
        for (size_t i = 0; !rc && budget_left(&r); i = (i + 1) % n_lines) rc = turn(&r, lines[i], &pending);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (!rc && budget_left(&r) && (len = getline(&line, &cap, pf)) >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
            if (len == 0) continue;
            rc = turn(&r, line, &pending);
        }
        free(line);
        if (!rc && ferror(pf)) rc = sb_error("%s: read error", a->prompts ? a->prompts : "stdin");
    }
    if (rc) goto done;
    double wall_s = sb_now() - r.t_start;
    if (a->status_every > 0 && r.n_fed != r.n_status) print_status(&r);
    if (a->tokens > 0 || a->json) rc = write_summary(&r, wall_s, load_s);

done:
    if (pf && pf != stdin) fclose(pf);
    for (size_t i = 0; i < n_lines; i++) free(lines[i]);
    free(lines);
    free(r.logits);
    sb_sampler_free(&r.sampler);
    sb_decoder_free(r.d);
    sb_backend_close(backend);
    sb_text_tok_free(r.tok);
    sb_model_free(&m);
    return rc;
}

int cmd_stream(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(stream_usage, stdout);
            return 0;
        }
    stream_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return cli_fail(CMD, rc);
    sb_host_threads((int)a.threads);
    rc = run_stream(&a);
    return rc ? cli_fail(CMD, rc) : 0;
}
