#define _GNU_SOURCE
#include <fcntl.h>
#include "mp_direct_io.h"

int mp_o_direct_flag(void) {
#ifdef O_DIRECT
    return O_DIRECT;
#else
    return 0;
#endif
}
