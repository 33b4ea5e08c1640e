/* What explain's runs share (private to host/run): writing an image's map
 * files, the class fields of a results line, and the routing-path batch. */
#ifndef ATTRIB_RUN_EXPLAIN_INTERNAL_H
#define ATTRIB_RUN_EXPLAIN_INTERNAL_H

#include "io/image.h"
#include "output/output.h"
#include "run/explain.h"
#include "run/report.h"

/* Writes DIR/<stem>.<tag>[.param].npy (H x W float32) and, unless no_overlay,
 * the overlay PNG on the preprocessed image; returns the paths (malloc'd). */
int explain_write_map(const char *dir, const char *stem, const char *tag, const char *param, const float *map, int w,
                      int h, const unsigned char *rgb, int no_overlay, char **npy_path, char **png_path);
/* "class", "label", "label_name" of class cls. */
void explain_class_fields(at_jsonw *w, const at_model *m, int cls);

/* Paths already in the output folder: results.jsonl lines of the path
 * method with the same settings and model (image -> gates file). */
typedef struct {
    char **images, **gates;
    int n, cap;
} path_reuse;
int path_reuse_load(path_reuse *r, const char *out_dir, const at_path_run_options *p, const at_model *m,
                    at_precision precision);
void path_reuse_free(path_reuse *r);

typedef struct {
    at_path_method method;
    const at_path_run_options *p;
    const at_model *m;
    at_backend *be;
    const char *tag, *out_dir;
    const char *settings, *name; /* name = tag[.settings], in the file names */
    const path_reuse *reuse;
    at_explain_summary *summary;
    char **stems;
    const char *const *paths;
    at_results *res;
    run_report *rep;
    int no_overlay;
    int skip_existing; /* resume: do not repeat a line results.jsonl has */
} path_run;

/* Runs the method on nb loaded images (inputs, their indices into paths and
 * preprocessed RGB8) and writes their files and results lines. */
int explain_paths_batch(const path_run *run, const float *inputs, int nb, const int *index, at_image *rgbs);

#endif
