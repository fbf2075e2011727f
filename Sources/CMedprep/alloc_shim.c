#include "mp_alloc.h"
#include <stdlib.h>  /* defines __GLIBC__ on glibc */

#if defined(__GLIBC__)
#include <malloc.h>
#include <limits.h>

int mp_keep_freed_memory(void) {
    int a = mallopt(M_MMAP_THRESHOLD, 32 << 20);
    int b = mallopt(M_TRIM_THRESHOLD, INT_MAX);
    int c = mallopt(M_MMAP_MAX, 0);
    return a == 1 && b == 1 && c == 1;
}
#else
int mp_keep_freed_memory(void) { return 0; }
#endif
