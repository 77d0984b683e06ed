/*
 * blis_wrap.h — includes BLIS's blis.h as a system header: its static inline helpers trip
 * -Wunused-function and -Wtype-limits (and so -Werror) when included as a user header.
 * Only gemm.c includes this.
 */
#ifndef RETORT_BLIS_WRAP_H
#define RETORT_BLIS_WRAP_H
#pragma GCC system_header
#include <blis.h>
#endif
