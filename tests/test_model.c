/* Model description and loader: topology, layer lookup, metadata, labels and
 * every way a weights file can be wrong (docs/models.md, docs/usage.md). */
#include <stdlib.h>
#include <string.h>

#include "exec/backend.h"
#include "core/error.h"
#include "model/model.h"
#include "model_fixture.h"
#include "model/random_model.h"
#include "test.h"

static const char *tmp_file(const char *name) {
    static char path[8][1024];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    return p;
}

/* Writes the tiny model with one edit and expects loading to fail with a
 * message naming the file and containing `want`. */
static void expect_load_error(const fixture_edit *edit, const char *want) {
    at_model *src = fixture_tiny_model();
    REQUIRE(src);
    const char *path = tmp_file("m.safetensors");
    REQUIRE(fixture_write_model(src, path, edit) == AT_OK);
    at_model *m = NULL;
    int rc = at_model_load(path, &m);
    CHECKF(rc == AT_ERR && m == NULL, "loading succeeded, expected an error containing '%s'", want);
    if (rc == AT_ERR) {
        const char *msg = at_last_error();
        CHECKF(strstr(msg, path) == msg, "message does not start with the path: %s", msg);
        CHECKF(strstr(msg, want) != NULL, "message lacks '%s': %s", want, msg);
        CHECKF(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
    }
    at_model_free(m);
    at_model_free(src);
}

TEST(vgg16_has_13_convs_4224_gates_and_torchvision_module_names) {
    at_random_spec spec;
    at_random_spec_standard(&spec, "vgg16", 224, 1000);
    spec.hidden[0] = spec.hidden[1] = 8; /* keep the classifier tiny; features are the subject */
    at_model *m = NULL;
    REQUIRE(at_random_model(&spec, &m) == AT_OK);
    CHECK(m->n_convs == 13);
    CHECK(m->n_gates == 4224);
    CHECK(!strcmp(m->layers[at_model_find_layer(m, "12")].name, "features.29"));
    CHECK(!strcmp(m->layers[at_model_find_layer(m, "last-conv")].name, "features.29"));
    int pool = at_model_find_layer(m, "features.30");
    REQUIRE(pool >= 0);
    CHECK(m->layers[pool].kind == AT_L_MAXPOOL && m->layers[pool].out_h == 7);
    CHECK(m->layers[at_model_find_layer(m, "features.28")].kind == AT_L_CONV);
    CHECK(m->layers[at_model_find_layer(m, "0")].gate_offset == 0);
    CHECK(m->layers[at_model_find_layer(m, "12")].gate_offset == 4224 - 512);
    /* docs/methods.md#cost-arithmetic: 15.47 GMAC with the 4096-wide classifier, 99.2 % of it conv = 15.35 */
    CHECK_NEAR(m->macs_per_image / 1e9, 15.347, 0.001);
    CHECK(at_model_find_layer(m, "13") == AT_ERR && strstr(at_last_error(), "out of range"));
    CHECK(at_model_find_layer(m, "features.99") == AT_ERR && strstr(at_last_error(), "no layer"));
    at_model_free(m);
}

TEST(vgg_bn_topology_names_conv_bn_relu_triples) {
    at_random_spec spec = {.arch = "vgg11_bn", .widths = {4, 4, 4, 4, 4, 4, 4, 4}, .hidden = {4, 4},
                           .n_classes = 3, .in_h = 32, .in_w = 32, .avgpool = 7, .seed = 1};
    at_model *m = NULL;
    REQUIRE(at_random_model(&spec, &m) == AT_OK);
    CHECK(m->layers[0].kind == AT_L_CONV && m->layers[1].kind == AT_L_BATCHNORM && m->layers[2].kind == AT_L_RELU);
    CHECK(!strcmp(m->layers[at_model_find_layer(m, "7")].name, "features.27"));
    at_model_free(m);
}

TEST(unknown_arch_is_rejected) {
    int blocks[5], bn;
    CHECK(at_vgg_topology("resnet50", blocks, &bn) == AT_ERR && strstr(at_last_error(), "unknown arch"));
    CHECK(at_vgg_topology("vgg19_bn", blocks, &bn) == AT_OK && bn == 1 && blocks[4] == 4);
}

TEST(written_model_loads_and_gives_the_same_logits) {
    at_model *src = fixture_tiny_model();
    REQUIRE(src);
    const char *path = tmp_file("tiny.safetensors");
    REQUIRE(fixture_write_model(src, path, NULL) == AT_OK);
    at_model *m = NULL;
    REQUIRE(at_model_load(path, &m) == AT_OK);
    CHECK(m->n_classes == 8 && m->in_h == 32 && m->n_gates == src->n_gates);
    CHECK(m->pre.crop == 32 && m->pre.resize == 32);
    CHECK_NEAR(m->pre.std[2], 0.225, 1e-7);
    CHECK(!strcmp(m->labels[3].id, "class3"));
    CHECK(strlen(m->sha256) == 64);
    at_backend_options opt = {.name = "cpu"};
    at_backend *b1, *b2;
    REQUIRE(at_backend_create(src, &opt, &b1) == AT_OK && at_backend_create(m, &opt, &b2) == AT_OK);
    float x[2 * 3 * 32 * 32], l1[16], l2[16];
    at_prng_fill("input", 3, x, 2 * 3 * 32 * 32, 2.0f, 0.0f);
    at_forward_args fa = {.n = 2, .input = x, .logits = l1};
    REQUIRE(at_forward(b1, &fa) == AT_OK);
    fa.logits = l2;
    REQUIRE(at_forward(b2, &fa) == AT_OK);
    CHECK(memcmp(l1, l2, sizeof l1) == 0); /* same floats, same program: bit-identical */
    at_backend_destroy(b1);
    at_backend_destroy(b2);
    at_model_free(m);
    at_model_free(src);
}

TEST(labels_come_from_a_sibling_file_when_metadata_has_none) {
    at_model *src = fixture_tiny_model();
    REQUIRE(src);
    const char *dir = test_tmpdir();
    char path[1024], labels[1100];
    snprintf(path, sizeof path, "%s/net.safetensors", dir);
    snprintf(labels, sizeof labels, "%s/net.labels.txt", dir);
    fixture_edit edit = {.meta_keys = {"labels"}, .meta_values = {NULL}};
    REQUIRE(fixture_write_model(src, path, &edit) == AT_OK);
    FILE *f = fopen(labels, "w");
    for (int c = 0; c < 8; c++) fprintf(f, "n%08d name number %d\n", c, c);
    fclose(f);
    at_model *m = NULL;
    REQUIRE(at_model_load(path, &m) == AT_OK);
    CHECK(!strcmp(m->labels[5].id, "n00000005") && !strcmp(m->labels[5].name, "name number 5"));
    at_model_free(m);
    f = fopen(labels, "w");
    fprintf(f, "a x\nb y\n");
    fclose(f);
    CHECK(at_model_load(path, &m) == AT_ERR && strstr(at_last_error(), "has 2 labels, the model has 8"));
    at_model_free(src);
}

TEST(missing_tensor_is_named) {
    fixture_edit e = {.drop_key = "features.3.weight"};
    expect_load_error(&e, "missing tensor 'features.3.weight'");
}

TEST(wrong_tensor_shape_is_named_with_expected_shape) {
    fixture_edit e = {.reshape_key = "classifier.3.weight"};
    /* the weight's out-dim sets the layer width; the bias then disagrees */
    expect_load_error(&e, "tensor 'classifier.3.bias' has shape [12], expected [11]");
}

TEST(bias_length_mismatch_is_rejected) {
    fixture_edit e = {.reshape_key = "features.0.bias"};
    expect_load_error(&e, "tensor 'features.0.bias' has shape [3], expected [4]");
}

TEST(missing_arch_metadata_is_rejected) {
    fixture_edit e = {.meta_keys = {"arch"}, .meta_values = {NULL}};
    expect_load_error(&e, "missing metadata 'arch'");
}

TEST(arch_that_does_not_match_the_tensors_is_rejected) {
    fixture_edit e = {.meta_keys = {"arch"}, .meta_values = {"vgg16"}};
    expect_load_error(&e, "tensor");
}

TEST(batchnorm_tensors_under_a_plain_arch_name_are_explained) {
    fixture_edit e = {.extra_key = "features.1.running_mean"};
    expect_load_error(&e, "has BatchNorm tensors (features.1.running_mean) but arch 'vgg11'; "
                          "set the metadata arch to 'vgg11_bn'");
}

TEST(unknown_arch_metadata_is_rejected) {
    fixture_edit e = {.meta_keys = {"arch"}, .meta_values = {"alexnet"}};
    expect_load_error(&e, "unknown arch 'alexnet'");
}

TEST(missing_or_bad_normalisation_metadata_is_rejected) {
    fixture_edit a = {.meta_keys = {"mean"}, .meta_values = {NULL}};
    expect_load_error(&a, "missing metadata 'mean'");
    fixture_edit b = {.meta_keys = {"std"}, .meta_values = {"[0.2, 0.2]"}};
    expect_load_error(&b, "metadata 'std'");
    fixture_edit c = {.meta_keys = {"std"}, .meta_values = {"[0.2, -1, 0.2]"}};
    expect_load_error(&c, "must be positive");
    fixture_edit d = {.meta_keys = {"mean"}, .meta_values = {"not json"}};
    expect_load_error(&d, "metadata 'mean'");
}

TEST(bad_size_metadata_is_rejected) {
    fixture_edit a = {.meta_keys = {"crop"}, .meta_values = {"16"}};
    expect_load_error(&a, "out of range");
    fixture_edit b = {.meta_keys = {"avgpool"}, .meta_values = {"x7"}};
    expect_load_error(&b, "metadata 'avgpool'");
    fixture_edit c = {.meta_keys = {"interpolation"}, .meta_values = {"lanczos"}};
    expect_load_error(&c, "metadata 'interpolation'");
}

TEST(labels_metadata_must_match_the_class_count) {
    fixture_edit e = {.meta_keys = {"labels"}, .meta_values = {"[[\"a\", \"b\"]]"}};
    expect_load_error(&e, "metadata 'labels' must list 8");
    fixture_edit f = {.meta_keys = {"labels"}, .meta_values = {"[1, 2, 3, 4, 5, 6, 7, 8]"}};
    expect_load_error(&f, "not an [id, name] pair");
}

TEST(missing_and_non_safetensors_files_are_rejected_with_the_path) {
    at_model *m = NULL;
    CHECK(at_model_load("/nonexistent/x.safetensors", &m) == AT_ERR &&
          strstr(at_last_error(), "/nonexistent/x.safetensors"));
    const char *dir = test_tmpdir();
    CHECK(at_model_load(dir, &m) == AT_ERR && strstr(at_last_error(), dir));
    const char *txt = tmp_file("notes.safetensors");
    FILE *f = fopen(txt, "w");
    fputs("this is not a model file at all\n", f);
    fclose(f);
    CHECK(at_model_load(txt, &m) == AT_ERR && strstr(at_last_error(), txt));
    CHECK(m == NULL);
}

TEST(truncated_model_file_fails_cleanly_at_every_cut) {
    at_model *src = fixture_tiny_model();
    REQUIRE(src);
    const char *path = tmp_file("full.safetensors"), *cut = tmp_file("cut.safetensors");
    REQUIRE(fixture_write_model(src, path, NULL) == AT_OK);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(size);
    REQUIRE(fread(buf, 1, size, f) == (size_t)size);
    fclose(f);
    for (long len = 0; len < size; len += len < 64 ? 1 : 997) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        at_model *m = NULL;
        int rc = at_model_load(cut, &m);
        CHECKF(rc == AT_ERR && strstr(at_last_error(), cut), "cut at %ld: rc %d, msg %s", len, rc, at_last_error());
        at_model_free(m);
    }
    free(buf);
    at_model_free(src);
}
