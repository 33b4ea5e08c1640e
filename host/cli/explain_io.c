#include "explain_io.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "output/colormap.h"
#include "core/error.h"

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int cli_paths_add_dir(cli_paths *p, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return at_fail(dir, "%s", strerror(errno));
    cli_paths found = {0};
    struct dirent *e;
    int rc = AT_OK;
    while (rc == AT_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st)) continue;
        if (S_ISDIR(st.st_mode)) rc = cli_paths_add_dir(&found, path);
        else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) rc = cli_paths_add(&found, path);
    }
    closedir(d);
    qsort(found.paths, found.n, sizeof *found.paths, cmp_str);
    for (int i = 0; rc == AT_OK && i < found.n; i++) rc = cli_paths_add(p, found.paths[i]);
    cli_paths_free(&found);
    return rc;
}

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
