/* Heatmap overlays: a map in [0,1] through matplotlib's "jet" colormap, blended
 * over the preprocessed image.
 *
 * Colormap: matplotlib's jet exactly (its segment data, 256-entry lookup table
 * and cm.jet(v, bytes=True) indexing: index = floor(v*256), v = 1 -> 255, each
 * channel truncated from lut*255), checked entry by entry against matplotlib
 * 3.11 in tests/test_output.c. It runs from (0,0,127) through cyan, green-yellow
 * and orange to (127,0,0). Not OpenCV's COLORMAP_JET, which uses slightly
 * different knots (MATLAB's) and is what pytorch-grad-cam shows. NaN counts as
 * 0 (matplotlib would make it transparent); values outside [0,1] are clamped.
 *
 * Blend: out = round(alpha*jet + (1-alpha)*image) per channel. pytorch-grad-cam's
 * show_cam_on_image instead adds 0.5*heatmap + 0.5*image and divides by the
 * maximum, which brightens every overlay differently; a plain blend keeps
 * overlays comparable across images. */
#ifndef ATTRIB_COLORMAP_H
#define ATTRIB_COLORMAP_H

/* The jet colour of v (RGB8). */
void at_jet_rgb(float v, unsigned char rgb[3]);
/* out, rgb: HxWx3 RGB8; map: HxW; alpha in [0,1] is the heatmap's weight. */
void at_overlay_rgb(unsigned char *out, const unsigned char *rgb, const float *map, int w, int h,
                    float alpha);
/* at_overlay_rgb written as a PNG atomically (temporary name + rename,
 * tracked for interruption cleanup). */
int at_overlay_png(const char *path, const unsigned char *rgb, const float *map, int w, int h,
                   float alpha);

#endif
