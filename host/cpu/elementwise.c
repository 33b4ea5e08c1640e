/* Element-wise ops (the CPU references of kernels/elementwise.cu). */
#include "cpu/ops.h"

/* y = a + b; y may alias a or b (residual adds, gradient accumulation). */
void at_add_forward(const float *a, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void at_mul_forward(const float *a, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) y[i] = a[i] * b[i];
}

/* a / b with 0 where b is 0: the zero rule of excitation backprop and LRP (docs/methods.md). */
void at_div_forward(const float *a, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) y[i] = b[i] != 0.0f ? a[i] / b[i] : 0.0f;
}
