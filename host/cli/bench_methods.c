/* ./attrib bench --method M: seconds per image of a whole attribution method
 * (Score-CAM, Grad-CAM(++), CDRP, Score-CDRP, RISE, occlusion, meaningful perturbation) on random inputs, with the
 * forward passes it spent, for the side-by-side peer scripts in tools/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_methods.h"
#include "core/clock.h"
#include "core/error.h"
#include "methods/cdrp.h"
#include "methods/explain.h"
#include "model/random_model.h"

int bench_method(at_backend *be, const char *net, const char *method, int images, int iterations,
                 const at_precision *cic_precision, const at_perturb_options *perturb, int json) {
    const at_model *m = be->model;
    long in_size = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *x = malloc(sizeof(float) * in_size * images), *maps = malloc(sizeof(float) * hw * images);
    float *gates = malloc(sizeof(float) * m->n_gates * images);
    at_explain_result *er = calloc(images, sizeof *er);
    at_cdrp_result *cr = calloc(images, sizeof *cr);
    int rc = AT_OK;
    if (!x || !maps || !gates || !er || !cr) {
        rc = at_fail("bench", "out of memory");
        goto done;
    }
    at_prng_fill("input", 7, x, in_size * images, 2.0f, 0.0f);
    long forwards = 0, backwards = 0;
    double t0 = at_now_s();
    if (!strcmp(method, "cdrp") || !strcmp(method, "score-cdrp")) {
        at_cdrp_options o;
        at_cdrp_preset("zhu2024", !strcmp(method, "score-cdrp"), &o);
        if (iterations >= 0) o.iterations = iterations;
        if (cic_precision) o.cic_precision_set = 1, o.cic_precision = *cic_precision;
        for (int b = 0; b < images; b++) cr[b].gates = gates + (long)m->n_gates * b;
        rc = at_cdrp(be, &o, x, images, cr);
        for (int b = 0; b < images; b++) forwards += cr[b].forwards;
    } else {
        at_explain_options o = {.layer = m->cam_layer, .perturb = perturb};
        if ((rc = at_method_parse(method, &o.method))) goto done;
        for (int b = 0; b < images; b++) er[b].map = maps + hw * b;
        rc = at_explain(be, &o, x, images, er);
        for (int b = 0; b < images; b++) forwards += er[b].forwards, backwards += er[b].backwards;
    }
    double s = (at_now_s() - t0) / images;
    if (rc) goto done;
    double fw = (double)forwards / images, bw = (double)backwards / images;
    at_precision cic = cic_precision ? *cic_precision : be->precision;
    if (json)
        printf("{\"net\":\"%s\",\"backend\":\"%s\",\"precision\":\"%s\",\"cic_precision\":\"%s\","
               "\"method\":\"%s\",\"images\":%d,\"s_per_image\":%.5f,\"forwards_per_image\":%.1f,"
               "\"backwards_per_image\":%.1f,\"gmac_per_image\":%.4f}\n",
               net, be->name, at_precision_name(be->precision), at_precision_name(cic), method, images, s, fw, bw,
               m->macs_per_image / 1e9);
    else
        printf("%-8s %-5s %-5s %-11s %4d images  %9.4f s/image  %7.1f forwards + %.1f backwards/image  %8.3f ms/pass%s%s\n",
               net, be->name, at_precision_name(be->precision), method, images, s, fw, bw,
               1e3 * s / (fw + bw > 0 ? fw + bw : 1),
               cic_precision ? "  CIC pass " : "", cic_precision ? at_precision_name(cic) : "");
    fflush(stdout);
done:
    free(x), free(maps), free(gates), free(er), free(cr);
    return rc;
}
