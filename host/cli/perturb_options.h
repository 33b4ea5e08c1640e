/* Options of RISE, occlusion and meaningful perturbation for the CLI
 * (host/cli/perturb_options.c). */
#ifndef ATTRIB_CLI_PERTURB_OPTIONS_H
#define ATTRIB_CLI_PERTURB_OPTIONS_H

#include <stddef.h>

#include "cli.h"
#include "methods/explain.h"

typedef struct {
    at_perturb_options o;
    int rise_n_set;
    const char *masks_in, *masks_out; /* --rise-masks, --rise-save-masks */
    float *masks;                     /* read from masks_in */
} perturb_args;

extern const char *const PERTURB_HELP;

void perturb_args_init(perturb_args *p);
/* The options into a perturb_args (cli_options_parse). */
extern const cli_option PERTURB_OPTIONS[];
/* 1 when opt (with value v) was a perturbation option, 0 when not, AT_ERR on a bad value. */
int perturb_args_parse(perturb_args *p, const char *opt, const char *v);
/* The mask options suit the method. */
int perturb_args_check(const perturb_args *p, at_method method);
/* Once the model is known (bench): reads --rise-masks and checks the settings. */
int perturb_args_prepare(perturb_args *p, const at_model *m, at_method method);
void perturb_args_free(perturb_args *p);

#endif
