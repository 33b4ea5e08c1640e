/* The routing-path half of ./attrib explain: options and names
 * (host/cli/explain_path_options.c), running (host/cli/explain_paths.c). */
#ifndef ATTRIB_CLI_EXPLAIN_PATHS_H
#define ATTRIB_CLI_EXPLAIN_PATHS_H

#include "metrics/gate_stats.h"
#include "io/image.h"
#include "methods/cdrp.h"
#include "output/output.h"
#include "output/progress.h"

typedef enum { PM_CDRP, PM_SCORE_CDRP, PM_PATH_SCORECAM, PM_PATHWAY_GRAD } path_method;

/* Optimiser numbers given on the command line; -1 / NaN: the preset's. */
typedef struct {
    int iterations;
    double lr, momentum, gamma, clamp_max;
} path_numbers;

typedef struct {
    at_cdrp_options cdrp;
    path_numbers given;
    int target, l1, alpha_weight, keep; /* choices given (-1: the preset's), applied by path_args_finish */
    int path_cdrp;             /* --path-method cdrp */
    char preset[16];
    int path_score_weighted;   /* the path behind path-scorecam / pathway-grad */
    const char *gates_dir;     /* read paths instead of optimising */
    double rates[16];
    int n_rates;
    int prune_global, keep_gate_values;
    int reoptimise;            /* optimise even when --out has this path */
} path_args;

/* Paths already in --out: results.jsonl lines of the path method with the
 * same settings and model (image -> gates file). */
typedef struct {
    char **images, **gates;
    int n, cap;
} path_reuse;
int path_reuse_load(path_reuse *r, const char *out_dir, const path_args *p, const at_model *m,
                    at_precision precision);
void path_reuse_free(path_reuse *r);

/* Gate statistics and pruned-network outcomes over a run, for the summary. */
typedef struct {
    gate_summary gates;
    int rate_paths[16], rate_kept[16];
    double rate_prob[16];
} path_summary;

extern const char *const PATH_HELP;

/* 1 when name is a path method (sets *out). */
int path_method_parse(const char *name, path_method *out);
void path_args_init(path_args *p);
/* The routing-path options of explain, into a path_args. */
extern const cli_option PATH_OPTIONS[];
void path_args_finish(path_args *p);
void path_method_tag(path_method pm, const path_args *p, char *tag, size_t cap);
/* The options that change the method's result, as a file-name suffix ("" for
 * the defaults): "wang2018", "T5", "hard", "tf32", "global", ... */
void path_settings(path_method pm, const path_args *p, at_precision precision, char *buf, size_t cap);
/* The settings of the path behind path-scorecam / pathway-grad. */
void path_gates_settings(const path_args *p, at_precision precision, char *buf, size_t cap);
/* "cdrp" / "score-cdrp" plus the path's settings: the gates file's name part. */
void path_file_name(const path_args *p, at_precision precision, char *buf, size_t cap);
/* "method" or "method.settings": a results key's name (output.h). */
void results_key_name(const char *method, const char *settings, char *buf, size_t cap);

typedef struct {
    path_method method;
    const path_args *p;
    const at_model *m;
    at_backend *be;
    const char *tag, *out_dir;
    const char *settings, *name; /* name = tag[.settings], in the file names */
    const path_reuse *reuse;
    path_summary *summary;
    char **stems;
    char **paths;
    at_results *res;
    at_progress *prog;
    int no_overlay;
    int skip_existing; /* --resume: do not repeat a line results.jsonl has */
} path_run;

/* Runs the method on nb loaded images (inputs, their indices into paths and
 * preprocessed RGB8) and writes their files and results lines. */
int explain_paths_batch(const path_run *run, const float *inputs, int nb, const int *index, at_image *rgbs);
/* The gate statistics (and pruned-network outcomes) of the run, as a table. */
void path_summary_print(const path_run *run, FILE *f);

#endif
