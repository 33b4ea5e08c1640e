// Fibers for cuemu: one per CUDA thread, switched cooperatively on one OS
// thread. x86-64 uses a 20-instruction switch (callee-saved registers, MXCSR
// and the x87 control word); other machines fall back to ucontext, which is
// correct but makes a system call per switch.
#ifndef CUEMU_FIBER_H
#define CUEMU_FIBER_H

#include <cstddef>

namespace cuemu {

struct fiber_ctx {
#if defined(__x86_64__)
    void *sp = nullptr;
#else
    alignas(16) char uc[1024]; // a ucontext_t
#endif
};

// Prepares ctx to run entry(arg) on the stack [stack, stack + bytes) at the
// first switch into it. entry must never return.
void fiber_init(fiber_ctx *ctx, char *stack, size_t bytes, void (*entry)(void *), void *arg);
// Saves the current context into from and resumes to.
void fiber_switch(fiber_ctx *from, fiber_ctx *to);

} // namespace cuemu

#endif
