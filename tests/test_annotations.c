/* Annotation readers (docs/methods.md#boxes-for-the-localisation-metrics): the committed samples in both layouts, RFC
 * 4180 quoting, relative NIPS boxes, lookup by stem, boxes through
 * resize + crop, and every malformed input refused with a message naming
 * the file. */
#include "io/annotations.h"
#include "core/error.h"
#include "test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The label ids of the shipped scenes model: fm0000000 .. fm0000009. */
static at_model *scenes_model(void) {
    static at_model m;
    static at_label labels[10];
    for (int i = 0; i < 10; i++) snprintf(labels[i].id, sizeof labels[i].id, "fm%07d", i);
    m.n_classes = 10;
    m.labels = labels;
    return &m;
}

static const char *write_text(const char *dir, const char *name, const char *text) {
    static char paths[4][2048];
    static int next;
    char *p = paths[next++ & 3];
    snprintf(p, 2048, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

#define CSV_HEAD "ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass,OriginalLandingURL,License,Author,AuthorProfileURL\n"

/* A one-object ILSVRC-style XML; coordinates written as given (1-based). */
static void xml_one(char *out, size_t cap, const char *id, int w, int h, const char *wnid,
                    const char *xmin, const char *ymin, const char *xmax, const char *ymax) {
    snprintf(out, cap,
             "<annotation>\n<folder>val</folder>\n<filename>%s</filename>\n"
             "<size><width>%d</width><height>%d</height><depth>3</depth></size>\n"
             "<object><name>%s</name><bndbox><xmin>%s</xmin><ymin>%s</ymin>"
             "<xmax>%s</xmax><ymax>%s</ymax></bndbox></object>\n</annotation>\n",
             id, w, h, wnid, xmin, ymin, xmax, ymax);
}

/* Loading must fail, leave *out empty, and name the file (and more). */
static void expect_load_fails(const char *what, const char *path, const char *substr) {
    at_annotations a;
    int rc = at_annotations_load(path, scenes_model(), &a);
    CHECKF(rc == AT_ERR, "%s: accepted", what);
    if (rc != AT_ERR) {
        at_annotations_free(&a);
        return;
    }
    CHECKF(a.n == 0 && a.items == NULL, "%s: output not left empty", what);
    const char *msg = at_last_error();
    CHECKF(strstr(msg, path) != NULL, "%s: message '%s' does not name %s", what, msg, path);
    if (substr) CHECKF(strstr(msg, substr) != NULL, "%s: message '%s' lacks '%s'", what, msg, substr);
    CHECKF(strchr(msg, '\n') == NULL, "%s: message spans lines", what);
}

static int box_is(const at_box *b, int x0, int y0, int x1, int y1) {
    return b->box[0] == x0 && b->box[1] == y0 && b->box[2] == x1 && b->box[3] == y1;
}

/* ------------------------------------------------------------- samples */

TEST(sample_xml_directory_loads_every_file) {
    const char *dir = test_path("weights/samples/annotations");
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    int n_xml = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n_xml += strstr(e->d_name, ".xml") != NULL;
    closedir(d);
    at_annotations a;
    REQUIRE(at_annotations_load(dir, scenes_model(), &a) == AT_OK);
    CHECK(a.n == n_xml && n_xml > 0);
    for (int i = 0; i < a.n; i++) {
        const at_annotation *it = &a.items[i];
        int idx = atoi(it->id + strlen("fmscene_test_"));
        CHECKF(it->cls == idx % 10, "%s: class %d", it->id, it->cls); /* make_scenes: class = index % 10 */
        CHECK(it->width == 128 && it->height == 128);
        CHECK(it->n_boxes >= 1 && it->n_boxes <= 3);
        for (int k = 0; k < it->n_boxes; k++) {
            const at_box *b = &it->boxes[k];
            CHECK(!b->relative && b->cls == it->cls);
            CHECK(b->box[0] >= 0 && b->box[0] <= b->box[2] && b->box[2] < 128);
            CHECK(b->box[1] >= 0 && b->box[1] <= b->box[3] && b->box[3] < 128);
        }
    }
    at_annotations_free(&a);
}

TEST(sample_xml_boxes_become_0_based) {
    at_annotations a;
    REQUIRE(at_annotations_load(test_path("weights/samples/annotations/fmscene_test_00000000.xml"),
                                scenes_model(), &a) == AT_OK);
    REQUIRE(a.n == 1);
    const at_annotation *it = &a.items[0];
    CHECK(strcmp(it->id, "fmscene_test_00000000") == 0);
    CHECK(it->cls == 0);
    REQUIRE(it->n_boxes == 3);
    /* the XML text: 6,85,39,124 | 64,32,96,70 | 25,27,66,78 (1-based) */
    CHECK(box_is(&it->boxes[0], 5, 84, 38, 123));
    CHECK(box_is(&it->boxes[1], 63, 31, 95, 69));
    CHECK(box_is(&it->boxes[2], 24, 26, 65, 77));
    at_annotations_free(&a);
}

TEST(sample_csv_boxes_equal_the_union_of_the_xml_boxes) {
    at_annotations csv, xml;
    REQUIRE(at_annotations_load(test_path("weights/samples/images.csv"), scenes_model(), &csv) == AT_OK);
    REQUIRE(at_annotations_load(test_path("weights/samples/annotations"), scenes_model(), &xml) == AT_OK);
    CHECK(csv.n == xml.n);
    for (int i = 0; i < csv.n; i++) {
        const at_annotation *c = &csv.items[i];
        const at_annotation *x = at_annotations_find(&xml, c->id);
        REQUIRE(x != NULL);
        CHECKF(c->cls == x->cls, "%s: csv class %d, xml class %d", c->id, c->cls, x->cls);
        CHECK(c->width == 0 && c->height == 0);
        REQUIRE(c->n_boxes == 1 && c->boxes[0].relative);
        int u[4] = {1 << 30, 1 << 30, -1, -1};
        for (int k = 0; k < x->n_boxes; k++)
            for (int j = 0; j < 4; j++) {
                int v = x->boxes[k].box[j];
                if (j < 2 ? v < u[j] : v > u[j]) u[j] = v;
            }
        at_box r;
        REQUIRE(at_annotation_boxes_for_size(c, 128, 128, &r, 1) == 1);
        CHECKF(box_is(&r, u[0], u[1], u[2], u[3]), "%s: csv %d,%d,%d,%d, xml union %d,%d,%d,%d",
               c->id, r.box[0], r.box[1], r.box[2], r.box[3], u[0], u[1], u[2], u[3]);
    }
    /* row 1 by hand: 0.0390625*128 = 5, 0.203125*128 = 26, 0.75*128 - 1 = 95, 0.96875*128 - 1 = 123 */
    const at_annotation *first = at_annotations_find(&csv, "fmscene_test_00000000");
    REQUIRE(first != NULL);
    at_box r;
    REQUIRE(at_annotation_boxes_for_size(first, 128, 128, &r, 1) == 1);
    CHECK(box_is(&r, 5, 26, 95, 123));
    CHECK(first->cls == 0);
    at_annotations_free(&csv);
    at_annotations_free(&xml);
}

/* ------------------------------------------------------------------ CSV */

TEST(csv_quoted_fields_follow_rfc4180) {
    const char *dir = test_tmpdir();
    const char *path = write_text(
        dir, "images.csv",
        CSV_HEAD
        "a1,\"http://x/?a=1,b=2\",1,2,3,4,3,5,\"land, \"\"quoted\"\"\",\"CC, BY\",\"two\r\nlines\",p\r\n"
        "\r\n"
        "\"b,2\",,0,0,9,9,10,1,,,,\n"
        "c3,,,,,,1,1,,,,");
    at_annotations a;
    REQUIRE(at_annotations_load(path, scenes_model(), &a) == AT_OK);
    REQUIRE(a.n == 3);
    CHECK(strcmp(a.items[0].id, "a1") == 0);
    CHECK(a.items[0].cls == 2);
    REQUIRE(a.items[0].n_boxes == 1);
    CHECK(!a.items[0].boxes[0].relative && box_is(&a.items[0].boxes[0], 1, 2, 3, 4));
    CHECK(strcmp(a.items[1].id, "b,2") == 0); /* a quoted comma stays in the id */
    CHECK(a.items[1].cls == 9);
    CHECK(a.items[2].n_boxes == 0); /* empty x1..y2: no box */
    CHECK(a.items[2].cls == 0);
    at_annotations_free(&a);
}

TEST(csv_errors_name_the_line_after_a_multiline_field) {
    const char *dir = test_tmpdir();
    char buf[128];
    /* the record with the bad label starts on line 4: lines 2-3 are one record */
    const char *path = write_text(dir, "images.csv",
                                  CSV_HEAD "a,,1,1,2,2,1,1,\"x\ny\",,,\nb,,1,1,2,2,0,1,,,,\n");
    snprintf(buf, sizeof buf, "%s:4:", path);
    expect_load_fails("TrueLabel 0 on line 4", path, buf);
}

TEST(csv_relative_boxes_resolve_for_the_image_size) {
    const char *dir = test_tmpdir();
    const char *path = write_text(dir, "images.csv",
                                  CSV_HEAD "r,,0.25,0.5,0.75,1.0,1,2,,,,\n"
                                           "n,,0.0953,0.1,0.9,0.95,2,1,,,,\n"
                                           "w,,0.0,0.0,1.0,1.0,3,1,,,,\n"
                                           "e,,0.5,0.5,0.501,0.9,4,1,,,,\n");
    at_annotations a;
    REQUIRE(at_annotations_load(path, scenes_model(), &a) == AT_OK);
    at_box b[2];
    /* 200x100: x 50 <= i+0.5 < 150 -> 50..149; y 50 <= j+0.5 < 100 -> 50..99 */
    const at_annotation *r = at_annotations_find(&a, "r");
    REQUIRE(r && r->n_boxes == 1 && r->boxes[0].relative);
    CHECK(at_annotation_boxes_for_size(r, 200, 100, b, 2) == 1);
    CHECK(box_is(&b[0], 50, 50, 149, 99) && !b[0].relative && b[0].cls == 0);
    /* NIPS-like decimals at 299x299: x1*W = 28.4947 -> 28; x2*W = 269.1 -> 268;
     * y1*H = 29.9 -> 30 (centre 29.5 is outside); y2*H = 284.05 -> 283 */
    CHECK(at_annotation_boxes_for_size(at_annotations_find(&a, "n"), 299, 299, b, 2) == 1);
    CHECK(box_is(&b[0], 28, 30, 268, 283));
    /* "0.0,0.0,1.0,1.0" is relative (written as decimals): the whole image */
    CHECK(at_annotation_boxes_for_size(at_annotations_find(&a, "w"), 37, 23, b, 2) == 1);
    CHECK(box_is(&b[0], 0, 0, 36, 22));
    /* a box covering no pixel centre (x: 50 .. 50.1 at W = 100) resolves to nothing */
    CHECK(at_annotation_boxes_for_size(at_annotations_find(&a, "e"), 100, 100, b, 2) == 0);
    /* cap 0 still counts; an unknown size is an error */
    CHECK(at_annotation_boxes_for_size(r, 200, 100, NULL, 0) == 1);
    CHECK(at_annotation_boxes_for_size(r, 0, 100, b, 2) == AT_ERR);
    at_annotations_free(&a);
}

TEST(csv_bad_inputs_are_refused_naming_the_file) {
    const char *dir = test_tmpdir();
    char buf[128];
    const char *p = write_text(dir, "h.csv", "ImageId,URL,x1,y1,x2,y2,TrueLabel\nx,,1,1,2,2,1\n");
    snprintf(buf, sizeof buf, "%s:1:", p);
    expect_load_fails("bad header", p, buf);
    p = write_text(dir, "empty.csv", "");
    expect_load_fails("empty file", p, "empty");
    p = write_text(dir, "zero.csv", CSV_HEAD "x,,1,1,2,2,0,1,,,,\n");
    snprintf(buf, sizeof buf, "%s:2:", p);
    expect_load_fails("TrueLabel 0", p, buf);
    p = write_text(dir, "big.csv", CSV_HEAD "x,,1,1,2,2,11,1,,,,\n");
    expect_load_fails("TrueLabel beyond the classes", p, "11");
    p = write_text(dir, "nan.csv", CSV_HEAD "x,,1,1,2,2,one,1,,,,\n");
    expect_load_fails("TrueLabel not a number", p, "TrueLabel");
    p = write_text(dir, "fields.csv", CSV_HEAD "x,,1,1,2,2,1,1,,,\n");
    expect_load_fails("11 fields", p, "11 fields");
    p = write_text(dir, "quote.csv", CSV_HEAD "x,\"unclosed,1,1,2,2,1,1,,,,\n");
    expect_load_fails("unclosed quote", p, "quote");
    p = write_text(dir, "quote2.csv", CSV_HEAD "x,ab\"c,1,1,2,2,1,1,,,,\n");
    expect_load_fails("quote inside an unquoted field", p, "quote");
    p = write_text(dir, "mixed.csv", CSV_HEAD "x,,0.5,0.5,2.5,0.7,1,1,,,,\n");
    expect_load_fails("a coordinate neither pixel nor fraction", p, "2.5");
    p = write_text(dir, "neg.csv", CSV_HEAD "x,,-1,1,2,2,1,1,,,,\n");
    expect_load_fails("negative coordinate", p, "negative");
    p = write_text(dir, "order.csv", CSV_HEAD "x,,5,1,2,2,1,1,,,,\n");
    expect_load_fails("x1 > x2", p, "x1 > x2");
    p = write_text(dir, "partial.csv", CSV_HEAD "x,,1,,2,2,1,1,,,,\n");
    expect_load_fails("some coordinates empty", p, "all");
    p = write_text(dir, "dup.csv", CSV_HEAD "x,,1,1,2,2,1,1,,,,\nx,,1,1,2,2,1,1,,,,\n");
    snprintf(buf, sizeof buf, "%s:3:", p);
    expect_load_fails("duplicate id", p, buf);
}

/* ------------------------------------------------------------------ XML */

TEST(xml_reader_accepts_the_schema_s_syntax) {
    const char *dir = test_tmpdir();
    const char *p = write_text(
        dir, "x.xml",
        "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
        "<!DOCTYPE annotation>\n<!-- made by hand -- with comments -->\n"
        "<annotation verified='no'>\n"
        "  <filename>a&amp;b&#x41;&#66;&lt;&gt;&quot;&apos;.JPEG</filename>\n"
        "  <size><width> 500 </width><height>375</height><depth>3</depth></size>\n"
        "  <segmented/>\n"
        "  <object extra=\"1\"><name><![CDATA[fm0000007]]></name><difficult>0</difficult>\n"
        "    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>500</xmax><ymax>375</ymax></bndbox>\n"
        "    <part><name>ignored</name></part>\n"
        "  </object><!-- trailing -->\n"
        "  <object><name>fm0000003</name>\n"
        "    <bndbox><xmin>0</xmin><ymin>10</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>\n"
        "</annotation>\n<!-- after the root -->\n");
    at_annotations a;
    int rc = at_annotations_load(p, scenes_model(), &a);
    CHECKF(rc == AT_OK, "%s", at_last_error());
    REQUIRE(rc == AT_OK && a.n == 1);
    const at_annotation *it = &a.items[0];
    CHECKF(strcmp(it->id, "a&bAB<>\"'") == 0, "id '%s'", it->id); /* .JPEG dropped */
    CHECK(it->width == 500 && it->height == 375);
    CHECK(it->cls == 7); /* the first object's class */
    REQUIRE(it->n_boxes == 2);
    CHECK(it->boxes[0].cls == 7 && box_is(&it->boxes[0], 0, 1, 499, 374));
    CHECK(it->boxes[1].cls == 3 && box_is(&it->boxes[1], 0, 9, 19, 29)); /* raw 0 clamps to 0 */
    at_annotations_free(&a);
}

TEST(xml_bad_inputs_are_refused_naming_the_file) {
    const char *dir = test_tmpdir();
    char x[2048];
    const char *p;
    xml_one(x, sizeof x, "i", 10, 10, "n99999999", "1", "1", "2", "2");
    p = write_text(dir, "wnid.xml", x);
    expect_load_fails("unknown wnid", p, "n99999999");
    xml_one(x, sizeof x, "i", 10, 10, "fm0000001", "5", "1", "2", "2");
    p = write_text(dir, "order.xml", x);
    expect_load_fails("xmin > xmax", p, "xmin > xmax");
    xml_one(x, sizeof x, "i", 10, 10, "fm0000001", "-3", "1", "2", "2");
    p = write_text(dir, "neg.xml", x);
    expect_load_fails("negative coordinate", p, "negative");
    xml_one(x, sizeof x, "i", 10, 10, "fm0000001", "1", "1x", "2", "2");
    p = write_text(dir, "nan.xml", x);
    expect_load_fails("non-numeric coordinate", p, "ymin");
    xml_one(x, sizeof x, "i", 10, 10, "fm0000001", "1.5", "1", "2", "2");
    p = write_text(dir, "frac.xml", x);
    expect_load_fails("fractional coordinate", p, "xmin");
    p = write_text(dir, "mismatch.xml", "<annotation><filename>i</name></annotation>");
    expect_load_fails("mismatched end tag", p, "mismatched");
    p = write_text(dir, "unclosed.xml", "<annotation><filename>i</filename>");
    expect_load_fails("unclosed root", p, "end of file");
    p = write_text(dir, "entity.xml", "<annotation><filename>a&nbsp;b</filename></annotation>");
    expect_load_fails("unknown entity", p, "nbsp");
    p = write_text(dir, "after.xml", "<annotation></annotation>junk");
    expect_load_fails("text after the root", p, "after the root");
    p = write_text(dir, "two.xml", "<annotation></annotation><annotation></annotation>");
    expect_load_fails("two roots", p, "after the root");
    p = write_text(dir, "root.xml", "<doc><filename>i</filename></doc>");
    expect_load_fails("wrong root", p, "<annotation>");
    p = write_text(dir, "attr.xml", "<annotation a=b></annotation>");
    expect_load_fails("unquoted attribute", p, "attribute");
    p = write_text(dir, "nofile.xml", "<annotation><size><width>1</width><height>1</height></size></annotation>");
    expect_load_fails("missing filename", p, "filename");
    p = write_text(dir, "nosize.xml", "<annotation><filename>i</filename></annotation>");
    expect_load_fails("missing size", p, "width");
    p = write_text(dir, "nobox.xml",
                   "<annotation><filename>i</filename><size><width>9</width><height>9</height></size>"
                   "<object><name>fm0000001</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
                   "</bndbox></object></annotation>");
    expect_load_fails("missing ymax", p, "ymax");
    p = write_text(dir, "empty.xml", "");
    expect_load_fails("empty file", p, "no XML element");
}

TEST(missing_paths_and_empty_directories_are_refused) {
    const char *dir = test_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/none.csv", dir);
    expect_load_fails("missing file", path, "cannot open");
    snprintf(path, sizeof path, "%s/none.xml", dir);
    expect_load_fails("missing xml", path, "cannot open");
    snprintf(path, sizeof path, "%s/empty", dir);
    mkdir(path, 0755);
    write_text(path, "README.txt", "not xml");
    expect_load_fails("empty directory", path, "no .xml");
}

TEST(xml_directory_with_a_bad_file_names_that_file) {
    const char *dir = test_tmpdir();
    char x[2048];
    xml_one(x, sizeof x, "a", 10, 10, "fm0000001", "1", "1", "2", "2");
    write_text(dir, "a.xml", x);
    xml_one(x, sizeof x, "b", 10, 10, "fm0000001", "1", "1", "2", "2");
    write_text(dir, "b.xml", x);
    at_annotations a;
    REQUIRE(at_annotations_load(dir, scenes_model(), &a) == AT_OK);
    CHECK(a.n == 2 && strcmp(a.items[0].id, "a") == 0 && strcmp(a.items[1].id, "b") == 0);
    at_annotations_free(&a);
    xml_one(x, sizeof x, "a", 10, 10, "fm0000001", "1", "1", "2", "2");
    const char *dup = write_text(dir, "c.xml", x);
    char want[1100];
    snprintf(want, sizeof want, "%s", dup);
    at_annotations b;
    CHECK(at_annotations_load(dir, scenes_model(), &b) == AT_ERR);
    CHECKF(strstr(at_last_error(), want) && strstr(at_last_error(), "duplicate"), "%s", at_last_error());
}

/* ---------------------------------------------------------- find, masks */

TEST(find_looks_up_by_stem_then_by_base_name) {
    const char *dir = test_tmpdir();
    const char *p = write_text(dir, "images.csv", CSV_HEAD "img.v2,,,,,,1,1,,,,\nplain,,,,,,2,1,,,,\n");
    at_annotations a;
    REQUIRE(at_annotations_load(p, scenes_model(), &a) == AT_OK);
    const at_annotation *f = at_annotations_find(&a, "some/dir/plain.png");
    CHECK(f && strcmp(f->id, "plain") == 0 && f->cls == 1);
    CHECK(at_annotations_find(&a, "plain") == f);
    CHECK(at_annotations_find(&a, "x/img.v2.png") && at_annotations_find(&a, "x/img.v2.png")->cls == 0);
    CHECK(at_annotations_find(&a, "img.v2") != NULL); /* no extension: whole base name */
    CHECK(at_annotations_find(&a, "plain/other.png") == NULL);
    CHECK(at_annotations_find(&a, "img.png") == NULL);
    at_annotations_free(&a);
}

TEST(box_mask_follows_resize_and_centre_crop) {
    /* ILSVRC-sized 500x375 image, VGG preprocessing: resize 256, crop 224.
     * Resized 341x256 (int(256*500/375) = 341), scale_x = 0.682,
     * scale_y = 0.68267; crop offsets round((341-224)/2) = 58 (half to even),
     * (256-224)/2 = 16. Box (1-based XML) 101,51,150,100 = 0-based
     * 100..149 x 50..99. Output x is inside when 100 <= (x+58.5)/0.682 < 150:
     * x >= 9.7 and x < 43.8 -> 10..43; y: 50 <= (y+16.5)/0.68267 < 100:
     * y >= 17.63 and y < 51.77 -> 18..51. 34 x 34 = 1156 pixels. */
    const char *dir = test_tmpdir();
    const char *p = write_text(
        dir, "v.xml",
        "<annotation><filename>ILSVRC2012_val_00000001</filename>"
        "<size><width>500</width><height>375</height></size>"
        "<object><name>fm0000004</name><bndbox><xmin>101</xmin><ymin>51</ymin>"
        "<xmax>150</xmax><ymax>100</ymax></bndbox></object>"
        "<object><name>fm0000002</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        "<xmax>60</xmax><ymax>20</ymax></bndbox></object></annotation>");
    at_annotations a;
    REQUIRE(at_annotations_load(p, scenes_model(), &a) == AT_OK);
    const at_annotation *it = at_annotations_find(&a, "/data/val/ILSVRC2012_val_00000001.JPEG");
    REQUIRE(it != NULL);
    CHECK(it->cls == 4);
    at_preprocess pp = {.resize = 256, .crop = 224, .interp = AT_INTERP_BILINEAR,
                        .mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f}};
    at_geometry geo;
    at_geometry_of(500, 375, &pp, &geo);
    REQUIRE(geo.resized_w == 341 && geo.resized_h == 256 && geo.crop_left == 58 && geo.crop_top == 16);
    static unsigned char mask[224 * 224];
    memset(mask, 7, sizeof mask); /* the call must clear it */
    CHECK(at_annotations_box_mask(it, &geo, 4, mask) == 1156);
    int wrong = 0;
    for (int y = 0; y < 224; y++)
        for (int x = 0; x < 224; x++) {
            int want = x >= 10 && x <= 43 && y >= 18 && y <= 51;
            wrong += (mask[y * 224 + x] != 0) != want;
        }
    CHECKF(wrong == 0, "%d pixels differ from the hand-computed box", wrong);
    /* class 2's box 0..59 x 0..19 maps to x < (60*0.682 - 58.5) = -17.6: cropped away */
    CHECK(at_annotations_box_mask(it, &geo, 2, mask) == 0);
    CHECK(at_annotations_box_mask(it, &geo, 9, mask) == 0);
    CHECK(at_annotations_box_mask(it, &geo, -1, mask) == 1156);
    at_annotations_free(&a);
}

TEST(box_mask_resolves_relative_boxes_for_the_geometry) {
    /* identity geometry on the 128x128 scenes: the CSV box of scene 0 is 5..95 x 26..123 */
    at_annotations a;
    REQUIRE(at_annotations_load(test_path("weights/samples/images.csv"), scenes_model(), &a) == AT_OK);
    const at_annotation *it = at_annotations_find(&a, "fmscene_test_00000000.png");
    REQUIRE(it != NULL);
    at_preprocess pp = {.resize = 128, .crop = 128, .interp = AT_INTERP_BILINEAR,
                        .mean = {0.5f, 0.5f, 0.5f}, .std = {0.5f, 0.5f, 0.5f}};
    at_geometry geo;
    at_geometry_of(128, 128, &pp, &geo);
    static unsigned char mask[128 * 128];
    CHECK(at_annotations_box_mask(it, &geo, -1, mask) == 91 * 98);
    CHECK(mask[26 * 128 + 5] && mask[123 * 128 + 95] && !mask[25 * 128 + 5] && !mask[26 * 128 + 96]);
    at_annotations_free(&a);
}

TEST(loading_needs_a_model_with_labels) {
    at_model empty = {0};
    at_annotations a;
    CHECK(at_annotations_load(test_path("weights/samples/images.csv"), &empty, &a) == AT_ERR);
    CHECK(at_annotations_load(test_path("weights/samples/images.csv"), NULL, &a) == AT_ERR);
}
