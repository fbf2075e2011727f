/* Umbrella header of the C shim: each library's wrapper has its own header. */
#include "mp_gzip.h"
#include "mp_png.h"
#include "mp_jpeg.h"
#include "mp_jpeg_encode.h"
#include "mp_sha256.h"
#include "mp_direct_io.h"
#include "mp_alloc.h"
