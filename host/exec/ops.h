/* What a backend implements: ops on buffers it owns, and nothing that knows
 * the network. The executor (host/exec/exec.c) walks the model and calls
 * these; methods and the CLI see only host/exec/backend.h (the
 * ggml-backend-impl.h pattern: this header is private to host/exec and the
 * backends). Every pointer below is a backend buffer ("device memory")
 * unless it says host; tensors are NCHW float32; every function returns
 * AT_OK, or AT_ERR with a message naming the op. */
#ifndef ATTRIB_EXEC_OPS_H
#define ATTRIB_EXEC_OPS_H

#include <stddef.h>

#include "exec/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Network inputs of n items from input rows, optionally masked
 * (docs/methods.md, Score-CAM masking; host/cpu/masks.c is the reference). */
typedef struct {
    const float *rows;        /* [n_rows][C][H][W] */
    const int *index;         /* [n] row of each item, or NULL (item b reads row b) */
    const float *masks;       /* [n][mh][mw], or NULL (a gather copy) */
    int mh, mw, align_corners;
    at_mask_norm norm;
    at_mask_space space;
    const float *mean_over_std; /* host, [C]: AT_MASK_UNIT's mean[c]/std[c] */
    float *lohi;              /* scratch [n][2] */
    int n, C, H, W;
    int mask_only;            /* write each item's final mask [n][H][W] for a conv that fuses masking */
    float *out;               /* [n][C][H][W], or [n][H][W] with mask_only */
} at_inputs_call;

/* One convolution of a prepared layer, with its epilogue: z = conv(x) + b
 * (+ residual, a residual add's other operand, when not NULL), and with
 * relu: keep = relu(z) (when keep is not NULL), y = gate * relu(z); without
 * relu (a conv before a residual add): keep = z, y = gate * z. residual
 * never overlaps y. */
typedef struct {
    const float *x;
    float *y;
    const float *residual;
    int n;
    int relu;
    const float *gates;       /* this layer's first gate of item 0, or NULL (ones) */
    int gate_stride;          /* floats between items' gate rows; 0: one shared row */
    float *keep;
    /* fused masking, only where at_ops.fuses_input_masks: item b reads row
     * row_index[b] of rows and multiplies it by its mask [H][W] as it loads */
    const float *rows;
    const int *row_index;
    const float *mask;
    const float *ms;          /* [C] mean/std per channel in AT_MASK_UNIT space, else NULL */
} at_conv_call;

typedef struct at_ops {
    const char *name;
    int fuses_input_masks;
    /* Most items a batch should hold (0: as many as memory allows): the CPU
     * gains nothing from more than its caches keep between layers. */
    int batch_cap;
    /* whether conv2d_forward takes at_conv_call.residual (else the executor runs the add) */
    int fuses_residual_add;
    /* memory */
    void *(*alloc)(void *ctx, size_t bytes, const char *what); /* NULL + message when out of memory */
    void (*release)(void *ctx, void *p);
    size_t (*available)(void *ctx);                            /* bytes it may still allocate */
    size_t (*in_use)(void *ctx);                               /* bytes allocated now */
    int (*upload)(void *ctx, void *dst, const void *host, size_t bytes);
    int (*download)(void *ctx, void *host, const void *src, size_t bytes);
    int (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    int (*zero)(void *ctx, void *dst, size_t bytes);
    int (*finish)(void *ctx); /* waits for everything enqueued; reports what failed */
    /* the precision of the following ops (AT_ERR when the device cannot) */
    int (*set_precision)(void *ctx, at_precision p);
    /* parameters, prepared once (host arrays in, a handle out) */
    int (*prepare_conv)(void *ctx, const float *w, const float *b, int K, int C, int k, int stride, int pad, int H,
                        int W, void **handle);
    int (*prepare_linear)(void *ctx, const float *w, const float *b, int out, int in, void **handle);
    /* ops */
    int (*make_inputs)(void *ctx, const at_inputs_call *a);
    int (*conv2d_forward)(void *ctx, void *conv, const at_conv_call *c);
    int (*conv2d_backward_data)(void *ctx, void *conv, const float *dy, int n, float *dx);
    int (*linear_forward)(void *ctx, void *lin, const float *x, int n, float *y);
    int (*linear_backward_data)(void *ctx, void *lin, const float *dy, int n, float *dx);
    int (*gated_relu_forward)(void *ctx, float *y, int N, int C, long HW, const float *gates, int gate_stride,
                              float *keep);
    /* dz (may alias dy) under the rule; dgate[n*dgate_stride + c] = sum dy*a when not NULL */
    int (*relu_backward)(void *ctx, at_relu_rule rule, const float *dy, const float *a, int N, int C, long HW,
                         const float *gates, int gate_stride, float *dz, float *dgate, int dgate_stride);
    /* a gate with no ReLU after it: y = g*y in place, keep = y before (or NULL);
     * backward dz = g*dy (may alias dy), dgate[n*dgate_stride + c] = sum dy*z */
    int (*gate_forward)(void *ctx, float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep);
    int (*gate_backward)(void *ctx, const float *dy, const float *z, int N, int C, long HW, const float *gates,
                         int gate_stride, float *dz, float *dgate, int dgate_stride);
    int (*maxpool2d_forward)(void *ctx, const float *x, int N, int C, int H, int W, int k, int s, int p, float *y);
    int (*maxpool2d_backward)(void *ctx, const float *x, const float *dy, int N, int C, int H, int W, int k, int s, int p,
                              float *dx);
    int (*adaptive_avgpool_forward)(void *ctx, const float *x, int N, int C, int H, int W, int OH, int OW, float *y);
    int (*adaptive_avgpool_backward)(void *ctx, const float *dy, int N, int C, int H, int W, int OH, int OW,
                                     float *dx);
    int (*avgpool2d_forward)(void *ctx, const float *x, int N, int C, int H, int W, int k, int s, int p, float *y);
    int (*avgpool2d_backward)(void *ctx, const float *dy, int N, int C, int H, int W, int k, int s, int p, float *dx);
    /* softmax over each item's K features; backward from its output y */
    int (*softmax_forward)(void *ctx, const float *x, int N, long K, float *y);
    int (*softmax_backward)(void *ctx, const float *y, const float *dy, int N, long K, float *dx);
    /* y = a + b, a * b, a / b (0 where b is 0); n floats; y may alias a or b */
    int (*add)(void *ctx, const float *a, const float *b, long n, float *y);
    int (*mul)(void *ctx, const float *a, const float *b, long n, float *y);
    int (*div)(void *ctx, const float *a, const float *b, long n, float *y);
    /* the node rules' element-wise ops (LRP, docs/methods.md#lrp); y may alias an operand:
     * y = max(x, 0) (sign > 0) or min(x, 0) (sign < 0) */
    int (*clamp_sign)(void *ctx, const float *x, int sign, long n, float *y);
    /* y = a where sign * m > 0, else 0 */
    int (*select_sign)(void *ctx, const float *m, const float *a, int sign, long n, float *y);
    /* y = a / (b + eps * (b >= 0 ? 1 : -1)), zennit's stabiliser */
    int (*div_stabilized)(void *ctx, const float *a, const float *b, float eps, long n, float *y);
    /* y = alpha * a + beta * b */
    int (*axpby)(void *ctx, float alpha, const float *a, float beta, const float *b, long n, float *y);
    /* x[n][c][.] *= s[n*C + c] (activation patches) */
    int (*scale_channels)(void *ctx, float *x, int N, int C, long HW, const float *s);
    void (*destroy)(void *ctx);
} at_ops;

/* A backend's op table with a fresh context, for the op-level tests
 * (tests/test_ops.c): the CPU's always, CUDA's where a device is usable.
 * Close with ops->destroy(ctx). */
int at_cpu_ops_open(const at_ops **ops, void **ctx);
int at_cuda_ops_open(const at_ops **ops, void **ctx);

/* An executor over a backend's ops: the at_backend every caller uses. It
 * takes ownership of ctx (ops->destroy) also when it fails. */
int at_exec_create(const at_model *m, const at_ops *ops, void *ctx, const at_backend_options *opt,
                   double peak_flops, size_t mem_limit, at_backend **out);
void at_exec_destroy(at_backend *be);

#ifdef __cplusplus
}
#endif

#endif
