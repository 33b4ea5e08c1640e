#include "tensor_util.h"

#include <stdlib.h>
#include <string.h>

#include "random_model.h"
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
