/* explain's options of the input-gradient methods: --unit, integrated
 * gradients' rule and baseline, SmoothGrad's noise and --smooth
 * (docs/methods.md#integrated-gradients, #smoothgrad, #explaining-a-unit). */
#ifndef ATTRIB_CLI_EXPLAIN_GRAD_OPTIONS_H
#define ATTRIB_CLI_EXPLAIN_GRAD_OPTIONS_H

#include "cli.h"
#include "methods/explain.h"

extern const char *const GRAD_HELP;

/* The options as given; grad_args_finish copies them into the explain options. */
typedef struct {
    const char *unit_spec; /* resolved against the model by the run */
    int ig_steps;
    at_ig_rule ig_rule;
    int baseline; /* at_baseline */
    int smooth;
    float sg_sigma;
    int sg_square;
    unsigned sg_seed;
    int seed_set;
} grad_args;

/* The options into a grad_args (cli_options_parse). */
extern const cli_option GRAD_OPTIONS[];
/* Into ex, once the method is known; the options given suit it (one message
 * naming the option otherwise). */
int grad_args_finish(const grad_args *g, at_explain_options *ex, int routing_path);

#endif
