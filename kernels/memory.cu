// Device memory of the CUDA backend: the weights (one allocation at
// creation, conv weights packed for the implicit GEMMs), the activation arena
// (one allocation sized for the largest call so far, carved per call the way
// host/cpu/backend_cpu.c lays out its buffers) and pinned, double-buffered
// host staging for every transfer.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend_cuda.cuh"

#define ARENA_ALIGN 256

static size_t mb_up(size_t bytes) { return (bytes + (1u << 20) - 1) >> 20; }

long at_cuda_input_floats(const at_model *m) { return (long)m->in_c * m->in_h * m->in_w; }

size_t at_cuda_max_layer_floats(const at_model *m) {
    size_t mx = (size_t)at_cuda_input_floats(m);
    for (int i = 0; i < m->n_layers; i++)
        if ((size_t)at_layer_out_size(&m->layers[i]) > mx) mx = (size_t)at_layer_out_size(&m->layers[i]);
    return mx;
}

// Identity modules, and a ReLU working in place on its conv's output.
int at_cuda_aliases_input(const at_layer *l) {
    return l->kind == AT_L_BATCHNORM || l->kind == AT_L_DROPOUT || l->kind == AT_L_RELU;
}

size_t at_cuda_kept_floats(const at_model *m, int n, int gated) {
    size_t total = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (!at_cuda_aliases_input(l)) total += (size_t)at_layer_out_size(l) * n;
        if (gated && l->gate_offset >= 0) total += (size_t)at_layer_out_size(l) * n;
    }
    return total;
}

template <typename T>
static void carve(char *base, size_t *cursor, size_t count, T **out) {
    const size_t off = *cursor;
    *cursor += (count * sizeof(T) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    *out = base && count ? reinterpret_cast<T *>(base + off) : nullptr;
}

size_t at_cuda_plan_arena(const at_model *m, const call_shape *cs, char *base, arena_plan *p) {
    memset(p, 0, sizeof *p);
    const size_t n = (size_t)cs->n, in = (size_t)at_cuda_input_floats(m), layer = at_cuda_max_layer_floats(m);
    size_t cur = 0;
    carve(base, &cur, cs->gathered ? (size_t)cs->n_rows * in : 0, &p->rows);
    carve(base, &cur, cs->gathered ? n : 0, &p->index);
    carve(base, &cur, n * (size_t)cs->mask_hw, &p->masks);
    carve(base, &cur, cs->mask_hw ? 2 * n : 0, &p->lohi);
    carve(base, &cur, (size_t)cs->gate_rows * m->n_gates, &p->gates);
    carve(base, &cur, n * in, &p->input);
    carve(base, &cur, cs->keep ? at_cuda_kept_floats(m, cs->n, cs->gated_keep) : 0, &p->kept);
    carve(base, &cur, n * layer, &p->ping);
    carve(base, &cur, n * layer, &p->pong);
    carve(base, &cur, cs->keep ? n * m->n_gates : 0, &p->grad_gates);
    p->bytes = cur;
    return cur;
}

int at_cuda_ensure_arena(cuda_state *s, size_t bytes, int n) {
    if (bytes <= s->arena_bytes) return AT_OK;
    const size_t fixed = s->weights_bytes + AT_CUDA_RESERVE_BYTES;
    const size_t allowed = s->mem_limit > fixed ? s->mem_limit - fixed : 0;
    if (bytes > allowed)
        return at_fail("cuda",
                       "out of memory: need %zu MB for batch %d, %zu MB left under --mem-limit %zu MB "
                       "(weights %zu MB); lower the batch or raise --mem-limit",
                       mb_up(bytes), n, allowed >> 20, s->mem_limit >> 20, mb_up(s->weights_bytes));
    // The old arena holds nothing that outlives this call's planning.
    CUDA_CHECK(cudaStreamSynchronize(s->stream));
    if (s->arena) CUDA_CHECK(cudaFree(s->arena));
    s->arena = NULL;
    s->arena_bytes = 0;
    const cudaError_t e = cudaMalloc(&s->arena, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        s->arena = NULL;
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return at_fail("cuda", "out of memory: need %zu MB for batch %d, %zu MB free; lower --mem-limit or the batch",
                       mb_up(bytes), n, free_b >> 20);
    }
    CUDA_CHECK(e);
    s->arena_bytes = bytes;
    return AT_OK;
}

// ---- weights ---------------------------------------------------------------

// Offsets of every weight tensor in the one allocation (base NULL: sizing).
static size_t plan_weights(cuda_state *s, char *base) {
    const at_model *m = s->m;
    size_t cur = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (l->kind == AT_L_CONV) {
            const int k = l->kernel, CK = l->in_c * k * k, KK = l->out_c * k * k;
            conv_dev *c = &s->conv[i];
            memset(c, 0, sizeof *c);
            float *a, *b, *abwd = nullptr;
            int2 *tab, *tbwd = nullptr;
            carve(base, &cur, (size_t)CK * l->out_c, &a);
            carve(base, &cur, (size_t)CK, &tab);
            carve(base, &cur, (size_t)l->out_c, &b);
            const int bwd_gemm = at_conv2d_backward_is_gemm(k, l->stride, l->pad);
            if (bwd_gemm) {
                carve(base, &cur, (size_t)KK * l->in_c, &abwd);
                carve(base, &cur, (size_t)KK, &tbwd);
            }
            c->fwd = at_conv_gemm{};
            c->fwd.a = a, c->fwd.tab = tab, c->fwd.bias = b;
            c->fwd.C = l->in_c, c->fwd.H = l->in_h, c->fwd.W = l->in_w;
            c->fwd.M = l->out_c, c->fwd.Ho = l->out_h, c->fwd.Wo = l->out_w;
            c->fwd.kernel = k, c->fwd.stride = l->stride, c->fwd.pad = l->pad, c->fwd.CK = CK;
            c->bwd = at_conv_gemm{};
            if (bwd_gemm) { // dx = stride-1 conv of dy with the flipped kernel, pad k-1-pad
                c->bwd.a = abwd, c->bwd.tab = tbwd;
                c->bwd.C = l->out_c, c->bwd.H = l->out_h, c->bwd.W = l->out_w;
                c->bwd.M = l->in_c, c->bwd.Ho = l->in_h, c->bwd.Wo = l->in_w;
                c->bwd.kernel = k, c->bwd.stride = 1, c->bwd.pad = k - 1 - l->pad, c->bwd.CK = KK;
            }
        } else if (l->kind == AT_L_LINEAR) {
            float *w, *b;
            carve(base, &cur, (size_t)l->out_c * l->in_c, &w);
            carve(base, &cur, (size_t)l->out_c, &b);
            s->lin[i].w = w, s->lin[i].b = b;
        }
    }
    return cur;
}

int at_cuda_upload_weights(cuda_state *s) {
    const at_model *m = s->m;
    s->weights_bytes = plan_weights(s, NULL);
    if (s->weights_bytes + AT_CUDA_RESERVE_BYTES > s->mem_limit)
        return at_fail("cuda", "out of memory: the weights need %zu MB, more than --mem-limit %zu MB allows",
                       mb_up(s->weights_bytes + AT_CUDA_RESERVE_BYTES), s->mem_limit >> 20);
    const cudaError_t e = cudaMalloc(&s->weights, s->weights_bytes ? s->weights_bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        s->weights = NULL;
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return at_fail("cuda", "out of memory: the weights need %zu MB, %zu MB free", mb_up(s->weights_bytes),
                       free_b >> 20);
    }
    CUDA_CHECK(e);
    plan_weights(s, (char *)s->weights);
    std::vector<float> pack;
    std::vector<int2> tab;
    for (int i = 0; i < m->n_layers; i++) {
        const at_layer *l = &m->layers[i];
        if (l->kind == AT_L_CONV) {
            const conv_dev *c = &s->conv[i];
            const int k = l->kernel;
            pack.resize((size_t)c->fwd.CK * l->out_c);
            at_conv2d_pack_forward(l->weight, l->out_c, l->in_c, k, pack.data());
            CUDA_CHECK(cudaMemcpy((void *)c->fwd.a, pack.data(), pack.size() * sizeof(float), cudaMemcpyHostToDevice));
            tab.resize((size_t)c->fwd.CK);
            at_conv2d_gather_table(l->in_c, l->in_h, l->in_w, k, tab.data());
            CUDA_CHECK(cudaMemcpy((void *)c->fwd.tab, tab.data(), tab.size() * sizeof(int2), cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy((void *)c->fwd.bias, l->bias, sizeof(float) * l->out_c, cudaMemcpyHostToDevice));
            if (c->bwd.a) {
                pack.resize((size_t)c->bwd.CK * l->in_c);
                at_conv2d_pack_backward(l->weight, l->out_c, l->in_c, k, pack.data());
                CUDA_CHECK(cudaMemcpy((void *)c->bwd.a, pack.data(), pack.size() * sizeof(float), cudaMemcpyHostToDevice));
                tab.resize((size_t)c->bwd.CK);
                at_conv2d_gather_table(l->out_c, l->out_h, l->out_w, k, tab.data());
                CUDA_CHECK(cudaMemcpy((void *)c->bwd.tab, tab.data(), tab.size() * sizeof(int2), cudaMemcpyHostToDevice));
            }
        } else if (l->kind == AT_L_LINEAR) {
            CUDA_CHECK(cudaMemcpy((void *)s->lin[i].w, l->weight, sizeof(float) * l->out_c * l->in_c,
                                  cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy((void *)s->lin[i].b, l->bias, sizeof(float) * l->out_c, cudaMemcpyHostToDevice));
        }
    }
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
