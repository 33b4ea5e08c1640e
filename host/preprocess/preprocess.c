/* torchvision's PIL-path eval transform, bit for bit (see preprocess.h).
 * The resampler follows Pillow's libImaging/Resample.c (precompute_coeffs,
 * normalize_coeffs_8bpc, ImagingResample{Horizontal,Vertical}_8bpc) and its
 * nearest path follows Geometry.c (ImagingScaleAffine). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strcasecmp */
#endif
#include "preprocess/preprocess.h"

#include "core/error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bit-exactness needs the same double rounding as Pillow, built without FMA:
 * forbid contracting a*b+c into one fused operation (it would round once). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Pillow: 8 bits for the value, 2 for filter overshoot, the rest fraction. */
#define PRECISION_BITS (32 - 8 - 2)
#define MAX_PARAM_SIDE 65536
#define MAX_RESIZED_SIDE (1 << 27)

/* ---------------------------------------------------------------- options */

int at_interp_parse(const char *name, at_interp *out) {
    static const struct { const char *name; at_interp v; } names[] = {
        {"bilinear", AT_INTERP_BILINEAR}, {"bicubic", AT_INTERP_BICUBIC}, {"nearest", AT_INTERP_NEAREST}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i].name)) {
            *out = names[i].v;
            return AT_OK;
        }
    return at_fail(NULL, "unknown interpolation '%s' (expected bilinear, bicubic or nearest)",
                   name ? name : "(null)");
}

const char *at_interp_name(at_interp interp) {
    switch (interp) {
    case AT_INTERP_BILINEAR: return "bilinear";
    case AT_INTERP_BICUBIC: return "bicubic";
    case AT_INTERP_NEAREST: return "nearest";
    }
    return "?";
}

int at_preprocess_check(const at_preprocess *pp) {
    if (pp->resize < 0 || pp->resize > MAX_PARAM_SIDE)
        return at_fail(NULL, "preprocessing: resize %d out of range 0..%d", pp->resize, MAX_PARAM_SIDE);
    if (pp->crop < 0 || pp->crop > MAX_PARAM_SIDE)
        return at_fail(NULL, "preprocessing: crop %d out of range 0..%d", pp->crop, MAX_PARAM_SIDE);
    if (pp->interp != AT_INTERP_BILINEAR && pp->interp != AT_INTERP_BICUBIC &&
        pp->interp != AT_INTERP_NEAREST)
        return at_fail(NULL, "preprocessing: unknown interpolation %d", (int)pp->interp);
    for (int c = 0; c < 3; c++) {
        if (!isfinite(pp->mean[c]))
            return at_fail(NULL, "preprocessing: mean[%d] is not finite", c);
        if (!isfinite(pp->std[c]) || pp->std[c] == 0)
            return at_fail(NULL, "preprocessing: std[%d] = %g (must be finite and non-zero)", c,
                           (double)pp->std[c]);
    }
    return AT_OK;
}

/* --------------------------------------------------------------- geometry */

/* torchvision CenterCrop's offset in one dimension: Python's round() is
 * half-to-even; a crop larger than the image pads (crop - size) // 2 first. */
static int crop_offset(int size, int crop) {
    if (crop > size) return -((crop - size) / 2);
    int d = size - crop, k = d / 2;
    if (d % 2 == 0) return k;
    return k % 2 == 0 ? k : k + 1; /* k + 0.5 rounds to the even neighbour */
}

void at_geometry_of(int w, int h, const at_preprocess *pp, at_geometry *geo) {
    int rw = w, rh = h;
    if (pp->resize > 0) {
        /* torchvision: int(requested_new_short * long / short); the product
         * is exact in double, the division correctly rounded, as in Python. */
        int shrt = w <= h ? w : h, lng = w <= h ? h : w;
        double l = (double)((long long)pp->resize * lng) / shrt;
        int nl = l > 2147483647.0 ? 2147483647 : (int)l;
        rw = w <= h ? pp->resize : nl;
        rh = w <= h ? nl : pp->resize;
    }
    geo->in_w = w;
    geo->in_h = h;
    geo->resized_w = rw;
    geo->resized_h = rh;
    geo->scale_x = (double)rw / w;
    geo->scale_y = (double)rh / h;
    if (pp->crop > 0) {
        geo->out_w = geo->out_h = pp->crop;
        geo->crop_left = crop_offset(rw, pp->crop);
        geo->crop_top = crop_offset(rh, pp->crop);
    } else {
        geo->out_w = rw;
        geo->out_h = rh;
        geo->crop_left = geo->crop_top = 0;
    }
}

/* Output index range [*lo, *hi) whose centres fall in [bmin, bmax + 1) of
 * the original image (monotonic in the index, so a contiguous range). */
static void box_range(int n, int offset, double scale, int bmin, int bmax, int *lo, int *hi) {
    *lo = n;
    *hi = 0;
    for (int i = 0; i < n; i++) {
        double o = (i + offset + 0.5) / scale;
        if (o >= bmin && o < (double)bmax + 1.0) {
            if (i < *lo) *lo = i;
            *hi = i + 1;
        }
    }
}

void at_box_mask(const at_geometry *geo, const int box[4], unsigned char *mask) {
    int xmin = box[0] < 0 ? 0 : box[0], ymin = box[1] < 0 ? 0 : box[1];
    int xmax = box[2] >= geo->in_w ? geo->in_w - 1 : box[2];
    int ymax = box[3] >= geo->in_h ? geo->in_h - 1 : box[3];
    if (xmin > xmax || ymin > ymax) return;
    int x0, x1, y0, y1;
    box_range(geo->out_w, geo->crop_left, geo->scale_x, xmin, xmax, &x0, &x1);
    box_range(geo->out_h, geo->crop_top, geo->scale_y, ymin, ymax, &y0, &y1);
    for (int y = y0; y < y1; y++)
        if (x1 > x0) memset(mask + (size_t)y * geo->out_w + x0, 1, (size_t)(x1 - x0));
}

/* ------------------------------------------------------------- resampling */

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    /* Keys' cubic convolution with a = -0.5, written as Pillow writes it */
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;      /* coefficients per output pixel */
    int *bounds;    /* per output pixel: first input index, number of taps */
    int32_t *k;     /* fixed-point coefficients, PRECISION_BITS fraction bits */
} resample_coeffs;

static void coeffs_free(resample_coeffs *c) {
    free(c->bounds);
    free(c->k);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for outputs [o0, o1)
 * of an in_size -> out_size resize. */
static int coeffs_compute(int in_size, int out_size, int o0, int o1, at_interp interp,
                          resample_coeffs *c) {
    double (*filter)(double) = interp == AT_INTERP_BICUBIC ? bicubic_filter : bilinear_filter;
    double filter_support = interp == AT_INTERP_BICUBIC ? 2.0 : 1.0;
    /* Pillow passes the source box as floats: in1 - in0 is computed in float */
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale * filter_support;
    int ksize = (int)ceil(support) * 2 + 1;
    int n = o1 - o0;
    c->ksize = ksize;
    c->bounds = malloc((size_t)n * 2 * sizeof *c->bounds);
    c->k = malloc((size_t)n * ksize * sizeof *c->k);
    double *w = malloc((size_t)ksize * sizeof *w);
    if (!c->bounds || !c->k || !w) {
        free(w);
        coeffs_free(c);
        c->bounds = NULL;
        c->k = NULL;
        return at_fail(NULL, "out of memory for resampling coefficients");
    }
    for (int xx = o0; xx < o1; xx++) {
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5); /* truncation, as Pillow */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps the writes in bounds */
        for (int x = 0; x < xmax; x++) {
            double v = filter((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        int32_t *k = c->k + (size_t)(xx - o0) * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        c->bounds[(xx - o0) * 2 + 0] = xmin;
        c->bounds[(xx - o0) * 2 + 1] = xmax;
    }
    free(w);
    return AT_OK;
}

/* Pillow's clip8: value = sum >> PRECISION_BITS, clamped to 0..255. */
static inline unsigned char clip8(int32_t s) {
    if (s < 0) return 0;
    s >>= PRECISION_BITS;
    return (unsigned char)(s > 255 ? 255 : s);
}

/* Horizontal pass: rows [y0, y0 + rows) of src (src_w pixels wide) through
 * the coefficients of n output columns into dst (n pixels wide). */
static void resample_horizontal(const unsigned char *src, int src_w, int y0, int rows,
                                const resample_coeffs *c, int n, unsigned char *dst) {
    for (int r = 0; r < rows; r++) {
        const unsigned char *row = src + (size_t)(y0 + r) * src_w * 3;
        unsigned char *out = dst + (size_t)r * n * 3;
        for (int i = 0; i < n; i++) {
            const int32_t *k = c->k + (size_t)i * c->ksize;
            const unsigned char *p = row + (size_t)c->bounds[2 * i] * 3;
            int taps = c->bounds[2 * i + 1];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int j = 0; j < taps; j++, p += 3) {
                s0 += p[0] * k[j];
                s1 += p[1] * k[j];
                s2 += p[2] * k[j];
            }
            out[3 * i + 0] = clip8(s0);
            out[3 * i + 1] = clip8(s1);
            out[3 * i + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: n output rows, each `vals` bytes, from src rows (stride
 * src_stride bytes; coefficient row indices are relative to ybase). The sum
 * is accumulated row by row in acc: integer addition, so the order does not
 * change the result (every partial sum is bounded by 255 * sum|k| + 2^21,
 * and sum|k| < 1.5 * 2^22 for these filters, so none overflows). */
static void resample_vertical(const unsigned char *src, size_t src_stride, int ybase,
                              const resample_coeffs *c, int n, int vals, unsigned char *dst,
                              size_t dst_stride, int32_t *acc) {
    for (int i = 0; i < n; i++) {
        const int32_t *k = c->k + (size_t)i * c->ksize;
        int ymin = c->bounds[2 * i] - ybase, taps = c->bounds[2 * i + 1];
        for (int v = 0; v < vals; v++) acc[v] = 1 << (PRECISION_BITS - 1);
        for (int j = 0; j < taps; j++) {
            const unsigned char *row = src + (size_t)(ymin + j) * src_stride;
            int32_t kj = k[j];
            for (int v = 0; v < vals; v++) acc[v] += row[v] * kj;
        }
        unsigned char *out = dst + (size_t)i * dst_stride;
        for (int v = 0; v < vals; v++) out[v] = clip8(acc[v]);
    }
}

/* Pillow's nearest resize (ImagingScaleAffine): the source coordinate of
 * output x is accumulated, xo += in/out, starting at in/out * 0.5; a source
 * index outside the image leaves the pixel 0. Fills idx[i] for outputs
 * [o0, o1), -1 for such pixels. */
static void nearest_index(int in_size, int out_size, int o0, int o1, int *idx) {
    float in1 = (float)in_size;
    double a = (double)(in1 - 0.0f) / out_size;
    double xo = 0.0 + a * 0.5;
    for (int x = 0; x < o1; x++, xo += a) {
        if (x < o0) continue;
        int xin = xo < 0.0 ? -1 : (int)xo;
        idx[x - o0] = xin >= 0 && xin < in_size ? xin : -1;
    }
}

/* Writes resized pixels [c0, c1) x [r0, r1) of the rw x rh resize of img to
 * dst (row stride dst_stride bytes). */
static int resize_window(const at_image *img, int rw, int rh, at_interp interp, int c0, int c1,
                         int r0, int r1, unsigned char *dst, size_t dst_stride) {
    int w = img->w, h = img->h, nc = c1 - c0, nr = r1 - r0;
    size_t src_stride = (size_t)w * 3;
    if (nc <= 0 || nr <= 0) return AT_OK;
    if (rw == w && rh == h) { /* torchvision returns the image unchanged */
        for (int y = 0; y < nr; y++)
            memcpy(dst + (size_t)y * dst_stride, img->rgb + (size_t)(r0 + y) * src_stride + (size_t)c0 * 3,
                   (size_t)nc * 3);
        return AT_OK;
    }
    if (interp == AT_INTERP_NEAREST) {
        int *xi = malloc(((size_t)nc + nr) * sizeof *xi), *yi = xi ? xi + nc : NULL;
        if (!xi) return at_fail(NULL, "out of memory for resizing");
        nearest_index(w, rw, c0, c1, xi);
        nearest_index(h, rh, r0, r1, yi);
        for (int y = 0; y < nr; y++) {
            unsigned char *out = dst + (size_t)y * dst_stride;
            if (yi[y] < 0) {
                memset(out, 0, (size_t)nc * 3);
                continue;
            }
            const unsigned char *in = img->rgb + (size_t)yi[y] * src_stride;
            for (int x = 0; x < nc; x++) {
                if (xi[x] < 0) {
                    memset(out + 3 * x, 0, 3);
                } else {
                    memcpy(out + 3 * x, in + (size_t)xi[x] * 3, 3);
                }
            }
        }
        free(xi);
        return AT_OK;
    }

    /* Pillow resamples only the axes whose size changes, horizontal first. */
    int need_h = rw != w, need_v = rh != h, rc = AT_OK;
    resample_coeffs ch = {0}, cv = {0};
    unsigned char *tmp = NULL;
    int32_t *acc = NULL;
    if (need_h && (rc = coeffs_compute(w, rw, c0, c1, interp, &ch)) != AT_OK) goto done;
    if (need_v && (rc = coeffs_compute(h, rh, r0, r1, interp, &cv)) != AT_OK) goto done;

    /* source rows the vertical pass reads */
    int yfirst = r0, ylast = r1;
    if (need_v) {
        yfirst = h;
        ylast = 0;
        for (int i = 0; i < nr; i++) {
            int lo = cv.bounds[2 * i], hi = lo + cv.bounds[2 * i + 1];
            if (lo < yfirst) yfirst = lo;
            if (hi > ylast) ylast = hi;
        }
        if (ylast <= yfirst) yfirst = ylast = 0;
    }

    const unsigned char *vsrc = img->rgb + (size_t)c0 * 3; /* columns already right */
    size_t vstride = src_stride;
    int vbase = 0;
    if (need_h) {
        tmp = malloc((size_t)(ylast - yfirst) * nc * 3 + 1);
        if (!tmp) {
            rc = at_fail(NULL, "out of memory for resizing");
            goto done;
        }
        resample_horizontal(img->rgb, w, yfirst, ylast - yfirst, &ch, nc, tmp);
        vsrc = tmp;
        vstride = (size_t)nc * 3;
        vbase = yfirst;
    }
    if (need_v) {
        acc = malloc((size_t)nc * 3 * sizeof *acc);
        if (!acc) {
            rc = at_fail(NULL, "out of memory for resizing");
            goto done;
        }
        resample_vertical(vsrc, vstride, vbase, &cv, nr, nc * 3, dst, dst_stride, acc);
    } else {
        for (int y = 0; y < nr; y++)
            memcpy(dst + (size_t)y * dst_stride, vsrc + (size_t)(r0 + y - vbase) * vstride,
                   (size_t)nc * 3);
    }
done:
    coeffs_free(&ch);
    coeffs_free(&cv);
    free(tmp);
    free(acc);
    return rc;
}

/* ----------------------------------------------------------------- public */

int at_preprocess_rgb8(const at_image *img, const at_preprocess *pp, at_image *out,
                       at_geometry *geo) {
    out->w = out->h = 0;
    out->rgb = NULL;
    out->notes = 0;
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return at_fail(NULL, "cannot preprocess an empty image");
    if (at_preprocess_check(pp) != AT_OK) return AT_ERR;
    at_geometry g;
    at_geometry_of(img->w, img->h, pp, &g);
    /* Only the crop is resampled, but nearest walks the whole axis up to it */
    if (g.resized_w > MAX_RESIZED_SIDE || g.resized_h > MAX_RESIZED_SIDE)
        return at_fail(NULL, "resizing %dx%d to shorter side %d gives %dx%d: too large", img->w,
                       img->h, pp->resize, g.resized_w, g.resized_h);
    if ((double)g.out_w * g.out_h > (double)AT_IMAGE_MAX_PIXELS)
        return at_fail(NULL, "preprocessed image too large (%dx%d)", g.out_w, g.out_h);
    unsigned char *rgb = calloc((size_t)g.out_w * g.out_h * 3, 1); /* 0 = CenterCrop's padding */
    if (!rgb) return at_fail(NULL, "out of memory for a %dx%d image", g.out_w, g.out_h);

    int c0 = g.crop_left > 0 ? g.crop_left : 0;
    int c1 = g.crop_left + g.out_w < g.resized_w ? g.crop_left + g.out_w : g.resized_w;
    int r0 = g.crop_top > 0 ? g.crop_top : 0;
    int r1 = g.crop_top + g.out_h < g.resized_h ? g.crop_top + g.out_h : g.resized_h;
    size_t stride = (size_t)g.out_w * 3;
    unsigned char *dst = rgb + (size_t)(r0 - g.crop_top) * stride + (size_t)(c0 - g.crop_left) * 3;
    if (resize_window(img, g.resized_w, g.resized_h, pp->interp, c0, c1, r0, r1, dst, stride) !=
        AT_OK) {
        free(rgb);
        return AT_ERR;
    }
    out->w = g.out_w;
    out->h = g.out_h;
    out->rgb = rgb;
    out->notes = img->notes;
    if (geo) *geo = g;
    return AT_OK;
}

void at_normalize_rgb8(const unsigned char *rgb, int w, int h, const at_preprocess *pp,
                       float *out_chw) {
    /* torch: x.float().div(255), then .sub_(mean).div_(std), each op rounded
     * to float32; a table per channel gives identical values */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            x = x - pp->mean[c];
            lut[c][v] = x / pp->std[c];
        }
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        out_chw[i] = lut[0][rgb[3 * i + 0]];
        out_chw[plane + i] = lut[1][rgb[3 * i + 1]];
        out_chw[2 * plane + i] = lut[2][rgb[3 * i + 2]];
    }
}

int at_preprocess_image(const at_image *img, const at_preprocess *pp, float *out_chw,
                        at_geometry *geo) {
    at_image pre;
    if (at_preprocess_rgb8(img, pp, &pre, geo) != AT_OK) return AT_ERR;
    at_normalize_rgb8(pre.rgb, pre.w, pre.h, pp, out_chw);
    at_image_free(&pre);
    return AT_OK;
}
