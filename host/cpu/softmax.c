/* Softmax over each item's K features, forward and backward (the CPU
 * references of kernels/softmax.cu): max-shifted exponentials summed in
 * double in index order, as at_softmax_rows. */
#include <math.h>

#include "cpu/ops.h"

void at_softmax_forward(const float *x, int N, long K, float *y) {
#pragma omp parallel for schedule(static) if (N > 1) /* one item: nothing to share */
    for (int n = 0; n < N; n++) {
        const float *l = x + n * K;
        float mx = l[0];
        for (long k = 1; k < K; k++)
            if (l[k] > mx) mx = l[k];
        double sum = 0;
        for (long k = 0; k < K; k++) sum += exp((double)l[k] - mx);
        for (long k = 0; k < K; k++) y[n * K + k] = (float)(exp((double)l[k] - mx) / sum);
    }
}

/* dx = y * (dy - sum(y * dy)) per item, the sum in double. */
void at_softmax_backward(const float *y, const float *dy, int N, long K, float *dx) {
#pragma omp parallel for schedule(static) if (N > 1) /* one item: nothing to share */
    for (int n = 0; n < N; n++) {
        double dot = 0;
        for (long k = 0; k < K; k++) dot += (double)y[n * K + k] * dy[n * K + k];
        for (long k = 0; k < K; k++) dx[n * K + k] = (float)((double)y[n * K + k] * ((double)dy[n * K + k] - dot));
    }
}
