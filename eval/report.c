/* REPORT.md and index.html from the experiment files. Every block is emitted to both
 * documents at once, so they always say the same thing. */
#include "eval/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/common.h"
#include "eval/study.h"
#include "eval/study_table.h"
#include "util/h5.h"

#define ATTR_CAP ((size_t)1 << 20)

typedef struct {
    sb_study_buf md, html;
} doc;

static void md_cell(sb_study_buf *b, const char *s) {
    for (const char *p = s; *p; p++) {
        if (*p == '|') sb_study_buf_printf(b, "\\|");
        else if (*p == '\n') sb_study_buf_printf(b, " ");
        else sb_study_buf_printf(b, "%c", *p);
    }
}

static void doc_heading(doc *d, int level, const char *anchor, const char *text) {
    sb_study_buf_printf(&d->md, "\n%.*s %s\n\n", level, "######", text);
    sb_study_buf_printf(&d->html, "<h%d id=\"%s\">", level, anchor);
    sb_study_buf_html(&d->html, text);
    sb_study_buf_printf(&d->html, "</h%d>\n", level);
}

/* Escaped HTML of Markdown-ish text: `code` spans become <code>. */
static void html_inline(sb_study_buf *b, const char *text) {
    bool code = false;
    for (const char *p = text; *p; p++) {
        if (*p == '`') {
            sb_study_buf_printf(b, code ? "</code>" : "<code>");
            code = !code;
            continue;
        }
        char one[2] = {*p, 0};
        sb_study_buf_html(b, one);
    }
    if (code) sb_study_buf_printf(b, "</code>");
}

/* A paragraph with an optional bold lead. */
static void doc_para(doc *d, const char *lead, const char *text) {
    if (lead) sb_study_buf_printf(&d->md, "**%s** ", lead);
    sb_study_buf_printf(&d->md, "%s\n\n", text);
    sb_study_buf_printf(&d->html, "<p>");
    if (lead) {
        sb_study_buf_printf(&d->html, "<b>");
        sb_study_buf_html(&d->html, lead);
        sb_study_buf_printf(&d->html, "</b> ");
    }
    html_inline(&d->html, text);
    sb_study_buf_printf(&d->html, "</p>\n");
}

static void doc_table(doc *d, const sb_study_table *t) {
    if (t->n_rows < 1 || t->n_cols < 1) return;
    if (t->caption[0]) {
        sb_study_buf_printf(&d->md, "*%s*\n\n", t->caption);
    }
    for (int r = 0; r < t->n_rows; r++) {
        sb_study_buf_printf(&d->md, "|");
        for (int c = 0; c < t->n_cols; c++) {
            sb_study_buf_printf(&d->md, " ");
            md_cell(&d->md, sb_study_table_get(t, r, c));
            sb_study_buf_printf(&d->md, " |");
        }
        sb_study_buf_printf(&d->md, "\n");
        if (r == 0) {
            sb_study_buf_printf(&d->md, "|");
            for (int c = 0; c < t->n_cols; c++) sb_study_buf_printf(&d->md, "%s|", c ? "---:" : "---");
            sb_study_buf_printf(&d->md, "\n");
        }
    }
    sb_study_buf_printf(&d->md, "\n");
    sb_study_buf_printf(&d->html, "<table>\n");
    if (t->caption[0]) {
        sb_study_buf_printf(&d->html, "<caption>");
        sb_study_buf_html(&d->html, t->caption);
        sb_study_buf_printf(&d->html, "</caption>\n");
    }
    for (int r = 0; r < t->n_rows; r++) {
        sb_study_buf_printf(&d->html, "<tr>");
        for (int c = 0; c < t->n_cols; c++) {
            sb_study_buf_printf(&d->html, r == 0 ? "<th>" : "<td>");
            sb_study_buf_html(&d->html, sb_study_table_get(t, r, c));
            sb_study_buf_printf(&d->html, r == 0 ? "</th>" : "</td>");
        }
        sb_study_buf_printf(&d->html, "</tr>\n");
    }
    sb_study_buf_printf(&d->html, "</table>\n");
}

static void doc_figure(doc *d, const char *src, const char *caption) {
    sb_study_buf_printf(&d->md, "![%s](%s)\n\n*%s*\n\n", caption, src, caption);
    sb_study_buf_printf(&d->html, "<figure><img src=\"%s\" alt=\"", src);
    sb_study_buf_html(&d->html, caption);
    sb_study_buf_printf(&d->html, "\"><figcaption>");
    sb_study_buf_html(&d->html, caption);
    sb_study_buf_printf(&d->html, "</figcaption></figure>\n");
}

/* Bulleted list of the non-empty lines of text (at most max, then a count). */
static void doc_list(doc *d, const char *text, int max) {
    int n = 0, total = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) total++;
        p = nl ? nl + 1 : p + len;
    }
    if (!total) return;
    sb_study_buf_printf(&d->html, "<ul>\n");
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && n < max) {
            char *line = strndup(p, len);
            sb_study_buf_printf(&d->md, "- %s\n", line);
            sb_study_buf_printf(&d->html, "<li>");
            sb_study_buf_html(&d->html, line);
            sb_study_buf_printf(&d->html, "</li>\n");
            free(line);
            n++;
        }
        p = nl ? nl + 1 : p + len;
    }
    if (total > n) {
        sb_study_buf_printf(&d->md, "- ... and %d more (see the notes attribute of the .h5 file)\n", total - n);
        sb_study_buf_printf(&d->html, "<li>... and %d more (see the notes attribute of the .h5 file)</li>\n", total - n);
    }
    sb_study_buf_printf(&d->md, "\n");
    sb_study_buf_printf(&d->html, "</ul>\n");
}

/* ----------------------------------------------------------------- reading */

static char *attr(sb_h5 *f, const char *key) {
    char *buf = malloc(ATTR_CAP);
    if (!buf) return strdup("");
    if (!sb_h5_attr_has(f, NULL, key) || sb_h5_attr_get_str(f, NULL, key, buf, ATTR_CAP) != SB_OK) buf[0] = '\0';
    sb_clear_error();
    char *s = strdup(buf);
    free(buf);
    return s ? s : strdup("");
}

static void trim(char *s) {
    char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    memmove(s, p, strlen(p) + 1);
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
}

/* Split a '|'-separated line into the cells of row r (at most n_cols). */
static void fill_row(sb_study_table *t, int r, const char *line) {
    const char *p = line;
    for (int c = 0; c < t->n_cols && p; c++) {
        const char *bar = strchr(p, '|');
        char *cell = bar ? strndup(p, (size_t)(bar - p)) : strdup(p);
        trim(cell);
        sb_study_table_set(t, r, c, "%s", cell);
        free(cell);
        p = bar ? bar + 1 : NULL;
    }
}

static int count_fields(const char *line) {
    int n = 1;
    for (const char *p = line; *p; p++) n += *p == '|';
    return n;
}

/* The paper's tables of an experiment, from the INI text stored in its file. */
static void paper_tables(doc *d, const char *config_text, const char *mode_name) {
    sb_study_mode mode = SB_STUDY_QUICK;
    sb_study_mode_parse(mode_name, &mode);
    sb_study_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return;
    if (sb_study_config_parse(cfg, config_text, "stored config", mode) != SB_OK) {
        sb_clear_error();
        free(cfg);
        return;
    }
    for (int i = 0; i < cfg->n_paper; i++) {
        const sb_study_paper *p = &cfg->paper[i];
        sb_study_table t;
        sb_study_table_init(&t, p->caption, count_fields(p->columns), NULL);
        fill_row(&t, 0, p->columns);
        for (int r = 0; r < p->n_rows; r++) fill_row(&t, sb_study_table_add_row(&t), p->rows[r]);
        doc_table(d, &t);
        sb_study_table_free(&t);
    }
    sb_study_config_free(cfg);
    free(cfg);
}

typedef struct {
    char name[64];
    char line[1024];
} model_row;

static void add_models(model_row *rows, int *n, int cap, const char *info) {
    for (const char *p = info; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *bar = memchr(p, '|', len);
        if (bar && len < sizeof rows[0].line) {
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(bar - p), p);
            bool seen = false;
            for (int i = 0; i < *n && !seen; i++) seen = !strcmp(rows[i].name, name);
            if (!seen && *n < cap) {
                sb_study_copy(rows[*n].name, sizeof rows[*n].name, name);
                snprintf(rows[*n].line, sizeof rows[*n].line, "%.*s", (int)len, p);
                (*n)++;
            }
        }
        p = nl ? nl + 1 : p + len;
    }
}

static void models_table(doc *d, const model_row *rows, int n) {
    static const char *const head[] = {"model", "kind", "parameters", "layers x dim", "heads (kv)", "context",
                                       "softmax", "sink token", "status"};
    sb_study_table t;
    sb_study_table_init(&t, "Models used by this run", 9, head);
    for (int i = 0; i < n; i++) {
        /* name|label|kind|dir|params|layers|dim|heads|kv_heads|ctx|softmax|sink_token|status|why */
        char f[14][300];
        memset(f, 0, sizeof f);
        const char *p = rows[i].line;
        for (int k = 0; k < 14 && p; k++) {
            const char *bar = strchr(p, '|');
            snprintf(f[k], sizeof f[k], "%.*s", bar ? (int)(bar - p) : (int)strlen(p), p);
            p = bar ? bar + 1 : NULL;
        }
        int r = sb_study_table_add_row(&t);
        sb_study_table_set(&t, r, 0, "%s (%s)", f[1], f[3]);
        sb_study_table_set(&t, r, 1, "%s", f[2]);
        if (!strcmp(f[12], "ok")) {
            sb_study_table_set(&t, r, 2, "%.2f M", atof(f[4]) / 1e6);
            sb_study_table_set(&t, r, 3, "%s x %s", f[5], f[6]);
            sb_study_table_set(&t, r, 4, "%s (%s)", f[7], f[8]);
            sb_study_table_set(&t, r, 5, "%s", f[9]);
            sb_study_table_set(&t, r, 6, "%s", f[10]);
            sb_study_table_set(&t, r, 7, "%s", atoi(f[11]) >= 0 ? f[11] : "none");
            sb_study_table_set(&t, r, 8, "ok");
        } else {
            sb_study_table_set(&t, r, 8, "%s: %s", f[12], f[13]);
        }
    }
    doc_table(d, &t);
    sb_study_table_free(&t);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

#define MAX_HOSTS 32
#define MAX_THREADS 16

/* What the header says about the run: the first experiment's aggregation provenance, and every
 * machine that ran cells of any experiment (from their cells_machines_csv). */
typedef struct {
    char git[160], date[160], mode[160];
    struct {
        char host[128], cpu[160], cores[32];
    } hosts[MAX_HOSTS];
    int n_hosts;
    bool more_hosts;
    int64_t threads[MAX_THREADS];
    int n_threads;
} run_info;

static void note_threads(run_info *ri, const char *list) {
    for (const char *p = list; *p;) {
        char *end;
        long long t = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        sb_study_add_distinct(ri->threads, &ri->n_threads, MAX_THREADS, t);
    }
}

static void note_machines(run_info *ri, const char *csv) {
    if (!csv[0]) return;
    sb_study_table t;
    if (sb_study_table_from_csv(&t, "", csv) != SB_OK) {
        sb_clear_error();
        sb_study_table_free(&t);
        return;
    }
    for (int r = 1; r < t.n_rows && t.n_cols >= 5; r++) {
        const char *host = sb_study_table_get(&t, r, 0), *cpu = sb_study_table_get(&t, r, 1),
                   *cores = sb_study_table_get(&t, r, 2);
        bool seen = false;
        for (int i = 0; i < ri->n_hosts && !seen; i++)
            seen = !strcmp(ri->hosts[i].host, host) && !strcmp(ri->hosts[i].cpu, cpu) &&
                   !strcmp(ri->hosts[i].cores, cores);
        if (!seen && ri->n_hosts == MAX_HOSTS) ri->more_hosts = true;
        else if (!seen) {
            sb_study_copy(ri->hosts[ri->n_hosts].host, sizeof ri->hosts[0].host, host);
            sb_study_copy(ri->hosts[ri->n_hosts].cpu, sizeof ri->hosts[0].cpu, cpu);
            sb_study_copy(ri->hosts[ri->n_hosts].cores, sizeof ri->hosts[0].cores, cores);
            ri->n_hosts++;
        }
        note_threads(ri, sb_study_table_get(&t, r, 4));
    }
    sb_study_table_free(&t);
}

/* "Cells ran on: <one machine>; <another>." from the cells_machines lines. */
static void cells_line(doc *d, const char *machines) {
    sb_study_buf b = {0};
    sb_study_buf_printf(&b, "Cells ran on: ");
    int n = 0;
    for (const char *p = machines; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0) sb_study_buf_printf(&b, "%s%.*s", n++ ? "; " : "", (int)len, p);
        p = nl ? nl + 1 : p + len;
    }
    sb_study_buf_printf(&b, ".");
    if (n) doc_para(d, NULL, sb_study_buf_str(&b));
    sb_study_buf_free(&b);
}

/* One experiment's section. */
static void experiment_section(doc *d, const char *results, const char *name, int idx, model_row *models,
                               int *n_models, bool *smoke, bool *random, run_info *ri) {
    char path[1024];
    sb_study_fmt(path, sizeof path, "%s/%s.h5", results, name);
    sb_h5 *f = NULL;
    char heading[600];
    if (sb_h5_open(&f, path) != SB_OK) {
        snprintf(heading, sizeof heading, "%d. %s", idx, name);
        doc_heading(d, 2, name, heading);
        char msg[1200];
        snprintf(msg, sizeof msg, "Not run: %s.", sb_last_error());
        sb_clear_error();
        doc_para(d, NULL, msg);
        return;
    }
    char *title = attr(f, "title"), *ref = attr(f, "paper_ref"), *finding = attr(f, "finding"),
         *notes = attr(f, "notes"), *figures = attr(f, "figures"), *config = attr(f, "config"), *mode = attr(f, "mode"),
         *minfo = attr(f, "models_info"), *cfg_path = attr(f, "config_path"), *data = attr(f, "data");
    if (!strcmp(mode, "smoke")) *smoke = true;
    if (strstr(minfo, "smoke")) *random = true;
    add_models(models, n_models, 64, minfo);
    if (!ri->git[0]) {
        char *git = attr(f, "git_rev"), *date = attr(f, "date_utc");
        sb_study_copy(ri->git, sizeof ri->git, git[0] ? git : "?");
        sb_study_copy(ri->date, sizeof ri->date, date);
        sb_study_copy(ri->mode, sizeof ri->mode, mode);
        free(git);
        free(date);
    }
    char *machines = attr(f, "cells_machines"), *machines_csv = attr(f, "cells_machines_csv");
    note_machines(ri, machines_csv);
    snprintf(heading, sizeof heading, "%d. %s", idx, title);
    doc_heading(d, 2, name, heading);
    char meta[2048];
    snprintf(meta, sizeof meta, "Experiment `%s` (%s; config %s%s%s; results %s/%s.h5 and %s/%s.csv).", name,
             ref[0] ? ref : "no paper counterpart", cfg_path, data[0] ? ", data " : "", data, results, name, results, name);
    doc_para(d, NULL, meta);
    cells_line(d, machines);
    doc_para(d, "What it shows:", finding[0] ? finding : "nothing yet.");

    int64_t n_tables = 0;
    if (sb_h5_attr_get_i64(f, NULL, "n_tables", &n_tables) != SB_OK) n_tables = 0;
    sb_clear_error();
    for (int64_t i = 0; i < n_tables; i++) {
        char key[64];
        snprintf(key, sizeof key, "table%lld_caption", (long long)i);
        char *cap = attr(f, key);
        snprintf(key, sizeof key, "table%lld_csv", (long long)i);
        char *csv = attr(f, key);
        sb_study_table t;
        if (sb_study_table_from_csv(&t, cap, csv) == SB_OK && t.n_rows > 1) doc_table(d, &t);
        sb_clear_error();
        sb_study_table_free(&t);
        free(cap);
        free(csv);
    }
    paper_tables(d, config, mode);

    for (const char *p = figures; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *bar = memchr(p, '|', len);
        if (bar) {
            char base[512], cap[1024], png[1200];
            snprintf(base, sizeof base, "%.*s", (int)(bar - p), p);
            snprintf(cap, sizeof cap, "%.*s", (int)(len - (size_t)(bar - p) - 1), bar + 1);
            sb_study_fmt(png, sizeof png, "%s/figures/%s.png", results, base);
            char rel[600];
            snprintf(rel, sizeof rel, "figures/%s.png", base);
            if (file_exists(png)) doc_figure(d, rel, cap);
            else {
                char msg[1400];
                snprintf(msg, sizeof msg, "Figure %s was not drawn (run plots/plot_all.sh %s; needs gnuplot).", rel, results);
                doc_para(d, NULL, msg);
            }
        }
        p = nl ? nl + 1 : p + len;
    }
    if (notes[0]) {
        doc_para(d, "Notes:", "cells not run, models skipped, failures.");
        doc_list(d, notes, 25);
    }
    free(title);
    free(ref);
    free(finding);
    free(notes);
    free(figures);
    free(config);
    free(mode);
    free(minfo);
    free(cfg_path);
    free(data);
    free(machines);
    free(machines_csv);
    sb_h5_close(f);
}

static const char *const html_head =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>sinkbench study report</title>\n<style>\n"
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}\n"
    "table{border-collapse:collapse;margin:1em 0;font-size:90%}\n"
    "th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}\n"
    "td:first-child,th:first-child{text-align:left}caption{font-style:italic;text-align:left;padding:4px 0}\n"
    "figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-style:italic;font-size:90%}\n"
    ".banner{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em}\n"
    "</style></head><body>\n";

int sb_report_write(const char *const *experiments, int n, const sb_report_opts *o) {
    const char *results = o && o->results_dir ? o->results_dir : "results";
    doc body = {0}, d = {0};
    model_row *models = calloc(64, sizeof *models);
    if (!models) return sb_error("out of memory writing the report");
    int n_models = 0;
    bool smoke = false, random = false;
    run_info *ri = calloc(1, sizeof *ri);
    if (!ri) {
        free(models);
        return sb_error("out of memory writing the report");
    }
    for (int i = 0; i < n; i++)
        experiment_section(&body, results, experiments[i], i + 1, models, &n_models, &smoke, &random, ri);

    doc_heading(&d, 1, "top", "sinkbench: reproducing StreamingLLM (attention sinks)");
    char line[4096];
    snprintf(line, sizeof line, "Mode %s, git %s, %s UTC%s%s.", ri->mode[0] ? ri->mode : "?", ri->git[0] ? ri->git : "?",
             ri->date[0] ? ri->date : "?", o && o->command ? ", command: " : "", o && o->command ? o->command : "");
    doc_para(&d, NULL, line);
    /* the cells' machines, not the one that aggregated them: cells may be copied in from elsewhere */
    if (ri->n_hosts == 1) {
        char threads[256] = "";
        for (int i = 0; i < ri->n_threads; i++) {
            size_t len = strlen(threads);
            snprintf(threads + len, sizeof threads - len, "%s%lld", i ? " or " : "", (long long)ri->threads[i]);
        }
        snprintf(line, sizeof line, "Cells ran on host %s (%s, %s cores, %s thread%s per cell).", ri->hosts[0].host,
                 ri->hosts[0].cpu, ri->hosts[0].cores, ri->n_threads ? threads : "unrecorded",
                 ri->n_threads == 1 && ri->threads[0] == 1 ? "" : "s");
        doc_para(&d, NULL, line);
    } else if (ri->n_hosts > 1) {
        sb_study_buf b = {0};
        sb_study_buf_printf(&b, "Cells ran on several machines: ");
        for (int i = 0; i < ri->n_hosts; i++)
            sb_study_buf_printf(&b, "%s%s (%s, %s cores)", i ? ", " : "", ri->hosts[i].host, ri->hosts[i].cpu,
                                ri->hosts[i].cores);
        sb_study_buf_printf(&b, "%s; each experiment says which.", ri->more_hosts ? " and more" : "");
        doc_para(&d, NULL, sb_study_buf_str(&b));
        sb_study_buf_free(&b);
    }
    if (o && o->wall_s > 0) {
        /* cells finished by an earlier invocation or copied in from another machine are not in
         * this time, so it is only ever called the invocation's */
        snprintf(line, sizeof line, "This invocation of the command took %.1f minutes%s.", o->wall_s / 60.0,
                 ri->n_hosts ? "; each experiment gives the time its cells took" : "");
        doc_para(&d, NULL, line);
    }
    if (smoke || random) {
        sb_study_buf_printf(&d.md, "> **Smoke run.** The models below are tiny (random or trained for a few steps) and "
                                   "the streams are short: every number checks that the pipeline works and means nothing about "
                                   "StreamingLLM. Run `./run_all.sh` (quick) or `./run_all.sh --full` with the trained "
                                   "models for real results.\n\n");
        sb_study_buf_printf(&d.html, "<p class=\"banner\"><b>Smoke run.</b> The models below are tiny (random or "
                                     "trained for a few steps) and the streams are short: every number checks that the pipeline "
                                     "works and means nothing about StreamingLLM. Run <code>./run_all.sh</code> (quick) "
                                     "or <code>./run_all.sh --full</code> with the trained models for real results.</p>\n");
    }
    doc_para(&d, NULL,
             "Each section reproduces one experiment of Xiao et al., \"Efficient Streaming Language Models with "
             "Attention Sinks\" (ICLR 2024) on this project's models: our tables first, then the paper's numbers "
             "for the same experiment, then the figures. Cache policies are written K+W: K initial tokens kept as "
             "sinks plus the W most recent tokens (0+W is window attention, 4+W StreamingLLM).");
    if (n_models) models_table(&d, models, n_models);
    sb_study_buf_printf(&d.md, "%s", sb_study_buf_str(&body.md));
    sb_study_buf_printf(&d.html, "%s", sb_study_buf_str(&body.html));
    doc_heading(&d, 2, "files", "Reading the result files");
    doc_para(&d, NULL,
             "Every experiment writes results/<experiment>.h5 (per-token arrays under cells/, the tables as CSV "
             "text in the table<i>_csv attributes, the INI config, the finding, notes, where the cells ran "
             "(cells_machines, cells_machines_csv) and the provenance of the collecting step as root attributes) and results/<experiment>.csv (one row per cell). Inspect them with `h5ls -r "
             "results/ppl_stream.h5` and `h5dump -A results/ppl_stream.h5`, or in Python with "
             "`h5py.File('results/ppl_stream.h5')['cells/<model>/<cell>/nll'][:]`. The per-cell result files and "
             "logs are under results/cells/.");

    char md_path[1024], html_path[1024];
    sb_study_fmt(md_path, sizeof md_path, "%s/REPORT.md", results);
    sb_study_fmt(html_path, sizeof html_path, "%s/index.html", results);
    sb_study_buf html = {0};
    sb_study_buf_printf(&html, "%s%s</body></html>\n", html_head, sb_study_buf_str(&d.html));
    int rc = sb_study_write_text(md_path, sb_study_buf_str(&d.md));
    rc = rc ? rc : sb_study_write_text(html_path, sb_study_buf_str(&html));
    sb_study_buf_free(&html);
    sb_study_buf_free(&d.md);
    sb_study_buf_free(&d.html);
    sb_study_buf_free(&body.md);
    sb_study_buf_free(&body.html);
    free(models);
    free(ri);
    return rc;
}
