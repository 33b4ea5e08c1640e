/* eval's inputs (private to host/run): the lines of results.jsonl to score
 * (one per key), and, for resume, the values an earlier run wrote. */
#ifndef ATTRIB_RUN_EVAL_ENTRIES_H
#define ATTRIB_RUN_EVAL_ENTRIES_H

#include "run/eval.h"

/* One results.jsonl line worth scoring. */
typedef struct {
    char *image, *method, *layer, *map, *gates;
    char *name;       /* method[.settings]: the summary's row and the key's name */
    char *class_opt;  /* the explain run's class option, for the key */
    int cls;
} entry;

void entries_free(entry *e, int n);
/* The lines of DIR/results.jsonl that the metric scores (and o->method selects). */
int read_entries(const at_eval_options *o, entry **out, int *n);
/* A later line with the same key (image, name, layer, class option) replaces
 * an earlier one: each result is counted once. Returns the lines dropped. */
int merge_duplicates(entry *e, int *n);

/* Values an earlier run wrote to eval.<metric>.jsonl with these options. */
typedef struct {
    char *image, *name, *layer;
    double terms[AT_EVAL_MAX_TERMS];
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

#define EVAL_CI_REPS 2000      /* bootstrap resamples for the 95 % intervals */
#define EVAL_CI_SEED 20240901u /* fixed: the same inputs give the same intervals */

#endif
