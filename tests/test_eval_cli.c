/* ./attrib eval end to end on a tiny model: invariants every metric must
 * satisfy (a map of ones drops nothing, top-100 % keeps the image, energy of a
 * map inside the box is 1), resume, and errors. The metric formulas
 * themselves are unit-tested in test_metrics.c. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/image.h"
#include "io/json.h"
#include "model/model.h"
#include "model_fixture.h"
#include "io/npy.h"
#include "test.h"

static char out[65536];

typedef struct {
    char dir[512], model[600], img[600], maps[600], ann[600];
} fixture;

/* One 32x32 image, a results.jsonl with two synthetic maps (all ones; a
 * square inside the image's box) and an ILSVRC-style XML with that box. */
static int make_fixture(fixture *f) {
    if (!FIXTURE_MODEL_DIR(f)) return 0;
    snprintf(f->img, sizeof f->img, "%s/scene.png", f->dir);
    snprintf(f->maps, sizeof f->maps, "%s/maps", f->dir);
    snprintf(f->ann, sizeof f->ann, "%s/ann", f->dir);
    if (!fixture_pattern_png(f->img, 32, 32, 29, 6, 1)) return 0;
    char path[1200], cmd[1400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s %s", f->maps, f->ann);
    if (system(cmd)) return 0;
    float ones[32 * 32], square[32 * 32];
    for (int i = 0; i < 32 * 32; i++) {
        int x = i % 32, y = i / 32;
        ones[i] = 1;
        square[i] = (x >= 8 && x < 16 && y >= 4 && y < 12) ? 1.0f : 0.0f;
    }
    int64_t shape[2] = {32, 32};
    snprintf(path, sizeof path, "%s/scene.ones.npy", f->maps);
    if (at_npy_write_f32(path, ones, 2, shape)) return 0;
    snprintf(path, sizeof path, "%s/scene.square.npy", f->maps);
    if (at_npy_write_f32(path, square, 2, shape)) return 0;
    snprintf(path, sizeof path, "%s/results.jsonl", f->maps);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "{\"image\":\"%s\",\"method\":\"ones\",\"layer\":\"\",\"class\":3,\"map\":\"%s/scene.ones.npy\"}\n",
            f->img, f->maps);
    fprintf(fp, "{\"image\":\"%s\",\"method\":\"square\",\"layer\":\"\",\"class\":3,\"map\":\"%s/scene.square.npy\"}\n",
            f->img, f->maps);
    fclose(fp);
    /* box x 8..15, y 4..11 (0-based) = 9..16, 5..12 in the XML's 1-based pixels */
    snprintf(path, sizeof path, "%s/scene.xml", f->ann);
    fp = fopen(path, "w");
    fprintf(fp, "<annotation><filename>scene</filename><size><width>32</width><height>32</height></size>"
                "<object><name>class3</name><bndbox><xmin>9</xmin><ymin>5</ymin><xmax>16</xmax><ymax>12</ymax>"
                "</bndbox></object></annotation>\n");
    fclose(fp);
    return 1;
}

static int eval(const fixture *f, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --json --model %s --maps %s %s 2>/dev/null",
             test_root(), f->model, f->maps, args);
    return run_cmd(cmd, out, sizeof out);
}

/* eval with ARGS and the fixture's annotations */
static int eval_ann(const fixture *f, const char *args) {
    char all[1400];
    snprintf(all, sizeof all, "%s --annotations %s", args, f->ann);
    return eval(f, all);
}

/* mean of `value` for `method` in the JSON summary on stdout */
static double summary(const char *method, const char *value) {
    at_json *j = NULL;
    double v = NAN;
    if (at_json_parse(out, strlen(out), &j)) return v;
    const at_json *rows = at_json_get(j, "rows");
    for (size_t i = 0; rows && i < rows->n; i++) {
        if (strcmp(at_json_get(&rows->items[i], "method")->string, method)) continue;
        const at_json *val = at_json_get(at_json_get(&rows->items[i], "values"), value);
        const at_json *mean = val ? at_json_get(val, "mean") : NULL;
        if (mean && mean->type == AT_JSON_NUMBER) v = mean->number;
    }
    at_json_free(j);
    return v;
}

TEST(eval_map_of_ones_drops_nothing_and_top_100_percent_keeps_the_image) {
    WITH_FIXTURE(fixture, f);
    REQUIRE(eval(&f, "--metric ad-ic") == 0);
    CHECK_NEAR(summary("ones", "AD"), 0.0, 1e-9);
    CHECK_NEAR(summary("ones", "IC"), 0.0, 1e-9);
    REQUIRE(eval(&f, "--metric ad-ic --mask-mode top-p --proportions 100") == 0);
    CHECK_NEAR(summary("square", "AD@100"), 0.0, 1e-9);
    REQUIRE(eval(&f, "--metric ad-ic --score logit --mask-space normalized") == 0);
    CHECK(isnan(summary("ones", "AD")) || fabs(summary("ones", "AD")) < 1e-9); /* y <= 0 logits are skipped */
}

TEST(eval_energy_of_a_map_inside_the_box_is_one_and_pointing_hits) {
    WITH_FIXTURE(fixture, f);
    /* annotation names are wnids mapped through the model's labels: class3 is class 3 */
    REQUIRE(eval_ann(&f, "--metric energy-pg") == 0);
    CHECK_NEAR(summary("square", "energy"), 1.0, 1e-9);
    CHECK_NEAR(summary("ones", "energy"), 64.0 / 1024.0, 1e-9);
    REQUIRE(eval_ann(&f, "--metric pointing --tolerance 0") == 0);
    CHECK_NEAR(summary("square", "hit"), 100.0, 1e-9);
    CHECK_NEAR(summary("ones", "hit"), 0.0, 1e-9); /* max at pixel (0,0), outside the box */
}

/* Issue 13 item 19: a box covering most of the input (a NIPS 2017 crop
 * window read as an object box, a union of many instances) makes the box
 * metrics say little: one warning line per run on stderr, none otherwise. */
TEST(eval_warns_once_when_a_box_covers_most_of_the_image) {
    WITH_FIXTURE(fixture, f);
    char cmd[8192], csv[700];
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s --metric energy-pg "
             "--annotations %s 2>&1 >/dev/null", test_root(), f.model, f.maps, f.ann);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    CHECKF(!strstr(out, "warning"), "an 8x8 box of 32x32 warns: %s", out);
    /* the same image with a 30x30 box (88 % of the area), two map lines */
    snprintf(csv, sizeof csv, "%s/images.csv", f.dir);
    FILE *fp = fopen(csv, "w");
    REQUIRE(fp);
    fprintf(fp, "ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass,OriginalLandingURL,License,Author,AuthorProfileURL\n"
                "scene,,1,1,30,30,4,0,,,,\n");
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s --metric pointing "
             "--annotations %s 2>&1 >/dev/null", test_root(), f.model, f.maps, csv);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    const char *w = strstr(out, "attrib: warning: ");
    CHECKF(w && !strstr(w + 1, "attrib: warning"), "one warning per run: %s", out);
    CHECKF(w && strstr(w, "88%") && strstr(w, "scene.png") && strstr(w, "docs/methods.md"), "%s", out);
}

TEST(eval_deletion_and_insertion_give_aucs_in_range_and_resume) {
    WITH_FIXTURE(fixture, f);
    REQUIRE(eval(&f, "--metric deletion --steps 10") == 0);
    double d = summary("square", "auc");
    CHECK(d >= 0 && d <= 1);
    REQUIRE(eval(&f, "--metric insertion --steps 10") == 0);
    double ins = summary("ones", "auc");
    CHECK(ins >= 0 && ins <= 1);
    char path[1200], text[4096];
    snprintf(path, sizeof path, "%s/eval.deletion.jsonl", f.maps);
    size_t n = test_read_text(path, text, sizeof text);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    CHECK(lines == 2);
    REQUIRE(eval(&f, "--metric deletion --steps 10 --resume") == 0);
    n = test_read_text(path, text, sizeof text);
    int again = 0;
    for (size_t i = 0; i < n; i++) again += text[i] == '\n';
    CHECK(again == 2);
}

TEST(eval_reports_missing_inputs_and_bad_options) {
    WITH_FIXTURE(fixture, f);
    CHECK(eval(&f, "--metric energy-pg") == 2);        /* needs --annotations */
    CHECK(eval(&f, "--metric accuracy") == 2);
    CHECK(eval(&f, "--metric ad-ic --proportions 0,50") == 2);
    CHECK(eval(&f, "--metric ad-ic --method nothing") == 1);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/attrib eval --metric ad-ic --model %s --maps /nonexistent 2>&1", test_root(), f.model);
    CHECK(run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "/nonexistent/results.jsonl"));
}

/* explain records relative map names from where it ran; eval from elsewhere
 * finds them in --maps itself. */
TEST(eval_finds_maps_recorded_relative_to_another_directory) {
    WITH_FIXTURE(fixture, f);
    char cmd[8192], root[2048];
    REQUIRE(realpath(test_root(), root));
    snprintf(cmd, sizeof cmd,
             "cd %s && %s/attrib explain --backend cpu --quiet --model %s --method gradcam --out rel %s 2>&1", f.dir,
             root, f.model, f.img);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0, "explain: %s", out);
    if (rc) return;
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --metric energy-pg --maps %s/rel "
             "--annotations %s 2>&1", test_root(), f.model, f.dir, f.ann);
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "gradcam") && !strstr(out, "No such file"), "%s", out);
}

TEST(eval_rerun_is_refused_unless_resume_or_overwrite) {
    WITH_FIXTURE(fixture, f);
    char path[1200];
    snprintf(path, sizeof path, "%s/eval.ad-ic.jsonl", f.maps);
    REQUIRE(eval(&f, "--metric ad-ic") == 0);
    CHECK(test_count_lines(path) == 2);
    CHECK(eval(&f, "--metric ad-ic") == 2); /* would repeat both values */
    CHECK(test_count_lines(path) == 2);
    REQUIRE(eval(&f, "--metric ad-ic --overwrite") == 0);
    CHECK(test_count_lines(path) == 2);
    CHECK_NEAR(summary("ones", "AD"), 0.0, 1e-9);
    REQUIRE(eval(&f, "--metric ad-ic --score logit") == 0); /* other options: other values */
    CHECK(test_count_lines(path) == 4);
}

TEST(eval_resume_with_everything_scored_summarises_all_values) {
    WITH_FIXTURE(fixture, f);
    REQUIRE(eval_ann(&f, "--metric energy-pg") == 0);
    REQUIRE(eval_ann(&f, "--metric energy-pg --resume") == 0);
    CHECK_NEAR(summary("square", "energy"), 1.0, 1e-9);
    CHECK_NEAR(summary("ones", "energy"), 64.0 / 1024.0, 1e-9);
}

TEST(eval_confidence_without_paths_says_it_needs_path_results) {
    WITH_FIXTURE(fixture, f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --metric confidence --model %s --maps %s 2>&1", test_root(),
             f.model, f.maps);
    CHECK(run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "cdrp or score-cdrp"));
}

/* Weakly supervised localisation: the square map's region is the box itself
 * (IoU 1, a hit); the map of ones boxes the whole 32x32 input (IoU 64/1024). */
TEST(eval_localisation_hits_with_the_box_and_misses_with_the_whole_image) {
    WITH_FIXTURE(fixture, f);
    REQUIRE(eval_ann(&f, "--metric localisation") == 0);
    CHECK_NEAR(summary("square", "hit"), 100.0, 1e-9);
    CHECK_NEAR(summary("square", "iou"), 1.0, 1e-9);
    CHECK_NEAR(summary("ones", "hit"), 0.0, 1e-9);
    CHECK_NEAR(summary("ones", "iou"), 64.0 / 1024.0, 1e-9);
    REQUIRE(eval_ann(&f, "--metric localisation --iou 0.05 --overwrite") == 0);
    CHECK_NEAR(summary("ones", "hit"), 100.0, 1e-9); /* 0.0625 > 0.05 */
    CHECK(eval(&f, "--metric localisation") == 2);   /* needs boxes */
}

TEST(eval_localisation_refuses_a_map_of_another_class_than_the_truth) {
    WITH_FIXTURE(fixture, f);
    char path[1200], cmd[8192];
    snprintf(path, sizeof path, "%s/results.jsonl", f.maps);
    FILE *fp = fopen(path, "w");
    REQUIRE(fp);
    fprintf(fp, "{\"image\":\"%s\",\"method\":\"square\",\"layer\":\"\",\"class\":2,\"map\":\"%s/scene.square.npy\"}\n",
            f.img, f.maps);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s --metric localisation "
             "--annotations %s 2>&1 >/dev/null", test_root(), f.model, f.maps, f.ann);
    CHECK(run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "class 2") && strstr(out, "--class truth"));
}

TEST(eval_pointing_per_class_counts_strictly_inside_the_tolerance) {
    WITH_FIXTURE(fixture, f);
    /* ones: its maximum (0,0) is sqrt(8^2 + 4^2) = 8.94 px from the box corner (8,4); at 32 px the
     * tolerance is PX * 32/224: 62.63 gives 8.947 (inclusive and strict hit), 62.6 gives 8.943 (both miss) */
    REQUIRE(eval_ann(&f, "--metric pointing --tolerance 62.63 --pg-average class") == 0);
    CHECK_NEAR(summary("ones", "hit"), 100.0, 1e-9);
    CHECK(strstr(out, "\"average\":\"class\"") && !strstr(out, "gt_class"));
    REQUIRE(eval_ann(&f, "--metric pointing --tolerance 62.6 --pg-average class") == 0);
    CHECK_NEAR(summary("ones", "hit"), 0.0, 1e-9);
    CHECK_NEAR(summary("square", "hit"), 100.0, 1e-9);
    CHECK(eval_ann(&f, "--metric ad-ic --pg-average class") == 2);
    CHECK(eval(&f, "--metric pointing --pg-average classes") == 2);
}

/* The sanity check end to end: Grad-CAM of the tiny model re-explained per
 * randomised layer; the Sobel control stays at 1; resume keeps the lines. */
TEST(eval_mprt_reexplains_per_layer_and_the_sobel_control_stays_at_one) {
    WITH_FIXTURE(fixture, f);
    char cmd[8192], gc[1200];
    snprintf(gc, sizeof gc, "%s/gc", f.dir);
    snprintf(cmd, sizeof cmd, "%s/attrib explain --backend cpu --quiet --model %s --method gradcam --out %s %s 2>&1",
             test_root(), f.model, gc, f.img);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --json --model %s --maps %s --metric mprt "
             "--control sobel --seed 3 2>&1", test_root(), f.model, gc);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    at_json *j = NULL;
    REQUIRE(at_json_parse(out, strlen(out), &j) == AT_OK);
    const at_json *rows = at_json_get(j, "rows");
    REQUIRE(rows && rows->n == 2);
    for (size_t r = 0; r < 2; r++) {
        const at_json *row = &rows->items[r];
        int control = !strcmp(at_json_get(row, "method")->string, "sobel-control");
        const at_json *casc = at_json_get(row, "cascading"), *ind = at_json_get(row, "independent");
        REQUIRE(casc && ind && casc->n == 11 && ind->n == 11); /* vgg11: 8 convs + 3 linear */
        CHECK(!strcmp(at_json_get(&casc->items[0], "layer")->string, "classifier.6"));
        for (size_t l = 0; control && l < casc->n; l++)
            CHECK_NEAR(at_json_get(&casc->items[l], "mean")->number, 1.0, 1e-9);
    }
    at_json_free(j);
    char path[1300];
    snprintf(path, sizeof path, "%s/eval.mprt.jsonl", gc);
    CHECK(test_count_lines(path) == 2);
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s --metric mprt --control sobel "
             "--seed 3 2>&1", test_root(), f.model, gc);
    CHECK(run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "--resume")); /* would repeat them */
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s --metric mprt --control sobel "
             "--seed 3 --resume 2>&1", test_root(), f.model, gc);
    CHECK(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "sobel-control") && strstr(out, "1.0000"));
    CHECK(test_count_lines(path) == 2);
    /* the fixture's own maps come from no explain method */
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --maps %s --metric mprt 2>&1",
             test_root(), f.model, f.maps);
    CHECK(run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "'ones' is not an explain method"));
    CHECK(eval(&f, "--metric ad-ic --control sobel") == 2);
    CHECK(eval(&f, "--metric mprt --randomise top") == 2);
}
