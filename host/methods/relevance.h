/* The relevance methods (docs/methods.md#excitation-backprop, #lrp, #fafrp):
 * excitation backprop and its contrastive form, LRP under its rules and
 * composites and CLRP, and forward-propagation attribution, written once
 * against the executor's node rules (host/exec/backend.h at_rule_*). */
#ifndef ATTRIB_METHODS_RELEVANCE_H
#define ATTRIB_METHODS_RELEVANCE_H

#include "methods/explain.h"

int at_lrp_rule_parse(const char *name, at_lrp_rule *out);
const char *at_lrp_rule_name(at_lrp_rule r);

/* EB's read-out and c-EB's contrast layer indices for these options (the
 * defaults, or the named modules); AT_ERR naming the layer or contrast layer. */
int at_relevance_layers(const at_model *m, const at_explain_options *opt, int *readout, int *contrast);

/* Floats per image of the raw signal: eb and c-eb the read-out layer's
 * h x w, the others the input's H x W. */
long at_relevance_raw_floats(const at_model *m, const at_explain_options *opt);

/* As at_explain for the relevance methods; raw (optional, [n][raw floats])
 * receives each image's signed signal before the final stage: the channel
 * sum of P at the read-out (eb; c-eb before max(0, .)), of the input
 * relevance (lrp, clrp), or V (fafrp). */
int at_relevance_run(at_backend *be, const at_explain_options *opt, const float *inputs, int n,
                     at_explain_result *r, float *raw);

#endif
