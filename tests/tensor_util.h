/* Small tensor helpers shared by the backend, executor and op tests. */
#ifndef ATTRIB_TENSOR_UTIL_H
#define ATTRIB_TENSOR_UTIL_H

#include <stdint.h>

/* n floats from the shared PRNG (tools/prng.py): scale * U(-1, 1) + offset. */
float *test_random(const char *name, uint64_t seed, long n, float scale, float offset);
/* 1 when a and b hold the same bits; else records a failure naming the first difference. */
int test_same_bits(const char *what, const float *a, const float *b, long n, const char *file, int line);
#define SAME_BITS(what, a, b, n) test_same_bits(what, a, b, n, __FILE__, __LINE__)

#endif
