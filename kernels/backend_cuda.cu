// The CUDA backend: the kernels of this folder behind the executor's op
// table (host/exec/ops.h), the twin of host/cpu/backend_cpu.c. The executor
// walks the network; this file only runs ops on device buffers. Everything
// runs on one stream; the executor's finish() synchronises at the end of each
// call, so errors surface in the call that caused them.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <new>

#include "backend_cuda.cuh"

// FP32 lanes per SM by compute capability, for the peak estimate.
static int fp32_lanes_per_sm(int major, int minor) {
    switch (major) {
    case 3: return 192;
    case 5: return 128;
    case 6: return minor == 0 ? 64 : 128;
    case 7: return 64;
    case 8: return minor == 0 ? 64 : 128;
    default: return 128; // 9.x, 10.x, 12.x
    }
}

// Dense TF32 tensor-core FLOP per SM per clock (A100 1024, H100 2048,
// GeForce Ampere/Ada 256 with FP32 accumulation); an estimate for % of peak.
static int tf32_flops_per_sm_clock(int major, int minor) {
    if (major == 8) return minor == 0 ? 1024 : 256;
    if (major == 9 || major == 10) return 2048;
    if (major >= 11) return 256;
    return 0;
}

extern "C" int at_cuda_available(char *why, size_t cap) {
    char dummy[8];
    if (!why || !cap) why = dummy, cap = sizeof dummy;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        snprintf(why, cap, "no CUDA device: %s", err != cudaSuccess ? cudaGetErrorString(err) : "none found");
        cudaGetLastError(); // clear the error for later calls
        return 0;
    }
    int dev = 0;
    cudaDeviceProp p;
    if ((err = cudaGetDevice(&dev)) != cudaSuccess || (err = cudaGetDeviceProperties(&p, dev)) != cudaSuccess) {
        snprintf(why, cap, "CUDA device unusable: %s", cudaGetErrorString(err));
        cudaGetLastError();
        return 0;
    }
    int arch = 0;
    if ((err = at_cuda_built_arch(&arch)) != cudaSuccess) {
        snprintf(why, cap, "%s (compute capability %d.%d) cannot run this build's kernels (%s); rebuild with "
                 "make CUDA_ARCH=%d%d", p.name, p.major, p.minor, cudaGetErrorString(err), p.major, p.minor);
        return 0;
    }
    snprintf(why, cap, "%s (compute capability %d.%d, kernels for sm_%d)", p.name, p.major, p.minor, arch / 10);
    return 1;
}


static int check_precision(const cuda_state *s, at_precision p) {
    const int cc = s->cc_major * 10 + s->cc_minor;
    switch (p) {
    case AT_PRECISION_FP32: return AT_OK;
    case AT_PRECISION_TF32:
        if (cc < 80)
            return at_fail("precision", "tf32 needs tensor cores of compute capability 8.0 or newer; %s is %d.%d: "
                           "use fp32", s->device_name, s->cc_major, s->cc_minor);
        if (s->built_arch < 800)
            return at_fail("precision", "tf32: this build's kernels target sm_%d, without TF32 tensor cores; "
                           "rebuild with make CUDA_ARCH=%d", s->built_arch / 10, cc);
        return AT_OK;
    case AT_PRECISION_FP16:
        if (cc < 70)
            return at_fail("precision", "fp16 needs tensor cores of compute capability 7.0 or newer (on %s, %d.%d, "
                           "it runs at a fraction of fp32); use fp32", s->device_name, s->cc_major,
                           s->cc_minor);
        return at_fail("precision", "fp16 is not implemented by the CUDA backend yet; use fp32 or tf32");
    }
    return at_fail("precision", "unknown precision %d", (int)p);
}


// ---- the op table --------------------------------------------------------

#define S(ctx) (static_cast<cuda_state *>(ctx))

static void *op_alloc(void *ctx, size_t bytes, const char *what) { return at_cuda_alloc(S(ctx), bytes, what); }
static void op_release(void *ctx, void *p) { at_cuda_release(S(ctx), p); }
static size_t op_available(void *ctx) { return at_cuda_available(S(ctx)); }
static size_t op_in_use(void *ctx) { return S(ctx)->allocated; }
static int op_upload(void *ctx, void *dst, const void *host, size_t bytes) { return at_cuda_upload(S(ctx), dst, host, bytes); }
static int op_download(void *ctx, void *host, const void *src, size_t bytes) {
    return at_cuda_download(S(ctx), host, src, bytes);
}
static int op_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, S(ctx)->stream));
    return AT_OK;
}
static int op_zero(void *ctx, void *dst, size_t bytes) {
    CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, S(ctx)->stream));
    return AT_OK;
}
static int op_finish(void *ctx) {
    CUDA_CHECK(cudaStreamSynchronize(S(ctx)->stream));
    return AT_OK;
}

// This call's precision: conv kernels follow s->prec, cuBLAS its math mode.
static int op_set_precision(void *ctx, at_precision p) {
    cuda_state *s = S(ctx);
    if (check_precision(s, p)) return AT_ERR;
    CUBLAS_CHECK(cublasSetMathMode(s->blas, p == AT_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    s->prec = p;
    return AT_OK;
}

static int op_prepare_conv(void *ctx, const float *w, const float *b, int K, int C, int k, int stride, int pad, int H,
                           int W, void **handle) {
    const long lim = 0x7fffffffL;
    if (k < 1 || k > 255 || stride < 1 || pad < 0 || (long)C * k * k * K > lim || (long)C * H * W > lim)
        return at_fail("cuda", "convolution %dx%d/%d pad %d with %d -> %d channels on %dx%d is not supported", k, k,
                       stride, pad, C, K, H, W);
    conv_dev *c = NULL;
    if (at_cuda_prepare_conv(S(ctx), w, b, K, C, k, stride, pad, H, W, &c)) return AT_ERR;
    *handle = c;
    return AT_OK;
}

static int op_prepare_linear(void *ctx, const float *w, const float *b, int out, int in, void **handle) {
    linear_dev *l = NULL;
    if (at_cuda_prepare_linear(S(ctx), w, b, out, in, &l)) return AT_ERR;
    *handle = l;
    return AT_OK;
}

static int op_make_inputs(void *ctx, const at_inputs_call *a) {
    if (a->C > AT_GPU_MAX_IN_C) return at_fail("cuda", "masked inputs of %d channels (at most %d)", a->C, AT_GPU_MAX_IN_C);
    at_mask_inputs mi;
    memset(&mi, 0, sizeof mi);
    mi.rows = a->rows, mi.input_index = a->index, mi.masks = a->masks;
    mi.mh = a->mh, mi.mw = a->mw, mi.align_corners = a->align_corners, mi.norm = a->norm, mi.space = a->space;
    for (int c = 0; c < a->C; c++) mi.mean_over_std[c] = a->mean_over_std ? a->mean_over_std[c] : 0.0f;
    mi.lohi = a->lohi;
    mi.n = a->n, mi.C = a->C, mi.H = a->H, mi.W = a->W;
    mi.mask_only = a->mask_only;
    mi.out = a->out;
    return at_make_inputs_gpu(&mi, S(ctx)->stream);
}

static int op_conv2d_forward(void *ctx, void *conv, const at_conv_call *c) {
    cuda_state *s = S(ctx);
    at_conv_gemm g = static_cast<conv_dev *>(conv)->fwd;
    g.x = c->x, g.y = c->y, g.N = c->n;
    if (c->mask) g.x = c->rows, g.row_index = c->row_index, g.mask = c->mask, g.ms = c->ms;
    if (!c->residual) {
        g.relu = c->relu, g.gates = c->gates, g.gate_stride = c->gate_stride, g.keep = c->keep;
        return at_conv2d_gemm_gpu(&g, s->prec, s->n_sm, s->stream);
    }
    /* a residual add before the epilogue: the conv, the add, then the ReLU or gate kernels */
    const long hw = (long)g.Ho * g.Wo, n = (long)c->n * g.M * hw;
    g.relu = 0, g.gates = NULL, g.keep = NULL;
    if (at_conv2d_gemm_gpu(&g, s->prec, s->n_sm, s->stream) ||
        at_add_forward_gpu(c->y, c->residual, n, c->y, s->stream))
        return AT_ERR;
    if (c->relu) return at_gated_relu_forward_gpu(c->y, c->n, g.M, hw, c->gates, c->gate_stride, c->keep, s->stream);
    if (c->gates || c->keep) return at_gate_forward_gpu(c->y, c->n, g.M, hw, c->gates, c->gate_stride, c->keep, s->stream);
    return AT_OK;
}

static int op_conv2d_backward_data(void *ctx, void *conv, const float *dy, int n, float *dx) {
    cuda_state *s = S(ctx);
    const conv_dev *c = static_cast<conv_dev *>(conv);
    if (c->bwd.a) {
        at_conv_gemm g = c->bwd;
        g.x = dy, g.y = dx, g.N = n;
        return at_conv2d_gemm_gpu(&g, s->prec, s->n_sm, s->stream);
    }
    const at_conv_gemm &f = c->fwd;
    return at_conv2d_backward_data_direct_gpu(dy, n, f.C, f.H, f.W, f.a, f.M, f.kernel, f.stride, f.pad, f.Ho, f.Wo, dx,
                                              s->stream);
}

static int op_linear_forward(void *ctx, void *lin, const float *x, int n, float *y) {
    const linear_dev *l = static_cast<linear_dev *>(lin);
    return at_linear_forward_gpu(S(ctx)->blas, x, n, l->in, l->w, l->b, l->out, y, S(ctx)->stream);
}

static int op_linear_backward_data(void *ctx, void *lin, const float *dy, int n, float *dx) {
    const linear_dev *l = static_cast<linear_dev *>(lin);
    return at_linear_backward_data_gpu(S(ctx)->blas, dy, n, l->in, l->w, l->out, dx, S(ctx)->stream);
}

static int op_gated_relu_forward(void *ctx, float *y, int N, int C, long HW, const float *gates, int gate_stride,
                                 float *keep) {
    return at_gated_relu_forward_gpu(y, N, C, HW, gates, gate_stride, keep, S(ctx)->stream);
}

static int op_relu_backward(void *ctx, at_relu_rule rule, const float *dy, const float *a, int N, int C, long HW,
                            const float *gates, int gate_stride, float *dz, float *dgate, int dgate_stride) {
    return at_relu_backward_rule_gpu((int)rule, dy, a, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride,
                                     S(ctx)->stream);
}

static int op_gate_forward(void *ctx, float *y, int N, int C, long HW, const float *gates, int gate_stride, float *keep) {
    return at_gate_forward_gpu(y, N, C, HW, gates, gate_stride, keep, S(ctx)->stream);
}
static int op_gate_backward(void *ctx, const float *dy, const float *z, int N, int C, long HW, const float *gates,
                            int gate_stride, float *dz, float *dgate, int dgate_stride) {
    return at_gate_backward_gpu(dy, z, N, C, HW, gates, gate_stride, dz, dgate, dgate_stride, S(ctx)->stream);
}
static int op_maxpool2d_forward(void *ctx, const float *x, int N, int C, int H, int W, int k, int st, int p,
                                float *y) {
    return at_maxpool2d_forward_gpu(x, N, C, H, W, k, st, p, y, S(ctx)->stream);
}
static int op_maxpool2d_backward(void *ctx, const float *x, const float *dy, int N, int C, int H, int W, int k, int st,
                                 int p, float *dx) {
    return at_maxpool2d_backward_gpu(x, dy, N, C, H, W, k, st, p, dx, S(ctx)->stream);
}
static int op_adaptive_avgpool_forward(void *ctx, const float *x, int N, int C, int H, int W, int OH, int OW,
                                       float *y) {
    return at_adaptive_avgpool_forward_gpu(x, N, C, H, W, OH, OW, y, S(ctx)->stream);
}
static int op_adaptive_avgpool_backward(void *ctx, const float *dy, int N, int C, int H, int W, int OH, int OW,
                                        float *dx) {
    return at_adaptive_avgpool_backward_gpu(dy, N, C, H, W, OH, OW, dx, S(ctx)->stream);
}
static int op_avgpool2d_forward(void *ctx, const float *x, int N, int C, int H, int W, int k, int st, int p, float *y) {
    return at_avgpool2d_forward_gpu(x, N, C, H, W, k, st, p, y, S(ctx)->stream);
}
static int op_avgpool2d_backward(void *ctx, const float *dy, int N, int C, int H, int W, int k, int st, int p,
                                 float *dx) {
    return at_avgpool2d_backward_gpu(dy, N, C, H, W, k, st, p, dx, S(ctx)->stream);
}
static int op_softmax_forward(void *ctx, const float *x, int N, long K, float *y) {
    return at_softmax_forward_gpu(x, N, K, y, S(ctx)->stream);
}
static int op_softmax_backward(void *ctx, const float *y, const float *dy, int N, long K, float *dx) {
    return at_softmax_backward_gpu(y, dy, N, K, dx, S(ctx)->stream);
}
static int op_add(void *ctx, const float *a, const float *b, long n, float *y) {
    return at_add_forward_gpu(a, b, n, y, S(ctx)->stream);
}
static int op_mul(void *ctx, const float *a, const float *b, long n, float *y) {
    return at_mul_forward_gpu(a, b, n, y, S(ctx)->stream);
}
static int op_div(void *ctx, const float *a, const float *b, long n, float *y) {
    return at_div_forward_gpu(a, b, n, y, S(ctx)->stream);
}
static int op_clamp_sign(void *ctx, const float *x, int sign, long n, float *y) {
    return at_clamp_sign_forward_gpu(x, sign, n, y, S(ctx)->stream);
}
static int op_select_sign(void *ctx, const float *m, const float *a, int sign, long n, float *y) {
    return at_select_sign_forward_gpu(m, a, sign, n, y, S(ctx)->stream);
}
static int op_div_stabilized(void *ctx, const float *a, const float *b, float eps, long n, float *y) {
    return at_div_stabilized_forward_gpu(a, b, eps, n, y, S(ctx)->stream);
}
static int op_axpby(void *ctx, float alpha, const float *a, float beta, const float *b, long n, float *y) {
    return at_axpby_forward_gpu(alpha, a, beta, b, n, y, S(ctx)->stream);
}
static int op_scale_channels(void *ctx, float *x, int N, int C, long HW, const float *sc) {
    return at_scale_channels_gpu(x, N, C, HW, sc, S(ctx)->stream);
}

static void op_destroy(void *ctx) {
    cuda_state *s = S(ctx);
    if (!s) return;
    if (s->stream) cudaStreamSynchronize(s->stream);
    for (const cuda_alloc &a : s->allocs) cudaFree(a.p);
    if (s->pinned) cudaFreeHost(s->pinned);
    for (int h = 0; h < 2; h++)
        if (s->staged[h]) cudaEventDestroy(s->staged[h]);
    if (s->blas) cublasDestroy(s->blas);
    if (s->stream) cudaStreamDestroy(s->stream);
    cudaGetLastError();
    for (conv_dev *c : s->convs) delete c;
    for (linear_dev *l : s->lins) delete l;
    delete s;
}

static at_ops make_cuda_ops() {
    at_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.fuses_input_masks = 1;
    o.alloc = op_alloc, o.release = op_release, o.available = op_available, o.in_use = op_in_use;
    o.upload = op_upload, o.download = op_download, o.copy = op_copy, o.zero = op_zero, o.finish = op_finish;
    o.set_precision = op_set_precision;
    o.prepare_conv = op_prepare_conv, o.prepare_linear = op_prepare_linear;
    o.make_inputs = op_make_inputs;
    o.conv2d_forward = op_conv2d_forward, o.conv2d_backward_data = op_conv2d_backward_data;
    o.linear_forward = op_linear_forward, o.linear_backward_data = op_linear_backward_data;
    o.gated_relu_forward = op_gated_relu_forward, o.relu_backward = op_relu_backward;
    o.gate_forward = op_gate_forward, o.gate_backward = op_gate_backward;
    o.maxpool2d_forward = op_maxpool2d_forward, o.maxpool2d_backward = op_maxpool2d_backward;
    o.adaptive_avgpool_forward = op_adaptive_avgpool_forward, o.adaptive_avgpool_backward = op_adaptive_avgpool_backward;
    o.avgpool2d_forward = op_avgpool2d_forward, o.avgpool2d_backward = op_avgpool2d_backward;
    o.softmax_forward = op_softmax_forward, o.softmax_backward = op_softmax_backward;
    o.fuses_residual_add = 1;
    o.add = op_add, o.mul = op_mul, o.div = op_div;
    o.clamp_sign = op_clamp_sign, o.select_sign = op_select_sign, o.div_stabilized = op_div_stabilized;
    o.axpby = op_axpby;
    o.scale_channels = op_scale_channels;
    o.destroy = op_destroy;
    return o;
}
static at_ops cuda_ops = make_cuda_ops();


// The masks fused into the first conv (ATTRIB_CUDA_FUSED_MASKS=0: the separate
// masking kernel, for comparisons).
static at_ops cuda_ops_unfused = [] {
    at_ops o = make_cuda_ops();
    o.fuses_input_masks = 0;
    return o;
}();

static int cuda_init(cuda_state *s, const at_backend_options *opt) {
    s->mem_limit = opt && opt->mem_limit ? opt->mem_limit : AT_CUDA_DEFAULT_MEM_LIMIT;
    s->prec = AT_PRECISION_FP32;
    CUDA_CHECK(cudaGetDevice(&s->device));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, s->device));
    snprintf(s->device_name, sizeof s->device_name, "%s", prop.name);
    s->cc_major = prop.major, s->cc_minor = prop.minor, s->n_sm = prop.multiProcessorCount;
    CUDA_CHECK(at_cuda_built_arch(&s->built_arch));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&s->blas));
    CUBLAS_CHECK(cublasSetStream(s->blas, s->stream));
    CUDA_CHECK(cudaHostAlloc((void **)&s->pinned, 2 * AT_CUDA_STAGE_BYTES, cudaHostAllocDefault));
    for (int h = 0; h < 2; h++) CUDA_CHECK(cudaEventCreateWithFlags(&s->staged[h], cudaEventDisableTiming));
    return AT_OK;
}

extern "C" int at_cuda_ops_open(const at_ops **ops, void **ctx) {
    *ops = NULL, *ctx = NULL;
    char why[256];
    if (!at_cuda_available(why, sizeof why)) return at_fail("cuda", "%s", why);
    cuda_state *s = new (std::nothrow) cuda_state();
    if (!s) return at_fail("cuda", "out of host memory");
    if (cuda_init(s, NULL) || op_set_precision(s, AT_PRECISION_FP32)) {
        op_destroy(s);
        return AT_ERR;
    }
    *ops = &cuda_ops, *ctx = s;
    return AT_OK;
}

extern "C" int at_cuda_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out) {
    *out = NULL;
    char why[256];
    if (opt && opt->conv >= AT_CONV_WINOGRAD)
        return at_fail("conv algorithm", "winograd is a CPU path; the CUDA backend runs direct convs (use direct or auto)");
    if (!at_cuda_available(why, sizeof why)) return at_fail("backend", "cuda: %s; use cpu", why);
    cuda_state *s = new (std::nothrow) cuda_state();
    if (!s) return at_fail("cuda", "out of host memory");
    const char *fuse = getenv("ATTRIB_CUDA_FUSED_MASKS");
    const at_ops *ops = fuse && !strcmp(fuse, "0") ? &cuda_ops_unfused : &cuda_ops;
    const at_precision prec = opt ? opt->precision : AT_PRECISION_FP32;
    if (cuda_init(s, opt) || check_precision(s, prec)) {
        op_destroy(s);
        return AT_ERR;
    }
    int clock_khz = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, s->device) != cudaSuccess) {
        cudaGetLastError();
        clock_khz = 0;
    }
    const double per_sm_clock = prec == AT_PRECISION_TF32 ? tf32_flops_per_sm_clock(s->cc_major, s->cc_minor)
                                                          : 2.0 * fp32_lanes_per_sm(s->cc_major, s->cc_minor);
    const double peak = (double)s->n_sm * clock_khz * 1e3 * per_sm_clock;
    return at_exec_create(m, ops, s, opt, peak, s->mem_limit, out);
}
