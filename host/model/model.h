/* Model description: a network is data — a graph of torchvision-style
 * modules in execution order, each naming the node it reads, with their
 * shapes and (converted, BN-folded) float32 parameters — built from a
 * safetensors file's tensor shapes and metadata (docs/models.md). The executor
 * (host/exec) runs it on a backend's ops; methods address nodes by module name. */
#ifndef ATTRIB_MODEL_H
#define ATTRIB_MODEL_H

#include <stdint.h>

#include "preprocess/preprocess.h"

typedef enum {
    AT_L_CONV,              /* 2-D convolution + bias (BN folded in at load) */
    AT_L_BATCHNORM,         /* identity after folding; kept so module names match; holds the conv's
                             * gates where no ReLU follows (ResNet, before the add) */
    AT_L_RELU,              /* after a conv this is where the conv's gates apply */
    AT_L_MAXPOOL,
    AT_L_ADAPTIVE_AVGPOOL,
    AT_L_LINEAR,            /* input is the previous output flattened (C*H*W) */
    AT_L_DROPOUT,           /* identity at inference */
    AT_L_ADD,               /* element-wise sum of input and input2 (residual connections) */
    AT_L_FLATTEN,           /* identity on the data: [C][H][W] read as C*H*W features */
    AT_L_AVGPOOL,           /* k x k average, stride, zero padding counted (PyTorch's default) */
    AT_L_SOFTMAX,           /* over each item's C*H*W features */
} at_layer_kind;

typedef struct {
    at_layer_kind kind;
    char name[32];           /* torchvision module name: "features.29", "classifier.6", "avgpool" */
    int input;               /* the node whose output this one reads; -1: the network input */
    int input2;              /* add: the second operand's node; else -1 */
    int in_c, in_h, in_w;    /* per-image input shape (linear: in_c features, 1x1) */
    int out_c, out_h, out_w; /* per-image output shape */
    int kernel, stride, pad; /* conv, max-pool */
    int conv_index;          /* conv and its gated node: ordinal among convs; else -1 */
    int gate_offset;         /* gated node (ReLU, or BN before an add): its first gate in the gate vector; else -1 */
    float *weight;           /* conv [out_c][in_c][k][k]; linear [out_c][in_c]; owned */
    float *bias;             /* [out_c]; owned */
} at_layer;

typedef struct {
    char id[32];    /* wnid-style id, e.g. "n01440764" or "fm0000003" */
    char name[96];  /* readable name */
} at_label;

typedef struct at_model {
    char path[1024];
    char arch[32];           /* topology, e.g. "vgg16", "vgg16_bn" */
    char name[64];           /* model name from metadata (defaults to arch) */
    char sha256[65];         /* of the weights file, hex */
    int in_c, in_h, in_w;    /* network input (after preprocessing) */
    int n_classes;
    int n_layers;
    at_layer *layers;
    int n_convs;
    int n_gates;             /* sum of conv output channels (4224 for VGG16) */
    int *gate_layer;         /* [n_convs] the node holding each conv's gates: its ReLU, or (ResNet, no
                              * ReLU after the conv) its BN before the residual add */
    int cam_layer;           /* the CAM default ("last-conv"): VGG's last conv ReLU, ResNet's layer4 */
    at_preprocess pre;       /* from metadata */
    at_label *labels;        /* [n_classes] */
    int64_t n_params;
    double macs_per_image;   /* multiply-accumulates of one forward */
} at_model;

/* Loads and validates a model (safetensors + metadata, or a sibling labels
 * file "<stem>.labels.txt" / "labels.txt"). Errors name the file. */
int at_model_load(const char *path, at_model **out);
void at_model_free(at_model *m);

/* Resolves a layer spec: a conv ordinal "0".."n_convs-1" (its gated node's
 * output), a module name "features.N" / "avgpool" / "classifier.N" /
 * "layer4.2.conv3", a container "layer4" (its last child's output), or
 * "last-conv" (the CAM default, cam_layer). Returns the layer index or
 * AT_ERR naming the spec. */
int at_model_find_layer(const at_model *m, const char *spec);

/* Output elements per image of layer i. */
int64_t at_layer_out_size(const at_layer *l);

/* Layer topology of a named VGG: number of convs per block (5 blocks) and
 * whether BN follows each conv. Returns AT_ERR for unknown names. */
int at_vgg_topology(const char *arch, int convs_per_block[5], int *batch_norm);

/* Builds a model from in-memory parameters (tests, tools): weights are looked
 * up by torchvision key through get(key, shape_out, ndim_out) which returns a
 * malloc'ed float array or NULL. Used by the loader itself. */
typedef float *(*at_param_getter)(void *ctx, const char *key, int64_t shape[8], int *ndim);
int at_model_build(const char *subject, const char *arch, int avgpool, int in_h, int in_w,
                   at_param_getter get, void *ctx, at_model **out);

#endif
