/* The command line as a user meets it: exit codes, one-line errors naming the
 * file or option (docs/usage.md), --json output, bad images skipped, not fatal. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/backend.h"
#include "core/error.h"
#include "io/image.h"
#include "io/json.h"
#include "model/model.h"
#include "model_fixture.h"
#include "test.h"

static char out[65536];

/* Runs ./attrib with args; stdout and stderr separated by a redirect. */
static int attrib(const char *args, int stderr_only) {
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "%s/attrib %s%s", test_root(), args, stderr_only ? " 2>&1 >/dev/null" : "");
    return run_cmd(cmd, out, sizeof out);
}

static int one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return nl && nl[1] == 0;
}

typedef struct {
    char dir[512], model[600], img[600], img2[600];
} cli_fixture;

static int make_fixture(cli_fixture *f) {
    if (!FIXTURE_MODEL_DIR(f)) return 0;
    snprintf(f->img, sizeof f->img, "%s/a.png", f->dir);
    snprintf(f->img2, sizeof f->img2, "%s/b.png", f->dir);
    return fixture_pattern_png(f->img, 40, 36, 37, 5, 1) && fixture_pattern_png(f->img2, 32, 32, 37, 5, 1);
}

TEST(cli_help_exits_zero_for_every_command) {
    const char *cmds[] = {"--help", "predict --help", "info --help", "bench --help"};
    for (int i = 0; i < 4; i++) {
        CHECKF(attrib(cmds[i], 0) == 0, "attrib %s", cmds[i]);
        CHECK(strstr(out, "usage") != NULL);
    }
}

/* Issue 13 item 18: the top-level help names every explain method, the
 * routing-path ones included. */
TEST(cli_top_level_help_lists_every_explain_method) {
    REQUIRE(attrib("--help", 0) == 0);
    const char *line = strstr(out, "  explain "), *next = line ? strstr(line, "\n  eval ") : NULL;
    REQUIRE(line && next);
    char first[1024]; /* explain's entry, continuation lines included */
    snprintf(first, sizeof first, "%.*s", (int)(next - line), line);
    const char *methods[] = {"Score-CAM",      "Grad-CAM",          "Grad-CAM++",           "saliency",
                             "contrastive",    "guided backprop",   "deconvnet",            "guided Grad-CAM",
                             "input x gradient", "integrated gradients", "SmoothGrad",        "CDRP",
                             "Score-CDRP",     "path Score-CAM",    "pathway gradient"};
    for (int i = 0; i < 15; i++) CHECKF(strstr(first, methods[i]), "'%s' missing from: %s", methods[i], first);
}

TEST(cli_unknown_command_and_option_are_usage_errors) {
    CHECK(attrib("frobnicate", 1) == 2 && one_line(out) && strstr(out, "attrib: frobnicate:"));
    CHECK(attrib("predict --frob x.png", 1) == 2 && one_line(out) && strstr(out, "attrib: --frob:"));
    CHECK(attrib("predict", 1) == 2 && one_line(out) && strstr(out, "no images"));
    CHECK(attrib("predict --topk 0 x.png", 1) == 2 && one_line(out) && strstr(out, "--topk"));
    CHECK(attrib("predict --topk many x.png", 1) == 2 && strstr(out, "not an integer"));
    CHECK(attrib("predict --backend tpu x.png", 1) == 2 && strstr(out, "--backend"));
    CHECK(attrib("predict --precision fp8 x.png", 1) == 2 && strstr(out, "--precision"));
    CHECK(attrib("predict --topk", 1) == 2 && strstr(out, "needs a value"));
    CHECK(attrib("predict --conv fast x.png", 1) == 2 && one_line(out) && strstr(out, "attrib: --conv:"));
    CHECK(attrib("predict --conv winograd --precision tf32 x.png", 1) == 2 && one_line(out) && strstr(out, "fp32"));
    CHECK(attrib("bench --precision fp16 --conv winograd", 1) == 2 && one_line(out) && strstr(out, "--conv"));
    CHECK(attrib("bench --precision tf32 --conv winograd4", 1) == 2 && one_line(out) && strstr(out, "--conv"));
}

TEST(cli_missing_model_is_bad_input_naming_the_file) {
    CHECK(attrib("predict --model /nonexistent/m.safetensors x.png", 1) == 1);
    CHECK(one_line(out) && strstr(out, "attrib: /nonexistent/m.safetensors: "));
}

/* Issue 13 item 11: a .pth as --model is bad input with one line naming the
 * file and the converter. */
TEST(cli_pytorch_checkpoint_as_model_points_to_the_exporter) {
    char pth[700], args[1400];
    snprintf(pth, sizeof pth, "%s/vgg16-397923af.pth", test_tmpdir());
    test_write_lit(pth, "PK\x03\x04\x14\x00\x00\x08\x08\x00archive/data.pklxxxxxxxx");
    snprintf(args, sizeof args, "predict --model %s x.png", pth);
    CHECK(attrib(args, 1) == 1 && one_line(out));
    CHECKF(strstr(out, pth) && strstr(out, "PyTorch checkpoint") && strstr(out, "tools/export_torchvision.py"), "%s",
           out);
}

TEST(cli_predict_prints_topk_and_json) {
    WITH_FIXTURE(cli_fixture, f);
    char args[2048];
    snprintf(args, sizeof args, "predict --backend cpu --model %s --topk 3 %s %s", f.model, f.img, f.img2);
    REQUIRE(attrib(args, 0) == 0);
    CHECK(strstr(out, f.img) && strstr(out, "  1. ") && strstr(out, "  3. ") && !strstr(out, "  4. "));
    snprintf(args, sizeof args, "predict --backend cpu --model %s --topk 2 --json %s", f.model, f.img);
    REQUIRE(attrib(args, 0) == 0);
    at_json *j = NULL;
    REQUIRE(at_json_parse(out, strlen(out), &j) == AT_OK);
    const at_json *top = at_json_get(j, "top");
    REQUIRE(top && top->type == AT_JSON_ARRAY && top->n == 2);
    double p0 = at_json_get(&top->items[0], "prob")->number, p1 = at_json_get(&top->items[1], "prob")->number;
    CHECK(p0 >= p1 && p0 > 0 && p0 <= 1);
    CHECK(strlen(at_json_get(j, "model_sha256")->string) == 64);
    at_json_free(j);
}

TEST(cli_bad_images_are_reported_skipped_and_exit_1) {
    WITH_FIXTURE(cli_fixture, f);
    char zero[700], trunc[700], args[4096];
    snprintf(zero, sizeof zero, "%s/zero.png", f.dir);
    snprintf(trunc, sizeof trunc, "%s/trunc.png", f.dir);
    fclose(fopen(zero, "w"));
    FILE *src = fopen(f.img, "rb"), *dst = fopen(trunc, "wb");
    char buf[100];
    size_t n = fread(buf, 1, sizeof buf, src);
    fwrite(buf, 1, n, dst);
    fclose(src);
    fclose(dst);
    snprintf(args, sizeof args, "predict --backend cpu --model %s %s /nonexistent.png %s %s %s %s", f.model, f.img,
             zero, trunc, f.dir, f.img2);
    CHECK(attrib(args, 0) == 1);
    CHECK(strstr(out, "attrib: /nonexistent.png: "));
    CHECK(strstr(out, zero) && strstr(out, trunc));
    CHECKF(strstr(out, f.img) && strstr(out, f.img2), "good images still predicted: %s", out);
    snprintf(args, sizeof args, "predict --strict --backend cpu --model %s /nonexistent.png %s", f.model, f.img);
    CHECK(attrib(args, 1) == 1 && one_line(out));
}

/* Issue 13 item 12: --json gives one object per input, unreadable ones
 * included ({"image", "error"}), in input order; stderr keeps its lines. */
TEST(cli_predict_json_reports_unreadable_images_in_order) {
    WITH_FIXTURE(cli_fixture, f);
    char args[2048];
    snprintf(args, sizeof args, "predict --quiet --backend cpu --model %s --topk 1 --json %s /nonexistent.png %s 2>/dev/null",
             f.model, f.img, f.img2);
    REQUIRE(attrib(args, 0) == 1);
    const char *want[] = {f.img, "/nonexistent.png", f.img2};
    char *line = out;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr(line, '\n');
        REQUIRE(nl);
        at_json *j = NULL;
        REQUIRE(at_json_parse(line, (size_t)(nl - line), &j) == AT_OK);
        const at_json *img = at_json_get(j, "image"), *err = at_json_get(j, "error");
        CHECKF(img && !strcmp(img->string, want[i]), "line %d: %.*s", i, (int)(nl - line), line);
        CHECK((i == 1) == (err != NULL));
        if (err) CHECKF(strstr(err->string, "No such file") && !strstr(err->string, want[i]), "%s", err->string);
        at_json_free(j);
        line = nl + 1;
    }
    CHECK(*line == 0);
}

/* An unreadable image does not stop the batches after its own (it did: the
 * loop ended after the first batch once an image had failed). A 1M memory
 * limit makes the batch far smaller than the 300 inputs. */
TEST(cli_predict_runs_every_batch_after_an_unreadable_image) {
    WITH_FIXTURE(cli_fixture, f);
    char list[700];
    snprintf(list, sizeof list, "%s/many.txt", f.dir);
    FILE *l = fopen(list, "w");
    REQUIRE(l);
    fprintf(l, "/nonexistent.png\n");
    for (int i = 0; i < 300; i++) fprintf(l, "%s\n", f.img);
    fclose(l);
    char args[4096], res[700];
    snprintf(res, sizeof res, "%s/many.jsonl", f.dir);
    snprintf(args, sizeof args,
             "predict --quiet --backend cpu --mem-limit 1M --model %s --topk 1 --json --list %s >%s 2>/dev/null", f.model,
             list, res);
    CHECK(attrib(args, 0) == 1);
    size_t n = 0;
    char *text = (char *)test_read_bytes(res, &n);
    REQUIRE(text);
    int lines = 0, errors = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    for (size_t i = 0; i + 7 < n; i++) errors += !memcmp(text + i, "\"error\"", 7);
    free(text);
    CHECKF(lines == 301 && errors == 1, "%d lines, %d errors", lines, errors);
}

/* The library never prints the "auto chose the CPU" notice: it is the
 * backend's notice field, and the CLI prints it unless --quiet. */
TEST(backend_notice_is_returned_not_printed_and_quiet_silences_it) {
    char why[256];
    if (at_cuda_available(why, sizeof why)) SKIP("a usable CUDA device is present: auto has nothing to say");
    at_model *m = fixture_tiny_model();
    REQUIRE(m);
    char err_path[700];
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(2), fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    at_backend_options opt = {.name = "auto"};
    at_backend *be = NULL;
    int rc = at_backend_create(m, &opt, &be);
    fflush(stderr);
    dup2(saved, 2);
    close(saved), close(fd);
    size_t n = 99;
    free(test_read_bytes(err_path, &n));
    CHECK(rc == AT_OK && n == 0);
    if (be) CHECKF(strstr(be->notice, "using the CPU backend"), "notice: '%s'", be->notice);
    at_backend_destroy(be);
    at_model_free(m);

    WITH_FIXTURE(cli_fixture, f);
    char args[2048];
    snprintf(args, sizeof args, "predict --backend auto --model %s %s", f.model, f.img);
    CHECK(attrib(args, 1) == 0 && strstr(out, "attrib: using the CPU backend"));
    snprintf(args, sizeof args, "predict --quiet --backend auto --model %s %s", f.model, f.img);
    CHECKF(attrib(args, 1) == 0 && out[0] == 0, "stderr: %s", out);
    snprintf(args, sizeof args, "explain --quiet --method gradcam --no-overlay --backend auto --model %s --out %s/ex %s",
             f.model, f.dir, f.img);
    CHECKF(attrib(args, 1) == 0 && out[0] == 0, "stderr: %s", out);
    snprintf(args, sizeof args, "bench --quiet --nets model --model %s --batch 1 --passes forward --min-time 0.01",
             f.model);
    CHECKF(attrib(args, 1) == 0 && out[0] == 0, "stderr: %s", out);
}

/* Issue 13 item 3: the Trouser scene saved as 16-bit grey (v * 257) gives
 * the 8-bit grey file's prediction, not a near-white "Sandal", and the run
 * warns once that PIL's convert("RGB") would differ. */
TEST(cli_16bit_grey_png_predicts_like_8bit_and_warns_once) {
    at_image src;
    REQUIRE(at_image_load(test_path("weights/samples/images/fmscene_test_00000001.png"), &src) == AT_OK);
    long n = (long)src.w * src.h;
    unsigned short *g8 = malloc(sizeof *g8 * n), *g16 = malloc(sizeof *g16 * n);
    REQUIRE(g8 && g16);
    for (long i = 0; i < n; i++) { /* PIL's L = R 299/1000 + G 587/1000 + B 114/1000, in 16-bit fixed point */
        const unsigned char *p = src.rgb + 3 * i;
        g8[i] = (unsigned short)((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
        g16[i] = (unsigned short)(g8[i] * 257);
    }
    char a8[700], a16[700], b16[700], args[4096];
    snprintf(a8, sizeof a8, "%s/trouser8.png", test_tmpdir());
    snprintf(a16, sizeof a16, "%s/trouser16.png", test_tmpdir());
    snprintf(b16, sizeof b16, "%s/trouser16b.png", test_tmpdir());
    REQUIRE(fixture_write_grey_png(a8, src.w, src.h, 8, g8) == AT_OK);
    REQUIRE(fixture_write_grey_png(a16, src.w, src.h, 16, g16) == AT_OK);
    REQUIRE(fixture_write_grey_png(b16, src.w, src.h, 16, g16) == AT_OK);
    at_image_free(&src);
    free(g8), free(g16);

    char want[1024];
    snprintf(args, sizeof args, "predict --quiet --backend cpu --topk 2 %s 2>&1", a8);
    REQUIRE(attrib(args, 0) == 0);
    CHECKF(!strstr(out, "warning"), "8-bit grey warns: %s", out);
    CHECKF(strstr(out, "Trouser"), "the grey scene is still a trouser: %s", out);
    snprintf(want, sizeof want, "%s", strchr(out, '\n') + 1); /* the ranked lines without the path */
    snprintf(args, sizeof args, "predict --quiet --backend cpu --topk 2 %s %s 2>&1", a16, b16);
    REQUIRE(attrib(args, 0) == 0);
    const char *w = strstr(out, "attrib: warning: 16-bit greyscale PNG scaled to 8 bits");
    CHECKF(w && !strstr(w + 1, "attrib: warning"), "one warning per run: %s", out);
    CHECK(strstr(w, "convert(\"RGB\")") != NULL);
    CHECKF(strstr(out, want), "16-bit grey predicts otherwise:\n%s\nwant:\n%s", out, want);
}

TEST(cli_list_file_is_read_and_a_missing_one_named) {
    WITH_FIXTURE(cli_fixture, f);
    char list[700], args[2048];
    snprintf(list, sizeof list, "%s/list.txt", f.dir);
    FILE *l = fopen(list, "w");
    fprintf(l, "# comment\n%s\n\n%s\n", f.img, f.img2);
    fclose(l);
    snprintf(args, sizeof args, "predict --backend cpu --model %s --topk 1 --list %s", f.model, list);
    CHECK(attrib(args, 0) == 0 && strstr(out, f.img) && strstr(out, f.img2));
    CHECK(attrib("predict --list /nonexistent/list.txt", 1) == 1 && strstr(out, "/nonexistent/list.txt"));
}

TEST(cli_cuda_backend_without_a_gpu_is_a_clear_error) {
    WITH_FIXTURE(cli_fixture, f);
    char args[2048];
    snprintf(args, sizeof args, "predict --backend cuda --model %s %s", f.model, f.img);
    int rc = attrib(args, 1);
    if (rc == 0) SKIP("a usable CUDA device is present");
    CHECK(rc == 1 && one_line(out) && strstr(out, "cuda"));
    snprintf(args, sizeof args, "predict --backend auto --model %s %s", f.model, f.img);
    CHECK(attrib(args, 0) == 0 && strstr(out, "using the CPU backend"));
}

TEST(cli_info_describes_the_model) {
    WITH_FIXTURE(cli_fixture, f);
    char args[2048];
    snprintf(args, sizeof args, "info --layers --model %s", f.model);
    CHECK(attrib(args, 0) == 0 && strstr(out, "vgg11") && strstr(out, "features.18") && strstr(out, "gates"));
}

/* Issue 13 item 17: the exporter's --help works where PyTorch is missing and
 * its description is a whole sentence, not the docstring's first line. */
TEST(export_torchvision_help_is_whole_and_needs_no_torch) {
    if (run_cmd("/usr/bin/python3 -c 'import argparse' 2>&1", out, sizeof out) != 0) SKIP("no /usr/bin/python3");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/export_torchvision.py --help 2>&1", test_root());
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    CHECKF(strstr(out, "checkpoint to the safetensors file the attrib engine reads (see docs/models.md)."),
           "description cut off: %s", out);
    CHECK(strstr(out, "--random-init"));
}

/* Live: random-init torchvision vgg11 and vgg11_bn, exported by
 * tools/export_torchvision.py, give torchvision's logits in the engine. */
TEST(torchvision_exports_run_in_the_engine_when_torch_is_installed) {
    if (run_cmd("/usr/bin/python3 -c 'import torchvision' 2>&1", out, sizeof out) != 0)
        SKIP("/usr/bin/python3 cannot import torchvision");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/export_torchvision.py --self-test --engine %s/attrib 2>&1",
             test_root(), test_root());
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "Result = PASS"), "%s", out);
    /* the random-init export docs/models.md shows */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/tools/export_torchvision.py --arch vgg11 --random-init 0 --out %s/r.safetensors 2>&1 && "
             "%s/attrib info --model %s/r.safetensors 2>&1",
             test_root(), test_tmpdir(), test_root(), test_tmpdir());
    CHECKF(run_cmd(cmd, out, sizeof out) == 0 && strstr(out, "vgg11"), "%s", out);
}

/* The work bench prints per image is the work its TFLOP/s is computed from
 * (backward = forward + gate-backward, counted as two forwards). */
TEST(cli_bench_rate_follows_from_the_printed_work) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/attrib bench --backend cpu --nets mini --batch 1 --passes forward,backward "
             "--min-time 0.01 --json 2>/dev/null", test_root());
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    int lines = 0;
    double gmac[2] = {0};
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        at_json *j = NULL;
        if (at_json_parse(line, strlen(line), &j) != AT_OK) continue;
        double g = at_json_get(j, "gmac_per_image")->number, ms = at_json_get(j, "ms_per_image")->number;
        double tflops = at_json_get(j, "tflops")->number;
        /* the measured peak (host/cpu/peak.c) and the share of it */
        double peak = at_json_get(j, "peak_gflops")->number, pct = at_json_get(j, "peak_pct")->number;
        CHECKF(peak > 1 && fabs(pct - 100 * tflops * 1e3 / peak) <= 0.01 * pct + 0.02, "peak %g GFLOP/s, %g %%", peak,
               pct);
        const char *pass = at_json_get(j, "pass")->string;
        CHECKF(fabs(2 * g * 1e9 / (ms * 1e-3) / 1e12 - tflops) <= 1e-3 * tflops + 1e-4, "%s: %g GMAC, %g ms, %g TFLOP/s",
               pass, g, ms, tflops);
        gmac[!strcmp(pass, "backward")] = g;
        lines++;
        at_json_free(j);
    }
    CHECK(lines == 2);
    CHECK_NEAR(gmac[1], 2 * gmac[0], 1e-3);
}

/* The threads a bench ran with, from its first JSON line; -1 when none. */
static int bench_threads(const char *env) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "env -u OMP_WAIT_POLICY -u OMP_NUM_THREADS %s %s/attrib bench --backend cpu --nets mini "
             "--batch 1 --passes forward --min-time 0 --json 2>/dev/null", env, test_root());
    if (run_cmd(cmd, out, sizeof out) != 0) return -1;
    at_json *j = NULL;
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
    if (at_json_parse(out, strlen(out), &j) != AT_OK) return -1;
    const at_json *t = at_json_get(j, "threads");
    const int n = t ? (int)t->number : -1;
    at_json_free(j);
    return n;
}

/* The CLI re-executes itself to make OpenMP's waiting passive. With
 * OMP_PROC_BIND set, libgomp has bound the first process's thread to one
 * place by then, and that mask would pass to the re-executed program: all
 * its threads on one core. It must keep every core it was started with. */
TEST(cli_thread_binding_keeps_every_core_across_the_passive_reexec) {
    const int plain = bench_threads("-u OMP_PROC_BIND -u OMP_PLACES");
    REQUIRE(plain >= 1);
    if (plain < 2) SKIP("one CPU: a lost core cannot show");
    CHECKF(bench_threads("OMP_PROC_BIND=true") == plain, "OMP_PROC_BIND=true: %d threads, %d without",
           bench_threads("OMP_PROC_BIND=true"), plain);
    CHECKF(bench_threads("OMP_PROC_BIND=close OMP_PLACES=cores") == plain, "OMP_PLACES=cores: %d threads, %d without",
           bench_threads("OMP_PROC_BIND=close OMP_PLACES=cores"), plain);
}

/* Issue 13 item 15: `make demo` prints the build line (CUDA_ARCH or why the
 * CUDA backend is not built), as `make` does. A dry run executes nothing. */
TEST(make_demo_prints_the_cuda_build_line) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -n demo 2>&1", test_root());
    if (run_cmd(cmd, out, sizeof out) != 0 && !strstr(out, "demo")) SKIP("make is not available");
    CHECKF(strstr(out, "attrib: CUDA backend: "), "no CUDA build line in: %s", out);
    CHECK(strstr(out, "CUDA_ARCH=") || strstr(out, "not built"));
}
