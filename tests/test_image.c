/* Image decoding and preprocessing: against PIL/torchvision goldens
 * (tools/make_image_goldens.py), hand-computed geometry and box masks, and
 * clean failure on broken input. */
#include "core/error.h"
#include "io/image.h"
#include "preprocess/preprocess.h"
#include "model_fixture.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define GOLDEN_DIR "tests/goldens/images"
/* Same libjpeg-turbo, same DCT and upsampling as PIL: decoding is exact. */
#define DECODE_TOL 0
/* The uint8 stage is bit-exact and torch's float ops are single IEEE
 * operations we repeat in the same order, so the tensor is exact too. */
#define TENSOR_ATOL 0.0

/* ------------------------------------------------------------- helpers */

/* Reads exactly n bytes of a gzip (or plain) file; 0 on any mismatch. */
static int read_gz(const char *path, void *buf, size_t n) {
    gzFile g = gzopen(path, "rb");
    if (!g) return 0;
    int got = gzread(g, buf, (unsigned)n);
    char extra;
    int more = gzread(g, &extra, 1);
    gzclose(g);
    return got == (int)n && more == 0;
}

static int write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static const char *golden(const char *name) {
    static char b[4][1024];
    static int i;
    char *p = b[i++ & 3];
    snprintf(p, 1024, "%s/%s", test_path(GOLDEN_DIR), name);
    return p;
}

/* Loading must fail, leave the image empty, and name the file. */
#define CHECK_LOAD_FAILS(path, expect)                                                   \
    do {                                                                                 \
        at_image im_ = {1, 1, NULL, 1};                                                   \
        at_clear_error();                                                                \
        int rc_ = at_image_load(path, &im_);                                             \
        CHECKF(rc_ == AT_ERR, "loading %s should fail", path);                           \
        CHECKF(im_.rgb == NULL && im_.w == 0 && im_.h == 0 && im_.notes == 0, "image not left empty"); \
        CHECKF(strstr(at_last_error(), path) != NULL, "message lacks path: %s",          \
               at_last_error());                                                         \
        CHECKF(strstr(at_last_error(), expect) != NULL, "message lacks '%s': %s", expect, \
               at_last_error());                                                         \
        at_image_free(&im_);                                                             \
    } while (0)

typedef struct {
    char kind[16], name[128], u8[160], f32[160];
    int w, h, resize, crop, out_w, out_h;
    char interp[16];
    float mean[3], std[3];
} manifest_line;

/* Calls fn for each manifest line of the given kind; returns lines seen. */
static int each_golden(const char *kind, void (*fn)(const manifest_line *)) {
    FILE *f = fopen(golden("manifest.txt"), "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        manifest_line m;
        memset(&m, 0, sizeof m);
        if (line[0] == '#' || sscanf(line, "%15s", m.kind) != 1 || strcmp(m.kind, kind)) continue;
        int ok;
        if (!strcmp(kind, "decode")) {
            ok = sscanf(line, "%*s %127s %d %d %159s", m.name, &m.w, &m.h, m.u8) == 4;
        } else {
            double mean[3], std[3];
            ok = sscanf(line, "%*s %127s %d %d %15s %lf %lf %lf %lf %lf %lf %d %d %159s %159s",
                        m.name, &m.resize, &m.crop, m.interp, &mean[0], &mean[1], &mean[2],
                        &std[0], &std[1], &std[2], &m.out_w, &m.out_h, m.u8, m.f32) == 14;
            for (int c = 0; c < 3; c++) {
                m.mean[c] = (float)mean[c]; /* torch.as_tensor(double, float32) */
                m.std[c] = (float)std[c];
            }
        }
        if (!ok) {
            test_fail_at(__FILE__, __LINE__, "bad manifest line: %s", line);
            continue;
        }
        fn(&m);
        n++;
    }
    fclose(f);
    return n;
}

/* ------------------------------------------------------ decoding goldens */

static const char *decode_ext;

static void check_decode(const manifest_line *m) {
    const char *dot = strrchr(m->name, '.');
    if (!dot || strcmp(dot, decode_ext)) return;
    at_image img;
    if (at_image_load(golden(m->name), &img) != AT_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        return;
    }
    size_t n = (size_t)m->w * m->h * 3;
    unsigned char *want = malloc(n);
    if (img.w != m->w || img.h != m->h) {
        test_fail_at(__FILE__, __LINE__, "%s: %dx%d, PIL says %dx%d", m->name, img.w, img.h, m->w,
                     m->h);
    } else if (!want || !read_gz(golden(m->u8), want, n)) {
        test_fail_at(__FILE__, __LINE__, "cannot read %s", m->u8);
    } else {
        size_t bad = 0, first = 0;
        int maxd = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs((int)img.rgb[i] - (int)want[i]);
            if (d > DECODE_TOL) {
                if (!bad) first = i;
                bad++;
            }
            if (d > maxd) maxd = d;
        }
        CHECKF(!bad, "%s: %zu of %zu bytes differ from PIL (max %d); first at pixel %zu ch %zu: %d vs %d",
               m->name, bad, n, maxd, first / 3, first % 3, img.rgb[first], want[first]);
    }
    free(want);
    at_image_free(&img);
}

TEST(png_decodes_to_pils_rgb_bytes_for_every_depth_and_colour_type) {
    decode_ext = ".png";
    CHECK(each_golden("decode", check_decode) > 10);
}

TEST(jpeg_decodes_to_pils_rgb_bytes_including_grey_progressive_and_cmyk) {
    decode_ext = ".jpg";
    CHECK(each_golden("decode", check_decode) > 5);
}

/* Issue 13 item 3: PIL clamps 16-bit grey to 255 (mode I -> RGB), which
 * turns a normal image near-white; we scale it by its high byte, as PIL does
 * for 16-bit RGB and grey+alpha, and the image says it departed from PIL. */
TEST(png_16bit_grey_is_scaled_to_8_bits_and_flagged) {
    const unsigned short v[6] = {0, 255, 256, 0x7fff, 0x8000, 0xffff};
    const unsigned char want[6] = {0, 0, 1, 127, 128, 255};
    char path[700];
    snprintf(path, sizeof path, "%s/grey16.png", test_tmpdir());
    REQUIRE(fixture_write_grey_png(path, 3, 2, 16, v) == AT_OK);
    at_image img;
    REQUIRE(at_image_load(path, &img) == AT_OK);
    for (int i = 0; i < 6; i++)
        CHECKF(img.rgb[3 * i] == want[i] && img.rgb[3 * i + 1] == want[i] && img.rgb[3 * i + 2] == want[i],
               "sample %#x -> %d, want %d", v[i], img.rgb[3 * i], want[i]);
    CHECK(img.notes & AT_IMAGE_NOTE_GREY16_SCALED);
    at_image_free(&img);
    const unsigned short v8[6] = {0, 1, 2, 127, 128, 255};
    REQUIRE(fixture_write_grey_png(path, 3, 2, 8, v8) == AT_OK);
    REQUIRE(at_image_load(path, &img) == AT_OK);
    CHECK(img.notes == 0 && img.rgb[3 * 5] == 255);
    at_image_free(&img);
    REQUIRE(at_image_load(golden("greyalpha16_23x37.png"), &img) == AT_OK);
    CHECK(img.notes == 0); /* PIL scales grey+alpha itself */
    at_image_free(&img);
    const char *msg = at_image_notes_text(AT_IMAGE_NOTE_GREY16_SCALED);
    CHECK(msg && strstr(msg, "16-bit") && strstr(msg, "convert(\"RGB\")"));
}

TEST(format_is_detected_by_magic_bytes_not_extension) {
    const char *dir = test_tmpdir();
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/really_a_png.jpg", dir);
    snprintf(b, sizeof b, "%s/really_a_jpeg.png", dir);
    size_t n1, n2;
    unsigned char *png = test_read_bytes(golden("rgb8_37x23.png"), &n1);
    unsigned char *jpg = test_read_bytes(golden("ycc444_37x23.jpg"), &n2);
    REQUIRE(png && jpg);
    CHECK(write_file(a, png, n1) && write_file(b, jpg, n2));
    at_image i1, i2;
    CHECK(at_image_load(a, &i1) == AT_OK && i1.w == 37 && i1.h == 23);
    CHECK(at_image_load(b, &i2) == AT_OK && i2.w == 37 && i2.h == 23);
    at_image_free(&i1);
    at_image_free(&i2);
    free(png);
    free(jpg);
}

/* --------------------------------------------------- transform goldens */

static void check_transform(const manifest_line *m) {
    at_preprocess pp = {.resize = m->resize, .crop = m->crop};
    memcpy(pp.mean, m->mean, sizeof pp.mean);
    memcpy(pp.std, m->std, sizeof pp.std);
    if (at_interp_parse(m->interp, &pp.interp) != AT_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        return;
    }
    char what[256];
    snprintf(what, sizeof what, "%s resize %d crop %d %s", m->name, m->resize, m->crop, m->interp);
    at_image img, pre = {0, 0, NULL, 0};
    if (at_image_load(golden(m->name), &img) != AT_OK) {
        test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
        return;
    }
    at_geometry geo, geo2;
    at_geometry_of(img.w, img.h, &pp, &geo2);
    size_t n = (size_t)m->out_w * m->out_h * 3;
    unsigned char *want8 = malloc(n);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    if (!want8 || !want || !got || !read_gz(golden(m->u8), want8, n) ||
        !read_gz(golden(m->f32), want, n * sizeof *want)) {
        test_fail_at(__FILE__, __LINE__, "%s: cannot read goldens", what);
    } else if (at_preprocess_rgb8(&img, &pp, &pre, &geo) != AT_OK) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", what, at_last_error());
    } else {
        CHECKF(pre.w == m->out_w && pre.h == m->out_h && geo.out_w == m->out_w &&
                   geo2.out_w == m->out_w && geo2.out_h == m->out_h,
               "%s: size %dx%d, torchvision %dx%d", what, pre.w, pre.h, m->out_w, m->out_h);
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n && pre.w == m->out_w && pre.h == m->out_h; i++)
            if (pre.rgb[i] != want8[i] && !bad++) first = i;
        CHECKF(!bad, "%s: %zu of %zu uint8 values differ; first at pixel (%zu,%zu) ch %zu: %d vs %d",
               what, bad, n, first / 3 % m->out_w, first / 3 / m->out_w, first % 3,
               pre.rgb[first], want8[first]);
        if (at_preprocess_image(&img, &pp, got, NULL) != AT_OK)
            test_fail_at(__FILE__, __LINE__, "%s: %s", what, at_last_error());
        else
            CHECK_CLOSE(what, got, want, (long)n, TENSOR_ATOL, 0.0);
    }
    at_image_free(&pre);
    at_image_free(&img);
    free(want8);
    free(want);
    free(got);
}

TEST(resize_crop_normalize_match_torchvision_bit_for_bit) {
    CHECK(each_golden("transform", check_transform) >= 15);
}

/* The shipped model: resize 128 / crop 128 on a 128x128 scene is the identity. */
TEST(preprocess_leaves_an_image_of_the_target_size_unchanged) {
    at_image img, pre;
    REQUIRE(at_image_load(golden("rgb8_128x128.png"), &img) == AT_OK);
    at_preprocess pp = {128, 128, AT_INTERP_BICUBIC, {0, 0, 0}, {1, 1, 1}};
    at_geometry geo;
    REQUIRE(at_preprocess_rgb8(&img, &pp, &pre, &geo) == AT_OK);
    CHECK(pre.w == 128 && pre.h == 128 && !memcmp(pre.rgb, img.rgb, 128 * 128 * 3));
    CHECK(geo.scale_x == 1.0 && geo.scale_y == 1.0 && geo.crop_left == 0 && geo.crop_top == 0);
    at_image_free(&pre);
    at_image_free(&img);
}

/* ----------------------------------------------------------- live check */

/* Random images and configs, transformed by torchvision right now. Cases:
 * ATTRIB_LIVE_CASES (default 3); seed: ATTRIB_SEED (default: the time). */
TEST(live_random_images_match_torchvision_when_it_is_installed) {
    char out[4096];
    if (run_cmd("/usr/bin/python3 -c 'import torchvision'", out, sizeof out) != 0)
        SKIP("/usr/bin/python3 cannot import torchvision");
    const char *e = getenv("ATTRIB_LIVE_CASES");
    int cases = e && atoi(e) > 0 ? atoi(e) : 3;
    e = getenv("ATTRIB_SEED");
    unsigned seed = e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
    srand(seed);
    const char *dir = test_tmpdir();
    char spec[600], cmd[1400];
    snprintf(spec, sizeof spec, "%s/spec.txt", dir);
    FILE *f = fopen(spec, "w");
    REQUIRE(f);
    at_preprocess *pps = calloc((size_t)cases, sizeof *pps);
    REQUIRE(pps);
    for (int c = 0; c < cases; c++) {
        int side = rand() % 4 == 0 ? 1000 : 300; /* sometimes a strong downscale */
        int w = 1 + rand() % side, h = 1 + rand() % side;
        unsigned char *rgb = malloc((size_t)w * h * 3);
        /* smooth base + noise: both edges and fine detail */
        for (int i = 0; i < w * h * 3; i++)
            rgb[i] = (unsigned char)((i / 3 % w) * 255 / w / 2 + (i / 3 / w) * 127 / h + rand() % 32 +
                                     (i % 3) * 20);
        char path[600];
        snprintf(path, sizeof path, "%s/img%d.png", dir, c);
        CHECKF(at_image_write_png(path, w, h, rgb) == AT_OK, "%s", at_last_error());
        free(rgb);
        at_preprocess *pp = &pps[c];
        pp->resize = rand() % 4 == 0 ? 0 : 1 + rand() % 300;
        pp->crop = rand() % 4 == 0 ? 0 : 1 + rand() % 300;
        pp->interp = (at_interp)(rand() % 3);
        for (int k = 0; k < 3; k++) {
            pp->mean[k] = (float)(rand() % 1000) / 1000.0f;
            pp->std[k] = (float)(1 + rand() % 1000) / 1000.0f;
        }
        /* %.9g: a float round-trips through Python's double unchanged */
        fprintf(f, "%s %d %d %s %.9g %.9g %.9g %.9g %.9g %.9g %s/u8_%d.bin %s/f32_%d.bin\n", path,
                pp->resize, pp->crop, at_interp_name(pp->interp), pp->mean[0], pp->mean[1],
                pp->mean[2], pp->std[0], pp->std[1], pp->std[2], dir, c, dir, c);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --live %s", test_path("tools/make_image_goldens.py"),
             spec);
    if (run_cmd(cmd, out, sizeof out) != 0) {
        test_fail_at(__FILE__, __LINE__, "seed %u: %s failed: %s", seed, cmd, out);
        free(pps);
        return;
    }
    int exact = 0;
    for (int c = 0; c < cases; c++) {
        char path[600];
        at_image img, pre;
        snprintf(path, sizeof path, "%s/img%d.png", dir, c);
        if (at_image_load(path, &img) != AT_OK) {
            test_fail_at(__FILE__, __LINE__, "%s", at_last_error());
            continue;
        }
        snprintf(path, sizeof path, "%s/u8_%d.bin", dir, c);
        size_t n8, nf;
        unsigned char *u8 = test_read_bytes(path, &n8);
        snprintf(path, sizeof path, "%s/f32_%d.bin", dir, c);
        unsigned char *f32 = test_read_bytes(path, &nf);
        at_geometry geo;
        if (!u8 || !f32 || n8 < 8 || at_preprocess_rgb8(&img, &pps[c], &pre, &geo) != AT_OK) {
            test_fail_at(__FILE__, __LINE__, "seed %u case %d: %s", seed, c,
                         u8 && f32 ? at_last_error() : "missing torchvision output");
        } else {
            int32_t tw, th;
            memcpy(&tw, u8, 4);
            memcpy(&th, u8 + 4, 4);
            size_t n = (size_t)tw * th * 3;
            int same = tw == pre.w && th == pre.h && n8 == 8 + n && nf == n * 4 &&
                       !memcmp(pre.rgb, u8 + 8, n);
            float *got = malloc(n * sizeof *got);
            if (same && got) {
                at_normalize_rgb8(pre.rgb, pre.w, pre.h, &pps[c], got);
                same = !memcmp(got, f32, n * 4);
            }
            CHECKF(same, "seed %u case %d (%dx%d resize %d crop %d %s): differs from torchvision (%dx%d)",
                   seed, c, img.w, img.h, pps[c].resize, pps[c].crop, at_interp_name(pps[c].interp),
                   tw, th);
            exact += same;
            free(got);
            at_image_free(&pre);
        }
        free(u8);
        free(f32);
        at_image_free(&img);
    }
    if (cases > 3) printf("    live: %d of %d random cases bit-exact (seed %u)\n", exact, cases, seed);
    free(pps);
}

/* ------------------------------------------------------------ geometry */

TEST(resize_follows_torchvision_shorter_side_rule) {
    at_preprocess pp = {256, 224, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(500, 375, &pp, &g); /* int(256 * 500 / 375) = int(341.33) */
    CHECK(g.resized_w == 341 && g.resized_h == 256 && g.out_w == 224 && g.out_h == 224);
    at_geometry_of(375, 500, &pp, &g);
    CHECK(g.resized_w == 256 && g.resized_h == 341);
    at_geometry_of(300, 300, &pp, &g);
    CHECK(g.resized_w == 256 && g.resized_h == 256);
    at_geometry_of(3, 1000, &pp, &g); /* 256 * 1000 / 3 = 85333.33 */
    CHECK(g.resized_w == 256 && g.resized_h == 85333);
    CHECK_NEAR(g.scale_x, 256.0 / 3, 1e-12);
    CHECK_NEAR(g.scale_y, 85333.0 / 1000, 1e-12);
}

TEST(center_crop_offset_rounds_half_to_even_like_python) {
    at_preprocess pp = {0, 224, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(341, 256, &pp, &g); /* round(58.5) = 58, round(16.0) = 16 */
    CHECK(g.crop_left == 58 && g.crop_top == 16);
    at_geometry_of(227, 229, &pp, &g); /* round(1.5) = 2, round(2.5) = 2 */
    CHECK(g.crop_left == 2 && g.crop_top == 2);
    at_geometry_of(225, 231, &pp, &g); /* round(0.5) = 0, round(3.5) = 4 */
    CHECK(g.crop_left == 0 && g.crop_top == 4);
}

TEST(center_crop_larger_than_image_pads_left_half_rounded_down) {
    at_preprocess pp = {0, 8, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(5, 4, &pp, &g); /* pad (8-5)//2 = 1 left, 2 right; 2 top, 2 bottom */
    CHECK(g.crop_left == -1 && g.crop_top == -2 && g.out_w == 8 && g.out_h == 8);
    at_geometry_of(5, 20, &pp, &g); /* only the width is padded */
    CHECK(g.crop_left == -1 && g.crop_top == 6);
}

TEST(crop_padding_is_zero_before_normalisation) {
    unsigned char px[3 * 2 * 1] = {10, 20, 30, 200, 210, 220};
    at_image img = {2, 1, px, 0}, pre;
    at_preprocess pp = {0, 4, AT_INTERP_BILINEAR, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
    REQUIRE(at_preprocess_rgb8(&img, &pp, &pre, NULL) == AT_OK);
    /* row 1 of 4 holds the image at columns 1..2 (pads: left 1, top 1) */
    CHECK(pre.rgb[0] == 0 && pre.rgb[(4 + 1) * 3] == 10 && pre.rgb[(4 + 2) * 3 + 2] == 220 &&
          pre.rgb[(4 + 3) * 3] == 0);
    float t[3 * 16];
    REQUIRE(at_preprocess_image(&img, &pp, t, NULL) == AT_OK);
    CHECK(t[0] == -2.0f && t[16 + 5] == ((20 / 255.0f) - 0.5f) / 0.25f);
    at_image_free(&pre);
}

TEST(no_resize_and_no_crop_is_the_identity) {
    unsigned char px[3 * 3 * 2];
    for (int i = 0; i < 18; i++) px[i] = (unsigned char)(i * 13);
    at_image img = {3, 2, px, 0}, pre;
    at_preprocess pp = {0, 0, AT_INTERP_NEAREST, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    REQUIRE(at_preprocess_rgb8(&img, &pp, &pre, &g) == AT_OK);
    CHECK(pre.w == 3 && pre.h == 2 && !memcmp(pre.rgb, px, sizeof px));
    CHECK(g.scale_x == 1.0 && g.out_w == 3 && g.out_h == 2 && g.resized_w == 3);
    at_image_free(&pre);
}

TEST(extreme_aspect_ratio_resamples_only_the_crop) {
    /* 2x3000 -> 224x336000: only the 224x224 crop is computed */
    unsigned char *px = malloc(2 * 3000 * 3);
    REQUIRE(px);
    memset(px, 77, 2 * 3000 * 3);
    at_image img = {2, 3000, px, 0}, pre;
    for (int interp = 0; interp < 3; interp++) {
        at_preprocess pp = {224, 224, (at_interp)interp, {0, 0, 0}, {1, 1, 1}};
        at_geometry g;
        REQUIRE(at_preprocess_rgb8(&img, &pp, &pre, &g) == AT_OK);
        CHECK(g.resized_w == 224 && g.resized_h == 336000 && g.crop_top == 167888);
        int flat = 1;
        for (int i = 0; i < 224 * 224 * 3; i++) flat &= pre.rgb[i] == 77;
        CHECKF(flat, "%s: a flat image must stay flat", at_interp_name((at_interp)interp));
        at_image_free(&pre);
    }
    at_image one = {1, 3000, px, 0}; /* 65536 * 3000 rows is past the 2^27 limit */
    at_preprocess pp = {65536, 8, AT_INTERP_NEAREST, {0, 0, 0}, {1, 1, 1}};
    CHECK(at_preprocess_rgb8(&one, &pp, &pre, NULL) == AT_ERR && strstr(at_last_error(), "too large"));
    free(px);
}

/* ----------------------------------------------------------- box masks */

static int mask_count(const unsigned char *m, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += m[i] != 0;
    return c;
}

/* 1 when the mask is exactly the rectangle [x0,x1] x [y0,y1] (inclusive). */
static int mask_is_rect(const unsigned char *m, int w, int h, int x0, int y0, int x1, int y1) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if ((m[y * w + x] != 0) != (x >= x0 && x <= x1 && y >= y0 && y <= y1)) return 0;
    return 1;
}

TEST(box_mask_without_resize_covers_exactly_the_inclusive_box) {
    at_preprocess pp = {0, 0, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(10, 8, &pp, &g);
    unsigned char m[80] = {0};
    at_box_mask(&g, (const int[4]){2, 1, 4, 3}, m);
    CHECK(mask_is_rect(m, 10, 8, 2, 1, 4, 3));
}

TEST(box_mask_after_downscale_keeps_pixels_whose_centre_is_inside) {
    /* 20x20 -> 10x10: output pixel x has centre (x + 0.5) * 2 = 1, 3, 5, ... */
    at_preprocess pp = {10, 0, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(20, 20, &pp, &g);
    unsigned char m[100] = {0};
    at_box_mask(&g, (const int[4]){0, 0, 3, 3}, m); /* [0,4): centres 1, 3 */
    CHECK(mask_is_rect(m, 10, 10, 0, 0, 1, 1));
    memset(m, 0, sizeof m);
    at_box_mask(&g, (const int[4]){1, 1, 1, 1}, m); /* [1,2): centre 1 */
    CHECK(mask_is_rect(m, 10, 10, 0, 0, 0, 0));
    memset(m, 0, sizeof m);
    at_box_mask(&g, (const int[4]){2, 2, 2, 2}, m); /* [2,3): no centre -> empty */
    CHECK(mask_count(m, 100) == 0);
    memset(m, 0, sizeof m);
    at_box_mask(&g, (const int[4]){5, 0, 8, 19}, m); /* [5,9): centres 5, 7 */
    CHECK(mask_is_rect(m, 10, 10, 2, 0, 3, 9));
}

TEST(box_mask_after_upscale_and_crop_uses_the_crop_offset) {
    /* 10x10 -> 20x20 (scale 2), crop 16: offset 2. Output x maps to
     * (x + 2.5) / 2; box [3, 5] covers [3, 6): x + 2.5 in [6, 12) -> x = 4..9 */
    at_preprocess pp = {20, 16, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(10, 10, &pp, &g);
    CHECK(g.crop_left == 2 && g.crop_top == 2 && g.scale_x == 2.0);
    unsigned char m[256] = {0};
    at_box_mask(&g, (const int[4]){3, 0, 5, 0}, m); /* y: [0,1) -> y + 2.5 < 2 -> none */
    CHECK(mask_count(m, 256) == 0);
    at_box_mask(&g, (const int[4]){3, 0, 5, 1}, m); /* y: [0,2) -> y + 2.5 < 4 -> y = 0, 1 */
    CHECK(mask_is_rect(m, 16, 16, 4, 0, 9, 1));
}

TEST(box_mask_is_clipped_to_the_image_and_never_marks_padding) {
    at_preprocess pp = {0, 8, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(4, 4, &pp, &g); /* image at output 2..5 */
    unsigned char m[64] = {0};
    at_box_mask(&g, (const int[4]){-5, -5, 100, 100}, m);
    CHECK(mask_is_rect(m, 8, 8, 2, 2, 5, 5));
    memset(m, 0, sizeof m);
    at_box_mask(&g, (const int[4]){6, 6, 9, 9}, m); /* entirely outside the image */
    CHECK(mask_count(m, 64) == 0);
    at_box_mask(&g, (const int[4]){3, 3, 1, 1}, m); /* inverted = empty */
    CHECK(mask_count(m, 64) == 0);
}

TEST(box_masks_are_ored_so_boxes_can_be_united) {
    at_preprocess pp = {0, 0, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 1, 1}};
    at_geometry g;
    at_geometry_of(6, 6, &pp, &g);
    unsigned char m[36] = {0};
    m[35] = 1; /* set by the caller: must survive */
    at_box_mask(&g, (const int[4]){0, 0, 1, 1}, m);
    at_box_mask(&g, (const int[4]){1, 1, 2, 2}, m);
    CHECK(mask_count(m, 36) == 4 + 4 - 1 + 1 && m[35] == 1 && m[2 * 6 + 2] == 1 && m[0] == 1);
}

/* ------------------------------------------------------------- options */

TEST(interpolation_names_parse_and_unknown_names_fail) {
    at_interp i;
    CHECK(at_interp_parse("bilinear", &i) == AT_OK && i == AT_INTERP_BILINEAR);
    CHECK(at_interp_parse("BICUBIC", &i) == AT_OK && i == AT_INTERP_BICUBIC);
    CHECK(at_interp_parse("nearest", &i) == AT_OK && i == AT_INTERP_NEAREST);
    CHECK(at_interp_parse("lanczos", &i) == AT_ERR && strstr(at_last_error(), "lanczos"));
    CHECK(at_interp_parse(NULL, &i) == AT_ERR);
}

TEST(preprocess_rejects_zero_std_and_out_of_range_sizes) {
    unsigned char px[3] = {1, 2, 3};
    at_image img = {1, 1, px, 0};
    float t[3 * 4];
    at_preprocess pp = {2, 2, AT_INTERP_BILINEAR, {0, 0, 0}, {1, 0, 1}};
    CHECK(at_preprocess_image(&img, &pp, t, NULL) == AT_ERR && strstr(at_last_error(), "std[1]"));
    pp.std[1] = 1;
    pp.resize = -1;
    CHECK(at_preprocess_image(&img, &pp, t, NULL) == AT_ERR);
    pp.resize = 2;
    pp.crop = 1 << 20;
    CHECK(at_preprocess_image(&img, &pp, t, NULL) == AT_ERR);
    pp.crop = 2;
    CHECK(at_preprocess_image(&img, &pp, t, NULL) == AT_OK);
    at_image empty = {0, 0, NULL, 0};
    CHECK(at_preprocess_image(&empty, &pp, t, NULL) == AT_ERR);
}

/* ------------------------------------------------------------- writing */

TEST(png_writer_round_trips_and_leaves_no_temporary_file) {
    const char *dir = test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/out.png", dir);
    unsigned char px[7 * 5 * 3];
    for (int i = 0; i < (int)sizeof px; i++) px[i] = (unsigned char)(i * 37 + 11);
    REQUIRE(at_image_write_png(path, 7, 5, px) == AT_OK);
    px[0] ^= 0xFF; /* overwrite in place */
    REQUIRE(at_image_write_png(path, 7, 5, px) == AT_OK);
    at_image img;
    REQUIRE(at_image_load(path, &img) == AT_OK);
    CHECK(img.w == 7 && img.h == 5 && !memcmp(img.rgb, px, sizeof px));
    at_image_free(&img);
    char cmd[700], out[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    CHECK(run_cmd(cmd, out, sizeof out) == 0 && atoi(out) == 1);
}

TEST(png_writer_fails_with_the_path_when_the_directory_is_missing) {
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/out.png", test_tmpdir());
    unsigned char px[3] = {0};
    CHECK(at_image_write_png(path, 1, 1, px) == AT_ERR && strstr(at_last_error(), path));
    CHECK(at_image_write_png(path, 0, 1, px) == AT_ERR);
}

/* -------------------------------------------------------------- errors */

TEST(missing_file_directory_empty_and_text_files_fail_cleanly) {
    const char *dir = test_tmpdir();
    char p[600];
    snprintf(p, sizeof p, "%s/does_not_exist.png", dir);
    CHECK_LOAD_FAILS(p, "cannot open");
    CHECK_LOAD_FAILS(dir, "directory");
    snprintf(p, sizeof p, "%s/empty.png", dir);
    CHECK(write_file(p, "", 0));
    CHECK_LOAD_FAILS(p, "empty");
    snprintf(p, sizeof p, "%s/notes.jpg", dir);
    CHECK(write_file(p, "hello, world\n", 13));
    CHECK_LOAD_FAILS(p, "not a PNG or JPEG image");
    snprintf(p, sizeof p, "%s/short.png", dir);
    CHECK(write_file(p, "\x89PN", 3));
    CHECK_LOAD_FAILS(p, "truncated PNG");
}

/* Cuts a file at each offset in cuts[] (negative = from the end) and expects
 * loading to fail with `expect` in the message. */
static void check_cuts(const char *src, const char *ext, const long *cuts, int ncuts,
                       const char *expect) {
    size_t n;
    unsigned char *data = test_read_bytes(golden(src), &n);
    if (!data) {
        test_fail_at(__FILE__, __LINE__, "cannot read %s", src);
        return;
    }
    const char *dir = test_tmpdir();
    for (int i = 0; i < ncuts; i++) {
        long cut = cuts[i] < 0 ? (long)n + cuts[i] : cuts[i];
        char p[600];
        snprintf(p, sizeof p, "%s/cut%ld%s", dir, cut, ext);
        write_file(p, data, (size_t)cut);
        CHECK_LOAD_FAILS(p, expect);
    }
    free(data);
}

TEST(truncated_png_fails_at_every_cut_inside_the_pixel_data) {
    /* 8 = signature only, 20 = inside IHDR, then inside IDAT, and finally
     * just before the last IDAT's CRC */
    const long cuts[] = {8, 20, 33, 40, 100, 1000, -16};
    check_cuts("rgb8_37x23.png", ".png", cuts, 7, "truncated PNG");
    const long cuts7[] = {60, 500, -20};
    check_cuts("rgb8_adam7_37x23.png", ".png", cuts7, 3, "truncated PNG");
}

TEST(png_missing_only_its_trailing_iend_still_decodes_like_pil) {
    size_t n;
    unsigned char *data = test_read_bytes(golden("rgb8_37x23.png"), &n);
    REQUIRE(data);
    at_image a, b;
    REQUIRE(at_image_load_mem(data, n, "full", &a) == AT_OK);
    CHECK(at_image_load_mem(data, n - 12, "no-iend", &b) == AT_OK);
    CHECK(b.rgb && !memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3));
    at_image_free(&a);
    at_image_free(&b);
    free(data);
}

TEST(truncated_jpeg_fails_for_baseline_and_progressive) {
    const long cuts[] = {2, 3, 20, 200, 600, -100, -3};
    check_cuts("ycc420_37x23.jpg", ".jpg", cuts, 7, "JPEG");
    const long pcuts[] = {300, 1000, -300, -2};
    check_cuts("progressive_128x128.jpg", ".jpg", pcuts, 4, "truncated JPEG");
}

/* Every prefix of a file either fails naming the input or decodes to exactly
 * the full image (only possible once all pixel data is present): never a
 * partly grey picture. */
TEST(every_truncation_fails_cleanly_or_yields_the_complete_image) {
    const char *files[] = {"rgb8_37x23.png", "palette4_adam7_37x23.png", "ycc420_37x23.jpg",
                           "grey_23x37.jpg"};
    for (int f = 0; f < 4; f++) {
        size_t n;
        unsigned char *d = test_read_bytes(golden(files[f]), &n);
        REQUIRE(d);
        at_image full, part;
        REQUIRE(at_image_load_mem(d, n, files[f], &full) == AT_OK);
        size_t decoded = 0, bad = 0;
        for (size_t cut = 0; cut < n; cut++) {
            if (at_image_load_mem(d, cut, "prefix", &part) == AT_OK) {
                decoded++;
                if (part.w != full.w || part.h != full.h ||
                    memcmp(part.rgb, full.rgb, (size_t)full.w * full.h * 3))
                    bad++;
                at_image_free(&part);
            } else if (!strstr(at_last_error(), "prefix") || part.rgb) {
                bad++;
            }
        }
        CHECKF(bad == 0 && decoded <= 12, "%s: %zu bad of %zu prefixes (%zu decoded)", files[f],
               bad, n, decoded);
        at_image_free(&full);
        free(d);
    }
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Offset of the first chunk of the given type, or 0. */
static size_t png_chunk(const unsigned char *d, size_t n, const char *type) {
    for (size_t o = 8; o + 12 <= n; o += 12 + be32(d + o))
        if (!memcmp(d + o + 4, type, 4)) return o;
    return 0;
}

TEST(png_with_a_bad_crc_or_garbled_pixel_data_fails_cleanly) {
    size_t n;
    unsigned char *d = test_read_bytes(golden("rgb8_37x23.png"), &n);
    REQUIRE(d);
    const char *dir = test_tmpdir();
    char p[600];
    size_t ihdr = png_chunk(d, n, "IHDR"), idat = png_chunk(d, n, "IDAT");
    REQUIRE(ihdr && idat);

    d[ihdr + 8 + 13] ^= 0x55; /* IHDR CRC */
    snprintf(p, sizeof p, "%s/bad_ihdr_crc.png", dir);
    write_file(p, d, n);
    CHECK_LOAD_FAILS(p, "corrupt PNG");
    d[ihdr + 8 + 13] ^= 0x55;

    size_t idat_len = be32(d + idat);
    d[idat + 8 + idat_len] ^= 0x01; /* IDAT CRC */
    snprintf(p, sizeof p, "%s/bad_idat_crc.png", dir);
    write_file(p, d, n);
    CHECK_LOAD_FAILS(p, "corrupt PNG");
    d[idat + 8 + idat_len] ^= 0x01;

    /* garble the zlib stream, then fix the CRC so only the data is wrong */
    for (size_t i = 10; i < idat_len && i < 200; i++) d[idat + 8 + i] = (unsigned char)(i * 151);
    put_be32(d + idat + 8 + idat_len, (uint32_t)crc32(0, d + idat + 4, (uInt)(idat_len + 4)));
    snprintf(p, sizeof p, "%s/garbled_idat.png", dir);
    write_file(p, d, n);
    CHECK_LOAD_FAILS(p, "corrupt PNG");
    free(d);
}

TEST(png_declaring_100000x100000_pixels_is_refused_before_allocating) {
    unsigned char d[8 + 25 + 12];
    memcpy(d, "\x89PNG\r\n\x1a\n", 8);
    put_be32(d + 8, 13);
    memcpy(d + 12, "IHDR", 4);
    put_be32(d + 16, 100000);
    put_be32(d + 20, 100000);
    memcpy(d + 24, "\x08\x02\x00\x00\x00", 5);
    put_be32(d + 29, (uint32_t)crc32(0, d + 12, 17));
    put_be32(d + 33, 0); /* empty IEND */
    memcpy(d + 37, "IEND", 4);
    put_be32(d + 41, (uint32_t)crc32(0, (const unsigned char *)"IEND", 4));
    char p[600];
    snprintf(p, sizeof p, "%s/huge.png", test_tmpdir());
    write_file(p, d, sizeof d);
    CHECK_LOAD_FAILS(p, "too large");
    /* 20000 x 20000: each side allowed, the pixel count is not */
    put_be32(d + 16, 20000);
    put_be32(d + 20, 20000);
    put_be32(d + 29, (uint32_t)crc32(0, d + 12, 17));
    write_file(p, d, sizeof d);
    CHECK_LOAD_FAILS(p, "too large");
}

TEST(jpeg_with_huge_dimensions_or_an_unsupported_process_fails_cleanly) {
    size_t n;
    unsigned char *d = test_read_bytes(golden("ycc444_37x23.jpg"), &n);
    REQUIRE(d);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n; i++)
        if (d[i] == 0xFF && d[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    REQUIRE(sof);
    const char *dir = test_tmpdir();
    char p[600];
    d[sof + 5] = 0xFD, d[sof + 6] = 0xE8; /* height 65000 */
    d[sof + 7] = 0xFD, d[sof + 8] = 0xE8; /* width 65000 */
    snprintf(p, sizeof p, "%s/huge.jpg", dir);
    write_file(p, d, n);
    CHECK_LOAD_FAILS(p, "too large");
    d[sof + 5] = 0, d[sof + 6] = 23, d[sof + 7] = 0, d[sof + 8] = 37;
    d[sof + 1] = 0xC3; /* lossless: not supported by libjpeg-turbo 2.1 */
    snprintf(p, sizeof p, "%s/lossless.jpg", dir);
    write_file(p, d, n);
    CHECK_LOAD_FAILS(p, "corrupt JPEG");
    free(d);
}

TEST(load_from_memory_names_the_buffer_in_errors) {
    at_image img;
    CHECK(at_image_load_mem("GIF89a", 6, "mem:gif", &img) == AT_ERR &&
          strstr(at_last_error(), "mem:gif: not a PNG or JPEG image"));
    CHECK(at_image_load_mem("\xFF\xD8\xFF", 3, "mem:jpg", &img) == AT_ERR &&
          strstr(at_last_error(), "mem:jpg"));
    CHECK(at_image_load_mem("", 0, NULL, &img) == AT_ERR && img.rgb == NULL);
}
