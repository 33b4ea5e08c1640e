// cuemu's CUDA runtime API: the emulated device, device memory (host memory
// in a table of allocations, NaN-filled when allocated, with a capacity and
// an injectable failure), synchronous streams and events, and the error
// state. Copies check that their device side lies inside one allocation.
#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "internal.h"

namespace cuemu {

std::string format(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

// ---- the device ------------------------------------------------------------
// CUEMU_DEVICE: sm90 (default), sm80, sm61 or none. Few SMs on purpose: the
// conv tile choice depends on the SM count, and 16 lets small test shapes
// reach every tile shape. CUEMU_MEM_MB sets the capacity (default 8 GiB, the
// target GPU class).
const device_info &device() {
    static const device_info d = [] {
        device_info i{};
        const char *e = getenv("CUEMU_DEVICE");
        const std::string which = e && *e ? e : "sm90";
        i.present = which != "none";
        cudaDeviceProp &p = i.prop;
        p.major = 9, p.minor = 0, p.multiProcessorCount = 16, p.clockRate = 1755000;
        if (which == "sm80") p.major = 8, p.minor = 0, p.multiProcessorCount = 16, p.clockRate = 1410000;
        else if (which == "sm61") p.major = 6, p.minor = 1, p.multiProcessorCount = 20, p.clockRate = 1733000;
        else if (which != "sm90" && which != "none") {
            fprintf(stderr, "cuemu: CUEMU_DEVICE=%s is not sm90, sm80, sm61 or none\n", which.c_str());
            exit(2);
        }
        const char *mb = getenv("CUEMU_MEM_MB");
        p.totalGlobalMem = (mb && atol(mb) > 0 ? (size_t)atol(mb) : 8192) << 20;
        snprintf(p.name, sizeof p.name, "cuemu emulated sm_%d%d (%d SMs, %zu MiB; a CPU emulation, not a GPU)", p.major,
                 p.minor, p.multiProcessorCount, p.totalGlobalMem >> 20);
        p.sharedMemPerBlock = 48 * 1024;
        p.warpSize = 32;
        p.maxThreadsPerBlock = 1024;
        p.maxThreadsDim[0] = 1024, p.maxThreadsDim[1] = 1024, p.maxThreadsDim[2] = 64;
        p.maxGridSize[0] = 0x7fffffff, p.maxGridSize[1] = 65535, p.maxGridSize[2] = 65535;
        return i;
    }();
    return d;
}

thread_order order(unsigned *seed) {
    static const std::pair<thread_order, unsigned> o = [] {
        const char *e = getenv("CUEMU_ORDER");
        const std::string s = e ? e : "forward";
        if (s == "forward" || s.empty()) return std::make_pair(ORDER_FORWARD, 0u);
        if (s == "reverse") return std::make_pair(ORDER_REVERSE, 0u);
        if (s.compare(0, 6, "random") == 0)
            return std::make_pair(ORDER_RANDOM, s.size() > 7 ? (unsigned)strtoul(s.c_str() + 7, nullptr, 10) : 1u);
        fprintf(stderr, "cuemu: CUEMU_ORDER=%s is not forward, reverse or random[:seed]\n", s.c_str());
        exit(2);
    }();
    *seed = o.second;
    return o.first;
}

// ---- errors ------------------------------------------------------------------

namespace {
thread_local cudaError_t last_error = cudaSuccess;
thread_local cudaError_t pending_launch_error = cudaSuccess; // returned by the next synchronise
thread_local std::map<int, std::string> *details;

const char *error_name(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoKernelImageForDevice: return "no kernel image is available for execution on the device";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    }
    return "unknown error";
}
} // namespace

cudaError_t set_error(cudaError_t e, const std::string &detail) {
    if (e == cudaSuccess) return e;
    last_error = e;
    if (!details) details = new std::map<int, std::string>;
    (*details)[e] = format("%s (cuemu: %s)", error_name(e), detail.c_str());
    if (getenv("CUEMU_VERBOSE")) fprintf(stderr, "cuemu: %s\n", (*details)[e].c_str());
    return e;
}

void set_launch_failure(const std::string &detail) {
    set_error(cudaErrorLaunchFailure, detail);
    pending_launch_error = cudaErrorLaunchFailure;
    fprintf(stderr, "cuemu: launch failed: %s\n", detail.c_str()); // the one place the full story is printed
}

static cudaError_t sync_result() {
    const cudaError_t e = pending_launch_error;
    pending_launch_error = cudaSuccess;
    if (e != cudaSuccess) last_error = e;
    return e;
}

// ---- memory ------------------------------------------------------------------

namespace {
struct allocation {
    size_t bytes;
    bool device; // false: pinned host memory
};
std::mutex mem_mu;
std::map<uintptr_t, allocation> allocations;
size_t live_device_bytes;
long alloc_calls, fail_at;

cudaError_t allocate(void **ptr, size_t bytes, bool dev, const char *what) {
    if (!ptr) return set_error(cudaErrorInvalidValue, format("%s: NULL result pointer", what));
    if (!device().present) return set_error(cudaErrorNoDevice, format("%s: no device", what));
    std::lock_guard<std::mutex> lock(mem_mu);
    alloc_calls++;
    if (fail_at > 0 && alloc_calls == fail_at)
        return set_error(cudaErrorMemoryAllocation, format("%s of %zu bytes: allocation call %ld fails on purpose "
                                                           "(cuemu_fail_alloc_at)", what, bytes, alloc_calls));
    if (dev && live_device_bytes + bytes > device().prop.totalGlobalMem)
        return set_error(cudaErrorMemoryAllocation, format("%s of %zu bytes: %zu of %zu bytes in use", what, bytes,
                                                           live_device_bytes, device().prop.totalGlobalMem));
    if (bytes == 0) {
        *ptr = nullptr;
        return cudaSuccess;
    }
    const size_t rounded = (bytes + 255) / 256 * 256;
    void *p = aligned_alloc(256, rounded);
    if (!p) return set_error(cudaErrorMemoryAllocation, format("%s of %zu bytes: host memory exhausted", what, bytes));
    memset(p, 0xff, rounded); // NaN: reads of memory nobody wrote show up
    allocations[(uintptr_t)p] = allocation{bytes, dev};
    if (dev) live_device_bytes += bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t release(void *p, bool dev, const char *what) {
    if (!p) return cudaSuccess;
    std::lock_guard<std::mutex> lock(mem_mu);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end() || it->second.device != dev)
        return set_error(cudaErrorInvalidDevicePointer,
                         format("%s(%p): not a live %s allocation (freed twice, or never allocated)", what, p,
                                dev ? "device" : "pinned host"));
    if (dev) live_device_bytes -= it->second.bytes;
    allocations.erase(it);
    free(p);
    return cudaSuccess;
}

// The allocation holding p, or NULL.
const allocation *find_allocation(const void *p, uintptr_t *base) {
    auto it = allocations.upper_bound((uintptr_t)p);
    if (it == allocations.begin()) return nullptr;
    --it;
    if ((uintptr_t)p >= it->first + (it->second.bytes ? it->second.bytes : 1)) return nullptr;
    *base = it->first;
    return &it->second;
}
} // namespace

bool device_range(const void *p, size_t bytes, std::string *why) {
    std::lock_guard<std::mutex> lock(mem_mu);
    uintptr_t base = 0;
    const allocation *a = find_allocation(p, &base);
    if (!a || !a->device) {
        *why = format("%p is not device memory", p);
        return false;
    }
    if ((uintptr_t)p + bytes > base + a->bytes) {
        *why = format("%zu bytes at offset %zu overrun the %zu-byte allocation at %p", bytes, (size_t)((uintptr_t)p - base),
                      a->bytes, (void *)base);
        return false;
    }
    return true;
}

static bool is_device(const void *p) {
    std::lock_guard<std::mutex> lock(mem_mu);
    uintptr_t base = 0;
    const allocation *a = find_allocation(p, &base);
    return a && a->device;
}

// The device sides of a copy must lie inside allocations, the host sides outside.
static cudaError_t check_copy(const char *what, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    if (kind == cudaMemcpyDefault)
        kind = is_device(dst) ? (is_device(src) ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                              : (is_device(src) ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    std::string why;
    if (dst_dev ? !device_range(dst, bytes, &why) : is_device(dst))
        return set_error(cudaErrorInvalidValue, format("%s of %zu bytes: destination: %s", what, bytes,
                                                       dst_dev ? why.c_str() : "device memory, but the kind says host"));
    if (src_dev ? !device_range(src, bytes, &why) : is_device(src))
        return set_error(cudaErrorInvalidValue, format("%s of %zu bytes: source: %s", what, bytes,
                                                       src_dev ? why.c_str() : "device memory, but the kind says host"));
    return cudaSuccess;
}

// ---- streams and events ------------------------------------------------------

namespace {
std::mutex handle_mu;
std::set<const void *> streams, events;
double now() {
    timeval tv;
    gettimeofday(&tv, nullptr);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}
bool event_valid(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(handle_mu);
    return events.count(e) != 0;
}
// A new handle registered in its set, and one deleted when the set holds it.
template <class T> cudaError_t add_handle(std::set<const void *> &set, T *h, T **out) {
    std::lock_guard<std::mutex> lock(handle_mu);
    set.insert(*out = h);
    return cudaSuccess;
}
template <class T> cudaError_t remove_handle(std::set<const void *> &set, T *h, const char *what) {
    std::lock_guard<std::mutex> lock(handle_mu);
    if (!h || !set.erase(h)) return set_error(cudaErrorInvalidResourceHandle, what);
    delete h;
    return cudaSuccess;
}
} // namespace

bool stream_valid(cudaStream_t s) {
    if (!s) return true;
    std::lock_guard<std::mutex> lock(handle_mu);
    return streams.count(s) != 0;
}

cudaError_t func_attributes(cudaFuncAttributes *attr, int built_arch) {
    if (!device().present) return set_error(cudaErrorNoDevice, "cudaFuncGetAttributes: no device");
    const cudaDeviceProp &p = device().prop;
    if (built_arch > p.major * 10 + p.minor)
        return set_error(cudaErrorNoKernelImageForDevice,
                         format("built for sm_%d, the device is sm_%d%d", built_arch, p.major, p.minor));
    *attr = cudaFuncAttributes{built_arch, built_arch, 1024, 0};
    return cudaSuccess;
}

} // namespace cuemu

using namespace cuemu;

// ---- the API -------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int *count) {
    *count = device().present ? 1 : 0;
    return device().present ? cudaSuccess : set_error(cudaErrorNoDevice, "CUEMU_DEVICE=none");
}
cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return device().present ? cudaSuccess : set_error(cudaErrorNoDevice, "CUEMU_DEVICE=none");
}
cudaError_t cudaSetDevice(int dev) {
    return dev == 0 && device().present ? cudaSuccess : set_error(cudaErrorInvalidDevice, format("device %d", dev));
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev) {
    if (dev != 0 || !device().present) return set_error(cudaErrorInvalidDevice, format("device %d", dev));
    *prop = device().prop;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int dev) {
    if (dev != 0 || !device().present) return set_error(cudaErrorInvalidDevice, format("device %d", dev));
    const cudaDeviceProp &p = device().prop;
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; return cudaSuccess;
    case cudaDevAttrClockRate: *value = p.clockRate; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; return cudaSuccess;
    }
    return set_error(cudaErrorInvalidValue, format("device attribute %d is not emulated", (int)attr));
}
cudaError_t cudaDeviceSynchronize(void) { return sync_result(); }
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

cudaError_t cudaMalloc(void **ptr, size_t bytes) { return allocate(ptr, bytes, true, "cudaMalloc"); }
cudaError_t cudaFree(void *ptr) { return release(ptr, true, "cudaFree"); }
cudaError_t cudaHostAlloc(void **ptr, size_t bytes, unsigned) { return allocate(ptr, bytes, false, "cudaHostAlloc"); }
cudaError_t cudaMallocHost(void **ptr, size_t bytes) { return allocate(ptr, bytes, false, "cudaMallocHost"); }
cudaError_t cudaFreeHost(void *ptr) { return release(ptr, false, "cudaFreeHost"); }
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    if (!device().present) return set_error(cudaErrorNoDevice, "cudaMemGetInfo");
    std::lock_guard<std::mutex> lock(mem_mu);
    *total_bytes = device().prop.totalGlobalMem;
    *free_bytes = *total_bytes - live_device_bytes;
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (const cudaError_t e = check_copy("cudaMemcpy", dst, src, bytes, kind)) return e;
    if (bytes) memmove(dst, src, bytes);
    return sync_result();
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (!stream_valid(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: unknown stream");
    if (const cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, bytes, kind)) return e;
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    std::string why;
    if (bytes && !device_range(dst, bytes, &why)) return set_error(cudaErrorInvalidValue, "cudaMemset: " + why);
    if (bytes) memset(dst, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    if (!stream_valid(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: unknown stream");
    return cudaMemset(dst, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
    if (!device().present) return set_error(cudaErrorNoDevice, "cudaStreamCreate");
    return add_handle(streams, new cuemu_stream{flags}, stream);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    return remove_handle(streams, stream, "cudaStreamDestroy: unknown stream");
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!stream_valid(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream");
    return sync_result();
}
cudaError_t cudaEventCreate(cudaEvent_t *event) { return cudaEventCreateWithFlags(event, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned) {
    return add_handle(events, new cuemu_event{now()}, event);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    return remove_handle(events, event, "cudaEventDestroy: unknown event");
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!event_valid(event) || !stream_valid(stream))
        return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown event or stream");
    event->seconds = now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event_valid(event)) return set_error(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: unknown event");
    return sync_result();
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!event_valid(start) || !event_valid(end))
        return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unknown event");
    *ms = (float)((end->seconds - start->seconds) * 1e3);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }
const char *cudaGetErrorString(cudaError_t e) {
    if (details) {
        auto it = details->find(e);
        if (it != details->end()) return it->second.c_str();
    }
    return error_name(e);
}
const char *cudaGetErrorName(cudaError_t e) { return error_name(e); }

// ---- hooks for tests (declared weak in tests/test_cuda.c) ----------------------

extern "C" {
// The device's name (it says it is emulated).
const char *cuemu_device_name(void) { return device().prop.name; }
// Makes the n-th device or pinned allocation from now fail (0: none) and
// restarts the count cuemu_alloc_calls returns.
void cuemu_fail_alloc_at(long n) {
    std::lock_guard<std::mutex> lock(mem_mu);
    fail_at = n;
    alloc_calls = 0;
}
long cuemu_alloc_calls(void) {
    std::lock_guard<std::mutex> lock(mem_mu);
    return alloc_calls;
}
// Live allocations (device and pinned) and device bytes, for leak checks.
long cuemu_live_allocations(void) {
    std::lock_guard<std::mutex> lock(mem_mu);
    return (long)allocations.size();
}
size_t cuemu_live_device_bytes(void) {
    std::lock_guard<std::mutex> lock(mem_mu);
    return live_device_bytes;
}
}
