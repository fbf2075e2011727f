#include "mp_sha256.h"
#include <openssl/evp.h>

struct mp_sha256_ctx { EVP_MD_CTX *md; };

mp_sha256_ctx *mp_sha256_new(void) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md) return NULL;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(md); return NULL; }
    mp_sha256_ctx *ctx = (mp_sha256_ctx *)OPENSSL_malloc(sizeof *ctx);
    if (!ctx) { EVP_MD_CTX_free(md); return NULL; }
    ctx->md = md;
    return ctx;
}

int mp_sha256_update(mp_sha256_ctx *ctx, const void *data, size_t len) {
    return EVP_DigestUpdate(ctx->md, data, len) == 1 ? 0 : 1;
}

int mp_sha256_final(mp_sha256_ctx *ctx, uint8_t out[32]) {
    unsigned int n = 0;
    return EVP_DigestFinal_ex(ctx->md, out, &n) == 1 && n == 32 ? 0 : 1;
}

void mp_sha256_free(mp_sha256_ctx *ctx) {
    if (!ctx) return;
    EVP_MD_CTX_free(ctx->md);
    OPENSSL_free(ctx);
}
