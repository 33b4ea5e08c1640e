/* Small tensor helpers shared by the backend, executor and op tests. */
#ifndef ATTRIB_TENSOR_UTIL_H
#define ATTRIB_TENSOR_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "exec/backend.h"
#include "model/random_model.h"

/* n floats from the shared PRNG (tools/prng.py): scale * U(-1, 1) + offset. */
float *test_random(const char *name, uint64_t seed, long n, float scale, float offset);
/* 1 when a and b hold the same bits; else records a failure naming the first difference. */
int test_same_bits(const char *what, const float *a, const float *b, long n, const char *file, int line);
#define SAME_BITS(what, a, b, n) test_same_bits(what, a, b, n, __FILE__, __LINE__)

/* Every |got - ref| <= rtol * (max |ref| + |ref|) and the normalised mean
 * squared error <= max_nmse; rtol 0 asks for the same bits. Records a
 * failure naming the worst element or the NMSE; 1 when both hold. */
int test_close_nmse(const char *what, const float *got, const float *ref, long n, double rtol, double max_nmse,
                    const char *file, int line);
/* Why the named backend cannot run here ("cuda" without a device), or NULL. */
const char *test_backend_unusable(const char *name);
/* The named backend on m (mem_limit 0: none); NULL and a recorded failure when it cannot be made. */
at_backend *test_backend_open(const at_model *m, const char *name, size_t mem_limit);
/* spec's random model *m on the named backend. NULL with *skip set when the
 * backend cannot run here; NULL (*m freed) and a recorded failure when the
 * model or backend cannot be made. */
at_backend *test_random_backend(const at_random_spec *spec, const char *name, at_model **m, const char **skip);
/* The same on the CPU, which always runs. */
at_backend *test_cpu_random(const at_random_spec *spec, at_model **m);
/* In a test: spec's random model m on the CPU backend be, or the test stops. */
#define WITH_CPU_RANDOM(spec, m, be)                \
    at_model *m;                                    \
    at_backend *be = test_cpu_random((spec), &m);   \
    REQUIRE(be)
/* The named backend on m, or NULL with m freed and a recorded failure. */
at_backend *test_backend_or_free(at_model *m, const char *name);
/* Destroys be, then frees m. */
void test_backend_close(at_backend *be, at_model *m);

#endif
