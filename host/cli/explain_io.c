#include "explain_io.h"

#include <stdlib.h>
#include <string.h>

#include "output/colormap.h"
#include "core/error.h"

int cli_write_map(const char *dir, const char *stem, const char *tag, const char *param, const float *map, int w,
                  int h, const unsigned char *rgb, int no_overlay, char **npy_path, char **png_path) {
    *npy_path = at_output_path(dir, stem, tag, param, "npy");
    *png_path = no_overlay ? NULL : at_output_path(dir, stem, tag, param, "png");
    if (!*npy_path || (!no_overlay && !*png_path)) return AT_ERR;
    int64_t shape[2] = {h, w};
    if (at_output_write_npy(*npy_path, map, 2, shape)) return AT_ERR;
    if (!no_overlay && at_overlay_png(*png_path, rgb, map, w, h, 0.5f)) return AT_ERR;
    return AT_OK;
}
