/* Helpers shared by the golden tests: read a case's meta.json, rebuild its
 * random model from the shared PRNG, load and compare .npy references. */
#ifndef ATTRIB_TEST_GOLDEN_UTIL_H
#define ATTRIB_TEST_GOLDEN_UTIL_H

#include "exec/backend.h"
#include "io/json.h"
#include "model/model.h"

/* Root of the goldens: $ATTRIB_GOLDENS or tests/goldens. */
const char *golden_dir(void);
/* Parses DIR/meta.json (NULL + test failure on error). */
at_json *golden_meta(const char *dir);
double golden_meta_num(const at_json *meta, const char *key, double dflt);
int golden_meta_int(const at_json *meta, const char *key, int dflt);
/* Element b of the number array key (NaN when there is none). */
double golden_meta_item(const at_json *meta, const char *key, int b);
const char *golden_meta_str(const at_json *meta, const char *key, const char *dflt);
/* Rebuilds the case's random VGG (arch, widths, hidden, classes, h, w, avgpool, seed). */
at_model *golden_model(const at_json *meta);
/* A case opened: its meta.json, its model, a CPU backend on it. */
typedef struct {
    at_json *meta;
    at_model *m;
    at_backend *be;
} golden_case;
/* 1 when all three are made; else 0, what was made freed, the failure recorded under name. */
int golden_case_open(const char *dir, const char *name, golden_case *c);
void golden_case_close(golden_case *c);
/* Reads DIR/name as float32 (NULL + failure when missing); *n = element count. */
float *golden_npy(const char *dir, const char *name, long *n);
/* Compares got with DIR/name: |got-ref| <= atol + rtol*|ref| everywhere. */
int golden_compare(const char *dir, const char *name, const char *what, const float *got, long n, double atol,
                   double rtol);
/* Each non-empty line of DIR/cases.txt, calling fn(case_dir); a failure when
 * there are fewer than min_cases (a lost cases.txt line must not pass). */
int golden_each_case(const char *sub, void (*fn)(const char *case_dir, const char *name), int min_cases);

#endif
