/* Metric arithmetic (docs/methods.md#metrics-common-rules): pure functions over maps, masks and score
 * vectors. The `eval` command runs the masked inputs through the model and
 * feeds the scores here. Maps are H x W float32, row-major, normally the
 * final [0,1] heatmap; masks are H x W bytes, non-zero = inside. */
#ifndef ATTRIB_METRICS_H
#define ATTRIB_METRICS_H

#include <stdint.h>

/* Energy-based pointing game (docs/methods.md#energy-based-pointing-game, Eq. 7; Score-CAM, Wang et al. 2020,
 * §5.3): Σ_{mask} L / Σ_all L over the map L (the caller ReLUs, so L >= 0).
 * Returns 0 when Σ_all L == 0 (the caller counts the map as all-zero). */
double at_energy_pointing(const float *map, const unsigned char *mask, long n);

/* Pointing game (Zhang et al. 2016, "Top-down neural attention by
 * excitation backprop", §4.1): the map's maximum (the first in raster order
 * on ties; NaN never wins) is a hit when some mask pixel lies within
 * Euclidean distance tol_px of it, distances between pixel centres; the
 * boundary counts (distance == tol_px is a hit). tol 0: the maximum itself
 * must be inside. Returns 1 (hit) or 0 (miss; also for an empty mask). */
int at_pointing_hit(const float *map, int w, int h, const unsigned char *mask, double tol_px);

/* The pointing game's tolerance for an input input_size pixels wide: px_at_224
 * pixels at 224 (Zhang et al.: 15), scaled: px_at_224 * input_size / 224. */
double at_pointing_tolerance(double px_at_224, int input_size);

/* Number of pixels top-p keeps: round half up of p/100 * n, computed as
 * floor(p * n / 100 + 0.5) in double, p clamped to [0,100] (NaN: 0). */
long at_topp_count(long n, double p_percent);

/* Top-p mask (docs/methods.md#average-drop-and-increase-in-confidence, `top-p` mode, Fig. 7): mask[i] = 1 for the
 * at_topp_count(n, p) pixels that come first in at_deletion_order, 0
 * elsewhere. Needs no memory beyond mask; map and mask must not alias. */
void at_topp_mask(const float *map, long n, double p_percent, float *mask);

/* L-CAM's soft masking (docs/methods.md#average-drop-and-increase-in-confidence, `--zero-lowest`): the
 * at_topp_count(n, q) pixels that come last in at_deletion_order (the lowest
 * values, ties: the higher index goes first) get 0, every other pixel keeps its
 * map value as its weight. q counts what is removed (top-p's p what is kept).
 * AT_ERR naming "zero-lowest" when q is not in [0, 100], or out of memory. */
int at_zero_lowest_mask(const float *map, long n, double q_percent, float *mask);

/* Pixel indices by decreasing map value, ties by increasing index (a total
 * order, so the result is unique); NaN ranks with -inf, last. RISE
 * deletion/insertion (Petsiuk et al. 2018) removes/inserts in this order. */
void at_deletion_order(const float *map, long n, int *order);

/* Average Drop (docs/methods.md#average-drop-and-increase-in-confidence, Eq. 5; Grad-CAM++, Chattopadhay et al. 2018, §4.2):
 * relative: 100/N Σ max(0, Y-O)/Y; absolute (pytorch-grad-cam's variant):
 * 100/N Σ max(0, Y-O). Pairs are skipped and counted in *skipped (may be
 * NULL) when Y or O is not finite, or, in relative mode, when Y <= 0 (logit
 * scores: the ratio is meaningless there; docs/methods.md#the-papers-numbers). N = the kept count;
 * returns 0 when N = 0. */
double at_average_drop(const double *y, const double *o, int n, int relative, int *skipped);

/* Increase in Confidence (docs/methods.md#average-drop-and-increase-in-confidence, Eq. 6; Grad-CAM++): 100/N Σ [Y < O]
 * over all n pairs; 0 when n = 0. */
double at_increase_confidence(const double *y, const double *o, int n);

/* Trapezoid rule with x evenly spaced over [0,1] (RISE's auc():
 * (Σ v - v0/2 - v_last/2) / (n - 1)). n = 1: v[0]; n <= 0: 0. */
double at_auc_trapezoid(const double *v, int n_steps_plus_one);

/* torchvision.transforms.functional.gaussian_blur on a float CHW tensor:
 * 1-D kernel exp(-x²/(2σ²)) at x = -(k-1)/2 .. (k-1)/2, normalised to sum
 * 1, applied separably (torchvision uses the outer product: the same up to
 * float rounding), reflect padding (edge not repeated). Where k/2 >= H or W
 * torch refuses; here the reflection folds again. ksize must be odd and
 * positive, sigma > 0; dst may equal src. The RISE insertion baseline of docs/methods.md#deletion-and-insertion:
 * ksize 11, sigma 5 (RISE's own code uses a zero-padded scipy kernel
 * instead; we follow torchvision). Returns AT_ERR on bad arguments or memory. */
int at_gaussian_blur_chw(const float *src, int c, int h, int w, int ksize, double sigma,
                         float *dst);

/* Percentile bootstrap confidence interval (Efron & Tibshirani 1993, §13.3)
 * of mean(a) (b NULL) or of the paired mean(a - b): reps resamples of n
 * indices drawn with replacement from SplitMix64(seed) (index = z mod n
 * with rejection of the biased top range, i.e. unbiased), each resample's
 * mean computed as d0 + Σ(d_i - d0)/n (so a constant vector gives exactly
 * [c, c]); lo, hi = the (1-level)/2 and (1+level)/2 quantiles of the reps
 * means, linear interpolation between order statistics (numpy.quantile's
 * default). Deterministic. level in (0,1), e.g. 0.95. AT_ERR on n < 1,
 * reps < 1, bad level or memory. */
int at_bootstrap_ci(const double *a, const double *b, int n, int reps, uint64_t seed,
                    double level, double *lo, double *hi);

/* Weakly supervised localisation (docs/methods.md#weakly-supervised-localisation;
 * Grad-CAM, Selvaraju et al. 2017, §4.1, after CAM): the pixels whose map
 * value exceeds thr_frac x the map's maximum (strictly, as CAM's
 * cv2.threshold), and box = xmin, ymin, xmax, ymax (inclusive) of the
 * largest 8-connected region of them; on equal sizes the region reached
 * first in raster order. Returns the region's pixel count; 0 when the map
 * has no positive maximum (all-zero, or NaN only; box set to -1). */
long at_largest_region_box(const float *map, int w, int h, double thr_frac, int box[4]);

/* Intersection over union of two inclusive pixel boxes (xmin, ymin, xmax,
 * ymax); 0 when either is empty (xmax < xmin or ymax < ymin). */
double at_box_iou(const int a[4], const int b[4]);

/* The localisation hit: 1 when the largest region's box of the map
 * (at_largest_region_box at thr_frac) has IoU > iou_min with any of the
 * n_boxes ground-truth boxes, else 0. box_out (may be NULL) gets the box. */
int at_localisation_hit(const float *map, int w, int h, double thr_frac, const int (*boxes)[4], int n_boxes,
                        double iou_min, int box_out[4]);

/* The pointing game as TorchRay's benchmark counts a hit: some mask pixel
 * strictly within tol_px of the map's maximum (distance < tol_px; the
 * maximum as at_pointing_hit). With tol 0 the maximum itself must be
 * inside, as at_pointing_hit (TorchRay's test would never hit). */
int at_pointing_hit_strict(const float *map, int w, int h, const unsigned char *mask, double tol_px);

/* Mean over classes of each class's mean value (TorchRay's per-class
 * pointing accuracy): values v[i] of class cls[i]; NaN values and classes
 * < 0 are skipped; classes without values do not count (TorchRay counts
 * them as 0 over its fixed class list). *n_classes (may be NULL) = classes
 * averaged; per_class (may be NULL, [n_cls_max]) gets each class's mean.
 * NaN when no value counts. */
double at_class_mean(const double *v, const int *cls, int n, int n_cls_max, double *per_class, int *n_classes);

/* Percentile bootstrap CI of at_class_mean: reps resamples of the n
 * (value, class) pairs drawn as at_bootstrap_ci draws them, the class mean
 * of each; resamples whose values all are NaN are left out. AT_ERR as
 * at_bootstrap_ci. */
int at_bootstrap_class_mean_ci(const double *v, const int *cls, int n, int n_cls_max, int reps, uint64_t seed,
                               double level, double *lo, double *hi);

/* Spearman rank correlation of a and b (n values): Pearson's correlation
 * of their ranks, tied values getting their mean rank (scipy.stats.spearmanr,
 * which Quantus calls). NaN when n < 2 or either is constant. */
double at_spearman(const float *a, const float *b, long n);

/* A weight-free control for the randomisation check: the Sobel gradient
 * magnitude of the network input x ([c][h][w], any scaling), summed over
 * channels, |Gx| + |Gy| with replicated borders, min-max to [0,1] (a flat
 * image gives zeros). It ignores the model, so MPRT must not move it. */
void at_sobel_map(const float *x, int c, int h, int w, float *map);

#endif
