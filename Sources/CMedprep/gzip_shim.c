#include "mp_gzip.h"
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void set_err(char *err, size_t err_len, const char *msg) {
    if (err && err_len) snprintf(err, err_len, "%s", msg);
}

void mp_free(void *p) { free(p); }

/* Inflates into `out` until `want` bytes; with `verify_rest`, then on to the end of the last
   member through a small scratch buffer (bytes past `want` are dropped), so that every member's
   CRC-32 and length trailer is checked: data that inflates to more than is needed is still
   verified. zlib checks the trailer when windowBits selects gzip. */
static int inflate_stream(const uint8_t *in, size_t in_len, uint8_t *out, size_t want, size_t *got, int verify_rest,
                          char *err, size_t err_len) {
    z_stream s;
    memset(&s, 0, sizeof s);
    *got = 0;
    /* 32 + MAX_WBITS: detect gzip or zlib header automatically. */
    if (inflateInit2(&s, 32 + MAX_WBITS) != Z_OK) { set_err(err, err_len, "zlib could not start"); return MP_ERR_NOMEM; }
    uint8_t scratch[1 << 16];
    size_t in_pos = 0;
    int status = MP_OK;
    for (;;) {
        int filling = *got < want;
        if (!filling && !verify_rest) break;
        size_t in_chunk = in_len - in_pos > 0x40000000u ? 0x40000000u : in_len - in_pos;
        size_t out_chunk = filling ? (want - *got > 0x40000000u ? 0x40000000u : want - *got) : sizeof scratch;
        s.next_in = (Bytef *)(in + in_pos);
        s.avail_in = (uInt)in_chunk;
        s.next_out = filling ? out + *got : scratch;
        s.avail_out = (uInt)out_chunk;
        int rc = inflate(&s, Z_NO_FLUSH);
        size_t used_in = in_chunk - s.avail_in;
        in_pos += used_in;
        if (filling) *got += out_chunk - s.avail_out;
        if (rc == Z_STREAM_END) {
            /* Another gzip member may follow. */
            if (in_pos + 2 <= in_len && in[in_pos] == 0x1f && in[in_pos + 1] == 0x8b) {
                inflateReset(&s);
                continue;
            }
            break;
        }
        if (rc == Z_BUF_ERROR && in_pos >= in_len) { status = MP_ERR_TRUNCATED; set_err(err, err_len, "gzip stream ends early (truncated file)"); break; }
        if (rc == Z_DATA_ERROR && s.msg && strcmp(s.msg, "incorrect data check") == 0) {
            status = MP_ERR_CORRUPT;
            set_err(err, err_len, "CRC-32 check failed: the decompressed data differs from what was compressed (corrupt file)");
            break;
        }
        if (rc == Z_DATA_ERROR && s.msg && strcmp(s.msg, "incorrect length check") == 0) {
            status = MP_ERR_CORRUPT;
            set_err(err, err_len, "the gzip length trailer does not match the decompressed size (corrupt file)");
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            status = MP_ERR_CORRUPT;
            set_err(err, err_len, s.msg ? s.msg : "corrupt gzip data");
            break;
        }
        if (rc == Z_BUF_ERROR && used_in == 0 && out_chunk == s.avail_out) { status = MP_ERR_CORRUPT; set_err(err, err_len, "gzip stream makes no progress"); break; }
    }
    inflateEnd(&s);
    return status;
}

int mp_gzip_prefix(const uint8_t *in, size_t in_len, uint8_t *out, size_t want, size_t *got,
                   char *err, size_t err_len) {
    return inflate_stream(in, in_len, out, want, got, 0, err, err_len);
}

int mp_gzip_prefix_verified(const uint8_t *in, size_t in_len, uint8_t *out, size_t want, size_t *got,
                            char *err, size_t err_len) {
    return inflate_stream(in, in_len, out, want, got, 1, err, err_len);
}

int mp_gzip_whole(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len,
                  char *err, size_t err_len) {
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d) { set_err(err, err_len, "libdeflate could not start"); return MP_ERR_NOMEM; }
    size_t in_pos = 0, out_pos = 0;
    int status = MP_OK;
    *out_len = 0;
    while (in_pos < in_len) {
        if (in_len - in_pos < 18 || in[in_pos] != 0x1f || in[in_pos + 1] != 0x8b) {
            if (in_pos == 0) { status = MP_ERR_CORRUPT; set_err(err, err_len, "not a gzip stream"); }
            break; /* trailing padding after the last member is ignored, as gzip does */
        }
        size_t used_in = 0, produced = 0;
        enum libdeflate_result r = libdeflate_gzip_decompress_ex(d, in + in_pos, in_len - in_pos, out + out_pos,
                                                                out_cap - out_pos, &used_in, &produced);
        if (r == LIBDEFLATE_INSUFFICIENT_SPACE) { status = MP_ERR_TOO_LARGE; set_err(err, err_len, "decompressed data is larger than expected"); break; }
        if (r != LIBDEFLATE_SUCCESS) {
            status = MP_ERR_CORRUPT;
            set_err(err, err_len, "corrupt or truncated gzip data (deflate stream or CRC check failed)");
            break;
        }
        in_pos += used_in;
        out_pos += produced;
    }
    *out_len = out_pos;
    libdeflate_free_decompressor(d);
    return status;
}

int mp_gzip_compress(const uint8_t *in, size_t in_len, int level, uint8_t **out, size_t *out_len) {
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    if (!c) return MP_ERR_NOMEM;
    size_t bound = libdeflate_gzip_compress_bound(c, in_len);
    uint8_t *buf = malloc(bound ? bound : 1);
    if (!buf) { libdeflate_free_compressor(c); return MP_ERR_NOMEM; }
    size_t n = libdeflate_gzip_compress(c, in, in_len, buf, bound);
    libdeflate_free_compressor(c);
    if (n == 0) { free(buf); return MP_ERR_NOMEM; }
    *out = buf;
    *out_len = n;
    return MP_OK;
}
