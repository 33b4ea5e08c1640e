/* ./attrib reproduce: parses the options, runs at_reproduce_run (host/reproduce/)
 * with this binary as the program of its explain / eval steps, prints its
 * progress. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/clock.h"
#include "core/error.h"
#include "reproduce/reproduce.h"

static const char *const HELP =
    "usage: attrib reproduce --config FILE [options]\n"
    "Runs the Score-CDRP paper's experiments (Tables 1-2, Fig. 7, seed 004's CAM\n"
    "comparison, Figs. 3-6 grids) as explain / eval steps and writes a report with\n"
    "the paper's numbers beside ours and 95%% bootstrap CIs. Every step resumes:\n"
    "run the same command again after an interruption. See docs/reproduce.md.\n"
    "  --config FILE       the run (reproduce/config.json: full, reproduce/tiny.json: CI)\n"
    "  --out DIR           override the config's output folder\n"
    "  --report FILE       override the config's report path (figures go beside it)\n"
    "  --quiet             no progress lines from the steps\n";

typedef struct {
    const char *config, *out, *report;
    int quiet;
} reproduce_args;

#define ARG(f) offsetof(reproduce_args, f)
static const cli_option OPTIONS[] = {
    {.name = "--config", .type = CLI_STR, .off = ARG(config)},
    {.name = "--out", .type = CLI_STR, .off = ARG(out)},
    {.name = "--report", .type = CLI_STR, .off = ARG(report)},
    {.name = "--quiet", .type = CLI_FLAG, .off = ARG(quiet)},
    {0},
};

static void on_progress(void *user, const char *stage, int done, int total) {
    if (strcmp(stage, "report")) fprintf(stderr, "reproduce: [%d/%d] %s\n", done + 1, total, stage);
}

static void on_notice(void *user, const char *text) { fprintf(stderr, "attrib: %s\n", text); }

/* The common options as given (--backend cpu ...) go to every step; --model
 * is the run's model. */
static int parse_args(int argc, char **argv, reproduce_args *a, cli_common *common, const char **step_args) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        int start = i, r = cli_common_parse(common, argc, argv, &i);
        if (r == AT_ERR) return EXIT_USAGE;
        if (r) {
            for (int k = start; k <= i && n < 30 && strcmp(argv[start], "--model"); k++) step_args[n++] = argv[k];
            continue;
        }
        r = cli_options_parse(OPTIONS, a, argc, argv, &i);
        if (r == AT_ERR) return EXIT_USAGE;
        if (!r) return at_fail(argv[i], "unknown option (see attrib reproduce --help)"), EXIT_USAGE;
    }
    step_args[n] = NULL;
    if (!a->config) return at_fail("--config", "is required (e.g. reproduce/config.json)"), EXIT_USAGE;
    return 0;
}

int cmd_reproduce(int argc, char **argv) {
    if (cli_help_asked(argc, argv, HELP)) return 0;
    reproduce_args a = {0};
    cli_common common;
    cli_common_init(&common);
    const char *step_args[32];
    int rc = parse_args(argc, argv, &a, &common, step_args);
    if (rc) {
        cli_error();
        return rc;
    }
    at_reproduce_config c;
    if (at_reproduce_config_load(a.config, &c)) {
        cli_error();
        at_reproduce_config_free(&c);
        return EXIT_BAD_INPUT;
    }
    if (a.out) free(c.out), c.out = strdup(a.out);
    if (a.report) free(c.report), c.report = strdup(a.report);
    at_reproduce_options opt = {
        .attrib = "/proc/self/exe", /* the running file, even if attrib is rebuilt meanwhile */
        .model = common.model ? common.model : c.model ? c.model : cli_default_model(),
        .step_args = step_args,
        .quiet = a.quiet,
        .forward_signals = 1,
        .on_progress = on_progress,
        .on_notice = on_notice,
    };
    double t0 = at_now_s();
    rc = c.out && c.report ? at_reproduce_run(&c, &opt) : at_fail(NULL, "out of memory");
    if (rc) cli_error();
    else fprintf(stderr, "reproduce: %s written (%.0f s)\n", c.report, at_now_s() - t0);
    at_reproduce_config_free(&c);
    return rc ? EXIT_BAD_INPUT : 0;
}
