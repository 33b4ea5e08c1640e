// The CUDA backend (host/backend.h): executes the model's layer list with the
// kernels of this folder, mirroring host/cpu/backend_cpu.c step by step —
// the same buffer aliasing (identity layers and the ReLU share their input's
// storage), the same kept outputs for backward, the same order of layers.
// One difference: a conv followed (through identity BN) by its ReLU runs as
// one launch whose epilogue applies bias, ReLU and the gates (docs/methods.md#gated-network), unless
// a capture asks for the pre-ReLU output in between.
// Everything runs on one stream; each call ends with a stream synchronise,
// so errors surface in the call that caused them.
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

// ---- forward ---------------------------------------------------------------

static int validate_forward(const at_model *m, const at_forward_args *a) {
    if (a->n < 1) return at_fail("forward", "batch size %d < 1", a->n);
    if (!a->input) return at_fail("forward", "no input");
    if (a->masks && (a->mask_h < 1 || a->mask_w < 1 || a->mask_h > m->in_h || a->mask_w > m->in_w))
        return at_fail("forward", "mask %dx%d must be between 1x1 and the input size %dx%d", a->mask_h, a->mask_w,
                       m->in_h, m->in_w);
    for (int i = 0; i < a->n_capture; i++) {
        if (a->capture_layer[i] < 0 || a->capture_layer[i] >= m->n_layers)
            return at_fail("forward", "capture layer %d out of range", a->capture_layer[i]);
        if (!a->capture_out || !a->capture_out[i]) return at_fail("forward", "capture %d has no output buffer", i);
    }
    for (int b = 0; a->input_index && b < a->n; b++)
        if (a->input_index[b] < 0) return at_fail("forward", "input index %d of item %d < 0", a->input_index[b], b);
    return AT_OK;
}

// The distinct input rows the items read, in order of first use, and each
// item's slot among them: only those rows go to the device (Score-CAM's 512
// masks of one image upload one row).
struct row_map {
    int n_rows;     // distinct rows
    int *src;       // [n_rows] input row of each slot
    int *slot;      // [n] slot of each item
};

static int map_rows(const at_forward_args *a, row_map *r) {
    r->n_rows = 0;
    r->src = (int *)malloc(sizeof(int) * a->n);
    r->slot = (int *)malloc(sizeof(int) * a->n);
    if (!r->src || !r->slot) return at_fail("cuda", "out of host memory");
    for (int b = 0; b < a->n; b++) {
        const int row = a->input_index ? a->input_index[b] : b;
        int k = b > 0 && r->src[r->slot[b - 1]] == row ? r->slot[b - 1] : -1; // runs of one row are common
        for (int j = r->n_rows - 1; k < 0 && j >= 0; j--)
            if (r->src[j] == row) k = j;
        if (k < 0) r->src[k = r->n_rows++] = row;
        r->slot[b] = k;
    }
    return AT_OK;
}

static int wants_capture(const at_forward_args *a, int layer) {
    for (int c = 0; c < a->n_capture; c++)
        if (a->capture_layer[c] == layer) return 1;
    return 0;
}

static int capture(cuda_state *s, const at_forward_args *a, int layer, const float *data, int n) {
    for (int c = 0; c < a->n_capture; c++)
        if (a->capture_layer[c] == layer &&
            at_cuda_download(s, a->capture_out[c], data, sizeof(float) * at_layer_out_size(&s->m->layers[layer]) * n))
            return AT_ERR;
    return AT_OK;
}

// The ReLU that conv layer i can fuse (across identity BN layers), or -1
// when a capture wants an output in between (the pre-ReLU values).
static int fusable_relu(const at_model *m, const at_forward_args *a, int i) {
    int j = i + 1;
    while (j < m->n_layers && m->layers[j].kind == AT_L_BATCHNORM) j++;
    if (j >= m->n_layers || m->layers[j].kind != AT_L_RELU) return -1;
    for (int k = i; k < j; k++)
        if (wants_capture(a, k)) return -1;
    return j;
}

// Conv layer i on x (n items) into y; relu_layer >= 0 fuses that ReLU with
// its gates (keep: relu(z) before the gate, or NULL).
static int run_conv(cuda_state *s, int i, const float *x, float *y, int n, int relu_layer, const float *gates,
                    int gate_stride, float *keep) {
    at_conv_gemm g = s->conv[i].fwd;
    g.x = x, g.y = y, g.N = n;
    if (i == 0 && s->call_mask) { // x holds the masks; the rows are the images
        g.x = s->call_rows, g.row_index = s->call_index, g.mask = s->call_mask, g.ms = s->call_ms;
    }
    if (relu_layer >= 0) {
        const at_layer *r = &s->m->layers[relu_layer];
        g.relu = 1;
        g.gates = gates && r->gate_offset >= 0 ? gates + r->gate_offset : NULL;
        g.gate_stride = gate_stride;
        g.keep = keep;
    }
    return at_conv2d_gemm_gpu(&g, s->prec, s->n_sm, s->stream);
}

// Layer i (not a fused conv) on x into y; y == x for in-place layers.
static int run_layer(cuda_state *s, int i, const float *x, float *y, int n, const float *gates, int gate_stride,
                     float *keep_relu) {
    const at_layer *l = &s->m->layers[i];
    switch (l->kind) {
    case AT_L_CONV: return run_conv(s, i, x, y, n, -1, NULL, 0, NULL);
    case AT_L_RELU:
        return at_gated_relu_forward_gpu(y, n, l->out_c, (long)l->out_h * l->out_w,
                                         l->gate_offset >= 0 && gates ? gates + l->gate_offset : NULL, gate_stride,
                                         keep_relu, s->stream);
    case AT_L_MAXPOOL: return at_maxpool2d_forward_gpu(x, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, y, s->stream);
    case AT_L_ADAPTIVE_AVGPOOL:
        return at_adaptive_avgpool_forward_gpu(x, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, y, s->stream);
    case AT_L_LINEAR:
        return at_linear_forward_gpu(s->blas, x, n, l->in_c, s->lin[i].w, s->lin[i].b, l->out_c, y, s->stream);
    case AT_L_BATCHNORM:
    case AT_L_DROPOUT: return AT_OK;
    }
    return at_fail("cuda", "layer %s: unknown kind %d", l->name, (int)l->kind);
}

// Uploads the call's inputs, masks and gates and builds the network input.
static int stage_inputs(cuda_state *s, const at_forward_args *a, const call_shape *cs, const row_map *rows,
                        const arena_plan *p) {
    const at_model *m = s->m;
    const size_t in = (size_t)at_cuda_input_floats(m);
    s->call_mask = NULL;
    if (a->gates && at_cuda_upload(s, p->gates, a->gates, sizeof(float) * cs->gate_rows * m->n_gates)) return AT_ERR;
    if (!cs->gathered) return at_cuda_upload(s, p->input, a->input, sizeof(float) * in * cs->n);
    for (int k = 0, run; k < rows->n_rows; k += run) { // consecutive source rows go in one copy
        for (run = 1; k + run < rows->n_rows && rows->src[k + run] == rows->src[k] + run; run++) {
        }
        if (at_cuda_upload(s, p->rows + k * in, a->input + (size_t)rows->src[k] * in, sizeof(float) * in * run))
            return AT_ERR;
    }
    if (at_cuda_upload(s, p->index, rows->slot, sizeof(int) * cs->n)) return AT_ERR;
    if (a->masks && at_cuda_upload(s, p->masks, a->masks, sizeof(float) * cs->mask_hw * cs->n)) return AT_ERR;
    at_mask_inputs mi;
    memset(&mi, 0, sizeof mi);
    mi.rows = p->rows;
    mi.input_index = p->index;
    mi.masks = a->masks ? p->masks : NULL;
    mi.mh = a->mask_h, mi.mw = a->mask_w, mi.align_corners = a->mask_align_corners;
    mi.norm = a->mask_norm, mi.space = a->mask_space;
    memcpy(mi.mean_over_std, s->mean_over_std, sizeof mi.mean_over_std);
    mi.lohi = p->lohi;
    mi.n = cs->n, mi.C = m->in_c, mi.H = m->in_h, mi.W = m->in_w;
    mi.out = p->input;
    if (a->masks && s->fuse_masks && m->layers[0].kind == AT_L_CONV) {
        mi.mask_only = 1; // p->input gets the [n][H][W] masks, the first conv the rest
        s->call_rows = p->rows, s->call_index = p->index, s->call_mask = p->input;
        s->call_ms = a->mask_space == AT_MASK_UNIT ? s->d_mean_over_std : NULL;
    }
    return at_make_inputs_gpu(&mi, s->stream);
}

static int run_forward(cuda_state *s, const at_forward_args *a, const row_map *rows);
static int check_precision(const cuda_state *s, at_precision p);

// This call's precision: conv kernels follow s->prec, cuBLAS its math mode.
static int set_call_precision(cuda_state *s, at_precision p) {
    if (p == s->prec) return AT_OK;
    if (check_precision(s, p)) return AT_ERR;
    CUBLAS_CHECK(cublasSetMathMode(s->blas, p == AT_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    s->prec = p;
    return AT_OK;
}

static int cuda_forward(at_backend *be, const at_forward_args *a) {
    cuda_state *s = (cuda_state *)be->impl;
    if (validate_forward(s->m, a)) return AT_ERR;
    s->kept_valid = 0;
    if (set_call_precision(s, a->precision ? *a->precision : s->precision)) return AT_ERR;
    row_map rows = {0, NULL, NULL};
    int rc = a->masks || a->input_index ? map_rows(a, &rows) : AT_OK;
    if (rc == AT_OK) rc = run_forward(s, a, &rows);
    free(rows.src);
    free(rows.slot);
    return rc;
}

static int run_forward(cuda_state *s, const at_forward_args *a, const row_map *rows) {
    const at_model *m = s->m;
    const int n = a->n;
    call_shape cs;
    cs.n = n;
    cs.n_rows = rows->n_rows;
    cs.mask_hw = a->masks ? (long)a->mask_h * a->mask_w : 0;
    cs.gate_rows = a->gates ? (a->gates_per_item ? n : 1) : 0;
    cs.keep = a->keep_for_backward != 0;
    cs.gated_keep = cs.keep && a->gates;
    cs.gathered = a->masks || a->input_index;
    arena_plan p;
    if (at_cuda_ensure_arena(s, at_cuda_plan_arena(m, &cs, NULL, &p), n)) return AT_ERR;
    at_cuda_plan_arena(m, &cs, (char *)s->arena, &p);
    if (stage_inputs(s, a, &cs, rows, &p)) return AT_ERR;
    const float *gates = a->gates ? p.gates : NULL;
    const int gate_stride = a->gates && a->gates_per_item ? m->n_gates : 0;

    if (cs.keep) { // every layer's output stays (host/cpu/backend_cpu.c layout)
        float *next = p.kept;
        for (int i = 0; i < m->n_layers; i++) {
            const at_layer *l = &m->layers[i];
            const int alias = at_cuda_aliases_input(l);
            s->out[i] = alias ? (i ? s->out[i - 1] : p.input) : next;
            if (!alias) next += (size_t)at_layer_out_size(l) * n;
            s->aux[i] = NULL;
            if (cs.gated_keep && l->gate_offset >= 0) {
                s->aux[i] = next;
                next += (size_t)at_layer_out_size(l) * n;
            }
        }
    }
    const float *x = p.input;
    float *bufs[2] = {p.ping, p.pong};
    int cur = -1; // forward-only: which buffer holds x; -1: the input
    int fused_until = -1;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        float *y;
        if (cs.keep) {
            y = s->out[i];
        } else if (at_cuda_aliases_input(l)) {
            if (cur < 0) { // in-place op on the input: copy it first
                CUDA_CHECK(cudaMemcpyAsync(bufs[0], x, sizeof(float) * n * at_cuda_input_floats(m),
                                           cudaMemcpyDeviceToDevice, s->stream));
                cur = 0;
            }
            y = bufs[cur];
        } else {
            cur = cur == 0 ? 1 : 0;
            y = bufs[cur];
        }
        if (i > fused_until) {
            const int r = l->kind == AT_L_CONV ? fusable_relu(m, a, i) : -1;
            if (r >= 0) {
                if (run_conv(s, i, x, y, n, r, gates, gate_stride, cs.keep ? s->aux[r] : NULL)) return AT_ERR;
                fused_until = r; // layers i+1..r alias y and are done
            } else if (run_layer(s, i, x, y, n, gates, gate_stride, cs.keep ? s->aux[i] : NULL)) {
                return AT_ERR;
            }
        }
        if (capture(s, a, i, y, n)) return AT_ERR;
        x = y;
    }
    if (a->logits && at_cuda_download(s, a->logits, x, sizeof(float) * n * m->n_classes)) return AT_ERR;
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (cs.keep) {
        s->kp = p;
        s->kept_gates = gates;
        s->kept_gate_stride = gate_stride;
        s->kept_n = n;
        s->kept_valid = 1;
    }
    return AT_OK;
}

// ---- backward --------------------------------------------------------------

static int conv_backward_data(cuda_state *s, int i, const float *dy, float *dx, int n) {
    const at_layer *l = &s->m->layers[i];
    const conv_dev *c = &s->conv[i];
    if (c->bwd.a) {
        at_conv_gemm g = c->bwd;
        g.x = dy, g.y = dx, g.N = n;
        return at_conv2d_gemm_gpu(&g, s->prec, s->n_sm, s->stream);
    }
    return at_conv2d_backward_data_direct_gpu(dy, n, l->in_c, l->in_h, l->in_w, c->fwd.a, l->out_c, l->kernel,
                                              l->stride, l->pad, l->out_h, l->out_w, dx, s->stream);
}

static int cuda_backward(at_backend *be, const at_backward_args *a) {
    cuda_state *s = (cuda_state *)be->impl;
    const at_model *m = s->m;
    if (!s->kept_valid) return at_fail("backward", "no forward pass was kept for backward");
    if (!a->dlogits) return at_fail("backward", "no dlogits");
    if (a->grad_layer >= m->n_layers) return at_fail("backward", "grad layer %d out of range", a->grad_layer);
    if (a->grad_layer >= 0 && !a->grad_layer_out) return at_fail("backward", "grad layer %d has no output buffer", a->grad_layer);
    const int n = s->kept_n;
    const arena_plan *p = &s->kp;
    // lowest layer that must be processed (its input gradient or gate gradient is needed)
    int lowest = m->n_layers;
    if (a->grad_layer >= 0) lowest = a->grad_layer + 1;
    if (a->grad_gates && m->n_convs > 0 && m->gate_layer[0] < lowest) lowest = m->gate_layer[0];
    if (a->grad_input) lowest = 0;
    if (a->grad_gates) CUDA_CHECK(cudaMemsetAsync(p->grad_gates, 0, sizeof(float) * m->n_gates * n, s->stream));
    float *g = p->ping, *other = p->pong;
    if (at_cuda_upload(s, g, a->dlogits, sizeof(float) * n * m->n_classes)) return AT_ERR;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const at_layer *l = &m->layers[i];
        if (i == a->grad_layer &&
            at_cuda_download(s, a->grad_layer_out, g, sizeof(float) * at_layer_out_size(l) * n))
            return AT_ERR;
        if (i < lowest) break;
        const float *x = i ? s->out[i - 1] : p->input;
        int rc = AT_OK;
        switch (l->kind) {
        case AT_L_CONV: rc = conv_backward_data(s, i, g, other, n); break;
        case AT_L_RELU: {
            const int gated = l->gate_offset >= 0 && s->kept_gates;
            const float *act = gated ? s->aux[i] : s->out[i];
            if (at_gated_relu_backward_gpu(g, act, n, l->out_c, (long)l->out_h * l->out_w,
                                           gated ? s->kept_gates + l->gate_offset : NULL, s->kept_gate_stride, g,
                                           a->grad_gates && l->gate_offset >= 0 ? p->grad_gates + l->gate_offset : NULL,
                                           m->n_gates, s->stream))
                return AT_ERR;
            continue; // in place
        }
        case AT_L_MAXPOOL:
            rc = at_maxpool2d_backward_gpu(x, g, n, l->in_c, l->in_h, l->in_w, l->kernel, l->stride, other, s->stream);
            break;
        case AT_L_ADAPTIVE_AVGPOOL:
            rc = at_adaptive_avgpool_backward_gpu(g, n, l->in_c, l->in_h, l->in_w, l->out_h, l->out_w, other, s->stream);
            break;
        case AT_L_LINEAR:
            rc = at_linear_backward_data_gpu(s->blas, g, n, l->in_c, s->lin[i].w, l->out_c, other, s->stream);
            break;
        case AT_L_BATCHNORM:
        case AT_L_DROPOUT: continue;
        }
        if (rc) return AT_ERR;
        float *t = g;
        g = other;
        other = t;
    }
    if (a->grad_input && at_cuda_download(s, a->grad_input, g, sizeof(float) * n * at_cuda_input_floats(m)))
        return AT_ERR;
    if (a->grad_gates && at_cuda_download(s, a->grad_gates, p->grad_gates, sizeof(float) * m->n_gates * n))
        return AT_ERR;
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    return AT_OK;
}

// ---- creation --------------------------------------------------------------

// Per item, the arena of a call with everything in it (a mask as large as
// the input, per-item gates); a batch of n needs at most n times this.
static size_t bytes_per_item(const at_model *m, int with_backward) {
    call_shape cs = {1, 1, (long)m->in_h * m->in_w, 1, with_backward, with_backward, 1};
    arena_plan p;
    return at_cuda_plan_arena(m, &cs, NULL, &p);
}

static int cuda_max_batch(at_backend *be, int with_backward) {
    cuda_state *s = (cuda_state *)be->impl;
    const size_t fixed = s->weights_bytes + AT_CUDA_RESERVE_BYTES;
    size_t avail = s->mem_limit > fixed ? s->mem_limit - fixed : 0;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        free_b += s->arena_bytes; // ours to regrow
        free_b = free_b > AT_CUDA_RESERVE_BYTES ? free_b - AT_CUDA_RESERVE_BYTES : 0;
        if (free_b < avail) avail = free_b;
    } else {
        cudaGetLastError();
    }
    size_t n = avail / bytes_per_item(s->m, with_backward);
    if (n < 1) n = 1; // the call itself then reports what it needs
    if (n > AT_CUDA_MAX_BATCH) n = AT_CUDA_MAX_BATCH;
    return (int)n;
}

static void cuda_destroy(at_backend *be) {
    if (!be) return;
    cuda_state *s = (cuda_state *)be->impl;
    if (s) {
        if (s->stream) cudaStreamSynchronize(s->stream);
        if (s->arena) cudaFree(s->arena);
        if (s->weights) cudaFree(s->weights);
        if (s->d_mean_over_std) cudaFree(s->d_mean_over_std);
        if (s->pinned) cudaFreeHost(s->pinned);
        for (int h = 0; h < 2; h++)
            if (s->staged[h]) cudaEventDestroy(s->staged[h]);
        if (s->blas) cublasDestroy(s->blas);
        if (s->stream) cudaStreamDestroy(s->stream);
        cudaGetLastError();
        free(s->conv);
        free(s->lin);
        free(s->out);
        free(s->aux);
        free(s);
    }
    free(be);
}

// Shapes the kernels index with 32-bit ints (per image) must fit.
static int check_model(const at_model *m) {
    if (m->in_c < 1 || m->in_c > AT_GPU_MAX_IN_C)
        return at_fail("cuda", "%d input channels (the CUDA backend takes 1..%d)", m->in_c, AT_GPU_MAX_IN_C);
    const long lim = 0x7fffffffL;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if ((long)l->in_c * l->in_h * l->in_w > lim || at_layer_out_size(l) > lim)
            return at_fail("cuda", "layer %s: a %dx%dx%d map is too large for the CUDA kernels", l->name, l->in_c,
                           l->in_h, l->in_w);
        if (l->kind == AT_L_CONV &&
            (l->kernel < 1 || l->kernel > 255 || l->stride < 1 || l->pad < 0 ||
             (long)l->in_c * l->kernel * l->kernel * l->out_c > lim))
            return at_fail("cuda", "layer %s: convolution %dx%d/%d pad %d with %d -> %d channels is not supported",
                           l->name, l->kernel, l->kernel, l->stride, l->pad, l->in_c, l->out_c);
    }
    return AT_OK;
}

static int check_precision(const cuda_state *s, at_precision p) {
    const int cc = s->cc_major * 10 + s->cc_minor;
    switch (p) {
    case AT_PRECISION_FP32: return AT_OK;
    case AT_PRECISION_TF32:
        if (cc < 80)
            return at_fail("--precision", "tf32 needs tensor cores of compute capability 8.0 or newer; %s is %d.%d: "
                           "use --precision fp32", s->device_name, s->cc_major, s->cc_minor);
        if (s->built_arch < 800)
            return at_fail("--precision", "tf32: this build's kernels target sm_%d, without TF32 tensor cores; "
                           "rebuild with make CUDA_ARCH=%d", s->built_arch / 10, cc);
        return AT_OK;
    case AT_PRECISION_FP16:
        if (cc < 70)
            return at_fail("--precision", "fp16 needs tensor cores of compute capability 7.0 or newer (on %s, %d.%d, "
                           "it runs at a fraction of fp32); use --precision fp32", s->device_name, s->cc_major,
                           s->cc_minor);
        return at_fail("--precision", "fp16 is not implemented by the CUDA backend yet; use fp32 or tf32");
    }
    return at_fail("--precision", "unknown precision %d", (int)p);
}

static int cuda_init(cuda_state *s, const at_model *m, const at_backend_options *opt) {
    s->m = m;
    s->mem_limit = opt && opt->mem_limit ? opt->mem_limit : AT_CUDA_DEFAULT_MEM_LIMIT;
    s->precision = opt ? opt->precision : AT_PRECISION_FP32;
    CUDA_CHECK(cudaGetDevice(&s->device));
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, s->device));
    snprintf(s->device_name, sizeof s->device_name, "%s", prop.name);
    s->cc_major = prop.major, s->cc_minor = prop.minor, s->n_sm = prop.multiProcessorCount;
    CUDA_CHECK(at_cuda_built_arch(&s->built_arch));
    if (check_precision(s, s->precision) || check_model(m)) return AT_ERR;
    s->prec = s->precision;
    for (int c = 0; c < AT_GPU_MAX_IN_C; c++)
        s->mean_over_std[c] = c < 3 ? m->pre.mean[c] / m->pre.std[c] : 0.0f;
    const char *fuse = getenv("ATTRIB_CUDA_FUSED_MASKS"); // "0": separate masking kernel, for comparisons
    s->fuse_masks = !(fuse && !strcmp(fuse, "0"));
    CUDA_CHECK(cudaMalloc((void **)&s->d_mean_over_std, sizeof s->mean_over_std));
    CUDA_CHECK(cudaMemcpy(s->d_mean_over_std, s->mean_over_std, sizeof s->mean_over_std, cudaMemcpyHostToDevice));
    s->conv = (conv_dev *)calloc(m->n_layers, sizeof *s->conv);
    s->lin = (linear_dev *)calloc(m->n_layers, sizeof *s->lin);
    s->out = (float **)calloc(m->n_layers, sizeof *s->out);
    s->aux = (float **)calloc(m->n_layers, sizeof *s->aux);
    if (!s->conv || !s->lin || !s->out || !s->aux) return at_fail("cuda", "out of host memory");
    CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&s->blas));
    CUBLAS_CHECK(cublasSetStream(s->blas, s->stream));
    CUBLAS_CHECK(cublasSetMathMode(s->blas, s->precision == AT_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                : CUBLAS_DEFAULT_MATH));
    CUDA_CHECK(cudaHostAlloc((void **)&s->pinned, 2 * AT_CUDA_STAGE_BYTES, cudaHostAllocDefault));
    for (int h = 0; h < 2; h++) CUDA_CHECK(cudaEventCreateWithFlags(&s->staged[h], cudaEventDisableTiming));
    if (at_cuda_upload_weights(s)) return AT_ERR;
    CUDA_CHECK(cudaDeviceSynchronize());
    return AT_OK;
}

extern "C" int at_cuda_backend_create(const at_model *m, const at_backend_options *opt, at_backend **out) {
    *out = NULL;
    char why[256];
    if (!at_cuda_available(why, sizeof why)) return at_fail("--backend", "cuda: %s; use --backend cpu", why);
    at_backend *be = (at_backend *)calloc(1, sizeof *be);
    cuda_state *s = (cuda_state *)calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return at_fail("cuda", "out of host memory");
    }
    be->impl = s;
    if (cuda_init(s, m, opt)) {
        cuda_destroy(be);
        return AT_ERR;
    }
    int clock_khz = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, s->device) != cudaSuccess) {
        cudaGetLastError();
        clock_khz = 0;
    }
    const double per_sm_clock = s->precision == AT_PRECISION_TF32 ? tf32_flops_per_sm_clock(s->cc_major, s->cc_minor)
                                                                  : 2.0 * fp32_lanes_per_sm(s->cc_major, s->cc_minor);
    be->name = "cuda";
    be->model = m;
    be->precision = s->precision;
    be->peak_flops = (double)s->n_sm * clock_khz * 1e3 * per_sm_clock;
    be->forward = cuda_forward;
    be->backward = cuda_backward;
    be->max_batch = cuda_max_batch;
    be->destroy = cuda_destroy;
    *out = be;
    return AT_OK;
}
