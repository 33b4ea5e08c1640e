/* The quadrature rules of integrated gradients on [0,1], node for node as
 * captum 0.7.0's approximation_methods.py builds them
 * (docs/methods.md#integrated-gradients). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"

static const char *const rule_names[AT_IG_RULE_COUNT] = {"gauss-legendre", "riemann-left", "riemann-right",
                                                         "riemann-middle", "riemann-trapezoid"};

int at_ig_rule_parse(const char *name, at_ig_rule *out) {
    for (int i = 0; i < AT_IG_RULE_COUNT; i++) {
        char captum[32]; /* captum's spellings: gausslegendre, riemann_left, ... */
        snprintf(captum, sizeof captum, "%s", i == 0 ? "gausslegendre" : rule_names[i]);
        if (i) captum[7] = '_';
        if (!strcmp(name, rule_names[i]) || !strcmp(name, captum)) {
            *out = (at_ig_rule)i;
            return AT_OK;
        }
    }
    return at_fail("integration rule", "'%s' is not gauss-legendre, riemann-left, riemann-right, riemann-middle or "
                   "riemann-trapezoid", name);
}

const char *at_ig_rule_name(at_ig_rule r) { return (unsigned)r < AT_IG_RULE_COUNT ? rule_names[r] : "?"; }

/* torch.linspace(start, end, n) in float32, as its CPU kernel computes it
 * (the first half from start, the second from end); captum takes its
 * Riemann nodes from there. */
static void linspace_f32(float start, float end, int n, double *out) {
    const float step = (end - start) / (float)(n - 1);
    for (int i = 0; i < n; i++) out[i] = i < n / 2 ? start + step * (float)i : end - step * (float)(n - 1 - i);
}

/* Gauss-Legendre nodes on [-1,1] ascending, by Newton's method on P_n from
 * Chebyshev guesses, in double (numpy's leggauss agrees to ~1e-15). */
static void gauss_legendre(int n, double *x, double *w) {
    for (int i = 0; i < (n + 1) / 2; i++) {
        double z = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1;
        for (int it = 0; it < 100; it++) {
            double p0 = 1, p1 = 0;
            for (int k = 1; k <= n; k++) {
                double p2 = p1;
                p1 = p0;
                p0 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p2) / k;
            }
            dp = n * (z * p0 - p1) / (z * z - 1);
            double dz = p0 / dp;
            z -= dz;
            if (fabs(dz) < 1e-16) break;
        }
        x[i] = -z, x[n - 1 - i] = z;
        w[i] = w[n - 1 - i] = 2 / ((1 - z * z) * dp * dp);
    }
}

int at_ig_nodes(at_ig_rule rule, int n, double *alpha, double *w) {
    if (n < 1 || (rule != AT_IG_GAUSS_LEGENDRE && n < 2))
        return at_fail("integration steps", "%d steps: %s needs at least %d", n, at_ig_rule_name(rule),
                       rule == AT_IG_GAUSS_LEGENDRE ? 1 : 2);
    switch (rule) {
    case AT_IG_GAUSS_LEGENDRE:
        gauss_legendre(n, alpha, w);
        for (int i = 0; i < n; i++) alpha[i] = 0.5 * (1 + alpha[i]), w[i] *= 0.5;
        return AT_OK;
    case AT_IG_RIEMANN_LEFT: linspace_f32(0.0f, (float)(1 - 1.0 / n), n, alpha); break;
    case AT_IG_RIEMANN_RIGHT: linspace_f32((float)(1.0 / n), 1.0f, n, alpha); break;
    case AT_IG_RIEMANN_MIDDLE: linspace_f32((float)(1.0 / (2 * n)), (float)(1 - 1.0 / (2 * n)), n, alpha); break;
    case AT_IG_RIEMANN_TRAPEZOID: linspace_f32(0.0f, 1.0f, n, alpha); break;
    default: return at_fail("integration rule", "unknown rule %d", (int)rule);
    }
    /* captum's step sizes: 1/n each, the trapezoid's two ends halved, so its
     * weights sum to (n-1)/n, not 1 (docs/methods.md#integrated-gradients) */
    for (int i = 0; i < n; i++) w[i] = 1.0 / n;
    if (rule == AT_IG_RIEMANN_TRAPEZOID) w[0] /= 2, w[n - 1] /= 2;
    return AT_OK;
}
