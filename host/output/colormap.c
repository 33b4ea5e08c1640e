/* matplotlib "jet" and overlay blending (see colormap.h). */
#include "output/colormap.h"

#include "core/error.h"
#include "output/output.h"

#include <math.h>
#include <stdlib.h>

#define JET_N 256 /* matplotlib's default lookup table size (rcParams image.lut) */

/* matplotlib/_cm.py _jet_data: (x, y0, y1) knots per channel. */
typedef struct {
    double x, y0, y1;
} knot;
static const knot jet_r[] = {{0, 0, 0}, {0.35, 0, 0}, {0.66, 1, 1}, {0.89, 1, 1}, {1, 0.5, 0.5}};
static const knot jet_g[] = {{0, 0, 0},     {0.125, 0, 0}, {0.375, 1, 1},
                             {0.64, 1, 1},  {0.91, 0, 0},  {1, 0, 0}};
static const knot jet_b[] = {{0, 0.5, 0.5}, {0.11, 1, 1}, {0.34, 1, 1}, {0.65, 0, 0}, {1, 0, 0}};

/* Entry i of matplotlib's colors._create_lookup_table(256, data) as a byte,
 * with the same double operations in the same order, so the truncation in
 * (lut*255).astype(uint8) lands where numpy's does. */
static unsigned char jet_channel(const knot *k, int nk, int i) {
    double v;
    if (i == 0) v = k[0].y1;
    else if (i == JET_N - 1) v = k[nk - 1].y0;
    else {
        double xind = (JET_N - 1) * (i * (1.0 / (JET_N - 1))); /* (N-1) * linspace(0,1,N) */
        int j = 0;
        while (k[j].x * (JET_N - 1) < xind) j++; /* np.searchsorted, side="left" */
        double x0 = k[j - 1].x * (JET_N - 1), x1 = k[j].x * (JET_N - 1);
        double dist = (xind - x0) / (x1 - x0);
        double d = dist * (k[j].y0 - k[j - 1].y1); /* two statements: no FMA contraction */
        v = d + k[j - 1].y1;
    }
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (unsigned char)(v * 255.0);
}

static void jet_entry(int i, unsigned char rgb[3]) {
    rgb[0] = jet_channel(jet_r, (int)(sizeof jet_r / sizeof *jet_r), i);
    rgb[1] = jet_channel(jet_g, (int)(sizeof jet_g / sizeof *jet_g), i);
    rgb[2] = jet_channel(jet_b, (int)(sizeof jet_b / sizeof *jet_b), i);
}

static int jet_index(float v) {
    if (!(v > 0)) return 0; /* also NaN */
    if (v >= 1) return JET_N - 1;
    int i = (int)(v * JET_N); /* exact: JET_N is a power of two */
    return i < JET_N ? i : JET_N - 1;
}

void at_jet_rgb(float v, unsigned char rgb[3]) { jet_entry(jet_index(v), rgb); }

void at_overlay_rgb(unsigned char *out, const unsigned char *rgb, const float *map, int w, int h,
                    float alpha) {
    unsigned char lut[JET_N][3];
    for (int i = 0; i < JET_N; i++) jet_entry(i, lut[i]);
    float a = alpha > 0 ? (alpha < 1 ? alpha : 1) : 0;
    size_t n = (size_t)w * (size_t)h;
    for (size_t p = 0; p < n; p++) {
        const unsigned char *c = lut[jet_index(map[p])];
        for (int ch = 0; ch < 3; ch++)
            out[3 * p + ch] = (unsigned char)(a * c[ch] + (1 - a) * rgb[3 * p + ch] + 0.5f);
    }
}

int at_overlay_png(const char *path, const unsigned char *rgb, const float *map, int w, int h,
                   float alpha) {
    if (w <= 0 || h <= 0) return at_fail(path, "cannot write a %dx%d overlay", w, h);
    unsigned char *out = malloc((size_t)w * (size_t)h * 3);
    if (!out) return at_fail(path, "out of memory for a %dx%d overlay", w, h);
    at_overlay_rgb(out, rgb, map, w, h, alpha);
    int rc = at_output_write_png(path, w, h, out);
    free(out);
    return rc;
}
