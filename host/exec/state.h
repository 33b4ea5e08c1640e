/* The executor's state, shared by host/exec/exec.c (the walk) and
 * host/exec/rules.c (the node rules' calls). Private to host/exec. */
#ifndef ATTRIB_EXEC_STATE_H
#define ATTRIB_EXEC_STATE_H

#include "exec/graph.h"
#include "exec/ops.h"

#define ARENA_ALIGN 256
#define MAX_BATCH 256
#define MAX_IN_C 64

/* Sub-buffers of the arena for one call. */
typedef struct {
    float *rows;       /* [n_rows][C][H][W] when gathered */
    int *index;        /* [n] */
    float *masks;      /* [n][mask_hw] */
    float *lohi;       /* [n][2] */
    float *gates;      /* [gate_rows][n_gates] */
    float *patch;      /* [n][C] channel scales */
    float *input;      /* [n][C][H][W] the network input as fed */
    float *kept;       /* keep: every layer's output */
    float *slots;      /* n_slots x [n][max layer]: a forward-only pass's outputs, or a backward's gradients */
    float *grad_gates; /* keep: [n][n_gates] */
    size_t bytes;
} arena_plan;

typedef struct {
    int n, n_rows;
    long mask_hw;
    int gate_rows, keep, gated_keep, gathered, patch_channels, keep_pre;
} call_shape;

typedef struct exec_extra_conv exec_extra_conv; /* host/exec/extra_conv.c */

typedef struct {
    const at_model *m;
    exec_graph g;
    int n_slots;
    size_t max_layer; /* floats per item of the largest tensor a pass holds (the input included) */
    const at_ops *ops;
    void *ctx;
    size_t mem_limit;
    at_precision precision, prec;
    void **conv, **lin; /* [n_layers] prepared parameters */
    float mean_over_std[MAX_IN_C];
    float *d_mean_over_std; /* the same in backend memory, for fused masking */
    void *arena;
    size_t arena_bytes;
    /* the last forward kept for backward */
    arena_plan kp;
    float **out, **aux; /* [n_layers]: outputs (aliases as above); gated ReLU: relu(z) */
    const float *kept_gates;
    int kept_gate_stride, kept_n, kept_valid, kept_first, kept_last;
    /* host scratch: distinct input rows */
    int *row_src, *row_slot;
    int row_cap;
    int *held; /* [n_layers + 1] the backward's gradient buffer of each node */
    /* node rules: parameters prepared with transformed weights and biases on
     * first use ([n_layers][3][4] handles, and the host arrays behind them),
     * and the rules' scratch buffers */
    void **tparams;
    float *tgamma; /* the gamma each gamma-transformed slot was prepared with */
    float rule_gamma;
    float **thost;
    int n_thost, thost_cap;
    float *rule_scratch;
    size_t rule_scratch_floats;
    exec_extra_conv *extra; /* convolutions outside the model (at_extra_conv) */
} exec_state;


static inline long at_exec_input_floats(const at_model *m) { return (long)m->in_c * m->in_h * m->in_w; }

/* The node rules' call (host/exec/rules.c). */
struct at_rule_call {
    exec_state *s;
    int node, n;
    const float *input, *signal;
    float *result;
    const float *input2; /* an add's second operand and its result */
    float *result2;
};
int at_exec_rule_scratch_ready(exec_state *s, int n);
void at_exec_rules_free(exec_state *s);
void at_exec_extra_free(exec_state *s);

#endif
