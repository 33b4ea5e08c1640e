/* Network inputs of a batch (host/exec/ops.h at_inputs_call), the CPU
 * reference of kernels/masks.cu: each item's input row, optionally times its
 * low-resolution mask, min-max normalised before or after a bilinear
 * upsampling to the input size, in the normalised or the [0,1] space
 * (docs/methods.md, Score-CAM masking). */
#include <stdlib.h>
#include <string.h>

#include "cpu/masks.h"
#include "core/error.h"
#include "methods/maps.h"

static void make_input(const at_inputs_call *a, float *upsampled, int b) {
    const long hw = (long)a->H * a->W, in = a->C * hw;
    const float *src = a->rows + (long)(a->index ? a->index[b] : b) * in;
    float *dst = a->out + (a->mask_only ? hw : in) * b;
    if (!a->masks) {
        memcpy(dst, src, sizeof(float) * in);
        return;
    }
    const float *mask = a->masks + (long)b * a->mh * a->mw;
    if (a->norm == AT_MASK_MINMAX_BEFORE) {
        float *tmp = upsampled + hw; /* scratch after the upsampled map */
        memcpy(tmp, mask, sizeof(float) * a->mh * a->mw);
        at_minmax_normalize(tmp, (long)a->mh * a->mw);
        at_upsample_bilinear(tmp, a->mh, a->mw, upsampled, a->H, a->W, a->align_corners);
    } else {
        at_upsample_bilinear(mask, a->mh, a->mw, upsampled, a->H, a->W, a->align_corners);
        if (a->norm == AT_MASK_MINMAX_AFTER) at_minmax_normalize(upsampled, hw);
    }
    if (a->mask_only) {
        memcpy(dst, upsampled, sizeof(float) * hw);
        return;
    }
    for (int c = 0; c < a->C; c++) {
        const float *s = src + c * hw;
        float *d = dst + c * hw;
        if (a->space == AT_MASK_UNIT) {
            /* ((x*std + mean) * m - mean) / std = x*m + (mean/std)*(m-1) */
            const float ms = a->mean_over_std[c];
            for (long i = 0; i < hw; i++) d[i] = s[i] * upsampled[i] + ms * (upsampled[i] - 1.0f);
        } else {
            for (long i = 0; i < hw; i++) d[i] = s[i] * upsampled[i];
        }
    }
}

int at_make_inputs(const at_inputs_call *a) {
    if (a->n < 1 || a->C < 1) return at_fail("masked inputs", "%d items of %d channels", a->n, a->C);
    if (a->masks && (a->mh < 1 || a->mw < 1 || a->mh > a->H || a->mw > a->W))
        return at_fail("masked inputs", "mask %dx%d must be between 1x1 and the input size %dx%d", a->mh, a->mw, a->H,
                       a->W);
    const long hw = (long)a->H * a->W, per = a->masks ? hw + (long)a->mh * a->mw : 0;
    float *scratch = per ? malloc(sizeof(float) * per * a->n) : NULL;
    if (per && !scratch) return at_fail("masked inputs", "out of memory");
#pragma omp parallel for schedule(static)
    for (int b = 0; b < a->n; b++) make_input(a, scratch ? scratch + per * b : NULL, b);
    free(scratch);
    return AT_OK;
}
