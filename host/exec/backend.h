/* The backend interface: whole-network batched passes that methods and
 * metrics call without knowing which device runs them (ggml-backend style).
 * Every call takes a batch of (input, mask, gates) triples so a backend can
 * fuse mask generation into the first conv and run many problems at once.
 * Tensors are NCHW float32 in host memory unless stated otherwise. */
#ifndef ATTRIB_BACKEND_H
#define ATTRIB_BACKEND_H

#include <stddef.h>

#include "model/model.h"

typedef enum {
    AT_MASK_NORMALIZED = 0, /* x' = x * m on the normalised tensor (Score-CAM authors, pgc) */
    AT_MASK_UNIT = 1,       /* x' = norm(unnorm(x) * m): masking the [0,1] image (docs/methods.md#average-drop-and-increase-in-confidence, mult) */
} at_mask_space;

typedef enum {
    AT_MASK_RAW = 0,          /* use the mask values as given */
    AT_MASK_MINMAX_AFTER = 1, /* s(Up(M)): min-max after upsampling (authors, pgc) */
    AT_MASK_MINMAX_BEFORE = 2 /* Up(s(M)): min-max before upsampling (torchcam) */
} at_mask_norm;

typedef enum { AT_PRECISION_FP32 = 0, AT_PRECISION_TF32 = 1, AT_PRECISION_FP16 = 2 } at_precision;

/* A node's output changed before the network goes on (activation patches). */
typedef enum {
    AT_PATCH_NONE = 0,
    AT_PATCH_REPLACE = 1,       /* the output becomes patch, [n][out_c][out_h][out_w] */
    AT_PATCH_SCALE_CHANNELS = 2 /* channel c of item b is multiplied by patch[b][c], [n][out_c] */
} at_patch_mode;

/* The rule a backward pass applies at each ReLU (docs/methods.md): the
 * gradient, guided backprop (max(g,0) where z > 0), deconvnet (max(g,0)). */
typedef enum { AT_RELU_GRADIENT = 0, AT_RELU_GUIDED = 1, AT_RELU_DECONVNET = 2 } at_relu_rule;

/* A node rule: what a backward pass computes at a conv or linear node
 * instead of the gradient (excitation backprop, LRP). It reads the node's
 * input and the signal arriving at its output and writes the signal at its
 * input, combining the node's own op run with transformed parameters and
 * element-wise ops (host/exec/rules.c; the at_rule_* calls below). */
typedef struct at_rule_call at_rule_call;
typedef int (*at_node_rule)(at_rule_call *call, void *user);

/* Per op kind, the rule of a backward pass; zero is the plain gradient
 * everywhere. */
typedef struct {
    at_relu_rule relu;
    at_node_rule conv, linear; /* NULL: the gradient */
    at_node_rule pool;         /* max, average and adaptive average pools; NULL: the gradient */
    at_node_rule add;          /* residual adds (two inputs, two results); NULL: the gradient */
    float gamma;               /* the gamma of the W + gamma W+- transforms below */
    void *user;                /* handed to the node rules */
} at_backward_rules;

/* Parameters a node rule can run the node's op with: W, W+ = max(W, 0),
 * W- = min(W, 0), W + gamma W+, W + gamma W- (LRP's gamma rule); biases kept,
 * zeroed, b+, b-, b + gamma b+, b + gamma b-. */
typedef enum {
    AT_WEIGHTS = 0,
    AT_WEIGHTS_POSITIVE = 1,
    AT_WEIGHTS_NEGATIVE = 2,
    AT_WEIGHTS_GAMMA_POSITIVE = 3,
    AT_WEIGHTS_GAMMA_NEGATIVE = 4
} at_weight_transform;
typedef enum {
    AT_BIAS = 0,
    AT_BIAS_ZERO = 1,
    AT_BIAS_POSITIVE = 2,
    AT_BIAS_NEGATIVE = 3,
    AT_BIAS_GAMMA_POSITIVE = 4,
    AT_BIAS_GAMMA_NEGATIVE = 5
} at_bias_transform;
/* Scratch buffers a node rule may use, n x the largest layer each. */
#define AT_RULE_SCRATCH 6

typedef struct {
    int n;                  /* batch items */
    const float *input;     /* [n_inputs][C][H][W], normalised network input */
    const int *input_index; /* [n] input row of each item; NULL: item b uses input row b */

    /* Optional per-item masks, broadcast over colour channels (docs/methods.md#score-cam, #average-drop-and-increase-in-confidence). */
    const float *masks;     /* [n][mask_h][mask_w] or NULL */
    int mask_h, mask_w;     /* bilinear-upsampled to H x W when smaller */
    int mask_align_corners; /* 0: align_corners=False (authors, torchcam); 1: pgc */
    at_mask_norm mask_norm;
    at_mask_space mask_space;

    /* Optional gates (docs/methods.md#gated-network): y = gate * relu(conv(x) + b) per conv channel. */
    const float *gates;     /* [n or 1][model->n_gates] or NULL (all ones) */
    int gates_per_item;     /* 1: one row per item; 0: one row shared by all items */

    float *logits;          /* out [n][n_classes]; may be NULL when only captures are wanted */
    int n_capture;          /* layers whose outputs are copied out */
    const int *capture_layer;
    float **capture_out;    /* [n_capture] each [n][out_c][out_h][out_w] */
    int keep_for_backward;  /* keep what a following backward() needs */
    int keep_pre_activation; /* with keep_for_backward: keep each conv's output before its ReLU
                              * too (for node rules, at_rule_output); otherwise the ReLU works in place */
    /* NULL: the backend's precision; else this call's (and its backward's),
     * e.g. a faster CIC pass inside an FP32 explanation. */
    const at_precision *precision;

    /* A partial forward: when start_output is not NULL, layer start_layer's
     * output is given ([n][out_c][out_h][out_w], host) and the pass runs from
     * the layer after it (input, masks and input_index are then unused).
     * end_layer > 0 stops after layer end_layer - 1 (logits are then not
     * written); 0 runs to the end. */
    const float *start_output;
    int start_layer;
    int end_layer;
    /* An activation patch on layer patch_layer's output (see at_patch_mode). */
    at_patch_mode patch_mode;
    int patch_layer;
    const float *patch;
} at_forward_args;

typedef struct {
    const float *dlogits;   /* [n][n_classes]: dLoss/dlogit of each item (n as in the forward) */
    int grad_layer;         /* layer index whose output gradient is wanted, or -1 */
    float *grad_layer_out;  /* [n][out_c][out_h][out_w] */
    float *grad_gates;      /* [n][n_gates] (per item, even when the gates row was shared) or NULL */
    float *grad_input;      /* [n][C][H][W] gradient w.r.t. the (masked) network input, or NULL */
    /* When dfrom is not NULL the pass starts at layer from_layer's output
     * with that gradient ([n][out_c][out_h][out_w]) instead of dlogits. */
    int from_layer;
    const float *dfrom;
    at_backward_rules rules;
} at_backward_args;

/* A backend: the network executor (host/exec) over one device's ops. The
 * calls below validate their arguments once and run on any backend. */
typedef struct at_backend at_backend;
struct at_backend {
    const char *name;        /* "cpu", "cuda" */
    const at_model *model;
    at_precision precision;
    double peak_flops;       /* device FP32 (or chosen precision) peak, FLOP/s; CPU: 0 until at_cpu_peak_flops */
    void *impl;
    /* One line a front end may show, e.g. why "auto" chose the CPU; "" when
     * there is nothing to say. The library itself never prints. */
    char notice[384];
};

/* Runs the batch. AT_ERR with a message on failure (e.g. out of memory). */
int at_forward(at_backend *be, const at_forward_args *args);
/* Backward through the last forward that had keep_for_backward set. */
int at_backward(at_backend *be, const at_backward_args *args);
/* Largest batch the backend wants for forwards (with_backward: passes that
 * keep activations for a backward) within its memory limit. */
int at_max_batch(at_backend *be, int with_backward);
/* Inside a node rule: the node, the batch, and backend buffers (device
 * memory on a GPU) of its input [n][in], the signal at its output [n][out]
 * and the result at its input [n][in]; the output is the node's kept output
 * (for a conv followed by its ReLU, the ReLU's: pre-activations come from
 * at_rule_forward). Scratch buffers hold n x the largest layer each. At an
 * add, input2 and result2 are the second operand's, and the result aliases
 * the signal (read it before writing the result). */
const at_layer *at_rule_node(const at_rule_call *c);
int at_rule_items(const at_rule_call *c);
const float *at_rule_input(const at_rule_call *c);
const float *at_rule_input2(const at_rule_call *c);
float *at_rule_result2(at_rule_call *c);
/* 1 when the node reads the network input (LRP's first-layer rules). */
int at_rule_reads_network_input(const at_rule_call *c);
const float *at_rule_signal(const at_rule_call *c);
/* The node's kept output [n][out]: a conv's pre-activation when the forward
 * set keep_pre_activation, else (for a conv followed by its ReLU) the ReLU's. */
const float *at_rule_output(const at_rule_call *c);
float *at_rule_result(at_rule_call *c);
float *at_rule_scratch(at_rule_call *c, int k); /* k = 0 .. AT_RULE_SCRATCH - 1 */
/* The node's op on x with transformed parameters into y ([n][out]), and its
 * transpose (backward-data) with transformed weights, dy [n][out] -> dx [n][in].
 * At a pool the op is the pool (parameters ignored) and the transpose its
 * backward (a max-pool's routes by the node's own input). */
int at_rule_forward(at_rule_call *c, at_weight_transform w, at_bias_transform b, const float *x, float *y);
int at_rule_transpose(at_rule_call *c, at_weight_transform w, const float *dy, float *dx);
/* y = a * b and y = a / b (0 where b is 0), n floats; y may alias a or b. */
int at_rule_multiply(at_rule_call *c, const float *a, const float *b, long n, float *y);
int at_rule_divide(at_rule_call *c, const float *a, const float *b, long n, float *y);
/* y = max(x, 0) (sign > 0) or min(x, 0); y = a where sign * m > 0, else 0;
 * y = a / (b + eps sign(b)), sign(0) = +1; y = alpha a + beta b; n floats, y may alias. */
int at_rule_clamp(at_rule_call *c, const float *x, int sign, long n, float *y);
int at_rule_select(at_rule_call *c, const float *m, const float *a, int sign, long n, float *y);
int at_rule_divide_stabilized(at_rule_call *c, const float *a, const float *b, float eps, long n, float *y);
int at_rule_axpby(at_rule_call *c, float alpha, const float *a, float beta, const float *b, long n, float *y);
/* Host floats into a backend buffer (constant inputs such as LRP's z^B bounds). */
int at_rule_upload(at_rule_call *c, const float *host, long n, float *dst);

/* y = conv(x) + b (stride 1, no ReLU) with parameters that are not the
 * model's, e.g. L-CAM's 1x1 head (docs/methods.md#l-cam): w [K][C][k][k],
 * b [K], host x [n][C][H][W] -> host y [n][K][H+2pad-k+1][W+2pad-k+1], on
 * the backend's conv op at its precision. Each distinct parameter set is
 * prepared on first use and kept (a copy) until the backend is destroyed. */
int at_extra_conv(at_backend *be, const float *w, const float *b, int K, int C, int k, int pad, const float *x, int n,
                  int H, int W, float *y);

/* Backend memory allocated now (weights, activation arena): on a GPU the
 * device memory the backend holds, the peak so far as the arena only grows. */
size_t at_memory_in_use(at_backend *be);

/* How the CPU backend runs 3x3 stride-1 convs (host/cpu/winograd.h): auto
 * and winograd run F(4x4,3x3), F(2x2,3x3) or the direct conv by the shape
 * rule at_winograd_rule at FP32 (winograd refuses the reduced precisions,
 * auto runs them direct); winograd2 and winograd4 force the tile wherever
 * Winograd applies. */
typedef enum { AT_CONV_AUTO = 0, AT_CONV_DIRECT, AT_CONV_WINOGRAD, AT_CONV_WINOGRAD2, AT_CONV_WINOGRAD4 } at_conv_algo;

typedef struct {
    const char *name;        /* "cpu", "cuda", "auto" */
    at_precision precision;  /* CPU: tf32 and fp16 are emulated (operands rounded), not faster */
    size_t mem_limit;        /* bytes the backend may plan for; 0 = default */
    int threads;             /* CPU threads; 0 = OpenMP default */
    at_conv_algo conv;       /* CPU only; the CUDA backend refuses winograd */
} at_backend_options;

int at_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out);
void at_backend_destroy(at_backend *be);

/* Implementations. */
int at_cpu_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out);
int at_cuda_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out);
/* 1 when a CUDA device is usable (0 when not built with CUDA or no device);
 * why receives a reason when 0. */
int at_cuda_available(char *why, size_t cap);

/* The CPU's FP32 peak in FLOP/s, measured on first call (and per thread
 * count) by an FMA probe as wide as the SGEMM (AVX-512 or AVX2) on all OpenMP
 * threads, ~0.1 s (host/cpu/peak.c). */
double at_cpu_peak_flops(void);
/* The probe's vector width: "AVX-512", "AVX2" or "scalar". */
const char *at_cpu_peak_isa(void);

const char *at_precision_name(at_precision p);
int at_precision_parse(const char *s, at_precision *out);

#endif
