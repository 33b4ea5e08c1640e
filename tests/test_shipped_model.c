/* The shipped VGG16-mini and ResNet18-mini on the committed sample scenes:
 * ./attrib predict gives PyTorch's predictions (tools/make_sample_goldens.py),
 * prediction for prediction, and the engine's accuracy on the samples matches;
 * ./attrib explain --variant pgc gives pytorch-grad-cam's Score-CAM, Grad-CAM
 * and Grad-CAM++ maps (tools/check_shipped_peers.py --write-goldens). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden_util.h"
#include "io/json.h"
#include "io/npy.h"
#include "io/sha256.h"
#include "test.h"

/* float32 vs PyTorch float32 with different summation orders, 0.08 GMAC
 * deep (VGG16-mini; ResNet18-mini 0.1 GMAC, BN folded at load: 5e-6 measured) */
#define PROB_ATOL 1e-4
#define LOGIT_ATOL 1e-3

static char out[1 << 20];

static void check_samples(const char *golden_name, const char *model) {
    char golden[1200];
    snprintf(golden, sizeof golden, "%s/samples/%s", golden_dir(), golden_name);
    FILE *f = fopen(golden, "r");
    REQUIRE(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && ./attrib predict --backend cpu --json --topk 3 --model %s "
             "--list weights/samples/list.txt 2>/dev/null",
             test_root(), model);
    REQUIRE(run_cmd(cmd, out, sizeof out) == 0);
    static char line[1 << 16];
    char *ours = out;
    int n = 0, first = 1;
    while (fgets(line, sizeof line, f)) {
        at_json *ref = NULL, *got = NULL;
        REQUIRE(at_json_parse(line, strlen(line), &ref) == AT_OK);
        if (first) { /* header: the model the goldens were made with */
            first = 0;
            char *nl = strchr(ours, '\n');
            REQUIRE(nl);
            REQUIRE(at_json_parse(ours, nl - ours, &got) == AT_OK);
            CHECKF(!strcmp(at_json_get(ref, "model_sha256")->string, at_json_get(got, "model_sha256")->string),
                   "%s changed: run `make goldens` to refresh tests/goldens/samples", model);
            at_json_free(ref);
            at_json_free(got);
            continue;
        }
        char *nl = strchr(ours, '\n');
        REQUIRE(nl);
        REQUIRE(at_json_parse(ours, nl - ours, &got) == AT_OK);
        ours = nl + 1;
        CHECK(!strcmp(at_json_get(ref, "image")->string, at_json_get(got, "image")->string));
        const at_json *rt = at_json_get(ref, "top"), *gt = at_json_get(got, "top");
        REQUIRE(rt && gt && rt->n == 3 && gt->n == 3);
        for (int k = 0; k < 3; k++) {
            const at_json *r = &rt->items[k], *g = &gt->items[k];
            if (k == 0)
                CHECKF(at_json_get(r, "class")->number == at_json_get(g, "class")->number, "%s: top-1 %g, torch %g",
                       at_json_get(ref, "image")->string, at_json_get(g, "class")->number,
                       at_json_get(r, "class")->number);
            CHECK_NEAR(at_json_get(g, "prob")->number, at_json_get(r, "prob")->number, PROB_ATOL);
            CHECK_NEAR(at_json_get(g, "logit")->number, at_json_get(r, "logit")->number, LOGIT_ATOL);
        }
        at_json_free(ref);
        at_json_free(got);
        n++;
    }
    fclose(f);
    CHECKF(n >= 30, "only %d sample predictions", n);
}

TEST(shipped_model_predicts_the_samples_exactly_as_pytorch) {
    check_samples("predictions.jsonl", "weights/vgg16_mini.safetensors");
}

TEST(shipped_resnet18_mini_predicts_the_samples_exactly_as_pytorch) {
    check_samples("predictions_resnet18_mini.jsonl", "weights/resnet18_mini.safetensors");
}

typedef struct {
    const char *image;
    char *path;
    size_t cap;
    int found;
} map_query;

static int find_map(const at_json *line, void *ctx) {
    map_query *q = ctx;
    const at_json *im = at_json_get(line, "image"), *m = at_json_get(line, "map");
    if (!q->found && im && m && strstr(im->string, q->image)) snprintf(q->path, q->cap, "%s", m->string), q->found = 1;
    return AT_OK;
}

/* The map file explain wrote for image (its results line names it). */
static int map_of(const char *results, const char *image, char *path, size_t cap) {
    map_query q = {image, path, cap, 0};
    return at_jsonl_each(results, find_map, &q) == AT_OK && q.found;
}

TEST(shipped_models_cams_match_pytorch_grad_cam_on_the_samples) {
    char dir[1200], file[1300];
    snprintf(dir, sizeof dir, "%s/samples/pgc", golden_dir());
    snprintf(file, sizeof file, "%s/cases.json", dir);
    size_t len = 0;
    unsigned char *text = test_read_bytes(file, &len);
    REQUIRE(text);
    at_json *cfg = NULL;
    int parsed = at_json_parse((const char *)text, len, &cfg);
    free(text);
    REQUIRE(parsed == AT_OK);
    const at_json *images = at_json_get(cfg, "images"), *cases = at_json_get(cfg, "cases");
    double tol = at_json_get(cfg, "tol")->number;
    REQUIRE(images && cases && images->n >= 2 && cases->n >= 6);
    char list[1024];
    size_t o = 0;
    for (size_t i = 0; i < images->n; i++) o += snprintf(list + o, sizeof list - o, " %s", images->items[i].string);
    int compared = 0;
    for (size_t c = 0; c < cases->n; c++) {
        const at_json *k = &cases->items[c];
        const char *model = at_json_get(k, "model")->string, *method = at_json_get(k, "method")->string;
        char model_file[1200], sha[65], out_dir[1300], cmd[4096];
        snprintf(model_file, sizeof model_file, "%s/weights/%s.safetensors", test_root(), model);
        REQUIRE(at_sha256_file(model_file, sha) == AT_OK);
        CHECKF(!strcmp(sha, at_json_get(k, "model_sha256")->string),
               "%s changed: rerun tools/check_shipped_peers.py --write-goldens tests/goldens/samples/pgc", model_file);
        snprintf(out_dir, sizeof out_dir, "%s/%s.%s", test_tmpdir(), model, method);
        snprintf(cmd, sizeof cmd,
                 "cd %s && ./attrib explain --backend cpu --quiet --no-overlay --model %s --method %s --variant pgc "
                 "--layer %s --out %s%s 2>&1",
                 test_root(), model_file, method, at_json_get(k, "layer")->string, out_dir, list);
        CHECKF(run_cmd(cmd, out, sizeof out) == 0, "%s", out);
        for (size_t i = 0; i < images->n; i++) {
            const char *image = images->items[i].string, *base = strrchr(image, '/');
            char results[1400], map[2048], golden[512];
            snprintf(results, sizeof results, "%s/results.jsonl", out_dir);
            CHECKF(map_of(results, base ? base + 1 : image, map, sizeof map), "%s: no results line", image);
            float *got = NULL;
            int nd = 0;
            int64_t shape[AT_NPY_MAX_DIMS];
            REQUIRE(at_npy_read_f32(map, &got, &nd, shape) == AT_OK);
            snprintf(golden, sizeof golden, "%s/%.*s.%s.npy", model, (int)(strrchr(base, '.') - base - 1), base + 1,
                     method);
            golden_compare(dir, golden, method, got, shape[0] * shape[1], tol, 0);
            free(got);
            compared++;
        }
    }
    at_json_free(cfg);
    CHECKF(compared >= 12, "only %d maps compared", compared);
}
