#include "exec/backend.h"

#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "exec/ops.h"

int at_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out) {
    *out = NULL;
    const char *name = opt && opt->name ? opt->name : "auto";
    if (!strcmp(name, "cpu")) return at_cpu_backend_create(m, opt, out);
    if (!strcmp(name, "cuda")) return at_cuda_backend_create(m, opt, out);
    if (!strcmp(name, "auto")) {
        char why[256];
        if (at_cuda_available(why, sizeof why)) return at_cuda_backend_create(m, opt, out);
        at_precision p = opt ? opt->precision : AT_PRECISION_FP32;
        if (at_cpu_backend_create(m, opt, out)) return AT_ERR;
        snprintf((*out)->notice, sizeof (*out)->notice, "using the CPU backend (%s)%s%s%s", why,
                 p != AT_PRECISION_FP32 ? "; " : "", p != AT_PRECISION_FP32 ? at_precision_name(p) : "",
                 p != AT_PRECISION_FP32 ? " is emulated" : "");
        return AT_OK;
    }
    return at_fail("backend", "'%s' is not cpu, cuda or auto", name);
}

void at_backend_destroy(at_backend *be) { at_exec_destroy(be); }

#ifndef ATTRIB_HAVE_CUDA
int at_cuda_available(char *why, size_t cap) {
    snprintf(why, cap, "this build has no CUDA backend: nvcc was not found at build time");
    return 0;
}

int at_cuda_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out) {
    *out = NULL;
    return at_fail("backend", "cuda: this build has no CUDA backend (nvcc was not found at build time)");
}

int at_cuda_ops_open(const at_ops **ops, void **ctx) {
    *ops = NULL, *ctx = NULL;
    return at_fail("cuda", "this build has no CUDA backend (nvcc was not found at build time)");
}
#endif
