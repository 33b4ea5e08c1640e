/* Every op of the executor's op table (host/exec/ops.h) on both backends:
 * the same random inputs through the CPU's ops and the CUDA backend's, each
 * op x shapes x precisions, compared element by element and by normalised
 * mean squared error against a bound per op (ggml test-backend-ops). CUDA
 * runs emulated in CI (tests/cuemu) and on a GPU when there is one; without
 * a device these tests skip. Reduced precisions compare like with like: the
 * CPU rounds the operands as the tensor cores do, so products are exact on
 * both sides and only the FP32 accumulation order differs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "exec/ops.h"
#include "model/random_model.h"
#include "tensor_util.h"
#include "test.h"

/* Per op: |got - ref| <= rtol * (max |ref| + |ref|) and NMSE <= max_nmse. */
typedef struct {
    const char *op;
    double rtol, max_nmse;
} op_bound;
/* Sums of at most ~5000 products in another order: ~1e-7..1e-6 of scale. */
static const op_bound CONV = {"conv2d", 1e-5, 1e-10};
static const op_bound LINEAR = {"linear", 1e-5, 1e-10};
/* Same operations in the same order (or exact ones): bit for bit. */
static const op_bound EXACT = {"exact", 0, 0};
/* Softmax: double sums in the same order; the device's double exp may
 * differ from the C library's by an ulp, invisible after rounding to float
 * but for rare ties. */
static const op_bound SOFTMAX = {"softmax", 1e-6, 1e-12};
/* Gate gradients: double sums in another order, rounded to float. */
static const op_bound GATE_GRAD = {"gate gradient", 1e-6, 1e-12};

typedef struct {
    const at_ops *ops;
    void *ctx;
} side;

static int open_sides(side s[2]) {
    if (at_cpu_ops_open(&s[0].ops, &s[0].ctx)) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        return 0;
    }
    if (at_cuda_ops_open(&s[1].ops, &s[1].ctx)) {
        s[0].ops->destroy(s[0].ctx);
        return -1;
    }
    return 1;
}
static void close_sides(side s[2]) {
    for (int i = 0; i < 2; i++) s[i].ops->destroy(s[i].ctx);
}
#define OPEN_SIDES(s)                                                                                              \
    side s[2];                                                                                                     \
    do {                                                                                                           \
        int r_ = open_sides(s);                                                                                    \
        if (r_ < 0) SKIP(at_last_error());                                                                         \
        if (r_ == 0) return;                                                                                       \
    } while (0)

/* A backend buffer of n floats from host (or uninitialised when host is NULL). */
static float *put(side *s, const float *host, long n) {
    float *d = s->ops->alloc(s->ctx, sizeof(float) * (n > 0 ? n : 1), "test");
    if (d && host && s->ops->upload(s->ctx, d, host, sizeof(float) * n)) return NULL;
    return d;
}
static float *get(side *s, const float *dev, long n) {
    float *h = malloc(sizeof(float) * (n > 0 ? n : 1));
    if (h && (s->ops->download(s->ctx, h, dev, sizeof(float) * n) || s->ops->finish(s->ctx))) {
        free(h);
        return NULL;
    }
    return h;
}
static void compare(const op_bound *b, const char *what, const float *got, const float *ref, long n, int line) {
    if (!got || !ref) test_fail_at(__FILE__, line, "%s: %s", what, at_last_error());
    else test_close_nmse(what, got, ref, n, b->rtol, b->max_nmse, __FILE__, line);
}
#define COMPARE(b, what, got, ref, n) compare(&(b), what, got, ref, n, __LINE__)

TEST(cuda_ops_conv2d_matches_the_cpu_at_every_precision) {
    OPEN_SIDES(s);
    /* N C H W K k stride pad; relu and gates on even cases, gates without relu (a conv before a residual add)
     * on odd ones but the last; ResNet's 7x7/2 stem, strided 1x1 downsample and 3x3/2 convs */
    static const int cases[][8] = {{2, 3, 7, 9, 5, 3, 1, 1},   {3, 17, 13, 6, 70, 3, 1, 1}, {2, 5, 11, 10, 7, 3, 2, 1},
                                   {1, 4, 8, 8, 6, 1, 1, 0},   {2, 3, 9, 9, 4, 5, 1, 2},    {33, 64, 14, 14, 128, 3, 1, 1},
                                   {4, 3, 32, 32, 64, 3, 1, 1}, {2, 3, 23, 21, 8, 7, 2, 3}, {2, 16, 9, 10, 24, 1, 2, 0},
                                   {3, 12, 8, 8, 16, 3, 2, 1},  {1, 8, 7, 7, 12, 1, 1, 0}};
    const unsigned n_cases = sizeof cases / sizeof cases[0];
    for (int prec = 0; prec < 2; prec++)
        for (unsigned t = 0; t < n_cases; t++) {
            const int *c = cases[t];
            const int N = c[0], C = c[1], H = c[2], W = c[3], K = c[4], k = c[5], st = c[6], pad = c[7], relu = t % 2 == 0;
            const int gated = relu || t + 1 < n_cases, residual = t % 3 == 1; /* a residual add before the epilogue */
            const int Ho = (H + 2 * pad - k) / st + 1, Wo = (W + 2 * pad - k) / st + 1;
            const long xn = (long)N * C * H * W, yn = (long)N * K * Ho * Wo;
            float *x = test_random("x", t, xn, 2, 0), *w = test_random("w", t, (long)K * C * k * k, 1.0f / k, 0);
            float *b = test_random("b", t, K, 0.1f, 0), *g = test_random("g", t, (long)N * K, 0.5f, 1), *dy = test_random("dy", t, yn, 1, 0);
            float *r = test_random("r", t, yn, 1, 0);
            float *out[2][3] = {{0}};
            for (int i = 0; i < 2; i++) {
                void *h = NULL;
                if (s[i].ops->set_precision(s[i].ctx, (at_precision)prec) ||
                    s[i].ops->prepare_conv(s[i].ctx, w, b, K, C, k, st, pad, H, W, &h)) {
                    test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                    continue;
                }
                float *dx = put(&s[i], x, xn), *dyv = put(&s[i], NULL, yn), *keep = put(&s[i], NULL, yn);
                float *dg = put(&s[i], g, (long)N * K), *ddy = put(&s[i], dy, yn), *ddx = put(&s[i], NULL, xn);
                float *dr = put(&s[i], r, yn);
                at_conv_call cc = {.x = dx, .y = dyv, .residual = residual ? dr : NULL, .n = N, .relu = relu,
                                   .gates = gated ? dg : NULL, .gate_stride = K, .keep = gated ? keep : NULL};
                if (s[i].ops->conv2d_forward(s[i].ctx, h, &cc) ||
                    s[i].ops->conv2d_backward_data(s[i].ctx, h, ddy, N, ddx)) {
                    test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                    continue;
                }
                out[i][0] = get(&s[i], dyv, yn), out[i][1] = gated ? get(&s[i], keep, yn) : NULL;
                out[i][2] = get(&s[i], ddx, xn);
            }
            char what[160];
            snprintf(what, sizeof what, "%s conv %dx%dx%dx%d -> %d k%d s%d p%d relu %d gated %d residual %d",
                     at_precision_name(prec), N, C, H, W, K, k, st, pad, relu, gated, residual);
            COMPARE(CONV, what, out[1][0], out[0][0], yn);
            if (gated) COMPARE(CONV, "kept output before the gate", out[1][1], out[0][1], yn);
            /* the direct backward kernel (stride 2, pad > k-1) runs FP32 whatever the precision */
            if (prec == 0 || (st == 1 && pad <= k - 1)) COMPARE(CONV, "conv backward data", out[1][2], out[0][2], xn);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 3; j++) free(out[i][j]);
            free(x), free(w), free(b), free(g), free(dy), free(r);
        }
    close_sides(s);
}

TEST(cuda_ops_linear_matches_the_cpu_at_every_precision) {
    OPEN_SIDES(s);
    static const int cases[][3] = {{1, 392, 64}, {33, 7, 12}, {5, 1000, 1}, {2, 3, 1000}}; /* N in out */
    for (int prec = 0; prec < 2; prec++)
        for (unsigned t = 0; t < sizeof cases / sizeof cases[0]; t++) {
            const int N = cases[t][0], in = cases[t][1], on = cases[t][2];
            float *x = test_random("x", t, (long)N * in, 1, 0), *w = test_random("w", t, (long)on * in, 0.1f, 0), *b = test_random("b", t, on, 0.1f, 0);
            float *dy = test_random("dy", t, (long)N * on, 1, 0), *y[2] = {0}, *dx[2] = {0};
            for (int i = 0; i < 2; i++) {
                void *h = NULL;
                float *dxv, *dyv, *yv, *dxo;
                if (s[i].ops->set_precision(s[i].ctx, (at_precision)prec) ||
                    s[i].ops->prepare_linear(s[i].ctx, w, b, on, in, &h) || !(dxv = put(&s[i], x, (long)N * in)) ||
                    !(yv = put(&s[i], NULL, (long)N * on)) || !(dyv = put(&s[i], dy, (long)N * on)) ||
                    !(dxo = put(&s[i], NULL, (long)N * in)) || s[i].ops->linear_forward(s[i].ctx, h, dxv, N, yv) ||
                    s[i].ops->linear_backward_data(s[i].ctx, h, dyv, N, dxo)) {
                    test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                    continue;
                }
                y[i] = get(&s[i], yv, (long)N * on), dx[i] = get(&s[i], dxo, (long)N * in);
            }
            char what[96];
            snprintf(what, sizeof what, "%s linear %d x %d -> %d", at_precision_name(prec), N, in, on);
            COMPARE(LINEAR, what, y[1], y[0], (long)N * on);
            COMPARE(LINEAR, "linear backward", dx[1], dx[0], (long)N * in);
            for (int i = 0; i < 2; i++) free(y[i]), free(dx[i]);
            free(x), free(w), free(b), free(dy);
        }
    close_sides(s);
}

TEST(cuda_ops_relu_rules_pools_and_elementwise_ops_match_the_cpu_bit_for_bit) {
    OPEN_SIDES(s);
    const int N = 3, C = 5, H = 10, W = 9, k = 2, st = 2, OH = 3, OW = 4;
    const long HW = (long)H * W, n = (long)N * C * HW, pn = (long)N * C * (H / 2) * (W / 2), an = (long)N * C * OH * OW;
    float *x = test_random("x", 9, n, 1, 0), *dy = test_random("dy", 9, n, 1, 0), *g = test_random("g", 9, (long)N * C, 0.5f, 1);
    float *dyp = test_random("dyp", 9, pn, 1, 0), *dya = test_random("dya", 9, an, 1, 0), *sc = test_random("sc", 9, (long)N * C, 1, 0);
    for (long i = 0; i < n; i += 7) x[i] = 0.0f; /* ties and zeros */
    for (int rule = 0; rule < 3; rule++)
        for (int gated = 0; gated < 2; gated++) {
            float *dz[2] = {0}, *dg[2] = {0}, *yk[2] = {0};
            for (int i = 0; i < 2; i++) {
                float *a = put(&s[i], x, n), *d = put(&s[i], dy, n), *gv = put(&s[i], g, (long)N * C);
                float *dgv = put(&s[i], NULL, (long)N * C), *keep = put(&s[i], NULL, n);
                if (s[i].ops->gated_relu_forward(s[i].ctx, a, N, C, HW, gated ? gv : NULL, C, keep) ||
                    s[i].ops->relu_backward(s[i].ctx, (at_relu_rule)rule, d, keep, N, C, HW, gated ? gv : NULL, C, d,
                                            dgv, C)) {
                    test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                    continue;
                }
                yk[i] = get(&s[i], a, n), dz[i] = get(&s[i], d, n), dg[i] = get(&s[i], dgv, (long)N * C);
            }
            char what[96];
            snprintf(what, sizeof what, "relu rule %d gated %d", rule, gated);
            COMPARE(EXACT, "gated relu forward", yk[1], yk[0], n);
            COMPARE(EXACT, what, dz[1], dz[0], n);
            COMPARE(GATE_GRAD, "gate gradient", dg[1], dg[0], (long)N * C);
            for (int i = 0; i < 2; i++) free(dz[i]), free(dg[i]), free(yk[i]);
        }
    float *r[2][8] = {{0}};
    for (int i = 0; i < 2; i++) {
        float *xv = put(&s[i], x, n), *p = put(&s[i], NULL, pn), *pb = put(&s[i], NULL, n), *dpv = put(&s[i], dyp, pn);
        float *av = put(&s[i], NULL, an), *ab = put(&s[i], NULL, n), *dav = put(&s[i], dya, an), *scv = put(&s[i], sc, (long)N * C);
        float *xs = put(&s[i], x, n), *sum = put(&s[i], NULL, n), *dyv = put(&s[i], dy, n);
        float *prod = put(&s[i], NULL, n), *quot = put(&s[i], NULL, n); /* x has zeros: the 0 rule of div */
        if (s[i].ops->maxpool2d_forward(s[i].ctx, xv, N, C, H, W, k, st, 0, p) ||
            s[i].ops->maxpool2d_backward(s[i].ctx, xv, dpv, N, C, H, W, k, st, 0, pb) ||
            s[i].ops->adaptive_avgpool_forward(s[i].ctx, xv, N, C, H, W, OH, OW, av) ||
            s[i].ops->adaptive_avgpool_backward(s[i].ctx, dav, N, C, H, W, OH, OW, ab) ||
            s[i].ops->scale_channels(s[i].ctx, xs, N, C, HW, scv) || s[i].ops->add(s[i].ctx, xv, dyv, n, sum) ||
            s[i].ops->mul(s[i].ctx, xv, dyv, n, prod) || s[i].ops->div(s[i].ctx, dyv, xv, n, quot)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
            continue;
        }
        r[i][0] = get(&s[i], p, pn), r[i][1] = get(&s[i], pb, n), r[i][2] = get(&s[i], av, an);
        r[i][3] = get(&s[i], ab, n), r[i][4] = get(&s[i], xs, n), r[i][5] = get(&s[i], sum, n);
        r[i][6] = get(&s[i], prod, n), r[i][7] = get(&s[i], quot, n);
    }
    COMPARE(EXACT, "max-pool forward", r[1][0], r[0][0], pn);
    COMPARE(EXACT, "max-pool backward", r[1][1], r[0][1], n);
    COMPARE(EXACT, "adaptive avgpool forward", r[1][2], r[0][2], an);
    COMPARE(EXACT, "adaptive avgpool backward", r[1][3], r[0][3], n);
    COMPARE(EXACT, "channel scaling", r[1][4], r[0][4], n);
    COMPARE(EXACT, "add", r[1][5], r[0][5], n);
    COMPARE(EXACT, "mul", r[1][6], r[0][6], n);
    COMPARE(EXACT, "div", r[1][7], r[0][7], n);
    for (long i = 0; r[0][7] && i < n; i += 7) CHECKF(r[0][7][i] == 0.0f, "div by 0 gives %g, not 0", r[0][7][i]);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 8; j++) free(r[i][j]);
    free(x), free(dy), free(g), free(dyp), free(dya), free(sc);
    close_sides(s);
}

/* ResNet's ops beyond VGG's: the gate of a conv before a residual add (no
 * ReLU), the stem's padded 3x3/2 max-pool, and global average pooling. */
TEST(cuda_ops_gate_without_relu_padded_maxpool_and_global_pool_match_the_cpu) {
    OPEN_SIDES(s);
    const int N = 2, C = 6, H = 11, W = 12;
    const long HW = (long)H * W, n = (long)N * C * HW;
    float *x = test_random("x", 70, n, 1, 0), *dy = test_random("dy", 70, n, 1, 0), *g = test_random("g", 70, (long)N * C, 0.5f, 1);
    for (long i = 0; i < n; i += 5) x[i] = roundf(x[i] * 2) / 2; /* ties */
    for (int gated = 0; gated < 2; gated++) {
        float *r[2][4] = {{0}};
        for (int i = 0; i < 2; i++) {
            float *y = put(&s[i], x, n), *keep = put(&s[i], NULL, n), *d = put(&s[i], dy, n), *gv = put(&s[i], g, (long)N * C);
            float *dgv = put(&s[i], NULL, (long)N * C);
            if (s[i].ops->gate_forward(s[i].ctx, y, N, C, HW, gated ? gv : NULL, C, keep) ||
                s[i].ops->gate_backward(s[i].ctx, d, keep, N, C, HW, gated ? gv : NULL, C, d, dgv, C)) {
                test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                continue;
            }
            r[i][0] = get(&s[i], y, n), r[i][1] = get(&s[i], keep, n), r[i][2] = get(&s[i], d, n);
            r[i][3] = get(&s[i], dgv, (long)N * C);
        }
        COMPARE(EXACT, "gate forward", r[1][0], r[0][0], n);
        COMPARE(EXACT, "gate forward's kept input", r[1][1], r[0][1], n);
        COMPARE(EXACT, "gate backward", r[1][2], r[0][2], n);
        COMPARE(GATE_GRAD, "gate gradient without relu", r[1][3], r[0][3], (long)N * C);
        for (long i = 0; r[0][2] && i < n; i++)
            if (r[0][2][i] != (gated ? g[i / HW] : 1.0f) * dy[i]) {
                CHECKF(0, "gate backward %ld: %g, not g*dy", i, r[0][2][i]);
                break;
            }
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++) free(r[i][j]);
    }
    /* k s p: the stem's 3x3/2 pad 1, and a 2x2 window with pad 1 */
    static const int pools[][3] = {{3, 2, 1}, {2, 2, 1}, {3, 1, 1}};
    for (unsigned t = 0; t < sizeof pools / sizeof pools[0]; t++) {
        const int k = pools[t][0], st = pools[t][1], p = pools[t][2];
        const int OH = (H + 2 * p - k) / st + 1, OW = (W + 2 * p - k) / st + 1;
        const long pn = (long)N * C * OH * OW;
        float *dyp = test_random("dyp", 71 + t, pn, 1, 0), *r[2][2] = {{0}};
        for (int i = 0; i < 2; i++) {
            float *xv = put(&s[i], x, n), *yv = put(&s[i], NULL, pn), *dv = put(&s[i], dyp, pn), *dxv = put(&s[i], NULL, n);
            if (s[i].ops->maxpool2d_forward(s[i].ctx, xv, N, C, H, W, k, st, p, yv) ||
                s[i].ops->maxpool2d_backward(s[i].ctx, xv, dv, N, C, H, W, k, st, p, dxv)) {
                test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                continue;
            }
            r[i][0] = get(&s[i], yv, pn), r[i][1] = get(&s[i], dxv, n);
        }
        char what[64];
        snprintf(what, sizeof what, "max-pool %dx%d/%d pad %d", k, k, st, p);
        COMPARE(EXACT, what, r[1][0], r[0][0], pn);
        COMPARE(EXACT, "padded max-pool backward", r[1][1], r[0][1], n);
        /* the padded corner window of the 3x3/2 pool sees x[0..1][0..1] only */
        if (t == 0 && r[0][0]) {
            float best = x[0];
            for (int yy = 0; yy < 2; yy++)
                for (int xx = 0; xx < 2; xx++) best = x[yy * W + xx] > best ? x[yy * W + xx] : best;
            CHECKF(r[0][0][0] == best, "padded corner window gives %g, not %g", r[0][0][0], best);
        }
        for (int i = 0; i < 2; i++) free(r[i][0]), free(r[i][1]);
        free(dyp);
    }
    /* global average pool (ResNet's avgpool): adaptive to 1x1 */
    float *dya = test_random("dya", 75, (long)N * C, 1, 0), *r[2][2] = {{0}};
    for (int i = 0; i < 2; i++) {
        float *xv = put(&s[i], x, n), *yv = put(&s[i], NULL, (long)N * C), *dv = put(&s[i], dya, (long)N * C);
        float *dxv = put(&s[i], NULL, n);
        if (s[i].ops->adaptive_avgpool_forward(s[i].ctx, xv, N, C, H, W, 1, 1, yv) ||
            s[i].ops->adaptive_avgpool_backward(s[i].ctx, dv, N, C, H, W, 1, 1, dxv)) {
            test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
            continue;
        }
        r[i][0] = get(&s[i], yv, (long)N * C), r[i][1] = get(&s[i], dxv, n);
    }
    COMPARE(EXACT, "global average pool", r[1][0], r[0][0], (long)N * C);
    COMPARE(EXACT, "global average pool backward", r[1][1], r[0][1], n);
    for (int i = 0; i < 2; i++) free(r[i][0]), free(r[i][1]);
    free(x), free(dy), free(g), free(dya);
    close_sides(s);
}

TEST(cuda_ops_avgpool_and_softmax_match_the_cpu) {
    OPEN_SIDES(s);
    /* N C H W k s p */
    static const int cases[][7] = {{2, 3, 9, 11, 3, 2, 1}, {1, 4, 8, 8, 2, 2, 0}, {3, 2, 7, 5, 3, 1, 1}};
    for (unsigned t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *c = cases[t];
        const int N = c[0], C = c[1], H = c[2], W = c[3], k = c[4], st = c[5], p = c[6];
        const int OH = (H + 2 * p - k) / st + 1, OW = (W + 2 * p - k) / st + 1;
        const long xn = (long)N * C * H * W, yn = (long)N * C * OH * OW, K = (long)C * OH * OW;
        float *x = test_random("x", 60 + t, xn, 2, 0), *dy = test_random("dy", 60 + t, yn, 1, 0), *r[2][4] = {{0}};
        for (int i = 0; i < 2; i++) {
            float *xv = put(&s[i], x, xn), *yv = put(&s[i], NULL, yn), *dyv = put(&s[i], dy, yn);
            float *dxv = put(&s[i], NULL, xn), *sm = put(&s[i], NULL, yn), *dsm = put(&s[i], NULL, yn);
            if (s[i].ops->avgpool2d_forward(s[i].ctx, xv, N, C, H, W, k, st, p, yv) ||
                s[i].ops->avgpool2d_backward(s[i].ctx, dyv, N, C, H, W, k, st, p, dxv) ||
                s[i].ops->softmax_forward(s[i].ctx, yv, N, K, sm) ||
                s[i].ops->softmax_backward(s[i].ctx, sm, dyv, N, K, dsm)) {
                test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                continue;
            }
            r[i][0] = get(&s[i], yv, yn), r[i][1] = get(&s[i], dxv, xn), r[i][2] = get(&s[i], sm, yn);
            r[i][3] = get(&s[i], dsm, yn);
        }
        COMPARE(EXACT, "avgpool forward", r[1][0], r[0][0], yn);
        COMPARE(EXACT, "avgpool backward", r[1][1], r[0][1], xn);
        COMPARE(SOFTMAX, "softmax forward", r[1][2], r[0][2], yn);
        COMPARE(SOFTMAX, "softmax backward", r[1][3], r[0][3], yn);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++) free(r[i][j]);
        free(x), free(dy);
    }
    close_sides(s);
}

TEST(cuda_ops_make_inputs_matches_the_cpu_bit_for_bit) {
    OPEN_SIDES(s);
    const int n = 5, C = 3, n_rows = 2, H = 33, W = 47, index[5] = {1, 0, 1, 1, 0};
    const float ms[3] = {0.485f / 0.229f, 0.456f / 0.224f, 0.406f / 0.225f};
    static const int sizes[][2] = {{5, 7}, {33, 47}, {1, 1}};
    float *rows = test_random("rows", 1, (long)n_rows * C * H * W, 2, 0);
    const int idx_f[5] = {1, 0, 1, 1, 0};
    (void)idx_f;
    for (unsigned z = 0; z < sizeof sizes / sizeof sizes[0]; z++)
        for (int norm = 0; norm < 3; norm++)
            for (int space = 0; space < 2; space++)
                for (int mask_only = 0; mask_only < 2; mask_only++) {
                    const int mh = sizes[z][0], mw = sizes[z][1];
                    float *masks = test_random("masks", z, (long)n * mh * mw, 1, 0);
                    for (int i = 0; i < mh * mw; i++) masks[2 * mh * mw + i] = 0.25f; /* flat */
                    const long on = mask_only ? (long)n * H * W : (long)n * C * H * W;
                    float *out[2] = {0};
                    for (int i = 0; i < 2; i++) {
                        float *rv = put(&s[i], rows, (long)n_rows * C * H * W), *mv = put(&s[i], masks, (long)n * mh * mw);
                        float *lo = put(&s[i], NULL, 2L * n), *ov = put(&s[i], NULL, on);
                        int *iv = s[i].ops->alloc(s[i].ctx, sizeof index, "index");
                        if (!rv || !mv || !lo || !ov || !iv || s[i].ops->upload(s[i].ctx, iv, index, sizeof index)) {
                            test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                            continue;
                        }
                        at_inputs_call a = {.rows = rv, .index = iv, .masks = mv, .mh = mh, .mw = mw, .align_corners = z & 1,
                                            .norm = (at_mask_norm)norm, .space = (at_mask_space)space, .mean_over_std = ms,
                                            .lohi = lo, .n = n, .C = C, .H = H, .W = W, .mask_only = mask_only, .out = ov};
                        if (s[i].ops->make_inputs(s[i].ctx, &a)) {
                            test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                            continue;
                        }
                        out[i] = get(&s[i], ov, on);
                    }
                    char what[128];
                    snprintf(what, sizeof what, "inputs mask %dx%d norm %d space %d mask_only %d", mh, mw, norm, space,
                             mask_only);
                    COMPARE(EXACT, what, out[1], out[0], on);
                    free(out[0]), free(out[1]), free(masks);
                }
    free(rows);
    close_sides(s);
}

/* The LRP rules' element-wise ops (clamp, sign selection, stabilised
 * quotient, alpha a + beta b): the same roundings on both sides. */
TEST(cuda_ops_lrp_elementwise_match_the_cpu) {
    OPEN_SIDES(s);
    static const long sizes[] = {1, 257, 70001};
    for (unsigned t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const long n = sizes[t];
        float *a = test_random("a", 80 + t, n, 2, 0), *b = test_random("b", 80 + t, n, 1e-5f, 0);
        for (long i = 0; i < n; i += 5) b[i] = 0; /* the stabiliser's sign(0) = +1 and exact zeros of the masks */
        float *r[2][6] = {{0}};
        for (int i = 0; i < 2; i++) {
            float *av = put(&s[i], a, n), *bv = put(&s[i], b, n), *o[6];
            for (int k = 0; k < 6; k++) o[k] = put(&s[i], NULL, n);
            if (s[i].ops->clamp_sign(s[i].ctx, av, 1, n, o[0]) || s[i].ops->clamp_sign(s[i].ctx, av, -1, n, o[1]) ||
                s[i].ops->select_sign(s[i].ctx, bv, av, 1, n, o[2]) ||
                s[i].ops->select_sign(s[i].ctx, bv, av, -1, n, o[3]) ||
                s[i].ops->div_stabilized(s[i].ctx, av, bv, 1e-6f, n, o[4]) ||
                s[i].ops->axpby(s[i].ctx, 2.0f, av, -1.0f, bv, n, o[5])) {
                test_fail_at(__FILE__, __LINE__, "%s: %s", s[i].ops->name, at_last_error());
                continue;
            }
            for (int k = 0; k < 6; k++) r[i][k] = get(&s[i], o[k], n);
        }
        COMPARE(EXACT, "clamp +", r[1][0], r[0][0], n);
        COMPARE(EXACT, "clamp -", r[1][1], r[0][1], n);
        COMPARE(EXACT, "select +", r[1][2], r[0][2], n);
        COMPARE(EXACT, "select -", r[1][3], r[0][3], n);
        COMPARE(EXACT, "stabilised divide", r[1][4], r[0][4], n);
        COMPARE(EXACT, "axpby", r[1][5], r[0][5], n);
        for (long i = 0; r[0][4] && i < n; i += 5)
            CHECKF(r[0][4][i] == a[i] / 1e-6f, "a / stab(0) = %g, not a / eps", r[0][4][i]);
        for (long i = 0; r[0][0] && i < n; i++) CHECKF(r[0][0][i] + r[0][1][i] == a[i], "x+ + x- != x at %ld", i);
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 6; k++) free(r[i][k]);
        free(a), free(b);
    }
    close_sides(s);
}
