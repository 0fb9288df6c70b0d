#include "eval/study_table.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"

static void buf_reserve(sb_study_buf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        fprintf(stderr, "sinkbench: out of memory building text\n");
        abort();
    }
    b->s = s;
    b->cap = cap;
}

void sb_study_buf_printf(sb_study_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void sb_study_buf_html(sb_study_buf *b, const char *text) {
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '<': sb_study_buf_printf(b, "&lt;"); break;
        case '>': sb_study_buf_printf(b, "&gt;"); break;
        case '&': sb_study_buf_printf(b, "&amp;"); break;
        case '"': sb_study_buf_printf(b, "&quot;"); break;
        default: sb_study_buf_printf(b, "%c", *p);
        }
    }
}

void sb_study_buf_free(sb_study_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

const char *sb_study_buf_str(const sb_study_buf *b) { return b->s ? b->s : ""; }

void sb_study_table_init(sb_study_table *t, const char *caption, int n_cols, const char *const *header) {
    memset(t, 0, sizeof *t);
    snprintf(t->caption, sizeof t->caption, "%s", caption ? caption : "");
    t->n_cols = n_cols;
    int r = sb_study_table_add_row(t);
    for (int c = 0; c < n_cols && header; c++) sb_study_table_set(t, r, c, "%s", header[c]);
}

int sb_study_table_add_row(sb_study_table *t) {
    size_t n = (size_t)(t->n_rows + 1) * (size_t)t->n_cols;
    char **cell = realloc(t->cell, (n ? n : 1) * sizeof *cell);
    if (!cell) {
        fprintf(stderr, "sinkbench: out of memory building a table\n");
        abort();
    }
    t->cell = cell;
    for (int c = 0; c < t->n_cols; c++) t->cell[(size_t)t->n_rows * t->n_cols + c] = NULL;
    return t->n_rows++;
}

void sb_study_table_set(sb_study_table *t, int row, int col, const char *fmt, ...) {
    if (row < 0 || row >= t->n_rows || col < 0 || col >= t->n_cols) return;
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    char **slot = &t->cell[(size_t)row * t->n_cols + col];
    free(*slot);
    *slot = s;
}

const char *sb_study_table_get(const sb_study_table *t, int row, int col) {
    if (row < 0 || row >= t->n_rows || col < 0 || col >= t->n_cols) return "";
    const char *s = t->cell[(size_t)row * t->n_cols + col];
    return s ? s : "";
}

void sb_study_table_free(sb_study_table *t) {
    for (size_t i = 0; i < (size_t)t->n_rows * t->n_cols; i++) free(t->cell[i]);
    free(t->cell);
    memset(t, 0, sizeof *t);
}

char *sb_study_table_to_csv(const sb_study_table *t) {
    sb_study_buf b = {0};
    for (int r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) {
            const char *s = sb_study_table_get(t, r, c);
            if (c) sb_study_buf_printf(&b, ",");
            if (strpbrk(s, ",\"\n")) {
                sb_study_buf_printf(&b, "\"");
                for (const char *p = s; *p; p++) sb_study_buf_printf(&b, *p == '"' ? "\"\"" : "%c", *p);
                sb_study_buf_printf(&b, "\"");
            } else sb_study_buf_printf(&b, "%s", s);
        }
        sb_study_buf_printf(&b, "\n");
    }
    if (!b.s) sb_study_buf_printf(&b, "%s", "");
    return b.s;
}

/* One CSV field starting at *p; advances past it and its separator. */
static int csv_field(const char **p, sb_study_buf *out, bool *end_of_row) {
    const char *s = *p;
    out->n = 0;
    sb_study_buf_printf(out, "%s", "");
    if (*s == '"') {
        s++;
        for (;;) {
            if (!*s) return SB_ERR;
            if (*s == '"') {
                if (s[1] == '"') {
                    sb_study_buf_printf(out, "\"");
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            sb_study_buf_printf(out, "%c", *s++);
        }
    } else {
        while (*s && *s != ',' && *s != '\n' && *s != '\r') sb_study_buf_printf(out, "%c", *s++);
    }
    if (*s == '\r') s++;
    *end_of_row = *s != ',';
    if (*s == ',' || *s == '\n') s++;
    else if (*s) return SB_ERR;
    *p = s;
    return SB_OK;
}

int sb_study_table_from_csv(sb_study_table *t, const char *caption, const char *csv) {
    memset(t, 0, sizeof *t);
    snprintf(t->caption, sizeof t->caption, "%s", caption ? caption : "");
    sb_study_buf field = {0};
    const char *p = csv;
    /* the header fixes the column count */
    int n_cols = 0;
    const char *q = p;
    bool eor = false;
    while (*q && !eor) {
        if (csv_field(&q, &field, &eor)) {
            sb_study_buf_free(&field);
            return sb_error("malformed CSV in table '%s'", t->caption);
        }
        n_cols++;
    }
    t->n_cols = n_cols;
    while (*p) {
        int r = sb_study_table_add_row(t);
        int c = 0;
        eor = false;
        while (*p && !eor) {
            if (csv_field(&p, &field, &eor)) {
                sb_study_buf_free(&field);
                return sb_error("malformed CSV in table '%s'", t->caption);
            }
            if (c < n_cols) sb_study_table_set(t, r, c, "%s", sb_study_buf_str(&field));
            c++;
        }
    }
    sb_study_buf_free(&field);
    return SB_OK;
}
