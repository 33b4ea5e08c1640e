/* ./attrib explain: attribution maps for many images, resumable (docs/usage.md#explain). */
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/clock.h"
#include "explain_grad_options.h"
#include "explain_io.h"
#include "io/annotations.h"
#include "explain_paths.h"
#include "io/image.h"
#include "methods/explain.h"
#include "methods/lcam.h"
#include "methods/relevance.h"
#include "preprocess/pipeline.h"
#include "output/progress.h"
#include "perturb_options.h"
#include "version.h"

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

#define MAX_FUSED_LAYERS 16

typedef struct {
    cli_common common;
    at_explain_options ex;
    int is_path;             /* a routing-path method (explain_paths.c) */
    path_method pm;
    path_args path;
    perturb_args perturb;
    grad_args grad;
    const char *layer_spec, *out_dir, *annotations, *lcam_path;
    int layer_given;
    long cls; /* -1 predicted, -2 ground truth */
    int resume, overwrite, strict, no_overlay, quiet;
    int method_set;
    cli_paths paths;
} explain_args;

static int set_method(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    if (path_method_parse(v, &a->pm)) a->is_path = 1;
    else if (at_method_parse(v, &a->ex.method))
        return at_fail(opt, "'%s' is not one of %s, cdrp, score-cdrp, path-scorecam, pathway-grad", v,
                       at_method_names());
    a->method_set = 1;
    return AT_OK;
}
static int set_variant(void *args, const char *opt, const char *v) {
    return at_variant_parse(v, &((explain_args *)args)->ex.variant);
}
static int set_class(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    if (!strcmp(v, "truth")) a->cls = -2;
    else if (strcmp(v, "predicted") && cli_parse_int(opt, v, 0, 1 << 30, &a->cls)) return AT_ERR;
    return AT_OK;
}
static int set_layer(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    a->layer_spec = v, a->layer_given = 1;
    return AT_OK;
}
static int set_lrp_rule(void *args, const char *opt, const char *v) {
    return at_lrp_rule_parse(v, &((explain_args *)args)->ex.lrp_rule);
}
static int set_lrp_number(void *args, const char *opt, const char *v) {
    explain_args *a = args;
    int alpha = !strcmp(opt, "--lrp-alpha");
    char *end;
    double d = strtod(v, &end);
    if (*end || !(d > 0) || d > 1000 || (alpha && d < 1))
        return at_fail(opt, "'%s' is not a number in %s", v, alpha ? "[1, 1000]" : "(0, 1000]");
    if (alpha) a->ex.lrp_alpha = (float)d;
    else a->ex.lrp_gamma = (float)d;
    return AT_OK;
}
static int add_list(void *args, const char *opt, const char *v) { return cli_paths_add_list(&((explain_args *)args)->paths, v); }
static int add_dir(void *args, const char *opt, const char *v) { return cli_paths_add_dir(&((explain_args *)args)->paths, v); }

#define ARG(f) offsetof(explain_args, f)
static const cli_option options[] = {
    {.name = "--method", .type = CLI_CALL, .fn = set_method},
    {.name = "--variant", .type = CLI_CALL, .fn = set_variant},
    {.name = "--layer", .type = CLI_CALL, .fn = set_layer},
    {.name = "--contrast-layer", .type = CLI_STR, .off = ARG(ex.contrast_layer)},
    {.name = "--lrp-rule", .type = CLI_CALL, .fn = set_lrp_rule},
    {.name = "--lrp-alpha", .type = CLI_CALL, .fn = set_lrp_number},
    {.name = "--lrp-gamma", .type = CLI_CALL, .fn = set_lrp_number},
    {.name = "--class", .type = CLI_CALL, .fn = set_class},
    {.name = "--annotations", .type = CLI_STR, .off = ARG(annotations)},
    {.name = "--lcam", .type = CLI_STR, .off = ARG(lcam_path)},
    {.name = "--out", .type = CLI_STR, .off = ARG(out_dir)},
    {.name = "--list", .type = CLI_CALL, .fn = add_list},
    {.name = "--dir", .type = CLI_CALL, .fn = add_dir},
    {.name = "--resume", .type = CLI_FLAG, .off = ARG(resume)},
    {.name = "--overwrite", .type = CLI_FLAG, .off = ARG(overwrite)},
    {.name = "--strict", .type = CLI_FLAG, .off = ARG(strict)},
    {.name = "--no-overlay", .type = CLI_FLAG, .off = ARG(no_overlay)},
    {.name = "--quiet", .type = CLI_FLAG, .off = ARG(quiet)},
    {.name = NULL},
};

static int parse_args(explain_args *a, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&a->common, argc, argv, &i);
        if (!r) r = cli_options_parse(options, a, argc, argv, &i);
        if (!r) r = cli_options_parse(PATH_OPTIONS, &a->path, argc, argv, &i);
        if (!r && i + 1 < argc && (r = perturb_args_parse(&a->perturb, argv[i], argv[i + 1])) == 1) i++;
        if (!r) r = grad_args_argv(&a->grad, &a->ex, argc, argv, &i);
        if (r == AT_ERR) return AT_ERR;
        if (r) continue;
        if (argv[i][0] == '-' && argv[i][1]) return at_fail(argv[i], "unknown option (see attrib explain --help)");
        if (cli_paths_add(&a->paths, argv[i])) return AT_ERR;
    }
    if (!a->method_set) return at_fail("--method", "is required (see attrib explain --help)");
    if (a->resume && a->overwrite) return at_fail("--overwrite", "and --resume exclude each other");
    if (a->cls == -2 && !a->annotations) return at_fail("--class", "truth needs --annotations");
    path_args_finish(&a->path);
    if (a->is_path) {
        if (a->cls >= 0) return at_fail("--class", "routing paths explain the predicted class only");
        if (a->path.gates_dir && (a->pm == PM_CDRP || a->pm == PM_SCORE_CDRP))
            return at_fail("--gates", "reads paths for path-scorecam and pathway-grad, not for %s",
                           a->pm == PM_CDRP ? "cdrp" : "score-cdrp");
        return a->paths.n ? AT_OK : at_fail("explain", "no images given (see attrib explain --help)");
    }
    if (!a->paths.n) return at_fail("explain", "no images given (see attrib explain --help)");
    const at_method me = a->ex.method;
    const int lrp = me == AT_METHOD_LRP || me == AT_METHOD_CLRP;
    if (a->ex.contrast_layer && me != AT_METHOD_CEB) return at_fail("--contrast-layer", "is c-eb's option");
    if ((a->ex.lrp_rule || a->ex.lrp_alpha || a->ex.lrp_gamma) && !lrp)
        return at_fail("--lrp-rule", "--lrp-rule, --lrp-alpha and --lrp-gamma are lrp's and clrp's options");
    if (a->lcam_path && me != AT_METHOD_LCAM) return at_fail("--lcam", "is lcam's option");
    if (a->layer_given && me == AT_METHOD_LCAM)
        return at_fail("--layer", "lcam reads the layer its module was trained on (--lcam FILE)");
    if (a->layer_given && (lrp || me == AT_METHOD_FAFRP))
        return at_fail("--layer", "%s explains from the input; it reads no layer", at_method_name(me));
    if (!at_method_has_variant(a->ex.method, a->ex.variant))
        return at_fail("--variant", "%s has no %s variant", at_method_name(a->ex.method),
                       at_variant_name(a->ex.variant));
    return AT_OK;
}

/* --layer as layer indices: one layer, or LayerCAM's comma-separated list to
 * fuse (names joined by '+' in files and results lines). */
static int resolve_layers(explain_args *a, const at_model *m, int *list, char *names, size_t cap) {
    char spec[512];
    snprintf(spec, sizeof spec, "%s", a->layer_spec);
    int n = 0;
    size_t o = 0;
    for (char *save = NULL, *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_FUSED_LAYERS) return at_fail("--layer", "more than %d layers", MAX_FUSED_LAYERS);
        if ((list[n] = at_model_find_layer(m, tok)) < 0 || at_explain_check_layer(m, a->ex.method, list[n]))
            return AT_ERR;
        o += snprintf(names + o, o < cap ? cap - o : 0, "%s%s", n ? "+" : "", m->layers[list[n]].name);
        n++;
    }
    if (!n) return at_fail("--layer", "empty layer list '%s'", a->layer_spec);
    if (n > 1 && a->ex.method != AT_METHOD_LAYERCAM)
        return at_fail("--layer", "several layers are fused by layercam only, not by %s", at_method_name(a->ex.method));
    a->ex.layer = list[0];
    a->ex.n_layers = n;
    a->ex.layers = list;
    return AT_OK;
}

/* "scorecam" or "scorecam.pgc": the method's name in files and results
 * (a variant that computes the same map still gets its own name). */
static void method_tag(const explain_args *a, char *tag, size_t cap) {
    if (a->ex.variant == AT_VARIANT_AUTHORS)
        snprintf(tag, cap, "%s", at_method_name(a->ex.method));
    else
        snprintf(tag, cap, "%s.%s", at_method_name(a->ex.method), at_variant_name(a->ex.variant));
}

/* The settings that change a map, as a file-name suffix; "" for the defaults. */
static void map_settings(const explain_args *a, const at_model *m, const at_backend *be, const char *layer_names,
                         char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    if (a->ex.layer >= 0 && (a->ex.n_layers > 1 || a->ex.layer != at_model_find_layer(m, "last-conv")))
        o += snprintf(buf + o, cap - o, "%s", layer_names);
    int ro, ct; /* relevance methods: the options off their defaults */
    if (a->ex.eb_layer && !at_relevance_layers(m, &a->ex, &ro, &ct))
        o += snprintf(buf + o, cap - o, "%s%s", o ? "." : "", m->layers[ro].name);
    if (a->ex.contrast_layer && o < cap) o += snprintf(buf + o, cap - o, "%scontrast-%s", o ? "." : "", a->ex.contrast_layer);
    if (a->ex.lrp_rule && o < cap) o += snprintf(buf + o, cap - o, "%s%s", o ? "." : "", at_lrp_rule_name(a->ex.lrp_rule));
    if (a->ex.lrp_alpha && o < cap) o += snprintf(buf + o, cap - o, "%salpha%g", o ? "." : "", a->ex.lrp_alpha);
    if (a->ex.lrp_gamma && o < cap) o += snprintf(buf + o, cap - o, "%sgamma%g", o ? "." : "", a->ex.lrp_gamma);
    if (a->cls != -1 && o < cap)
        o += a->cls == -2 ? snprintf(buf + o, cap - o, "%struth", o ? "." : "")
                          : snprintf(buf + o, cap - o, "%sc%ld", o ? "." : "", a->cls);
    char perturb[160];
    perturb_settings(a->ex.method, &a->perturb, perturb, sizeof perturb);
    if (perturb[0] && o < cap) o += snprintf(buf + o, cap - o, "%s%s", o ? "." : "", perturb);
    if (a->lcam_path && o < cap) { /* a module other than the default: its file's stem */
        const char *base = strrchr(a->lcam_path, '/');
        base = base ? base + 1 : a->lcam_path;
        const char *dot = strstr(base, ".lcam.safetensors");
        o += snprintf(buf + o, cap - o, "%slcam-%.*s", o ? "." : "", dot ? (int)(dot - base) : (int)strlen(base), base);
    }
    if (be->precision != AT_PRECISION_FP32 && o < cap)
        snprintf(buf + o, cap - o, "%s%s", o ? "." : "", at_precision_name(be->precision));
    grad_settings(m, &a->ex, buf, cap);
}

static int is_perturbation(at_method m) {
    return m == AT_METHOD_RISE || m == AT_METHOD_OCCLUSION || m == AT_METHOD_MEANINGFUL;
}

/* A perturbation method's progress within the batch in flight. */
typedef struct {
    at_progress *prog;
    int n;
} batch_share;

static void on_batch_progress(void *ctx, double fraction) {
    const batch_share *s = ctx;
    at_progress_partial(s->prog, s->n, fraction);
}

typedef struct {
    int index;             /* into paths */
    at_image rgb;          /* preprocessed RGB8, for the overlay */
} loaded_image;

static char *results_line(const explain_args *a, const at_model *m, const at_backend *be, const char *tag,
                          const char *settings, const char *image, const char *layer_name,
                          const at_explain_result *r, const char *npy, const char *png, double ms, int batch) {
    char cls_opt[32];
    if (a->cls >= 0) snprintf(cls_opt, sizeof cls_opt, "%ld", a->cls);
    else snprintf(cls_opt, sizeof cls_opt, a->cls == -2 ? "truth" : "predicted");
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", image);
    at_jsonw_str(&w, "method", tag);
    at_jsonw_str(&w, "settings", settings);
    at_jsonw_str(&w, "variant", at_variant_name(a->ex.variant));
    at_jsonw_str(&w, "layer", layer_name);
    at_jsonw_str(&w, "class_option", cls_opt);
    cli_class_fields(&w, m, r->cls);
    at_jsonw_num(&w, "prob", r->prob);
    at_jsonw_num(&w, "logit", r->logit);
    at_jsonw_int(&w, "predicted", r->predicted);
    at_jsonw_str(&w, "map", npy);
    at_jsonw_str(&w, "overlay", png);
    at_jsonw_bool(&w, "flat_map", r->flat_map);
    if (a->ex.method == AT_METHOD_SCORECAM) at_jsonw_int(&w, "flat_channels", r->flat_channels);
    if (a->ex.lcam) at_jsonw_str(&w, "lcam_module", a->ex.lcam->path);
    at_jsonw_int(&w, "forwards", r->forwards);
    grad_results_fields(&w, m, &a->ex, r);
    at_jsonw_num(&w, "ms", ms); /* the batch's wall time per image */
    at_jsonw_int(&w, "batch", batch);
    at_jsonw_str(&w, "backend", be->name);
    at_jsonw_str(&w, "precision", at_precision_name(be->precision));
    at_jsonw_str(&w, "model", m->name);
    at_jsonw_str(&w, "model_sha256", m->sha256);
    at_jsonw_str(&w, "engine", "attrib " ATTRIB_VERSION);
    return at_jsonw_end(&w);
}

/* Drops repeated paths (as given), keeping the first: one results line per
 * image and key. Returns how many were dropped. */
static int cmp_index_path(const void *x, const void *y, void *paths) {
    int a = *(const int *)x, b = *(const int *)y;
    int c = strcmp(((char **)paths)[a], ((char **)paths)[b]);
    return c ? c : a - b;
}

static int drop_repeated_paths(cli_paths *p) {
    int *order = malloc(sizeof(int) * (p->n ? p->n : 1));
    char *dup = calloc(p->n ? p->n : 1, 1);
    int dropped = 0;
    if (!order || !dup) {
        free(order), free(dup);
        return 0; /* keep them: at worst repeated lines, which eval merges */
    }
    for (int i = 0; i < p->n; i++) order[i] = i;
    qsort_r(order, p->n, sizeof(int), cmp_index_path, p->paths);
    for (int i = 1; i < p->n; i++)
        if (!strcmp(p->paths[order[i]], p->paths[order[i - 1]])) dup[order[i]] = 1;
    int k = 0;
    for (int i = 0; i < p->n; i++) {
        if (dup[i]) {
            free(p->paths[i]);
            dropped++;
        } else {
            p->paths[k++] = p->paths[i];
        }
    }
    p->n = k;
    free(order), free(dup);
    return dropped;
}

/* Seconds one batch of a path method should take: long enough to batch many
 * images (the speed lever), short enough that progress moves and Ctrl-C
 * loses little. The batch grows from one image by the measured cost. */
#define PATH_BATCH_TARGET_S 5.0

/* An image that cannot be explained: reported and counted; 1 when --strict
 * stops the run there. */
static int image_failed(const explain_args *a, at_progress *prog, int *failed) {
    cli_error();
    (*failed)++;
    if (a->strict) return 1;
    at_progress_tick(prog, 0, 1);
    return 0;
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
    a.ex.variant = AT_VARIANT_AUTHORS;
    a.layer_spec = "last-conv";
    a.out_dir = "out";
    a.cls = -1;
    path_args_init(&a.path);
    perturb_args_init(&a.perturb);
    a.ex.perturb = &a.perturb.o;
    if (parse_args(&a, argc, argv)) {
        cli_error();
        cli_paths_free(&a.paths);
        return EXIT_USAGE;
    }
    int repeated = drop_repeated_paths(&a.paths);
    at_model *m = NULL;
    at_backend *be = NULL;
    at_results *res = NULL;
    at_lcam *lcam = NULL;
    char **stems = NULL;
    path_reuse reuse = {0};
    path_summary summary;
    memset(&summary, 0, sizeof summary);
    int rc = cli_open(&a.common, &m, &be);
    if (rc) goto out;
    rc = EXIT_BAD_INPUT;
    int layer_list[MAX_FUSED_LAYERS];
    char layer_names[MAX_FUSED_LAYERS * 40] = "";
    if (!a.is_path && at_method_uses_layer(a.ex.method)) {
        /* a layer the method cannot use is bad usage, said once before any image */
        if (resolve_layers(&a, m, layer_list, layer_names, sizeof layer_names)) {
            cli_error();
            rc = EXIT_USAGE;
            goto out;
        }
    } else {
        a.ex.layer = -1;
    }
    if (!a.is_path && a.ex.method == AT_METHOD_LCAM) {
        char dflt[1100];
        at_lcam_default_path(m, dflt, sizeof dflt);
        if (at_lcam_load(m, a.lcam_path ? a.lcam_path : dflt, &lcam)) {
            cli_error();
            goto out;
        }
        a.ex.lcam = lcam;
        snprintf(layer_names, sizeof layer_names, "%s", lcam->layer_name);
    }
    int eb_readout = -1;
    if (!a.is_path && (a.ex.method == AT_METHOD_EB || a.ex.method == AT_METHOD_CEB)) {
        int ct;
        if (a.layer_given) a.ex.eb_layer = a.layer_spec;
        if (at_relevance_layers(m, &a.ex, &eb_readout, &ct)) {
            cli_error();
            rc = EXIT_USAGE;
            goto out;
        }
        a.ex.layer = -1;
    }
    if (!a.is_path && perturb_args_prepare(&a.perturb, m, a.ex.method)) {
        cli_error();
        rc = EXIT_USAGE;
        goto out;
    }
    if (a.cls >= m->n_classes) {
        at_fail("--class", "%ld is out of range 0..%d", a.cls, m->n_classes - 1);
        cli_error();
        rc = EXIT_USAGE;
        goto out;
    }
    if (grad_args_finish(&a.grad, m, &a.ex, a.is_path)) {
        cli_error();
        rc = EXIT_USAGE;
        goto out;
    }
    const char *layer_name = a.ex.layer >= 0 || lcam ? layer_names : eb_readout >= 0 ? m->layers[eb_readout].name : "";
    char tag[64], settings[200], name[300];
    if (a.is_path) {
        path_method_tag(a.pm, &a.path, tag, sizeof tag);
        path_settings(a.pm, &a.path, be->precision, settings, sizeof settings);
    } else {
        method_tag(&a, tag, sizeof tag);
        map_settings(&a, m, be, layer_names, settings, sizeof settings);
    }
    results_key_name(tag, settings, name, sizeof name);
    /* keys this run writes per image; pathway-grad writes one per rate and
     * its last rate's line marks an image done */
    int n_keys = a.is_path && a.pm == PM_PATHWAY_GRAD ? a.path.n_rates : 1;
    char keys[16][320];
    for (int k = 0; k < n_keys; k++) {
        char method[96];
        if (a.is_path && a.pm == PM_PATHWAY_GRAD) snprintf(method, sizeof method, "%s.r%.2f", tag, a.path.rates[k]);
        else snprintf(method, sizeof method, "%s", tag);
        results_key_name(method, settings, keys[k], sizeof keys[k]);
    }
    const char *done_key = keys[n_keys - 1];
    char cls_opt[32];
    if (a.cls >= 0) snprintf(cls_opt, sizeof cls_opt, "%ld", a.cls);
    else snprintf(cls_opt, sizeof cls_opt, a.cls == -2 ? "truth" : "predicted");
    const char *key_cls = a.is_path ? "predicted" : cls_opt, *key_layer = a.is_path ? "" : layer_name;
    stems = calloc(a.paths.n, sizeof *stems);
    if (!stems || at_output_stems(a.paths.n, (const char *const *)a.paths.paths, stems) ||
        at_output_dir_prepare(a.out_dir) || (!a.is_path && perturb_args_save_masks(&a.perturb, m)) ||
        at_results_open(&res, a.out_dir, "results.jsonl", 1)) {
        cli_error();
        goto out;
    }
    int existing = 0;
    for (int i = 0; i < a.paths.n; i++) {
        int found = 0;
        for (int k = 0; k < n_keys && !found; k++) found = at_results_has(res, a.paths.paths[i], keys[k], key_layer, key_cls);
        existing += found;
    }
    if (existing && !a.resume && !a.overwrite) {
        at_fail(at_results_path(res), "already holds %s results for %d of these %d images; add --resume to skip "
                "them or --overwrite to replace them", name, existing, a.paths.n);
        cli_error();
        rc = EXIT_USAGE;
        goto out;
    }
    if (at_output_install_signal_cleanup() ||
        (a.is_path && a.pm >= PM_PATH_SCORECAM && !a.path.gates_dir && !a.path.reoptimise &&
         path_reuse_load(&reuse, a.out_dir, &a.path, m, be->precision))) {
        cli_error();
        goto out;
    }
    if (repeated && !a.quiet) fprintf(stderr, "attrib: explain: %d repeated image paths are explained once\n", repeated);
    at_annotations ann = {0};
    int have_ann = 0;
    if (a.annotations) {
        if (at_annotations_load(a.annotations, m, &ann)) {
            cli_error();
            goto out;
        }
        have_ann = 1;
    }
    /* gradient methods run images in batches; Score-CAM batches channels,
     * RISE and occlusion masks; meaningful perturbation batches a few images
     * (hundreds of passes each) */
    int one = !a.is_path && (a.ex.method == AT_METHOD_SCORECAM || a.ex.method == AT_METHOD_RISE ||
                             a.ex.method == AT_METHOD_OCCLUSION);
    int cap = one ? 1 : at_max_batch(be, 1);
    if (cap > 32) cap = 32;
    if (!a.is_path && a.ex.method == AT_METHOD_MEANINGFUL && cap > 8) cap = 8;
    if (cap < 1) cap = 1;
    int chunk = a.is_path ? 1 : cap;
    int *indices = malloc(sizeof(int) * cap);
    at_image *rgbs = malloc(sizeof(at_image) * cap);
    long in_size = (long)m->in_c * m->in_h * m->in_w, hw = (long)m->in_h * m->in_w;
    float *inputs = malloc(sizeof(float) * in_size * cap), *maps = malloc(sizeof(float) * hw * cap);
    loaded_image *loaded = calloc(cap, sizeof *loaded);
    at_explain_result *results = calloc(cap, sizeof *results);
    int *classes = malloc(sizeof(int) * cap);
    if (!inputs || !maps || !loaded || !results || !classes || !indices || !rgbs) {
        at_fail("explain", "out of memory");
        cli_error();
        goto out_buffers;
    }
    at_progress progress, *prog = &progress;
    at_progress_start(prog, a.paths.n, "explain", a.quiet);
    int failed = 0, stop = 0;
    rc = 0;
    for (int next = 0; next < a.paths.n && !stop;) {
        int nb = 0, skipped = 0;
        for (; next < a.paths.n && nb < chunk; next++) {
            const char *path = a.paths.paths[next];
            if (a.resume && at_results_has(res, path, done_key, key_layer, key_cls)) {
                skipped++;
                continue;
            }
            if (at_load_input_rgb(m, path, inputs + in_size * nb, &loaded[nb].rgb, NULL)) {
                rc = EXIT_BAD_INPUT;
                if ((stop = image_failed(&a, prog, &failed))) break;
                continue;
            }
            loaded[nb].index = next;
            cli_image_notes(loaded[nb].rgb.notes);
            classes[nb] = (int)a.cls;
            if (a.cls == -2) {
                const at_annotation *an = have_ann ? at_annotations_find(&ann, path) : NULL;
                if (!an || an->cls < 0) {
                    at_fail(path, "no ground-truth class in %s", a.annotations);
                    at_image_free(&loaded[nb].rgb);
                    rc = EXIT_BAD_INPUT;
                    if ((stop = image_failed(&a, prog, &failed))) break;
                    continue;
                }
                classes[nb] = an->cls;
            }
            results[nb] = (at_explain_result){.map = maps + hw * nb};
            nb++;
        }
        if (skipped) at_progress_skip(prog, skipped);
        if (!nb) continue;
        double t0 = at_now_s();
        if (a.is_path) {
            path_run run = {.method = a.pm, .p = &a.path, .m = m, .be = be, .tag = tag, .out_dir = a.out_dir,
                            .settings = settings, .name = name, .reuse = &reuse, .summary = &summary,
                            .stems = stems, .paths = a.paths.paths, .res = res, .prog = prog,
                            .no_overlay = a.no_overlay, .skip_existing = a.resume};
            for (int j = 0; j < nb; j++) indices[j] = loaded[j].index, rgbs[j] = loaded[j].rgb;
            if (explain_paths_batch(&run, inputs, nb, indices, rgbs)) {
                cli_error();
                rc = EXIT_BAD_INPUT;
                stop = 1;
            }
            for (int j = 0; j < nb; j++) at_image_free(&loaded[j].rgb);
            /* next batch: twice this one at most, and about PATH_BATCH_TARGET_S long */
            double per_image = (at_now_s() - t0) / nb;
            int fit = per_image > 0 ? (int)(PATH_BATCH_TARGET_S / per_image) : cap;
            chunk = 2 * nb < fit ? 2 * nb : fit;
            chunk = chunk < 1 ? 1 : chunk > cap ? cap : chunk;
            continue;
        }
        at_explain_options ex = a.ex;
        ex.classes = classes;
        batch_share share = {prog, nb};
        if (is_perturbation(ex.method) && !a.quiet)
            a.perturb.o.on_progress = on_batch_progress, a.perturb.o.progress_ctx = &share;
        if (at_explain(be, &ex, inputs, nb, results)) {
            cli_error();
            rc = EXIT_BAD_INPUT;
            stop = 1;
        }
        double ms = 1e3 * (at_now_s() - t0) / nb;
        int written = 0;
        for (int j = 0; j < nb; j++) {
            if (!stop) {
                const char *path = a.paths.paths[loaded[j].index];
                char *npy = NULL, *png = NULL, *line = NULL;
                if (cli_write_map(a.out_dir, stems[loaded[j].index], name, NULL, results[j].map, m->in_w, m->in_h,
                                  loaded[j].rgb.rgb, a.no_overlay, &npy, &png) ||
                    !(line = results_line(&a, m, be, tag, settings, path, layer_name, &results[j], npy, png, ms, nb)) ||
                    at_results_append(res, line) || at_results_add_key(res, path, name, layer_name, cls_opt)) {
                    cli_error(); /* disk full, permissions: nothing later can succeed */
                    rc = EXIT_BAD_INPUT;
                    stop = 1;
                } else {
                    written++;
                }
                free(npy), free(png), free(line);
            }
            at_image_free(&loaded[j].rgb);
        }
        a.perturb.o.on_progress = NULL;
        if (written && is_perturbation(a.ex.method)) at_progress_batch(prog, written, 0);
        else if (written) at_progress_tick(prog, written, 0);
    }
    at_progress_finish(prog);
    if (failed && !a.quiet) fprintf(stderr, "attrib: explain: %d of %d images could not be read\n", failed, a.paths.n);
    if (a.overwrite && existing) {
        long merged = 0;
        if (at_results_compact(res, &merged)) {
            cli_error();
            rc = EXIT_BAD_INPUT;
        } else if (!a.quiet) {
            fprintf(stderr, "attrib: explain: replaced %ld earlier results lines in %s\n", merged,
                    at_results_path(res));
        }
    }
    if (a.is_path && !a.quiet) path_summary_print(&(path_run){.method = a.pm, .p = &a.path, .m = m, .summary = &summary},
                                                  stdout);
out_buffers:
    if (have_ann) at_annotations_free(&ann);
    free(inputs), free(maps), free(loaded), free(results), free(classes), free(indices), free(rgbs);
out:
    if (stems)
        for (int i = 0; i < a.paths.n; i++) free(stems[i]);
    free(stems);
    path_reuse_free(&reuse);
    perturb_args_free(&a.perturb);
    at_lcam_free(lcam);
    at_results_close(res);
    at_backend_destroy(be);
    at_model_free(m);
    cli_paths_free(&a.paths);
    return rc;
}
