/* Tables of the study and a growing text buffer.
 *
 * A table is a caption plus rows of strings, row 0 the header. It is stored in the
 * experiment's HDF5 file as CSV text (RFC 4180 quoting) and rendered by the report as
 * Markdown and HTML, so the numbers in the report are exactly those in the file. */
#ifndef SB_STUDY_TABLE_H
#define SB_STUDY_TABLE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;      /* always NUL-terminated once anything was added */
    size_t n, cap;
} sb_study_buf;

void sb_study_buf_printf(sb_study_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append text with Markdown / HTML special characters escaped. */
void sb_study_buf_html(sb_study_buf *b, const char *text);
void sb_study_buf_free(sb_study_buf *b);
/* The text so far ("" when empty). */
const char *sb_study_buf_str(const sb_study_buf *b);

typedef struct {
    char caption[512];
    int n_cols, n_rows;   /* n_rows counts the header */
    char **cell;          /* [n_rows][n_cols] malloc'd strings, NULL = empty */
} sb_study_table;

/* New table with a header of n_cols names. */
void sb_study_table_init(sb_study_table *t, const char *caption, int n_cols, const char *const *header);
/* Append an empty row; returns its index. */
int sb_study_table_add_row(sb_study_table *t);
void sb_study_table_set(sb_study_table *t, int row, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
const char *sb_study_table_get(const sb_study_table *t, int row, int col);
void sb_study_table_free(sb_study_table *t);

/* CSV text of the whole table (header first); malloc'd. */
char *sb_study_table_to_csv(const sb_study_table *t);
/* Parse CSV text (as written above). Rows shorter than the header are padded. Returns
 * SB_OK or SB_ERR for a malformed quote. */
int sb_study_table_from_csv(sb_study_table *t, const char *caption, const char *csv);

#endif
