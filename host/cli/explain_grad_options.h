/* explain's options of the input-gradient methods: --unit, integrated
 * gradients' rule and baseline, SmoothGrad's noise and --smooth
 * (docs/methods.md#integrated-gradients, #smoothgrad, #explaining-a-unit). */
#ifndef ATTRIB_CLI_EXPLAIN_GRAD_OPTIONS_H
#define ATTRIB_CLI_EXPLAIN_GRAD_OPTIONS_H

#include "methods/explain.h"

extern const char *const GRAD_HELP;

typedef struct {
    const char *unit_spec; /* resolved against the model by the run */
    int sg_samples_set, seed_set;
} grad_args;

/* 1 when opt (with value v) is one of these options, 0 when not, AT_ERR on a bad value. */
int grad_args_parse(grad_args *g, at_explain_options *ex, const char *opt, const char *v);
int grad_args_flag(grad_args *g, at_explain_options *ex, const char *opt);
/* The same over argv[*i] (and its value, consumed): 1, 0 or AT_ERR. */
int grad_args_argv(grad_args *g, at_explain_options *ex, int argc, char **argv, int *i);
/* The options given suit the method (one message naming the option otherwise). */
int grad_args_finish(const grad_args *g, const at_explain_options *ex, int routing_path);

#endif
