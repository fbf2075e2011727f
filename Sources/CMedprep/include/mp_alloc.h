#ifndef MP_ALLOC_H
#define MP_ALLOC_H

/* glibc's mallopt (malloc.h is not in Swift's Glibc module): keep blocks up to 32 MiB on the heap
   and never trim it, so memory freed between slices and cases is reused without page faults.
   Returns 1 when both settings were accepted, 0 otherwise (or on a non-glibc platform). */
int mp_keep_freed_memory(void);

#endif
