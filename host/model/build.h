/* The model builders' shared steps (host/model/model.c for VGG,
 * host/model/resnet.c): parameters fetched by torchvision key with their
 * shapes checked, nodes appended, eval-mode BN folded into a conv. Private
 * to host/model. */
#ifndef ATTRIB_MODEL_BUILD_H
#define ATTRIB_MODEL_BUILD_H

#include "model/model.h"

#define BN_EPS 1e-5f /* torchvision BatchNorm2d default */

/* Fetches key and checks its shape (want: -1 = any extent); the error names
 * the key, what it found and what was expected. */
float *at_mb_get_param(const char *subject, at_param_getter get, void *ctx, const char *key, int want_ndim,
                       const int64_t *want, int64_t shape[8]);
/* A model of `arch` with room for cap nodes and n_gates gate nodes, input
 * in_h x in_w (checked: 32..8192); AT_ERR naming subject. */
int at_mb_new_model(const char *subject, const char *arch, int in_h, int in_w, int cap, int n_gates, at_model **out);
/* Appends a node reading the one before it (the caller rewires others). */
at_layer *at_mb_add_layer(at_model *m, int cap, at_layer_kind kind, const char *name);
void at_mb_set_io(at_layer *l, int c, int h, int w);
/* Folds BN "<prefix>.weight/.bias/.running_mean/.running_var" into conv. */
int at_mb_fold_batchnorm(const char *subject, at_param_getter get, void *ctx, const char *prefix, at_layer *conv);

/* ResNet (host/model/resnet.c): blocks per stage and whether they are
 * Bottlenecks; AT_ERR (no message) for other names. */
int at_resnet_topology(const char *arch, int blocks[4], int *bottleneck);
int at_resnet_build(const char *subject, const char *arch, int in_h, int in_w, at_param_getter get, void *ctx,
                    at_model **out);

/* Every tensor of a torchvision ResNet state dict (num_batches_tracked
 * aside) with its shape, in state-dict order, for a stem width, per-stage
 * planes and class count (random models; tools/prng.py has the twin). */
enum {
    AT_T_CONV,
    AT_T_BN_WEIGHT,
    AT_T_BN_BIAS,
    AT_T_BN_MEAN,
    AT_T_BN_VAR,
    AT_T_BN_LAST_WEIGHT, /* the BN before a block's residual add */
    AT_T_FC_WEIGHT,
    AT_T_FC_BIAS,
};
typedef void (*at_tensor_fn)(void *ctx, const char *key, int ndim, const int64_t *shape, int kind);
int at_resnet_tensors(const char *arch, int stem, const int planes[4], int n_classes, at_tensor_fn fn, void *ctx);

#endif
