/* Model loading: safetensors tensors -> at_model_build, metadata -> input size,
 * preprocessing and labels (docs/models.md). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "model/model.h"
#include "io/safetensors.h"
#include "io/sha256.h"

typedef struct {
    const at_safetensors *st;
    char *used; /* [n_tensors] fetched by the builder */
} st_ctx;

static float *st_get(void *ctx, const char *key, int64_t shape[8], int *ndim) {
    const at_safetensors *st = ((st_ctx *)ctx)->st;
    const at_st_tensor *t = at_st_find(st, key);
    if (!t) {
        at_fail(st->path, "missing tensor '%s'", key);
        return NULL;
    }
    if (((st_ctx *)ctx)->used) ((st_ctx *)ctx)->used[t - st->tensors] = 1;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        shape[i] = t->shape[i];
        n *= t->shape[i];
    }
    *ndim = t->ndim;
    float *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    if (!out) {
        at_fail(st->path, "out of memory for tensor '%s'", key);
        return NULL;
    }
    if (at_st_to_f32(st, t, out)) {
        free(out);
        return NULL;
    }
    return out;
}

static int meta_int(const at_safetensors *st, const char *key, int dflt, int lo, int hi, int *out) {
    const char *v = at_st_meta(st, key);
    if (!v) {
        *out = dflt;
        return AT_OK;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return at_fail(st->path, "metadata '%s' = '%s' is not an integer in %d..%d", key, v, lo, hi);
    *out = (int)x;
    return AT_OK;
}

static int meta_vec3(const at_safetensors *st, const char *key, float out[3]) {
    const char *v = at_st_meta(st, key);
    if (!v)
        return at_fail(st->path, "missing metadata '%s' (a JSON list of 3 numbers; see docs/models.md)",
                       key);
    at_json *j = NULL;
    if (at_json_parse(v, strlen(v), &j) || j->type != AT_JSON_ARRAY || j->n != 3) {
        at_json_free(j);
        return at_fail(st->path, "metadata '%s' = '%s' is not a JSON list of 3 numbers", key, v);
    }
    for (int i = 0; i < 3; i++) {
        if (j->items[i].type != AT_JSON_NUMBER) {
            at_json_free(j);
            return at_fail(st->path, "metadata '%s' = '%s' is not a JSON list of 3 numbers", key, v);
        }
        out[i] = (float)j->items[i].number;
    }
    at_json_free(j);
    return AT_OK;
}

static int labels_from_json(const char *path, const char *text, at_model *m) {
    at_json *j = NULL;
    if (at_json_parse(text, strlen(text), &j)) return at_fail(path, "metadata 'labels': %s", at_last_error());
    int rc = AT_OK;
    if (j->type != AT_JSON_ARRAY || (int)j->n != m->n_classes) {
        rc = at_fail(path, "metadata 'labels' must list %d [id, name] pairs, has %zu entries",
                     m->n_classes, j->type == AT_JSON_ARRAY ? j->n : 0);
    }
    for (int i = 0; rc == AT_OK && i < m->n_classes; i++) {
        const at_json *e = &j->items[i];
        if (e->type != AT_JSON_ARRAY || e->n != 2 || e->items[0].type != AT_JSON_STRING ||
            e->items[1].type != AT_JSON_STRING) {
            rc = at_fail(path, "metadata 'labels' entry %d is not an [id, name] pair of strings", i);
            break;
        }
        snprintf(m->labels[i].id, sizeof m->labels[i].id, "%s", e->items[0].string);
        snprintf(m->labels[i].name, sizeof m->labels[i].name, "%s", e->items[1].string);
    }
    at_json_free(j);
    return rc;
}

/* "<id> <name...>" per line, class-index order. */
static int labels_from_file(const char *path, at_model *m) {
    FILE *f = fopen(path, "r");
    if (!f) return at_fail(path, "%s", strerror(errno));
    char line[512];
    int n = 0, rc = AT_OK;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = 0;
        if (!len) continue;
        if (n >= m->n_classes) {
            rc = at_fail(path, "more than %d labels (the model has %d classes)", m->n_classes,
                         m->n_classes);
            break;
        }
        char *sp = strchr(line, ' ');
        if (sp) *sp = 0;
        snprintf(m->labels[n].id, sizeof m->labels[n].id, "%.31s", line);
        snprintf(m->labels[n].name, sizeof m->labels[n].name, "%.95s", sp ? sp + 1 : line);
        n++;
    }
    fclose(f);
    if (rc == AT_OK && n != m->n_classes)
        rc = at_fail(path, "has %d labels, the model has %d classes", n, m->n_classes);
    return rc;
}

static int load_labels(const at_safetensors *st, at_model *m) {
    m->labels = calloc(m->n_classes, sizeof *m->labels);
    if (!m->labels) return at_fail(st->path, "out of memory");
    const char *meta = at_st_meta(st, "labels");
    if (meta) return labels_from_json(st->path, meta, m);
    /* sibling files: "<stem>.labels.txt", then "labels.txt" in the same folder */
    char cand[2][1100];
    snprintf(cand[0], sizeof cand[0], "%s", st->path);
    char *dot = strrchr(cand[0], '.'), *slash = strrchr(cand[0], '/');
    if (dot && (!slash || dot > slash)) *dot = 0;
    strcat(cand[0], ".labels.txt");
    snprintf(cand[1], sizeof cand[1], "%s", st->path);
    slash = strrchr(cand[1], '/');
    if (slash)
        strcpy(slash + 1, "labels.txt");
    else
        strcpy(cand[1], "labels.txt");
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(cand[i], "r");
        if (f) {
            fclose(f);
            return labels_from_file(cand[i], m);
        }
    }
    for (int i = 0; i < m->n_classes; i++) {
        snprintf(m->labels[i].id, sizeof m->labels[i].id, "class%d", i);
        snprintf(m->labels[i].name, sizeof m->labels[i].name, "class %d", i);
    }
    return AT_OK;
}

static int file_sha256(const at_safetensors *st, char out[65]) {
    at_sha256 s;
    at_sha256_init(&s);
    at_sha256_update(&s, st->map, st->map_size);
    at_sha256_hex(&s, out);
    return AT_OK;
}

static int load_preprocessing(const at_safetensors *st, at_model *m, int *input) {
    int crop = 0, resize = 0;
    if (meta_int(st, "crop", 224, 0, 8192, &crop)) return AT_ERR;
    if (meta_int(st, "resize", crop, 0, 8192, &resize)) return AT_ERR;
    if (meta_int(st, "input_size", crop, 32, 8192, input)) return AT_ERR;
    if (crop && *input != crop)
        return at_fail(st->path, "metadata 'input_size' %d differs from 'crop' %d", *input, crop);
    m->pre.resize = resize;
    m->pre.crop = crop;
    const char *interp = at_st_meta(st, "interpolation");
    if (at_interp_parse(interp ? interp : "bilinear", &m->pre.interp))
        return at_fail(st->path, "metadata 'interpolation' = '%s' is not bilinear, bicubic or nearest",
                       interp);
    if (meta_vec3(st, "mean", m->pre.mean) || meta_vec3(st, "std", m->pre.std)) return AT_ERR;
    for (int i = 0; i < 3; i++)
        if (!(m->pre.std[i] > 0))
            return at_fail(st->path, "metadata 'std' must be positive, has %g", m->pre.std[i]);
    return AT_OK;
}

int at_model_load(const char *path, at_model **out) {
    *out = NULL;
    at_safetensors st;
    if (at_st_open(&st, path)) return AT_ERR;
    const char *arch = at_st_meta(&st, "arch");
    int avgpool = 7, input = 0, rc = AT_ERR;
    at_model *m = NULL;
    if (!arch) {
        at_fail(path, "missing metadata 'arch' (e.g. \"vgg16\"; see docs/models.md)");
        goto done;
    }
    at_model probe; /* preprocessing is parsed before the build needs the input size */
    memset(&probe, 0, sizeof probe);
    if (meta_int(&st, "avgpool", 7, 1, 64, &avgpool) || load_preprocessing(&st, &probe, &input))
        goto done;
    st_ctx ctx = {&st, calloc(st.n_tensors + 1, 1)};
    if (!ctx.used) {
        at_fail(path, "out of memory");
        goto done;
    }
    rc = at_model_build(path, arch, avgpool, input, input, st_get, &ctx, &m);
    /* ResNet: a tensor the arch has no place for (a deeper net's block) is refused too */
    for (int i = 0; rc == AT_OK && !strncmp(arch, "resnet", 6) && i < st.n_tensors; i++) {
        const char *key = st.tensors[i].name;
        const size_t len = strlen(key);
        if (!ctx.used[i] && !(len > 19 && !strcmp(key + len - 19, "num_batches_tracked")))
            rc = at_fail(path, "tensor '%s' has no place in %s (metadata arch)", key, arch);
    }
    free(ctx.used);
    if (rc) goto done;
    rc = AT_ERR;
    m->pre = probe.pre;
    if (m->in_c != 3) {
        at_fail(path, "the first conv takes %d channels; images are RGB (3)", m->in_c);
        goto done;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    const char *name = at_st_meta(&st, "name");
    if (name) snprintf(m->name, sizeof m->name, "%s", name);
    if (load_labels(&st, m)) goto done;
    file_sha256(&st, m->sha256);
    rc = AT_OK;
done:
    at_st_close(&st);
    if (rc == AT_OK)
        *out = m;
    else
        at_model_free(m);
    return rc;
}
