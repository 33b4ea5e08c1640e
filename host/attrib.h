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
 * Maps (at_explain: every method of docs/methods.md), routing paths
 * (at_cdrp, at_path_scorecam, at_pathway_gradient), the metrics that run the
 * model (at_drop_terms, at_deletion_auc, at_box_term) and their arithmetic
 * (at_average_drop, at_bootstrap_ci, ...) and the paper's reproduction
 * (at_reproduce_run: its explain / eval steps run the attrib program) are all
 * here: the CLI is a thin layer over them. docs/library.md has a complete
 * program using this header only (built and run by the tests). The library prints nothing; errors are
 * at_last_error()'s one line, progress of long optimisations comes through
 * at_cdrp_options.on_progress and at_reproduce_options.on_progress, and runs
 * over many images (at_explain_run, at_eval_run, at_mprt_run: what `attrib
 * explain` and `attrib eval` do) report progress, failed images and notices
 * through at_run_callbacks.
 * Link: -lattrib -lpng -ljpeg -lz -lm -fopenmp (+ CUDA libraries when built
 * with nvcc: -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++).
 */
#ifndef ATTRIB_H
#define ATTRIB_H

#ifdef __cplusplus
extern "C" {
#endif

#include "core/error.h"            /* AT_OK, AT_ERR, at_last_error() */
#include "io/annotations.h"        /* boxes: images.csv, ILSVRC / VOC XML */
#include "io/image.h"              /* at_image_load: PNG / JPEG -> RGB8 */
#include "io/npy.h"                /* .npy read / write */
#include "io/paths.h"              /* image path lists: list files, folders */
#include "model/model.h"           /* at_model_load, layers, labels, preprocessing */
#include "model/random_model.h"    /* deterministic random weights (tests, benchmarks) */
#include "preprocess/pipeline.h"   /* at_load_input, at_predict, at_topk */
#include "preprocess/preprocess.h" /* torchvision-exact resize / crop / normalise */
#include "exec/backend.h"          /* at_backend: batched forward / gated / backward */
#include "methods/cdrp.h"          /* CDRP / Score-CDRP routing paths */
#include "methods/explain.h"       /* at_explain: one call for every map method */
#include "methods/lcam.h"          /* L-CAM's trained module (at_lcam_load) */
#include "methods/maps.h"          /* upsampling, min-max, softmax, argmax */
#include "methods/paths.h"         /* path Score-CAM, pathway gradients */
#include "metrics/gate_stats.h"    /* per-layer statistics of path gates */
#include "metrics/metrics.h"       /* pointing games, AD / IC, AUC, bootstrap intervals */
#include "metrics/scoring.h"       /* metrics that run the model: AD / IC terms, deletion / insertion */
#include "metrics/randomisation.h" /* the model-parameter-randomisation sanity check (MPRT) */
#include "reproduce/reproduce.h"   /* the paper's experiments from a JSON config, as a report */
#include "output/output.h"         /* output names, results lines, atomic writes */
#include "run/run.h"               /* runs over many images: progress and error callbacks */
#include "run/explain.h"           /* at_explain_run: maps of many images into a folder, resumable */
#include "run/eval.h"              /* at_eval_run, at_mprt_run: the metrics over an explain run's outputs */
#include "version.h"               /* ATTRIB_VERSION */

#ifdef __cplusplus
}
#endif

#endif
