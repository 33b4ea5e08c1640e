/* Per-thread scratch buffers for the CPU kernels: grown on demand and kept
 * (no malloc in the loops, none at all after the first call of a given
 * size), freed when the thread exits (a pthread key destructor, so pool
 * threads that OpenMP retires do not leak them). A buffer is only ever
 * touched by its thread, so its lines stay in that core's caches instead of
 * moving between cores as a shared workspace split differently by
 * successive calls would. */
#ifndef ATTRIB_CPU_THREAD_SCRATCH_H
#define ATTRIB_CPU_THREAD_SCRATCH_H

#include <stddef.h>

enum {
    AT_SCRATCH_GEMM_A,      /* the SGEMM's packed A blocks (and few_rows_b's accumulators) */
    AT_SCRATCH_GEMM_B,      /* the SGEMM's packed B panels */
    AT_SCRATCH_CONV_BANDS,  /* the channels conv's padded input bands */
    AT_SCRATCH_WINOGRAD,    /* Winograd's chunk buffers (V and M) */
    AT_SCRATCH_SLOTS
};

/* Buffer `slot` of the calling thread, at least `floats` long and 64-byte
 * aligned; NULL when memory is short (the buffer it had stays valid). */
float *at_thread_scratch(int slot, size_t floats);

#endif
