#ifndef MP_GZIP_H
#define MP_GZIP_H
#include <stddef.h>
#include <stdint.h>

/* Status codes shared by all medprep C shims. */
enum { MP_OK = 0, MP_ERR_CORRUPT = 1, MP_ERR_TRUNCATED = 2, MP_ERR_TOO_LARGE = 3, MP_ERR_NOMEM = 4, MP_ERR_UNSUPPORTED = 5 };

/* Inflate at most `want` bytes from the start of a gzip (or zlib) stream with zlib.
   Concatenated gzip members are followed. *got receives the bytes produced (< want when the
   stream ends early). Never allocates beyond zlib's fixed state. */
int mp_gzip_prefix(const uint8_t *in, size_t in_len, uint8_t *out, size_t want, size_t *got,
                   char *err, size_t err_len);

/* As mp_gzip_prefix, then inflates (and drops) the rest of every member so that each CRC-32
   and length trailer is checked; a mismatch is MP_ERR_CORRUPT. Memory stays fixed (64 KiB). */
int mp_gzip_prefix_verified(const uint8_t *in, size_t in_len, uint8_t *out, size_t want, size_t *got,
                            char *err, size_t err_len);

/* Whole-buffer gzip decompression with libdeflate, following concatenated members.
   Fails with MP_ERR_TOO_LARGE when the data would exceed out_cap. */
int mp_gzip_whole(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len,
                  char *err, size_t err_len);

/* gzip-compress with libdeflate at `level` (1..12). *out must be freed with mp_free. */
int mp_gzip_compress(const uint8_t *in, size_t in_len, int level, uint8_t **out, size_t *out_len);

void mp_free(void *p);

#endif
