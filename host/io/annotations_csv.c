/* The NIPS 2017 adversarial-competition images.csv reader (annotations.h). */
#include "io/annotations_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#include "core/error.h"

static const char *const CSV_HEADER[] = {"ImageId", "URL", "x1", "y1", "x2", "y2",
                                         "TrueLabel", "TargetClass", "OriginalLandingURL",
                                         "License", "Author", "AuthorProfileURL"};
#define CSV_NF 12

/* -------------------------------------------------------------------- CSV */

typedef struct {
    const char *p, *end;
    int line;       /* line of the next character */
    char *buf;      /* fields of the current record, each NUL-terminated */
    size_t len, cap;
    int nf;
    size_t off[CSV_NF + 1]; /* offsets of the first CSV_NF + 1 fields */
} csv_reader;

static int csv_putc(csv_reader *r, char c) {
    if (r->len + 1 >= r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        char *nb = realloc(r->buf, nc);
        if (!nb) return AT_ERR;
        r->buf = nb;
        r->cap = nc;
    }
    r->buf[r->len++] = c;
    return AT_OK;
}

static int csv_end_field(csv_reader *r) {
    if (csv_putc(r, 0)) return AT_ERR;
    r->nf++;
    if (r->nf <= CSV_NF) r->off[r->nf] = r->len;
    return AT_OK;
}

/* One RFC 4180 record. Returns 1 when read, 0 at end of input, AT_ERR with
 * a message on malformed quoting. *line = the record's first line. */
static int csv_record(csv_reader *r, const char *path, int *line) {
    if (r->p >= r->end) return 0;
    char subject[1100];
    *line = r->line;
    r->len = 0;
    r->nf = 0;
    r->off[0] = 0;
    int quoted = 0, in_quotes = 0, field_start = 1;
    for (;;) {
        if (r->p >= r->end) {
            if (in_quotes) {
                snprintf(subject, sizeof subject, "%s:%d", path, *line);
                return at_fail(subject, "quoted field not closed before the end of the file");
            }
            break;
        }
        char c = *r->p++;
        if (in_quotes) {
            if (c == '"') {
                if (r->p < r->end && *r->p == '"') {
                    r->p++;
                    if (csv_putc(r, '"')) return at_fail(path, "out of memory");
                } else {
                    in_quotes = 0;
                }
                continue;
            }
            if (c == '\n') r->line++;
            if (csv_putc(r, c)) return at_fail(path, "out of memory");
            continue;
        }
        if (c == ',') {
            if (csv_end_field(r)) return at_fail(path, "out of memory");
            quoted = 0;
            field_start = 1;
            continue;
        }
        if (c == '\n' || (c == '\r' && (r->p == r->end || *r->p == '\n'))) {
            if (c == '\r' && r->p < r->end) r->p++;
            r->line++;
            break;
        }
        if (quoted) {
            snprintf(subject, sizeof subject, "%s:%d", path, r->line);
            return at_fail(subject, "text after a closing quote (a quote inside a field must be doubled)");
        }
        if (c == '"') {
            if (!field_start) {
                snprintf(subject, sizeof subject, "%s:%d", path, r->line);
                return at_fail(subject, "quote inside an unquoted field");
            }
            quoted = in_quotes = 1;
            field_start = 0;
            continue;
        }
        field_start = 0;
        if (csv_putc(r, c)) return at_fail(path, "out of memory");
    }
    if (csv_end_field(r)) return at_fail(path, "out of memory");
    return 1;
}

static const char *csv_field(const csv_reader *r, int i) { return r->buf + r->off[i]; }

static int csv_row_box(const csv_reader *r, int cls, const char *subject, at_annotation *it) {
    const char *f[4] = {csv_field(r, 2), csv_field(r, 3), csv_field(r, 4), csv_field(r, 5)};
    int n_empty = 0, n_int = 0, iv[4];
    for (int k = 0; k < 4; k++) {
        char t[4];
        if (ann_trim_copy(f[k], strlen(f[k]), t, sizeof t) == 0) n_empty++;
        if (ann_parse_uint(f[k], &iv[k]) == AT_OK) n_int++;
    }
    if (n_empty == 4) return AT_OK;
    if (n_empty) return at_fail(subject, "x1,y1,x2,y2 must be all set or all empty");
    at_box b = {.cls = cls, .box = {-1, -1, -1, -1}};
    if (n_int == 4) {
        if (iv[0] > iv[2] || iv[1] > iv[3])
            return at_fail(subject, "box %d,%d,%d,%d has x1 > x2 or y1 > y2", iv[0], iv[1], iv[2], iv[3]);
        memcpy(b.box, iv, sizeof iv);
        return ann_add_box(it, &b, subject);
    }
    for (int k = 0; k < 4; k++) {
        if (ann_is_negative_int(f[k])) return at_fail(subject, "box coordinate '%s' is negative", f[k]);
        if (ann_parse_finite(f[k], &b.frac[k]) || b.frac[k] < 0.0 || b.frac[k] > 1.0)
            return at_fail(subject,
                           "box coordinate '%s' is neither a pixel integer nor a fraction in [0,1]", f[k]);
    }
    if (b.frac[0] > b.frac[2] || b.frac[1] > b.frac[3])
        return at_fail(subject, "box %s,%s,%s,%s has x1 > x2 or y1 > y2", f[0], f[1], f[2], f[3]);
    b.relative = 1;
    return ann_add_box(it, &b, subject);
}

int ann_load_csv(const char *path, const at_model *m, at_annotations *out) {
    char *text;
    long len;
    if (ann_read_whole_file(path, &text, &len)) return AT_ERR;
    csv_reader r = {.p = text, .end = text + len, .line = 1};
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) r.p += 3;
    int cap = 0, line, rc, status = AT_OK, seen_header = 0;
    char subject[1100];
    while ((rc = csv_record(&r, path, &line)) == 1) {
        snprintf(subject, sizeof subject, "%s:%d", path, line);
        if (r.nf == 1 && csv_field(&r, 0)[0] == 0) continue; /* blank line */
        if (!seen_header) {
            int ok = r.nf == CSV_NF;
            for (int i = 0; ok && i < CSV_NF; i++) ok = strcmp(csv_field(&r, i), CSV_HEADER[i]) == 0;
            if (!ok) {
                status = at_fail(subject, "not a NIPS 2017 images.csv: the header must be "
                                          "ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass,"
                                          "OriginalLandingURL,License,Author,AuthorProfileURL");
                break;
            }
            seen_header = 1;
            continue;
        }
        if (r.nf != CSV_NF) {
            status = at_fail(subject, "%d fields, expected %d", r.nf, CSV_NF);
            break;
        }
        int label;
        if (ann_parse_uint(csv_field(&r, 6), &label)) {
            status = at_fail(subject, "TrueLabel '%s' is not a non-negative integer", csv_field(&r, 6));
            break;
        }
        if (label == 0) {
            status = at_fail(subject, "TrueLabel 0 is the background class, which the model does not have");
            break;
        }
        if (label > m->n_classes) {
            status = at_fail(subject, "TrueLabel %d is beyond the model's %d classes", label, m->n_classes);
            break;
        }
        char id[300];
        ann_trim_copy(csv_field(&r, 0), strlen(csv_field(&r, 0)), id, sizeof id);
        int slot;
        if (ann_set_add(out, &cap, id, subject, &slot)) {
            status = AT_ERR;
            break;
        }
        out->items[slot].cls = label - 1;
        if (csv_row_box(&r, label - 1, subject, &out->items[slot])) {
            status = AT_ERR;
            break;
        }
    }
    if (rc == AT_ERR) status = AT_ERR;
    if (status == AT_OK && !seen_header) status = at_fail(path, "empty file (no header)");
    free(r.buf);
    free(text);
    return status;
}

