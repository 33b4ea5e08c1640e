// What the parts of cuemu share: the emulated device, the allocation table
// and the error state (runtime.cpp), launches (scheduler.cpp).
#ifndef CUEMU_INTERNAL_H
#define CUEMU_INTERNAL_H

#include <string>

#include "include/cuda_runtime.h"

struct cuemu_stream {
    unsigned flags;
};
struct cuemu_event {
    double seconds; // wall time at the last record
};

namespace cuemu {

struct device_info {
    bool present;
    cudaDeviceProp prop;
};
const device_info &device();

// Records e as the last error (with an explanation cudaGetErrorString returns)
// and returns it; cudaSuccess clears nothing.
cudaError_t set_error(cudaError_t e, const std::string &detail);
// A launch that failed while running: also returned by the next synchronise.
void set_launch_failure(const std::string &detail);
bool stream_valid(cudaStream_t s);
// Whether [p, p + bytes) lies inside one device allocation (why says otherwise).
bool device_range(const void *p, size_t bytes, std::string *why);
// Environment knobs (tests/cuemu/README.md).
enum thread_order { ORDER_FORWARD, ORDER_REVERSE, ORDER_RANDOM };
thread_order order(unsigned *seed);
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

} // namespace cuemu

#endif
