/* Scoring each channel of a layer by a forward of the input masked with that
 * channel's normalised, upsampled activation: Score-CAM's channel scores and
 * Score-CDRP's CIC scores (docs/methods.md#score-cam, #score-cdrp). */
#ifndef ATTRIB_CHANNEL_SCORES_H
#define ATTRIB_CHANNEL_SCORES_H

#include "exec/backend.h"

typedef struct {
    const float *input;            /* one image */
    const float *gates;            /* optional gate row for every forward */
    const at_precision *precision; /* NULL: the backend's */
    int align_corners;             /* how the masks are upsampled */
    at_mask_norm norm;             /* min-max before or after upsampling */
    int cls;                       /* the class scored */
    int logit;                     /* 1: its logit minus logit_offset; 0: its softmax probability */
    float logit_offset;
    int skip_flat;                 /* 1: a flat channel scores 0 with no forward (Score-CAM's authors) */
} at_channel_scoring;

/* scores[c] for the C channels of acts (C x h x w). A flat channel (a
 * constant map, whose mask is all zero) scores X o 0, forwarded once with the
 * first batch and kept in *zero_score (NaN: not yet forwarded) for the next
 * call on the same image. flat[c] (optional) tells which were flat;
 * *forwards grows by the forwards spent. */
int at_channel_scores(at_backend *be, const at_channel_scoring *s, const float *acts, int C, int h, int w,
                      float *zero_score, float *scores, int *flat, long *forwards);

#endif
