/* The CPUs OpenMP's places span. With OMP_PROC_BIND set, libgomp binds the
 * initial thread to its first place when it loads, and a program this
 * thread starts (exec, posix_spawn) inherits that one place: all its threads
 * on one core. The places themselves come from the mask the process was
 * started with, so their union gives it back. */
#ifndef ATTRIB_CORE_AFFINITY_H
#define ATTRIB_CORE_AFFINITY_H

#include <sched.h>

/* The union of every OpenMP place's CPUs into set; 0, or -1 when OpenMP
 * defines no places (nothing is bound then). */
int at_openmp_places_cpus(cpu_set_t *set);

/* Widens the calling thread's mask to at_openmp_places_cpus before it starts
 * another program; old (may be NULL) gets the mask it had, for
 * at_restore_cpus. Returns 1 when it changed the mask, else 0. */
int at_widen_cpus_for_child(cpu_set_t *old);
void at_restore_cpus(const cpu_set_t *old);

#endif
