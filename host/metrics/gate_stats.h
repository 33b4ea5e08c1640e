/* Per-layer statistics of routing-path gates: smallest, mean and share below
 * 0.5, for one path (results lines) and over many (the summary table of
 * explain and info, printed by the CLI). A path whose gates all stay near 1
 * prunes almost at random (docs/methods.md#routing-path-presets-and-sparsity). */
#ifndef ATTRIB_METRICS_GATE_STATS_H
#define ATTRIB_METRICS_GATE_STATS_H

#include "model/model.h"

#define GATE_STATS_MAX_LAYERS 64

/* One path's statistics per conv layer; returns the layers filled
 * (min(n_convs, GATE_STATS_MAX_LAYERS)). */
int gate_layer_stats(const at_model *m, const float *gates, double *min, double *mean, double *below_half);

typedef struct {
    int paths;
    double min[GATE_STATS_MAX_LAYERS];  /* smallest over the paths */
    double mean[GATE_STATS_MAX_LAYERS]; /* sums over the paths of the layer means ... */
    double below[GATE_STATS_MAX_LAYERS]; /* ... and of the shares below 0.5 */
} gate_summary;

void gate_summary_add(gate_summary *s, const at_model *m, const float *gates);

#endif
