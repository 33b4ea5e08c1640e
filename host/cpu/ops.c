/* Operand rounding for the emulated precisions, and softmax. */
#include "cpu/ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

void at_round_tf32(float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u; /* inf/NaN unchanged */
        memcpy(&x[i], &u, 4);
    }
}

void at_round_fp16(float *x, long n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) x[i] = (float)(_Float16)x[i];
}

void at_softmax_rows(const float *logits, int N, int K, float *probs) {
    for (int n = 0; n < N; n++) {
        const float *l = logits + (long)n * K;
        float *p = probs + (long)n * K;
        float mx = l[0];
        for (int k = 1; k < K; k++)
            if (l[k] > mx) mx = l[k];
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)l[k] - mx);
        for (int k = 0; k < K; k++) p[k] = (float)(exp((double)l[k] - mx) / sum);
    }
}
