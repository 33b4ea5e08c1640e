#include "model_fixture.h"

#include <png.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/image.h"
#include "model/random_model.h"
#include "io/safetensors.h"
#include "test.h"

at_model *fixture_tiny_model(void) {
    at_random_spec spec = {.arch = "vgg11", .widths = {4, 6, 8, 8, 8, 8, 8, 8}, .hidden = {16, 12},
                           .n_classes = 8, .in_h = 32, .in_w = 32, .avgpool = 1, .seed = 7};
    at_model *m = NULL;
    return at_random_model(&spec, &m) ? NULL : m;
}

int fixture_tensor_add(fixture_tensors *t, const char *key, const float *data, int ndim, const int64_t *shape) {
    if (t->n == FIXTURE_MAX_TENSORS || ndim > 4) return 0;
    const int k = t->n++;
    snprintf(t->keys[k], sizeof t->keys[k], "%s", key);
    t->names[k] = t->keys[k], t->data[k] = data, t->ndims[k] = ndim;
    memcpy(t->shapes[k], shape, sizeof(int64_t) * ndim);
    t->shape_ptrs[k] = t->shapes[k];
    return 1;
}

int fixture_tensors_write(const fixture_tensors *t, const char *path, int n_meta, const char *const *meta_keys,
                          const char *const *meta_values) {
    return at_st_write_f32(path, t->n, t->names, t->data, t->ndims, t->shape_ptrs, n_meta, meta_keys, meta_values);
}

int fixture_write_model(const at_model *m, const char *path, const fixture_edit *edit) {
    static fixture_tensors t;
    t.n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (l->kind != AT_L_CONV && l->kind != AT_L_LINEAR) continue;
        for (int part = 0; part < 2; part++) {
            char key[48];
            snprintf(key, sizeof key, "%s.%s", l->name, part ? "bias" : "weight");
            if (edit && edit->drop_key && !strcmp(edit->drop_key, key)) continue;
            int64_t shape[4] = {l->out_c, l->in_c, l->kernel, l->kernel};
            const int ndim = part ? 1 : l->kind == AT_L_CONV ? 4 : 2;
            /* a smaller first dimension keeps the data pointer in bounds */
            if (edit && edit->reshape_key && !strcmp(edit->reshape_key, key)) shape[0] -= 1;
            fixture_tensor_add(&t, key, part ? l->bias : l->weight, ndim, shape);
        }
    }
    if (edit && edit->extra_key) {
        const int64_t shape[1] = {m->layers[0].out_c};
        fixture_tensor_add(&t, edit->extra_key, m->layers[0].bias, 1, shape);
    }
    char avg[16], crop[16], labels[4096];
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == AT_L_ADAPTIVE_AVGPOOL) snprintf(avg, sizeof avg, "%d", m->layers[i].out_h);
    snprintf(crop, sizeof crop, "%d", m->in_h);
    size_t o = snprintf(labels, sizeof labels, "[");
    for (int c = 0; c < m->n_classes; c++)
        o += snprintf(labels + o, sizeof labels - o, "%s[\"%s\", \"%s\"]", c ? ", " : "", m->labels[c].id,
                      m->labels[c].name);
    snprintf(labels + o, sizeof labels - o, "]");
    const char *keys[32] = {"arch", "avgpool", "resize", "crop", "interpolation", "mean", "std", "labels"};
    const char *vals[32] = {m->arch, avg, crop, crop, "bilinear", "[0.485, 0.456, 0.406]",
                            "[0.229, 0.224, 0.225]", labels};
    int n_meta = 8;
    for (int e = 0; edit && e < 16 && edit->meta_keys[e]; e++) {
        int found = -1;
        for (int k = 0; k < n_meta; k++)
            if (!strcmp(keys[k], edit->meta_keys[e])) found = k;
        if (found < 0) {
            keys[n_meta] = edit->meta_keys[e];
            vals[n_meta++] = edit->meta_values[e];
        } else {
            vals[found] = edit->meta_values[e];
        }
    }
    /* drop keys whose value is NULL */
    int w = 0;
    for (int k = 0; k < n_meta; k++)
        if (vals[k]) keys[w] = keys[k], vals[w++] = vals[k];
    return fixture_tensors_write(&t, path, w, keys, vals);
}

int fixture_write_grey_png(const char *path, int w, int h, int depth, const unsigned short *v) {
    FILE *f = fopen(path, "wb");
    if (!f) return AT_ERR;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    unsigned char *row = malloc((size_t)w * 2);
    int rc = AT_ERR;
    if (!png || !info || !row || setjmp(png_jmpbuf(png))) goto out;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            unsigned s = v[(size_t)y * w + x];
            if (depth == 16) row[2 * x] = (unsigned char)(s >> 8), row[2 * x + 1] = (unsigned char)s; /* big-endian */
            else row[x] = (unsigned char)s;
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    rc = AT_OK;
out:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    free(row);
    if (fclose(f)) rc = AT_ERR;
    return rc;
}

int fixture_model_dir(char *dir, size_t dir_cap, char *model, size_t model_cap) {
    snprintf(dir, dir_cap, "%s", test_tmpdir());
    snprintf(model, model_cap, "%s/tiny.safetensors", dir);
    at_model *m = fixture_tiny_model();
    int ok = m && !fixture_write_model(m, model, NULL);
    at_model_free(m);
    return ok;
}

int fixture_pattern_png(const char *path, int w, int h, int mul, int shift, int add) {
    unsigned char *rgb = malloc((size_t)w * h * 3);
    if (!rgb) return 0;
    for (int i = 0; i < w * h * 3; i++) rgb[i] = (unsigned char)(i * mul + (i >> shift) * add);
    int ok = at_image_write_png(path, w, h, rgb) == AT_OK;
    free(rgb);
    return ok;
}
