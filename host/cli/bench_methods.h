#ifndef ATTRIB_CLI_BENCH_METHODS_H
#define ATTRIB_CLI_BENCH_METHODS_H

#include "backend.h"

/* Times one attribution method on `images` random inputs (iterations: CDRP
 * steps, -1 = the preset's) and prints one line (or JSON object). */
int bench_method(at_backend *be, const char *net, const char *method, int images, int iterations, int json);

#endif
