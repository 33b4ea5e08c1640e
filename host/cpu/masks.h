#ifndef ATTRIB_CPU_MASKS_H
#define ATTRIB_CPU_MASKS_H

#include "exec/ops.h"

/* The network inputs of a batch (host/cpu/masks.c); host pointers. */
int at_make_inputs(const at_inputs_call *a);

#endif
