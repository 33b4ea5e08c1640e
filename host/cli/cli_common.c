#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "core/error.h"
#include "io/image.h"

const char *const CLI_COMMON_HELP =
    "  --model FILE        weights (safetensors; default: the shipped VGG16-mini,\n"
    "                      weights/vgg16_mini.safetensors, or $ATTRIB_MODEL)\n"
    "  --backend B         cpu | cuda | auto (default auto: CUDA when a GPU is present)\n"
    "  --precision P       fp32 | tf32 | fp16 (default fp32; the CPU backend emulates\n"
    "                      tf32/fp16 by rounding operands: same results as tensor cores, not faster)\n"
    "  --mem-limit SIZE    memory the backend may plan for, e.g. 8G, 512M\n"
    "  --threads N         CPU threads (default: all cores)\n"
    "  --conv A            direct | winograd | winograd2 | winograd4 | auto: how the CPU backend\n"
    "                      runs 3x3 stride-1 convs (default auto: at fp32 F(4x4,3x3), F(2x2,3x3)\n"
    "                      or direct by a shape rule; winograd2/4 force the tile; CUDA: direct)\n";

/* The library names what is wrong (a layer, a value); the CLI names the flag
 * that set it. */
static const struct {
    const char *subject, *flag;
} subject_flags[] = {
    {"backend", "--backend"},     {"precision", "--precision"},   {"conv algorithm", "--conv"},
    {"layer", "--layer"},         {"method", "--method"},         {"variant", "--variant"},
    {"class", "--class"},         {"CDRP preset", "--preset"},    {"prune rate", "--rates"},
    {"output directory", "--out"}, {"contrast layer", "--contrast-layer"}, {"LRP rule", "--lrp-rule"},
    {"LRP alpha", "--lrp-alpha"},
    {"output directory", "--out"},
    {"RISE N", "--rise-n"},       {"RISE cells", "--rise-s"},     {"RISE p", "--rise-p"},
    {"occlusion window", "--occlusion-window"}, {"MP iterations", "--mp-iterations"}, {"MP mask", "--mp-mask"},
    {"MP learning rate", "--mp-lr"}, {"MP regulariser", "--mp-l1 / --mp-tv"}, {"MP beta", "--mp-beta"},
    {"MP sigma", "--mp-sigma"},   {"metric", "--metric"},         {"maps", "--maps"},
    {"unit", "--unit"},           {"integration steps", "--ig-steps"}, {"integration rule", "--ig-rule"},
    {"baseline", "--baseline"},   {"noise samples", "--smooth"},       {"noise sigma", "--sg-sigma"},
};

/* Phrases of library messages that the CLI says with its flags. */
static const struct {
    const char *phrase, *flags;
} phrase_flags[] = {
    {"explain with class truth", "explain --class truth"},
};

const char *cli_error_message(const char *msg, char *buf, size_t cap) {
    const char *out = msg;
    for (size_t i = 0; i < sizeof subject_flags / sizeof subject_flags[0]; i++) {
        size_t n = strlen(subject_flags[i].subject);
        if (!strncmp(msg, subject_flags[i].subject, n) && msg[n] == ':') {
            snprintf(buf, cap, "%s%s", subject_flags[i].flag, msg + n);
            out = buf;
            break;
        }
    }
    for (size_t i = 0; i < sizeof phrase_flags / sizeof phrase_flags[0]; i++) {
        const char *at = strstr(out, phrase_flags[i].phrase);
        if (!at) continue;
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(at - out), out, phrase_flags[i].flags,
                 at + strlen(phrase_flags[i].phrase));
        snprintf(buf, cap, "%s", tmp);
        out = buf;
    }
    return out;
}

void cli_error(void) {
    char buf[1024];
    fprintf(stderr, "attrib: %s\n", cli_error_message(at_last_error(), buf, sizeof buf));
}

void cli_error_hint(const char *hint) {
    char buf[1024];
    fprintf(stderr, "attrib: %s; %s\n", cli_error_message(at_last_error(), buf, sizeof buf), hint);
}

int cli_usage_error(const char *subject, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    at_failv(subject, fmt, ap);
    va_end(ap);
    fprintf(stderr, "attrib: %s\n", at_last_error());
    return EXIT_USAGE;
}

int cli_help_asked(int argc, char **argv, const char *help) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(help);
            printf("%s", CLI_COMMON_HELP);
            return 1;
        }
    return 0;
}

const char *cli_default_model(void) {
    static char path[4200];
    const char *env = getenv("ATTRIB_MODEL");
    if (env && env[0]) return env;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof path, "%s/weights/vgg16_mini.safetensors", exe);
            if (access(path, R_OK) == 0) return path;
        }
    }
    return "weights/vgg16_mini.safetensors";
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno) return at_fail(opt, "'%s' is not an integer", s);
    if (v < lo || v > hi) return at_fail(opt, "%ld is out of range %ld..%ld", v, lo, hi);
    *out = v;
    return AT_OK;
}

int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || v != v) return at_fail(opt, "'%s' is not a number", s);
    if (v < lo || v > hi) return at_fail(opt, "%g is out of range %g..%g", v, lo, hi);
    *out = v;
    return AT_OK;
}

int cli_parse_size(const char *opt, const char *s, size_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v > 0)) return at_fail(opt, "'%s' is not a size like 8G or 512M", s);
    double mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mul = 1024.0 * 1024, end++;
    else if (*end == 'G' || *end == 'g') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return at_fail(opt, "'%s' is not a size like 8G or 512M", s);
    if (v * mul < 1 << 20) return at_fail(opt, "'%s' is below 1M", s);
    *out = (size_t)(v * mul);
    return AT_OK;
}

void cli_common_init(cli_common *c) {
    memset(c, 0, sizeof *c);
    c->model = NULL;
    c->be.name = "auto";
    c->be.precision = AT_PRECISION_FP32;
}

static int choice_index(const char *choices, const char *v) {
    size_t n = strlen(v);
    int k = 0;
    for (const char *c = choices; *c; k++) {
        size_t len = strcspn(c, "|");
        if (len == n && !strncmp(c, v, n)) return k;
        c += len + (c[len] == '|');
    }
    return -1;
}

/* "'x' is not a, b or c" */
static int choice_fail(const char *opt, const char *choices, const char *v) {
    char list[256];
    size_t o = 0;
    int n = 1;
    for (const char *c = choices; *c; c++) n += *c == '|';
    int k = 0;
    for (const char *c = choices; *c && o + 8 < sizeof list; k++) {
        size_t len = strcspn(c, "|");
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%.*s", k == 0 ? "" : k == n - 1 ? " or " : ", ",
                              (int)len, c);
        c += len + (c[len] == '|');
    }
    return at_fail(opt, "'%s' is not %s", v, list);
}

int cli_options_parse(const cli_option *t, void *args, int argc, char **argv, int *i) {
    const char *o = argv[*i];
    for (; t->name; t++) {
        if (strcmp(o, t->name)) continue;
        char *field = (char *)args + t->off;
        if (t->type == CLI_FLAG) {
            *(int *)field = 1;
            return 1;
        }
        if (*i + 1 >= argc) return at_fail(o, "needs a value");
        const char *v = argv[++*i];
        long n = 0;
        int k;
        switch (t->type) {
        case CLI_STR: *(const char **)field = v; break;
        case CLI_INT:
            if (cli_parse_int(o, v, (long)t->lo, (long)t->hi, &n)) return AT_ERR;
            *(int *)field = (int)n;
            break;
        case CLI_DOUBLE:
            if (cli_parse_double(o, v, t->lo, t->hi, (double *)field)) return AT_ERR;
            break;
        case CLI_FLOAT: {
            double d = 0;
            if (cli_parse_double(o, v, t->lo, t->hi, &d)) return AT_ERR;
            *(float *)field = (float)d;
            break;
        }
        case CLI_CHOICE:
            if ((k = choice_index(t->choices, v)) < 0) return choice_fail(o, t->choices, v);
            *(int *)field = k;
            break;
        case CLI_CALL:
            if (t->fn(args, o, v)) return AT_ERR;
            break;
        default: break;
        }
        return 1;
    }
    return 0;
}

static int set_backend(void *args, const char *opt, const char *v) {
    cli_common *c = args;
    if (choice_index("cpu|cuda|auto", v) < 0) return choice_fail(opt, "cpu|cuda|auto", v);
    c->be.name = v;
    return AT_OK;
}
static int set_precision(void *args, const char *opt, const char *v) {
    return cli_parse_precision(opt, v, &((cli_common *)args)->be.precision);
}
static int set_mem_limit(void *args, const char *opt, const char *v) {
    return cli_parse_size(opt, v, &((cli_common *)args)->be.mem_limit);
}
static int set_conv(void *args, const char *opt, const char *v) {
    static const at_conv_algo algo[] = {AT_CONV_DIRECT, AT_CONV_WINOGRAD, AT_CONV_WINOGRAD2, AT_CONV_WINOGRAD4,
                                        AT_CONV_AUTO};
    int k = choice_index("direct|winograd|winograd2|winograd4|auto", v);
    if (k < 0) return choice_fail(opt, "direct|winograd|winograd2|winograd4|auto", v);
    ((cli_common *)args)->be.conv = algo[k];
    return AT_OK;
}

#define COMMON(f) offsetof(cli_common, f)
static const cli_option common_options[] = {
    {.name = "--model", .type = CLI_STR, .off = COMMON(model)},
    {.name = "--backend", .type = CLI_CALL, .fn = set_backend},
    {.name = "--precision", .type = CLI_CALL, .fn = set_precision},
    {.name = "--mem-limit", .type = CLI_CALL, .fn = set_mem_limit},
    {.name = "--threads", .type = CLI_INT, .off = COMMON(be.threads), .lo = 1, .hi = 1024},
    {.name = "--conv", .type = CLI_CALL, .fn = set_conv},
    {.name = NULL},
};

int cli_common_parse(cli_common *c, int argc, char **argv, int *i) {
    /* --quiet belongs to the command (progress lines); noted here, not
     * consumed, so that every command's notices follow it too. */
    if (!strcmp(argv[*i], "--quiet")) c->quiet = 1;
    int r = cli_options_parse(common_options, c, argc, argv, i);
    if (r == 1 && c->be.conv >= AT_CONV_WINOGRAD && c->be.precision != AT_PRECISION_FP32)
        return at_fail("--conv", "winograd runs at --precision fp32 only (tf32/fp16 emulate the GPU's direct conv)");
    return r;
}

int cli_open(const cli_common *c, at_model **m, at_backend **be) {
    *m = NULL;
    *be = NULL;
    if (at_model_load(c->model ? c->model : cli_default_model(), m)) {
        cli_error();
        return EXIT_BAD_INPUT;
    }
    if (at_backend_create(*m, &c->be, be)) {
        cli_error();
        at_model_free(*m);
        *m = NULL;
        return EXIT_BAD_INPUT;
    }
    if ((*be)->notice[0] && !c->quiet) fprintf(stderr, "attrib: %s\n", (*be)->notice);
    return 0;
}

void cli_image_notes(unsigned notes) {
    static unsigned shown;
    for (unsigned bit = 1; bit && (notes & ~shown); bit <<= 1) {
        if (!(notes & bit & ~shown)) continue;
        shown |= bit;
        fprintf(stderr, "attrib: warning: %s\n", at_image_notes_text(bit));
    }
}

void cli_print_json(char *line) {
    if (line) printf("%s\n", line);
    else cli_error();
    free(line);
}

int cli_parse_doubles(const char *opt, const char *s, double lo, double hi, double *out, int max, int *n) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= max) return at_fail(opt, "at most %d values", max);
        if (cli_parse_double(opt, t, lo, hi, &out[(*n)++])) return AT_ERR;
    }
    return *n ? AT_OK : at_fail(opt, "empty list");
}

int cli_parse_precision(const char *opt, const char *v, at_precision *out) {
    if (at_precision_parse(v, out)) return at_fail(opt, "'%s' is not fp32, tf32 or fp16", v);
    return AT_OK;
}


static void run_progress(void *ctx, const at_run_progress *p) {
    cli_run *r = ctx;
    switch (p->event) {
    case AT_RUN_START: at_progress_start(&r->prog, p->total, r->label, r->quiet); break;
    case AT_RUN_SKIP: at_progress_skip(&r->prog, p->count); break;
    case AT_RUN_DONE: at_progress_tick(&r->prog, p->count, p->failed); break;
    case AT_RUN_BATCH: at_progress_batch(&r->prog, p->count, p->failed); break;
    case AT_RUN_PARTIAL: at_progress_partial(&r->prog, p->batch, p->fraction); break;
    case AT_RUN_FINISH: at_progress_finish(&r->prog); break;
    }
}
static void run_error(void *ctx, const char *image) { cli_error(); }
static void run_notes(void *ctx, unsigned notes) { cli_image_notes(notes); }
static void run_message(void *ctx, at_run_message kind, const char *text) {
    const cli_run *r = ctx;
    if (kind == AT_RUN_WARNING) fprintf(stderr, "attrib: warning: %s\n", text);
    else if (!r->quiet) fprintf(stderr, "attrib: %s\n", text);
}

void cli_run_init(cli_run *r, at_run_callbacks *cb, const char *label, int quiet) {
    memset(r, 0, sizeof *r);
    r->label = label, r->quiet = quiet;
    *cb = (at_run_callbacks){.progress = run_progress, .error = run_error, .image_notes = run_notes,
                             .message = run_message, .ctx = r};
}

void cli_print_gate_summary(const at_model *m, const gate_summary *s, const char *what) {
    if (!s->paths) return;
    printf("gates of %d path%s (%s): per conv layer, over the paths\n", s->paths, s->paths > 1 ? "s" : "", what);
    printf("%-14s %8s %8s %10s\n", "layer", "min", "mean", "below 0.5");
    int L = m->n_convs < GATE_STATS_MAX_LAYERS ? m->n_convs : GATE_STATS_MAX_LAYERS;
    for (int k = 0; k < L; k++)
        printf("%-14s %8.3f %8.3f %9.1f%%\n", m->layers[m->gate_layer[k]].name, s->min[k], s->mean[k] / s->paths,
                100 * s->below[k] / s->paths);
}
