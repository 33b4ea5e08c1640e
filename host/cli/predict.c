/* ./attrib predict: top-k classes of each image. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/error.h"
#include "preprocess/pipeline.h"

static const char *const HELP =
    "usage: attrib predict [options] IMAGE... | --list FILE\n"
    "Prints the top-k classes of each image (PNG or JPEG) with their probabilities.\n"
    "  --topk K            classes to print per image (default 5)\n"
    "  --json              one JSON object per image on stdout; an image that cannot\n"
    "                      be read gives {\"image\": PATH, \"error\": MESSAGE} there too\n"
    "  --list FILE         read image paths from FILE, one per line ('#' comments)\n"
    "  --strict            stop at the first unreadable image (default: report, skip,\n"
    "                      and exit 1 at the end)\n"
    "  --quiet             no notices on stderr (errors are still printed)\n";

/* A failed image in --json mode: its own object on stdout, so a consumer that
 * reads only stdout still sees every input (the one-line error goes to stderr
 * as well, for people). */
static void print_error_json(const char *path, const char *msg) {
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", path);
    at_jsonw_str(&w, "error", msg);
    cli_print_json(at_jsonw_end(&w));
}

static void print_result(const at_model *m, const char *path, const float *probs, const float *logits,
                         int k, int json) {
    at_ranked *top = calloc(k, sizeof *top);
    if (!top) return;
    at_topk(probs, logits, m->n_classes, k, top);
    if (json) {
        char **items = calloc(k, sizeof *items);
        at_jsonw w;
        for (int j = 0; items && j < k; j++) {
            at_jsonw_begin(&w);
            at_jsonw_int(&w, "class", top[j].cls);
            at_jsonw_str(&w, "id", m->labels[top[j].cls].id);
            at_jsonw_str(&w, "name", m->labels[top[j].cls].name);
            at_jsonw_num(&w, "prob", top[j].prob);
            at_jsonw_num(&w, "logit", top[j].logit);
            items[j] = at_jsonw_end(&w);
        }
        at_jsonw_begin(&w);
        at_jsonw_str(&w, "image", path);
        at_jsonw_str(&w, "model", m->name);
        at_jsonw_str(&w, "model_sha256", m->sha256);
        if (items) at_jsonw_objects(&w, "top", items, k);
        else at_fail(path, "out of memory");
        cli_print_json(items ? at_jsonw_end(&w) : NULL);
        for (int j = 0; items && j < k; j++) free(items[j]);
        free(items);
    } else {
        printf("%s\n", path);
        for (int j = 0; j < k; j++)
            printf("  %d. %6.2f%%  %-10s %s\n", j + 1, 100.0 * top[j].prob, m->labels[top[j].cls].id,
                   m->labels[top[j].cls].name);
    }
    free(top);
}

int cmd_predict(int argc, char **argv) {
    if (cli_help_asked(argc, argv, HELP)) return 0;
    cli_common common;
    cli_common_init(&common);
    cli_paths paths = {0};
    long topk = 5;
    int json = 0, strict = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_parse(&common, argc, argv, &i);
        if (r == AT_ERR) goto usage;
        if (r) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quiet")) continue; /* seen by cli_common_parse */
        else if (!strcmp(a, "--strict")) strict = 1;
        else if (!strcmp(a, "--topk") || !strcmp(a, "--list")) {
            if (i + 1 >= argc) {
                at_fail(a, "needs a value");
                goto usage;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--topk")) {
                if (cli_parse_int("--topk", v, 1, 100000, &topk)) goto usage;
            } else if (cli_paths_add_list(&paths, v)) {
                cli_error();
                cli_paths_free(&paths);
                return EXIT_BAD_INPUT;
            }
        } else if (a[0] == '-' && a[1]) {
            at_fail(a, "unknown option (see attrib predict --help)");
            goto usage;
        } else if (cli_paths_add(&paths, a))
            goto usage;
    }
    if (paths.n == 0) {
        at_fail("predict", "no images given (see attrib predict --help)");
        goto usage;
    }
    at_model *m;
    at_backend *be;
    if ((rc = cli_open(&common, &m, &be))) {
        cli_paths_free(&paths);
        return rc;
    }
    if (topk > m->n_classes) topk = m->n_classes;
    long in_size = (long)m->in_c * m->in_h * m->in_w;
    int batch = at_max_batch(be, 0);
    float *inputs = malloc(sizeof(float) * in_size * batch);
    float *logits = malloc(sizeof(float) * m->n_classes * batch), *probs = malloc(sizeof(float) * m->n_classes * batch);
    /* Per input, its error message (without the path) when it could not be
     * read: --json prints it in input order among the results. */
    char **errors = calloc(paths.n, sizeof *errors);
    unsigned char *bad = calloc(paths.n, 1);
    if (!inputs || !logits || !probs || !errors || !bad) {
        at_fail("predict", "out of memory");
        cli_error();
        rc = EXIT_BAD_INPUT;
    }
    int fatal = rc != 0;
    for (int start = 0; !fatal && start < paths.n;) {
        int b = 0, first = start;
        for (; start < paths.n && b < batch; start++) {
            at_image pre = {0};
            if (at_load_input_rgb(m, paths.paths[start], inputs + in_size * b, &pre, NULL)) {
                cli_error();
                rc = EXIT_BAD_INPUT;
                const char *msg = at_last_error();
                size_t pl = strlen(paths.paths[start]);
                if (!strncmp(msg, paths.paths[start], pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
                errors[start] = strdup(msg); /* NULL on no memory: the line says so */
                bad[start] = 1;
                if (strict) {
                    fatal = 1;
                    start++;
                    break;
                }
                continue;
            }
            cli_image_notes(pre.notes);
            at_image_free(&pre);
            b++;
        }
        if (b && at_predict(be, inputs, b, logits, probs)) {
            cli_error();
            rc = EXIT_BAD_INPUT;
            break;
        }
        for (int i = first, j = 0; i < start; i++) {
            if (bad[i]) {
                if (json) print_error_json(paths.paths[i], errors[i] ? errors[i] : "out of memory");
                continue;
            }
            print_result(m, paths.paths[i], probs + (long)m->n_classes * j, logits + (long)m->n_classes * j,
                         (int)topk, json);
            j++;
        }
        fflush(stdout);
    }
    for (int i = 0; errors && i < paths.n; i++) free(errors[i]);
    free(errors), free(bad);
    free(inputs), free(logits), free(probs);
    at_backend_destroy(be);
    at_model_free(m);
    cli_paths_free(&paths);
    return rc;
usage:
    cli_error();
    cli_paths_free(&paths);
    return EXIT_USAGE;
}
