/* Output names (output/names.h). */
#include "output/names.h"

#include "core/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================= output names ======================= */

/* Lexical normal form: no "." components, no repeated or trailing '/'. */
static char *path_normalise(const char *p) {
    size_t k = 0, abs = p[0] == '/';
    char *o = malloc(strlen(p) + 1);
    if (!o) return NULL;
    if (abs) o[k++] = '/';
    for (const char *s = p; *s;) {
        while (*s == '/') s++;
        const char *e = s;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - s);
        if (len && !(len == 1 && s[0] == '.')) {
            if (k > abs) o[k++] = '/';
            memcpy(o + k, s, len);
            k += len;
        }
        s = e;
    }
    o[k] = 0;
    return o;
}

typedef struct {
    char *norm;     /* normalised path */
    int ncomp;      /* its components (a leading '/' is none) */
    int depth;      /* trailing components in the name, 1 = the file name */
    int keep_ext;   /* the last component keeps its extension */
    char *name;
} stem_in;

static int count_components(const char *norm) {
    int n = 0;
    for (const char *c = norm; *c; c++)
        if (*c != '/' && (c == norm || c[-1] == '/')) n++;
    return n;
}

/* The last `depth` components joined by "__", without the extension unless
 * keep_ext (only the last suffix is one; a leading dot is not). */
static char *stem_name(const stem_in *s, int depth, int keep_ext) {
    const char *rel = s->norm + strlen(s->norm);
    for (int k = 0; k < depth && rel > s->norm; k++) {
        if (rel > s->norm && rel[-1] == '/' && k) rel--;
        while (rel > s->norm && rel[-1] != '/') rel--;
    }
    const char *base = strrchr(s->norm, '/');
    base = base ? base + 1 : s->norm;
    const char *dot = strrchr(base, '.');
    const char *end = (!keep_ext && dot && dot > base) ? dot : base + strlen(base);
    size_t n = 0;
    for (const char *c = rel; c < end; c++) n += *c == '/' ? 2 : 1;
    char *o = malloc(n + 1);
    if (!o) return NULL;
    n = 0;
    for (const char *c = rel; c < end; c++) {
        if (*c == '/') o[n++] = '_', o[n++] = '_';
        else o[n++] = *c;
    }
    o[n] = 0;
    return o;
}

typedef struct {
    const char *name, *norm;
    int idx;
} stem_key;

static int stem_key_cmp(const void *a, const void *b) {
    const stem_key *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->norm, y->norm);
}

/* 1 when keeping the extension tells the group keys[g..e) apart. */
static int extension_separates(const stem_in *in, const stem_key *keys, int g, int e) {
    for (int i = g; i < e; i++)
        for (int j = i + 1; j < e; j++) {
            const stem_in *a = &in[keys[i].idx], *b = &in[keys[j].idx];
            if (!strcmp(a->norm, b->norm)) continue;
            char *x = stem_name(a, a->depth, 1), *y = stem_name(b, b->depth, 1);
            int same = !x || !y || !strcmp(x, y);
            free(x), free(y);
            if (same) return 0;
        }
    return 1;
}

int at_output_stems(int n, const char *const *paths, char **stems) {
    int rc = AT_ERR;
    stem_in *in = calloc(n > 0 ? (size_t)n : 1, sizeof *in);
    stem_key *keys = calloc(n > 0 ? (size_t)n : 1, sizeof *keys);
    for (int i = 0; i < n; i++) stems[i] = NULL;
    if (!in || !keys) {
        at_fail(NULL, "out of memory naming %d outputs", n);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const char *p = paths[i], *b = strrchr(p, '/');
        b = b ? b + 1 : p;
        if (!*b || !strcmp(b, ".") || !strcmp(b, "..")) {
            at_fail(p, "not a file name");
            goto done;
        }
        if (!(in[i].norm = path_normalise(p))) {
            at_fail(p, "out of memory");
            goto done;
        }
        in[i].ncomp = count_components(in[i].norm);
        in[i].depth = 1;
    }
    /* Lengthen the names of colliding inputs, one trailing directory at a
     * time, until they differ: the shortest suffix that tells them apart. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < n; i++) {
            free(in[i].name);
            if (!(in[i].name = stem_name(&in[i], in[i].depth, in[i].keep_ext))) {
                at_fail(paths[i], "out of memory");
                goto done;
            }
            keys[i] = (stem_key){in[i].name, in[i].norm, i};
        }
        qsort(keys, (size_t)n, sizeof *keys, stem_key_cmp);
        for (int g = 0, e; g < n; g = e) {
            for (e = g + 1; e < n && !strcmp(keys[e].name, keys[g].name); e++) {}
            if (!strcmp(keys[g].norm, keys[e - 1].norm)) continue; /* one path, maybe repeated */
            int grown = 0;
            if (extension_separates(in, keys, g, e)) {
                for (int k = g; k < e; k++)
                    if (!in[keys[k].idx].keep_ext) in[keys[k].idx].keep_ext = 1, grown = 1;
            }
            if (!grown) {
                for (int k = g; k < e; k++)
                    if (in[keys[k].idx].depth < in[keys[k].idx].ncomp) in[keys[k].idx].depth++, grown = 1;
                if (!grown) /* as long as possible: the extension is the last resort */
                    for (int k = g; k < e; k++)
                        if (!in[keys[k].idx].keep_ext) in[keys[k].idx].keep_ext = 1, grown = 1;
            }
            if (!grown) {
                at_fail(paths[keys[g].idx], "output name \"%s\" is also that of %s; rename one",
                        keys[g].name, paths[keys[e - 1].idx]);
                goto done;
            }
            changed = 1;
        }
    }
    for (int i = 0; i < n; i++) stems[i] = in[i].name, in[i].name = NULL;
    rc = AT_OK;
done:
    for (int i = 0; in && i < n; i++) free(in[i].norm), free(in[i].name);
    free(in);
    free(keys);
    return rc;
}

char *at_output_path(const char *dir, const char *stem, const char *method, const char *param,
                     const char *ext) {
    int n = snprintf(NULL, 0, "%s/%s.%s%s%s.%s", dir, stem, method, param ? "." : "",
                     param ? param : "", ext);
    char *o = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!o) {
        at_fail(dir, "out of memory");
        return NULL;
    }
    snprintf(o, (size_t)n + 1, "%s/%s.%s%s%s.%s", dir, stem, method, param ? "." : "",
             param ? param : "", ext);
    return o;
}

int at_output_dir_prepare(const char *dir) {
    if (!dir || !dir[0]) return at_fail("output directory", "empty directory name");
    char *p = strdup(dir);
    if (!p) return at_fail(dir, "out of memory");
    int rc = AT_OK;
    for (char *s = p + 1;; s++) {
        if (*s && *s != '/') continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = at_fail(dir, "cannot create directory %s: %s", p, strerror(errno));
            break;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc = strcmp(p, dir) ? at_fail(dir, "%s is not a directory", p)
                                : at_fail(dir, "not a directory");
            break;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    if (rc == AT_OK && access(dir, W_OK | X_OK) != 0)
        rc = at_fail(dir, "directory is not writable: %s", strerror(errno));
    return rc;
}

