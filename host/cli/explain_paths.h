/* The routing-path options of ./attrib explain (host/cli/explain_path_options.c). */
#ifndef ATTRIB_CLI_EXPLAIN_PATHS_H
#define ATTRIB_CLI_EXPLAIN_PATHS_H

#include "cli.h"
#include "run/explain.h"

/* Optimiser numbers given on the command line; -1 / NaN: the preset's. */
typedef struct {
    int iterations;
    double lr, momentum, gamma, clamp_max;
} path_numbers;

typedef struct {
    at_path_run_options o;
    path_numbers given;
    int target, l1, alpha_weight, keep; /* choices given (-1: the preset's), applied by path_args_finish */
    int path_cdrp;                      /* --path-method cdrp */
} path_args;

extern const char *const PATH_HELP;
void path_args_init(path_args *p);
/* The routing-path options of explain, into a path_args. */
extern const cli_option PATH_OPTIONS[];
/* The numbers and choices given, over the preset's. */
void path_args_finish(path_args *p);

#endif
