/* explain's options of the input-gradient methods (explain_grad_options.h). */
#include "explain_grad_options.h"

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

int grad_args_parse(grad_args *g, at_explain_options *ex, const char *opt, const char *v) {
    long n;
    double d;
    if (!strcmp(opt, "--unit")) {
        g->unit_spec = v;
    } else if (!strcmp(opt, "--ig-steps")) {
        if (cli_parse_int(opt, v, 1, 100000, &n)) return AT_ERR;
        ex->ig_steps = (int)n;
    } else if (!strcmp(opt, "--ig-rule")) {
        if (at_ig_rule_parse(v, &ex->ig_rule)) return AT_ERR;
    } else if (!strcmp(opt, "--baseline")) {
        if (!strcmp(v, "black")) ex->baseline = AT_BASELINE_BLACK;
        else if (!strcmp(v, "zero")) ex->baseline = AT_BASELINE_ZERO;
        else return at_fail(opt, "'%s' is not black or zero", v);
    } else if (!strcmp(opt, "--smooth") || !strcmp(opt, "--sg-samples")) {
        if (cli_parse_int(opt, v, 1, 100000, &n)) return AT_ERR;
        if (ex->smooth && ex->smooth != n) return at_fail(opt, "--smooth and --sg-samples give different counts");
        ex->smooth = (int)n;
        g->sg_samples_set = 1;
    } else if (!strcmp(opt, "--sg-sigma")) {
        if (cli_parse_double(opt, v, 1e-6, 100, &d)) return AT_ERR;
        ex->sg_sigma = (float)d;
    } else if (!strcmp(opt, "--sg-seed")) {
        if (cli_parse_int(opt, v, 0, 0x7fffffff, &n)) return AT_ERR;
        ex->sg_seed = (unsigned)n;
        g->seed_set = 1;
    } else {
        return 0;
    }
    return 1;
}

int grad_args_flag(grad_args *g, at_explain_options *ex, const char *opt) {
    if (strcmp(opt, "--sg-square")) return 0;
    ex->sg_square = 1;
    return 1;
}

static int smoothed(const at_explain_options *ex) { return ex->smooth || ex->method == AT_METHOD_SMOOTHGRAD; }

int grad_args_finish(const grad_args *g, const at_explain_options *ex, int routing_path) {
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

int grad_args_argv(grad_args *g, at_explain_options *ex, int argc, char **argv, int *i) {
    static const char *const valued[] = {"--unit", "--ig-steps", "--ig-rule", "--baseline", "--smooth",
                                         "--sg-samples", "--sg-sigma", "--sg-seed"};
    const char *o = argv[*i];
    if (grad_args_flag(g, ex, o)) return 1;
    for (int k = 0; k < 8; k++)
        if (!strcmp(o, valued[k])) {
            if (*i + 1 >= argc) return at_fail(o, "needs a value");
            const int r = grad_args_parse(g, ex, o, argv[*i + 1]);
            if (r == 1) ++*i;
            return r;
        }
    return 0;
}
