/* L-CAM's trained module (docs/methods.md#l-cam): a 1x1 conv K -> n_classes
 * with bias on the target layer's output, trained by tools/train_lcam.py for
 * one model file and shipped beside it as <model>.lcam.safetensors. */
#ifndef ATTRIB_METHODS_LCAM_H
#define ATTRIB_METHODS_LCAM_H

#include <stddef.h>

#include "model/model.h"

typedef struct at_lcam {
    char path[1024];
    char layer_name[32];
    int layer;              /* the target layer's index in the model */
    int K, n_classes;       /* the layer's channels, the model's classes */
    float *weight;          /* [n_classes][K] */
    float *bias;            /* [n_classes] */
    char model_sha256[65];  /* of the model file it was trained for */
    int epochs, seed;       /* from its metadata (-1 when absent) */
} at_lcam;

/* <dir>/<stem>.lcam.safetensors for the model <dir>/<stem>.safetensors. */
void at_lcam_default_path(const at_model *m, char *buf, size_t cap);
/* Loads path for model m: weight [n_classes][K][1][1] (or [n_classes][K]) and
 * bias [n_classes], metadata layer and model_sha256. One error line naming
 * the file when it does not fit m: another model's module (both files
 * named), a layer m lacks, other shapes. */
int at_lcam_load(const at_model *m, const char *path, at_lcam **out);
void at_lcam_free(at_lcam *l);

#endif
