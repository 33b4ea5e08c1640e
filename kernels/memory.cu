// Device memory of the CUDA backend: every allocation under the memory limit
// and tracked (the executor's arena, the prepared weights), conv weights
// packed for the implicit GEMMs as they are prepared, and pinned,
// double-buffered host staging for every transfer.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend_cuda.cuh"

static size_t mb_up(size_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }

size_t at_cuda_available(cuda_state *s) {
    const size_t fixed = s->allocated + AT_CUDA_RESERVE_BYTES;
    size_t avail = s->mem_limit > fixed ? s->mem_limit - fixed : 0;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        free_b = free_b > AT_CUDA_RESERVE_BYTES ? free_b - AT_CUDA_RESERVE_BYTES : 0;
        if (free_b < avail) avail = free_b;
    } else {
        cudaGetLastError();
    }
    return avail;
}

void *at_cuda_alloc(cuda_state *s, size_t bytes, const char *what) {
    if (s->allocated + bytes + AT_CUDA_RESERVE_BYTES > s->mem_limit) {
        at_fail("cuda", "out of memory: %s need %zu MB, %zu MB left under --mem-limit %zu MB", what, mb_up(bytes),
                s->mem_limit > s->allocated + AT_CUDA_RESERVE_BYTES
                    ? (s->mem_limit - s->allocated - AT_CUDA_RESERVE_BYTES) >> 20
                    : 0,
                s->mem_limit >> 20);
        return NULL;
    }
    void *p = NULL;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) cudaGetLastError(), free_b = 0;
        if (e == cudaErrorMemoryAllocation)
            at_fail("cuda", "out of memory: %s need %zu MB, %zu MB free on the device; lower the batch or --mem-limit",
                    what, mb_up(bytes), free_b >> 20);
        else
            at_fail("cuda", "cudaMalloc of %zu MB for %s: %s", mb_up(bytes), what, cudaGetErrorString(e));
        return NULL;
    }
    s->allocs.push_back(cuda_alloc{p, bytes});
    s->allocated += bytes;
    return p;
}

void at_cuda_release(cuda_state *s, void *p) {
    for (size_t i = 0; i < s->allocs.size(); i++)
        if (s->allocs[i].p == p) {
            cudaFree(p);
            cudaGetLastError();
            s->allocated -= s->allocs[i].bytes;
            s->allocs.erase(s->allocs.begin() + (long)i);
            return;
        }
}

template <typename T>
static T *carve(char *base, size_t *cursor, size_t count) {
    const size_t off = *cursor;
    *cursor += (count * sizeof(T) + 255) / 256 * 256;
    return base && count ? reinterpret_cast<T *>(base + off) : nullptr;
}

// One allocation per layer: forward A and gather table, bias, and the
// stride-1 backward's flipped A and table.
int at_cuda_prepare_conv(cuda_state *s, const float *w, const float *b, int K, int C, int k, int stride, int pad, int H,
                         int W, conv_dev **out) {
    *out = NULL;
    const int CK = C * k * k, KK = K * k * k;
    const int Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    const int bwd_gemm = at_conv2d_backward_is_gemm(k, stride, pad);
    size_t bytes = 0;
    carve<float>(NULL, &bytes, (size_t)CK * K), carve<int2>(NULL, &bytes, CK), carve<float>(NULL, &bytes, K);
    if (bwd_gemm) carve<float>(NULL, &bytes, (size_t)KK * C), carve<int2>(NULL, &bytes, KK);
    char *base = (char *)at_cuda_alloc(s, bytes, "the weights");
    if (!base) return AT_ERR;
    conv_dev *c = new conv_dev();
    s->convs.push_back(c);
    size_t cur = 0;
    float *a = carve<float>(base, &cur, (size_t)CK * K);
    int2 *tab = carve<int2>(base, &cur, CK);
    float *bias = carve<float>(base, &cur, K);
    c->fwd = at_conv_gemm{};
    c->fwd.a = a, c->fwd.tab = tab, c->fwd.bias = bias;
    c->fwd.C = C, c->fwd.H = H, c->fwd.W = W, c->fwd.M = K, c->fwd.Ho = Ho, c->fwd.Wo = Wo;
    c->fwd.kernel = k, c->fwd.stride = stride, c->fwd.pad = pad, c->fwd.CK = CK;
    std::vector<float> pack((size_t)CK * K);
    std::vector<int2> t(CK);
    at_conv2d_pack_forward(w, K, C, k, pack.data());
    at_conv2d_gather_table(C, H, W, k, t.data());
    CUDA_CHECK(cudaMemcpy(a, pack.data(), pack.size() * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(tab, t.data(), t.size() * sizeof(int2), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(bias, b, sizeof(float) * K, cudaMemcpyHostToDevice));
    c->bwd = at_conv_gemm{};
    if (bwd_gemm) { // dx = stride-1 conv of dy with the flipped kernel, pad k-1-pad
        float *abwd = carve<float>(base, &cur, (size_t)KK * C);
        int2 *tbwd = carve<int2>(base, &cur, KK);
        c->bwd.a = abwd, c->bwd.tab = tbwd;
        c->bwd.C = K, c->bwd.H = Ho, c->bwd.W = Wo, c->bwd.M = C, c->bwd.Ho = H, c->bwd.Wo = W;
        c->bwd.kernel = k, c->bwd.stride = 1, c->bwd.pad = k - 1 - pad, c->bwd.CK = KK;
        pack.resize((size_t)KK * C);
        t.resize(KK);
        at_conv2d_pack_backward(w, K, C, k, pack.data());
        at_conv2d_gather_table(K, Ho, Wo, k, t.data());
        CUDA_CHECK(cudaMemcpy(abwd, pack.data(), pack.size() * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(tbwd, t.data(), t.size() * sizeof(int2), cudaMemcpyHostToDevice));
    }
    *out = c;
    return AT_OK;
}

int at_cuda_prepare_linear(cuda_state *s, const float *w, const float *b, int out, int in, linear_dev **lin) {
    *lin = NULL;
    size_t bytes = 0;
    carve<float>(NULL, &bytes, (size_t)out * in), carve<float>(NULL, &bytes, out);
    char *base = (char *)at_cuda_alloc(s, bytes, "the weights");
    if (!base) return AT_ERR;
    linear_dev *l = new linear_dev();
    s->lins.push_back(l);
    size_t cur = 0;
    float *dw = carve<float>(base, &cur, (size_t)out * in), *db = carve<float>(base, &cur, out);
    l->w = dw, l->b = db, l->out = out, l->in = in;
    CUDA_CHECK(cudaMemcpy(dw, w, sizeof(float) * out * in, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(db, b, sizeof(float) * out, cudaMemcpyHostToDevice));
    *lin = l;
    return AT_OK;
}

// ---- staging ---------------------------------------------------------------
// Host memory given to the backend is pageable; copies go through two pinned
// halves so the memcpy into one overlaps the DMA of the other. An event per
// half says when its last DMA finished.

int at_cuda_upload(cuda_state *s, void *dev, const void *host, size_t bytes) {
    const char *h = (const char *)host;
    char *d = (char *)dev;
    for (size_t off = 0; off < bytes; off += AT_CUDA_STAGE_BYTES) {
        const size_t len = bytes - off < AT_CUDA_STAGE_BYTES ? bytes - off : AT_CUDA_STAGE_BYTES;
        const int half = s->next_half;
        s->next_half ^= 1;
        char *pin = s->pinned + half * AT_CUDA_STAGE_BYTES;
        CUDA_CHECK(cudaEventSynchronize(s->staged[half]));
        memcpy(pin, h + off, len);
        CUDA_CHECK(cudaMemcpyAsync(d + off, pin, len, cudaMemcpyHostToDevice, s->stream));
        CUDA_CHECK(cudaEventRecord(s->staged[half], s->stream));
    }
    return AT_OK;
}

int at_cuda_download(cuda_state *s, void *host, const void *dev, size_t bytes) {
    char *h = (char *)host;
    const char *d = (const char *)dev;
    const size_t chunks = (bytes + AT_CUDA_STAGE_BYTES - 1) / AT_CUDA_STAGE_BYTES;
    const int first = s->next_half;
    for (size_t i = 0; i <= chunks; i++) {
        if (i < chunks) { // issue chunk i
            const int half = (int)((first + i) & 1);
            const size_t off = i * AT_CUDA_STAGE_BYTES;
            const size_t len = bytes - off < AT_CUDA_STAGE_BYTES ? bytes - off : AT_CUDA_STAGE_BYTES;
            CUDA_CHECK(cudaEventSynchronize(s->staged[half]));
            CUDA_CHECK(cudaMemcpyAsync(s->pinned + half * AT_CUDA_STAGE_BYTES, d + off, len, cudaMemcpyDeviceToHost,
                                       s->stream));
            CUDA_CHECK(cudaEventRecord(s->staged[half], s->stream));
        }
        if (i >= 1) { // chunk i-1 arrived: copy it out while chunk i is in flight
            const size_t j = i - 1;
            const int half = (int)((first + j) & 1);
            const size_t off = j * AT_CUDA_STAGE_BYTES;
            const size_t len = bytes - off < AT_CUDA_STAGE_BYTES ? bytes - off : AT_CUDA_STAGE_BYTES;
            CUDA_CHECK(cudaEventSynchronize(s->staged[half]));
            memcpy(h + off, s->pinned + half * AT_CUDA_STAGE_BYTES, len);
        }
    }
    s->next_half = (int)((first + chunks) & 1);
    return AT_OK;
}
