// Single CUDA ops for tests (kernels/ops_check.h). Every device buffer is
// surrounded by GUARD floats of a NaN sentinel; outputs start filled with it
// too, so an element a kernel forgets to write fails the comparison and a
// write past either end is reported here by name.
#include <cstdint>
#include <cstring>
#include <vector>

#include "ops_check.h"
#include "ops_cuda.cuh"

#define GUARD 256
static const uint32_t SENTINEL_BITS = 0x7fbadbadu; // a NaN no kernel produces

namespace {

struct dev_buf {
    float *base = nullptr; // with guards
    size_t n = 0;          // payload floats
    const char *what = "";
    float *data() const { return base + GUARD; }
};

// Frees every buffer when a check returns, whatever the path.
struct dev_arena {
    std::vector<void *> ptrs;
    cublasHandle_t blas = nullptr;
    ~dev_arena() {
        cudaDeviceSynchronize();
        for (void *p : ptrs) cudaFree(p);
        if (blas) cublasDestroy(blas);
        cudaGetLastError();
    }
    // n floats between guards; payload from host, or the sentinel when NULL.
    int alloc(dev_buf *b, size_t n, const float *host, const char *what) {
        b->n = n;
        b->what = what;
        std::vector<uint32_t> init(n + 2 * GUARD, SENTINEL_BITS);
        if (host && n) memcpy(init.data() + GUARD, host, n * sizeof(float));
        CUDA_CHECK(cudaMalloc((void **)&b->base, init.size() * sizeof(float)));
        ptrs.push_back(b->base);
        CUDA_CHECK(cudaMemcpy(b->base, init.data(), init.size() * sizeof(float), cudaMemcpyHostToDevice));
        return AT_OK;
    }
    int alloc_ints(int **out, const int *host, size_t n) {
        CUDA_CHECK(cudaMalloc((void **)out, (n ? n : 1) * sizeof(int)));
        ptrs.push_back(*out);
        if (n) CUDA_CHECK(cudaMemcpy(*out, host, n * sizeof(int), cudaMemcpyHostToDevice));
        return AT_OK;
    }
    // Waits for the launches, checks both guards and copies the payload out.
    int fetch(const dev_buf &b, float *host) {
        CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<uint32_t> all(b.n + 2 * GUARD);
        CUDA_CHECK(cudaMemcpy(all.data(), b.base, all.size() * sizeof(float), cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < GUARD; i++) {
            if (all[i] != SENTINEL_BITS)
                return at_fail("cuda", "%s: write %zu floats before the buffer", b.what, GUARD - i);
            if (all[GUARD + b.n + i] != SENTINEL_BITS)
                return at_fail("cuda", "%s: write %zu floats past the end of %zu", b.what, i + 1, b.n);
        }
        if (host) memcpy(host, all.data() + GUARD, b.n * sizeof(float));
        return AT_OK;
    }
};

} // namespace

extern "C" int at_check_conv2d_forward(const float *x, int N, int C, int H, int W, const float *w, const float *b,
                                       int K, int k, int stride, int pad, int relu, const float *gates,
                                       int n_gate_rows, int gate_stride, float *y, float *keep, at_precision prec) {
    const int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    const size_t CK = (size_t)C * k * k, out_n = (size_t)N * K * Ho * Wo;
    std::vector<float> a(CK * K);
    std::vector<int2> tab(CK);
    at_conv2d_pack_forward(w, K, C, k, a.data());
    at_conv2d_gather_table(C, H, W, k, tab.data());
    dev_arena d;
    dev_buf dx, da, db, dg, dy, dk;
    int2 *dtab = nullptr;
    if (d.alloc(&dx, (size_t)N * C * H * W, x, "conv input") || d.alloc(&da, a.size(), a.data(), "conv weights") ||
        d.alloc(&db, K, b, "conv bias") || d.alloc(&dy, out_n, NULL, "conv output"))
        return AT_ERR;
    if (gates && d.alloc(&dg, (size_t)n_gate_rows * K, gates, "gates")) return AT_ERR;
    if (keep && d.alloc(&dk, out_n, NULL, "kept relu")) return AT_ERR;
    CUDA_CHECK(cudaMalloc((void **)&dtab, tab.size() * sizeof(int2)));
    d.ptrs.push_back(dtab);
    CUDA_CHECK(cudaMemcpy(dtab, tab.data(), tab.size() * sizeof(int2), cudaMemcpyHostToDevice));
    int n_sm = 0, dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
    at_conv_gemm g = {};
    g.x = dx.data(), g.a = da.data(), g.tab = dtab, g.y = dy.data();
    g.N = N, g.C = C, g.H = H, g.W = W, g.M = K, g.Ho = Ho, g.Wo = Wo;
    g.kernel = k, g.stride = stride, g.pad = pad, g.CK = (int)CK;
    g.bias = b ? db.data() : NULL;
    g.relu = relu;
    g.gates = gates ? dg.data() : NULL;
    g.gate_stride = gate_stride;
    g.keep = keep ? dk.data() : NULL;
    if (at_conv2d_gemm_gpu(&g, prec, n_sm, 0)) return AT_ERR;
    if (d.fetch(dy, y) || d.fetch(dx, NULL) || (keep && d.fetch(dk, keep))) return AT_ERR;
    return AT_OK;
}

extern "C" int at_check_conv2d_backward_data(const float *dy, int N, int C, int H, int W, const float *w, int K,
                                             int k, int stride, int pad, float *dx, at_precision prec) {
    const int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    const size_t in_n = (size_t)N * C * H * W, out_n = (size_t)N * K * Ho * Wo;
    dev_arena d;
    dev_buf ddy, ddx, da;
    if (d.alloc(&ddy, out_n, dy, "conv dy") || d.alloc(&ddx, in_n, NULL, "conv dx")) return AT_ERR;
    if (at_conv2d_backward_is_gemm(k, stride, pad)) {
        const size_t KK = (size_t)K * k * k;
        std::vector<float> a(KK * C);
        std::vector<int2> tab(KK);
        at_conv2d_pack_backward(w, K, C, k, a.data());
        at_conv2d_gather_table(K, Ho, Wo, k, tab.data());
        int2 *dtab = nullptr;
        if (d.alloc(&da, a.size(), a.data(), "conv backward weights")) return AT_ERR;
        CUDA_CHECK(cudaMalloc((void **)&dtab, tab.size() * sizeof(int2)));
        d.ptrs.push_back(dtab);
        CUDA_CHECK(cudaMemcpy(dtab, tab.data(), tab.size() * sizeof(int2), cudaMemcpyHostToDevice));
        int n_sm = 0, dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
        at_conv_gemm g = {};
        g.x = ddy.data(), g.a = da.data(), g.tab = dtab, g.y = ddx.data();
        g.N = N, g.C = K, g.H = Ho, g.W = Wo, g.M = C, g.Ho = H, g.Wo = W;
        g.kernel = k, g.stride = 1, g.pad = k - 1 - pad, g.CK = (int)KK;
        if (at_conv2d_gemm_gpu(&g, prec, n_sm, 0)) return AT_ERR;
    } else {
        std::vector<float> a((size_t)C * k * k * K);
        at_conv2d_pack_forward(w, K, C, k, a.data());
        if (d.alloc(&da, a.size(), a.data(), "conv weights")) return AT_ERR;
        if (at_conv2d_backward_data_direct_gpu(ddy.data(), N, C, H, W, da.data(), K, k, stride, pad, Ho, Wo,
                                               ddx.data(), 0))
            return AT_ERR;
    }
    return d.fetch(ddx, dx);
}

extern "C" int at_check_maxpool2d_forward(const float *x, int N, int C, int H, int W, int k, int s, int p, float *y) {
    const size_t out_n = (size_t)N * C * ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1);
    dev_arena d;
    dev_buf dx, dy;
    if (d.alloc(&dx, (size_t)N * C * H * W, x, "max-pool input") || d.alloc(&dy, out_n, NULL, "max-pool output") ||
        at_maxpool2d_forward_gpu(dx.data(), N, C, H, W, k, s, p, dy.data(), 0))
        return AT_ERR;
    return d.fetch(dy, y);
}

extern "C" int at_check_maxpool2d_backward(const float *x, const float *dy, int N, int C, int H, int W, int k, int s,
                                           int p, float *dx) {
    const size_t in_n = (size_t)N * C * H * W;
    const size_t out_n = (size_t)N * C * ((H + 2 * p - k) / s + 1) * ((W + 2 * p - k) / s + 1);
    dev_arena d;
    dev_buf bx, bdy, bdx;
    if (d.alloc(&bx, in_n, x, "max-pool input") || d.alloc(&bdy, out_n, dy, "max-pool dy") ||
        d.alloc(&bdx, in_n, NULL, "max-pool dx") ||
        at_maxpool2d_backward_gpu(bx.data(), bdy.data(), N, C, H, W, k, s, p, bdx.data(), 0))
        return AT_ERR;
    return d.fetch(bdx, dx);
}

extern "C" int at_check_adaptive_avgpool_forward(const float *x, int N, int C, int H, int W, int OH, int OW,
                                                 float *y) {
    dev_arena d;
    dev_buf bx, by;
    if (d.alloc(&bx, (size_t)N * C * H * W, x, "avgpool input") ||
        d.alloc(&by, (size_t)N * C * OH * OW, NULL, "avgpool output") ||
        at_adaptive_avgpool_forward_gpu(bx.data(), N, C, H, W, OH, OW, by.data(), 0))
        return AT_ERR;
    return d.fetch(by, y);
}

extern "C" int at_check_adaptive_avgpool_backward(const float *dy, int N, int C, int H, int W, int OH, int OW,
                                                  float *dx) {
    dev_arena d;
    dev_buf bdy, bdx;
    if (d.alloc(&bdy, (size_t)N * C * OH * OW, dy, "avgpool dy") ||
        d.alloc(&bdx, (size_t)N * C * H * W, NULL, "avgpool dx") ||
        at_adaptive_avgpool_backward_gpu(bdy.data(), N, C, H, W, OH, OW, bdx.data(), 0))
        return AT_ERR;
    return d.fetch(bdx, dx);
}

extern "C" int at_check_linear_forward(const float *x, int N, int in, const float *w, const float *b, int out,
                                       float *y) {
    dev_arena d;
    dev_buf bx, bw, bb, by;
    if (d.alloc(&bx, (size_t)N * in, x, "linear input") || d.alloc(&bw, (size_t)out * in, w, "linear weights") ||
        d.alloc(&bb, out, b, "linear bias") || d.alloc(&by, (size_t)N * out, NULL, "linear output"))
        return AT_ERR;
    CUBLAS_CHECK(cublasCreate(&d.blas));
    if (at_linear_forward_gpu(d.blas, bx.data(), N, in, bw.data(), b ? bb.data() : NULL, out, by.data(), 0))
        return AT_ERR;
    return d.fetch(by, y);
}

extern "C" int at_check_linear_backward_data(const float *dy, int N, int in, const float *w, int out, float *dx) {
    dev_arena d;
    dev_buf bdy, bw, bdx;
    if (d.alloc(&bdy, (size_t)N * out, dy, "linear dy") || d.alloc(&bw, (size_t)out * in, w, "linear weights") ||
        d.alloc(&bdx, (size_t)N * in, NULL, "linear dx"))
        return AT_ERR;
    CUBLAS_CHECK(cublasCreate(&d.blas));
    if (at_linear_backward_data_gpu(d.blas, bdy.data(), N, in, bw.data(), out, bdx.data(), 0)) return AT_ERR;
    return d.fetch(bdx, dx);
}

extern "C" int at_check_gated_relu_forward(float *y, int N, int C, long HW, const float *gates, int n_gate_rows,
                                           int gate_stride, float *keep) {
    const size_t n = (size_t)N * C * HW;
    dev_arena d;
    dev_buf by, bg, bk;
    if (d.alloc(&by, n, y, "relu in/out") || (gates && d.alloc(&bg, (size_t)n_gate_rows * C, gates, "gates")) ||
        (keep && d.alloc(&bk, n, NULL, "kept relu")))
        return AT_ERR;
    if (at_gated_relu_forward_gpu(by.data(), N, C, HW, gates ? bg.data() : NULL, gate_stride, keep ? bk.data() : NULL, 0))
        return AT_ERR;
    if (d.fetch(by, y) || (keep && d.fetch(bk, keep))) return AT_ERR;
    return AT_OK;
}

extern "C" int at_check_gated_relu_backward(const float *dy, const float *a, int N, int C, long HW,
                                            const float *gates, int n_gate_rows, int gate_stride, float *dz,
                                            float *dgate) {
    const size_t n = (size_t)N * C * HW;
    dev_arena d;
    dev_buf bdy, ba, bg, bdz, bdg;
    if (d.alloc(&bdy, n, dy, "relu dy") || d.alloc(&ba, n, a, "relu activation") ||
        d.alloc(&bdz, n, NULL, "relu dz") || (gates && d.alloc(&bg, (size_t)n_gate_rows * C, gates, "gates")) ||
        (dgate && d.alloc(&bdg, (size_t)N * C, NULL, "gate gradient")))
        return AT_ERR;
    if (at_gated_relu_backward_gpu(bdy.data(), ba.data(), N, C, HW, gates ? bg.data() : NULL, gate_stride, bdz.data(),
                                   dgate ? bdg.data() : NULL, C, 0))
        return AT_ERR;
    if (d.fetch(bdz, dz) || (dgate && d.fetch(bdg, dgate))) return AT_ERR;
    return AT_OK;
}

extern "C" int at_check_make_inputs(const float *rows, int n_rows, const int *input_index, const float *masks, int mh,
                                    int mw, int align_corners, at_mask_norm norm, at_mask_space space,
                                    const float *mean_over_std, int n, int C, int H, int W, float *out) {
    if (C > AT_GPU_MAX_IN_C) return at_fail("cuda", "%d input channels", C);
    dev_arena d;
    dev_buf brows, bmasks, blohi, bout;
    int *bindex = nullptr;
    if (d.alloc(&brows, (size_t)n_rows * C * H * W, rows, "input rows") ||
        (masks && d.alloc(&bmasks, (size_t)n * mh * mw, masks, "masks")) ||
        d.alloc(&blohi, 2 * (size_t)n, NULL, "mask min-max") || d.alloc(&bout, (size_t)n * C * H * W, NULL, "inputs") ||
        (input_index && d.alloc_ints(&bindex, input_index, n)))
        return AT_ERR;
    at_mask_inputs mi;
    memset(&mi, 0, sizeof mi);
    mi.rows = brows.data();
    mi.input_index = bindex;
    mi.masks = masks ? bmasks.data() : NULL;
    mi.mh = mh, mi.mw = mw, mi.align_corners = align_corners, mi.norm = norm, mi.space = space;
    for (int c = 0; c < C; c++) mi.mean_over_std[c] = mean_over_std ? mean_over_std[c] : 0.0f;
    mi.lohi = blohi.data();
    mi.n = n, mi.C = C, mi.H = H, mi.W = W;
    mi.out = bout.data();
    if (at_make_inputs_gpu(&mi, 0)) return AT_ERR;
    if (d.fetch(blohi, NULL)) return AT_ERR;
    return d.fetch(bout, out);
}
