/* Operand rounding for the emulated precisions. */
#include "cpu/ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void at_round_tf32(float *x, long n) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u; /* inf/NaN unchanged */
        memcpy(&x[i], &u, 4);
    }
}

void at_round_fp16(float *x, long n) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) x[i] = (float)(_Float16)x[i];
}

