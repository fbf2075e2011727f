#ifndef MP_PNG_H
#define MP_PNG_H
#include <stddef.h>
#include <stdint.h>
#include "mp_gzip.h" /* status codes (MP_OK, MP_ERR_*) and mp_free */

/* PNG decoding and encoding with libpng 1.6's full API, from and to memory.
   Every libpng error (a longjmp) is trapped here; callers get a status and a message. */

/* What mp_png_decode produced. `pixels` is row-major, channel-interleaved, top row first,
   `bytes_per_sample` 1 or 2 (16-bit samples in host byte order); free it with mp_free. */
typedef struct mp_png_image {
    uint32_t width;
    uint32_t height;
    uint32_t channels;          /* 1 grey or palette index, 2 grey+alpha, 3 RGB, 4 RGBA */
    uint32_t bytes_per_sample;  /* 1 or 2 */
    uint32_t bit_depth;         /* as stored in the file: 1, 2, 4, 8 or 16 */
    uint32_t color_type;        /* PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
    uint32_t interlaced;        /* 1 for Adam7 */
    uint32_t palette_entries;   /* PLTE entries copied to the caller's palette buffer (0..256) */
    uint8_t *pixels;
    size_t pixels_len;
} mp_png_image;

/* Decodes a whole PNG held in memory.
   - grey 1/2/4-bit is expanded to 8 bits scaled to 0..255 (x255, x85, x17), as Pillow reads it;
   - palette images give their indices (1 channel, unpacked to one byte each, never expanded),
     and the PLTE is copied to `palette` (room for 768 bytes, RGB triples);
   - tRNS is ignored (no alpha channel is added); gamma and colour profiles are not applied;
   - Adam7 interlacing is undone;
   - CRC errors in any chunk, a bad zlib stream (Adler-32 included) and missing data are errors.
   `max_bytes` bounds the decoded pixel buffer; an image claiming more, or more than the file's
   size could hold at deflate's best ratio, fails with MP_ERR_TOO_LARGE before anything is allocated. */
int mp_png_decode(const uint8_t *in, size_t in_len, uint64_t max_bytes, mp_png_image *out,
                  uint8_t *palette, char *err, size_t err_len);

/* Encodes `pixels` (row-major, interleaved, 16-bit samples in host byte order) as a PNG.
   channels 1..4 map to grey, grey+alpha, RGB, RGBA; bit_depth 8 or 16. With palette_entries > 0
   (channels 1, bit_depth 8) a palette PNG is written and every index must be < palette_entries.
   zlib `level` 0..9. *out must be freed with mp_free. */
int mp_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                  uint32_t bit_depth, const uint8_t *palette, uint32_t palette_entries, int level,
                  uint8_t **out, size_t *out_len, char *err, size_t err_len);

#endif
