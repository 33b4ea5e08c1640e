/* ./attrib explain with the perturbation methods: RISE masks written and read
 * back as .npy, settings in names and results, bad settings as one-line
 * errors, and eval scoring their maps. Runs on a tiny random model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/image.h"
#include "io/npy.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test.h"

static char out[65536];

typedef struct {
    char dir[512], model[600], img[600], outdir[600];
} fixture;

static int make_fixture(fixture *f) {
    if (!FIXTURE_MODEL_DIR(f)) return 0;
    snprintf(f->outdir, sizeof f->outdir, "%s/out", f->dir);
    snprintf(f->img, sizeof f->img, "%s/img.png", f->dir);
    return fixture_pattern_png(f->img, 32, 32, 41, 5, 3);
}

static int attrib(const fixture *f, const char *cmd_args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/attrib %s --backend cpu --quiet --model %s %s", test_root(),
             cmd_args, f->model, f->img);
    return run_cmd(cmd, out, sizeof out);
}

static float *read_map(const char *path) {
    float *map = NULL;
    int nd;
    int64_t shape[8];
    return at_npy_read_f32(path, &map, &nd, shape) == AT_OK && nd == 2 ? map : (free(map), NULL);
}

TEST(perturb_cli_rise_masks_saved_and_loaded_give_the_same_map) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1400];
    snprintf(args, sizeof args, "explain --out %s --method rise --rise-n 20 --rise-s 4 --rise-save-masks %s/m.npy",
             f.outdir, f.dir);
    REQUIRE(attrib(&f, args) == 0);
    snprintf(args, sizeof args, "explain --out %s --method rise --rise-masks %s/m.npy", f.outdir, f.dir);
    REQUIRE(attrib(&f, args) == 0);
    snprintf(path, sizeof path, "%s/img.rise.N20.s4.npy", f.outdir);
    float *a = read_map(path);
    snprintf(path, sizeof path, "%s/img.rise.masks-m.npy", f.outdir);
    float *b = read_map(path);
    REQUIRE(a && b);
    CHECK(!memcmp(a, b, sizeof(float) * 32 * 32));
    free(a), free(b);
    float *masks = NULL;
    int nd;
    int64_t shape[8];
    snprintf(path, sizeof path, "%s/m.npy", f.dir);
    REQUIRE(at_npy_read_f32(path, &masks, &nd, shape) == AT_OK);
    CHECK(nd == 3 && shape[0] == 20 && shape[1] == 32 && shape[2] == 32);
    free(masks);
    snprintf(path, sizeof path, "%s/results.jsonl", f.outdir);
    FILE *fp = fopen(path, "r");
    REQUIRE(fp);
    char line[4096];
    REQUIRE(fgets(line, sizeof line, fp));
    fclose(fp);
    CHECKF(strstr(line, "\"settings\":\"N20.s4\"") && strstr(line, "\"forwards\":21"), "%s", line);
}

TEST(perturb_cli_bad_settings_and_masks_are_one_line_usage_errors) {
    WITH_FIXTURE(fixture, f);
    char args[4096], path[1200];
    snprintf(args, sizeof args, "explain --out %s --method rise --rise-p 2", f.outdir);
    CHECK(attrib(&f, args) == 2 && strstr(out, "--rise-p"));
    /* masks of another size than the model's input */
    snprintf(path, sizeof path, "%s/bad.npy", f.dir);
    float z[2 * 8 * 8] = {0};
    int64_t shape[3] = {2, 8, 8};
    REQUIRE(at_npy_write_f32(path, z, 3, shape) == AT_OK);
    snprintf(args, sizeof args, "explain --out %s --method rise --rise-masks %s", f.outdir, path);
    CHECKF(attrib(&f, args) == 2 && strstr(out, "bad.npy") && strstr(out, "[N][32][32]"), "%s", out);
    snprintf(args, sizeof args, "explain --out %s --method occlusion --rise-masks %s", f.outdir, path);
    CHECK(attrib(&f, args) == 2 && strstr(out, "is for --method rise"));
    snprintf(args, sizeof args, "explain --out %s --method occlusion --occlusion-baseline grey", f.outdir);
    CHECK(attrib(&f, args) == 2 && strstr(out, "--occlusion-baseline"));
    snprintf(args, sizeof args, "explain --out %s --method meaningful-perturbation --mp-mask 40", f.outdir);
    CHECK(attrib(&f, args) == 2 && strstr(out, "--mp-mask"));
}

TEST(perturb_cli_occlusion_and_meaningful_perturbation_maps_are_scored_by_eval) {
    WITH_FIXTURE(fixture, f);
    char args[4096];
    snprintf(args, sizeof args, "explain --out %s --method occlusion --occlusion-window 8 --occlusion-stride 8",
             f.outdir);
    REQUIRE(attrib(&f, args) == 0);
    snprintf(args, sizeof args,
             "explain --out %s --method meaningful-perturbation --mp-iterations 5 --perturb-score logit", f.outdir);
    REQUIRE(attrib(&f, args) == 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/attrib eval --backend cpu --quiet --model %s --metric ad-ic --maps %s --json",
             test_root(), f.model, f.outdir);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    CHECKF(strstr(out, "\"occlusion.w8.st8\"") && strstr(out, "\"meaningful-perturbation.T5.logit\""), "%s", out);
}
