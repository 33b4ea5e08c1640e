/* Helpers shared by the golden tests: read a case's meta.json, rebuild its
 * random model from the shared PRNG, load and compare .npy references. */
#ifndef ATTRIB_TEST_GOLDEN_UTIL_H
#define ATTRIB_TEST_GOLDEN_UTIL_H

#include "io/json.h"
#include "model/model.h"

/* Root of the goldens: $ATTRIB_GOLDENS or tests/goldens. */
const char *golden_dir(void);
/* Parses DIR/meta.json (NULL + test failure on error). */
at_json *golden_meta(const char *dir);
int golden_meta_int(const at_json *meta, const char *key, int dflt);
const char *golden_meta_str(const at_json *meta, const char *key, const char *dflt);
/* Rebuilds the case's random VGG (arch, widths, hidden, classes, h, w, avgpool, seed). */
at_model *golden_model(const at_json *meta);
/* Reads DIR/name as float32 (NULL + failure when missing); *n = element count. */
float *golden_npy(const char *dir, const char *name, long *n);
/* Compares got with DIR/name: |got-ref| <= atol + rtol*|ref| everywhere. */
int golden_compare(const char *dir, const char *name, const char *what, const float *got, long n, double atol,
                   double rtol);
/* Each non-empty line of DIR/cases.txt, calling fn(case_dir). */
int golden_each_case(const char *sub, void (*fn)(const char *case_dir, const char *name));

#endif
