/* Element-wise ops (the CPU references of kernels/elementwise.cu). */
#include "cpu/ops.h"

/* y = a + b; y may alias a or b (residual adds, gradient accumulation). */
void at_add_forward(const float *a, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void at_mul_forward(const float *a, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = a[i] * b[i];
}

/* a / b with 0 where b is 0: the zero rule of excitation backprop and LRP (docs/methods.md). */
void at_div_forward(const float *a, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = b[i] != 0.0f ? a[i] / b[i] : 0.0f;
}

/* max(x, 0) or min(x, 0): the x+ and x- of LRP's alpha-beta and gamma rules. */
void at_clamp_sign_forward(const float *x, int sign, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = sign > 0 ? (x[i] > 0 ? x[i] : 0.0f) : (x[i] < 0 ? x[i] : 0.0f);
}

/* a where sign * m > 0, else 0: the generalised gamma rule's [z > 0] and [z < 0]. */
void at_select_sign_forward(const float *m, const float *a, int sign, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = (sign > 0 ? m[i] > 0 : m[i] < 0) ? a[i] : 0.0f;
}

/* a / (b + eps sign(b)) with sign(0) = +1: zennit's Stabilizer (docs/methods.md#lrp). */
void at_div_stabilized_forward(const float *a, const float *b, float eps, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = a[i] / (b[i] + (b[i] >= 0 ? eps : -eps));
}

void at_axpby_forward(float alpha, const float *a, float beta, const float *b, long n, float *y) {
#pragma omp parallel for schedule(static) if (n > AT_PARALLEL_MIN_FLOATS)
    for (long i = 0; i < n; i++) y[i] = alpha * a[i] + beta * b[i];
}
