/* Where an experiment's cells ran. A study may be assembled from cells computed on several
 * machines (heavy cells on a lent server, copied back; the rest locally), so the machine that
 * aggregates says nothing about where the numbers came from: each cell's own provenance does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "eval/study.h"
#include "eval/study_collect.h"
#include "eval/study_table.h"
#include "util/h5.h"

/* Days since 1970-01-01 of a proleptic Gregorian date: counting in 400-year eras starting on
 * 1 March keeps the leap day at the end of the year, so no month table is needed. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int digits(const char *s, int at, int len) {
    int v = 0;
    for (int i = at; i < at + len; i++) v = 10 * v + (s[i] - '0');
    return v;
}

int sb_study_parse_utc(const char *iso, int64_t *out) {
    /* exactly what sb_provenance_collect writes: sscanf would also take signs and blanks */
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    bool ok = iso && strlen(iso) == sizeof shape - 1;
    for (size_t i = 0; ok && i < sizeof shape - 1; i++)
        ok = shape[i] == 'd' ? iso[i] >= '0' && iso[i] <= '9' : iso[i] == shape[i];
    if (!ok) return sb_error("'%s' is not a UTC time like 2026-11-26T02:19:12Z", iso ? iso : "(null)");
    int y = digits(iso, 0, 4), mo = digits(iso, 5, 2), d = digits(iso, 8, 2), h = digits(iso, 11, 2),
        mi = digits(iso, 14, 2), s = digits(iso, 17, 2);
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59 || s > 60)
        return sb_error("'%s' is not a valid UTC time", iso);
    *out = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + s;
    return SB_OK;
}

#define MAX_DISTINCT 8

typedef struct {
    char host[128], cpu[160];
    int64_t cores;
    int cells;
    int64_t threads[MAX_DISTINCT];
    int n_threads;
    char gits[MAX_DISTINCT][64];
    int n_gits;
    bool more_gits;
    double cell_s;
    double first_start, last_finish; /* seconds since 1970; valid when timed */
    bool timed;
} machine;

static void str_attr(sb_h5 *f, const char *key, char *out, size_t cap) {
    if (!sb_h5_attr_has(f, NULL, key) || sb_h5_attr_get_str(f, NULL, key, out, cap) != SB_OK || !out[0])
        sb_study_copy(out, cap, "unknown");
    sb_clear_error();
}

void sb_study_add_distinct(int64_t *v, int *n, int cap, int64_t x) {
    if (x < 1) return;
    int i = 0;
    while (i < *n && v[i] < x) i++;
    if ((i < *n && v[i] == x) || *n == cap) return;
    memmove(&v[i + 1], &v[i], (size_t)(*n - i) * sizeof v[0]);
    v[i] = x;
    (*n)++;
}

static void add_git(machine *m, const char *rev) {
    for (int i = 0; i < m->n_gits; i++)
        if (!strcmp(m->gits[i], rev)) return;
    if (m->n_gits == MAX_DISTINCT) {
        m->more_gits = true;
        return;
    }
    sb_study_copy(m->gits[m->n_gits++], sizeof m->gits[0], rev);
}

/* Seconds as the unit a reader takes in at a glance. */
static void fmt_duration(double s, char *out, size_t cap) {
    if (s >= 3600) snprintf(out, cap, "%.2f h", s / 3600);
    else if (s >= 60) snprintf(out, cap, "%.1f min", s / 60);
    else snprintf(out, cap, "%.1f s", s);
}

static void join_threads(const machine *m, const char *sep, char *out, size_t cap) {
    out[0] = '\0';
    for (int i = 0; i < m->n_threads; i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%lld", i ? sep : "", (long long)m->threads[i]);
    }
}

static void join_gits(const machine *m, const char *sep, char *out, size_t cap) {
    out[0] = '\0';
    for (int i = 0; i < m->n_gits; i++) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", i ? sep : "", m->gits[i]);
    }
    if (m->more_gits) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s...", sep);
    }
}

static void read_cell(machine **ms, int *n, int *cap, const char *path) {
    sb_h5 *f;
    /* a cell that cannot be read is left to the collectors, which report it */
    if (sb_h5_open(&f, path) != SB_OK) {
        sb_clear_error();
        return;
    }
    char host[128], cpu[160], git[64], date[64];
    str_attr(f, "hostname", host, sizeof host);
    str_attr(f, "cpu_model", cpu, sizeof cpu);
    str_attr(f, "git_rev", git, sizeof git);
    str_attr(f, "date_utc", date, sizeof date);
    int64_t cores = sb_cell_attr_i64(f, "cores"), threads = sb_cell_attr_i64(f, "threads");
    double wall = sb_cell_attr_f64(f, "wall_s");
    sb_h5_close(f);

    machine *m = NULL;
    for (int i = 0; i < *n && !m; i++)
        if (!strcmp((*ms)[i].host, host) && !strcmp((*ms)[i].cpu, cpu) && (*ms)[i].cores == cores) m = &(*ms)[i];
    if (!m) {
        if (*n == *cap) {
            int nc = *cap ? 2 * *cap : 4;
            machine *grown = realloc(*ms, (size_t)nc * sizeof *grown);
            if (!grown) return;
            *ms = grown;
            *cap = nc;
        }
        m = &(*ms)[(*n)++];
        memset(m, 0, sizeof *m);
        sb_study_copy(m->host, sizeof m->host, host);
        sb_study_copy(m->cpu, sizeof m->cpu, cpu);
        m->cores = cores;
    }
    m->cells++;
    sb_study_add_distinct(m->threads, &m->n_threads, MAX_DISTINCT, threads);
    add_git(m, git);
    bool has_wall = isfinite(wall) && wall >= 0;
    if (has_wall) m->cell_s += wall;
    int64_t finish;
    if (has_wall && sb_study_parse_utc(date, &finish) == SB_OK) {
        double start = (double)finish - wall;
        if (!m->timed || start < m->first_start) m->first_start = start;
        if (!m->timed || (double)finish > m->last_finish) m->last_finish = (double)finish;
        m->timed = true;
    }
    sb_clear_error();
}

int sb_study_cells_machines(const char *const *paths, int n_paths, char **text, char **csv) {
    *text = *csv = NULL;
    machine *ms = NULL;
    int n = 0, cap = 0;
    for (int i = 0; i < n_paths; i++) read_cell(&ms, &n, &cap, paths[i]);

    static const char *const head[] = {"host", "cpu_model", "cores", "cells", "threads", "git_revs", "cell_hours",
                                       "span_hours"};
    sb_study_table t;
    sb_study_table_init(&t, "", 8, head);
    sb_study_buf b = {0};
    for (int i = 0; i < n; i++) {
        const machine *m = &ms[i];
        char threads[160], gits[600], cell_time[32], span[32];
        join_threads(m, " or ", threads, sizeof threads);
        join_gits(m, ", ", gits, sizeof gits);
        fmt_duration(m->cell_s, cell_time, sizeof cell_time);
        fmt_duration(m->timed ? m->last_finish - m->first_start : 0, span, sizeof span);
        bool one_thread = m->n_threads == 1 && m->threads[0] == 1;
        sb_study_buf_printf(&b, "%s (%s, %lld core%s): %d cell%s, ", m->host, m->cpu, (long long)m->cores,
                            m->cores == 1 ? "" : "s", m->cells, m->cells == 1 ? "" : "s");
        if (m->n_threads) sb_study_buf_printf(&b, "%s thread%s each, ", threads, one_thread ? "" : "s");
        else sb_study_buf_printf(&b, "threads not recorded, ");
        sb_study_buf_printf(&b, "git %s, %s of cell time, ", gits, cell_time);
        if (m->timed) sb_study_buf_printf(&b, "%s from first start to last finish\n", span);
        else sb_study_buf_printf(&b, "start and finish times not recorded\n");

        int r = sb_study_table_add_row(&t);
        join_threads(m, " ", threads, sizeof threads);
        join_gits(m, " ", gits, sizeof gits);
        sb_study_table_set(&t, r, 0, "%s", m->host);
        sb_study_table_set(&t, r, 1, "%s", m->cpu);
        sb_study_table_set(&t, r, 2, "%lld", (long long)m->cores);
        sb_study_table_set(&t, r, 3, "%d", m->cells);
        sb_study_table_set(&t, r, 4, "%s", threads);
        sb_study_table_set(&t, r, 5, "%s", gits);
        sb_study_table_set(&t, r, 6, "%.4f", m->cell_s / 3600);
        if (m->timed) sb_study_table_set(&t, r, 7, "%.4f", (m->last_finish - m->first_start) / 3600);
    }
    free(ms);
    *text = strdup(sb_study_buf_str(&b));
    *csv = sb_study_table_to_csv(&t);
    sb_study_buf_free(&b);
    sb_study_table_free(&t);
    if (!*text || !*csv) {
        free(*text);
        free(*csv);
        *text = *csv = NULL;
        return sb_error("out of memory summarising where the cells ran");
    }
    return SB_OK;
}
