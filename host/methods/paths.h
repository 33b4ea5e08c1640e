/* Maps of a critical routing path (docs/methods.md#path-score-cam,
 * docs/methods.md#pathway-gradient): the path's gates come from at_cdrp
 * (methods/cdrp.h) or a gates file; these turn them into maps. */
#ifndef ATTRIB_METHODS_PATHS_H
#define ATTRIB_METHODS_PATHS_H

#include "methods/cdrp.h"
#include "methods/explain.h"

/* How a path is pruned before its pathway gradient (at_prune_gates). */
typedef struct {
    double rate;     /* share of gates set to 0, in [0, 1] */
    int global;      /* rank all gates together instead of per layer */
    int keep_values; /* kept gates keep their values instead of becoming 1 */
} at_prune_options;

/* Path Score-CAM: Score-CAM at the last conv layer of the gated network
 * f(x; gates[b]) for classes[b] (-1: the gated network's prediction).
 * gates [n][n_gates]; r[b].map caller-allocated. */
int at_path_scorecam(at_backend *be, const float *gates, const int *classes, const float *inputs, int n,
                     at_explain_result *r);

/* Pathway gradient: the saliency map of the network pruned to the path
 * (at_prune_gates with *prune), for classes[b]. */
int at_pathway_gradient(at_backend *be, const float *gates, const at_prune_options *prune, const int *classes,
                        const float *inputs, int n, at_explain_result *r);

/* The original network's predicted class of each input (a path read from a
 * file explains that class). */
int at_predicted_classes(at_backend *be, const float *inputs, int n, int *classes);

#endif
