#ifndef MP_JPEG_H
#define MP_JPEG_H
#include <stddef.h>
#include <stdint.h>
#include "mp_gzip.h" /* status codes (MP_OK, MP_ERR_*) and mp_free */

/* JPEG decoding with libjpeg(-turbo) from memory. error_exit longjmps back here (never exit()),
   output_message is silenced, and warnings about the data (premature end of file, corrupt
   entropy data, extraneous bytes) are errors: a damaged JPEG never decodes "successfully". */

/* What mp_jpeg_decode produced: `pixels` row-major, interleaved, top row first, 8 bits a sample;
   free with mp_free. */
typedef struct mp_jpeg_image {
    uint32_t width;
    uint32_t height;
    uint32_t channels;       /* 1 (greyscale) or 3 (RGB) */
    uint32_t components;     /* components in the file */
    uint32_t color_space;    /* libjpeg J_COLOR_SPACE of the file: 1 grey, 2 RGB, 3 YCbCr */
    uint32_t progressive;    /* 1 for a progressive (SOF2) file */
    uint32_t arithmetic;     /* 1 for arithmetic coding */
    uint32_t h_samp[3];      /* sampling factors of the first three components */
    uint32_t v_samp[3];
    uint8_t *pixels;
    size_t pixels_len;
} mp_jpeg_image;

/* Decodes a whole JPEG held in memory with libjpeg's defaults as Pillow uses them: ISLOW
   integer IDCT, fancy upsampling, YCbCr converted to RGB. Greyscale gives 1 channel, YCbCr and
   RGB give 3; CMYK/YCCK, other component counts and precisions other than 8 bits fail with
   MP_ERR_UNSUPPORTED. `max_bytes` bounds the decoded pixel buffer; an image claiming more, or
   more than the file's size could plausibly hold, fails with MP_ERR_TOO_LARGE before decoding.
   A file ending early fails with MP_ERR_TRUNCATED, other damage with MP_ERR_CORRUPT. */
int mp_jpeg_decode(const uint8_t *in, size_t in_len, uint64_t max_bytes, mp_jpeg_image *out,
                   char *err, size_t err_len);

/* Version of the libjpeg(-turbo) linked in, e.g. 2001005 for 2.1.5 (0 when unknown). */
int mp_jpeg_library_version(void);

#endif
