/* Metric arithmetic (docs/methods.md#metrics-common-rules); formulas and their sources in metrics.h. */
#include "metrics/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/splitmix.h"

/* ---------------------------------------------------------- localisation */

double at_energy_pointing(const float *map, const unsigned char *mask, long n) {
    double inside = 0.0, total = 0.0;
    for (long i = 0; i < n; i++) {
        total += map[i];
        if (mask[i]) inside += map[i];
    }
    return total == 0.0 ? 0.0 : inside / total;
}

static int pointing_hit(const float *map, int w, int h, const unsigned char *mask, double tol_px, int strict) {
    long best = -1, n = (long)w * h;
    for (long i = 0; i < n; i++)
        if (!isnan(map[i]) && (best < 0 || map[i] > map[best])) best = i;
    if (best < 0) return 0;
    int mx = (int)(best % w), my = (int)(best / w);
    if (!(tol_px > 0.0)) return mask[best] != 0;
    double tol2 = tol_px * tol_px;
    /* only pixels within tol of the maximum can qualify */
    int r = tol_px >= (double)(w + h) ? w + h : (int)floor(tol_px);
    int y0 = my - r < 0 ? 0 : my - r, y1 = my + r >= h ? h - 1 : my + r;
    int x0 = mx - r < 0 ? 0 : mx - r, x1 = mx + r >= w ? w - 1 : mx + r;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double dx = x - mx, dy = y - my;
            double d2 = dx * dx + dy * dy;
            if (mask[(long)y * w + x] && (strict ? d2 < tol2 : d2 <= tol2)) return 1;
        }
    return 0;
}

int at_pointing_hit(const float *map, int w, int h, const unsigned char *mask, double tol_px) {
    return pointing_hit(map, w, h, mask, tol_px, 0);
}

int at_pointing_hit_strict(const float *map, int w, int h, const unsigned char *mask, double tol_px) {
    return pointing_hit(map, w, h, mask, tol_px, 1);
}

long at_largest_region_box(const float *map, int w, int h, double thr_frac, int box[4]) {
    long n = (long)w * h;
    box[0] = box[1] = box[2] = box[3] = -1;
    float mx = 0.0f;
    for (long i = 0; i < n; i++)
        if (map[i] > mx) mx = map[i];
    if (!(mx > 0.0f)) return 0;
    float thr = (float)(thr_frac * mx); /* in float, as the map: 0.15f of a max 1 is not above 0.15 */
    /* label by flood fill from each unvisited pixel in raster order; an
     * explicit stack, as a region can hold every pixel */
    unsigned char *seen = calloc((size_t)n, 1);
    int *stack = malloc(sizeof(int) * (size_t)n);
    if (!seen || !stack) {
        free(seen), free(stack);
        return 0;
    }
    long best = 0;
    for (long s = 0; s < n; s++) {
        if (seen[s] || !(map[s] > thr)) continue;
        long count = 0, top = 0;
        int b[4] = {w, h, -1, -1};
        stack[top++] = (int)s;
        seen[s] = 1;
        while (top) {
            int p = stack[--top], px = p % w, py = p / w;
            count++;
            if (px < b[0]) b[0] = px;
            if (py < b[1]) b[1] = py;
            if (px > b[2]) b[2] = px;
            if (py > b[3]) b[3] = py;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int qx = px + dx, qy = py + dy;
                    if (qx < 0 || qy < 0 || qx >= w || qy >= h) continue;
                    long q = (long)qy * w + qx;
                    if (!seen[q] && map[q] > thr) seen[q] = 1, stack[top++] = (int)q;
                }
        }
        if (count > best) best = count, memcpy(box, b, sizeof b);
    }
    free(seen), free(stack);
    return best;
}

double at_box_iou(const int a[4], const int b[4]) {
    if (a[2] < a[0] || a[3] < a[1] || b[2] < b[0] || b[3] < b[1]) return 0.0;
    double area_a = (double)(a[2] - a[0] + 1) * (a[3] - a[1] + 1), area_b = (double)(b[2] - b[0] + 1) * (b[3] - b[1] + 1);
    int x0 = a[0] > b[0] ? a[0] : b[0], y0 = a[1] > b[1] ? a[1] : b[1];
    int x1 = a[2] < b[2] ? a[2] : b[2], y1 = a[3] < b[3] ? a[3] : b[3];
    double inter = x1 < x0 || y1 < y0 ? 0.0 : (double)(x1 - x0 + 1) * (y1 - y0 + 1);
    return inter / (area_a + area_b - inter);
}

int at_localisation_hit(const float *map, int w, int h, double thr_frac, const int (*boxes)[4], int n_boxes,
                        double iou_min, int box_out[4]) {
    int box[4];
    long size = at_largest_region_box(map, w, h, thr_frac, box);
    if (box_out) memcpy(box_out, box, sizeof box);
    if (!size) return 0;
    for (int k = 0; k < n_boxes; k++)
        if (at_box_iou(box, boxes[k]) > iou_min) return 1;
    return 0;
}

double at_class_mean(const double *v, const int *cls, int n, int n_cls_max, double *per_class, int *n_classes) {
    double *sum = calloc((size_t)(n_cls_max > 0 ? n_cls_max : 1), sizeof(double));
    int *count = calloc((size_t)(n_cls_max > 0 ? n_cls_max : 1), sizeof(int));
    double total = 0.0;
    int classes = 0;
    if (sum && count) {
        for (int i = 0; i < n; i++)
            if (!isnan(v[i]) && cls[i] >= 0 && cls[i] < n_cls_max) sum[cls[i]] += v[i], count[cls[i]]++;
        for (int k = 0; k < n_cls_max; k++) {
            double mean = count[k] ? sum[k] / count[k] : NAN;
            if (per_class) per_class[k] = mean;
            if (count[k]) total += mean, classes++;
        }
    }
    free(sum), free(count);
    if (n_classes) *n_classes = classes;
    return classes ? total / classes : NAN;
}

double at_pointing_tolerance(double px_at_224, int input_size) { return px_at_224 * input_size / 224.0; }

/* ---------------------------------------------------------------- ranking */

/* NaN ranks with -inf so the order stays total. */
static float rank_key(float v) { return isnan(v) ? -INFINITY : v; }

/* i comes before j: larger value first, then lower index. */
static int comes_before(const float *map, int i, int j) {
    float a = rank_key(map[i]), b = rank_key(map[j]);
    return a > b || (a == b && i < j);
}

static void sift_order(const float *map, int *order, long root, long n) {
    /* max-heap by "comes later": the root is the pixel that goes last */
    for (;;) {
        long child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && comes_before(map, order[child], order[child + 1])) child++;
        if (!comes_before(map, order[root], order[child])) return;
        int t = order[root];
        order[root] = order[child];
        order[child] = t;
        root = child;
    }
}

/* Heap sort: O(n log n), no extra memory, and (the order being total) the
 * same result as any correct sort. */
void at_deletion_order(const float *map, long n, int *order) {
    for (long i = 0; i < n; i++) order[i] = (int)i;
    for (long i = n / 2 - 1; i >= 0; i--) sift_order(map, order, i, n);
    for (long end = n - 1; end > 0; end--) {
        int t = order[0];
        order[0] = order[end];
        order[end] = t;
        sift_order(map, order, 0, end);
    }
}

long at_topp_count(long n, double p_percent) {
    if (!(p_percent > 0.0)) return 0;
    if (p_percent >= 100.0) return n;
    long k = (long)floor(p_percent * (double)n / 100.0 + 0.5);
    return k < 0 ? 0 : k > n ? n : k;
}

static void sift_desc(float *v, long root, long n) {
    /* min-heap: sorting with it leaves v in decreasing order */
    for (;;) {
        long child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && v[child + 1] < v[child]) child++;
        if (!(v[child] < v[root])) return;
        float t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

void at_topp_mask(const float *map, long n, double p_percent, float *mask) {
    long k = at_topp_count(n, p_percent);
    if (k == 0 || k == n) {
        for (long i = 0; i < n; i++) mask[i] = k ? 1.0f : 0.0f;
        return;
    }
    /* mask doubles as scratch: sort the keys to find the k-th largest value t */
    for (long i = 0; i < n; i++) mask[i] = rank_key(map[i]);
    for (long i = n / 2 - 1; i >= 0; i--) sift_desc(mask, i, n);
    for (long end = n - 1; end > 0; end--) {
        float t = mask[0];
        mask[0] = mask[end];
        mask[end] = t;
        sift_desc(mask, 0, end);
    }
    float t = mask[k - 1];
    long above = 0;
    for (long i = 0; i < n; i++) above += rank_key(map[i]) > t;
    long ties = k - above; /* pixels equal to t that fit, lowest indices first */
    for (long i = 0; i < n; i++) {
        float v = rank_key(map[i]);
        int keep = v > t || (v == t && ties > 0);
        if (v == t && keep) ties--;
        mask[i] = keep ? 1.0f : 0.0f;
    }
}

int at_zero_lowest_mask(const float *map, long n, double q_percent, float *mask) {
    if (!(q_percent >= 0.0 && q_percent <= 100.0))
        return at_fail("zero-lowest", "%g is not a percentage in [0, 100]", q_percent);
    const long k = at_topp_count(n, q_percent);
    int *order = k > 0 && k < n ? malloc(sizeof(int) * n) : NULL;
    if (k > 0 && k < n && !order) return at_fail("zero-lowest", "out of memory");
    for (long i = 0; i < n; i++) mask[i] = k == n ? 0.0f : map[i];
    if (order) {
        at_deletion_order(map, n, order);
        for (long j = n - k; j < n; j++) mask[order[j]] = 0.0f;
    }
    free(order);
    return AT_OK;
}

/* ------------------------------------------------------- score changes */

double at_average_drop(const double *y, const double *o, int n, int relative, int *skipped) {
    double sum = 0.0;
    int kept = 0, skip = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i]) || !isfinite(o[i]) || (relative && y[i] <= 0.0)) {
            skip++;
            continue;
        }
        double drop = y[i] - o[i] > 0.0 ? y[i] - o[i] : 0.0;
        sum += relative ? drop / y[i] : drop;
        kept++;
    }
    if (skipped) *skipped = skip;
    return kept ? 100.0 * sum / kept : 0.0;
}

double at_increase_confidence(const double *y, const double *o, int n) {
    int count = 0;
    for (int i = 0; i < n; i++) count += y[i] < o[i];
    return n > 0 ? 100.0 * count / n : 0.0;
}

double at_auc_trapezoid(const double *v, int n) {
    if (n <= 0) return 0.0;
    if (n == 1) return v[0];
    double s = 0.0;
    for (int i = 0; i < n; i++) s += v[i];
    return (s - 0.5 * v[0] - 0.5 * v[n - 1]) / (n - 1);
}

/* ------------------------------------------------------------ rank correlation */

static int cmp_by_value(const void *a, const void *b, void *ctx) {
    const float *v = ctx;
    float x = rank_key(v[*(const int *)a]), y = rank_key(v[*(const int *)b]);
    return (x > y) - (x < y);
}

/* Mean ranks (1-based; ties share their mean rank) of v into r. */
static int mean_ranks(const float *v, long n, double *r) {
    int *idx = malloc(sizeof(int) * (size_t)n);
    if (!idx) return AT_ERR;
    for (long i = 0; i < n; i++) idx[i] = (int)i;
    qsort_r(idx, (size_t)n, sizeof *idx, cmp_by_value, (void *)v);
    for (long i = 0; i < n;) {
        long j = i;
        while (j + 1 < n && rank_key(v[idx[j + 1]]) == rank_key(v[idx[i]])) j++;
        double rank = 0.5 * (double)(i + j) + 1.0;
        for (long k = i; k <= j; k++) r[idx[k]] = rank;
        i = j + 1;
    }
    free(idx);
    return AT_OK;
}

double at_spearman(const float *a, const float *b, long n) {
    if (n < 2) return NAN;
    double *ra = malloc(sizeof(double) * (size_t)n), *rb = malloc(sizeof(double) * (size_t)n);
    double result = NAN;
    if (ra && rb && mean_ranks(a, n, ra) == AT_OK && mean_ranks(b, n, rb) == AT_OK) {
        double mean = 0.5 * (double)(n + 1), sab = 0, saa = 0, sbb = 0;
        for (long i = 0; i < n; i++) {
            double da = ra[i] - mean, db = rb[i] - mean;
            sab += da * db, saa += da * da, sbb += db * db;
        }
        if (saa > 0 && sbb > 0) result = sab / sqrt(saa * sbb);
    }
    free(ra), free(rb);
    return result;
}

/* ------------------------------------------------------------ Sobel control */

void at_sobel_map(const float *x, int c, int h, int w, float *map) {
    long hw = (long)h * w;
    for (long i = 0; i < hw; i++) map[i] = 0.0f;
    for (int ch = 0; ch < c; ch++) {
        const float *p = x + (long)ch * hw;
        for (int y = 0; y < h; y++) {
            int ym = y ? y - 1 : 0, yp = y + 1 < h ? y + 1 : h - 1;
            for (int xx = 0; xx < w; xx++) {
                int xm = xx ? xx - 1 : 0, xp = xx + 1 < w ? xx + 1 : w - 1;
#define P(yy, xq) p[(long)(yy) * w + (xq)]
                double gx = (P(ym, xp) + 2.0 * P(y, xp) + P(yp, xp)) - (P(ym, xm) + 2.0 * P(y, xm) + P(yp, xm));
                double gy = (P(yp, xm) + 2.0 * P(yp, xx) + P(yp, xp)) - (P(ym, xm) + 2.0 * P(ym, xx) + P(ym, xp));
#undef P
                map[(long)y * w + xx] += (float)(fabs(gx) + fabs(gy));
            }
        }
    }
    float lo = map[0], hi = map[0];
    for (long i = 1; i < hw; i++) lo = map[i] < lo ? map[i] : lo, hi = map[i] > hi ? map[i] : hi;
    for (long i = 0; i < hw; i++) map[i] = hi > lo ? (map[i] - lo) / (hi - lo) : 0.0f;
}

/* ------------------------------------------------------------------ blur */

/* torch's "reflect" padding index, folded again when the pad exceeds n - 1. */
static int reflect_index(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

int at_gaussian_blur_chw(const float *src, int c, int h, int w, int ksize, double sigma,
                         float *dst) {
    if (ksize < 1 || ksize % 2 == 0)
        return at_fail("gaussian blur", "kernel size %d must be odd and positive", ksize);
    if (!(sigma > 0.0) || !isfinite(sigma))
        return at_fail("gaussian blur", "sigma %g must be positive", sigma);
    if (c <= 0 || h <= 0 || w <= 0) return AT_OK;
    int half = ksize / 2;
    double *k = malloc(sizeof *k * (size_t)ksize);
    double *tmp = malloc(sizeof *tmp * (size_t)h * (size_t)w);
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return at_fail("gaussian blur", "out of memory");
    }
    /* torchvision _get_gaussian_kernel1d: linspace(-(k-1)/2, (k-1)/2), pdf / sum */
    double ksum = 0.0;
    for (int i = 0; i < ksize; i++) {
        double x = (i - half) / sigma;
        k[i] = exp(-0.5 * x * x);
        ksum += k[i];
    }
    for (int i = 0; i < ksize; i++) k[i] /= ksum;
    for (int ch = 0; ch < c; ch++) {
        const float *s = src + (size_t)ch * h * w;
        float *d = dst + (size_t)ch * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0.0;
                for (int t = 0; t < ksize; t++) acc += k[t] * s[(size_t)y * w + reflect_index(x + t - half, w)];
                tmp[(size_t)y * w + x] = acc;
            }
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double acc = 0.0;
                for (int t = 0; t < ksize; t++) acc += k[t] * tmp[(size_t)reflect_index(y + t - half, h) * w + x];
                d[(size_t)y * w + x] = (float)acc;
            }
    }
    free(k);
    free(tmp);
    return AT_OK;
}

/* ------------------------------------------------------------- bootstrap */

/* Uniform index in [0, n): reject z below 2^64 mod n, then z mod n. */
static int uniform_index(uint64_t *state, int n) {
    uint64_t un = (uint64_t)n, threshold = (0 - un) % un;
    for (;;) {
        uint64_t z = at_splitmix64(state);
        if (z >= threshold) return (int)(z % un);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile_sorted(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    double f = pos - i;
    return v[i] + (v[i + 1] - v[i]) * f;
}

int at_bootstrap_ci(const double *a, const double *b, int n, int reps, uint64_t seed,
                    double level, double *lo, double *hi) {
    if (n < 1) return at_fail("bootstrap", "no values");
    if (reps < 1) return at_fail("bootstrap", "%d resamples", reps);
    if (!(level > 0.0 && level < 1.0)) return at_fail("bootstrap", "level %g is not in (0,1)", level);
    double *d = malloc(sizeof *d * (size_t)n), *means = malloc(sizeof *means * (size_t)reps);
    if (!d || !means) {
        free(d);
        free(means);
        return at_fail("bootstrap", "out of memory");
    }
    for (int i = 0; i < n; i++) d[i] = b ? a[i] - b[i] : a[i];
    uint64_t state = seed;
    for (int r = 0; r < reps; r++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += d[uniform_index(&state, n)] - d[0];
        means[r] = d[0] + s / n;
    }
    qsort(means, (size_t)reps, sizeof *means, cmp_double);
    *lo = quantile_sorted(means, reps, (1.0 - level) / 2.0);
    *hi = quantile_sorted(means, reps, (1.0 + level) / 2.0);
    free(d);
    free(means);
    return AT_OK;
}

int at_bootstrap_class_mean_ci(const double *v, const int *cls, int n, int n_cls_max, int reps, uint64_t seed,
                               double level, double *lo, double *hi) {
    if (n < 1) return at_fail("bootstrap", "no values");
    if (reps < 1) return at_fail("bootstrap", "%d resamples", reps);
    if (!(level > 0.0 && level < 1.0)) return at_fail("bootstrap", "level %g is not in (0,1)", level);
    double *rv = malloc(sizeof *rv * (size_t)n), *means = malloc(sizeof *means * (size_t)reps);
    int *rc = malloc(sizeof *rc * (size_t)n);
    if (!rv || !rc || !means) {
        free(rv), free(rc), free(means);
        return at_fail("bootstrap", "out of memory");
    }
    uint64_t state = seed;
    int k = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++) {
            int j = uniform_index(&state, n);
            rv[i] = v[j], rc[i] = cls[j];
        }
        double m = at_class_mean(rv, rc, n, n_cls_max, NULL, NULL);
        if (!isnan(m)) means[k++] = m;
    }
    if (k) {
        qsort(means, (size_t)k, sizeof *means, cmp_double);
        *lo = quantile_sorted(means, k, (1.0 - level) / 2.0);
        *hi = quantile_sorted(means, k, (1.0 + level) / 2.0);
    } else {
        *lo = *hi = NAN;
    }
    free(rv), free(rc), free(means);
    return AT_OK;
}
