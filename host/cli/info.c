/* ./attrib info: what a weights file describes. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "metrics/gate_stats.h"
#include "io/npy.h"

/* The node's kind, with a conv's or pool's window, stride and padding. */
static const char *kind_name(const at_layer *l, char *buf, size_t cap) {
    switch (l->kind) {
    case AT_L_CONV:
    case AT_L_MAXPOOL:
        snprintf(buf, cap, "%s%dx%d", l->kind == AT_L_CONV ? "conv" : "maxpool", l->kernel, l->kernel);
        if (l->stride != 1 || l->pad != (l->kind == AT_L_CONV ? l->kernel / 2 : 0))
            snprintf(buf + strlen(buf), cap - strlen(buf), "/%d pad %d", l->stride, l->pad);
        return buf;
    case AT_L_BATCHNORM: return "batchnorm (folded)";
    case AT_L_RELU: return "relu";
    case AT_L_ADAPTIVE_AVGPOOL: return "adaptive-avgpool";
    case AT_L_LINEAR: return "linear";
    case AT_L_DROPOUT: return "dropout (identity)";
    case AT_L_ADD: return "add";
    case AT_L_FLATTEN: return "flatten";
    case AT_L_AVGPOOL: return "avgpool";
    case AT_L_SOFTMAX: return "softmax";
    }
    return "?";
}

/* The gate statistics of the paths in files (explain's gates files). */
static int gates_summary(const at_model *m, char **files, int n) {
    gate_summary s = {0};
    for (int i = 0; i < n; i++) {
        float *g = NULL;
        int ndim;
        int64_t shape[8];
        if (at_npy_read_f32(files[i], &g, &ndim, shape)) return AT_ERR;
        if (ndim != 1 || shape[0] != m->n_gates) {
            free(g);
            return at_fail(files[i], "gates file has %lld values in %d dimensions, %s has %d gates (1-D)",
                           (long long)(ndim ? shape[0] : 1), ndim, m->name, m->n_gates);
        }
        gate_summary_add(&s, m, g);
        free(g);
    }
    cli_print_gate_summary(m, &s, n == 1 ? files[0] : "the files given");
    return AT_OK;
}

int cmd_info(int argc, char **argv) {
    const char *model = NULL;
    int layers = 0, gates_from = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: attrib info [--model FILE] [--layers] [--gates FILE...]\n"
                   "Prints the model's architecture, preprocessing, classes and digest.\n"
                   "  --layers   list every module with its output shape and gate range\n"
                   "  --gates FILE...  per conv layer, the smallest and mean gate and the share below\n"
                   "             0.5 of these paths (explain's <stem>.<method>.gates.npy files)\n");
            return 0;
        } else if (!strcmp(argv[i], "--layers")) layers = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--gates")) {
            if (i + 1 >= argc) return cli_usage_error("--gates", "needs at least one gates file");
            gates_from = i + 1;
            break; /* the files run to the end */
        } else return cli_usage_error(argv[i], "unknown option (see attrib info --help)");
    }
    at_model *m;
    if (at_model_load(model ? model : cli_default_model(), &m)) {
        cli_error();
        return EXIT_BAD_INPUT;
    }
    if (gates_from) {
        int rc = gates_summary(m, argv + gates_from, argc - gates_from);
        if (rc) cli_error();
        at_model_free(m);
        return rc ? EXIT_BAD_INPUT : 0;
    }
    printf("model       %s (%s)\n", m->path, m->name);
    printf("arch        %s, %d convs, %d gates, %d classes\n", m->arch, m->n_convs, m->n_gates, m->n_classes);
    printf("input       %dx%dx%d\n", m->in_c, m->in_h, m->in_w);
    printf("preprocess  resize %d, crop %d, %s, mean (%.4g, %.4g, %.4g), std (%.4g, %.4g, %.4g)\n", m->pre.resize,
           m->pre.crop, m->pre.interp == AT_INTERP_BILINEAR ? "bilinear" : m->pre.interp == AT_INTERP_BICUBIC ? "bicubic" : "nearest",
           m->pre.mean[0], m->pre.mean[1], m->pre.mean[2], m->pre.std[0], m->pre.std[1], m->pre.std[2]);
    printf("size        %.2f M parameters, %.3f GMAC per image\n", m->n_params / 1e6, m->macs_per_image / 1e9);
    printf("sha256      %s\n", m->sha256);
    printf("classes     %s %s ... %s %s\n", m->labels[0].id, m->labels[0].name, m->labels[m->n_classes - 1].id,
           m->labels[m->n_classes - 1].name);
    int width = 14;
    for (int i = 0; layers && i < m->n_layers; i++)
        if ((int)strlen(m->layers[i].name) > width) width = (int)strlen(m->layers[i].name);
    for (int i = 0; layers && i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        char kind[48];
        printf("  %-*s %-20s -> %4d x %3d x %3d", width, l->name, kind_name(l, kind, sizeof kind), l->out_c, l->out_h,
               l->out_w);
        if (l->gate_offset >= 0) printf("  conv %d, gates %d..%d", l->conv_index, l->gate_offset, l->gate_offset + l->out_c - 1);
        if (l->input2 >= 0) printf("  = %s + %s", m->layers[l->input].name, m->layers[l->input2].name);
        else if (l->input != i - 1) printf("  <- %s", l->input >= 0 ? m->layers[l->input].name : "input");
        if (i == m->cam_layer) printf("  (CAM default)");
        printf("\n");
    }
    at_model_free(m);
    return 0;
}
