/* explain's options of the input-gradient methods (explain_grad_options.h). */
#include "explain_grad_options.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"

const char *const GRAD_HELP =
    "Input-gradient methods (docs/methods.md#integrated-gradients, #smoothgrad, #explaining-a-unit):\n"
    "  --unit LAYER,c[,x,y]  explain unit (c, y, x) of LAYER's output (or, without x,y, the\n"
    "                      sum of channel c) instead of the class logit: saliency, contrastive,\n"
    "                      guided-backprop, deconvnet, input-x-gradient, integrated-gradients,\n"
    "                      smoothgrad (LAYER as --layer, or avgpool, classifier.N)\n"
    "  --ig-steps N        integrated-gradients nodes (default 50)\n"
    "  --ig-rule R         gauss-legendre (default) | riemann-left | riemann-right |\n"
    "                      riemann-middle | riemann-trapezoid (captum's rules)\n"
    "  --baseline B        black (default: 0 in [0,1] image space) | zero (0 after normalisation)\n"
    "  --smooth N          average the method's attribution over N noisy copies of the image\n"
    "                      (SmoothGrad's noise; any method above and guided-gradcam)\n"
    "  --sg-samples N      smoothgrad's samples (default 25; the same as --smooth N)\n"
    "  --sg-sigma S        noise sd as a share of the image's value range (default 0.15)\n"
    "  --sg-square         average the squared attributions (SmoothGrad-squared)\n"
    "  --sg-seed N         noise stream (default 0)\n";

static int set_ig_rule(void *args, const char *opt, const char *v) {
    return at_ig_rule_parse(v, &((grad_args *)args)->ig_rule);
}
static int set_smooth(void *args, const char *opt, const char *v) { /* --smooth N and --sg-samples N */
    grad_args *g = args;
    long n;
    if (cli_parse_int(opt, v, 1, 100000, &n)) return AT_ERR;
    if (g->smooth && g->smooth != n) return at_fail(opt, "--smooth and --sg-samples give different counts");
    g->smooth = (int)n;
    return AT_OK;
}
static int set_sg_seed(void *args, const char *opt, const char *v) {
    grad_args *g = args;
    long n;
    if (cli_parse_int(opt, v, 0, 0x7fffffff, &n)) return AT_ERR;
    g->sg_seed = (unsigned)n, g->seed_set = 1;
    return AT_OK;
}

#define ARG(f) offsetof(grad_args, f)
const cli_option GRAD_OPTIONS[] = {
    {.name = "--unit", .type = CLI_STR, .off = ARG(unit_spec)},
    {.name = "--ig-steps", .type = CLI_INT, .off = ARG(ig_steps), .lo = 1, .hi = 100000},
    {.name = "--ig-rule", .type = CLI_CALL, .fn = set_ig_rule},
    {.name = "--baseline", .type = CLI_CHOICE, .off = ARG(baseline), .choices = "black|zero"},
    {.name = "--smooth", .type = CLI_CALL, .fn = set_smooth},
    {.name = "--sg-samples", .type = CLI_CALL, .fn = set_smooth},
    {.name = "--sg-sigma", .type = CLI_FLOAT, .off = ARG(sg_sigma), .lo = 1e-6, .hi = 100},
    {.name = "--sg-square", .type = CLI_FLAG, .off = ARG(sg_square)},
    {.name = "--sg-seed", .type = CLI_CALL, .fn = set_sg_seed},
    {.name = NULL},
};

static int smoothed(const at_explain_options *ex) { return ex->smooth || ex->method == AT_METHOD_SMOOTHGRAD; }

int grad_args_finish(const grad_args *g, at_explain_options *ex, int routing_path) {
    ex->ig_steps = g->ig_steps, ex->ig_rule = g->ig_rule, ex->baseline = (at_baseline)g->baseline;
    ex->smooth = g->smooth, ex->sg_sigma = g->sg_sigma, ex->sg_square = g->sg_square, ex->sg_seed = g->sg_seed;
    if (routing_path && (g->unit_spec || ex->ig_steps || ex->ig_rule || ex->baseline || ex->smooth || ex->sg_sigma > 0 ||
                         ex->sg_square || g->seed_set))
        return at_fail(g->unit_spec ? "--unit" : ex->smooth ? "--smooth" : "explain",
                       "the input-gradient options do not apply to routing-path methods");
    if (routing_path) return AT_OK;
    const int ig = ex->method == AT_METHOD_INTEGRATED_GRADIENTS;
    if (!ig && (ex->ig_steps || ex->ig_rule || ex->baseline))
        return at_fail(ex->ig_steps ? "--ig-steps" : ex->ig_rule ? "--ig-rule" : "--baseline",
                       "applies to integrated-gradients only");
    if (!smoothed(ex) && (ex->sg_sigma > 0 || ex->sg_square || g->seed_set))
        return at_fail(ex->sg_sigma > 0 ? "--sg-sigma" : ex->sg_square ? "--sg-square" : "--sg-seed",
                       "applies to smoothgrad or --smooth N only");
    return AT_OK;
}
