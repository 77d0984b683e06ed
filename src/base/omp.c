/*
 * omp.c — the OpenMP runtime calls behind base.h's RT_OMP wrapper, so no other file
 * includes <omp.h> or needs #ifdef _OPENMP: a build without OpenMP gets one thread.
 */
#include "base.h"

#if defined(_OPENMP)
#include <omp.h>
int rt_omp_threads(void) { return omp_get_max_threads(); }
int rt_omp_thread(void) { return omp_get_thread_num(); }
void rt_omp_set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}
#else
int rt_omp_threads(void) { return 1; }
int rt_omp_thread(void) { return 0; }
void rt_omp_set_threads(int n) { (void)n; }
#endif
