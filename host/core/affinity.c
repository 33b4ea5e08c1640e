#include "core/affinity.h"

#include <omp.h>
#include <pthread.h>

int at_openmp_places_cpus(cpu_set_t *set) {
    const int places = omp_get_num_places();
    CPU_ZERO(set);
    for (int p = 0; p < places; p++) {
        const int n = omp_get_place_num_procs(p);
        int ids[CPU_SETSIZE];
        if (n <= 0 || n > CPU_SETSIZE) continue;
        omp_get_place_proc_ids(p, ids);
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], set);
    }
    return CPU_COUNT(set) > 0 ? 0 : -1;
}

int at_widen_cpus_for_child(cpu_set_t *old) {
    cpu_set_t set;
    if (at_openmp_places_cpus(&set)) return 0;
    if (old && pthread_getaffinity_np(pthread_self(), sizeof *old, old)) return 0;
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

void at_restore_cpus(const cpu_set_t *old) { pthread_setaffinity_np(pthread_self(), sizeof *old, old); }
