/* The names of explain's results (private to host/run): method tags and the
 * settings suffix that file names and resume keys share. */
#ifndef ATTRIB_RUN_EXPLAIN_NAMES_H
#define ATTRIB_RUN_EXPLAIN_NAMES_H

#include "output/output.h"
#include "run/explain.h"

/* "scorecam" or "scorecam.pgc" (a variant that computes the same map still gets its own name). */
void explain_method_tag(const at_explain_options *ex, char *tag, size_t cap);
/* The settings that change a map, as a file-name suffix; "" for the defaults. ex: resolved. */
void explain_map_settings(const at_explain_run_options *a, const at_explain_options *ex, const at_model *m,
                          at_precision precision, const char *layer_names, char *buf, size_t cap);
/* The results line's fields of the input-gradient settings and the explained quantity. */
void grad_results_fields(at_jsonw *w, const at_model *m, const at_explain_options *ex, const at_explain_result *r);

void path_method_tag(at_path_method pm, const at_path_run_options *p, char *tag, size_t cap);
/* The options that change the method's result: "wang2018", "T5", "hard", "tf32", "global", ... */
void path_settings(at_path_method pm, const at_path_run_options *p, at_precision precision, char *buf, size_t cap);
/* The settings of the path behind path-scorecam / pathway-grad. */
void path_gates_settings(const at_path_run_options *p, at_precision precision, char *buf, size_t cap);
/* "cdrp" / "score-cdrp" plus the path's settings: the gates file's name part. */
void path_file_name(const at_path_run_options *p, at_precision precision, char *buf, size_t cap);
/* "method" or "method.settings": a results key's name. */
void results_key_name(const char *method, const char *settings, char *buf, size_t cap);

#endif
