#ifndef MP_DIRECT_IO_H
#define MP_DIRECT_IO_H

/* Linux's O_DIRECT open flag (its value differs by architecture and Swift's Glibc module does
   not export it: it needs _GNU_SOURCE, set in the .c file). 0 where the platform has none. */
int mp_o_direct_flag(void);

#endif
