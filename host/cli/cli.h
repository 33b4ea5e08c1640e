/* Shared pieces of the command-line front end (host/cli/). */
#ifndef ATTRIB_CLI_H
#define ATTRIB_CLI_H

#include <stdio.h>

#include "exec/backend.h"
#include "metrics/gate_stats.h"
#include "io/paths.h"
#include "model/model.h"
#include "output/output.h"
#include "output/progress.h"
#include "run/run.h"

#define EXIT_BAD_INPUT 1 /* docs/usage.md: bad input */
#define EXIT_USAGE 2     /* docs/usage.md: bad usage */

/* Prints "attrib: <last error>", a library subject replaced by its flag. */
void cli_error(void);
const char *cli_error_message(const char *msg, char *buf, size_t cap);
/* The same with "; <hint>" after the message (the flags that resolve it). */
void cli_error_hint(const char *hint);
/* Prints "attrib: <subject>: <msg>" for a usage error and returns EXIT_USAGE. */
int cli_usage_error(const char *subject, const char *fmt, ...);
/* 1 after printing help (a printf format: "%%" for %) and the common options
 * when the arguments hold --help or -h. */
int cli_help_asked(int argc, char **argv, const char *help);

/* The shipped model: $ATTRIB_MODEL, else weights/vgg16_mini.safetensors
 * beside the executable, else under the current directory. */
const char *cli_default_model(void);

/* Image arguments: positional paths plus the lines of --list files and the
 * images under --dir (the library's at_paths, io/paths.h). */
typedef at_paths cli_paths;
#define cli_paths_add at_paths_add
#define cli_paths_add_list at_paths_add_list
#define cli_paths_add_dir at_paths_add_dir
#define cli_paths_free at_paths_free

/* Strict numeric option parsing; AT_ERR naming the option. */
int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
/* A comma-separated list of 1..max numbers in [lo, hi]; *n of them in out. */
int cli_parse_doubles(const char *opt, const char *s, double lo, double hi, double *out, int max, int *n);

/* fp32 | tf32 | fp16 for option opt. */
int cli_parse_precision(const char *opt, const char *v, at_precision *out);
int cli_parse_size(const char *opt, const char *s, size_t *out); /* "8G", "512M", bytes */

/* Option tables: each command lists its options once; cli_options_parse
 * reads argv[*i] (and its value) into the args struct at `off`. */
typedef enum {
    CLI_FLAG,   /* int = 1 */
    CLI_STR,    /* const char * = the value */
    CLI_INT,    /* int in [lo, hi] */
    CLI_DOUBLE, /* double in [lo, hi] */
    CLI_FLOAT,  /* float in [lo, hi] */
    CLI_CHOICE, /* int = the value's index in choices "a|b|c" */
    CLI_CALL,   /* fn(args, option, value) */
} cli_option_type;
typedef struct {
    const char *name;
    cli_option_type type;
    size_t off;
    double lo, hi;
    const char *choices;
    int (*fn)(void *args, const char *opt, const char *value);
} cli_option;
/* 1 when argv[*i] is in table (its value consumed), 0 when not, AT_ERR on a
 * missing or bad value (naming the option). */
int cli_options_parse(const cli_option *table, void *args, int argc, char **argv, int *i);

/* Common options: --model, --backend, --precision, --mem-limit, --threads.
 * Returns 1 when argv[*i] was one of them (consuming its value), 0 when not,
 * AT_ERR on a bad value. */
typedef struct {
    const char *model;
    at_backend_options be;
    int quiet; /* --quiet seen: cli_open keeps the backend's notice to itself */
} cli_common;
void cli_common_init(cli_common *c);
int cli_common_parse(cli_common *c, int argc, char **argv, int *i);
extern const char *const CLI_COMMON_HELP;

/* Loads the model and creates the backend; prints the error itself, and the
 * backend's notice unless --quiet. */
int cli_open(const cli_common *c, at_model **m, at_backend **be);

/* Prints each at_image note (AT_IMAGE_NOTE_* bit) as one warning line, the
 * first time it is seen in this run. */
void cli_image_notes(unsigned notes);

/* A library run's callbacks as the commands print them: progress lines on
 * stderr (at_progress, labelled), each failed image's error, image notes
 * and warnings; notices unless quiet. */
typedef struct {
    at_progress prog;
    const char *label;
    int quiet;
} cli_run;
void cli_run_init(cli_run *r, at_run_callbacks *cb, const char *label, int quiet);

/* "gates of N paths (what): ..." and a row per conv layer, on stdout. */
void cli_print_gate_summary(const at_model *m, const gate_summary *s, const char *what);

/* Prints one JSON line made by at_jsonw_end and frees it (NULL: prints the error). */
void cli_print_json(char *line);

int cmd_predict(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_reproduce(int argc, char **argv);

#endif
