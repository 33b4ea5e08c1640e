/* The reproduce run's private parts: its state and the experiments' steps
 * and report sections (config.c reads the config, run.c runs the steps,
 * report.c reads their per-image outputs and writes REPORT.md and the figure
 * grids; seed004.c, mprt.c, methods.c and lcam.c each add an experiment's
 * steps and section). */
#ifndef ATTRIB_REPRODUCE_INTERNAL_H
#define ATTRIB_REPRODUCE_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "io/json.h"
#include "io/paths.h"
#include "reproduce/reproduce.h"

#define RP_MAX_STEPS 160

typedef struct {
    char name[96];
    double wall_s, total_s; /* this invocation; all invocations (out/steps.jsonl) */
} rp_step;

/* Everything the report needs besides the config. */
typedef struct {
    const at_reproduce_config *cfg;
    at_paths cam, path, figure; /* image lists (first N / K / G of the data) */
    char maps[4200];             /* explain's and eval's folder: OUT/maps */
    rp_step steps[RP_MAX_STEPS];
    int n_steps;
    double wall_total_s;
    char model_path[4200], model_sha[65];
    char fig7_png[4400], fig7_note[512]; /* the plot, or why it was skipped */
    char eval_key_fig7[64];              /* eval's class_option key of the Fig. 7 lines */
    at_paths methods;                   /* the methods table's images */
    char methods_dir[4300];              /* its explain / eval folder: OUT/methods-KEY */
    at_paths mprt;                      /* the sanity check's images, its folder OUT/mprt-KEY, list */
    char mprt_dir[4300], mprt_list[4400];
    char mprt_png[4400], mprt_note[512]; /* its plot, or why it was skipped */
    char lcam_eval_key[160];             /* the L-CAM comparison's eval class_option key */
} rp_run;

/* The running reproduce (run.c). A first pass with `dry` set walks the
 * steps without running them, to count them for the progress callback. */
typedef struct {
    rp_run run;
    const at_reproduce_options *opt;
    char argv0[4096], tools[4200]; /* the steps' argv[0]; the Python tools' folder */
    char lists[4][4400]; /* cam, path, figure, methods */
    double t_start;
    int dry, n_planned;
    int python;          /* /usr/bin/python3: -1 not probed yet, 0 missing, 1 without matplotlib / numpy, 2 ready */
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

/* Seed 004's table (seed004.c): FAFRP's steps beside the
 * CAM and Mask steps of run.c, and the report section. */
int rp_seed004_steps(rp_state *s);
int rp_seed004_report(FILE *f, const rp_run *r);

/* The model-parameter-randomisation sanity check (mprt.c). */
int rp_mprt_steps(rp_state *s);
int rp_mprt_report(FILE *f, const rp_run *r, const char *report_dir);

/* The methods table (methods.c): its steps, and its
 * report section. */
int rp_methods_steps(rp_state *s);
extern const char *const rp_mp_opts[]; /* meaningful perturbation as seed 004's Mask row */

typedef struct {
    double mean, lo, hi;
    int n;
} rp_stat;

/* Index in imgs of eval line j's image when its method is `method` and its
 * class option `key` (unless NULL); -1 otherwise. order: imgs' indices sorted
 * by path (binary search), or NULL (searched in turn). */
int rp_line_image(const at_json *j, const char *method, const char *key, const at_paths *imgs, const int *order);
/* out[t * imgs->n + i] = term t of the last line of `method` (and class
 * option `key` unless NULL) for image i of imgs in eval file `file`; NaN
 * where there is none or the value is null. */
int rp_load_values(const char *file, const char *method, const char *key, const at_paths *imgs, int n_terms,
                   const char *const *terms, double *out);
/* Mean and 95 % bootstrap CI of a (b NULL) or of the paired a - b over the
 * images where both values exist. */
rp_stat rp_stat_of(const at_reproduce_config *c, const double *a, const double *b, int n);
/* "68.41 [66.20, 70.52]" with `dec` decimals (signed when `sign`); "–" without values. */
const char *rp_fmt(char *buf, size_t cap, rp_stat s, int dec, int sign);
int rp_methods_report(FILE *f, const rp_run *r);

/* A figure of the report: path = the report's path without ".md", then
 * ".NAME" (results/REPORT.fig7.png), so that two configs writing into one
 * folder keep their figures apart; *base points at its file name, as the
 * report links it. */
void rp_figure_path(const at_reproduce_config *c, const char *name, char *path, size_t cap, const char **base);
/* The figure at png linked as ![alt](png), relative to report_dir when under
 * it; without one (png empty), "Plot NOTE; SAME." where SAME says which
 * tables hold its numbers. */
void rp_figure_link(FILE *f, const char *report_dir, const char *png, const char *alt, const char *note,
                    const char *same);

/* The L-CAM comparison's steps and report section (lcam.c). */
int rp_lcam_steps(rp_state *s);
/* 1 when the run's model has its L-CAM module beside it, trained for this
 * file (path: the module's name). */
int rp_lcam_module(const rp_run *r, char *path, size_t cap);
int rp_lcam_report(FILE *f, const rp_run *r);

/* Writes cfg->report and the PNG grids beside it; AT_ERR with a message. */
int rp_write_report(const rp_run *run);

#endif
