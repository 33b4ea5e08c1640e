/* ./attrib explain: options, one library run (at_explain_run, run/explain.h),
 * its progress and the routing paths' summary (docs/usage.md#explain). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "explain_grad_options.h"
#include "explain_paths.h"
#include "methods/relevance.h"
#include "perturb_options.h"
#include "run/explain.h"

static const char *const HELP =
    "usage: attrib explain --method M [options] IMAGE... | --list FILE | --dir DIR\n"
    "Writes, per image, DIR/<stem>.<method>.npy (float32 HxW map in [0,1] at the\n"
    "network input size), DIR/<stem>.<method>.png (overlay) and one line of\n"
    "DIR/results.jsonl. Settings other than the defaults (layer, class, variant,\n"
    "precision, path options) add a suffix: <stem>.gradcam.features.22.c3.npy.\n"
    "Interrupted runs keep every finished image. A run whose results are already in\n"
    "DIR/results.jsonl (same image, method and settings) stops unless --resume\n"
    "(skip them) or --overwrite (replace them) is given.\n"
    "  --method M          scorecam | gradcam | gradcam++ | saliency | contrastive |\n"
    "                      guided-backprop | deconvnet | guided-gradcam | input-x-gradient |\n"
    "                      integrated-gradients | smoothgrad | eb | c-eb | lrp | clrp | fafrp |\n"
    "                      layercam | xgradcam | hirescam | ablation-cam | eigencam |\n"
    "                      rise | occlusion | meaningful-perturbation | lcam;\n"
    "                      formulas, defaults and cost in docs/methods.md (#score-cam,\n"
    "                      #grad-cam-and-grad-cam, #gradient-saliency, #guided-backprop-and-deconvnet,\n"
    "                      #excitation-backprop, #lrp, #fafrp, #layercam, #xgrad-cam, #hirescam,\n"
    "                      #ablation-cam, #eigencam, #rise, #occlusion,\n"
    "                      #meaningful-perturbation, #l-cam)\n"
    "  --variant V         authors | pgc | torchcam: whose conventions a CAM follows\n"
    "                      (upsampling, mask normalisation, channel score; default authors;\n"
    "                      docs/methods.md#conventions-where-papers-and-peers-disagree).\n"
    "                      pgc: Ablation-CAM's ablation value, EigenCAM without the sign\n"
    "                      rule, LayerCAM's mean fusion; torchcam: XGrad-CAM's epsilon\n"
    "  --layer L           conv ordinal (0..12 for VGG16: that conv's ReLU output),\n"
    "                      a module name features.N, or last-conv (default); layercam\n"
    "                      fuses a comma-separated list (features.22,features.29)\n"
    "  --layer L (eb, c-eb) the read-out layer (default features.23, layer3 on ResNet)\n"
    "  --contrast-layer L  c-eb: where the dual's signal is subtracted (default classifier.4,\n"
    "                      relu7; avgpool on ResNet)\n"
    "  --lrp-rule R        lrp, clrp: epsilon-gamma-box (default) | epsilon-alpha2-beta1 |\n"
    "                      epsilon | gamma | alpha-beta\n"
    "  --lrp-alpha A       alpha of the alpha-beta rule, beta = A - 1 (default 2)\n"
    "  --lrp-gamma G       gamma of the gamma rule (default 0.25)\n"
    "  --lcam FILE         lcam: the trained module (default <model>.lcam.safetensors\n"
    "                      beside the model; tools/train_lcam.py); it fixes the layer\n"
    "  --class C           class index to explain, 'predicted' (default), or 'truth':\n"
    "                      the ground truth from --annotations\n"
    "  --annotations PATH  images.csv (NIPS 2017 layout) or an ILSVRC XML folder\n"
    "  --out DIR           output folder (default out)\n"
    "  --list FILE         image paths, one per line;  --dir DIR: every PNG/JPEG under DIR\n"
    "  --resume            skip images already in DIR/results.jsonl\n"
    "  --overwrite         redo them and replace their results lines\n"
    "  --strict            stop at the first unreadable image (default: report and skip)\n"
    "  --no-overlay        write the .npy maps only\n"
    "  --quiet             no progress line on stderr\n\n";

typedef struct {
    cli_common common;
    at_explain_run_options o;
    path_args path;
    perturb_args perturb;
    grad_args grad;
    int resume, overwrite, quiet;
    int method_set;
    cli_paths paths;
} explain_args;

static int set_method(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    if (at_path_method_parse(v, &a->o.path_method)) a->o.routing = 1;
    else if (at_method_parse(v, &a->o.ex.method))
        return at_fail(opt, "'%s' is not one of %s, cdrp, score-cdrp, path-scorecam, pathway-grad", v,
                       at_method_names());
    a->method_set = 1;
    return AT_OK;
}
static int set_variant(void *args, const char *opt, const char *v) {
    return at_variant_parse(v, &((explain_args *)args)->o.ex.variant);
}
static int set_class(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    if (!strcmp(v, "truth")) a->o.cls = AT_CLASS_TRUTH;
    else if (strcmp(v, "predicted") && cli_parse_int(opt, v, 0, 1 << 30, &a->o.cls)) return AT_ERR;
    return AT_OK;
}
static int set_lrp_rule(void *args, const char *opt, const char *v) {
    return at_lrp_rule_parse(v, &((explain_args *)args)->o.ex.lrp_rule);
}
static int set_lrp_number(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    int alpha = !strcmp(opt, "--lrp-alpha");
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d > 0) || d > 1000 || (alpha && d < 1))
        return at_fail(opt, "'%s' is not a number in %s", v, alpha ? "[1, 1000]" : "(0, 1000]");
    if (alpha) a->o.ex.lrp_alpha = (float)d;
    else a->o.ex.lrp_gamma = (float)d;
    return AT_OK;
}
static int add_list(void *args, const char *opt, const char *v) { return cli_paths_add_list(&((explain_args *)args)->paths, v); }
static int add_dir(void *args, const char *opt, const char *v) { return cli_paths_add_dir(&((explain_args *)args)->paths, v); }

#define ARG(f) offsetof(explain_args, f)
static const cli_option options[] = {
    {.name = "--method", .type = CLI_CALL, .fn = set_method},
    {.name = "--variant", .type = CLI_CALL, .fn = set_variant},
    {.name = "--layer", .type = CLI_STR, .off = ARG(o.layer)},
    {.name = "--contrast-layer", .type = CLI_STR, .off = ARG(o.ex.contrast_layer)},
    {.name = "--lrp-rule", .type = CLI_CALL, .fn = set_lrp_rule},
    {.name = "--lrp-alpha", .type = CLI_CALL, .fn = set_lrp_number},
    {.name = "--lrp-gamma", .type = CLI_CALL, .fn = set_lrp_number},
    {.name = "--class", .type = CLI_CALL, .fn = set_class},
    {.name = "--annotations", .type = CLI_STR, .off = ARG(o.annotations)},
    {.name = "--lcam", .type = CLI_STR, .off = ARG(o.lcam)},
    {.name = "--out", .type = CLI_STR, .off = ARG(o.out_dir)},
    {.name = "--list", .type = CLI_CALL, .fn = add_list},
    {.name = "--dir", .type = CLI_CALL, .fn = add_dir},
    {.name = "--resume", .type = CLI_FLAG, .off = ARG(resume)},
    {.name = "--overwrite", .type = CLI_FLAG, .off = ARG(overwrite)},
    {.name = "--strict", .type = CLI_FLAG, .off = ARG(o.strict)},
    {.name = "--no-overlay", .type = CLI_FLAG, .off = ARG(o.no_overlay)},
    {.name = "--quiet", .type = CLI_FLAG, .off = ARG(quiet)},
    {.name = NULL},
};

static int parse_args(explain_args *a, int argc, char **argv) {
    at_explain_run_options *o = &a->o;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&a->common, argc, argv, &i);
        if (!r) r = cli_options_parse(options, a, argc, argv, &i);
        if (!r) r = cli_options_parse(PATH_OPTIONS, &a->path, argc, argv, &i);
        if (!r) r = cli_options_parse(PERTURB_OPTIONS, &a->perturb, argc, argv, &i);
        if (!r) r = cli_options_parse(GRAD_OPTIONS, &a->grad, argc, argv, &i);
        if (r == AT_ERR) return AT_ERR;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) return at_fail(argv[i], "unknown option (see attrib explain --help)");
        if (cli_paths_add(&a->paths, argv[i])) return AT_ERR;
    }
    if (!a->method_set) return at_fail("--method", "is required (see attrib explain --help)");
    if (a->resume && a->overwrite) return at_fail("--overwrite", "and --resume exclude each other");
    o->existing = a->resume ? AT_EXISTING_SKIP : a->overwrite ? AT_EXISTING_REPLACE : AT_EXISTING_STOP;
    if (o->cls == AT_CLASS_TRUTH && !o->annotations) return at_fail("--class", "truth needs --annotations");
    path_args_finish(&a->path);
    o->path = a->path.o;
    if (grad_args_finish(&a->grad, &o->ex, o->routing)) return AT_ERR;
    o->unit = a->grad.unit_spec;
    if (o->routing) {
        if (o->cls >= 0) return at_fail("--class", "routing paths explain the predicted class only");
        if (o->path.gates_dir && (o->path_method == AT_PATH_CDRP || o->path_method == AT_PATH_SCORE_CDRP))
            return at_fail("--gates", "reads paths for path-scorecam and pathway-grad, not for %s",
                           o->path_method == AT_PATH_CDRP ? "cdrp" : "score-cdrp");
        return a->paths.n ? AT_OK : at_fail("explain", "no images given (see attrib explain --help)");
    }
    if (!a->paths.n) return at_fail("explain", "no images given (see attrib explain --help)");
    if (perturb_args_check(&a->perturb, o->ex.method)) return AT_ERR;
    o->rise_masks = a->perturb.masks_in, o->rise_save_masks = a->perturb.masks_out;
    o->rise_n_given = a->perturb.rise_n_set;
    const at_method me = o->ex.method;
    const int lrp = me == AT_METHOD_LRP || me == AT_METHOD_CLRP;
    if (o->ex.contrast_layer && me != AT_METHOD_CEB) return at_fail("--contrast-layer", "is c-eb's option");
    if ((o->ex.lrp_rule || o->ex.lrp_alpha || o->ex.lrp_gamma) && !lrp)
        return at_fail("--lrp-rule", "--lrp-rule, --lrp-alpha and --lrp-gamma are lrp's and clrp's options");
    if (o->lcam && me != AT_METHOD_LCAM) return at_fail("--lcam", "is lcam's option");
    if (o->layer && me == AT_METHOD_LCAM)
        return at_fail("--layer", "lcam reads the layer its module was trained on (--lcam FILE)");
    if (o->layer && (lrp || me == AT_METHOD_FAFRP))
        return at_fail("--layer", "%s explains from the input; it reads no layer", at_method_name(me));
    if (!at_method_has_variant(me, o->ex.variant))
        return at_fail("--variant", "%s has no %s variant", at_method_name(me), at_variant_name(o->ex.variant));
    return AT_OK;
}

/* The gate statistics (and pruned-network outcomes) of the run's paths. */
static void print_path_summary(const explain_args *a, const at_model *m, const at_explain_summary *s) {
    if (!s->gates.paths) return;
    cli_print_gate_summary(m, &s->gates, s->path_kind);
    if (a->o.path_method != AT_PATH_PATHWAY_GRAD) return;
    printf("pruned networks: rate, images whose prediction stays the class, mean probability of the class\n");
    for (int k = 0; k < a->o.path.n_rates && k < AT_MAX_RATES; k++)
        if (s->rate_paths[k])
            printf("  %.2f  %d/%d  %.3f\n", a->o.path.rates[k], s->rate_kept[k], s->rate_paths[k],
                   s->rate_prob[k] / s->rate_paths[k]);
}

int cmd_explain(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s%s%s%s%s", HELP, GRAD_HELP, PERTURB_HELP, PATH_HELP, CLI_COMMON_HELP);
            return 0;
        }
    explain_args a;
    memset(&a, 0, sizeof a);
    cli_common_init(&a.common);
    at_explain_run_defaults(&a.o);
    path_args_init(&a.path);
    perturb_args_init(&a.perturb);
    a.o.ex.perturb = &a.perturb.o;
    if (parse_args(&a, argc, argv)) {
        cli_error();
        cli_paths_free(&a.paths);
        return EXIT_USAGE;
    }
    at_model *m = NULL;
    at_backend *be = NULL;
    int rc = cli_open(&a.common, &m, &be);
    if (!rc) {
        cli_run progress;
        at_run_callbacks cb;
        at_explain_summary s;
        cli_run_init(&progress, &cb, "explain", a.quiet);
        if (at_explain_run(be, &a.o, (const char *const *)a.paths.paths, a.paths.n, &cb, &s)) {
            if (s.existing && a.o.existing == AT_EXISTING_STOP) cli_error_hint("add --resume to skip them or --overwrite to replace them");
            else cli_error();
            rc = s.bad_option ? EXIT_USAGE : EXIT_BAD_INPUT;
        } else {
            rc = s.failed || s.stopped ? EXIT_BAD_INPUT : 0;
        }
        if (a.o.routing && !a.quiet) print_path_summary(&a, m, &s);
    }
    at_backend_destroy(be);
    at_model_free(m);
    cli_paths_free(&a.paths);
    return rc;
}
