/* Test fixture: writes an in-memory model (e.g. a random VGG) as a safetensors
 * file with chosen metadata, optionally corrupted, so loader and CLI tests run
 * on real files without committed weights. */
#ifndef ATTRIB_TEST_MODEL_FIXTURE_H
#define ATTRIB_TEST_MODEL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

typedef struct {
    const char *drop_key;      /* tensor left out */
    const char *reshape_key;   /* tensor written with its first dimension - 1 */
    const char *extra_key;     /* tensor added: a copy of features.0.bias */
    const char *meta_keys[16]; /* metadata overrides; value NULL removes the key */
    const char *meta_values[16];
} fixture_edit;

/* Tensors for one safetensors file, as at_st_write_f32 takes them. */
#define FIXTURE_MAX_TENSORS 700
typedef struct {
    const char *names[FIXTURE_MAX_TENSORS];
    const float *data[FIXTURE_MAX_TENSORS];
    int ndims[FIXTURE_MAX_TENSORS];
    int64_t shapes[FIXTURE_MAX_TENSORS][4];
    const int64_t *shape_ptrs[FIXTURE_MAX_TENSORS];
    char keys[FIXTURE_MAX_TENSORS][48];
    int n;
} fixture_tensors;
/* Appends key (copied) with data of shape[0..ndim-1]; 0 when the list is full. */
int fixture_tensor_add(fixture_tensors *t, const char *key, const float *data, int ndim, const int64_t *shape);
int fixture_tensors_write(const fixture_tensors *t, const char *path, int n_meta, const char *const *meta_keys,
                          const char *const *meta_values);

/* A small random vgg11 (8 classes, 32x32 input, avgpool 1). */
at_model *fixture_tiny_model(void);
/* Writes m's parameters under torchvision keys plus default metadata
 * (arch, avgpool, resize/crop = input size, mean, std, labels) with edits. */
int fixture_write_model(const at_model *m, const char *path, const fixture_edit *edit);

/* A CLI test's folder: dir = test_tmpdir(), with the tiny model written as
 * model = DIR/tiny.safetensors. 1 on success. */
int fixture_model_dir(char *dir, size_t dir_cap, char *model, size_t model_cap);
#define FIXTURE_MODEL_DIR(f) fixture_model_dir((f)->dir, sizeof (f)->dir, (f)->model, sizeof (f)->model)
/* In a test: the fixture f of the file's type, made by its make_fixture(&f), or the test stops. */
#define WITH_FIXTURE(type, f) \
    type f;                   \
    REQUIRE(make_fixture(&f))
/* Writes a w x h RGB8 PNG whose byte i is i * mul + (i >> shift) * add. 1 on success. */
int fixture_pattern_png(const char *path, int w, int h, int mul, int shift, int add);

/* Writes a greyscale PNG of bit depth 8 or 16 (samples v[y*w+x], below
 * 1 << depth) with libpng: the engine's own writer makes RGB8 only. */
int fixture_write_grey_png(const char *path, int w, int h, int depth, const unsigned short *v);

#endif
