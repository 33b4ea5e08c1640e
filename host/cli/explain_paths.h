/* The routing-path half of ./attrib explain (host/cli/explain_paths.c). */
#ifndef ATTRIB_CLI_EXPLAIN_PATHS_H
#define ATTRIB_CLI_EXPLAIN_PATHS_H

#include "image.h"
#include "methods/cdrp.h"
#include "output.h"
#include "progress.h"

typedef enum { PM_CDRP, PM_SCORE_CDRP, PM_PATH_SCORECAM, PM_PATHWAY_GRAD } path_method;

typedef struct {
    at_cdrp_options cdrp;
    char preset[16];
    int path_score_weighted;   /* the path behind path-scorecam / pathway-grad */
    const char *gates_dir;     /* read paths instead of optimising */
    double rates[16];
    int n_rates;
    int prune_global, keep_gate_values;
} path_args;

extern const char *const PATH_HELP;

/* 1 when name is a path method (sets *out). */
int path_method_parse(const char *name, path_method *out);
void path_args_init(path_args *p);
/* 1 when opt (with value v) was a path option, 0 when not, AT_ERR on a bad value. */
int path_args_parse(path_args *p, const char *opt, const char *v);
int path_args_flag(path_args *p, const char *opt);
void path_args_finish(path_args *p);
void path_method_tag(path_method pm, const path_args *p, char *tag, size_t cap);

typedef struct {
    path_method method;
    const path_args *p;
    const at_model *m;
    at_backend *be;
    const char *tag, *out_dir;
    char **stems;
    char **paths;
    at_results *res;
    at_progress *prog;
    int no_overlay;
} path_run;

/* Runs the method on nb loaded images (inputs, their indices into paths and
 * preprocessed RGB8) and writes their files and results lines. */
int explain_paths_batch(const path_run *run, const float *inputs, int nb, const int *index, at_image *rgbs);

#endif
