/* libFuzzer target: any bytes must decode or fail with a message that names
 * the input; whatever decodes goes through preprocessing and a box mask. Build (the pixel limit keeps each input
 * fast and within libFuzzer's memory limit):
 *   clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
 *     -DAT_IMAGE_MAX_PIXELS=4000000L -Ihost tests/fuzz/fuzz_image.c \
 *     host/core/error.c host/io/image.c host/preprocess/preprocess.c -lpng -ljpeg -lz -lm -o fuzz_image
 *   ./fuzz_image -max_total_time=60 tests/fuzz/seeds/fuzz_image */
#include "core/error.h"
#include "io/image.h"
#include "preprocess/preprocess.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    at_image img;
    if (at_image_load_mem(data, size, "fuzz-input", &img) != AT_OK) {
        if (!strstr(at_last_error(), "fuzz-input") || img.rgb) abort();
        return 0;
    }
    /* the last byte picks the interpolation, so all three get exercised */
    at_preprocess pp = {64, 56, (at_interp)(data[size - 1] % 3),
                        {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    at_geometry geo;
    at_geometry_of(img.w, img.h, &pp, &geo);
    float *out = malloc((size_t)3 * geo.out_w * geo.out_h * sizeof *out);
    if (out && at_preprocess_image(&img, &pp, out, &geo) == AT_OK) {
        unsigned char mask[56 * 56] = {0};
        int box[4] = {img.w / 4, img.h / 4, img.w / 2, img.h / 2};
        at_box_mask(&geo, box, mask);
    }
    free(out);
    at_image_free(&img);
    return 0;
}
