/* Precision names (host/exec/backend.h): shared by the backends and the CLI. */
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"

const char *at_precision_name(at_precision p) {
    switch (p) {
    case AT_PRECISION_TF32: return "tf32";
    case AT_PRECISION_FP16: return "fp16";
    default: return "fp32";
    }
}

int at_precision_parse(const char *s, at_precision *out) {
    if (!strcmp(s, "fp32")) *out = AT_PRECISION_FP32;
    else if (!strcmp(s, "tf32")) *out = AT_PRECISION_TF32;
    else if (!strcmp(s, "fp16")) *out = AT_PRECISION_FP16;
    else return at_fail("precision", "'%s' is not fp32, tf32 or fp16", s);
    return AT_OK;
}
