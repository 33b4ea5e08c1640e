// cuemu: what CUDA C++ device code needs to compile as plain C++ and run on
// the CPU (tests/cuemu/README.md). Every CUDA thread is a fiber; the barrier
// and warp-collective calls below suspend it until its block (or warp) has
// arrived. The runtime lives in tests/cuemu/runtime.cpp.
#ifndef CUEMU_DEVICE_H
#define CUEMU_DEVICE_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- qualifiers ------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Per OS thread (one block runs on an OS thread at a time). The marker lets
// tests/cuemu/nvcc append a registration after each declaration, through
// which the runtime poisons the block's shared memory at block start.
#define __shared__ __cuemu_shared static thread_local
#define __constant__ static

// ---- vector types ----------------------------------------------------------
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x, y, z;
};
struct int2 {
    int x, y;
};
struct __attribute__((aligned(16))) int4 {
    int x, y, z, w;
};
struct __attribute__((aligned(8))) float2 {
    float x, y;
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// Set by the scheduler before it switches to a thread.
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- arithmetic intrinsics -------------------------------------------------
// Compiled with -ffp-contract=off: each operation rounds once, as the _rn
// intrinsics promise (nvcc's own contraction of a*b+c is not emulated).
template <class T>
inline T __ldg(const T *p) {
    return *p;
}
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, sizeof i);
    return i;
}
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, sizeof f);
    return f;
}

// Blocks of different launches run in parallel on OS threads: real atomics.
inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline float atomicAdd(float *p, float v) {
    float old, want;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    do {
        want = old + v;
    } while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}
inline int atomicMax(int *p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}

// ---- barriers and warp collectives (tests/cuemu/runtime.cpp) ---------------
namespace cuemu {
enum collective { COLL_SYNCWARP = 1, COLL_SHUFFLE, COLL_WMMA };

void syncthreads(const char *file, int line);
// Waits until every lane of mask has arrived at a collective of this kind;
// deposit/returns an 8-byte value through the warp's exchange.
struct warp_slot {
    uint64_t *mine;          // this lane's deposit for the current round
    const uint64_t *lanes;   // all 32 deposits of the round, valid after the wait
    unsigned lane, generation;
};
warp_slot warp_collective(unsigned mask, int kind, uint64_t deposit, const char *file, int line);
// The warp's scratch for one collective round (wmma operand snapshots):
// 'first' tells the first lane to run after the release to fill it.
void *warp_scratch(size_t bytes, unsigned generation, bool *first);
// Records a kernel error (the launch then fails) and ends this thread's block.
[[noreturn]] void kernel_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// First registration of a __shared__ object in a block fills it with NaN bytes.
void shared_region(void *p, size_t bytes);
void *dynamic_shared(size_t *bytes);

inline void syncwarp(const char *file, int line, unsigned mask = 0xffffffffu) {
    warp_collective(mask, COLL_SYNCWARP, 0, file, line);
}

enum shfl_mode { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR };
template <class T>
inline T shfl(shfl_mode mode, unsigned mask, T v, int arg, const char *file, int line, int width = 32) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move at most 8 bytes");
    if (width < 1 || width > 32 || (width & (width - 1)))
        kernel_fail(file, line, "shuffle width %d is not a power of two in 1..32", width);
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    const warp_slot s = warp_collective(mask, COLL_SHUFFLE, bits, file, line);
    const int lane = (int)s.lane, base = lane & ~(width - 1), sub = lane - base;
    int src = lane;
    switch (mode) {
    case SHFL_IDX: src = base + (arg & (width - 1)); break;
    case SHFL_UP: src = sub - arg >= 0 ? lane - arg : lane; break;
    case SHFL_DOWN: src = sub + arg < width ? lane + arg : lane; break;
    case SHFL_XOR: src = base + ((sub ^ arg) & (width - 1)); break;
    }
    if (!(mask >> src & 1u))
        kernel_fail(file, line, "lane %d reads lane %d, which is not in the shuffle's mask 0x%08x", lane, src, mask);
    T out;
    std::memcpy(&out, &s.lanes[src], sizeof out);
    return out;
}
} // namespace cuemu

#define __syncthreads() ::cuemu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::cuemu::syncwarp(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(mask, v, src, ...) ::cuemu::shfl(::cuemu::SHFL_IDX, mask, v, src, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, d, ...) ::cuemu::shfl(::cuemu::SHFL_UP, mask, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, d, ...) \
    ::cuemu::shfl(::cuemu::SHFL_DOWN, mask, v, d, __FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, m, ...) ::cuemu::shfl(::cuemu::SHFL_XOR, mask, v, m, __FILE__, __LINE__, ##__VA_ARGS__)

// ---- launches --------------------------------------------------------------
// tests/cuemu/nvcc rewrites k<<<grid, block, shmem, stream>>>(args) into
// cuemu::launch_at(__FILE__, __LINE__, "k", grid, block, shmem, stream)(k)(args).
struct cuemu_stream;
namespace cuemu {
struct launch_cfg {
    const char *file, *name;
    int line;
    dim3 grid, block;
    size_t shmem;
    cuemu_stream *stream;
    int built_arch; // sm_XY of the kernel's translation unit, as XY
};
// Runs every block (fibers per thread); a failure becomes the launch's error.
void run_grid(const launch_cfg &c, void (*body)(void *), void *closure);

template <class... P>
struct bound_launch {
    void (*kernel)(P...);
    launch_cfg cfg;
    template <class... A>
    void operator()(A &&...a) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
        // The arguments as the kernel's parameter types, copied per thread by
        // the call (each CUDA thread gets its own copy, as on the device).
        const std::tuple<typename std::decay<P>::type...> args(std::forward<A>(a)...);
        struct frame {
            void (*k)(P...);
            const std::tuple<typename std::decay<P>::type...> *args;
        } f{kernel, &args};
        run_grid(cfg, [](void *p) {
            const frame *fr = static_cast<const frame *>(p);
            std::apply(fr->k, *fr->args);
        }, &f);
    }
};
struct launcher {
    launch_cfg cfg;
    template <class... P>
    bound_launch<P...> operator()(void (*kernel)(P...)) const {
        return bound_launch<P...>{kernel, cfg};
    }
};
inline launcher launch_at(const char *file, int line, const char *name, dim3 grid, dim3 block, size_t shmem = 0,
                          cuemu_stream *stream = nullptr) {
#ifdef CUEMU_BUILT_ARCH
    return launcher{launch_cfg{file, name, line, grid, block, shmem, stream, CUEMU_BUILT_ARCH}};
#else
    return launcher{launch_cfg{file, name, line, grid, block, shmem, stream, 0}};
#endif
}
} // namespace cuemu

#endif
