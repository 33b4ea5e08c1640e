/* The first steps of every command: load an image and preprocess it as the
 * model's metadata says (docs/models.md), run batched predictions, rank classes. */
#ifndef ATTRIB_PIPELINE_H
#define ATTRIB_PIPELINE_H

#include "exec/backend.h"
#include "io/image.h"
#include "model/model.h"
#include "preprocess/preprocess.h"

/* Decodes path and writes the normalised network input (in_c*in_h*in_w). */
int at_load_input(const at_model *m, const char *path, float *chw, at_geometry *geo);
/* The same, also returning the preprocessed RGB8 image (overlays, masking in
 * [0,1] space); free it with at_image_free. */
int at_load_input_rgb(const at_model *m, const char *path, float *chw, at_image *rgb, at_geometry *geo);

/* Forward of n inputs in backend-sized batches; logits and/or probs [n][K]. */
int at_predict(at_backend *be, const float *inputs, int n, float *logits, float *probs);

typedef struct {
    int cls;
    float prob, logit;
} at_ranked;

/* The k best classes (ties: lower index first). */
void at_topk(const float *probs, const float *logits, int n_classes, int k, at_ranked *out);

#endif
