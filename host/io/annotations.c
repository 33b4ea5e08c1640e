/* Annotation readers: NIPS 2017 CSV and ILSVRC/VOC XML (formats and
 * decisions in annotations.h). */
#include "io/annotations.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"

#define MAX_FILE_BYTES (1L << 30) /* refuse anything larger than 1 GiB */

static const char *const CSV_HEADER[] = {"ImageId", "URL", "x1", "y1", "x2", "y2",
                                         "TrueLabel", "TargetClass", "OriginalLandingURL",
                                         "License", "Author", "AuthorProfileURL"};
#define CSV_NF 12

/* ------------------------------------------------------------ small utils */

static int read_whole_file(const char *path, char **buf, long *len) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return at_fail(path, "cannot open: %s", strerror(errno));
    long cap = 1 << 16, n = 0;
    char *b = malloc((size_t)cap + 1);
    if (!b) {
        fclose(f);
        return at_fail(path, "out of memory");
    }
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE_BYTES) {
                free(b);
                fclose(f);
                return at_fail(path, "file larger than %ld bytes", MAX_FILE_BYTES);
            }
            char *nb = realloc(b, (size_t)cap * 2 + 1);
            if (!nb) {
                free(b);
                fclose(f);
                return at_fail(path, "out of memory");
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, (size_t)(cap - n), f);
        n += (long)got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        return at_fail(path, "read error");
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return AT_OK;
}

/* Copies s[0..n) without surrounding ASCII whitespace into out (cap bytes);
 * returns the trimmed length (may exceed cap - 1: then out is truncated). */
static size_t trim_copy(const char *s, size_t n, char *out, size_t cap) {
    while (n > 0 && isspace((unsigned char)s[0])) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(out, s, k);
    out[k] = 0;
    return n;
}

/* A plain non-negative decimal integer (surrounding spaces allowed). */
static int parse_uint(const char *s, int *v) {
    char t[32];
    if (trim_copy(s, strlen(s), t, sizeof t) >= sizeof t || !t[0]) return AT_ERR;
    long long x = 0;
    for (const char *p = t; *p; p++) {
        if (*p < '0' || *p > '9') return AT_ERR;
        x = x * 10 + (*p - '0');
        if (x > INT_MAX) return AT_ERR;
    }
    *v = (int)x;
    return AT_OK;
}

static int parse_finite(const char *s, double *v) {
    char t[64], *end;
    if (trim_copy(s, strlen(s), t, sizeof t) >= sizeof t || !t[0]) return AT_ERR;
    errno = 0;
    double x = strtod(t, &end);
    if (*end || !isfinite(x)) return AT_ERR;
    *v = x;
    return AT_OK;
}

static int is_negative_int(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    int v;
    return *s == '-' && parse_uint(s + 1, &v) == AT_OK;
}

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xCBF29CE484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ULL;
    return h;
}

/* ------------------------------------------------------ set and id index */

static int index_lookup(const at_annotations *a, const char *id, size_t n) {
    if (!a->index_cap || n >= sizeof a->items[0].id) return -1;
    size_t mask = (size_t)a->index_cap - 1;
    for (size_t h = fnv1a(id, n) & mask;; h = (h + 1) & mask) {
        int i = a->index[h];
        if (i < 0) return -1;
        if (strlen(a->items[i].id) == n && memcmp(a->items[i].id, id, n) == 0) return i;
    }
}

static void index_put(at_annotations *a, int i) {
    size_t mask = (size_t)a->index_cap - 1;
    size_t h = fnv1a(a->items[i].id, strlen(a->items[i].id)) & mask;
    while (a->index[h] >= 0) h = (h + 1) & mask;
    a->index[h] = i;
}

/* Appends a zeroed annotation with this id; its index in *slot. Fails on a
 * duplicate id (subject names where). */
static int set_add(at_annotations *a, int *cap, const char *id, const char *subject, int *slot) {
    size_t n = strlen(id);
    if (n == 0) return at_fail(subject, "empty image id");
    if (n >= sizeof a->items[0].id) return at_fail(subject, "image id longer than %zu bytes", sizeof a->items[0].id - 1);
    if (index_lookup(a, id, n) >= 0) return at_fail(subject, "duplicate image id '%s'", id);
    if (a->n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        at_annotation *ni = realloc(a->items, sizeof *ni * (size_t)nc);
        if (!ni) return at_fail(subject, "out of memory");
        a->items = ni;
        *cap = nc;
    }
    if (2 * (a->n + 1) >= a->index_cap) {
        int nc = a->index_cap ? a->index_cap * 2 : 128;
        int *ni = malloc(sizeof *ni * (size_t)nc);
        if (!ni) return at_fail(subject, "out of memory");
        free(a->index);
        a->index = ni;
        a->index_cap = nc;
        for (int i = 0; i < nc; i++) ni[i] = -1;
        for (int i = 0; i < a->n; i++) index_put(a, i);
    }
    at_annotation *it = &a->items[a->n];
    memset(it, 0, sizeof *it);
    memcpy(it->id, id, n + 1);
    it->cls = -1;
    *slot = a->n++;
    index_put(a, *slot);
    return AT_OK;
}

static int add_box(at_annotation *it, const at_box *b, const char *subject) {
    at_box *nb = realloc(it->boxes, sizeof *nb * (size_t)(it->n_boxes + 1));
    if (!nb) return at_fail(subject, "out of memory");
    it->boxes = nb;
    it->boxes[it->n_boxes++] = *b;
    return AT_OK;
}

void at_annotations_free(at_annotations *a) {
    if (!a) return;
    for (int i = 0; i < a->n; i++) free(a->items[i].boxes);
    free(a->items);
    free(a->index);
    memset(a, 0, sizeof *a);
}

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
        if (trim_copy(f[k], strlen(f[k]), t, sizeof t) == 0) n_empty++;
        if (parse_uint(f[k], &iv[k]) == AT_OK) n_int++;
    }
    if (n_empty == 4) return AT_OK;
    if (n_empty) return at_fail(subject, "x1,y1,x2,y2 must be all set or all empty");
    at_box b = {.cls = cls, .box = {-1, -1, -1, -1}};
    if (n_int == 4) {
        if (iv[0] > iv[2] || iv[1] > iv[3])
            return at_fail(subject, "box %d,%d,%d,%d has x1 > x2 or y1 > y2", iv[0], iv[1], iv[2], iv[3]);
        memcpy(b.box, iv, sizeof iv);
        return add_box(it, &b, subject);
    }
    for (int k = 0; k < 4; k++) {
        if (is_negative_int(f[k])) return at_fail(subject, "box coordinate '%s' is negative", f[k]);
        if (parse_finite(f[k], &b.frac[k]) || b.frac[k] < 0.0 || b.frac[k] > 1.0)
            return at_fail(subject,
                           "box coordinate '%s' is neither a pixel integer nor a fraction in [0,1]", f[k]);
    }
    if (b.frac[0] > b.frac[2] || b.frac[1] > b.frac[3])
        return at_fail(subject, "box %s,%s,%s,%s has x1 > x2 or y1 > y2", f[0], f[1], f[2], f[3]);
    b.relative = 1;
    return add_box(it, &b, subject);
}

static int load_csv(const char *path, const at_model *m, at_annotations *out) {
    char *text;
    long len;
    if (read_whole_file(path, &text, &len)) return AT_ERR;
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
        if (parse_uint(csv_field(&r, 6), &label)) {
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
        trim_copy(csv_field(&r, 0), strlen(csv_field(&r, 0)), id, sizeof id);
        int slot;
        if (set_add(out, &cap, id, subject, &slot)) {
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

/* -------------------------------------------------------------------- XML */

#define XML_MAX_DEPTH 32

typedef struct {
    const char *path, *text, *p, *end;
    const char *name[XML_MAX_DEPTH];  /* open elements (pointers into text) */
    int name_len[XML_MAX_DEPTH];
    int depth;
    int root_done;
    char *buf;                        /* character data of the innermost element */
    size_t len, cap;
    int leaf;                         /* innermost element has no child so far */
} xml_parser;

/* What the ILSVRC handler collects. */
typedef struct wnid_entry wnid_entry;
typedef struct {
    const struct wnid_entry *wnids; /* the model's label ids, sorted */
    int n_wnids;
    char id[300];
    int have_id, width, height;
    int have_name, have_box[4], coord[4], obj_cls, first_cls;
    at_box *boxes;
    int n_boxes;
} ilsvrc_state;

static int xml_line(const xml_parser *x) {
    int line = 1;
    for (const char *q = x->text; q < x->p && q < x->end; q++) line += *q == '\n';
    return line;
}

/* Fails with "path:line: message" (line of the parser's position). */
static int xml_fail(const xml_parser *x, const char *fmt, ...) AT_PRINTF(2, 3);
static int xml_fail(const xml_parser *x, const char *fmt, ...) {
    char subject[1100], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(subject, sizeof subject, "%s:%d", x->path, xml_line(x));
    return at_fail(subject, "%s", msg);
}

static int xml_put(xml_parser *x, const char *s, size_t n) {
    if (x->len + n + 1 > x->cap) {
        size_t nc = x->cap ? x->cap : 256;
        while (nc < x->len + n + 1) nc *= 2;
        char *nb = realloc(x->buf, nc);
        if (!nb) return at_fail(x->path, "out of memory");
        x->buf = nb;
        x->cap = nc;
    }
    memcpy(x->buf + x->len, s, n);
    x->len += n;
    x->buf[x->len] = 0;
    return AT_OK;
}

static int starts(const xml_parser *x, const char *s) {
    size_t n = strlen(s);
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

static int is_name_start(unsigned char c) { return isalpha(c) || c == '_' || c == ':' || c >= 0x80; }
static int is_name_char(unsigned char c) {
    return is_name_start(c) || isdigit(c) || c == '-' || c == '.';
}

static void skip_space(xml_parser *x) {
    while (x->p < x->end && isspace((unsigned char)*x->p)) x->p++;
}

/* "&...;" at x->p: appends the character it stands for. */
static int xml_entity(xml_parser *x) {
    const char *semi = memchr(x->p, ';', (size_t)(x->end - x->p) < 12 ? (size_t)(x->end - x->p) : 12);
    if (!semi) return xml_fail(x, "'&' that starts no entity reference");
    const char *e = x->p + 1;
    size_t n = (size_t)(semi - e);
    static const char *const names[] = {"amp", "lt", "gt", "quot", "apos"};
    static const char chars[] = "&<>\"'";
    for (int i = 0; i < 5; i++)
        if (strlen(names[i]) == n && memcmp(e, names[i], n) == 0) {
            x->p = semi + 1;
            return xml_put(x, &chars[i], 1);
        }
    if (n >= 2 && e[0] == '#') {
        int hex = e[1] == 'x';
        unsigned long cp = 0;
        const char *d = e + 1 + hex;
        if (d == semi) return xml_fail(x, "empty character reference");
        for (; d < semi; d++) {
            int v = isdigit((unsigned char)*d) ? *d - '0'
                    : hex && isxdigit((unsigned char)*d) ? tolower((unsigned char)*d) - 'a' + 10
                                                         : -1;
            if (v < 0) return xml_fail(x, "malformed character reference");
            cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            if (cp > 0x10FFFF) break;
        }
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return xml_fail(x, "character reference out of range");
        char u[4];
        size_t k;
        if (cp < 0x80) u[0] = (char)cp, k = 1;
        else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), k = 2;
        else if (cp < 0x10000)
            u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
            u[2] = (char)(0x80 | (cp & 0x3F)), k = 3;
        else
            u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), u[3] = (char)(0x80 | (cp & 0x3F)), k = 4;
        x->p = semi + 1;
        return xml_put(x, u, k);
    }
    char ent[16];
    snprintf(ent, sizeof ent, "%.*s", (int)n, e);
    return xml_fail(x, "unknown entity '&%s;'", ent);
}

/* The open elements joined by '/' equal path. */
static int xml_at(const xml_parser *x, const char *path) {
    const char *q = path;
    for (int i = 0; i < x->depth; i++) {
        if (i > 0) {
            if (*q != '/') return 0;
            q++;
        }
        size_t n = (size_t)x->name_len[i];
        if (strncmp(q, x->name[i], n) != 0) return 0;
        q += n;
    }
    return *q == 0;
}

static int ilsvrc_start(xml_parser *x, ilsvrc_state *s);
static int ilsvrc_end(xml_parser *x, ilsvrc_state *s, const char *text);

static int xml_start_tag(xml_parser *x, ilsvrc_state *s) {
    x->p++; /* '<' */
    const char *name = x->p;
    if (x->p >= x->end || !is_name_start((unsigned char)*x->p)) return xml_fail(x, "malformed tag");
    while (x->p < x->end && is_name_char((unsigned char)*x->p)) x->p++;
    int nlen = (int)(x->p - name);
    if (x->root_done) return xml_fail(x, "content after the root element");
    if (x->depth == XML_MAX_DEPTH) return xml_fail(x, "elements nested deeper than %d", XML_MAX_DEPTH);
    /* attributes: name = "value" | 'value', ignored */
    int self_close = 0;
    for (;;) {
        const char *before = x->p;
        skip_space(x);
        if (x->p >= x->end) return xml_fail(x, "unexpected end of file inside a tag");
        if (*x->p == '>') {
            x->p++;
            break;
        }
        if (starts(x, "/>")) {
            x->p += 2;
            self_close = 1;
            break;
        }
        if (x->p == before || !is_name_start((unsigned char)*x->p))
            return xml_fail(x, "malformed attribute");
        while (x->p < x->end && is_name_char((unsigned char)*x->p)) x->p++;
        skip_space(x);
        if (x->p >= x->end || *x->p != '=') return xml_fail(x, "attribute without '='");
        x->p++;
        skip_space(x);
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\'')) return xml_fail(x, "unquoted attribute value");
        char q = *x->p++;
        while (x->p < x->end && *x->p != q) {
            if (*x->p == '<') return xml_fail(x, "'<' in an attribute value");
            x->p++;
        }
        if (x->p >= x->end) return xml_fail(x, "unterminated attribute value");
        x->p++;
    }
    x->name[x->depth] = name;
    x->name_len[x->depth] = nlen;
    x->depth++;
    x->len = 0;
    if (x->buf) x->buf[0] = 0;
    x->leaf = 1;
    if (ilsvrc_start(x, s)) return AT_ERR;
    if (self_close) {
        if (ilsvrc_end(x, s, "")) return AT_ERR;
        x->depth--;
        x->leaf = 0;
        x->len = 0;
        if (x->depth == 0) x->root_done = 1;
    }
    return AT_OK;
}

static int xml_end_tag(xml_parser *x, ilsvrc_state *s) {
    x->p += 2; /* "</" */
    const char *name = x->p;
    while (x->p < x->end && is_name_char((unsigned char)*x->p)) x->p++;
    int nlen = (int)(x->p - name);
    skip_space(x);
    if (x->p >= x->end || *x->p != '>') return xml_fail(x, "malformed end tag");
    char nm[64];
    snprintf(nm, sizeof nm, "%.*s", nlen, name);
    if (x->depth == 0) return xml_fail(x, "end tag </%s> without a start tag", nm);
    int top = x->depth - 1;
    if (nlen != x->name_len[top] || memcmp(name, x->name[top], (size_t)nlen) != 0) {
        char open[64];
        snprintf(open, sizeof open, "%.*s", x->name_len[top], x->name[top]);
        return xml_fail(x, "mismatched end tag: </%s> closes <%s>", nm, open);
    }
    x->p++;
    if (ilsvrc_end(x, s, x->leaf ? (x->buf ? x->buf : "") : NULL)) return AT_ERR;
    x->depth--;
    x->leaf = 0;
    x->len = 0;
    if (x->depth == 0) x->root_done = 1;
    return AT_OK;
}

static int xml_parse(xml_parser *x, ilsvrc_state *s) {
    if (starts(x, "\xEF\xBB\xBF")) x->p += 3;
    while (x->p < x->end) {
        char c = *x->p;
        if (c == '<') {
            if (starts(x, "<!--")) {
                const char *e = NULL;
                for (const char *q = x->p + 4; q + 3 <= x->end; q++)
                    if (memcmp(q, "-->", 3) == 0) { e = q; break; }
                if (!e) return xml_fail(x, "unterminated comment");
                x->p = e + 3;
            } else if (starts(x, "<![CDATA[")) {
                if (x->depth == 0) return xml_fail(x, "CDATA outside the root element");
                const char *b = x->p + 9, *e = NULL;
                for (const char *q = b; q + 3 <= x->end; q++)
                    if (memcmp(q, "]]>", 3) == 0) { e = q; break; }
                if (!e) return xml_fail(x, "unterminated CDATA section");
                if (xml_put(x, b, (size_t)(e - b))) return AT_ERR;
                x->p = e + 3;
            } else if (starts(x, "<?")) {
                const char *e = NULL;
                for (const char *q = x->p + 2; q + 2 <= x->end; q++)
                    if (memcmp(q, "?>", 2) == 0) { e = q; break; }
                if (!e) return xml_fail(x, "unterminated processing instruction");
                x->p = e + 2;
            } else if (starts(x, "<!DOCTYPE")) {
                if (x->depth > 0 || x->root_done) return xml_fail(x, "misplaced DOCTYPE");
                while (x->p < x->end && *x->p != '>') {
                    if (*x->p == '[') return xml_fail(x, "DOCTYPE internal subsets are not supported");
                    x->p++;
                }
                if (x->p >= x->end) return xml_fail(x, "unterminated DOCTYPE");
                x->p++;
            } else if (starts(x, "</")) {
                if (xml_end_tag(x, s)) return AT_ERR;
            } else {
                if (xml_start_tag(x, s)) return AT_ERR;
            }
        } else if (x->depth == 0) {
            if (!isspace((unsigned char)c))
                return xml_fail(x, "text %s the root element", x->root_done ? "after" : "before");
            x->p++;
        } else if (c == '&') {
            if (xml_entity(x)) return AT_ERR;
        } else {
            const char *b = x->p;
            while (x->p < x->end && *x->p != '<' && *x->p != '&') x->p++;
            if (xml_put(x, b, (size_t)(x->p - b))) return AT_ERR;
        }
    }
    if (x->depth > 0) {
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", x->name_len[x->depth - 1], x->name[x->depth - 1]);
        return xml_fail(x, "unexpected end of file inside <%s>", nm);
    }
    if (!x->root_done) return at_fail(x->path, "no XML element in the file");
    return AT_OK;
}

/* ---------------------------------------------------- ILSVRC / VOC schema */

struct wnid_entry {
    const char *id;
    int cls;
};

static int cmp_wnid(const void *a, const void *b) {
    const wnid_entry *p = a, *q = b;
    int c = strcmp(p->id, q->id);
    return c ? c : (p->cls > q->cls) - (p->cls < q->cls);
}

/* Index of the class with this wnid, -1 if none (the lowest index on duplicates). */
static int wnid_class(const ilsvrc_state *s, const char *wnid) {
    int lo = 0, hi = s->n_wnids - 1, found = -1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(s->wnids[mid].id, wnid);
        if (c == 0) found = mid;
        if (c >= 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return found < 0 ? -1 : s->wnids[found].cls;
}

static const char *const COORD[4] = {"xmin", "ymin", "xmax", "ymax"};

static int ilsvrc_start(xml_parser *x, ilsvrc_state *s) {
    if (x->depth == 1 && !xml_at(x, "annotation")) {
        char nm[64];
        snprintf(nm, sizeof nm, "%.*s", x->name_len[0], x->name[0]);
        return xml_fail(x, "root element is <%s>, expected <annotation>", nm);
    }
    if (xml_at(x, "annotation/object")) {
        s->have_name = 0;
        memset(s->have_box, 0, sizeof s->have_box);
    }
    return AT_OK;
}

/* text: the element's character data, NULL when it had child elements. */
static int ilsvrc_end(xml_parser *x, ilsvrc_state *s, const char *text) {
    char t[300];
    if (xml_at(x, "annotation/filename")) {
        if (s->have_id) return xml_fail(x, "second <%s>", "filename");
        if (!text || trim_copy(text, strlen(text), t, sizeof t) == 0)
            return xml_fail(x, "empty or structured <%s>", "filename");
        /* ILSVRC writes the stem; drop an image extension if someone wrote one */
        static const char *const ext[] = {".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"};
        for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
            if (ends_with_ci(t, ext[i]) && strlen(t) > strlen(ext[i])) {
                t[strlen(t) - strlen(ext[i])] = 0;
                break;
            }
        snprintf(s->id, sizeof s->id, "%s", t);
        s->have_id = 1;
        return AT_OK;
    }
    int is_w = xml_at(x, "annotation/size/width"), is_h = xml_at(x, "annotation/size/height");
    if (is_w || is_h) {
        int v;
        const char *nm = is_w ? "width" : "height";
        if ((is_w ? s->width : s->height) > 0) return xml_fail(x, "second <%s>", nm);
        if (!text || parse_uint(text, &v) || v <= 0)
            return xml_fail(x, "<%s> '%.40s' is not a positive integer", nm, text ? text : "");
        *(is_w ? &s->width : &s->height) = v;
        return AT_OK;
    }
    if (xml_at(x, "annotation/object/name")) {
        if (s->have_name) return xml_fail(x, "second <%s> in an <object>", "name");
        if (!text || trim_copy(text, strlen(text), t, sizeof t) == 0)
            return xml_fail(x, "empty or structured <%s>", "name");
        s->obj_cls = wnid_class(s, t);
        if (s->obj_cls < 0) return xml_fail(x, "unknown class id '%s' (not among the model's labels)", t);
        s->have_name = 1;
        return AT_OK;
    }
    for (int k = 0; k < 4; k++) {
        char path[64];
        snprintf(path, sizeof path, "annotation/object/bndbox/%s", COORD[k]);
        if (!xml_at(x, path)) continue;
        if (s->have_box[k]) return xml_fail(x, "second <%s> in a <bndbox>", COORD[k]);
        const char *v = text ? text : "";
        if (is_negative_int(v)) return xml_fail(x, "<%s> '%.40s' is negative", COORD[k], v);
        if (parse_uint(v, &s->coord[k]))
            return xml_fail(x, "<%s> '%.40s' is not a non-negative integer", COORD[k], v);
        s->have_box[k] = 1;
        return AT_OK;
    }
    if (xml_at(x, "annotation/object")) {
        if (!s->have_name) return xml_fail(x, "<object> without <%s>", "name");
        for (int k = 0; k < 4; k++)
            if (!s->have_box[k]) return xml_fail(x, "<object> without <bndbox><%s>", COORD[k]);
        if (s->coord[0] > s->coord[2] || s->coord[1] > s->coord[3])
            return xml_fail(x, "box xmin,ymin,xmax,ymax = %d,%d,%d,%d has xmin > xmax or ymin > ymax",
                            s->coord[0], s->coord[1], s->coord[2], s->coord[3]);
        at_box b = {.cls = s->obj_cls};
        for (int k = 0; k < 4; k++) b.box[k] = s->coord[k] > 0 ? s->coord[k] - 1 : 0; /* 1-based -> 0-based */
        at_box *nb = realloc(s->boxes, sizeof *nb * (size_t)(s->n_boxes + 1));
        if (!nb) return at_fail(x->path, "out of memory");
        s->boxes = nb;
        s->boxes[s->n_boxes++] = b;
        if (s->first_cls < 0) s->first_cls = s->obj_cls;
        return AT_OK;
    }
    return AT_OK;
}

static int load_xml_file(const char *path, const wnid_entry *wnids, int n_wnids,
                         at_annotations *out, int *cap) {
    char *text;
    long len;
    if (read_whole_file(path, &text, &len)) return AT_ERR;
    xml_parser x = {.path = path, .text = text, .p = text, .end = text + len};
    ilsvrc_state s = {.wnids = wnids, .n_wnids = n_wnids, .first_cls = -1};
    int status = xml_parse(&x, &s);
    if (status == AT_OK && !s.have_id) status = at_fail(path, "no <annotation><filename>");
    if (status == AT_OK && (!s.width || !s.height))
        status = at_fail(path, "no <annotation><size><width> and <height>");
    int slot;
    if (status == AT_OK && set_add(out, cap, s.id, path, &slot) == AT_OK) {
        at_annotation *it = &out->items[slot];
        it->cls = s.first_cls;
        it->width = s.width;
        it->height = s.height;
        it->n_boxes = s.n_boxes;
        it->boxes = s.boxes;
        s.boxes = NULL;
    } else {
        status = AT_ERR;
    }
    free(s.boxes);
    free(x.buf);
    free(text);
    return status;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_xml(const char *path, int is_dir, const at_model *m, at_annotations *out) {
    wnid_entry *order = malloc(sizeof *order * (size_t)m->n_classes);
    if (!order) return at_fail(path, "out of memory");
    for (int i = 0; i < m->n_classes; i++) order[i] = (wnid_entry){m->labels[i].id, i};
    qsort(order, (size_t)m->n_classes, sizeof *order, cmp_wnid);
    int cap = 0, status = AT_OK;
    if (!is_dir) {
        status = load_xml_file(path, order, m->n_classes, out, &cap);
        free(order);
        return status;
    }
    DIR *d = opendir(path);
    if (!d) {
        free(order);
        return at_fail(path, "cannot open directory: %s", strerror(errno));
    }
    char **names = NULL;
    int n = 0, ncap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with_ci(e->d_name, ".xml") || e->d_name[0] == '.') continue;
        if (n == ncap) {
            ncap = ncap ? ncap * 2 : 256;
            char **nn = realloc(names, sizeof *nn * (size_t)ncap);
            if (!nn) {
                status = at_fail(path, "out of memory");
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            status = at_fail(path, "out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (status == AT_OK && n == 0) status = at_fail(path, "no .xml annotation files in the directory");
    if (status == AT_OK) qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; status == AT_OK && i < n; i++) {
        size_t need = strlen(path) + strlen(names[i]) + 2;
        char *full = malloc(need);
        if (!full) {
            status = at_fail(path, "out of memory");
            break;
        }
        snprintf(full, need, "%s/%s", path, names[i]);
        struct stat st;
        if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            free(full);
            continue;
        }
        status = load_xml_file(full, order, m->n_classes, out, &cap);
        free(full);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(order);
    return status;
}

/* ---------------------------------------------------------------- public */

int at_annotations_load(const char *path, const at_model *m, at_annotations *out) {
    memset(out, 0, sizeof *out);
    if (!m || m->n_classes <= 0 || !m->labels) return at_fail(path, "annotations need a model with labels");
    struct stat st;
    if (stat(path, &st) != 0) return at_fail(path, "cannot open: %s", strerror(errno));
    int status;
    if (S_ISDIR(st.st_mode)) status = load_xml(path, 1, m, out);
    else if (ends_with_ci(path, ".xml")) status = load_xml(path, 0, m, out);
    else status = load_csv(path, m, out);
    if (status != AT_OK) at_annotations_free(out);
    return status;
}

const at_annotation *at_annotations_find(const at_annotations *a, const char *image_path) {
    if (!a || !image_path) return NULL;
    const char *base = strrchr(image_path, '/');
    base = base ? base + 1 : image_path;
    const char *dot = strrchr(base, '.');
    size_t n = strlen(base);
    int i = -1;
    if (dot && dot > base) i = index_lookup(a, base, (size_t)(dot - base));
    if (i < 0) i = index_lookup(a, base, n);
    return i < 0 ? NULL : &a->items[i];
}

/* Pixel-centre rule on one axis: pixel i is inside when lo*n <= i + 0.5 < hi*n. */
static void resolve_axis(double lo, double hi, int n, int *first, int *last) {
    *first = (int)ceil(lo * n - 0.5);
    *last = (int)ceil(hi * n - 0.5) - 1;
    if (*first < 0) *first = 0;
    if (*last > n - 1) *last = n - 1;
}

/* 1 when the box covers a pixel of a w x h image, with *b resolved. */
static int resolve_box(const at_box *in, int w, int h, at_box *b) {
    *b = *in;
    if (!in->relative) return 1;
    b->relative = 0;
    resolve_axis(in->frac[0], in->frac[2], w, &b->box[0], &b->box[2]);
    resolve_axis(in->frac[1], in->frac[3], h, &b->box[1], &b->box[3]);
    return b->box[0] <= b->box[2] && b->box[1] <= b->box[3];
}

int at_annotation_boxes_for_size(const at_annotation *a, int w, int h, at_box *out, int cap) {
    int count = 0;
    for (int i = 0; i < a->n_boxes; i++) {
        if (a->boxes[i].relative && (w <= 0 || h <= 0))
            return at_fail(a->id, "a relative box needs the image size, got %dx%d", w, h);
        at_box b;
        if (!resolve_box(&a->boxes[i], w, h, &b)) continue;
        if (count < cap) out[count] = b;
        count++;
    }
    return count;
}

int at_annotations_box_mask(const at_annotation *a, const at_geometry *geo, int cls,
                            unsigned char *mask) {
    size_t n = (size_t)geo->out_w * (size_t)geo->out_h;
    memset(mask, 0, n);
    for (int i = 0; a && i < a->n_boxes; i++) {
        if (cls >= 0 && a->boxes[i].cls != cls) continue;
        at_box b;
        if (resolve_box(&a->boxes[i], geo->in_w, geo->in_h, &b)) at_box_mask(geo, b.box, mask);
    }
    int inside = 0;
    for (size_t i = 0; i < n; i++) inside += mask[i] != 0;
    return inside;
}
