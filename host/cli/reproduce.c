/* ./attrib reproduce: the Score-CDRP paper's experiments (docs/reproduce.md) from one
 * JSON config. Each step is this same binary run as a child (explain / eval,
 * always with --resume), so an interrupted run continues where it stopped and
 * every step's outputs are the ordinary files of those commands; the report
 * (host/cli/reproduce_report.c) is computed from their per-image lines. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/clock.h"
#include "explain_io.h"
#include "io/json.h"
#include "output/output.h"
#include "reproduce.h"
#include "io/sha256.h"

extern char **environ;

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

/* ------------------------------------------------------------- steps */

typedef struct {
    const char *v[96];
    int n;
} argvec;

static void arg(argvec *a, const char *s) {
    if (a->n < 95) a->v[a->n++] = s;
    a->v[a->n] = NULL;
}


/* Which results a step line belongs to: the maps folder's name, keyed by
 * model, data and options, so a retrained model starts its own account. */
static const char *maps_name(const rp_state *s) {
    const char *slash = strrchr(s->run.maps, '/');
    return slash ? slash + 1 : s->run.maps;
}

/* Seconds spent on `name` by earlier invocations of this run (OUT/steps.jsonl). */
static double earlier_seconds(const rp_state *s, const char *name) {
    char path[4300], line[1024];
    snprintf(path, sizeof path, "%s/steps.jsonl", s->run.cfg->out);
    FILE *f = fopen(path, "r");
    double total = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        at_json *j = NULL;
        if (at_json_parse(line, strcspn(line, "\n"), &j)) continue;
        const at_json *n = at_json_get(j, "step"), *w = at_json_get(j, "wall_s"), *k = at_json_get(j, "run");
        if (n && w && k && n->type == AT_JSON_STRING && w->type == AT_JSON_NUMBER && k->type == AT_JSON_STRING &&
            !strcmp(n->string, name) && !strcmp(k->string, maps_name(s)))
            total += w->number;
        at_json_free(j);
    }
    fclose(f);
    return total;
}

static const char *self_name; /* argv[0] of the steps that run this binary */

/* Ctrl-C reaches the running step through the terminal, but a signal sent
 * to this process alone (kill, timeout) must not leave the step running on
 * behind a later `reproduce` that appends to the same files: pass it on,
 * wait for the step's own cleanup, then clean up as explain/eval do. */
static volatile sig_atomic_t running_step;
static struct sigaction chained[2];

static void forward_signal(int sig) {
    pid_t pid = running_step;
    if (pid > 0) {
        kill(pid, sig);
        waitpid(pid, NULL, 0);
    }
    const struct sigaction *old = &chained[sig == SIGTERM];
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) old->sa_handler(sig);
    _exit(128 + sig);
}

static int install_signal_forwarding(void) {
    static const int sigs[2] = {SIGINT, SIGTERM};
    if (at_output_install_signal_cleanup()) return AT_ERR;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 2; i++) sigaddset(&sa.sa_mask, sigs[i]);
    for (int i = 0; i < 2; i++) {
        if (sigaction(sigs[i], NULL, &chained[i])) return at_fail(NULL, "cannot install signal handlers");
        if (chained[i].sa_handler == SIG_IGN) continue; /* nohup */
        if (sigaction(sigs[i], &sa, NULL)) return at_fail(NULL, "cannot install signal handlers");
    }
    return AT_OK;
}

/* Spawns argv (argv[0] = program path) with stdout to out_path and, when
 * err_path is not NULL, stderr to err_path; waits for it. */
static int spawn_wait(const char *name, argvec *a, const char *out_path, const char *err_path, int *status) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (err_path) posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    pid_t pid;
    /* this binary by /proc/self/exe: the running inode, even if attrib was
     * rebuilt (and so replaced) while the run goes on */
    const char *prog = a->v[0] == self_name ? "/proc/self/exe" : a->v[0];
    int err = posix_spawn(&pid, prog, &fa, NULL, (char *const *)a->v, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err) return at_fail(name, "cannot start %s: %s", a->v[0], strerror(err));
    running_step = pid;
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) {
            running_step = 0;
            return at_fail(name, "waitpid: %s", strerror(errno));
        }
    running_step = 0;
    return AT_OK;
}

/* Runs argv as step `name`; its stdout goes to OUT/logs/<name>.txt, its
 * stderr (progress, errors) to ours. */
static int run_step(rp_state *s, const char *name, argvec *a) {
    if (s->run.n_steps >= RP_MAX_STEPS) return at_fail("reproduce", "too many steps");
    rp_step *st = &s->run.steps[s->run.n_steps];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
    size_t o = 0;
    for (int i = 1; i < a->n && o < sizeof st->what - 1; i++)
        o += snprintf(st->what + o, sizeof st->what - o, "%s%s", i > 1 ? " " : "", a->v[i]);
    double earlier = earlier_seconds(s, name);
    char log[4400], file[64];
    snprintf(file, sizeof file, "%s", name);
    for (char *p = file; *p; p++)
        if (*p == ' ' || *p == '/') *p = '_';
    snprintf(log, sizeof log, "%s/logs/%s.txt", s->run.cfg->out, file);
    fprintf(stderr, "reproduce: [%d] %s\n", s->run.n_steps + 1, name);
    double t0 = at_now_s();
    int status;
    if (spawn_wait(name, a, log, NULL, &status)) return AT_ERR;
    st->wall_s = at_now_s() - t0;
    st->total_s = earlier + st->wall_s;
    st->ran = 1;
    s->run.n_steps++;
    if (WIFSIGNALED(status)) return at_fail(name, "step killed by signal %d; run again to resume", WTERMSIG(status));
    if (WEXITSTATUS(status))
        return at_fail(name, "step failed (exit %d; its output: %s); run again to resume", WEXITSTATUS(status), log);
    char path[4300], line[4500];
    snprintf(path, sizeof path, "%s/steps.jsonl", s->run.cfg->out);
    FILE *f = fopen(path, "a");
    if (f) {
        snprintf(line, sizeof line, "{\"step\":\"%s\",\"run\":\"%s\",\"wall_s\":%.3f,\"unix_time\":%ld}\n", name,
                 maps_name(s), st->wall_s, (long)time(NULL));
        fputs(line, f);
        fclose(f);
    }
    return AT_OK;
}

static void base_args(rp_state *s, argvec *a, const char *command) {
    a->n = 0;
    arg(a, s->exe);
    arg(a, command);
    for (int i = 0; i < s->n_forward; i++) arg(a, s->forward[i]);
    arg(a, "--resume");
    if (s->quiet) arg(a, "--quiet");
}

int rp_explain(rp_state *s, const char *dir, const char *name, const char *method, const char *list,
               const char *const *extra) {
    argvec a;
    base_args(s, &a, "explain");
    arg(&a, "--method"), arg(&a, method), arg(&a, "--out"), arg(&a, dir), arg(&a, "--list"), arg(&a, list);
    for (int i = 0; extra && extra[i]; i++) arg(&a, extra[i]);
    return run_step(s, name, &a);
}

int rp_eval(rp_state *s, const char *dir, const char *name, const char *metric, const char *method,
            const char *const *extra) {
    argvec a;
    base_args(s, &a, "eval");
    arg(&a, "--metric"), arg(&a, metric), arg(&a, "--maps"), arg(&a, dir), arg(&a, "--json");
    if (method) arg(&a, "--method"), arg(&a, method);
    for (int i = 0; extra && extra[i]; i++) arg(&a, extra[i]);
    return run_step(s, name, &a);
}

static int explain_step(rp_state *s, const char *name, const char *method, int list, const char *const *extra) {
    return rp_explain(s, s->run.maps, name, method, s->lists[list], extra);
}

static int eval_step(rp_state *s, const char *name, const char *metric, const char *method, const char *const *extra) {
    return rp_eval(s, s->run.maps, name, metric, method, extra);
}

/* Scenes are complete when make_scenes.py's last file, list.txt, has them all. */
static int scenes_complete(const rp_config *c) {
    char path[4200], line[4200];
    snprintf(path, sizeof path, "%s/list.txt", c->data_dir);
    FILE *f = fopen(path, "r");
    long n = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) n += line[0] != '\n';
    fclose(f);
    return n >= c->gen_count;
}

static int data_step(rp_state *s) {
    const rp_config *c = s->run.cfg;
    if (!c->generate || scenes_complete(c)) return AT_OK;
    if (access("/usr/bin/python3", X_OK))
        return at_fail("data", "generating %s needs /usr/bin/python3 with numpy, PIL and dataset-fashion-mnist "
                       "(ATTRIB_WITH_REPRODUCE=1 bash tools/install_deps.sh)", c->data_dir);
    char script[4300], count[32], seed[32];
    snprintf(script, sizeof script, "%s/make_scenes.py", s->tools);
    snprintf(count, sizeof count, "%ld", c->gen_count);
    snprintf(seed, sizeof seed, "%ld", c->gen_seed);
    argvec a = {0};
    arg(&a, "/usr/bin/python3"), arg(&a, script), arg(&a, "--split"), arg(&a, c->gen_split), arg(&a, "--count");
    arg(&a, count), arg(&a, "--seed"), arg(&a, seed), arg(&a, "--out"), arg(&a, c->data_dir);
    return run_step(s, "data", &a);
}

/* OUT/lists/{cam,path,figure,methods}.txt: the first N, K, G, M images of the data. */
static int write_lists(rp_state *s) {
    const rp_config *c = s->run.cfg;
    cli_paths all = {0};
    if (c->list ? cli_paths_add_list(&all, c->list) : cli_paths_add_dir(&all, c->images_dir)) return AT_ERR;
    if (!all.n) {
        cli_paths_free(&all);
        return at_fail(c->list ? c->list : c->images_dir, "no images");
    }
    int n = c->n_images && c->n_images < all.n ? c->n_images : all.n;
    int k = c->n_path && c->n_path < n ? c->n_path : n;
    int g = c->n_figure < k ? c->n_figure : k;
    int m = c->n_method_images && c->n_method_images < n ? c->n_method_images : n;
    const int counts[4] = {n, k, g, m};
    cli_paths *dst[4] = {&s->run.cam, &s->run.path, &s->run.figure, &s->run.methods};
    static const char *const names[4] = {"cam", "path", "figure", "methods"};
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/lists", c->out);
    int rc = at_output_dir_prepare(dir);
    for (int l = 0; l < 4 && rc == AT_OK; l++) {
        snprintf(s->lists[l], sizeof s->lists[l], "%s/%s.txt", dir, names[l]);
        FILE *f = fopen(s->lists[l], "w");
        if (!f) rc = at_fail(s->lists[l], "%s", strerror(errno));
        for (int i = 0; rc == AT_OK && i < counts[l]; i++) {
            fprintf(f, "%s\n", all.paths[i]);
            rc = cli_paths_add(dst[l], all.paths[i]);
        }
        if (f && fclose(f) && rc == AT_OK) rc = at_fail(s->lists[l], "write error");
    }
    cli_paths_free(&all);
    return rc;
}

static int run_all(rp_state *s) {
    const rp_config *c = s->run.cfg;
    int paths = c->table1 || c->table2 || c->fig7 || c->figures;
    int path_maps = c->table2 || c->fig7 || c->figures;
    const char *pm[2] = {"cdrp", "score-cdrp"};
    char name[96], tag[64], props[512], rates[128];
    size_t o = 0;
    for (int i = 0; i < c->n_props; i++) o += snprintf(props + o, sizeof props - o, "%s%g", i ? "," : "", c->props[i]);
    o = 0;
    for (int i = 0; i < c->n_rates; i++) o += snprintf(rates + o, sizeof rates - o, "%s%g", i ? "," : "", c->rates[i]);
    if (data_step(s) || write_lists(s)) return AT_ERR;
    /* paths first: they are the paper's subject and the long part of the run */
    for (int p = 0; paths && p < 2; p++) {
        const char *opts[RP_MAX_ARGS + 1];
        for (int i = 0; i < c->n_path_opts; i++) opts[i] = c->path_opts[i];
        opts[c->n_path_opts] = NULL;
        snprintf(name, sizeof name, "explain %s", pm[p]);
        if (explain_step(s, name, pm[p], 1, opts)) return AT_ERR;
    }
    /* the path options name the gates files the path maps read */
    for (int p = 0; path_maps && p < 2; p++) {
        const char *opts[RP_MAX_ARGS + 8] = {"--path-method", pm[p], "--gates", s->run.maps};
        int k = 4;
        for (int i = 0; i < c->n_path_opts; i++) opts[k++] = c->path_opts[i];
        opts[k] = NULL;
        snprintf(name, sizeof name, "explain path-scorecam.%s", pm[p]);
        if (explain_step(s, name, "path-scorecam", 1, opts)) return AT_ERR;
    }
    for (int p = 0; c->figures && p < 2; p++) {
        const char *opts[RP_MAX_ARGS + 8] = {"--path-method", pm[p], "--gates", s->run.maps, "--rates", rates};
        int k = 6;
        for (int i = 0; i < c->n_path_opts; i++) opts[k++] = c->path_opts[i];
        opts[k] = NULL;
        snprintf(name, sizeof name, "explain pathway-grad.%s", pm[p]);
        if (explain_step(s, name, "pathway-grad", 2, opts)) return AT_ERR;
    }
    const char *cams[3] = {"scorecam", "gradcam", "gradcam++"};
    int n_cams = c->seed004 ? 3 : c->table2 || c->figures ? 1 : 0;
    for (int m = 0; m < n_cams; m++) {
        snprintf(name, sizeof name, "explain %s", cams[m]);
        if (explain_step(s, name, cams[m], 0, NULL)) return AT_ERR;
    }
    /* seed 004's "Mask" row: meaningful perturbation with 50 Adam steps (the
     * authors' 300 would triple the run) minimising the logit, since the mini
     * model's probabilities saturate at 1 where p_c has no gradient, with
     * regulariser weights for a logit's scale (docs/methods.md#meaningful-perturbation) */
    if (c->seed004 && explain_step(s, "explain meaningful-perturbation", "meaningful-perturbation", 0, rp_mp_opts))
        return AT_ERR;
    if (c->table1 && eval_step(s, "eval confidence", "confidence", NULL, NULL)) return AT_ERR;
    const char *ann[] = {"--annotations", c->annotations, NULL};
    for (int m = 0; m < 5; m++) { /* energy pointing game: Table 2 and seed 004 */
        static const char *const methods[5] = {"scorecam", "path-scorecam.cdrp", "path-scorecam.score-cdrp",
                                               "gradcam", "gradcam++"};
        if (!(m == 0 ? c->table2 || c->seed004 : m < 3 ? c->table2 : c->seed004)) continue;
        snprintf(name, sizeof name, "eval energy-pg %s", methods[m]);
        if (eval_step(s, name, "energy-pg", methods[m], ann)) return AT_ERR;
    }
    if (c->seed004 && eval_step(s, "eval energy-pg meaningful-perturbation", "energy-pg", "meaningful-perturbation", ann))
        return AT_ERR;
    const char *score = c->fig7_logit ? "logit" : "prob", *scorer = c->scorer_path ? "path" : "original";
    snprintf(s->run.eval_key_fig7, sizeof s->run.eval_key_fig7, "%s,%s,top-p", score, scorer);
    for (int p = 0; c->fig7 && p < 2; p++) {
        const char *opts[] = {"--mask-mode", "top-p", "--proportions", props, "--score", score, "--scorer", scorer, NULL};
        snprintf(tag, sizeof tag, "path-scorecam.%s", pm[p]);
        snprintf(name, sizeof name, "eval ad-ic top-p %s", tag);
        if (eval_step(s, name, "ad-ic", tag, opts)) return AT_ERR;
    }
    for (int m = 0; c->seed004 && m < 4; m++)
        for (int sc = 0; sc < 2; sc++) { /* seed 004: raw logits and softmax scores, image x map */
            const char *scs = sc ? "prob" : "logit", *method = m < 3 ? cams[m] : "meaningful-perturbation";
            const char *opts[] = {"--mask-mode", "mult", "--score", scs, NULL};
            snprintf(name, sizeof name, "eval ad-ic %s %s", scs, method);
            if (eval_step(s, name, "ad-ic", method, opts)) return AT_ERR;
        }
    if (c->seed004 && rp_seed004_steps(s)) return AT_ERR;
    if (c->mprt && rp_mprt_steps(s)) return AT_ERR;
    if (c->methods && rp_methods_steps(s)) return AT_ERR;
    return c->lcam ? rp_lcam_steps(s) : AT_OK;
}

int rp_python_tool(rp_state *s, const char *name, const char *script, const char *const *args, char *note,
                   size_t cap) {
    if (access("/usr/bin/python3", X_OK)) {
        snprintf(note, cap, "skipped: /usr/bin/python3 is not installed");
        return AT_ERR;
    }
    argvec probe = {0};
    arg(&probe, "/usr/bin/python3"), arg(&probe, "-c"), arg(&probe, "import matplotlib, numpy");
    int status;
    if (spawn_wait(name, &probe, "/dev/null", "/dev/null", &status) || !WIFEXITED(status) || WEXITSTATUS(status)) {
        snprintf(note, cap, "skipped: /usr/bin/python3 cannot import matplotlib and numpy (apt-get install "
                 "python3-matplotlib)");
        return AT_ERR;
    }
    argvec a = {0};
    arg(&a, "/usr/bin/python3"), arg(&a, script);
    for (int i = 0; args[i]; i++) arg(&a, args[i]);
    if (run_step(s, name, &a)) {
        snprintf(note, cap, "failed: %s", at_last_error());
        fprintf(stderr, "attrib: %s (the report's table holds the numbers)\n", at_last_error());
        return AT_ERR;
    }
    return AT_OK;
}

/* Fig. 7's plot by tools/plot_fig7.py when Python and matplotlib are there;
 * without them the report says so (its table holds the same numbers). */
static void plot_step(rp_state *s) {
    const rp_config *c = s->run.cfg;
    rp_run *r = &s->run;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", c->report);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    const char *base;
    rp_figure_path(c, "fig7.png", r->fig7_png, sizeof r->fig7_png, &base);
    if (at_output_dir_prepare(dir)) {
        snprintf(r->fig7_note, sizeof r->fig7_note, "failed: %s", at_last_error());
        r->fig7_png[0] = 0;
        return;
    }
    if (access("/usr/bin/python3", X_OK)) {
        snprintf(r->fig7_note, sizeof r->fig7_note, "skipped: /usr/bin/python3 is not installed");
        r->fig7_png[0] = 0;
        return;
    }
    argvec probe = {0};
    arg(&probe, "/usr/bin/python3"), arg(&probe, "-c"), arg(&probe, "import matplotlib, numpy");
    int status;
    if (spawn_wait("plot fig7", &probe, "/dev/null", "/dev/null", &status) || !WIFEXITED(status) ||
        WEXITSTATUS(status)) {
        snprintf(r->fig7_note, sizeof r->fig7_note,
                 "skipped: /usr/bin/python3 cannot import matplotlib and numpy (apt-get install python3-matplotlib)");
        r->fig7_png[0] = 0;
        return;
    }
    char script[4300], eval_file[4300], plist[512];
    size_t o = 0;
    for (int i = 0; i < c->n_props; i++) o += snprintf(plist + o, sizeof plist - o, "%s%g", i ? "," : "", c->props[i]);
    snprintf(script, sizeof script, "%s/plot_fig7.py", s->tools);
    snprintf(eval_file, sizeof eval_file, "%s/eval.ad-ic.jsonl", r->maps);
    argvec a = {0};
    arg(&a, "/usr/bin/python3"), arg(&a, script), arg(&a, "--eval"), arg(&a, eval_file), arg(&a, "--key");
    arg(&a, r->eval_key_fig7), arg(&a, "--list"), arg(&a, s->lists[1]), arg(&a, "--proportions"), arg(&a, plist);
    arg(&a, "--out"), arg(&a, r->fig7_png);
    if (run_step(s, "plot fig7", &a)) {
        snprintf(r->fig7_note, sizeof r->fig7_note, "failed: %s", at_last_error());
        fprintf(stderr, "attrib: %s (the report's table holds the numbers)\n", at_last_error());
        r->fig7_png[0] = 0;
    }
}

/* The maps folder's name: a digest of what changes the per-image results
 * (model file, path options, eval settings, generated data), so that
 * --resume never mixes maps of another model or setting into this run. */
static void run_key(const rp_state *s, char key[13]) {
    const rp_config *c = s->run.cfg;
    char text[4096], hex[65];
    /* not the counts: scene i depends on (split, seed, i) only, and more
     * images only add lines */
    size_t o = snprintf(text, sizeof text, "model=%s;gen=%d,%s,%ld;path=", s->run.model_sha, c->generate,
                        c->gen_split, c->gen_seed);
    for (int i = 0; i < c->n_path_opts && o < sizeof text; i++) o += snprintf(text + o, sizeof text - o, "%s ", c->path_opts[i]);
    for (int i = 0; i < c->n_props && o < sizeof text; i++) o += snprintf(text + o, sizeof text - o, ";p%g", c->props[i]);
    for (int i = 0; i < c->n_rates && o < sizeof text; i++) o += snprintf(text + o, sizeof text - o, ";r%g", c->rates[i]);
    if (o < sizeof text) snprintf(text + o, sizeof text - o, ";%d,%d", c->fig7_logit, c->scorer_path);
    at_sha256 h;
    at_sha256_init(&h);
    at_sha256_update(&h, text, strlen(text));
    at_sha256_hex(&h, hex);
    snprintf(key, 13, "%.12s", hex);
}

static int parse_args(rp_state *s, rp_config *c, int argc, char **argv) {
    const char *config = NULL, *out = NULL, *report = NULL;
    cli_common common;
    cli_common_init(&common);
    for (int i = 1; i < argc; i++) {
        int start = i, r = cli_common_parse(&common, argc, argv, &i);
        if (r == AT_ERR) return EXIT_USAGE;
        if (r) {
            for (int k = start; k <= i && s->n_forward < 14; k++) s->forward[s->n_forward++] = argv[k];
            continue;
        }
        const char *o = argv[i];
        if (!strcmp(o, "--quiet")) {
            s->quiet = 1;
            continue;
        }
        if (strcmp(o, "--config") && strcmp(o, "--out") && strcmp(o, "--report"))
            return at_fail(o, "unknown option (see attrib reproduce --help)"), EXIT_USAGE;
        if (i + 1 >= argc) return at_fail(o, "needs a value"), EXIT_USAGE;
        const char *v = argv[++i];
        if (!strcmp(o, "--config")) config = v;
        else if (!strcmp(o, "--out")) out = v;
        else report = v;
    }
    if (!config) return at_fail("--config", "is required (e.g. reproduce/config.json)"), EXIT_USAGE;
    if (rp_config_load(config, c)) return EXIT_BAD_INPUT;
    if (out) free(c->out), c->out = strdup(out);
    if (report) free(c->report), c->report = strdup(report);
    if (!common.model && c->model && s->n_forward < 14) {
        s->forward[s->n_forward++] = "--model";
        s->forward[s->n_forward++] = c->model;
    }
    snprintf(s->run.model_path, sizeof s->run.model_path, "%s",
             common.model ? common.model : c->model ? c->model : cli_default_model());
    return 0;
}

int cmd_reproduce(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(HELP);
            printf("%s", CLI_COMMON_HELP);
            return 0;
        }
    static rp_state s;
    rp_config c;
    memset(&s, 0, sizeof s);
    memset(&c, 0, sizeof c);
    int rc = parse_args(&s, &c, argc, argv);
    if (rc) {
        cli_error();
        rp_config_free(&c);
        return rc;
    }
    s.run.cfg = &c;
    s.t_start = at_now_s();
    ssize_t n = readlink("/proc/self/exe", s.exe, sizeof s.exe - 1);
    if (n <= 0) {
        fprintf(stderr, "attrib: /proc/self/exe: cannot find this program\n");
        rp_config_free(&c);
        return EXIT_BAD_INPUT;
    }
    s.exe[n] = 0;
    char *deleted = strstr(s.exe, " (deleted)");
    if (deleted) *deleted = 0;
    self_name = s.exe;
    /* Spinning OpenMP workers made steps 5-10x slower on a shared machine
     * (docs/reproduce.md); sleeping ones cost little on an idle one. */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    snprintf(s.tools, sizeof s.tools, "%.*s/tools", (int)(strrchr(s.exe, '/') - s.exe), s.exe);
    if (at_sha256_file(s.run.model_path, s.run.model_sha)) {
        cli_error();
        rp_config_free(&c);
        return EXIT_BAD_INPUT;
    }
    char logs[4300], key[13];
    run_key(&s, key);
    snprintf(s.run.maps, sizeof s.run.maps, "%s/maps-%s", c.out, key);
    snprintf(s.run.methods_dir, sizeof s.run.methods_dir, "%s/methods-%s-rise%ld", c.out, key, c.rise_n);
    snprintf(s.run.mprt_dir, sizeof s.run.mprt_dir, "%s/mprt-%s", c.out, key);
    snprintf(logs, sizeof logs, "%s/logs", c.out);
    rc = EXIT_BAD_INPUT;
    if (at_output_dir_prepare(logs) || at_output_dir_prepare(s.run.maps) ||
        ((c.methods || c.lcam) && at_output_dir_prepare(s.run.methods_dir)) || install_signal_forwarding() ||
        run_all(&s)) {
        cli_error();
        goto done;
    }
    if (c.fig7) plot_step(&s);
    s.run.wall_total_s = at_now_s() - s.t_start;
    if (rp_write_report(&s.run)) {
        cli_error();
        goto done;
    }
    fprintf(stderr, "reproduce: %s written (%.0f s)\n", c.report, s.run.wall_total_s);
    rc = 0;
done:
    cli_paths_free(&s.run.cam), cli_paths_free(&s.run.path), cli_paths_free(&s.run.figure);
    cli_paths_free(&s.run.methods), cli_paths_free(&s.run.mprt);
    rp_config_free(&c);
    return rc;
}
