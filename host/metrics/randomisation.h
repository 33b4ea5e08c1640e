/* The model-parameter-randomisation sanity check (docs/methods.md#model-parameter-randomisation;
 * Adebayo et al. 2018, "Sanity checks for saliency maps", §3; Quantus's MPRT):
 * re-initialise the network's layers, recompute the maps, and measure how
 * much of the original map survives. A map that barely changes when the
 * weights it explains are destroyed does not explain the weights. */
#ifndef ATTRIB_METRICS_RANDOMISATION_H
#define ATTRIB_METRICS_RANDOMISATION_H

#include <stdint.h>

#include "exec/backend.h"

/* The layers MPRT re-initialises: every conv and linear node (BN is folded
 * into its conv), the output first, as Quantus's top-down order. Writes at
 * most cap node indices and returns how many there are. */
int at_mprt_layers(const at_model *m, int *layers, int cap);

/* Re-initialises node li's weight and bias in place as PyTorch's
 * reset_parameters does for Conv2d and Linear: U(-b, b), b = 1/sqrt(fan_in)
 * (fan_in = in_c * k * k, or in_c), drawn by at_prng_fill from the streams
 * "<name>.weight" and "<name>.bias" with seed (tools/prng.py is the twin).
 * AT_ERR for a node without weights. */
int at_mprt_reinit(at_model *m, int li, uint64_t seed);

/* Makes the maps of n images ([n][C][H][W] inputs, class classes[i]) with
 * the backend's model into maps [n][H][W]; ctx is the caller's. */
typedef int (*at_map_maker)(at_backend *be, const float *inputs, int n, const int *classes, float *maps, void *ctx);

typedef struct {
    const at_backend_options *backend; /* the backend each randomised model runs on */
    uint64_t seed;
    int cascading;   /* layers[0..l] re-initialised together, l = 0 .. n_layers-1 */
    int independent; /* layers[l] alone, the rest original */
    /* called after each model's maps (the original's when computed, then
     * each randomised model's) with the share of them done; may be NULL */
    void (*progress)(void *ctx, double fraction);
    void *progress_ctx;
} at_mprt_options;

/* The check itself. classes: each image's class, fixed (the original
 * model's, never -1: a randomised model would choose its own). original [n][H][W]: the maps of the unmodified model
 * (NULL: made here with make). For each order asked for and each layer l,
 * rho[l * n + i] = at_spearman of |map|/max of image i's map after the
 * re-initialisation with its original map, NaN where either map is all zero
 * (excluded; the caller counts them). m is modified while this runs and
 * restored before it returns (also on error). Backends are created per
 * randomised model: n_layers (+ n_layers) backend creations. */
int at_mprt(at_model *m, const at_mprt_options *o, at_map_maker make, void *ctx, const float *inputs, int n,
            const int *classes, const float *original, const int *layers, int n_layers, double *rho_cascading,
            double *rho_independent);

#endif
