/* Deterministic random VGG and ResNet models for tests and benchmarks: every tensor is
 * drawn from SplitMix64 seeded by its name (tools/prng.py is the identical
 * Python twin), so goldens never need committed weights. */
#ifndef ATTRIB_RANDOM_MODEL_H
#define ATTRIB_RANDOM_MODEL_H

#include <stdint.h>

#include "model/model.h"

typedef struct {
    const char *arch;     /* vgg11/13/16/19 with optional _bn, or resnet18/34/50/101/152 */
    int widths[16];       /* VGG: output channels of each conv, network order; ResNet: the stem's
                           * width, then each stage's planes (torchvision: 64, 64, 128, 256, 512) */
    int hidden[2];        /* classifier hidden sizes */
    int n_classes;
    int in_h, in_w;
    int avgpool;
    uint64_t seed;
} at_random_spec;

/* Fills out[0..n) with offset + scale*(2u-1), u uniform in [0,1) with 24 bits,
 * from SplitMix64 seeded with fnv1a64(name) ^ seed. */
void at_prng_fill(const char *name, uint64_t seed, float *out, long n, float scale, float offset);

/* Standard normal deviates offset..offset+n-1 of the stream seeded like
 * at_prng_fill: deviate k is Box-Muller (cos branch, in double) of draws 2k
 * and 2k+1, u1 = (bits + 0.5) 2^-24, u2 = bits 2^-24 (tools/prng.py normal). */
void at_prng_normal(const char *name, uint64_t seed, long offset, float *out, long n);

/* torchvision VGG16 widths (64,64,128,...) for the arch's conv count. */
void at_random_spec_standard(at_random_spec *spec, const char *arch, int in_hw, int n_classes);

int at_random_model(const at_random_spec *spec, at_model **out);

#endif
