#ifndef MP_JPEG_ENCODE_H
#define MP_JPEG_ENCODE_H
#include <stddef.h>
#include <stdint.h>

/* Encodes 8-bit grey (channels 1) or RGB (channels 3) pixels, rows top to bottom, as a baseline
   JPEG at `quality` (1..100). *out is malloc'd (free with mp_free). Errors come back as a status
   and a message; libjpeg never calls exit(). */
int mp_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                   uint8_t **out, size_t *out_len, char *err, size_t err_len);

#endif
