/* Explaining many images, resumable (docs/usage.md#explain): each image's
 * map as OUT/<stem>.<name>.npy (float32 H x W in [0,1] at the network input
 * size) and its overlay .png, routing paths as .gates.npy, and one line of
 * OUT/results.jsonl each, appended once the image's files are in place.
 * name is the method tag and the settings off their defaults
 * ("gradcam.features.22.c3"); (image, name, layer, class option) is the
 * resume key. */
#ifndef ATTRIB_RUN_EXPLAIN_H
#define ATTRIB_RUN_EXPLAIN_H

#include "methods/cdrp.h"
#include "methods/explain.h"
#include "metrics/gate_stats.h"
#include "run/run.h"

/* The routing-path methods (docs/methods.md#cdrp to #pathway-gradient). */
typedef enum { AT_PATH_CDRP, AT_PATH_SCORE_CDRP, AT_PATH_SCORECAM, AT_PATH_PATHWAY_GRAD } at_path_method;
#define AT_MAX_RATES 16

typedef struct {
    at_cdrp_options cdrp;    /* the optimiser: a preset (at_cdrp_preset) and its overrides */
    char preset[16];         /* the preset's name ("zhu2024"), for the settings */
    int path_score_weighted; /* the path behind path-scorecam / pathway-grad: score-cdrp (1) or cdrp (0) */
    const char *gates_dir;   /* read the paths from here instead of optimising */
    int reoptimise;          /* optimise even when the output folder has the path */
    double rates[AT_MAX_RATES]; /* pathway-grad's prune rates */
    int n_rates;
    int prune_global, keep_gate_values;
} at_path_run_options;

#define AT_CLASS_PREDICTED (-1)
#define AT_CLASS_TRUTH (-2) /* the ground truth from annotations */

typedef struct {
    at_explain_options ex;   /* method, variant and its options (layer, classes, unit and lcam: set by the run) */
    int routing;             /* 1: a routing-path method, path_method with path */
    at_path_method path_method;
    at_path_run_options path;
    const char *layer;       /* NULL: the method's default; an ordinal, a module name, last-conv; layercam: a list a,b */
    const char *unit;        /* "LAYER,c[,x,y]": explain this unit instead of the class */
    const char *lcam;        /* L-CAM's module (NULL: <model>.lcam.safetensors beside the model) */
    const char *rise_masks;  /* RISE's masks from this .npy ([N][H][W]) */
    int rise_n_given;        /* ex.perturb->rise_n was set and must match the file */
    const char *rise_save_masks; /* write the generator's masks there */
    long cls;                /* AT_CLASS_PREDICTED, AT_CLASS_TRUTH or a class index */
    const char *annotations; /* for AT_CLASS_TRUTH */
    const char *out_dir;     /* NULL: "out" */
    int no_overlay;          /* the .npy maps only */
    int strict;              /* stop at the first image that fails */
    at_run_existing existing;
} at_explain_run_options;

/* Defaults: authors' variant, predicted class, output "out", default perturbation and path options. */
void at_explain_run_defaults(at_explain_run_options *o);
/* "cdrp", "score-cdrp", "path-scorecam", "pathway-grad": 1 and *out set; 0 when not one. */
int at_path_method_parse(const char *name, at_path_method *out);

/* RISE's masks from path ([N][H][W] .npy for m) into o (rise_n, rise_masks);
 * n_given: o->rise_n was set and must match. *masks: the caller frees. */
int at_rise_masks_load(const at_model *m, const char *path, int n_given, at_perturb_options *o, float **masks);

typedef struct {
    char name[320];          /* method tag[.settings]: the files' name part and the key */
    int images;              /* distinct images (repeated paths are explained once) */
    int repeated, done, skipped, failed;
    int existing;            /* images the output held already for these keys */
    long replaced;           /* earlier lines replaced (AT_EXISTING_REPLACE) */
    int stopped;             /* the run stopped at an error (strict, or the output cannot be written) */
    int bad_option;          /* the error returned is in the options (a layer the method cannot use) */
    /* routing paths: gate statistics of the run's paths, pruned networks per rate */
    gate_summary gates;
    const char *path_kind;   /* "cdrp" or "score-cdrp": the paths summarised */
    int rate_paths[AT_MAX_RATES], rate_kept[AT_MAX_RATES];
    double rate_prob[AT_MAX_RATES];
} at_explain_summary;

/* Explains images[0..n) on be into o->out_dir. Errors before any image
 * (options that do not fit the model, the output folder, results already
 * there with AT_EXISTING_STOP) return AT_ERR. An image that fails is
 * reported through cb->error and counted (strict: the run stops there, as
 * it does when a file cannot be written): AT_OK, the summary says so. */
int at_explain_run(at_backend *be, const at_explain_run_options *o, const char *const *images, int n,
                   const at_run_callbacks *cb, at_explain_summary *out);

#endif
