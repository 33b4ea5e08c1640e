/* The files `explain` and `eval` write (docs/usage.md#explain): names,
 * results lines, atomic writes; one include for the writers' callers. */
#ifndef ATTRIB_OUTPUT_H
#define ATTRIB_OUTPUT_H

#include "io/json_write.h"
#include "output/atomic.h"
#include "output/names.h"
#include "output/results.h"

#endif
