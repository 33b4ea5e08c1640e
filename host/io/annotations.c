/* Annotations: the set of images and boxes, lookup, boxes on the network
 * input (formats and decisions in annotations.h; readers in
 * annotations_csv.c and annotations_xml.c). */
#include "io/annotations_read.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"

#include "core/error.h"

/* ------------------------------------------------------------ small utils */

int ann_read_whole_file(const char *path, char **buf, long *len) {
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
size_t ann_trim_copy(const char *s, size_t n, char *out, size_t cap) {
    while (n > 0 && isspace((unsigned char)s[0])) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(out, s, k);
    out[k] = 0;
    return n;
}

/* A plain non-negative decimal integer (surrounding spaces allowed). */
int ann_parse_uint(const char *s, int *v) {
    char t[32];
    if (ann_trim_copy(s, strlen(s), t, sizeof t) >= sizeof t || !t[0]) return AT_ERR;
    long long x = 0;
    for (const char *p = t; *p; p++) {
        if (*p < '0' || *p > '9') return AT_ERR;
        x = x * 10 + (*p - '0');
        if (x > INT_MAX) return AT_ERR;
    }
    *v = (int)x;
    return AT_OK;
}

int ann_parse_finite(const char *s, double *v) {
    char t[64], *end;
    if (ann_trim_copy(s, strlen(s), t, sizeof t) >= sizeof t || !t[0]) return AT_ERR;
    errno = 0;
    double x = strtod(t, &end);
    if (*end || !isfinite(x)) return AT_ERR;
    *v = x;
    return AT_OK;
}

int ann_is_negative_int(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    int v;
    return *s == '-' && ann_parse_uint(s + 1, &v) == AT_OK;
}

int ann_ends_with_ci(const char *s, const char *suffix) {
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
int ann_set_add(at_annotations *a, int *cap, const char *id, const char *subject, int *slot) {
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

int ann_add_box(at_annotation *it, const at_box *b, const char *subject) {
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

/* ---------------------------------------------------------------- public */

int at_annotations_load(const char *path, const at_model *m, at_annotations *out) {
    memset(out, 0, sizeof *out);
    if (!m || m->n_classes <= 0 || !m->labels) return at_fail(path, "annotations need a model with labels");
    struct stat st;
    if (stat(path, &st) != 0) return at_fail(path, "cannot open: %s", strerror(errno));
    int status;
    if (S_ISDIR(st.st_mode)) status = ann_load_xml(path, 1, m, out);
    else if (ann_ends_with_ci(path, ".xml")) status = ann_load_xml(path, 0, m, out);
    else status = ann_load_csv(path, m, out);
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

