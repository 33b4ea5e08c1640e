/* Metric arithmetic (docs/methods.md#metrics-common-rules); formulas and their sources in metrics.h. */
#include "metrics/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---------------------------------------------------------- localisation */

double at_energy_pointing(const float *map, const unsigned char *mask, long n) {
    double inside = 0.0, total = 0.0;
    for (long i = 0; i < n; i++) {
        total += map[i];
        if (mask[i]) inside += map[i];
    }
    return total == 0.0 ? 0.0 : inside / total;
}

int at_pointing_hit(const float *map, int w, int h, const unsigned char *mask, double tol_px) {
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
            if (mask[(long)y * w + x] && dx * dx + dy * dy <= tol2) return 1;
        }
    return 0;
}

double at_pointing_tolerance(int input_size) { return 15.0 * input_size / 224.0; }

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

static uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform index in [0, n): reject z below 2^64 mod n, then z mod n. */
static int uniform_index(uint64_t *state, int n) {
    uint64_t un = (uint64_t)n, threshold = (0 - un) % un;
    for (;;) {
        uint64_t z = splitmix64_next(state);
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
