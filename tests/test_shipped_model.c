/* The shipped VGG16-mini and ResNet18-mini on the committed sample scenes:
 * ./attrib predict gives PyTorch's predictions (tools/make_sample_goldens.py),
 * prediction for prediction, and the engine's accuracy on the samples matches. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "golden_util.h"
#include "io/json.h"
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
