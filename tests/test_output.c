/* Output layer (docs/usage.md#explain): output names, results lines, resume keys, torn-line
 * repair, jet overlays, output directories, interruption cleanup, progress. */
#include "output/colormap.h"
#include "core/error.h"
#include "io/image.h"
#include "io/npy.h"
#include "output/output.h"
#include "output/progress.h"
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------- helpers ---------- */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    b[fread(b, 1, (size_t)n, f)] = 0;
    fclose(f);
    return b;
}

static const char *join(const char *dir, const char *name) {
    static char bufs[4][1024];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 1024, "%s/%s", dir, name);
    return b;
}

static int count_entries(const char *dir) { /* excluding . and .. */
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* Names paths and compares with want (NULL want: expects an error). */
static void check_stems(const char *what, int n, const char *const *paths, const char *const *want) {
    char *got[16];
    int rc = at_output_stems(n, paths, got);
    if (!want) {
        CHECKF(rc == AT_ERR, "%s: accepted", what);
        return;
    }
    CHECKF(rc == AT_OK, "%s: %s", what, at_last_error());
    if (rc != AT_OK) return;
    for (int i = 0; i < n; i++) {
        CHECKF(!strcmp(got[i], want[i]), "%s: %s -> \"%s\", want \"%s\"", what, paths[i], got[i],
               want[i]);
        free(got[i]);
    }
}

/* ---------- output names ---------- */

TEST(stems_are_file_names_without_extension) {
    const char *p[] = {"data/cat.png", "data/dog.jpg", "x/.hidden", "a.tar.gz", "/abs/bird.JPEG"};
    const char *w[] = {"cat", "dog", ".hidden", "a.tar", "bird"};
    check_stems("distinct", 5, p, w);
}

TEST(stems_colliding_inputs_take_the_shortest_path_suffix_that_differs) {
    const char *p[] = {"imgs/a/cat.png", "imgs/b/cat.png", "imgs/a/dog.png", "imgs/b/c/cat.jpg"};
    const char *w[] = {"a__cat", "b__cat", "dog", "c__cat"};
    check_stems("collisions", 4, p, w);
    const char *q[] = {"x/a/cat.png", "y/a/cat.png", "b/cat.png"};
    const char *v[] = {"x__a__cat", "y__a__cat", "b__cat"};
    check_stems("a suffix shared by two", 3, q, v);
}

TEST(stems_of_an_absolute_and_a_relative_path_use_only_the_differing_suffix) {
    const char *p[] = {"/home/user/data/scenes/a/x.png", "scenes/b/x.png", "/home/user/data/scenes/y.png"};
    const char *w[] = {"a__x", "b__x", "y"};
    check_stems("absolute and relative", 3, p, w);
}

TEST(stems_ignore_dot_components_and_repeated_slashes) {
    const char *p[] = {"./imgs/a/cat.png", "imgs//b/./cat.png"};
    const char *w[] = {"a__cat", "b__cat"};
    check_stems("normalised", 2, p, w);
}

TEST(stems_of_absolute_paths_drop_the_leading_slash) {
    const char *p[] = {"/data/v/a/x.png", "/data/v/b/x.png"};
    const char *w[] = {"a__x", "b__x"};
    check_stems("absolute", 2, p, w);
    const char *q[] = {"/d/x.png", "e/x.png"}; /* no common root */
    const char *v[] = {"d__x", "e__x"};
    check_stems("absolute and relative", 2, q, v);
}

TEST(stems_keep_the_extension_when_only_it_differs) {
    const char *p[] = {"d/x.png", "d/x.jpg", "d/y.png"};
    const char *w[] = {"x.png", "x.jpg", "y"};
    check_stems("extension", 3, p, w);
}

TEST(stems_of_a_repeated_path_are_shared) {
    const char *p[] = {"a/x.png", "./a/x.png", "b/y.png"};
    const char *w[] = {"x", "x", "y"};
    check_stems("repeated", 3, p, w);
}

TEST(stems_that_cannot_be_told_apart_are_an_error) {
    const char *p[] = {"/x.png", "x.png"};
    check_stems("ambiguous", 2, p, NULL);
    CHECK(strstr(at_last_error(), "/x.png") && strstr(at_last_error(), "x.png"));
    const char *q[] = {"dir/"};
    check_stems("directory", 1, q, NULL);
}

TEST(output_path_appends_method_and_parameter) {
    char *a = at_output_path("out", "cat", "gradcam", NULL, "npy");
    char *b = at_output_path("out", "cat", "pathway-grad", "r0.50", "npy");
    CHECK(a && !strcmp(a, "out/cat.gradcam.npy"));
    CHECK(b && !strcmp(b, "out/cat.pathway-grad.r0.50.npy"));
    free(a);
    free(b);
}

/* ---------- JSON lines ---------- */

static void check_line(const char *what, char *got, const char *want) {
    CHECKF(got && !strcmp(got, want), "%s: got %s, want %s", what, got ? got : "NULL", want);
    free(got);
}

TEST(jsonw_escapes_quotes_backslashes_and_control_characters) {
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "k", "a\"b\\c\n\t\x01\x1f");
    check_line("escapes", at_jsonw_end(&w), "{\"k\":\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\"}");
}

TEST(jsonw_passes_utf8_through_and_refuses_invalid_utf8) {
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", "caf\xc3\xa9/\xe6\x97\xa5.png");
    check_line("utf8", at_jsonw_end(&w), "{\"image\":\"caf\xc3\xa9/\xe6\x97\xa5.png\"}");
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", "bad\xff.png");
    at_jsonw_int(&w, "n", 1); /* ignored after the failure */
    CHECK(at_jsonw_end(&w) == NULL);
    CHECK(strstr(at_last_error(), "\"image\"") && strstr(at_last_error(), "UTF-8"));
}

TEST(jsonw_writes_numbers_and_nonfinite_as_null) {
    at_jsonw w;
    double v[3] = {1.5, NAN, -0.25};
    long long o[3] = {0, 64, 4224};
    at_jsonw_begin(&w);
    at_jsonw_num(&w, "a", (double)0.1f); /* %.9g: a float round-trips */
    at_jsonw_num(&w, "e", 1e-20);
    at_jsonw_num(&w, "nan", NAN);
    at_jsonw_num(&w, "inf", -INFINITY);
    at_jsonw_int(&w, "i", -9007199254740993LL);
    at_jsonw_bool(&w, "t", 1);
    at_jsonw_str(&w, "none", NULL);
    at_jsonw_nums(&w, "v", v, 3);
    at_jsonw_ints(&w, "o", o, 3);
    at_jsonw_raw(&w, "r", "{\"x\":[1,2]}");
    check_line("numbers", at_jsonw_end(&w),
               "{\"a\":0.100000001,\"e\":1e-20,\"nan\":null,\"inf\":null,\"i\":-9007199254740993,\"t\":true,"
               "\"none\":null,\"v\":[1.5,null,-0.25],\"o\":[0,64,4224],\"r\":{\"x\":[1,2]}}");
}

TEST(jsonw_refuses_invalid_raw_json_and_duplicate_keys) {
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_raw(&w, "r", "[1,");
    CHECK(at_jsonw_end(&w) == NULL);
    at_jsonw_begin(&w);
    at_jsonw_int(&w, "k", 1);
    at_jsonw_int(&w, "k", 2);
    CHECK(at_jsonw_end(&w) == NULL && strstr(at_last_error(), "not valid JSON"));
}

/* ---------- results.jsonl and resume ---------- */

static char *result_line(const char *image, const char *method, const char *layer, int cls) {
    at_jsonw w;
    at_jsonw_begin(&w);
    at_jsonw_str(&w, "image", image);
    at_jsonw_str(&w, "method", method);
    if (layer) at_jsonw_str(&w, "layer", layer);
    if (cls >= 0) at_jsonw_int(&w, "class_option", cls);
    at_jsonw_num(&w, "seconds", 0.125);
    return at_jsonw_end(&w);
}

static void append_line(at_results *r, char *line) {
    CHECKF(line && at_results_append(r, line) == AT_OK, "append: %s", at_last_error());
    free(line);
}

TEST(results_lines_appended_are_found_again_on_resume) {
    const char *dir = test_tmpdir();
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 0) == AT_OK);
    append_line(r, result_line("imgs/a.png", "gradcam", "features.28", 243));
    append_line(r, result_line("imgs/a.png", "saliency", NULL, -1));
    append_line(r, result_line("imgs/b.png", "gradcam", "features.28", 243));
    at_results_close(r);
    char *text = read_text(join(dir, "results.jsonl"));
    int lines = 0;
    for (char *c = text; c && *c; c++) lines += *c == '\n';
    CHECK(lines == 3 && text[strlen(text) - 1] == '\n');
    free(text);

    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_nkeys(r) == 3);
    CHECK(at_results_has(r, "imgs/a.png", "gradcam", "features.28", "243"));
    CHECK(at_results_has(r, "imgs/a.png", "saliency", NULL, NULL));
    CHECK(at_results_has(r, "imgs/a.png", "saliency", "", ""));
    CHECK(!at_results_has(r, "imgs/a.png", "gradcam", "features.28", "244"));
    CHECK(!at_results_has(r, "imgs/a.png", "gradcam", "features.26", "243"));
    CHECK(!at_results_has(r, "./imgs/a.png", "gradcam", "features.28", "243")); /* path as given */
    CHECK(!at_results_has(r, "imgs/c.png", "gradcam", "features.28", "243"));
    CHECK(at_results_add_key(r, "imgs/c.png", "gradcam", "features.28", "243") == AT_OK);
    CHECK(at_results_has(r, "imgs/c.png", "gradcam", "features.28", "243"));
    at_results_close(r);
}

TEST(results_key_names_the_settings_so_each_setting_is_its_own_key) {
    const char *dir = test_tmpdir();
    write_text(join(dir, "results.jsonl"),
               "{\"image\":\"a\",\"method\":\"gradcam\",\"settings\":\"\",\"layer\":\"features.29\"}\n"
               "{\"image\":\"a\",\"method\":\"gradcam\",\"settings\":\"features.22.c3\",\"layer\":\"features.22\"}\n");
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_nkeys(r) == 2);
    CHECK(at_results_has(r, "a", "gradcam", "features.29", NULL));
    CHECK(at_results_has(r, "a", "gradcam.features.22.c3", "features.22", NULL));
    CHECK(!at_results_has(r, "a", "gradcam", "features.22", NULL));
    at_results_close(r);
}

TEST(results_compact_keeps_the_last_line_of_each_key_and_keyless_lines) {
    const char *dir = test_tmpdir();
    write_text(join(dir, "results.jsonl"),
               "{\"image\":\"a\",\"method\":\"m\",\"v\":1}\n"
               "{\"image\":\"b\",\"method\":\"m\",\"v\":2}\n"
               "{\"image\":\"c\",\"method\":\"m\",\"error\":\"unreadable\"}\n"
               "{\"image\":\"a\",\"method\":\"m\",\"v\":3}\n");
    at_results *r;
    long merged = -1;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 0) == AT_OK);
    CHECK(at_results_compact(r, &merged) == AT_OK && merged == 1);
    append_line(r, result_line("d", "m", NULL, -1)); /* appends still reach the file */
    at_results_close(r);
    char *text = read_text(join(dir, "results.jsonl"));
    CHECKF(text && !strcmp(text, "{\"image\":\"b\",\"method\":\"m\",\"v\":2}\n"
                                 "{\"image\":\"c\",\"method\":\"m\",\"error\":\"unreadable\"}\n"
                                 "{\"image\":\"a\",\"method\":\"m\",\"v\":3}\n"
                                 "{\"image\":\"d\",\"method\":\"m\",\"seconds\":0.125}\n"),
           "%s", text ? text : "NULL");
    free(text);
    CHECK(count_entries(dir) == 1); /* no temporary file left */
}

TEST(results_without_resume_load_no_keys) {
    const char *dir = test_tmpdir();
    write_text(join(dir, "results.jsonl"), "{\"image\":\"a\",\"method\":\"m\"}\n");
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 0) == AT_OK);
    CHECK(at_results_nkeys(r) == 0 && !at_results_has(r, "a", "m", NULL, NULL));
    at_results_close(r);
}

TEST(results_resume_keys_take_string_class_options_and_skip_failed_lines) {
    const char *dir = test_tmpdir();
    write_text(join(dir, "results.jsonl"),
               "{\"image\":\"a\",\"method\":\"m\",\"layer\":null,\"class_option\":\"top1\"}\n"
               "\n"
               "{\"image\":\"b\",\"method\":\"m\",\"error\":\"cannot decode\"}\n"
               "{\"image\":\"c\",\"method\":\"m\",\"error\":null}\n");
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_has(r, "a", "m", NULL, "top1"));
    CHECK(!at_results_has(r, "b", "m", NULL, NULL)); /* failed: retried on resume */
    CHECK(at_results_has(r, "c", "m", NULL, NULL));
    CHECK(at_results_nkeys(r) == 2);
    at_results_close(r);
}

TEST(results_torn_last_line_is_removed_on_open) {
    const char *dir = test_tmpdir(), *path = join(dir, "results.jsonl");
    const char *good = "{\"image\":\"a\",\"method\":\"m\"}\n{\"image\":\"b\",\"method\":\"m\"}\n";
    char text[256];
    snprintf(text, sizeof text, "%s{\"image\":\"c\",\"meth", good);
    write_text(path, text);
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_dropped_bytes(r) == (long)strlen("{\"image\":\"c\",\"meth"));
    CHECK(at_results_nkeys(r) == 2 && !at_results_has(r, "c", "m", NULL, NULL));
    char *now = read_text(path);
    CHECKF(now && !strcmp(now, good), "after repair: %s", now);
    free(now);
    append_line(r, result_line("c", "m", NULL, -1));
    at_results_close(r);
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_nkeys(r) == 3 && at_results_dropped_bytes(r) == 0);
    at_results_close(r);
}

TEST(results_complete_last_line_without_newline_is_kept) {
    const char *dir = test_tmpdir(), *path = join(dir, "results.jsonl");
    write_text(path, "{\"image\":\"a\",\"method\":\"m\"}\n{\"image\":\"b\",\"method\":\"m\"}");
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_dropped_bytes(r) == 0 && at_results_nkeys(r) == 2);
    at_results_close(r);
    char *now = read_text(path);
    CHECK(now && now[strlen(now) - 1] == '\n' && strstr(now, "\"b\""));
    free(now);
}

TEST(results_load_keys_tolerates_a_partial_last_line) {
    const char *dir = test_tmpdir(), *other = join(dir, "old.jsonl");
    write_text(other, "{\"image\":\"a\",\"method\":\"m\"}\n{\"image\":\"b\",\"met");
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 0) == AT_OK);
    CHECKF(at_results_load_keys(r, other) == AT_OK, "%s", at_last_error());
    CHECK(at_results_nkeys(r) == 1 && at_results_has(r, "a", "m", NULL, NULL));
    at_results_close(r);
    char *untouched = read_text(other); /* only open() repairs, and only its own file */
    CHECK(untouched && strstr(untouched, "\"met") && untouched[strlen(untouched) - 1] == 't');
    free(untouched);
}

TEST(results_malformed_line_is_reported_with_file_and_line) {
    const char *dir = test_tmpdir(), *path = join(dir, "results.jsonl");
    write_text(path, "{\"image\":\"a\",\"method\":\"m\"}\n{\"image\": oops}\n{\"image\":\"c\",\"method\":\"m\"}\n");
    at_results *r = (at_results *)1;
    CHECK(at_results_open(&r, dir, "results.jsonl", 1) == AT_ERR && r == NULL);
    char want[1100];
    snprintf(want, sizeof want, "%s:2: malformed line", path);
    CHECKF(strstr(at_last_error(), want) != NULL, "message: %s", at_last_error());

    write_text(path, "{\"image\":\"a\",\"method\":\"m\"}\n[1,2]\n");
    CHECK(at_results_open(&r, dir, "results.jsonl", 1) == AT_ERR);
    CHECKF(strstr(at_last_error(), ":2: ") && strstr(at_last_error(), "not a JSON object"), "%s",
           at_last_error());
    write_text(path, "{\"image\":\"a\"}\n");
    CHECK(at_results_open(&r, dir, "results.jsonl", 1) == AT_ERR);
    CHECKF(strstr(at_last_error(), ":1: ") && strstr(at_last_error(), "\"method\" is missing"), "%s",
           at_last_error());
}

TEST(results_append_refuses_a_line_with_a_newline) {
    at_results *r;
    REQUIRE(at_results_open(&r, test_tmpdir(), "results.jsonl", 0) == AT_OK);
    CHECK(at_results_append(r, "{\"a\":1}\n{\"b\":2}") == AT_ERR);
    CHECK(at_results_append(r, "") == AT_ERR);
    at_results_close(r);
}

TEST(results_key_set_holds_many_keys) {
    enum { N = 200000 }; /* a large run's worth; the set must grow and stay exact */
    at_results *r;
    REQUIRE(at_results_open(&r, test_tmpdir(), "results.jsonl", 0) == AT_OK);
    char img[64];
    for (int i = 0; i < N; i++) {
        snprintf(img, sizeof img, "val/ILSVRC2012_val_%08d.JPEG", i);
        if (at_results_add_key(r, img, "scorecam", "features.29", NULL) != AT_OK) break;
    }
    CHECK(at_results_nkeys(r) == N);
    int missing = 0, extra = 0;
    for (int i = 0; i < N; i++) {
        snprintf(img, sizeof img, "val/ILSVRC2012_val_%08d.JPEG", i);
        missing += !at_results_has(r, img, "scorecam", "features.29", NULL);
        extra += at_results_has(r, img, "gradcam", "features.29", NULL);
    }
    CHECK(missing == 0 && extra == 0);
    at_results_add_key(r, "val/ILSVRC2012_val_00000000.JPEG", "scorecam", "features.29", NULL);
    CHECK(at_results_nkeys(r) == N); /* a duplicate adds nothing */
    at_results_close(r);
}

/* ---------- colormap and overlay ---------- */

/* matplotlib 3.11: mpl.colormaps["jet"](np.arange(256), bytes=True)[:, :3] */
static const char *const MPL_JET_HEX =
    "00007f00008400008800008d00009100009600009a00009f0000a30000a80000ac0000b10000b60000ba0000bf"
    "0000c30000c80000cc0000d10000d50000da0000de0000e30000e80000ec0000f10000f50000fa0000fe0000ff"
    "0000ff0000ff0000ff0004ff0008ff000cff0010ff0014ff0018ff001cff0020ff0024ff0028ff002cff0030ff"
    "0034ff0038ff003cff0040ff0044ff0048ff004cff0050ff0054ff0058ff005cff0060ff0064ff0068ff006cff"
    "0070ff0074ff0078ff007cff0080ff0084ff0088ff008cff0090ff0094ff0098ff009cff00a0ff00a4ff00a8ff"
    "00acff00b0ff00b4ff00b8ff00bcff00c0ff00c4ff00c8ff00ccff00d0ff00d4ff00d8ff00dcfe00e0fa00e4f7"
    "02e8f405ecf108f0ed0cf4ea0ff8e712fce415ffe118ffdd1cffda1fffd722ffd425ffd029ffcd2cffca2fffc7"
    "32ffc336ffc039ffbd3cffba3fffb742ffb346ffb049ffad4cffaa4fffa653ffa356ffa059ff9d5cff9a5fff96"
    "63ff9366ff9069ff8d6cff8970ff8673ff8376ff8079ff7d7cff7980ff7683ff7386ff7089ff6c8dff6990ff66"
    "93ff6396ff5f9aff5c9dff59a0ff56a3ff53a6ff4faaff4cadff49b0ff46b3ff42b7ff3fbaff3cbdff39c0ff36"
    "c3ff32c7ff2fcaff2ccdff29d0ff25d4ff22d7ff1fdaff1cddff18e0ff15e4ff12e7ff0feaff0cedff08f1fc05"
    "f4f802f7f400faf000feed00ffe900ffe500ffe200ffde00ffda00ffd700ffd300ffcf00ffcb00ffc800ffc400"
    "ffc000ffbd00ffb900ffb500ffb100ffae00ffaa00ffa600ffa300ff9f00ff9b00ff9800ff9400ff9000ff8c00"
    "ff8900ff8500ff8100ff7e00ff7a00ff7600ff7300ff6f00ff6b00ff6700ff6400ff6000ff5c00ff5900ff5500"
    "ff5100ff4d00ff4a00ff4600ff4200ff3f00ff3b00ff3700ff3400ff3000ff2c00ff2800ff2500ff2100ff1d00"
    "ff1a00ff1600fe1200fa0f00f50b00f10700ec0300e80000e30000de0000da0000d50000d10000cc0000c80000"
    "c30000bf0000ba0000b60000b10000ac0000a80000a300009f00009a00009600009100008d00008800008400007f"
    "0000";

TEST(jet_matches_matplotlib_entry_for_entry) {
    int bad = 0;
    for (int i = 0; i < 256; i++) {
        unsigned char got[3];
        unsigned want[3];
        sscanf(MPL_JET_HEX + 6 * i, "%2x%2x%2x", &want[0], &want[1], &want[2]);
        at_jet_rgb((float)i / 256.0f, got); /* index floor(v*256) = i */
        for (int c = 0; c < 3; c++)
            if (got[c] != want[c] && bad++ < 5)
                CHECKF(0, "jet[%d][%d] = %d, matplotlib %u", i, c, got[c], want[c]);
        at_jet_rgb(((float)i + 0.99f) / 256.0f, got); /* same bin */
        CHECKF(got[0] == want[0] && got[1] == want[1] && got[2] == want[2], "bin %d upper end", i);
    }
}

TEST(jet_endpoints_are_dark_blue_green_dark_red) {
    unsigned char c[3];
    at_jet_rgb(0.0f, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 127); /* dark blue */
    at_jet_rgb(1.0f, c);
    CHECK(c[0] == 127 && c[1] == 0 && c[2] == 0); /* dark red */
    at_jet_rgb(0.5f, c);
    CHECK(c[0] == 124 && c[1] == 255 && c[2] == 121); /* greenish */
    at_jet_rgb(NAN, c);
    CHECK(c[2] == 127 && c[0] == 0);
    at_jet_rgb(-3.0f, c);
    CHECK(c[2] == 127 && c[0] == 0);
    at_jet_rgb(7.0f, c);
    CHECK(c[0] == 127 && c[2] == 0);
}

TEST(overlay_png_is_an_alpha_blend_of_the_right_size) {
    enum { W = 5, H = 3 };
    unsigned char rgb[W * H * 3];
    float map[W * H];
    for (int i = 0; i < W * H; i++) {
        map[i] = (float)i / (W * H - 1);
        rgb[3 * i] = 100, rgb[3 * i + 1] = 150, rgb[3 * i + 2] = 200;
    }
    const char *path = join(test_tmpdir(), "x.gradcam.png");
    REQUIRE(at_overlay_png(path, rgb, map, W, H, 0.5f) == AT_OK);
    at_image img;
    REQUIRE(at_image_load(path, &img) == AT_OK);
    CHECK(img.w == W && img.h == H);
    /* pixel 0: map 0 -> (0,0,127); 0.5*(0,0,127) + 0.5*(100,150,200) = (50,75,163.5) -> 164 */
    CHECK(img.rgb[0] == 50 && img.rgb[1] == 75 && img.rgb[2] == 164);
    int last = 3 * (W * H - 1); /* map 1 -> (127,0,0): (113.5,75,100) -> 114 */
    CHECK(img.rgb[last] == 114 && img.rgb[last + 1] == 75 && img.rgb[last + 2] == 100);
    at_image_free(&img);

    unsigned char out[W * H * 3], jet[3];
    at_overlay_rgb(out, rgb, map, W, H, 0.0f);
    CHECK(!memcmp(out, rgb, sizeof out)); /* alpha 0: the image */
    at_overlay_rgb(out, rgb, map, W, H, 1.0f);
    at_jet_rgb(map[7], jet);
    CHECK(!memcmp(out + 21, jet, 3)); /* alpha 1: the colormap */
}

/* ---------- output directory ---------- */

TEST(dir_prepare_creates_nested_directories) {
    const char *dir = join(test_tmpdir(), "out/a/b");
    CHECKF(at_output_dir_prepare(dir) == AT_OK, "%s", at_last_error());
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(at_output_dir_prepare(dir) == AT_OK); /* existing: fine */
}

TEST(dir_prepare_names_a_file_in_the_way) {
    const char *file = join(test_tmpdir(), "plain");
    write_text(file, "x");
    CHECK(at_output_dir_prepare(file) == AT_ERR);
    CHECKF(strstr(at_last_error(), file) && strstr(at_last_error(), "not a directory"), "%s",
           at_last_error());
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/sub", file);
    CHECK(at_output_dir_prepare(sub) == AT_ERR);
    CHECKF(strstr(at_last_error(), sub) && strstr(at_last_error(), "not a directory"), "%s",
           at_last_error());
}

TEST(dir_prepare_refuses_a_directory_it_cannot_write) {
    if (geteuid() == 0) SKIP("running as root, which may write into any directory");
    const char *dir = join(test_tmpdir(), "ro");
    mkdir(dir, 0555);
    CHECK(at_output_dir_prepare(dir) == AT_ERR);
    CHECKF(strstr(at_last_error(), dir) && strstr(at_last_error(), "not writable"), "%s",
           at_last_error());
    chmod(dir, 0755);
}

/* ---------- atomic writes and interruption ---------- */

TEST(tracked_temp_names_match_the_writers) {
    /* output.c tracks the temporary names npy.c and image.c use; a directory
     * squatting on each name makes the writer fail and name it. */
    const char *dir = test_tmpdir();
    char npy[1100], png[1100];
    snprintf(npy, sizeof npy, "%s.tmp.%ld", join(dir, "m.npy"), (long)getpid());
    snprintf(png, sizeof png, "%s.tmp%ld", join(dir, "m.png"), (long)getpid());
    mkdir(npy, 0755);
    mkdir(png, 0755);
    float v[4] = {0, 0.25f, 0.5f, 1};
    unsigned char rgb[12] = {0};
    int64_t shape[2] = {2, 2};
    CHECK(at_output_write_npy(join(dir, "m.npy"), v, 2, shape) == AT_ERR);
    CHECKF(strstr(at_last_error(), npy) != NULL, "npy temp name changed? %s", at_last_error());
    CHECK(at_output_write_png(join(dir, "m.png"), 2, 2, rgb) == AT_ERR);
    CHECKF(strstr(at_last_error(), png) != NULL, "png temp name changed? %s", at_last_error());
    rmdir(npy);
    rmdir(png);
    CHECK(at_output_write_npy(join(dir, "m.npy"), v, 2, shape) == AT_OK);
    CHECK(at_output_write_png(join(dir, "m.png"), 2, 2, rgb) == AT_OK);
    CHECK(count_entries(dir) == 2); /* no temporary left behind */
}

TEST(tracking_is_bounded_and_slots_are_reused) {
    int slots[AT_OUTPUT_MAX_INFLIGHT];
    int n = 0;
    for (; n < AT_OUTPUT_MAX_INFLIGHT; n++)
        if ((slots[n] = at_output_track("/nonexistent/x.tmp")) < 0) break;
    CHECK(n == AT_OUTPUT_MAX_INFLIGHT);
    CHECK(at_output_track("/nonexistent/y.tmp") == AT_ERR);
    at_output_untrack(slots[3]);
    int again = at_output_track("/nonexistent/z.tmp");
    CHECK(again == slots[3]);
    for (int i = 0; i < n; i++) at_output_untrack(slots[i]);
}

/* Child: appends two results lines, then writes a tracked temporary file byte
 * by byte until the parent's signal arrives. Never returns. */
static void slow_writer_child(const char *dir, int ready_fd) {
    char err[1100];
    snprintf(err, sizeof err, "%s.stderr", dir); /* the handler's "attrib: interrupted" */
    int errfd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (errfd >= 0) dup2(errfd, 2);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    at_results *r;
    if (at_output_install_signal_cleanup() != AT_OK) _exit(3);
    if (at_results_open(&r, dir, "results.jsonl", 0) != AT_OK) _exit(4);
    if (at_results_append(r, "{\"image\":\"a.png\",\"method\":\"gradcam\"}") != AT_OK ||
        at_results_append(r, "{\"image\":\"b.png\",\"method\":\"gradcam\"}") != AT_OK)
        _exit(5);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/c.gradcam.npy.tmp.%ld", dir, (long)getpid());
    if (at_output_track(tmp) < 0) _exit(6);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0 || write(fd, "x", 1) != 1 || write(ready_fd, "r", 1) != 1) _exit(7);
    for (;;) {
        if (write(fd, "x", 1) != 1) _exit(8);
        usleep(1000);
    }
}

static void check_interrupted_by(int sig) {
    const char *dir = test_tmpdir();
    int pfd[2];
    REQUIRE(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        slow_writer_child(dir, pfd[1]);
    }
    close(pfd[1]);
    char c;
    int ready = read(pfd[0], &c, 1) == 1;
    close(pfd[0]);
    if (ready) kill(pid, sig);
    int st = 0;
    waitpid(pid, &st, 0);
    REQUIRE(ready);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 128 + sig, "signal %d: status %d", sig,
           WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/c.gradcam.npy.tmp.%ld", dir, (long)pid);
    CHECK(access(tmp, F_OK) != 0); /* the half-written file is gone */
    snprintf(tmp, sizeof tmp, "%s.stderr", dir);
    char *msg = read_text(tmp);
    CHECKF(msg && strstr(msg, ": 2 results lines of this run kept"), "message: %s", msg ? msg : "NULL");
    free(msg);
    CHECK(count_entries(dir) == 1);
    at_results *r;
    REQUIRE(at_results_open(&r, dir, "results.jsonl", 1) == AT_OK);
    CHECK(at_results_nkeys(r) == 2 && at_results_dropped_bytes(r) == 0);
    CHECK(at_results_has(r, "a.png", "gradcam", NULL, NULL));
    CHECK(at_results_has(r, "b.png", "gradcam", NULL, NULL));
    at_results_close(r);
}

TEST(sigint_removes_temp_files_keeps_results_and_exits_130) { check_interrupted_by(SIGINT); }
TEST(sigterm_removes_temp_files_keeps_results_and_exits_143) { check_interrupted_by(SIGTERM); }

/* ---------- progress ---------- */

static double fake_t;
static double fake_now(void) { return fake_t; }

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} capture;

static void capture_open(capture *c) {
    c->buf = NULL, c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
}

static void capture_close(capture *c) {
    fclose(c->f);
    free(c->buf);
}

static int count_char(const char *s, size_t n, char ch) {
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == ch;
    return k;
}

TEST(progress_on_a_tty_rewrites_one_line) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 100;
    at_progress_start_ex(&p, 1000, "explain", 0, c.f, 1, fake_now);
    fake_t = 101;
    at_progress_tick(&p, 8, 2);
    CHECKF(strstr(c.buf, "\rexplain: 10/1000 images (2 failed), 10.0 images/s, ETA 1m39s") != NULL,
           "got \"%s\"", c.buf);
    for (int i = 0; i < 40; i++) { /* 2 s of ticks 50 ms apart: at most 4 lines a second */
        fake_t += 0.05;
        at_progress_tick(&p, 1, 0);
    }
    int redraws = count_char(c.buf, c.len, '\r');
    CHECKF(redraws >= 6 && redraws <= 9, "%d redraws", redraws); /* 1 + at most 4 a second */
    CHECK(count_char(c.buf, c.len, '\n') == 0);
    at_progress_finish(&p);
    CHECKF(c.len && c.buf[c.len - 1] == '\n' && strstr(c.buf, "50/1000 images (2 failed) in 3s"),
           "got \"%s\"", c.buf);
    capture_close(&c);
}

TEST(progress_without_a_tty_prints_each_tenth) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 0;
    at_progress_start_ex(&p, 1000, "explain", 0, c.f, 0, fake_now);
    for (int i = 0; i < 1000; i++) { /* fast: 5 s in all, so only the 10 % marks print */
        fake_t += 0.005;
        at_progress_tick(&p, 1, 0);
    }
    at_progress_finish(&p);
    CHECKF(count_char(c.buf, c.len, '\n') == 10, "%d lines:\n%s", count_char(c.buf, c.len, '\n'),
           c.buf);
    CHECK(count_char(c.buf, c.len, '\r') == 0 && strstr(c.buf, "explain: 100/1000 images"));
    capture_close(&c);
}

TEST(progress_without_a_tty_prints_every_ten_seconds_when_slow) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 0;
    at_progress_start_ex(&p, 100000, "eval", 0, c.f, 0, fake_now);
    for (int i = 0; i < 100; i++) { /* 100 s, far from the first 10 % */
        fake_t += 1;
        at_progress_tick(&p, 1, 0);
    }
    int lines = count_char(c.buf, c.len, '\n');
    CHECKF(lines == 10, "%d lines", lines);
    CHECK(strstr(c.buf, "eval: 100/100000 images, 1.0 images/s, ETA 27h"));
    capture_close(&c);
}

TEST(progress_rate_follows_a_slowdown) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 0;
    at_progress_start_ex(&p, 10000, "explain", 0, c.f, 1, fake_now);
    for (int i = 0; i < 100; i++) { /* 10 images/s for 10 s */
        fake_t += 0.1;
        at_progress_tick(&p, 1, 0);
    }
    CHECK_NEAR(p.rate, 10.0, 0.01);
    for (int i = 0; i < 40; i++) { /* then 1 image/s for 40 s = 4 time constants */
        fake_t += 1;
        at_progress_tick(&p, 1, 0);
    }
    CHECKF(p.rate > 1.0 && p.rate < 1.3, "rate %.3f after the slowdown", p.rate);
    at_progress_finish(&p);
    capture_close(&c);
}

TEST(progress_quiet_prints_nothing) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 0;
    at_progress_start_ex(&p, 10, "explain", 1, c.f, 1, fake_now);
    for (int i = 0; i < 10; i++) {
        fake_t += 1;
        at_progress_tick(&p, 1, 0);
    }
    at_progress_finish(&p);
    fflush(c.f);
    CHECK(c.len == 0 && p.done == 10);
    capture_close(&c);
}

TEST(progress_rate_and_eta_leave_out_images_an_earlier_run_finished) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 0;
    at_progress_start_ex(&p, 1000, "explain", 0, c.f, 1, fake_now);
    fake_t = 0.001;
    at_progress_skip(&p, 900); /* --resume: found in results.jsonl */
    for (int i = 0; i < 10; i++) {
        fake_t += i == 5 ? 0.4 : 1;
        at_progress_tick(&p, 1, 0);
        if (i == 4) { /* a skip between two batches is no rate sample of zero work */
            fake_t += 0.6;
            at_progress_skip(&p, 1);
        }
    }
    CHECK_NEAR(p.rate, 1.0, 0.01);
    CHECKF(strstr(c.buf, "911/1000 images, 1.0 ") && strstr(c.buf, "ETA 1m29s"), "got \"%s\"", c.buf);
    at_progress_finish(&p);
    CHECKF(strstr(c.buf, "in 10s (901 done before), 1.0 "), "got \"%s\"", c.buf);
    capture_close(&c);
}

TEST(progress_prints_each_finished_batch_and_the_share_of_the_next) {
    capture c;
    capture_open(&c);
    at_progress p;
    fake_t = 0;
    at_progress_start_ex(&p, 24, "explain", 0, c.f, 0, fake_now);
    fake_t = 4;
    at_progress_partial(&p, 4, 0.5);
    fake_t = 11; /* a log line is due after 10 s */
    at_progress_partial(&p, 4, 0.75);
    CHECKF(strstr(c.buf, "explain: 0/24 images (batch of 4: 75%)"), "got \"%s\"", c.buf);
    fake_t = 12;
    at_progress_batch(&p, 4, 0); /* not a 10 % mark, not 10 s later: printed all the same */
    fake_t = 13;
    at_progress_batch(&p, 1, 0);
    CHECKF(strstr(c.buf, "explain: 4/24 images, 3.0 s/image, ETA 1m00s\n") &&
               strstr(c.buf, "explain: 5/24 images,"),
           "got \"%s\"", c.buf);
    fake_t = 24;
    at_progress_partial(&p, 4, 0.5); /* 2 of the 19 left are done: the ETA counts them */
    CHECKF(strstr(c.buf, "explain: 5/24 images (batch of 4: 50%), "), "got \"%s\"", c.buf);
    double rate = p.rate;
    char want[64];
    long eta = (long)(17 / rate + 0.5);
    if (eta < 60) snprintf(want, sizeof want, "ETA %lds\n", eta);
    else snprintf(want, sizeof want, "ETA %ldm%02lds\n", eta / 60, eta % 60);
    CHECKF(strstr(c.buf, want), "want %s, got \"%s\"", want, c.buf);
    capture_close(&c);
}
