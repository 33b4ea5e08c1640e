/* The torchvision eval transform on a PIL image, reproduced bit for bit:
 *   Resize(resize, interpolation) -> CenterCrop(crop) -> ToTensor -> Normalize
 * (docs/methods.md#models-and-preprocessing). Checked against torchvision 0.14 / Pillow 9.4 by tests/test_image.c.
 *
 * Resize: the shorter side becomes `resize`, the longer int(resize*long/short)
 * (torchvision's _compute_resized_output_size, float division then
 * truncation); an image already of that size is left untouched. Pixels come
 * from PIL's Image.resize: for bilinear and bicubic (a = -0.5) its two-pass
 * separable resampler (horizontal first, uint8 between the passes), the
 * kernel widened by the downscale factor (antialias), coefficients
 * normalised then rounded to 22-bit fixed point; nearest is PIL's affine
 * scaling, source index = floor((x + 0.5) * in/out) accumulated in double.
 * CenterCrop: offset round((size - crop) / 2) with Python's round-half-even;
 * a crop larger than the image pads with 0 (left pad (crop - size) / 2, the
 * odd pixel on the right/bottom). ToTensor/Normalize: ((v / 255.f) - mean) /
 * std in float32, as torch computes it.
 *
 * Only the pixels inside the crop are resampled, which gives the same values
 * as resizing everything and cropping (each output pixel depends on its own
 * coefficients only). */
#ifndef ATTRIB_PREPROCESS_H
#define ATTRIB_PREPROCESS_H

#include "io/image.h"

typedef enum { AT_INTERP_BILINEAR, AT_INTERP_BICUBIC, AT_INTERP_NEAREST } at_interp;

typedef struct {
    int resize;       /* shorter side after resizing; 0 = no resize */
    int crop;         /* centre crop side; 0 = no crop */
    at_interp interp;
    float mean[3], std[3];
} at_preprocess;

/* Where the preprocessed image comes from. Output pixel (x, y) covers
 * resized pixel (x + crop_left, y + crop_top); negative offsets and pixels
 * beyond the resized image are zero padding. */
typedef struct {
    int out_w, out_h;         /* preprocessed size (crop, or resized size when crop = 0) */
    double scale_x, scale_y;  /* resized / original size */
    int crop_left, crop_top;  /* in resized pixels; negative when padded */
    int resized_w, resized_h;
    int in_w, in_h;           /* original size (boxes are clipped to it) */
} at_geometry;

/* "bilinear", "bicubic", "nearest" (any case); AT_ERR on anything else. */
int at_interp_parse(const char *name, at_interp *out);
const char *at_interp_name(at_interp interp);

/* Checks resize/crop ranges (0..65536), finite mean, finite non-zero std. */
int at_preprocess_check(const at_preprocess *pp);

/* Geometry without pixels. pp must pass at_preprocess_check, w, h > 0. */
void at_geometry_of(int w, int h, const at_preprocess *pp, at_geometry *geo);

/* Float32 CHW tensor, 3 * out_h * out_w values (sizes from at_geometry_of). */
int at_preprocess_image(const at_image *img, const at_preprocess *pp, float *out_chw,
                        at_geometry *geo);
/* The resized and cropped uint8 image, before /255 and normalisation (for
 * overlays, and masking in [0,1] space). *out is allocated; free with
 * at_image_free. */
int at_preprocess_rgb8(const at_image *img, const at_preprocess *pp, at_image *out,
                       at_geometry *geo);
/* Normalises a preprocessed RGB8 image (HWC) into a float32 CHW tensor. */
void at_normalize_rgb8(const unsigned char *rgb, int w, int h, const at_preprocess *pp,
                       float *out_chw);

/* Box mapping (docs/methods.md#energy-based-pointing-game). box = xmin, ymin, xmax, ymax: 0-based, inclusive,
 * original-image pixels; it is first clipped to the image. Inclusive pixel
 * box [xmin, xmax] covers [xmin, xmax + 1) in continuous coordinates. Output
 * pixel x has its centre at x + 0.5, i.e. at original coordinate
 * orig_x = (x + crop_left + 0.5) / scale_x; it is inside when
 * xmin <= orig_x < xmax + 1, and likewise in y. Sets mask[y * out_w + x] = 1
 * for inside pixels and leaves the others untouched, so calls OR boxes
 * together; mask holds out_h * out_w bytes. */
void at_box_mask(const at_geometry *geo, const int box[4], unsigned char *mask);

#endif
