#ifndef ATTRIB_CLI_BENCH_METHODS_H
#define ATTRIB_CLI_BENCH_METHODS_H

#include "exec/backend.h"
#include "methods/perturb.h"

/* Times one attribution method on `images` random inputs (iterations: CDRP
 * steps, -1 = the preset's) and prints one line (or JSON object). */
/* cic_precision: NULL, or Score-CDRP's CIC pass at this precision. */
/* perturb: RISE / occlusion / meaningful perturbation settings (NULL: defaults). */
int bench_method(at_backend *be, const char *net, const char *method, int images, int iterations,
                 const at_precision *cic_precision, const at_perturb_options *perturb, int json);

#endif
