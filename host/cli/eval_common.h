/* ./attrib eval internals: options, metrics and the per-image loop
 * (host/cli/eval.c parses, host/cli/eval_run.c runs). */
#ifndef ATTRIB_CLI_EVAL_COMMON_H
#define ATTRIB_CLI_EVAL_COMMON_H

#include "cli.h"

#define EVAL_MAX_PROPS 32

typedef enum { EVAL_NONE, EVAL_CONFIDENCE, EVAL_AD_IC, EVAL_ENERGY_PG, EVAL_POINTING, EVAL_DELETION, EVAL_INSERTION } eval_metric;

typedef struct {
    cli_common common;
    eval_metric metric;
    const char *maps, *method, *annotations;
    int scorer_path, logit, topp, space_normalized, ad_absolute;
    double props[EVAL_MAX_PROPS];
    int n_props;
    double tolerance;
    int steps;
    int json, resume, overwrite, quiet;
} eval_args;

void eval_args_init(eval_args *a);
int eval_metric_parse(const char *s, eval_metric *out);
const char *eval_metric_name(eval_metric m);
int eval_run(const eval_args *a);

#endif
