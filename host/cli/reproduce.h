/* ./attrib reproduce internals: the run's configuration and state
 * (host/cli/reproduce_config.c reads the config, host/cli/reproduce.c runs
 * the steps, host/cli/reproduce_report.c reads their per-image outputs and
 * writes REPORT.md and the figure grids). */
#ifndef ATTRIB_CLI_REPRODUCE_H
#define ATTRIB_CLI_REPRODUCE_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

#define RP_MAX_PROPS 32
#define RP_MAX_RATES 16
#define RP_MAX_STEPS 160
#define RP_MAX_ARGS 32
#define RP_MAX_METHODS 40
#define RP_MAX_LCAM_Q 8

/* The L-CAM comparison (config "lcam", host/cli/reproduce_lcam.c): on the
 * methods table's images and maps, AD / IC with L-CAM's soft masking. */
typedef struct {
    double q[RP_MAX_LCAM_Q]; /* eval --zero-lowest, % removed */
    int n_q;
} rp_lcam_config;

/* The JSON config (reproduce/config.json documents every key). Paths are
 * relative to the working directory, as on the command line. */
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
    char *method_list[RP_MAX_METHODS];          /* its methods (default: every single-map method) */
    int n_method_list;
    long rise_n;                                /* its RISE masks (the method's 4000 cost minutes) */
    int mprt;                                   /* the sanity check (host/cli/reproduce_mprt.c) */
    int n_mprt_images;                          /* its images: the first of the CAM comparison */
    char *mprt_methods[RP_MAX_METHODS];         /* its methods (default: reproduce_mprt.c's list) */
    int n_mprt_methods;
    long mprt_seed;                             /* the re-initialisation's seed */
    rp_lcam_config lc;                          /* the L-CAM comparison */
    char *path_opts[RP_MAX_ARGS];               /* "--preset", "zhu2024", ... for cdrp and score-cdrp */
    int n_path_opts;
    double props[RP_MAX_PROPS];
    int n_props;
    int fig7_logit, scorer_path; /* Fig. 7 score (prob default) and network (original default) */
    double rates[RP_MAX_RATES];
    int n_rates;
    int boot_reps;
    uint64_t boot_seed;
} rp_config;

typedef struct {
    char name[96], what[160];
    double wall_s, total_s; /* this invocation; all invocations (out/steps.jsonl) */
    int ran;
} rp_step;

/* Everything the report needs besides the config. */
typedef struct {
    const rp_config *cfg;
    cli_paths cam, path, figure; /* image lists (first N / K / G of the data) */
    char maps[4200];             /* explain's and eval's folder: OUT/maps */
    rp_step steps[RP_MAX_STEPS];
    int n_steps;
    double wall_total_s;
    char model_path[4200], model_sha[65];
    char fig7_png[4400], fig7_note[512]; /* the plot, or why it was skipped */
    char eval_key_fig7[64];              /* eval's class_option key of the Fig. 7 lines */
    cli_paths methods;                   /* the methods table's images */
    char methods_dir[4300];              /* its explain / eval folder: OUT/methods-KEY */
    cli_paths mprt;                      /* the sanity check's images, its folder OUT/mprt-KEY, list */
    char mprt_dir[4300], mprt_list[4400];
    char mprt_png[4400], mprt_note[512]; /* its plot, or why it was skipped */
    char lcam_eval_key[160];             /* the L-CAM comparison's eval class_option key */
} rp_run;

/* The running reproduce (host/cli/reproduce.c). */
typedef struct {
    rp_run run;
    char exe[4096], tools[4200];
    const char *forward[16]; /* --backend cpu ... as given */
    int n_forward, quiet;
    char lists[4][4400];     /* cam, path, figure, methods */
    double t_start;
} rp_state;

/* One step: `attrib explain --method METHOD --out DIR --list LIST EXTRA...`
 * or `attrib eval --metric METRIC --maps DIR [--method METHOD] EXTRA...`,
 * with --resume and the run's common options; AT_ERR naming the step. */
int rp_explain(rp_state *s, const char *dir, const char *name, const char *method, const char *list,
               const char *const *extra);
int rp_eval(rp_state *s, const char *dir, const char *name, const char *metric, const char *method,
            const char *const *extra);

/* Runs /usr/bin/python3 SCRIPT ARGS... as step `name` when Python with
 * numpy and matplotlib is there; else, or when it fails, writes why to note
 * ("skipped: ...", "failed: ...") and returns AT_ERR (the caller goes on). */
int rp_python_tool(rp_state *s, const char *name, const char *script, const char *const *args, char *note,
                   size_t cap);

/* Seed 004's table (host/cli/reproduce_seed004.c): FAFRP's steps beside the
 * CAM and Mask steps of reproduce.c, and the report section. */
int rp_seed004_steps(rp_state *s);
int rp_seed004_report(FILE *f, const rp_run *r);

/* The model-parameter-randomisation sanity check (host/cli/reproduce_mprt.c). */
int rp_mprt_steps(rp_state *s);
int rp_mprt_report(FILE *f, const rp_run *r, const char *report_dir);

/* The methods table (host/cli/reproduce_methods.c): its steps, and its
 * report section. */
int rp_methods_steps(rp_state *s);
extern const char *const rp_mp_opts[]; /* meaningful perturbation as seed 004's Mask row */

typedef struct {
    double mean, lo, hi;
    int n;
} rp_stat;

/* out[t * imgs->n + i] = term t of the last line of `method` (and class
 * option `key` unless NULL) for image i of imgs in eval file `file`; NaN
 * where there is none or the value is null. */
int rp_load_values(const char *file, const char *method, const char *key, const cli_paths *imgs, int n_terms,
                   const char *const *terms, double *out);
/* Mean and 95 % bootstrap CI of a (b NULL) or of the paired a - b over the
 * images where both values exist. */
rp_stat rp_stat_of(const rp_config *c, const double *a, const double *b, int n);
/* "68.41 [66.20, 70.52]" with `dec` decimals (signed when `sign`); "–" without values. */
const char *rp_fmt(char *buf, size_t cap, rp_stat s, int dec, int sign);
int rp_methods_report(FILE *f, const rp_run *r);

/* A figure of the report: path = the report's path without ".md", then
 * ".NAME" (results/REPORT.fig7.png), so that two configs writing into one
 * folder keep their figures apart; *base points at its file name, as the
 * report links it. */
void rp_figure_path(const rp_config *c, const char *name, char *path, size_t cap, const char **base);

/* The L-CAM comparison's steps and report section (host/cli/reproduce_lcam.c). */
int rp_lcam_steps(rp_state *s);
/* 1 when the run's model has its L-CAM module beside it, trained for this
 * file (path: the module's name). */
int rp_lcam_module(const rp_run *r, char *path, size_t cap);
int rp_lcam_report(FILE *f, const rp_run *r);

/* Reads the config (AT_ERR naming the file and key); defaults for what it
 * leaves out. rp_config_free releases it (also after a failed load). */
int rp_config_load(const char *path, rp_config *c);
void rp_config_free(rp_config *c);

/* Writes cfg->report and the PNG grids beside it; AT_ERR with a message. */
int rp_write_report(const rp_run *run);

#endif
