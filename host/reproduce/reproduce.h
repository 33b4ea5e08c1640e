/* The Score-CDRP paper's experiments (docs/reproduce.md) from one JSON config:
 * Tables 1-2, Fig. 7, seed 004's CAM comparison, the methods table, the
 * sanity check, the L-CAM comparison and the Figs. 3-6 grids, written as a
 * report with the paper's numbers beside this run's and 95 % bootstrap CIs.
 *
 * Each step is an `attrib explain` or `attrib eval` run as a child process
 * with --resume, so an interrupted run continues where it stopped and every
 * step's outputs are the ordinary files of those commands; the report is
 * computed from their per-image lines. Python steps (scene generation, the
 * Fig. 7 and sanity-check plots) run /usr/bin/python3 on the tools folder's
 * scripts; without Python and matplotlib the plots are skipped and the
 * report says why. */
#ifndef ATTRIB_REPRODUCE_H
#define ATTRIB_REPRODUCE_H

#include <stdint.h>

#define AT_REPRODUCE_MAX_PROPS 32
#define AT_REPRODUCE_MAX_RATES 16
#define AT_REPRODUCE_MAX_ARGS 32
#define AT_REPRODUCE_MAX_METHODS 40
#define AT_REPRODUCE_MAX_LCAM_Q 8

/* The L-CAM comparison (config "lcam"): on the methods table's images and
 * maps, AD / IC with L-CAM's soft masking. */
typedef struct {
    double q[AT_REPRODUCE_MAX_LCAM_Q]; /* zero-lowest masking, % removed */
    int n_q;
} at_reproduce_lcam;

/* The JSON config (reproduce/config.json documents every key). Paths are
 * relative to the working directory. */
typedef struct {
    char *config_path, *title, *model;
    char *data_dir, *images_dir, *list, *annotations;
    int generate;           /* data.generate present: make_scenes.py fills data_dir */
    char gen_split[16];
    long gen_count, gen_seed;
    int n_images;           /* CAM comparison (seed 004, Score-CAM of Table 2): first N */
    int n_path;             /* CDRP / Score-CDRP experiments: first K of those */
    int n_figure;           /* qualitative grids: first G of those */
    char *out, *report;
    int table1, table2, fig7, seed004, figures, methods, lcam; /* experiments to run */
    int n_method_images;                        /* "methods" table: first M of the CAM images */
    char *method_list[AT_REPRODUCE_MAX_METHODS]; /* its methods (default: every single-map method) */
    int n_method_list;
    long rise_n;                                /* its RISE masks (the method's 4000 cost minutes) */
    int mprt;                                   /* the sanity check */
    int n_mprt_images;                          /* its images: the first of the CAM comparison */
    char *mprt_methods[AT_REPRODUCE_MAX_METHODS]; /* its methods (default: host/reproduce/mprt.c's list) */
    int n_mprt_methods;
    long mprt_seed;                             /* the re-initialisation's seed */
    at_reproduce_lcam lc;                       /* the L-CAM comparison */
    char *path_opts[AT_REPRODUCE_MAX_ARGS];     /* "--preset", "zhu2024", ... for the cdrp and score-cdrp steps */
    int n_path_opts;
    double props[AT_REPRODUCE_MAX_PROPS];
    int n_props;
    int fig7_logit, scorer_path; /* Fig. 7 score (prob default) and network (original default) */
    double rates[AT_REPRODUCE_MAX_RATES];
    int n_rates;
    int boot_reps;
    uint64_t boot_seed;
} at_reproduce_config;

/* Reads the config (AT_ERR naming the file and key); defaults for what it
 * leaves out. at_reproduce_config_free releases it (also after a failed
 * load). out and report may be replaced (malloc'd strings) before the run. */
int at_reproduce_config_load(const char *path, at_reproduce_config *c);
void at_reproduce_config_free(at_reproduce_config *c);

typedef struct {
    const char *attrib;           /* the attrib program that runs the explain / eval steps (required;
                                     "/proc/self/exe" from attrib itself: the running file even if
                                     rebuilt meanwhile) */
    const char *tools;            /* make_scenes.py, plot_fig7.py, plot_mprt.py; NULL: tools/ beside attrib */
    const char *model;            /* the model of every step; NULL: the config's (one is required) */
    const char *const *step_args; /* given to every explain / eval step ("--backend", "cpu", ...), NULL-ended */
    const char *steps_stderr;     /* file the steps' standard error is appended to; NULL: this process's */
    int quiet;                    /* the steps report no progress of their own */
    int forward_signals;          /* on SIGINT / SIGTERM: pass it on to the running step, wait for its
                                     cleanup, remove partial files, exit 128 + signal (for programs) */
    /* before each step: its name ("explain cdrp", "eval ad-ic prob gradcam",
     * "plot fig7"), the steps done and the run's total; then ("report",
     * total, total) before the report is written */
    void (*on_progress)(void *user, const char *stage, int done, int total);
    /* what does not stop the run: "plot fig7: step failed ..." */
    void (*on_notice)(void *user, const char *text);
    void *user;
} at_reproduce_options;

/* Runs the config's experiments and writes cfg->report with its figures
 * beside it. AT_ERR names the step, the file or the config key; a second
 * call after a failure resumes. */
int at_reproduce_run(const at_reproduce_config *cfg, const at_reproduce_options *opt);

#endif
