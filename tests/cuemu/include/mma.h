// cuemu's nvcuda::wmma: TF32 m16n16k8 fragments (the shape kernels/conv.cu
// uses). Each lane owns num_elements consecutive elements of the row-major
// fragment matrix, a layout no kernel may rely on: code that reads another
// lane's part through shared memory without __syncwarp reads stale values.
// load/store/mma are warp collectives: every lane of a full warp must call
// them with the same pointer and ldm; the pointer must be 256-bit aligned and
// ldm a multiple of 4 floats, as the CUDA programming guide requires.
// mma_sync reads the TF32 operands' top 19 bits only (the low 13 are
// dropped, not rounded: a kernel that skips __float_to_tf32 gets truncated
// operands, as on the tensor cores) and accumulates in FP32 in k order.
#ifndef CUEMU_MMA_H
#define CUEMU_MMA_H

#include "cuemu_device.h"

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
} // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K>
struct fragment_shape;
template <int M, int N, int K>
struct fragment_shape<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct fragment_shape<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct fragment_shape<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 8, "cuemu emulates the m16n16k8 TF32 shape only");
    static_assert(std::is_same<T, precision::tf32>::value || std::is_same<T, float>::value,
                  "cuemu emulates TF32 operands and FP32 accumulators only");
    using shape = fragment_shape<Use, M, N, K>;
    static constexpr int rows = shape::rows, cols = shape::cols;
    static constexpr int num_elements = rows * cols / 32;
    float x[num_elements];
};

// Round to nearest, ties away from zero, to 10 mantissa bits (cvt.rna.tf32.f32).
inline float __float_to_tf32(float f) {
    if (!std::isfinite(f)) return f;
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

namespace detail {
inline float tf32_truncate(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    u &= 0xffffe000u;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
// The collective part of load/store: the warp arrives, pointer and ldm are
// checked for uniformity and the alignment rules.
inline void memory_collective(const char *what, const void *p, unsigned ldm, const char *file, int line) {
    const uint64_t key = (uint64_t)(uintptr_t)p * 1315423911u + ldm;
    const ::cuemu::warp_slot s = ::cuemu::warp_collective(0xffffffffu, ::cuemu::COLL_WMMA, key, file, line);
    for (int l = 0; l < 32; l++)
        if (s.lanes[l] != key)
            ::cuemu::kernel_fail(file, line, "%s: lanes %u and %d pass different pointers or ldm", what, s.lane, l);
    if ((uintptr_t)p % 32)
        ::cuemu::kernel_fail(file, line, "%s: pointer %p is not 256-bit aligned", what, p);
    if (ldm % 4)
        ::cuemu::kernel_fail(file, line, "%s: ldm %u is not a multiple of 4 floats (16 bytes)", what, ldm);
}
inline bool is_col_major(col_major *) { return true; }
inline bool is_col_major(row_major *) { return false; }
} // namespace detail

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout> &f, float v) {
    for (int e = 0; e < f.num_elements; e++) f.x[e] = v;
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout> &f, const float *p, unsigned ldm,
                             const char *file = "?", int line = 0) {
    static_assert(!std::is_same<Layout, void>::value, "operand fragments carry their layout");
    detail::memory_collective("load_matrix_sync", p, ldm, file, line);
    const bool col = detail::is_col_major((Layout *)nullptr);
    const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    for (int e = 0; e < f.num_elements; e++) {
        const int li = (int)lane * f.num_elements + e, r = li / f.cols, c = li % f.cols;
        f.x[e] = col ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
    }
}

template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float> &f, const float *p, unsigned ldm, layout_t layout,
                             const char *file = "?", int line = 0) {
    detail::memory_collective("load_matrix_sync", p, ldm, file, line);
    const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    for (int e = 0; e < f.num_elements; e++) {
        const int li = (int)lane * f.num_elements + e, r = li / f.cols, c = li % f.cols;
        f.x[e] = layout == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
    }
}

template <int M, int N, int K>
inline void store_matrix_sync(float *p, const fragment<accumulator, M, N, K, float> &f, unsigned ldm, layout_t layout,
                              const char *file = "?", int line = 0) {
    detail::memory_collective("store_matrix_sync", p, ldm, file, line);
    const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
    for (int e = 0; e < f.num_elements; e++) {
        const int li = (int)lane * f.num_elements + e, r = li / f.cols, c = li % f.cols;
        (layout == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]) = f.x[e];
    }
}

template <int M, int N, int K, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float> &d, const fragment<matrix_a, M, N, K, precision::tf32, LA> &a,
                     const fragment<matrix_b, M, N, K, precision::tf32, LB> &b,
                     const fragment<accumulator, M, N, K, float> &c, const char *file = "?", int line = 0) {
    struct operands {
        const float *a, *b;
    } mine{a.x, b.x};
    const ::cuemu::warp_slot s =
        ::cuemu::warp_collective(0xffffffffu, ::cuemu::COLL_WMMA, (uint64_t)(uintptr_t)&mine, file, line);
    // Every lane's operands, copied by the first lane to run after the
    // release (no lane has moved on yet), as the hardware reads them at once.
    constexpr int NA = M * K, NB = K * N, EA = NA / 32, EB = NB / 32;
    bool first = false;
    float *snap = static_cast<float *>(::cuemu::warp_scratch(sizeof(float) * (NA + NB), s.generation, &first));
    if (first)
        for (int l = 0; l < 32; l++) {
            const operands *o = reinterpret_cast<const operands *>((uintptr_t)s.lanes[l]);
            for (int e = 0; e < EA; e++) snap[l * EA + e] = detail::tf32_truncate(o->a[e]);
            for (int e = 0; e < EB; e++) snap[NA + l * EB + e] = detail::tf32_truncate(o->b[e]);
        }
    const float *A = snap, *B = snap + NA; // row-major M x K and K x N
    float out[fragment<accumulator, M, N, K, float>::num_elements];
    for (int e = 0; e < d.num_elements; e++) {
        const int li = (int)s.lane * d.num_elements + e, r = li / N, col = li % N;
        float acc = c.x[e];
        for (int k = 0; k < K; k++) acc = acc + A[r * K + k] * B[k * N + col]; // TF32 products are exact in FP32
        out[e] = acc;
    }
    for (int e = 0; e < d.num_elements; e++) d.x[e] = out[e];
}
} // namespace wmma
} // namespace nvcuda

// Name the call site in errors (the functions above take it as trailing arguments).
#define load_matrix_sync(...) load_matrix_sync(__VA_ARGS__, __FILE__, __LINE__)
#define store_matrix_sync(...) store_matrix_sync(__VA_ARGS__, __FILE__, __LINE__)
#define mma_sync(...) mma_sync(__VA_ARGS__, __FILE__, __LINE__)

#endif
