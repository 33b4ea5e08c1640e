/* at_reproduce_run: the experiments' steps, each a child process (attrib
 * explain / eval with --resume, or a Python tool) whose stdout goes to
 * OUT/logs/<step>.txt; then the report (report.c) from their per-image lines. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/affinity.h"
#include "core/error.h"
#include "core/clock.h"
#include "io/json.h"
#include "output/output.h"
#include "io/sha256.h"
#include "reproduce/internal.h"

extern char **environ;

/* ------------------------------------------------------------- steps */

typedef struct {
    const char *prog; /* the file to run; NULL: v[0] */
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

typedef struct {
    const char *name, *run;
    double total;
} earlier_ctx;

static int earlier_line(const at_json *j, void *ctx) {
    earlier_ctx *c = ctx;
    const at_json *n = at_json_get(j, "step"), *w = at_json_get(j, "wall_s"), *k = at_json_get(j, "run");
    if (n && w && k && n->type == AT_JSON_STRING && w->type == AT_JSON_NUMBER && k->type == AT_JSON_STRING &&
        !strcmp(n->string, c->name) && !strcmp(k->string, c->run))
        c->total += w->number;
    return AT_OK;
}

/* Seconds spent on `name` by earlier invocations of this run (OUT/steps.jsonl). */
static double earlier_seconds(const rp_state *s, const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/steps.jsonl", s->run.cfg->out);
    earlier_ctx c = {name, maps_name(s), 0};
    if (access(path, F_OK) == 0 && at_jsonl_each(path, earlier_line, &c)) at_clear_error();
    return c.total;
}

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
    static int installed; /* once: a second run must not chain to itself */
    if (installed) return AT_OK;
    if (at_output_install_signal_cleanup()) return AT_ERR;
    installed = 1;
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

/* The steps' environment: ours, with OMP_WAIT_POLICY=passive unless set.
 * Spinning OpenMP workers made steps 5-10x slower on a shared machine
 * (docs/reproduce.md); sleeping ones cost little on an idle one. */
static char **step_env(void) {
    static char **env;
    static char passive[] = "OMP_WAIT_POLICY=passive";
    if (env) return env;
    int n = 0;
    for (; environ[n]; n++)
        if (!strncmp(environ[n], "OMP_WAIT_POLICY=", 16)) return environ;
    env = malloc(sizeof *env * (n + 2));
    if (!env) return environ;
    memcpy(env, environ, sizeof *env * n);
    env[n] = passive, env[n + 1] = NULL;
    return env;
}

/* Spawns argv (argv[0] = program path) with stdout to out_path and stderr
 * to err_path (appended to when err_append; NULL: ours); waits for it. */
static int spawn_wait(const char *name, argvec *a, const char *out_path, const char *err_path, int err_append,
                      int *status) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (err_path)
        posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | (err_append ? O_APPEND : O_TRUNC), 0666);
    pid_t pid;
    cpu_set_t mine;
    const int widened = at_widen_cpus_for_child(&mine); /* the step gets every core, not our bound one */
    int err = posix_spawn(&pid, a->prog ? a->prog : a->v[0], &fa, NULL, (char *const *)a->v, step_env());
    if (widened) at_restore_cpus(&mine);
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
 * stderr (progress, errors) to opt->steps_stderr. A dry pass only counts it. */
static int run_step(rp_state *s, const char *name, argvec *a) {
    if (s->dry) {
        s->n_planned++;
        return AT_OK;
    }
    if (s->run.n_steps >= RP_MAX_STEPS) return at_fail("reproduce", "too many steps");
    rp_step *st = &s->run.steps[s->run.n_steps];
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", name);
    double earlier = earlier_seconds(s, name);
    char log[4400], file[64];
    snprintf(file, sizeof file, "%s", name);
    for (char *p = file; *p; p++)
        if (*p == ' ' || *p == '/') *p = '_';
    snprintf(log, sizeof log, "%s/logs/%s.txt", s->run.cfg->out, file);
    if (s->opt->on_progress) s->opt->on_progress(s->opt->user, name, s->run.n_steps, s->n_planned);
    double t0 = at_now_s();
    int status;
    if (spawn_wait(name, a, log, s->opt->steps_stderr, 1, &status)) return AT_ERR;
    st->wall_s = at_now_s() - t0;
    st->total_s = earlier + st->wall_s;
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
    const at_reproduce_options *o = s->opt;
    a->n = 0;
    a->prog = o->attrib;
    arg(a, s->argv0);
    arg(a, command);
    for (int i = 0; o->step_args && o->step_args[i]; i++) arg(a, o->step_args[i]);
    arg(a, "--model"), arg(a, s->run.model_path), arg(a, "--resume");
    if (o->quiet) arg(a, "--quiet");
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
static int scenes_complete(const at_reproduce_config *c) {
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
    const at_reproduce_config *c = s->run.cfg;
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
    const at_reproduce_config *c = s->run.cfg;
    if (s->dry) return AT_OK; /* the data may not be there yet */
    at_paths all = {0};
    if (c->list ? at_paths_add_list(&all, c->list) : at_paths_add_dir(&all, c->images_dir)) return AT_ERR;
    if (!all.n) {
        at_paths_free(&all);
        return at_fail(c->list ? c->list : c->images_dir, "no images");
    }
    int n = c->n_images && c->n_images < all.n ? c->n_images : all.n;
    int k = c->n_path && c->n_path < n ? c->n_path : n;
    int g = c->n_figure < k ? c->n_figure : k;
    int m = c->n_method_images && c->n_method_images < n ? c->n_method_images : n;
    const int counts[4] = {n, k, g, m};
    at_paths *dst[4] = {&s->run.cam, &s->run.path, &s->run.figure, &s->run.methods};
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
            rc = at_paths_add(dst[l], all.paths[i]);
        }
        if (f && fclose(f) && rc == AT_OK) rc = at_fail(s->lists[l], "write error");
    }
    at_paths_free(&all);
    return rc;
}

static void plot_step(rp_state *s);

static int run_all(rp_state *s) {
    const at_reproduce_config *c = s->run.cfg;
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
        const char *opts[AT_REPRODUCE_MAX_ARGS + 1];
        for (int i = 0; i < c->n_path_opts; i++) opts[i] = c->path_opts[i];
        opts[c->n_path_opts] = NULL;
        snprintf(name, sizeof name, "explain %s", pm[p]);
        if (explain_step(s, name, pm[p], 1, opts)) return AT_ERR;
    }
    /* the path options name the gates files the path maps read */
    for (int p = 0; path_maps && p < 2; p++) {
        const char *opts[AT_REPRODUCE_MAX_ARGS + 8] = {"--path-method", pm[p], "--gates", s->run.maps};
        int k = 4;
        for (int i = 0; i < c->n_path_opts; i++) opts[k++] = c->path_opts[i];
        opts[k] = NULL;
        snprintf(name, sizeof name, "explain path-scorecam.%s", pm[p]);
        if (explain_step(s, name, "path-scorecam", 1, opts)) return AT_ERR;
    }
    for (int p = 0; c->figures && p < 2; p++) {
        const char *opts[AT_REPRODUCE_MAX_ARGS + 8] = {"--path-method", pm[p], "--gates", s->run.maps, "--rates", rates};
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
    if (c->lcam && rp_lcam_steps(s)) return AT_ERR;
    if (c->fig7) plot_step(s);
    return AT_OK;
}

int rp_python_tool(rp_state *s, const char *name, const char *script, const char *const *args, char *note,
                   size_t cap) {
    if (s->python < 0) {
        argvec probe = {0};
        arg(&probe, "/usr/bin/python3"), arg(&probe, "-c"), arg(&probe, "import matplotlib, numpy");
        int status;
        s->python = !access("/usr/bin/python3", X_OK) ? 2 : 0;
        if (s->python && (spawn_wait(name, &probe, "/dev/null", "/dev/null", 0, &status) || !WIFEXITED(status) ||
                          WEXITSTATUS(status)))
            s->python = 1, at_clear_error();
    }
    if (s->python < 2) {
        snprintf(note, cap, s->python ? "skipped: /usr/bin/python3 cannot import matplotlib and numpy (apt-get "
                                        "install python3-matplotlib)"
                                      : "skipped: /usr/bin/python3 is not installed");
        return AT_ERR;
    }
    argvec a = {0};
    arg(&a, "/usr/bin/python3"), arg(&a, script);
    for (int i = 0; args[i]; i++) arg(&a, args[i]);
    if (run_step(s, name, &a)) {
        snprintf(note, cap, "failed: %s", at_last_error());
        if (s->opt->on_notice) {
            char text[1200];
            snprintf(text, sizeof text, "%s (the report's table holds the numbers)", at_last_error());
            s->opt->on_notice(s->opt->user, text);
        }
        at_clear_error();
        return AT_ERR;
    }
    return AT_OK;
}

/* Fig. 7's plot by tools/plot_fig7.py when Python and matplotlib are there;
 * without them the report says so (its table holds the same numbers). */
static void plot_step(rp_state *s) {
    const at_reproduce_config *c = s->run.cfg;
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
    char script[4300], eval_file[4300], plist[512];
    size_t o = 0;
    for (int i = 0; i < c->n_props; i++) o += snprintf(plist + o, sizeof plist - o, "%s%g", i ? "," : "", c->props[i]);
    snprintf(script, sizeof script, "%s/plot_fig7.py", s->tools);
    snprintf(eval_file, sizeof eval_file, "%s/eval.ad-ic.jsonl", r->maps);
    const char *args[] = {"--eval", eval_file, "--key", r->eval_key_fig7, "--list", s->lists[1],
                          "--proportions", plist, "--out", r->fig7_png, NULL};
    if (rp_python_tool(s, "plot fig7", script, args, r->fig7_note, sizeof r->fig7_note)) r->fig7_png[0] = 0;
}

/* The maps folder's name: a digest of what changes the per-image results
 * (model file, path options, eval settings, generated data), so that
 * --resume never mixes maps of another model or setting into this run. */
static void run_key(const rp_state *s, char key[13]) {
    const at_reproduce_config *c = s->run.cfg;
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

static void free_run(rp_run *r) {
    at_paths_free(&r->cam), at_paths_free(&r->path), at_paths_free(&r->figure);
    at_paths_free(&r->methods), at_paths_free(&r->mprt);
}

int at_reproduce_run(const at_reproduce_config *c, const at_reproduce_options *opt) {
    if (!opt->attrib) return at_fail("reproduce", "needs the attrib program that runs the steps");
    const char *model = opt->model ? opt->model : c->model;
    if (!model) return at_fail(c->config_path, "model: none given");
    rp_state *s = calloc(1, sizeof *s);
    if (!s) return at_fail("reproduce", "out of memory");
    s->run.cfg = c;
    s->opt = opt;
    s->python = -1;
    s->t_start = at_now_s();
    snprintf(s->run.model_path, sizeof s->run.model_path, "%s", model);
    /* the steps' argv[0]: the running file's name where attrib is this program */
    ssize_t n = !strcmp(opt->attrib, "/proc/self/exe") ? readlink(opt->attrib, s->argv0, sizeof s->argv0 - 1) : -1;
    if (n > 0) {
        s->argv0[n] = 0;
        char *deleted = strstr(s->argv0, " (deleted)"); /* rebuilt meanwhile */
        if (deleted) *deleted = 0;
    } else snprintf(s->argv0, sizeof s->argv0, "%s", opt->attrib);
    const char *slash = strrchr(s->argv0, '/');
    if (opt->tools) snprintf(s->tools, sizeof s->tools, "%s", opt->tools);
    else snprintf(s->tools, sizeof s->tools, "%.*s/tools", slash ? (int)(slash - s->argv0) : 1, slash ? s->argv0 : ".");
    int rc = at_sha256_file(s->run.model_path, s->run.model_sha);
    char logs[4300], key[13];
    run_key(s, key);
    snprintf(s->run.maps, sizeof s->run.maps, "%s/maps-%s", c->out, key);
    snprintf(s->run.methods_dir, sizeof s->run.methods_dir, "%s/methods-%s-rise%ld", c->out, key, c->rise_n);
    snprintf(s->run.mprt_dir, sizeof s->run.mprt_dir, "%s/mprt-%s", c->out, key);
    snprintf(logs, sizeof logs, "%s/logs", c->out);
    if (!rc && (at_output_dir_prepare(logs) || at_output_dir_prepare(s->run.maps) ||
                ((c->methods || c->lcam) && at_output_dir_prepare(s->run.methods_dir)) ||
                (opt->forward_signals && install_signal_forwarding())))
        rc = AT_ERR;
    /* count the steps, then run them */
    s->dry = 1;
    if (!rc) rc = run_all(s);
    free_run(&s->run);
    s->dry = 0;
    s->run.n_steps = 0;
    if (!rc) rc = run_all(s);
    if (!rc) {
        s->run.wall_total_s = at_now_s() - s->t_start;
        if (opt->on_progress) opt->on_progress(opt->user, "report", s->run.n_steps, s->n_planned);
        rc = rp_write_report(&s->run);
    }
    free_run(&s->run);
    free(s);
    return rc;
}
