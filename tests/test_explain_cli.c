/* ./attrib explain as a batch tool: outputs named and laid out as docs/usage.md#explain says,
 * resume, one bad image skipped, interruption leaves no partial files,
 * routing-path outputs and their gates files. Runs on a tiny random model. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "io/image.h"
#include "io/json.h"
#include "model/model.h"
#include "model_fixture.h"
#include "io/npy.h"
#include "test.h"

static char out[65536];

typedef struct {
    char dir[512], model[600], imgs[4][600], outdir[600];
} fixture;

static int make_fixture(fixture *f) {
    if (!FIXTURE_MODEL_DIR(f)) return 0;
    snprintf(f->outdir, sizeof f->outdir, "%s/out", f->dir);
    for (int k = 0; k < 4; k++) {
        snprintf(f->imgs[k], sizeof f->imgs[k], "%s/img%d.png", f->dir, k);
        if (!fixture_pattern_png(f->imgs[k], 32, 32, 37 + 2 * k, 4, k)) return 0;
    }
    return 1;
}

static int explain(const fixture *f, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --out %s %s", test_root(), f->model,
             f->outdir, args);
    return run_cmd(cmd, out, sizeof out);
}

/* eval's JSON summary of AD/IC over the output folder (NULL when eval or the parse failed). */
static at_json *eval_ad_ic(const fixture *f) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --json --model %s --maps %s --metric ad-ic",
             test_root(), f->model, f->outdir);
    at_json *j = NULL;
    if (run_cmd(cmd, out, sizeof out) != 0 || at_json_parse(out, strlen(out), &j) != AT_OK) return NULL;
    return j;
}

/* Saliency maps of the first two images (explain's exit status); path: the results file. */
static int explain_two(const fixture *f, char *path, size_t cap) {
    char args[4096];
    snprintf(path, cap, "%s/results.jsonl", f->outdir);
    snprintf(args, sizeof args, "--method saliency %s %s", f->imgs[0], f->imgs[1]);
    return explain(f, args);
}

/* Once path holds `lines` lines (or after ms milliseconds), a Ctrl-C to pid;
 * its exit status (-1 when it did not exit). */
static int interrupt_at_lines(pid_t pid, const char *path, int lines, int ms) {
    for (int t = 0; t < ms && test_count_lines(path) < lines; t++) usleep(1000);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    closedir(d);
    return n;
}

TEST(explain_writes_map_overlay_and_results_line_per_image) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1200];
    snprintf(args, sizeof args, "--method gradcam --layer 4 %s %s", f.imgs[0], f.imgs[1]);
    REQUIRE(explain(&f, args) == 0);
    snprintf(path, sizeof path, "%s/img0.gradcam.features.12.npy", f.outdir); /* not the default layer */
    float *map = NULL;
    int ndim;
    int64_t shape[8];
    REQUIRE(at_npy_read_f32(path, &map, &ndim, shape) == AT_OK);
    CHECK(ndim == 2 && shape[0] == 32 && shape[1] == 32);
    float lo = 1, hi = 0;
    for (int i = 0; i < 32 * 32; i++) lo = map[i] < lo ? map[i] : lo, hi = map[i] > hi ? map[i] : hi;
    CHECK(lo >= 0 && hi <= 1);
    free(map);
    snprintf(path, sizeof path, "%s/img1.gradcam.features.12.png", f.outdir);
    at_image img = {0};
    CHECK(at_image_load(path, &img) == AT_OK && img.w == 32 && img.h == 32);
    at_image_free(&img);
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    CHECK(test_count_lines(path) == 2);
    FILE *fp = fopen(path, "r");
    char line[8192];
    REQUIRE(fgets(line, sizeof line, fp));
    fclose(fp);
    at_json *j = NULL;
    REQUIRE(at_json_parse(line, strlen(line), &j) == AT_OK);
    const char *keys[] = {"image", "method", "layer", "class", "label", "prob", "map", "overlay", "ms",
                          "engine", "model_sha256", "class_option"};
    for (int k = 0; k < 12; k++) CHECKF(at_json_get(j, keys[k]) != NULL, "results line lacks '%s'", keys[k]);
    CHECK(!strcmp(at_json_get(j, "layer")->string, "features.12")); /* vgg11: conv 4 is features.11, its ReLU features.12 */
    at_json_free(j);
}

TEST(explain_resume_skips_finished_images_and_rerun_appends_nothing) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1200];
    REQUIRE(explain_two(&f, path, sizeof path) == 0);
    snprintf(args, sizeof args, "--resume --method saliency %s %s %s", f.imgs[0], f.imgs[1], f.imgs[2]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --model %s --out %s %s 2>&1", test_root(), f.model,
             f.outdir, args); /* with progress: the images done before are not in the rate */
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    CHECKF(strstr(out, "explain: 3/3 images in ") && strstr(out, " (2 done before)"), "%s", out);
    CHECK(test_count_lines(path) == 3);
    REQUIRE(explain(&f, args) == 0);
    CHECK(test_count_lines(path) == 3);
    snprintf(args, sizeof args, "--resume --method saliency --class 2 %s", f.imgs[0]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(test_count_lines(path) == 4); /* another class option is another key */
}

TEST(explain_bad_image_is_skipped_unless_strict) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1200];
    snprintf(args, sizeof args, "--method saliency %s /nonexistent.png %s", f.imgs[0], f.imgs[1]);
    CHECK(explain(&f, args) == 1);
    CHECK(strstr(out, "attrib: /nonexistent.png: ") != NULL);
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    CHECK(test_count_lines(path) == 2);
    snprintf(args, sizeof args, "--strict --method saliency /nonexistent.png %s", f.imgs[2]);
    CHECK(explain(&f, args) == 1);
    CHECK(test_count_lines(path) == 2);
}

TEST(explain_rejects_bad_options_as_usage_errors) {
    WITH_FIXTURE(fixture, f);
    char args[4096];
    const char *bad[] = {"--method lrp-zplus", "--method scorecam --layer features.99", "--method gradcam --class 99",
                         "--method saliency --variant pgc", "--method cdrp --class 1", "--method cdrp --lr x",
                         "--method pathway-grad --rates 0.5,1.5", "--method cdrp --preset khakzar",
                         "--method cdrp --gates /tmp", "--layer 3",
                         "--method gradcam --layer classifier.0", /* 1x1: refused once, before any image */
                         "--method saliency --resume --overwrite"};
    for (int i = 0; i < 12; i++) {
        snprintf(args, sizeof args, "%s %s", bad[i], f.imgs[0]);
        int rc = explain(&f, args);
        CHECKF(rc == 2 && strncmp(out, "attrib: ", 8) == 0 && strchr(out, '\n') == out + strlen(out) - 1,
               "'%s': exit %d, output: %s", bad[i], rc, out);
    }
}

TEST(explain_routing_paths_write_gates_with_offsets_and_path_maps) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1200];
    snprintf(args, sizeof args, "--method score-cdrp --iterations 5 %s %s", f.imgs[0], f.imgs[1]);
    REQUIRE(explain(&f, args) == 0);
    snprintf(path, sizeof path, "%s/img1.score-cdrp.T5.gates.npy", f.outdir); /* T 5: not the preset's 100 */
    float *g = NULL;
    int ndim;
    int64_t shape[8];
    REQUIRE(at_npy_read_f32(path, &g, &ndim, shape) == AT_OK);
    CHECK(ndim == 1 && shape[0] == 4 + 6 + 8 * 6);
    for (int i = 0; i < shape[0]; i++) CHECK(g[i] >= 0 && g[i] <= 10);
    free(g);
    snprintf(args, sizeof args, "--method pathway-grad --iterations 5 --gates %s --rates 0.5,0.9 %s", f.outdir,
             f.imgs[0]);
    REQUIRE(explain(&f, args) == 0);
    snprintf(path, sizeof path, "%s/img0.pathway-grad.score-cdrp.T5.r0.90.npy", f.outdir);
    CHECK(access(path, R_OK) == 0);
    /* a gates file of the wrong length is named */
    snprintf(path, sizeof path, "%s/img2.score-cdrp.gates.npy", f.outdir); /* the default settings' name */
    float wrong[7] = {0};
    int64_t n7 = 7;
    REQUIRE(at_npy_write_f32(path, wrong, 1, &n7) == AT_OK);
    snprintf(args, sizeof args, "--method path-scorecam --gates %s %s", f.outdir, f.imgs[2]);
    CHECK(explain(&f, args) == 1 && strstr(out, "img2.score-cdrp.gates.npy") && strstr(out, "7 values"));
}

TEST(explain_interrupted_leaves_no_partial_file_and_keeps_finished_lines) {
    WITH_FIXTURE(fixture, f);
    char list[700], cmd[8192], path[1200];
    snprintf(list, sizeof list, "%s/list.txt", f.dir);
    FILE *fp = fopen(list, "w");
    /* long enough to be killed mid-run even on a fast idle machine; distinct
     * paths (hard links), as a repeated path is explained once */
    for (int r = 0; r < 2000; r++) {
        char name[700];
        snprintf(name, sizeof name, "%s/many%04d.png", f.dir, r);
        if (link(f.imgs[r % 4], name) == 0) fprintf(fp, "%s\n", name);
    }
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/attrib", test_root());
    pid_t pid = fork();
    if (pid == 0) {
        /* a user's Ctrl-C; under a shell that ran us in the background SIGINT
         * arrives ignored, and attrib rightly keeps ignoring it then */
        signal(SIGINT, SIG_DFL);
        int devnull = open("/dev/null", 1);
        dup2(devnull, 2);
        execl(cmd, cmd, "explain", "--backend", "cpu", "--quiet", "--model", f.model, "--out", f.outdir, "--method",
              "scorecam", "--list", list, (char *)NULL);
        _exit(127);
    }
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    int st = interrupt_at_lines(pid, path, 2, 4000);
    CHECKF(st == 130, "exit status %d", st);
    int lines = test_count_lines(path);
    CHECK(lines >= 2);
    CHECK(count_tmp_files(f.outdir) == 0);
    /* every line is complete JSON */
    fp = fopen(path, "r");
    char line[8192];
    while (fp && fgets(line, sizeof line, fp)) {
        at_json *j = NULL;
        CHECK(at_json_parse(line, strlen(line), &j) == AT_OK);
        at_json_free(j);
    }
    if (fp) fclose(fp);
}

/* the value of member key in line number `which` (0-based) of results.jsonl */
static int line_member(const fixture *f, int which, const char *key, char *val, size_t cap) {
    char path[1200], line[16384];
    snprintf(path, sizeof path, "%s/results.jsonl", f->outdir);
    FILE *fp = fopen(path, "r");
    int i = 0, ok = 0;
    while (fp && fgets(line, sizeof line, fp))
        if (i++ == which) {
            at_json *j = NULL;
            if (at_json_parse(line, strlen(line), &j) == AT_OK) {
                const at_json *v = at_json_get(j, key);
                if (v && v->type == AT_JSON_STRING) snprintf(val, cap, "%s", v->string), ok = 1;
                else if (v && v->type == AT_JSON_NUMBER) snprintf(val, cap, "%g", v->number), ok = 1;
                else if (v && v->type == AT_JSON_BOOL) snprintf(val, cap, "%s", v->boolean ? "true" : "false"), ok = 1;
                else if (v && v->type == AT_JSON_ARRAY) snprintf(val, cap, "[%zu]", v->n), ok = 1;
            }
            at_json_free(j);
        }
    if (fp) fclose(fp);
    return ok;
}

TEST(explain_runs_differing_in_layer_class_or_variant_write_their_own_files) {
    WITH_FIXTURE(fixture, f);
    char csv[1200], truth[1400];
    snprintf(csv, sizeof csv, "%s/images.csv", f.dir);
    FILE *fp = fopen(csv, "w");
    fprintf(fp, "ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass,OriginalLandingURL,License,Author,AuthorProfileURL\n"
                "img0,,0,0,9,9,5,1,,,,\n");
    fclose(fp);
    snprintf(truth, sizeof truth, "--class truth --annotations %s", csv);
    const char *runs[5] = {"", "--layer 2", "--layer 4 --class 3", "--variant pgc", truth};
    const char *want[5] = {"img0.gradcam.npy", "img0.gradcam.features.7.npy", "img0.gradcam.features.12.c3.npy",
                           "img0.gradcam.pgc.npy", "img0.gradcam.truth.npy"};
    char args[4096], path[1200], map[1200];
    for (int r = 0; r < 5; r++) {
        snprintf(args, sizeof args, "--method gradcam %s %s", runs[r], f.imgs[0]);
        REQUIRE(explain(&f, args) == 0);
        snprintf(path, sizeof path, "%s/%s", f.outdir, want[r]);
        if (r == 4) CHECK(line_member(&f, r, "class", map, sizeof map) && !strcmp(map, "4")); /* TrueLabel - 1 */
        CHECKF(access(path, R_OK) == 0, "%s: no %s", runs[r], want[r]);
        CHECK(line_member(&f, r, "map", map, sizeof map) && !strcmp(map, path)); /* the line names its own file */
    }
    /* eval scores each setting as its own row of one image, not one row of n = 5 */
    at_json *j = eval_ad_ic(&f);
    REQUIRE(j);
    const at_json *rows = at_json_get(j, "rows");
    CHECK(rows && rows->n == 5);
    for (size_t i = 0; rows && i < rows->n; i++) CHECK(at_json_get(&rows->items[i], "images")->number == 1);
    at_json_free(j);
}

TEST(explain_rerun_is_refused_unless_resume_or_overwrite_and_overwrite_replaces) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1200];
    REQUIRE(explain_two(&f, path, sizeof path) == 0);
    CHECK(explain_two(&f, path, sizeof path) == 2 && strstr(out, "already holds saliency results for 2 of these 2 images"));
    CHECK(test_count_lines(path) == 2);
    snprintf(args, sizeof args, "--method saliency --overwrite %s %s %s", f.imgs[0], f.imgs[1], f.imgs[2]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(test_count_lines(path) == 3); /* two replaced, one new */
    snprintf(args, sizeof args, "--method saliency --class 1 %s", f.imgs[0]); /* another setting: no conflict */
    CHECK(explain(&f, args) == 0 && test_count_lines(path) == 4);
    snprintf(args, sizeof args, "--method saliency %s %s", f.imgs[3], f.imgs[3]); /* one image given twice */
    CHECK(explain(&f, args) == 0 && test_count_lines(path) == 5);
}

TEST(eval_counts_a_duplicated_results_line_once_and_says_so) {
    WITH_FIXTURE(fixture, f);
    char path[1200], line[16384];
    REQUIRE(explain_two(&f, path, sizeof path) == 0);
    FILE *fp = fopen(path, "r");
    REQUIRE(fp && fgets(line, sizeof line, fp));
    fclose(fp);
    fp = fopen(path, "a"); /* an older engine's second run appended it again */
    fputs(line, fp);
    fclose(fp);
    at_json *j = eval_ad_ic(&f);
    REQUIRE(j);
    CHECK(at_json_get(j, "merged_lines")->number == 1);
    CHECK(at_json_get(&at_json_get(j, "rows")->items[0], "images")->number == 2);
    at_json_free(j);
}

TEST(explain_results_lines_say_the_batch_behind_their_time) {
    WITH_FIXTURE(fixture, f);
    char args[4096], v[64];
    snprintf(args, sizeof args, "--method gradcam %s %s %s", f.imgs[0], f.imgs[1], f.imgs[2]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(line_member(&f, 2, "batch", v, sizeof v) && !strcmp(v, "3")); /* ms = the batch's time / 3 */
}

/* Path methods start with a batch of one image and grow it by measured time,
 * each batch's lines written as soon as it finishes. */
TEST(explain_path_batches_start_small_and_write_each_batch_at_once) {
    WITH_FIXTURE(fixture, f);
    char args[4096], v[64];
    snprintf(args, sizeof args, "--method cdrp --iterations 3 %s %s %s %s", f.imgs[0], f.imgs[1], f.imgs[2],
             f.imgs[3]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(line_member(&f, 0, "batch", v, sizeof v) && !strcmp(v, "1"));
    CHECK(line_member(&f, 1, "batch", v, sizeof v) && !strcmp(v, "2"));
    /* per layer gate statistics in the line */
    CHECK(line_member(&f, 0, "gate_min", v, sizeof v) && !strcmp(v, "[8]"));
    CHECK(line_member(&f, 0, "gate_below_half", v, sizeof v) && !strcmp(v, "[8]"));
    /* and as a table for any gates files */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib info --model %s --gates %s/img0.cdrp.T3.gates.npy %s/img1.cdrp.T3.gates.npy",
             test_root(), f.model, f.outdir, f.outdir);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "gates of 2 paths") && strstr(out, "below 0.5") &&
               strstr(out, "features.19 "),
           "%s", out);
}

TEST(explain_interrupted_path_run_keeps_finished_batches_and_says_how_many) {
    WITH_FIXTURE(fixture, f);
    char cmd[8192], path[1200], err[1200];
    snprintf(cmd, sizeof cmd, "%s/attrib", test_root());
    snprintf(err, sizeof err, "%s/stderr.txt", f.dir);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        dup2(fd, 2);
        execl(cmd, cmd, "explain", "--backend", "cpu", "--quiet", "--model", f.model, "--out", f.outdir, "--method",
              "cdrp", "--iterations", "10000", f.imgs[0], f.imgs[1], f.imgs[2], f.imgs[3], (char *)NULL);
        _exit(127);
    }
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    /* the first batch is one image: its line comes long before the others' */
    CHECK(interrupt_at_lines(pid, path, 1, 60000) == 130);
    int lines = test_count_lines(path);
    CHECKF(lines >= 1 && lines < 4, "%d lines", lines);
    char msg[4096];
    test_read_text(err, msg, sizeof msg);
    char want[64];
    snprintf(want, sizeof want, ": %d results lines of this run kept", lines);
    CHECKF(strstr(msg, want), "stderr: %s", msg);
    CHECK(count_tmp_files(f.outdir) == 0);
}

/* member key of the last results line of method (and settings) for image */
static int find_member(const fixture *f, const char *method, const char *settings, const char *image,
                       const char *key, char *val, size_t cap) {
    char path[1200], line[16384];
    snprintf(path, sizeof path, "%s/results.jsonl", f->outdir);
    FILE *fp = fopen(path, "r");
    int ok = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        at_json *j = NULL;
        if (at_json_parse(line, strlen(line), &j) != AT_OK) continue;
        const at_json *me = at_json_get(j, "method"), *st = at_json_get(j, "settings"), *im = at_json_get(j, "image");
        const at_json *v = at_json_get(j, key);
        if (me && st && im && !strcmp(me->string, method) && !strcmp(st->string, settings) &&
            !strcmp(im->string, image)) {
            ok = v != NULL;
            if (v && v->type == AT_JSON_STRING) snprintf(val, cap, "%s", v->string);
            else if (v && v->type == AT_JSON_NUMBER) snprintf(val, cap, "%g", v->number);
            else if (v && v->type == AT_JSON_BOOL) snprintf(val, cap, "%s", v->boolean ? "true" : "false");
            else if (v && v->type == AT_JSON_ARRAY) snprintf(val, cap, "[%zu]", v->n);
        }
        at_json_free(j);
    }
    if (fp) fclose(fp);
    return ok;
}

TEST(explain_path_maps_reuse_the_paths_in_out_unless_told) {
    WITH_FIXTURE(fixture, f);
    char args[4096], v[1200], gates[1200];
    snprintf(args, sizeof args, "--method score-cdrp --iterations 3 %s", f.imgs[0]);
    REQUIRE(explain(&f, args) == 0);
    snprintf(gates, sizeof gates, "%s/img0.score-cdrp.T3.gates.npy", f.outdir);
    snprintf(args, sizeof args, "--method path-scorecam --iterations 3 %s %s", f.imgs[0], f.imgs[1]);
    REQUIRE(explain(&f, args) == 0);
    const char *psc = "path-scorecam.score-cdrp";
    CHECK(find_member(&f, psc, "T3", f.imgs[0], "gates_from", v, sizeof v) && !strcmp(v, gates));
    /* img1 had no path: optimised, and kept as score-cdrp writes it */
    CHECK(find_member(&f, psc, "T3", f.imgs[1], "gates_from", v, sizeof v) && !strcmp(v, "optimised"));
    snprintf(gates, sizeof gates, "%s/img1.score-cdrp.T3.gates.npy", f.outdir);
    CHECK(find_member(&f, psc, "T3", f.imgs[1], "path_gates", v, sizeof v) && !strcmp(v, gates));
    CHECK(find_member(&f, "score-cdrp", "T3", f.imgs[1], "gates", v, sizeof v) && !strcmp(v, gates));
    /* so pathway-grad reuses it */
    snprintf(args, sizeof args, "--method pathway-grad --rates 0.5 --iterations 3 %s", f.imgs[1]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(find_member(&f, "pathway-grad.score-cdrp.r0.50", "T3", f.imgs[1], "gates_from", v, sizeof v) &&
          !strcmp(v, gates));
    snprintf(args, sizeof args, "--method path-scorecam --iterations 4 %s", f.imgs[0]); /* other settings */
    REQUIRE(explain(&f, args) == 0);
    CHECK(find_member(&f, psc, "T4", f.imgs[0], "gates_from", v, sizeof v) && !strcmp(v, "optimised"));
    snprintf(args, sizeof args, "--method path-scorecam --iterations 3 --overwrite --reoptimise %s", f.imgs[0]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(find_member(&f, psc, "T3", f.imgs[0], "gates_from", v, sizeof v) && !strcmp(v, "optimised"));
}

TEST(explain_pathway_grad_reports_the_pruned_networks_probability_and_a_summary) {
    WITH_FIXTURE(fixture, f);
    char args[4096], v[64];
    snprintf(args, sizeof args, "--method pathway-grad --iterations 3 --rates 0.5,0.9 %s %s", f.imgs[0], f.imgs[1]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --model %s --out %s %s 2>/dev/null", test_root(),
             f.model, f.outdir, args);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    CHECKF(strstr(out, "below 0.5") && strstr(out, "features.1 ") && strstr(out, "  0.90  "), "stdout: %s", out);
    const char *r90 = "pathway-grad.score-cdrp.r0.90";
    CHECK(find_member(&f, r90, "T3", f.imgs[0], "pruned_prob", v, sizeof v));
    double p = atof(v);
    CHECK(p >= 0 && p <= 1);
    CHECK(find_member(&f, r90, "T3", f.imgs[0], "pruned_keeps_class", v, sizeof v));
    CHECK(find_member(&f, r90, "T3", f.imgs[0], "gate_mean", v, sizeof v) && !strcmp(v, "[8]"));
    /* interrupted between an image's rates: --resume redoes it without repeating a line */
    char path[1200], text[65536];
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    size_t n = test_read_text(path, text, sizeof text);
    char *last = text + n - 1;
    while (last > text && last[-1] != '\n') last--;
    CHECK(strstr(last, "r0.90"));
    *last = 0;
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    int before = test_count_lines(path);
    snprintf(args, sizeof args, "--method pathway-grad --resume --iterations 3 --rates 0.5,0.9 %s %s", f.imgs[0],
             f.imgs[1]);
    REQUIRE(explain(&f, args) == 0);
    CHECK(test_count_lines(path) == before + 1);
}

/* A path optimised on the fly for a path map is kept, so eval can score with
 * the gated network it explains. */
TEST(eval_scorer_path_finds_the_path_a_path_map_optimised) {
    WITH_FIXTURE(fixture, f);
    char args[4096], cmd[8192];
    snprintf(args, sizeof args, "--method path-scorecam --path-method cdrp --iterations 3 %s %s", f.imgs[0], f.imgs[1]);
    REQUIRE(explain(&f, args) == 0);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --json --model %s --maps %s --metric ad-ic "
             "--scorer path --method path-scorecam.cdrp 2>&1", test_root(), f.model, f.outdir);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "\"images\":2"), "%s", out);
}

/* The input-gradient methods from the command line: their settings name
 * their files and results lines (cost, completeness, noise, unit), bad
 * settings are usage errors, and eval scores their maps with every metric. */
TEST(explain_input_gradient_methods_name_their_settings_and_eval_scores_them) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1400];
    const char *runs[][3] = {
        {"--method input-x-gradient", "input-x-gradient.npy", "\"backwards\":1"},
        {"--method integrated-gradients --ig-steps 4", "integrated-gradients.steps4.npy", "\"attribution_sum\":"},
        {"--method integrated-gradients --ig-rule riemann_middle --ig-steps 3 --baseline zero",
         "integrated-gradients.riemann-middle.steps3.zero.npy", "\"forwards\":5"},
        {"--method smoothgrad --sg-samples 3 --sg-sigma 0.1 --sg-square --sg-seed 4",
         "smoothgrad.smooth3.sigma0.1.sq.seed4.npy", "\"sg_samples\":3"},
        {"--method guided-gradcam --layer features.12", "guided-gradcam.features.12.npy", "\"backwards\":2"},
        {"--method guided-backprop --smooth 2", "guided-backprop.smooth2.npy", "\"sg_seed\":0"},
        {"--method saliency --unit features.9,3", "saliency.unit-features.9-3.npy", "\"unit\":\"features.9,3\""},
        {"--method input-x-gradient --unit 4,1,0,1", "input-x-gradient.unit-features.12-1-0-1.npy", "\"unit_value\":"},
    };
    for (int i = 0; i < 8; i++) {
        snprintf(args, sizeof args, "%s %s %s", runs[i][0], f.imgs[0], f.imgs[1]);
        CHECKF(explain(&f, args) == 0, "%s: %s", runs[i][0], out);
        snprintf(path, sizeof path, "%s/img1.%s", f.outdir, runs[i][1]);
        CHECKF(access(path, F_OK) == 0, "%s: no %s", runs[i][0], path);
    }
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    CHECK(test_count_lines(path) == 16);
    size_t n = 0;
    char *text = (char *)test_read_bytes(path, &n);
    REQUIRE(text);
    for (int i = 0; i < 8; i++) CHECKF(strstr(text, runs[i][2]), "%s: no %s in its results line", runs[i][0], runs[i][2]);
    free(text);
    const char *bad[] = {"--method saliency --ig-steps 5", "--method integrated-gradients --ig-rule simpson",
                         "--method integrated-gradients --ig-steps 1 --ig-rule riemann-left",
                         "--method input-x-gradient --sg-sigma 0.2", "--method scorecam --smooth 3",
                         "--method gradcam --unit features.9,3", "--method saliency --unit features.9",
                         "--method saliency --unit features.9,99", "--method smoothgrad --smooth 3 --sg-samples 4",
                         "--method cdrp --unit features.9,3", "--method saliency --baseline grey"};
    for (int i = 0; i < 11; i++) {
        snprintf(args, sizeof args, "%s %s", bad[i], f.imgs[0]);
        int rc = explain(&f, args);
        CHECKF(rc == 2 && strncmp(out, "attrib: ", 8) == 0 && strchr(out, '\n') == out + strlen(out) - 1,
               "'%s': exit %d, output: %s", bad[i], rc, out);
    }
    /* eval: every metric scores every method's two maps */
    snprintf(path, sizeof path, "%s/ann", f.dir);
    REQUIRE(mkdir(path, 0755) == 0);
    for (int k = 0; k < 2; k++) {
        char xml[1500];
        snprintf(xml, sizeof xml, "%s/img%d.xml", path, k);
        FILE *fp = fopen(xml, "w");
        REQUIRE(fp);
        fprintf(fp, "<annotation><filename>img%d</filename><size><width>32</width><height>32</height></size><object>"
                    "<name>class%d</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>20</xmax><ymax>24</ymax></bndbox>"
                    "</object></annotation>\n", k, k + 2);
        fclose(fp);
    }
    const char *metrics[] = {"ad-ic", "energy-pg", "deletion", "insertion"};
    for (int i = 0; i < 4; i++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --json --model %s --maps %s --metric %s "
                 "--annotations %s --steps 8 2>&1", test_root(), f.model, f.outdir, metrics[i], path);
        int rc = run_cmd(cmd, out, sizeof out);
        CHECKF(rc == 0, "eval %s: exit %d: %s", metrics[i], rc, out);
        at_json *j = NULL;
        const char *brace = strchr(out, '{');
        REQUIRE(brace && at_json_parse(brace, strlen(brace), &j) == AT_OK);
        const at_json *rows = at_json_get(j, "rows");
        CHECKF(rows && rows->n == 8, "eval %s: %zu rows", metrics[i], rows ? rows->n : 0);
        at_json_free(j);
    }
}
