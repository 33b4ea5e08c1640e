/* The metrics over an explain run's outputs (docs/methods.md#metrics-common-rules):
 * reads DIR/results.jsonl, scores each map (masked images re-scored in
 * batches on the backend, boxes, deletion / insertion curves), appends one
 * line per image to DIR/eval.<metric>.jsonl (resume keys: image, method and
 * settings, layer, the options that change the value) and returns each
 * method's mean and 95 % paired-bootstrap interval per value. */
#ifndef ATTRIB_RUN_EVAL_H
#define ATTRIB_RUN_EVAL_H

#include "exec/backend.h"
#include "run/run.h"

#define AT_EVAL_MAX_PROPS 32
#define AT_EVAL_MAX_TERMS (2 * AT_EVAL_MAX_PROPS + 2)

typedef enum {
    AT_EVAL_NONE, AT_EVAL_CONFIDENCE, AT_EVAL_AD_IC, AT_EVAL_ENERGY_PG, AT_EVAL_POINTING, AT_EVAL_DELETION,
    AT_EVAL_INSERTION,
    AT_EVAL_LOCALISATION, /* weakly supervised localisation (docs/methods.md#weakly-supervised-localisation) */
    AT_EVAL_MPRT,         /* model-parameter randomisation (docs/methods.md#model-parameter-randomisation) */
    AT_EVAL_METRIC_COUNT
} at_eval_metric;

/* Which layers MPRT randomises. */
typedef enum { AT_MPRT_BOTH = 0, AT_MPRT_CASCADING = 1, AT_MPRT_INDEPENDENT = 2 } at_mprt_mode;

typedef struct {
    at_eval_metric metric;
    const char *maps;        /* explain's output folder */
    const char *method;      /* only lines of this method tag (NULL: all) */
    const char *annotations; /* boxes (energy-pg, pointing, localisation) */
    int scorer_path;         /* score with each image's gated network (its gates file) */
    int logit;               /* raw logits instead of softmax probabilities */
    int topp;                /* ad-ic: keep the top p % pixels at each of props */
    int space_normalized;    /* ad-ic multiplicative masking on the normalised tensor */
    int ad_absolute;         /* pytorch-grad-cam's absolute Average Drop */
    double props[AT_EVAL_MAX_PROPS];
    int n_props;
    double zero_lowest[AT_EVAL_MAX_PROPS]; /* L-CAM's soft masking at these q % (0: off) */
    int n_zero_lowest;
    double tolerance;      /* pointing-game tolerance at 224 px */
    int steps;             /* deletion / insertion */
    int pg_class;          /* pointing: TorchRay's per-class mean, strictly within the tolerance */
    double loc_threshold;  /* localisation: the map's threshold, % of its maximum */
    double iou_min;        /* localisation: a hit needs IoU above this */
    int mprt_mode;         /* at_mprt_mode */
    int mprt_seed;         /* the re-initialisation's PRNG seed */
    int mprt_control;      /* add the weight-free Sobel map of each image as a row */
    at_run_existing existing;
} at_eval_options;

/* The defaults (12 top-p proportions, tolerance 15 px, 100 steps, threshold 15 %, IoU 0.5). */
void at_eval_defaults(at_eval_options *o);
/* "ad-ic" -> AT_EVAL_AD_IC; AT_ERR naming the value ("metric: ..."). */
int at_eval_metric_parse(const char *s, at_eval_metric *out);
const char *at_eval_metric_name(at_eval_metric m);

typedef struct {
    double mean, lo, hi; /* NaN when count is 0 */
    int count;           /* images that have the value */
} at_eval_stat;

typedef struct {
    char method[128]; /* method[.settings] */
    int images, all_zero, failed;
    at_eval_stat stats[AT_EVAL_MAX_TERMS];
} at_eval_row;

typedef struct {
    int n_terms;
    char term_names[AT_EVAL_MAX_TERMS][24]; /* "AD", "IC@50", "hit", "auc", ... */
    int grouping[AT_EVAL_MAX_TERMS];        /* 1: grouped by, not a value (pointing's gt_class) */
    at_eval_row *rows;
    int n_rows;
    int merged;   /* duplicate results.jsonl lines merged (the last one counts) */
    int existing; /* values the file held already for these options */
    int failed;   /* images that could not be scored */
    int stopped;  /* the run stopped at an error (reported through the callbacks) */
} at_eval_summary;

/* The whole run on be. Errors before any image is scored (no results,
 * annotations, values already there with AT_EXISTING_STOP) return AT_ERR;
 * an image that fails is reported through cb and counted. The summary
 * covers the values found by resume too. */
int at_eval_run(at_backend *be, const at_eval_options *o, const at_run_callbacks *cb, at_eval_summary *out);
void at_eval_summary_free(at_eval_summary *s);

/* The model-parameter-randomisation check over the run's maps: each method
 * tag's maps made again (its default settings, the line's layer and class)
 * after re-initialising the layers (cascading from the top, one at a time);
 * per-image Spearman correlations to DIR/eval.mprt.jsonl. m is modified
 * while it runs and restored; backends are made with bo per model. A
 * method's images finish together (AT_RUN_BATCH), after AT_RUN_PARTIAL
 * events model by model. */
typedef struct {
    double mean, lo, hi;
    int n, excluded; /* excluded: either map all zero */
} at_mprt_stat;

typedef struct {
    char method[128];
    int images, all_zero;
    at_mprt_stat *layers[2]; /* [n_layers] cascading, independent; NULL when not run */
} at_mprt_row;

typedef struct {
    int n_layers;
    char (*layer_names)[64];
    int orders[2]; /* cascading, independent run */
    at_mprt_row *rows;
    int n_rows;
    int existing;
} at_mprt_summary;

int at_mprt_run(at_model *m, const at_backend_options *bo, const at_eval_options *o, const at_run_callbacks *cb,
                at_mprt_summary *out);
void at_mprt_summary_free(at_mprt_summary *s);

#endif
