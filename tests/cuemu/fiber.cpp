// Fiber switching for cuemu (fiber.h).
#include "fiber.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)

extern "C" void cuemu_switch(void **save_sp, void *load_sp);
extern "C" void cuemu_fiber_entry();

// Pushes the callee-saved registers and the FP control state on the current
// stack, stores its pointer, loads the other one and pops the same layout.
// A new fiber's stack is laid out so that the pops load entry/arg into
// r13/r12 and `ret` enters cuemu_fiber_entry, which calls entry(arg).
asm(R"(
    .text
    .globl cuemu_switch
    .type cuemu_switch, @function
cuemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuemu_switch, .-cuemu_switch

    .globl cuemu_fiber_entry
    .type cuemu_fiber_entry, @function
cuemu_fiber_entry:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cuemu_fiber_entry, .-cuemu_fiber_entry
)");

namespace cuemu {

void fiber_init(fiber_ctx *ctx, char *stack, size_t bytes, void (*entry)(void *), void *arg) {
    // top is 16-byte aligned; after `ret` pops the entry address rsp == top,
    // so the `callq` in cuemu_fiber_entry sees the ABI's alignment.
    uintptr_t top = ((uintptr_t)stack + bytes) & ~(uintptr_t)15;
    uint64_t *slot = reinterpret_cast<uint64_t *>(top);
    uint32_t fp_state[2];
    asm volatile("stmxcsr %0" : "=m"(fp_state[0]));
    asm volatile("fnstcw %0" : "=m"(fp_state[1]));
    slot[-1] = (uint64_t)(uintptr_t)&cuemu_fiber_entry; // ret
    slot[-2] = 0;                                       // rbp
    slot[-3] = 0;                                       // rbx
    slot[-4] = (uint64_t)(uintptr_t)arg;                // r12
    slot[-5] = (uint64_t)(uintptr_t)entry;              // r13
    slot[-6] = 0;                                       // r14
    slot[-7] = 0;                                       // r15
    std::memcpy(&slot[-8], fp_state, sizeof fp_state);  // mxcsr, x87 control word
    ctx->sp = &slot[-8];
}

void fiber_switch(fiber_ctx *from, fiber_ctx *to) { cuemu_switch(&from->sp, to->sp); }

} // namespace cuemu

#else

#include <ucontext.h>

namespace cuemu {

static_assert(sizeof(ucontext_t) <= sizeof(fiber_ctx::uc), "fiber_ctx too small for ucontext_t");

void fiber_init(fiber_ctx *ctx, char *stack, size_t bytes, void (*entry)(void *), void *arg) {
    ucontext_t *uc = reinterpret_cast<ucontext_t *>(ctx->uc);
    getcontext(uc);
    uc->uc_stack.ss_sp = stack;
    uc->uc_stack.ss_size = bytes;
    uc->uc_link = nullptr;
    // makecontext passes ints: split the pointers into halves.
    const uintptr_t e = (uintptr_t)entry, a = (uintptr_t)arg;
    makecontext(uc, (void (*)())+[](unsigned e_lo, unsigned e_hi, unsigned a_lo, unsigned a_hi) {
        auto fn = (void (*)(void *))(((uintptr_t)e_hi << 32) | e_lo);
        fn((void *)(((uintptr_t)a_hi << 32) | a_lo));
    }, 4, (unsigned)e, (unsigned)(e >> 32), (unsigned)a, (unsigned)(a >> 32));
}

void fiber_switch(fiber_ctx *from, fiber_ctx *to) {
    swapcontext(reinterpret_cast<ucontext_t *>(from->uc), reinterpret_cast<ucontext_t *>(to->uc));
}

} // namespace cuemu

#endif
