/* ./attrib reproduce end to end on reproduce/tiny.json (the committed sample
 * scenes and the shipped VGG16-mini, so no Python is needed): the report has
 * every table, the grids are PNGs of the expected layout, a second run
 * resumes without redoing any explain or eval work, and a failing step stops
 * the run with one line naming it; the library entry at_reproduce_run on a
 * two-method config reports its steps through the callback. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/image.h"
#include "methods/explain.h"
#include "reproduce/reproduce.h"
#include "test.h"

static char out[65536];

static char *slurp(const char *path) {
    static char buf[1 << 18];
    return access(path, R_OK) == 0 && test_read_text(path, buf, sizeof buf) ? buf : NULL;
}

static int have_tiny_inputs(void) {
    return access(test_path("reproduce/tiny.json"), R_OK) == 0 &&
           access(test_path("weights/vgg16_mini.safetensors"), R_OK) == 0 &&
           access(test_path("weights/samples/images/fmscene_test_00000000.png"), R_OK) == 0;
}

/* OUT/<prefix><run key>: explain's and eval's folder of the run (maps-) or of
 * its methods table (methods-). */
static int find_dir(const char *out_dir, const char *prefix, char *path, size_t cap) {
    DIR *d = opendir(out_dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) {
            snprintf(path, cap, "%s/%s", out_dir, e->d_name);
            found++;
        }
    if (d) closedir(d);
    return found == 1;
}

static int find_maps_dir(const char *out_dir, char *path, size_t cap) {
    return find_dir(out_dir, "maps-", path, cap);
}

/* Runs the tiny config into dir (paths in the config are relative to the
 * repository root, as `make reproduce` runs it). */
static int reproduce(const char *dir, const char *extra) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd,
             "cd %s && ./attrib reproduce --backend cpu --quiet --config reproduce/tiny.json "
             "--out %s/out --report %s/results/REPORT.md %s",
             test_root(), dir, dir, extra);
    return run_cmd(cmd, out, sizeof out);
}

/* Sections and paper numbers the report must carry (docs/methods.md#the-papers-numbers). */
static const char *const REPORT_MUST_HAVE[] = {
    "## Table 1", "71.59", "67.65", "68.41", "Score-CDRP − CDRP (paired)",
    "## Table 2", "0.4054", "0.3802", "0.3956",
    "## Fig. 7", "| 10 |", "| 50 |", "| 90 |",
    "## Seed 004", "Grad-CAM++", "76.7", "Score-CAM | ours",
    "(REPORT.fig3-4_6_path_heatmaps.png)", "(REPORT.fig5_pathway_gradients.png)",
    "model SHA-256", "engine | attrib", "backend | cpu", "## Steps and wall time",
    "## L-CAM (seed 002)", "| L-CAM | 1 | 0 |", "AD q=85", "| RISE | 201 | 0 |",
    "## Every method on the same images", "RISE with 200 masks",
    "FAFRP | paper | 67.9", "FAFRP | ours |", "Grad-CAM − FAFRP |", "(+8.8)", "**AD raw** (lower is better): seed FAFRP < "
    "Grad-CAM < Grad-CAM++ < Mask; ours ", "## Sanity check: model-parameter randomisation", "| classifier.6 |",
    "| features.0 |",
};

/* The sanity check's control ignores the weights: 1.00 in every row of both
 * tables, and the methods are measured (a number in the first row). */
static void check_mprt_tables(const char *report) {
    const char *sec = strstr(report, "## Sanity check");
    if (!sec) return;
    const char *end = strstr(sec + 3, "\n## ");
    int rows = 0;
    for (const char *p = strchr(sec, '\n'); p && (!end || p < end); p = strchr(p + 1, '\n')) {
        if (strncmp(p, "\n| classifier.", 14) && strncmp(p, "\n| features.", 12)) continue;
        char line[1024];
        size_t len = strcspn(p + 1, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), p + 1);
        char *last = strrchr(line, '|');
        if (last) *last = 0;
        const char *cell = strrchr(line, '|');
        CHECKF(cell && !strcmp(cell, "| 1.00 [1.00, 1.00] "), "control moved: %s", line);
        rows++;
    }
    CHECKF(rows == 2 * 16, "%d layer rows in the two tables (vgg16: 16 weight layers)", rows);
}

/* The methods table has a measured row for every method explain has: costs,
 * AD, IC and energy, over the 4 images (no dash anywhere in the row). */
static void check_methods_rows(const char *report) {
    for (int m = 0; m < AT_METHOD_COUNT; m++) {
        char head[96];
        snprintf(head, sizeof head, "\n| %s | ", at_method_name((at_method)m));
        const char *row = strstr(report, head);
        CHECKF(row != NULL, "methods table lacks %s", at_method_name((at_method)m));
        if (!row) continue;
        size_t len = strcspn(row + 1, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), row + 1);
        CHECKF(strstr(line, "–") == NULL && strstr(line, "nan") == NULL, "unmeasured: %s", line);
        CHECKF(len > 4 && !strcmp(line + strlen(line) - 4, " 4 |"), "not over 4 images: %s", line);
    }
}

TEST(reproduce_tiny_writes_report_grids_and_resumes_without_work) {
    if (!have_tiny_inputs()) SKIP("reproduce/tiny.json, the shipped model or weights/samples missing");
    const char *dir = test_tmpdir();
    char path[1024], maps[1200];
    int rc = reproduce(dir, "");
    CHECKF(rc == 0, "reproduce exited %d:\n%s", rc, out);
    REQUIRE(rc == 0);
    snprintf(path, sizeof path, "%s/results/REPORT.md", dir);
    char *report = slurp(path);
    REQUIRE(report != NULL);
    for (size_t i = 0; i < sizeof REPORT_MUST_HAVE / sizeof *REPORT_MUST_HAVE; i++)
        CHECKF(strstr(report, REPORT_MUST_HAVE[i]) != NULL, "REPORT.md lacks '%s'", REPORT_MUST_HAVE[i]);
    CHECK(strstr(report, "| original | 71.59 | –") == NULL); /* a number, not a dash, for ours */
    check_methods_rows(report);
    check_mprt_tables(report);
    /* Fig. 7's plot needs Python + matplotlib; without them the report says why */
    CHECK(strstr(report, "![Fig. 7") != NULL || strstr(report, "Plot skipped") != NULL ||
          strstr(report, "Plot failed") != NULL);
    if (strstr(report, "![Fig. 7")) {
        at_image img = {0};
        snprintf(path, sizeof path, "%s/results/REPORT.fig7.png", dir);
        CHECKF(at_image_load(path, &img) == 0, "%s does not load", path);
        at_image_free(&img);
    }

    /* grids: tiles of the model's input size (128 for the mini) with 4 px gaps;
     * tiny.json puts 2 images in the grids and 4 prune rates in Fig. 5 */
    const int cell = 128, gap = 4;
    at_image g = {0};
    snprintf(path, sizeof path, "%s/results/REPORT.fig3-4_6_path_heatmaps.png", dir);
    CHECKF(at_image_load(path, &g) == 0, "%s does not load", path);
    CHECK(g.w == 4 * cell + 5 * gap && g.h == 2 * cell + 3 * gap);
    at_image_free(&g);
    snprintf(path, sizeof path, "%s/results/REPORT.fig5_pathway_gradients.png", dir);
    CHECKF(at_image_load(path, &g) == 0, "%s does not load", path);
    CHECK(g.w == 5 * cell + 6 * gap && g.h == 4 * cell + 5 * gap);
    at_image_free(&g);

    /* second run: every step resumes, nothing is recomputed */
    static const char *const files[] = {"results.jsonl", "eval.confidence.jsonl", "eval.energy-pg.jsonl",
                                        "eval.ad-ic.jsonl"};
    int before[4];
    char out_dir[700], maps_dir[1100];
    snprintf(out_dir, sizeof out_dir, "%s/out", dir);
    REQUIRE(find_maps_dir(out_dir, maps_dir, sizeof maps_dir));
    for (int i = 0; i < 4; i++) {
        snprintf(maps, sizeof maps, "%s/%s", maps_dir, files[i]);
        before[i] = test_count_lines(maps);
        CHECKF(before[i] > 0, "%s is empty", maps);
    }
    char methods_dir[1100], methods_file[1200];
    REQUIRE(find_dir(out_dir, "methods-", methods_dir, sizeof methods_dir));
    snprintf(methods_file, sizeof methods_file, "%s/results.jsonl", methods_dir);
    int methods_lines = test_count_lines(methods_file);
    CHECKF(methods_lines == 4 * AT_METHOD_COUNT, "%s has %d lines", methods_file, methods_lines);
    snprintf(path, sizeof path, "%s/results/REPORT.md", dir);
    unlink(path);
    rc = reproduce(dir, "");
    CHECKF(rc == 0, "second run exited %d:\n%s", rc, out);
    CHECK(find_maps_dir(out_dir, maps, sizeof maps)); /* the same run key: no second folder */
    for (int i = 0; i < 4; i++) {
        snprintf(maps, sizeof maps, "%s/%s", maps_dir, files[i]);
        CHECKF(test_count_lines(maps) == before[i], "%s grew from %d to %d lines on resume", files[i], before[i],
               test_count_lines(maps));
    }
    CHECK(test_count_lines(methods_file) == methods_lines);
    CHECK(access(path, R_OK) == 0);
}

TEST(reproduce_failing_step_stops_with_one_line_naming_it) {
    if (!have_tiny_inputs()) SKIP("reproduce/tiny.json, the shipped model or weights/samples missing");
    const char *dir = test_tmpdir();
    char extra[1200], model[1024];
    snprintf(model, sizeof model, "%s/broken.safetensors", dir);
    FILE *f = fopen(model, "w");
    REQUIRE(f != NULL);
    fputs("not a safetensors file\n", f);
    fclose(f);
    snprintf(extra, sizeof extra, "--model %s", model);
    int rc = reproduce(dir, extra);
    CHECK(rc == 1);
    CHECKF(strstr(out, "attrib: explain cdrp: step failed") != NULL, "output:\n%s", out);
    char path[1024];
    snprintf(path, sizeof path, "%s/results/REPORT.md", dir);
    CHECK(access(path, R_OK) != 0);
}

/* Runs reproduce on a config holding text; its exit status (output in out). */
static int reproduce_config_text(const char *text) {
    char cfg[1024], cmd[3000];
    snprintf(cfg, sizeof cfg, "%s/bad.json", test_tmpdir());
    test_write_bytes(cfg, text, strlen(text));
    snprintf(cmd, sizeof cmd, "%s/attrib reproduce --config %s", test_root(), cfg);
    return run_cmd(cmd, out, sizeof out);
}

TEST(reproduce_rejects_unknown_config_key_and_missing_config) {
    CHECK(reproduce_config_text("{\"data\": {\"dir\": \"weights/samples\"}, \"out\": \"x\", \"path_imgs\": 3}\n") == 1);
    CHECKF(strstr(out, "unknown key 'path_imgs'") != NULL, "output:\n%s", out);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s/attrib reproduce", test_root());
    CHECK(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "attrib: --config:"));
    CHECK(reproduce_config_text("{\"data\": {\"dir\": \"weights/samples\"}, \"out\": \"x\", "
                                "\"methods\": {\"list\": [\"gradcam\", \"gradcan\"]}}\n") == 1);
    CHECKF(strstr(out, "methods.list: items must be explain's method names") != NULL, "output:\n%s", out);
}

typedef struct {
    char stages[16][96];
    int done[16], total[16], n;
} progress_log;

static void log_progress(void *user, const char *stage, int done, int total) {
    progress_log *p = user;
    if (p->n < 16) snprintf(p->stages[p->n], sizeof p->stages[0], "%s", stage);
    if (p->n < 16) p->done[p->n] = done, p->total[p->n] = total;
    p->n++;
}

/* The library entry without the command: a methods table of two methods on
 * one image (six steps), its progress through the callback, the steps'
 * stderr in a file, and errors naming their subject. */
TEST(reproduce_library_entry_runs_a_config_with_progress) {
    if (!have_tiny_inputs() || access(test_path("attrib"), X_OK))
        SKIP("the attrib program, the shipped model or weights/samples missing");
    const char *dir = test_tmpdir();
    char cfg_path[1024], text[3000], report[1200], err[1200];
    snprintf(cfg_path, sizeof cfg_path, "%s/lib.json", dir);
    snprintf(report, sizeof report, "%s/REPORT.md", dir);
    snprintf(err, sizeof err, "%s/steps.err", dir);
    snprintf(text, sizeof text,
             "{\"data\": {\"dir\": \"%s\"}, \"images\": 1, \"out\": \"%s/out\", \"report\": \"%s\",\n"
             " \"experiments\": [\"methods\"], \"methods\": {\"list\": [\"gradcam\", \"saliency\"]}}\n",
             test_path("weights/samples"), dir, report);
    test_write_bytes(cfg_path, text, strlen(text));
    at_reproduce_config c;
    REQUIRE(at_reproduce_config_load(cfg_path, &c) == 0);
    CHECK(c.methods && !c.table1 && !c.lcam && c.n_method_list == 2);

    const char *step_args[] = {"--backend", "cpu", NULL};
    progress_log p = {0};
    at_reproduce_options opt = {.attrib = test_path("attrib"), .model = test_path("weights/vgg16_mini.safetensors"),
                                .step_args = step_args, .steps_stderr = err, .quiet = 1,
                                .on_progress = log_progress, .user = &p};
    int rc = at_reproduce_run(&c, &opt);
    CHECKF(rc == 0, "at_reproduce_run: %s", at_last_error());
    /* six steps counted before the first, then the report */
    CHECKF(p.n == 7, "%d progress calls", p.n);
    for (int i = 0; i < p.n && i < 7; i++) CHECKF(p.done[i] == i && p.total[i] == 6, "call %d: %d of %d", i, p.done[i], p.total[i]);
    CHECK(!strcmp(p.stages[0], "methods: explain gradcam") && !strcmp(p.stages[5], "methods: eval energy-pg saliency"));
    CHECK(!strcmp(p.stages[6], "report"));
    char *r = slurp(report);
    REQUIRE(r != NULL);
    CHECK(strstr(r, "## Every method on the same images") && strstr(r, "\n| gradcam | ") && strstr(r, "\n| saliency | "));
    CHECK(!strstr(r, "## Table 1") && !strstr(r, "## Seed 004"));
    CHECK(access(err, R_OK) == 0);

    /* errors name their subject: the model file, the config's model key */
    opt.model = "no-such-model.safetensors";
    CHECK(at_reproduce_run(&c, &opt) == -1 && strstr(at_last_error(), "no-such-model.safetensors"));
    opt.model = NULL;
    CHECK(at_reproduce_run(&c, &opt) == -1 && strstr(at_last_error(), "lib.json: model"));
    at_reproduce_config_free(&c);
}
