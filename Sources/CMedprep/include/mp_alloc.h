#ifndef MP_ALLOC_H
#define MP_ALLOC_H

/* glibc's mallopt (malloc.h is not in Swift's Glibc module): every block comes from the heap (no
   separate mmap per large block) and the heap is never trimmed, so memory freed between slices
   and cases is reused without page faults and zeroing. Returns 1 when all settings were
   accepted, 0 otherwise (or on a non-glibc platform). */
int mp_keep_freed_memory(void);

#endif
