/* EigenCAM (docs/methods.md#eigencam; Muhammad and Yeasin, IJCNN 2020): the
 * layer's activations as an (h*w) x K matrix, each channel centred over the
 * pixels, projected on their first right singular vector v. One forward, no
 * backward. v comes from the symmetric eigenproblem of the smaller Gram
 * matrix (K x K, or (h*w) x (h*w) and v = X^T u / sigma), solved in double
 * by cyclic Jacobi rotations. The sign of v is the problem's own ambiguity:
 * by default mu . v > 0 (mu = the channels' mean activations); pgc has no
 * rule, its sign is LAPACK's, ours then makes v's largest component positive. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "methods/explain.h"

#define JACOBI_SWEEPS 100

/* Eigenvalues d[n] and eigenvectors (columns of z, row-major n x n) of the
 * symmetric a (upper triangle used, destroyed): cyclic Jacobi with the
 * threshold strategy of Numerical Recipes' jacobi. AT_ERR when it does not
 * converge (it converges quadratically; 100 sweeps never run out in practice). */
static int jacobi_eigen(double *a, int n, double *d, double *z) {
    double *b = malloc(sizeof(double) * n), *t = calloc(n, sizeof(double));
    if (!b || !t) {
        free(b), free(t);
        return at_fail("eigencam", "out of memory");
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) z[(long)i * n + j] = i == j;
        b[i] = d[i] = a[(long)i * n + i];
    }
    int converged = 0;
    for (int sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
        double sm = 0;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) sm += fabs(a[(long)p * n + q]);
        if (sm == 0) {
            converged = 1;
            break;
        }
        const double tresh = sweep < 3 ? 0.2 * sm / ((double)n * n) : 0;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double *apq = &a[(long)p * n + q];
                const double g = 100 * fabs(*apq);
                if (sweep > 3 && fabs(d[p]) + g == fabs(d[p]) && fabs(d[q]) + g == fabs(d[q])) {
                    *apq = 0;
                    continue;
                }
                if (fabs(*apq) <= tresh) continue;
                double h = d[q] - d[p], tn;
                if (fabs(h) + g == fabs(h)) {
                    tn = *apq / h;
                } else {
                    const double theta = 0.5 * h / *apq;
                    tn = 1 / (fabs(theta) + sqrt(1 + theta * theta));
                    if (theta < 0) tn = -tn;
                }
                const double c = 1 / sqrt(1 + tn * tn), s = tn * c, tau = s / (1 + c);
                h = tn * *apq;
                t[p] -= h, t[q] += h, d[p] -= h, d[q] += h;
                *apq = 0;
#define ROTATE(M, i, j, k, l)                                              \
    do {                                                                   \
        const double g_ = M[(long)(i) * n + (j)], h_ = M[(long)(k) * n + (l)]; \
        M[(long)(i) * n + (j)] = g_ - s * (h_ + g_ * tau);                  \
        M[(long)(k) * n + (l)] = h_ + s * (g_ - h_ * tau);                  \
    } while (0)
                for (int j = 0; j < p; j++) ROTATE(a, j, p, j, q);
                for (int j = p + 1; j < q; j++) ROTATE(a, p, j, j, q);
                for (int j = q + 1; j < n; j++) ROTATE(a, p, j, q, j);
                for (int j = 0; j < n; j++) ROTATE(z, j, p, j, q);
#undef ROTATE
            }
        for (int p = 0; p < n; p++) b[p] += t[p], d[p] = b[p], t[p] = 0;
    }
    free(b), free(t);
    return converged ? AT_OK : at_fail("eigencam", "the eigen-solver did not converge in %d sweeps", JACOBI_SWEEPS);
}

/* proj[hw] = X_c v for one image's activations A [K][hw]. */
static int eigen_projection(const float *A, int K, long hw, at_variant variant, float *proj) {
    const int n = hw < K ? (int)hw : K; /* the smaller Gram matrix */
    double *mu = malloc(sizeof(double) * K), *g = malloc(sizeof(double) * n * n), *d = malloc(sizeof(double) * n);
    double *z = malloc(sizeof(double) * n * n), *v = malloc(sizeof(double) * K), *xc = malloc(sizeof(double) * K * hw);
    int rc = AT_OK;
    if (!mu || !g || !d || !z || !v || !xc) {
        rc = at_fail("eigencam", "out of memory");
        goto done;
    }
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (long i = 0; i < hw; i++) s += A[k * hw + i];
        mu[k] = s / hw;
        for (long i = 0; i < hw; i++) xc[k * hw + i] = A[k * hw + i] - mu[k];
    }
    /* G = X_c^T X_c (K x K) when K <= hw, else X_c X_c^T; xc is K x hw (channel rows) */
    for (int p = 0; p < n; p++)
        for (int q = p; q < n; q++) {
            double s = 0;
            if (n == K)
                for (long i = 0; i < hw; i++) s += xc[p * hw + i] * xc[q * hw + i];
            else
                for (int k = 0; k < K; k++) s += xc[k * hw + p] * xc[k * hw + q];
            g[(long)p * n + q] = g[(long)q * n + p] = s;
        }
    if ((rc = jacobi_eigen(g, n, d, z))) goto done;
    int top = 0;
    for (int i = 1; i < n; i++) top = d[i] > d[top] ? i : top;
    double norm = 0;
    for (int k = 0; k < K; k++) {
        if (n == K) {
            v[k] = z[(long)k * n + top];
        } else { /* v = X_c^T u, normalised (the 1 / sigma) */
            double s = 0;
            for (long i = 0; i < hw; i++) s += xc[k * hw + i] * z[i * n + top];
            v[k] = s;
        }
        norm += v[k] * v[k];
    }
    norm = sqrt(norm);
    double dot = 0;
    int big = 0;
    for (int k = 0; k < K; k++) {
        v[k] = norm > 0 ? v[k] / norm : 0;
        dot += mu[k] * v[k];
        big = fabs(v[k]) > fabs(v[big]) ? k : big;
    }
    const int flip = variant == AT_VARIANT_PGC ? v[big] < 0 : dot < 0;
    for (long i = 0; i < hw; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += xc[k * hw + i] * v[k];
        proj[i] = (float)(flip ? -s : s);
    }
done:
    free(mu), free(g), free(d), free(z), free(v), free(xc);
    return rc;
}

int at_eigencam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r) {
    const at_model *m = be->model;
    const at_layer *L = &m->layers[opt->layer];
    const int K = L->out_c;
    const long hw = (long)L->out_h * L->out_w, size = (long)K * hw, in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 0);
    if (batch > n) batch = n;
    float *acts = malloc(sizeof(float) * batch * size), *logits = malloc(sizeof(float) * batch * m->n_classes);
    float *cam = malloc(sizeof(float) * hw);
    int rc = AT_OK;
    if (!acts || !logits || !cam) {
        rc = at_fail("eigencam", "out of memory");
        goto done;
    }
    for (int first = 0; first < n && rc == AT_OK; first += batch) {
        const int nb = n - first < batch ? n - first : batch;
        at_forward_args fa = {.n = nb, .input = inputs + in_size * first, .logits = logits,
                              .n_capture = 1, .capture_layer = &opt->layer, .capture_out = &acts};
        if ((rc = at_explain_forward_batch(be, opt, &fa, first, r))) break;
        for (int b = 0; b < nb && rc == AT_OK; b++) {
            if ((rc = eigen_projection(acts + b * size, K, hw, opt->variant, cam))) break;
            at_finish_map(m, cam, L->out_h, L->out_w, &r[first + b]);
        }
    }
done:
    free(acts), free(logits), free(cam);
    return rc;
}
