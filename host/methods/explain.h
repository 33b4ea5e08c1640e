/* Attribution methods, written once against the backend interface (docs/methods.md).
 * Each explains a batch of images (normalised network inputs) and returns one
 * final map per image: ReLU-ed, upsampled to the input size, min-max
 * normalised to [0,1] (docs/methods.md#notation-and-common-steps), plus per-channel weights where the
 * method has them. */
#ifndef ATTRIB_METHODS_EXPLAIN_H
#define ATTRIB_METHODS_EXPLAIN_H

#include "exec/backend.h"
#include "methods/perturb.h"

typedef enum {
    AT_METHOD_SCORECAM,
    AT_METHOD_GRADCAM,
    AT_METHOD_GRADCAMPP,
    AT_METHOD_SALIENCY,     /* vanilla gradient: max_c |dy/dx| */
    AT_METHOD_CONTRASTIVE,  /* Pope et al. 2019: || ReLU(dy/dx) ||_2 over colour channels */
    AT_METHOD_GUIDED_BACKPROP, /* max_c |g_x| under the guided ReLU rule (docs/methods.md) */
    AT_METHOD_DECONVNET,    /* max_c |g_x| under the deconvnet ReLU rule */
    AT_METHOD_GUIDED_GRADCAM,       /* max_c |guided g_x * Up(Grad-CAM)| (docs/methods.md#guided-grad-cam) */
    AT_METHOD_INPUT_X_GRADIENT,     /* ReLU(sum_c x * dy/dx) (docs/methods.md#input-x-gradient) */
    AT_METHOD_INTEGRATED_GRADIENTS, /* ReLU(sum_c (x - x') * sum_k w_k dy/dx) (docs/methods.md#integrated-gradients) */
    AT_METHOD_SMOOTHGRAD,           /* max_c mean_k |dy/dx| at noisy x (docs/methods.md#smoothgrad) */
    AT_METHOD_EB,           /* excitation backprop, MWP at a read-out layer (docs/methods.md#excitation-backprop) */
    AT_METHOD_CEB,          /* contrastive excitation backprop */
    AT_METHOD_LRP,          /* layer-wise relevance propagation (docs/methods.md#lrp) */
    AT_METHOD_CLRP,         /* contrastive LRP: the other classes start at -y/(N-1) */
    AT_METHOD_FAFRP,        /* forward-propagation attribution (docs/methods.md#fafrp) */
    AT_METHOD_LAYERCAM,     /* the CAM family, docs/methods.md#layercam .. #eigencam */
    AT_METHOD_XGRADCAM,
    AT_METHOD_HIRESCAM,
    AT_METHOD_ABLATIONCAM,
    AT_METHOD_EIGENCAM,
    AT_METHOD_RISE,         /* docs/methods.md#rise */
    AT_METHOD_OCCLUSION,    /* docs/methods.md#occlusion */
    AT_METHOD_MEANINGFUL,   /* docs/methods.md#meaningful-perturbation */
    AT_METHOD_LCAM,         /* a trained 1x1 conv's class map in one forward (docs/methods.md#l-cam) */
    AT_METHOD_COUNT
} at_method;

/* LRP's rules (docs/methods.md#lrp): two composites and three single rules. */
typedef enum {
    AT_LRP_EPSILON_GAMMA_BOX = 0, /* z^B first conv, gamma other convs, epsilon linear (zennit EpsilonGammaBox) */
    AT_LRP_EPSILON_ALPHA2_BETA1,  /* alpha-beta convs, epsilon linear (zennit EpsilonAlpha2Beta1) */
    AT_LRP_EPSILON,
    AT_LRP_GAMMA,
    AT_LRP_ALPHA_BETA,
    AT_LRP_RULE_COUNT
} at_lrp_rule;

/* Whose conventions a CAM method follows (docs/methods.md#conventions-where-papers-and-peers-disagree). */
typedef enum { AT_VARIANT_AUTHORS, AT_VARIANT_PGC, AT_VARIANT_TORCHCAM } at_variant;

/* Integrated gradients: the quadrature rule on [0,1] and the baseline x'. */
typedef enum {
    AT_IG_GAUSS_LEGENDRE = 0, /* captum's default */
    AT_IG_RIEMANN_LEFT,
    AT_IG_RIEMANN_RIGHT,
    AT_IG_RIEMANN_MIDDLE,
    AT_IG_RIEMANN_TRAPEZOID,
    AT_IG_RULE_COUNT
} at_ig_rule;
typedef enum { AT_BASELINE_BLACK = 0, AT_BASELINE_ZERO = 1 } at_baseline; /* black in [0,1]; 0 normalised */

/* A hidden unit to explain instead of a class logit (docs/methods.md#explaining-a-unit):
 * element (channel, y, x) of layer's output, or with x = y = -1 the sum of
 * the channel's map. */
typedef struct {
    int layer, channel, x, y;
} at_unit;

#define AT_IG_STEPS_DEFAULT 50
#define AT_SG_SAMPLES_DEFAULT 25
#define AT_SG_SIGMA_DEFAULT 0.15f

typedef struct {
    at_method method;
    at_variant variant;
    int layer;             /* layer index (at_model_find_layer); CAM methods only */
    int n_layers;          /* LayerCAM: > 1 fuses these layers (docs/methods.md#layercam); */
    const int *layers;     /* layers[0] should equal layer */
    const int *classes;    /* [n] class to explain per image, -1 = predicted; NULL = all predicted */
    const float *gates;    /* optional [n][n_gates] gated network (path methods), NULL = original */
    const at_unit *unit;   /* explain this unit instead of the class logit (at_method_takes_unit); NULL: the logit */
    /* input-gradient methods (docs/methods.md#integrated-gradients, #smoothgrad); zero = the default */
    int ig_steps;          /* 0: AT_IG_STEPS_DEFAULT */
    at_ig_rule ig_rule;
    at_baseline baseline;
    int smooth;            /* noisy samples averaged per image (--smooth N); 0: none, smoothgrad AT_SG_SAMPLES_DEFAULT */
    float sg_sigma;        /* noise sd as a share of the image's value range; 0: AT_SG_SIGMA_DEFAULT */
    int sg_square;         /* average the squared attributions (captum's smoothgrad_sq) */
    unsigned sg_seed;      /* noise stream (at_prng_normal "smoothgrad") */
    /* relevance methods (host/methods/relevance.c); zero = the default */
    const char *eb_layer;       /* eb, c-eb read-out module; NULL: features.23 (VGG), layer3 (ResNet) */
    const char *contrast_layer; /* c-eb; NULL: classifier.4 (relu7, VGG), avgpool (ResNet) */
    at_lrp_rule lrp_rule;
    float lrp_alpha;            /* alpha-beta's alpha (beta = alpha - 1); 0: 2 */
    float lrp_gamma;            /* 0: 0.25 */
    const at_perturb_options *perturb; /* RISE, occlusion, meaningful perturbation; NULL = defaults */
    const struct at_lcam *lcam;        /* L-CAM's module (methods/lcam.h, at_lcam_load); it fixes the layer */
} at_explain_options;

typedef struct {
    float *map;            /* caller-allocated [in_h*in_w]: the final map in [0,1] */
    float *weights;        /* optional caller-allocated [C of the layer]: channel weights */
    int cls;               /* class explained */
    int predicted;         /* argmax of the (gated) network on the image */
    float prob;            /* softmax probability of cls on the unmasked image */
    float logit;
    int flat_map;          /* the map was constant before normalisation (written as zeros) */
    int flat_channels;     /* Score-CAM: channels whose mask was constant */
    long forwards;         /* forward passes spent (items), for the results line */
    long backwards;        /* backward passes spent (items; a pass to a hidden layer counts as one) */
    float value;           /* the explained quantity on the image: the class logit, or the unit's value */
    float baseline_value;  /* integrated gradients: the same at the baseline */
    double attribution_sum; /* integrated gradients: sum of the signed attribution, ~ value - baseline_value */
} at_explain_result;

int at_method_parse(const char *name, at_method *out);
const char *at_method_name(at_method m);
int at_variant_parse(const char *name, at_variant *out);
const char *at_variant_name(at_variant v);
/* "scorecam, gradcam, ...": every method name, for messages. */
const char *at_method_names(void);
/* 1 when the method reads a layer (CAM family). */
int at_method_uses_layer(at_method m);
/* 1 when the method has per-channel weights (at_explain_result.weights). */
int at_method_has_channel_weights(at_method m);
/* 1 when the method offers the variant (authors, the default, always). */
int at_method_has_variant(at_method m, at_variant v);

/* AT_OK when the method can use layer (CAMs need a spatial map); else the
 * message, naming --layer. */
int at_explain_check_layer(const at_model *m, at_method method, int layer);

/* 1 when the method explains a --unit / can be averaged over noisy copies (--smooth). */
int at_method_takes_unit(at_method m);
int at_method_smoothable(at_method m);
int at_ig_rule_parse(const char *name, at_ig_rule *out);
const char *at_ig_rule_name(at_ig_rule r);
/* Quadrature nodes alpha[k] in [0,1] and weights w[k] (sum 1) of rule with n
 * nodes, as captum's approximation_methods (docs/methods.md#integrated-gradients). */
int at_ig_nodes(at_ig_rule rule, int n, double *alpha, double *w);

/* "LAYER,c" or "LAYER,c,x,y" (LAYER as --layer); errors name --unit. */
int at_unit_parse(const at_model *m, const char *spec, at_unit *out);
/* "features.29,5" or "features.29,5,3,4": the spec in canonical form. */
void at_unit_format(const at_model *m, const at_unit *u, char *buf, size_t cap);
int at_unit_check(const at_model *m, const at_unit *u);
/* The unit's value from one image's output of its layer. */
float at_unit_value(const at_model *m, const at_unit *u, const float *layer_out);
/* Where a backward pass of the explained quantity starts, for nb items:
 * with a unit, dfrom at its layer (1 at the unit or over its channel);
 * otherwise dlogits one-hot at cls[b]. buf holds nb * at_explain_start_floats. */
long at_explain_start_floats(const at_model *m, const at_explain_options *opt);
void at_explain_start(const at_model *m, const at_explain_options *opt, const int *cls, int nb, float *buf,
                      at_backward_args *ba);

/* AT_OK when --unit, --smooth and the integrated-gradients and SmoothGrad
 * settings suit the method; else the message, naming the option. */
int at_explain_check_gradient_options(const at_model *m, const at_explain_options *opt);

/* Explains n images (inputs [n][C][H][W]). */
int at_explain(at_backend *be, const at_explain_options *opt, const float *inputs, int n,
               at_explain_result *results);

/* Shared by the methods (host/methods/): */
/* From the unmasked logits [n][K]: fills cls (given or predicted), predicted, prob, logit. */
int at_explain_classify_logits(const at_model *m, const at_explain_options *opt, const float *logits, int n,
                               at_explain_result *results);
/* The forward of images start..start+fa->n-1 (fa's input, logits and
 * captures set by the caller; their gates taken from opt), then their
 * classes into r[start..]: the first step of every batched method. */
int at_explain_forward_batch(at_backend *be, const at_explain_options *opt, at_forward_args *fa, int start,
                             at_explain_result *r);
/* dl [n][K] = 1 at each result's class, 0 elsewhere. */
void at_explain_one_hot(const at_explain_result *r, int n, int K, float *dl);
/* cam [h][w] at layer resolution -> ReLU, bilinear upsample (align_corners=False) to the
 * input, min-max: the same final stage for every variant (the peers differ from it by
 * < 3e-7, tools/check_peers.py). */
void at_finish_map(const at_model *m, float *cam, int h, int w, at_explain_result *r);

/* The forwards RISE and occlusion share (host/methods/perturb.c): for each
 * chunk of `total` masks (fill writes masks first..first+count-1 [count][H][W]
 * into buf, or returns given ones), one masked forward per image, and the
 * chunk's scores (softmax probability, or logit, of r[b].cls) handed to
 * accumulate. Counts r[b].forwards and reports progress. */
typedef const float *(*at_mask_fill)(void *ctx, long first, int count, float *buf);
typedef void (*at_mask_accumulate)(void *ctx, int b, const float *masks, int count, const float *scores);
int at_masked_sweep(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r,
                    long total, at_mask_space space, at_mask_fill fill, at_mask_accumulate accumulate, void *ctx);
/* opt->perturb, or the defaults in *store. */
const at_perturb_options *at_perturb_of(const at_explain_options *opt, at_perturb_options *store);

int at_scorecam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_gradcam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
/* The input-gradient family: saliency, contrastive, guided backprop,
 * deconvnet, guided Grad-CAM, input x gradient, integrated gradients,
 * SmoothGrad and --smooth over any of them (host/methods/gradients.c). */
int at_gradients(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
/* eb, c-eb, lrp, clrp, fafrp (host/methods/relevance.h has the raw signals). */
int at_relevance(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_ablationcam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_eigencam(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_rise(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_occlusion(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_lcam_explain(at_backend *be, const at_explain_options *opt, const float *inputs, int n, at_explain_result *r);
int at_meaningful_perturbation(at_backend *be, const at_explain_options *opt, const float *inputs, int n,
                               at_explain_result *r);

#endif
