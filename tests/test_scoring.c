/* The metrics that run the model (metrics/scoring.h) against forwards done
 * here by hand on a tiny random network. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "exec/backend.h"
#include "methods/maps.h"
#include "metrics/metrics.h"
#include "metrics/scoring.h"
#include "model_fixture.h"
#include "tensor_util.h"
#include "test.h"

static double prob_of(at_backend *be, const float *x, int cls) {
    const at_model *m = be->model;
    float logits[64], probs[64];
    at_forward_args fa = {.n = 1, .input = x, .logits = logits};
    if (at_forward(be, &fa)) return NAN;
    at_softmax_rows(logits, 1, m->n_classes, probs);
    return probs[cls];
}

TEST(scoring_drop_terms_and_deletion_follow_their_definitions) {
    at_model *m = fixture_tiny_model();
    at_backend *be = NULL;
    at_backend_options bo = {.name = "cpu"};
    REQUIRE(m && at_backend_create(m, &bo, &be) == AT_OK);
    long hw = (long)m->in_h * m->in_w, in_size = m->in_c * hw;
    float *x = test_random("input", 3, in_size, 2.0f, 0.0f), *map = test_random("map", 4, hw, 0.5f, 0.5f);
    float *zero = calloc(in_size, sizeof(float));
    int cls = 2;
    at_scorer s = {.be = be, .batch = 3};
    double y = prob_of(be, x, cls), got;
    REQUIRE(at_score_rows(&s, x, 1, cls, &got) == AT_OK);
    CHECK(fabs(got - y) < 1e-7);

    /* the map masks the normalised input: O = p(x * map) */
    float *xm = malloc(sizeof(float) * in_size);
    for (int c = 0; c < m->in_c; c++)
        for (long i = 0; i < hw; i++) xm[c * hw + i] = x[c * hw + i] * map[i];
    double o = prob_of(be, xm, cls), terms[4];
    at_drop_options d = {.space_normalized = 1};
    REQUIRE(at_drop_terms(&s, x, map, &d, cls, terms) == AT_OK);
    double ad = 100.0 * (y - o > 0 ? y - o : 0) / y;
    CHECKF(fabs(terms[0] - ad) < 1e-3, "AD %g, by hand %g", terms[0], ad);
    CHECK(terms[1] == (y < o ? 100.0 : 0.0));
    /* top-100 % keeps everything: no drop, no increase */
    double all = 100;
    at_drop_options keep = {.props = &all, .n_props = 1};
    REQUIRE(at_drop_terms(&s, x, map, &keep, cls, terms) == AT_OK);
    CHECK(fabs(terms[0]) < 1e-6 && terms[1] == 0);
    /* a logit score <= 0 makes both terms NaN (skipped), never a number */
    at_scorer lg = {.be = be, .logit = 1};
    double l;
    REQUIRE(at_score_rows(&lg, x, 1, cls, &l) == AT_OK);
    REQUIRE(at_drop_terms(&lg, x, map, &d, cls, terms) == AT_OK);
    CHECK(l > 0 ? !isnan(terms[0]) : isnan(terms[0]) && isnan(terms[1]));

    /* deletion with one step: the image, then every pixel black (0 in [0,1]) */
    unsigned char *rgb = malloc(hw * 3);
    for (long i = 0; i < hw * 3; i++) rgb[i] = (unsigned char)(i * 37 % 256);
    float *unit = malloc(sizeof(float) * in_size), *black = malloc(sizeof(float) * in_size);
    for (int c = 0; c < m->in_c; c++)
        for (long i = 0; i < hw; i++) {
            unit[c * hw + i] = (rgb[i * 3 + c] / 255.0f - m->pre.mean[c]) / m->pre.std[c];
            black[c * hw + i] = (0.0f - m->pre.mean[c]) / m->pre.std[c];
        }
    double curve[2], auc;
    REQUIRE(at_deletion_auc(&s, rgb, map, 1, 0, cls, &auc, curve) == AT_OK);
    CHECK(fabs(curve[0] - prob_of(be, unit, cls)) < 1e-7 && fabs(curve[1] - prob_of(be, black, cls)) < 1e-7);
    CHECK(fabs(auc - 0.5 * (curve[0] + curve[1])) < 1e-12);
    CHECK(at_deletion_auc(&s, rgb, map, 0, 0, cls, &auc, NULL) == AT_ERR && strstr(at_last_error(), "steps"));
    CHECK(at_score_rows(&s, x, 1, m->n_classes, &got) == AT_ERR && strstr(at_last_error(), "class"));

    /* box terms: an empty box is NaN, the energy share otherwise */
    unsigned char *mask = calloc(hw, 1);
    CHECK(isnan(at_box_term(map, m->in_w, m->in_h, mask, 0, 1, 0)));
    mask[0] = 1;
    CHECK(fabs(at_box_term(map, m->in_w, m->in_h, mask, 1, 1, 0) - at_energy_pointing(map, mask, hw)) < 1e-12);
    free(mask), free(rgb), free(unit), free(black), free(xm), free(x), free(map), free(zero);
    at_backend_destroy(be);
    at_model_free(m);
}
