/* attrib: the public C API of libattrib.a.
 *
 * The pipeline is load -> preprocess -> backend (forward / gated / backward)
 * -> method -> metric -> output. Embedding programs (and the planned Python
 * bindings) use these headers; everything returns AT_OK (0) or AT_ERR (-1)
 * and at_last_error() gives the one-line reason "subject: what is wrong".
 *
 * Minimal use:
 *
 *   at_model *m;  at_backend *be;
 *   at_backend_options opt = {.name = "auto"};
 *   if (at_model_load("weights/vgg16_mini.safetensors", &m) ||
 *       at_backend_create(m, &opt, &be)) { fprintf(stderr, "%s\n", at_last_error()); ... }
 *   float *x = malloc(sizeof(float) * m->in_c * m->in_h * m->in_w);
 *   float *probs = malloc(sizeof(float) * m->n_classes);
 *   at_load_input(m, "cat.png", x, NULL);          // decode + torchvision preprocessing
 *   at_predict(be, x, 1, NULL, probs);              // softmax probabilities
 *   at_ranked top[5]; at_topk(probs, NULL, m->n_classes, 5, top);
 *   printf("%s %.3f\n", m->labels[top[0].cls].name, top[0].prob);
 *   at_backend_destroy(be); at_model_free(m);
 *
 * Gated forwards, masked batches and backward passes to activations, gates
 * or the input are the at_backend calls of backend.h (see docs/usage.md).
 * Link: -lattrib -lpng -ljpeg -lz -lm -fopenmp (+ CUDA libraries when built
 * with nvcc: -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++).
 */
#ifndef ATTRIB_H
#define ATTRIB_H

#ifdef __cplusplus
extern "C" {
#endif

#include "exec/backend.h"      /* at_backend: batched forward / gated / backward */
#include "core/error.h"        /* AT_OK, AT_ERR, at_last_error() */
#include "io/image.h"        /* at_image_load: PNG / JPEG -> RGB8 */
#include "methods/maps.h"         /* bilinear upsampling, min-max normalisation */
#include "model/model.h"        /* at_model_load, layers, labels, preprocessing */
#include "io/npy.h"          /* .npy read / write */
#include "preprocess/pipeline.h"     /* at_load_input, at_predict, at_topk */
#include "preprocess/preprocess.h"   /* torchvision-exact resize / crop / normalise, boxes */
#include "model/random_model.h" /* deterministic random VGG weights (tests, benchmarks) */
#include "version.h"      /* ATTRIB_VERSION */

#ifdef __cplusplus
}
#endif

#endif
