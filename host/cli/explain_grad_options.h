/* explain's options of the input-gradient methods: --unit, integrated
 * gradients' rule and baseline, SmoothGrad's noise and --smooth
 * (docs/methods.md#integrated-gradients, #smoothgrad, #explaining-a-unit). */
#ifndef ATTRIB_CLI_EXPLAIN_GRAD_OPTIONS_H
#define ATTRIB_CLI_EXPLAIN_GRAD_OPTIONS_H

#include "methods/explain.h"
#include "output/output.h"

extern const char *const GRAD_HELP;

typedef struct {
    const char *unit_spec; /* resolved against the model by grad_args_finish */
    at_unit unit;
    int sg_samples_set, seed_set;
} grad_args;

/* 1 when opt (with value v) is one of these options, 0 when not, AT_ERR on a bad value. */
int grad_args_parse(grad_args *g, at_explain_options *ex, const char *opt, const char *v);
int grad_args_flag(grad_args *g, at_explain_options *ex, const char *opt);
/* The same over argv[*i] (and its value, consumed): 1, 0 or AT_ERR. */
int grad_args_argv(grad_args *g, at_explain_options *ex, int argc, char **argv, int *i);
/* After the model is open: the unit, and the options that suit the method
 * (one message naming the option otherwise). */
int grad_args_finish(grad_args *g, const at_model *m, at_explain_options *ex, int routing_path);
/* Settings that change a map and are not the defaults, as ".part.part" (appended to buf). */
void grad_settings(const at_model *m, const at_explain_options *ex, char *buf, size_t cap);
/* The results line's fields of these settings and the explained quantity. */
void grad_results_fields(at_jsonw *w, const at_model *m, const at_explain_options *ex, const at_explain_result *r);

#endif
