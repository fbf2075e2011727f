#ifndef MP_SHA256_H
#define MP_SHA256_H
#include <stddef.h>
#include <stdint.h>

/* Streaming SHA-256 through OpenSSL's libcrypto, which uses the CPU's SHA extensions where
   present (several times faster than portable code on multi-gigabyte shards). */
typedef struct mp_sha256_ctx mp_sha256_ctx;

mp_sha256_ctx *mp_sha256_new(void);
int mp_sha256_update(mp_sha256_ctx *ctx, const void *data, size_t len);
/* Writes the 32-byte digest; the context is then spent (free it with mp_sha256_free). */
int mp_sha256_final(mp_sha256_ctx *ctx, uint8_t out[32]);
void mp_sha256_free(mp_sha256_ctx *ctx);

#endif
