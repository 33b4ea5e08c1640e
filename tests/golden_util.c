#include "golden_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/npy.h"
#include "model/random_model.h"
#include "test.h"

const char *golden_dir(void) {
    const char *d = getenv("ATTRIB_GOLDENS");
    return d && d[0] ? d : test_path("tests/goldens");
}

at_json *golden_meta(const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        test_fail_at(__FILE__, __LINE__, "%s: cannot read", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    at_json *j = NULL;
    if (at_json_parse(buf, got, &j)) test_fail_at(__FILE__, __LINE__, "%s: %s", path, at_last_error());
    free(buf);
    return j;
}

double golden_meta_num(const at_json *meta, const char *key, double dflt) {
    const at_json *v = at_json_get(meta, key);
    return v && v->type == AT_JSON_NUMBER ? v->number : dflt;
}

int golden_meta_int(const at_json *meta, const char *key, int dflt) { return (int)golden_meta_num(meta, key, dflt); }

double golden_meta_item(const at_json *meta, const char *key, int b) {
    const at_json *v = at_json_get(meta, key);
    return v && v->type == AT_JSON_ARRAY && (size_t)b < v->n ? v->items[b].number : NAN;
}

const char *golden_meta_str(const at_json *meta, const char *key, const char *dflt) {
    const at_json *v = at_json_get(meta, key);
    return v && v->type == AT_JSON_STRING ? v->string : dflt;
}

at_model *golden_model(const at_json *meta) {
    at_random_spec spec;
    memset(&spec, 0, sizeof spec);
    const at_json *widths = at_json_get(meta, "widths"), *hidden = at_json_get(meta, "hidden");
    spec.arch = golden_meta_str(meta, "arch", "?");
    for (size_t i = 0; widths && i < widths->n && i < 16; i++) spec.widths[i] = (int)widths->items[i].number;
    if (hidden && hidden->n == 2) {
        spec.hidden[0] = (int)hidden->items[0].number;
        spec.hidden[1] = (int)hidden->items[1].number;
    }
    spec.n_classes = golden_meta_int(meta, "classes", 0);
    spec.in_h = golden_meta_int(meta, "h", 0);
    spec.in_w = golden_meta_int(meta, "w", 0);
    spec.avgpool = golden_meta_int(meta, "avgpool", 0);
    spec.seed = (uint64_t)golden_meta_int(meta, "seed", 0);
    at_model *m = NULL;
    if (at_random_model(&spec, &m)) test_fail_at(__FILE__, __LINE__, "golden model: %s", at_last_error());
    return m;
}

float *golden_npy(const char *dir, const char *name, long *n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    float *data = NULL;
    int ndim;
    int64_t shape[8];
    if (at_npy_read_f32(path, &data, &ndim, shape)) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        return NULL;
    }
    *n = 1;
    for (int i = 0; i < ndim; i++) *n *= shape[i];
    return data;
}

int golden_compare(const char *dir, const char *name, const char *what, const float *got, long n, double atol,
                   double rtol) {
    long rn;
    float *ref = golden_npy(dir, name, &rn);
    if (!ref) return 0;
    int ok;
    if (rn != n) {
        test_fail_at(__FILE__, __LINE__, "%s: %ld values, golden %s has %ld", what, n, name, rn);
        ok = 0;
    } else {
        char label[512];
        snprintf(label, sizeof label, "%s (%s)", what, dir);
        ok = check_close(label, got, ref, n, atol, rtol, __FILE__, __LINE__);
    }
    free(ref);
    return ok;
}

int golden_each_case(const char *sub, void (*fn)(const char *case_dir, const char *name), int min_cases) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/cases.txt", golden_dir(), sub);
    FILE *f = fopen(path, "r");
    if (!f) {
        test_fail_at(__FILE__, __LINE__, "%s: cannot read", path);
        return 0;
    }
    char line[256];
    int count = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char dir[1600];
        snprintf(dir, sizeof dir, "%s/%s/%s", golden_dir(), sub, line);
        fn(dir, line);
        count++;
    }
    fclose(f);
    if (count < min_cases) test_fail_at(__FILE__, __LINE__, "only %d %s golden cases, want %d", count, sub, min_cases);
    return count;
}

int golden_case_open(const char *dir, const char *name, golden_case *c) {
    c->m = NULL, c->be = NULL;
    if (!(c->meta = golden_meta(dir))) return 0;
    at_backend_options bo = {.name = "cpu"};
    if ((c->m = golden_model(c->meta)) && at_backend_create(c->m, &bo, &c->be) == AT_OK) return 1;
    test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
    golden_case_close(c);
    return 0;
}

void golden_case_close(golden_case *c) {
    at_backend_destroy(c->be);
    at_model_free(c->m);
    at_json_free(c->meta);
    c->be = NULL, c->m = NULL, c->meta = NULL;
}
