/* The ILSVRC / VOC XML reader: a small strict XML parser and the schema
 * (annotations.h). */
#include "io/annotations_read.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

#include "core/error.h"

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
        if (!text || ann_trim_copy(text, strlen(text), t, sizeof t) == 0)
            return xml_fail(x, "empty or structured <%s>", "filename");
        /* ILSVRC writes the stem; drop an image extension if someone wrote one */
        static const char *const ext[] = {".jpeg", ".jpg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp"};
        for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
            if (ann_ends_with_ci(t, ext[i]) && strlen(t) > strlen(ext[i])) {
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
        if (!text || ann_parse_uint(text, &v) || v <= 0)
            return xml_fail(x, "<%s> '%.40s' is not a positive integer", nm, text ? text : "");
        *(is_w ? &s->width : &s->height) = v;
        return AT_OK;
    }
    if (xml_at(x, "annotation/object/name")) {
        if (s->have_name) return xml_fail(x, "second <%s> in an <object>", "name");
        if (!text || ann_trim_copy(text, strlen(text), t, sizeof t) == 0)
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
        if (ann_is_negative_int(v)) return xml_fail(x, "<%s> '%.40s' is negative", COORD[k], v);
        if (ann_parse_uint(v, &s->coord[k]))
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
    if (ann_read_whole_file(path, &text, &len)) return AT_ERR;
    xml_parser x = {.path = path, .text = text, .p = text, .end = text + len};
    ilsvrc_state s = {.wnids = wnids, .n_wnids = n_wnids, .first_cls = -1};
    int status = xml_parse(&x, &s);
    if (status == AT_OK && !s.have_id) status = at_fail(path, "no <annotation><filename>");
    if (status == AT_OK && (!s.width || !s.height))
        status = at_fail(path, "no <annotation><size><width> and <height>");
    int slot;
    if (status == AT_OK && ann_set_add(out, cap, s.id, path, &slot) == AT_OK) {
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

int ann_load_xml(const char *path, int is_dir, const at_model *m, at_annotations *out) {
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
        if (!ann_ends_with_ci(e->d_name, ".xml") || e->d_name[0] == '.') continue;
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

