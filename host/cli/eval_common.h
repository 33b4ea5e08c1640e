/* ./attrib eval internals: options, metrics and the per-image loop
 * (host/cli/eval.c parses, host/cli/eval_run.c runs). */
#ifndef ATTRIB_CLI_EVAL_COMMON_H
#define ATTRIB_CLI_EVAL_COMMON_H

#include "cli.h"

#define EVAL_MAX_PROPS 32

typedef enum {
    EVAL_NONE, EVAL_CONFIDENCE, EVAL_AD_IC, EVAL_ENERGY_PG, EVAL_POINTING, EVAL_DELETION, EVAL_INSERTION,
    EVAL_LOCALISATION, /* weakly supervised localisation (docs/methods.md#weakly-supervised-localisation) */
    EVAL_MPRT,         /* model-parameter randomisation (docs/methods.md#model-parameter-randomisation) */
    EVAL_METRIC_COUNT
} eval_metric;

/* Which layers MPRT randomises (host/cli/eval_mprt.c). */
typedef enum { MPRT_BOTH = 0, MPRT_CASCADING = 1, MPRT_INDEPENDENT = 2 } eval_mprt_mode;

typedef struct {
    cli_common common;
    eval_metric metric;
    const char *maps, *method, *annotations;
    int scorer_path, logit, topp, space_normalized, ad_absolute;
    double props[EVAL_MAX_PROPS];
    int n_props;
    double zero_lowest[EVAL_MAX_PROPS]; /* --zero-lowest: L-CAM's soft masking at these q % */
    int n_zero_lowest;
    double tolerance;
    int steps;
    int json, resume, overwrite, quiet;
    int pg_class;          /* pointing: --pg-average class (TorchRay's per-class mean, strict tolerance) */
    double loc_threshold;  /* localisation: the map's threshold, % of its maximum */
    double iou_min;        /* localisation: a hit needs IoU above this */
    int mprt_mode;         /* eval_mprt_mode */
    int mprt_seed;         /* the re-initialisation's PRNG seed */
    int mprt_control;      /* --control sobel: the weight-free Sobel row beside the methods */
} eval_args;

void eval_args_init(eval_args *a);
int eval_metric_parse(const char *s, eval_metric *out);
const char *eval_metric_name(eval_metric m);
int eval_run(const eval_args *a);
/* --metric mprt: the whole run (it re-explains every image per randomised model). */
int eval_mprt_run(const eval_args *a);

#define MAX_TERMS (2 * EVAL_MAX_PROPS + 2)

/* One results.jsonl line worth scoring. */
typedef struct {
    char *image, *method, *layer, *map, *gates;
    char *name;       /* method[.settings]: the summary's row and the key's name */
    char *class_opt;  /* the explain run's class option, for the key */
    int cls;
} entry;

void entries_free(entry *e, int n);
/* The lines of DIR/results.jsonl that the metric scores (and --method selects). */
int read_entries(const eval_args *a, entry **out, int *n);
/* A later line with the same key (image, name, layer, class option) replaces
 * an earlier one: each result is counted once. Returns the lines dropped. */
int merge_duplicates(entry *e, int *n);

/* Values an earlier run wrote to eval.<metric>.jsonl with these options. */
typedef struct {
    char *image, *name, *layer;
    double terms[MAX_TERMS];
    int all_zero;
} scored_row;

typedef struct {
    scored_row *r;
    int n, cap;
} scored_values;

void scored_free(scored_values *v);
int load_scored(scored_values *v, const char *path, const char *key, const char (*term_names)[24], int n_terms);
/* The earlier value of entry e, NULL when none (the last line of a key counts). */
const scored_row *scored_find(const scored_values *v, const entry *e);


#endif
