#include "tensor_util.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/backend.h"
#include "model/random_model.h"
#include "test.h"

float *test_random(const char *name, uint64_t seed, long n, float scale, float offset) {
    float *p = malloc(sizeof(float) * (n > 0 ? n : 1));
    if (p) at_prng_fill(name, seed, p, n, scale, offset);
    return p;
}

int test_same_bits(const char *what, const float *a, const float *b, long n, const char *file, int line) {
    for (long i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            test_fail_at(file, line, "%s: [%ld] %.9g vs %.9g (not bit-identical)", what, i, a[i], b[i]);
            return 0;
        }
    return 1;
}

int test_close_nmse(const char *what, const float *got, const float *ref, long n, double rtol, double max_nmse,
                    const char *file, int line) {
    if (rtol == 0) return test_same_bits(what, got, ref, n, file, line);
    double scale = 0, se = 0, sr = 0;
    for (long i = 0; i < n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    int ok = check_close(what, got, ref, n, rtol * scale + 1e-30, rtol, file, line);
    for (long i = 0; i < n; i++) se += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]), sr += (double)ref[i] * ref[i];
    const double nmse = sr > 0 ? se / sr : se;
    if (!(nmse <= max_nmse)) {
        test_fail_at(file, line, "%s: nmse %.3g > %.3g", what, nmse, max_nmse);
        ok = 0;
    }
    return ok;
}

const char *test_backend_unusable(const char *name) {
    static char why[320];
    return strcmp(name, "cuda") || at_cuda_available(why, sizeof why) ? NULL : why;
}

at_backend *test_backend_open(const at_model *m, const char *name, size_t mem_limit) {
    at_backend *be = NULL;
    at_backend_options o = {.name = name, .mem_limit = mem_limit};
    if (at_backend_create(m, &o, &be)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", name, at_last_error());
        return NULL;
    }
    return be;
}

at_backend *test_random_backend(const at_random_spec *spec, const char *name, at_model **m, const char **skip) {
    *m = NULL;
    if ((*skip = test_backend_unusable(name))) return NULL;
    at_backend *be = NULL;
    if (at_random_model(spec, m) == AT_OK && (be = test_backend_open(*m, name, 0))) return be;
    if (!*m) test_fail_at(__FILE__, __LINE__, "random model: %s", at_last_error());
    at_model_free(*m);
    *m = NULL;
    return NULL;
}

at_backend *test_cpu_random(const at_random_spec *spec, at_model **m) {
    const char *skip;
    return test_random_backend(spec, "cpu", m, &skip);
}

void test_backend_close(at_backend *be, at_model *m) {
    at_backend_destroy(be);
    at_model_free(m);
}

at_backend *test_backend_or_free(at_model *m, const char *name) {
    at_backend *be = test_backend_open(m, name, 0);
    if (!be) at_model_free(m);
    return be;
}
