/* PNG through libpng's full API, from and to memory. libpng reports errors by longjmp:
   every entry point here sets its own jump buffer, so nothing ever unwinds through Swift. */
#include "mp_png.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Widest and tallest image libpng may accept (its own default is 1,000,000). The byte limits
   below are the real guard; this one stops silly IHDRs before any row buffer is sized. */
#define MP_PNG_MAX_DIM (1u << 20)
/* Deflate cannot do better than 1032:1 (a 258-byte match in two 1-bit codes). */
#define MP_DEFLATE_MAX_RATIO 1032u
/* Small images may always be attempted: the decoder itself then reports what is missing. */
#define MP_PLAUSIBLE_SLACK ((uint64_t)1 << 20)

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void copy_err(char *err, size_t err_len, const char *msg) {
    if (err && err_len) snprintf(err, err_len, "%s", msg);
}

/* Name of the chunk libpng is reading, for messages ("IDAT"), or "" when unknown. */
static void chunk_name(png_structp png, char out[5]) {
    png_uint_32 t = png_get_io_chunk_type(png);
    out[0] = 0;
    if (t == 0) return;
    for (int i = 0; i < 4; i++) {
        char ch = (char)((t >> (24 - 8 * i)) & 0xff);
        out[i] = (ch >= 'A' && ch <= 'z') ? ch : '?';
    }
    out[4] = 0;
}

/* ---------------------------------------------------------------- reading */

typedef struct read_ctx {
    const uint8_t *in;
    size_t len;
    size_t pos;
    int status;       /* MP_OK until something fails; preset by the callback that fails */
    char msg[320];
    uint8_t *pixels;  /* owned until handed to the caller */
    png_bytep *rows;
} read_ctx;

static void read_error(png_structp png, png_const_charp msg) {
    read_ctx *c = (read_ctx *)png_get_error_ptr(png);
    if (c->status == MP_OK) c->status = MP_ERR_CORRUPT;
    if (c->msg[0] == 0) snprintf(c->msg, sizeof c->msg, "libpng reports '%s'", msg ? msg : "error");
    png_longjmp(png, 1);
}

/* Warnings (benign errors such as a questionable sRGB profile) are not fatal and never printed. */
static void read_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void read_data(png_structp png, png_bytep out, size_t n) {
    read_ctx *c = (read_ctx *)png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        char name[5];
        chunk_name(png, name);
        png_uint_32 state = png_get_io_state(png);
        c->status = MP_ERR_TRUNCATED;
        if ((state & PNG_IO_CHUNK_HDR) && name[0])
            snprintf(c->msg, sizeof c->msg, "the file ends after '%zu' bytes, where the chunk after '%s' should start", c->len, name);
        else if ((state & PNG_IO_CHUNK_HDR))
            snprintf(c->msg, sizeof c->msg, "the file ends after '%zu' bytes, where the first chunk should start", c->len);
        else if ((state & PNG_IO_CHUNK_CRC) && name[0])
            snprintf(c->msg, sizeof c->msg, "the file ends after '%zu' bytes, in the CRC of the '%s' chunk", c->len, name);
        else if (name[0])
            snprintf(c->msg, sizeof c->msg, "the file ends after '%zu' bytes, inside the '%s' chunk", c->len, name);
        else
            snprintf(c->msg, sizeof c->msg, "the file ends after '%zu' bytes, inside a chunk", c->len);
        png_error(png, c->msg);
    }
    memcpy(out, c->in + c->pos, n);
    c->pos += n;
}

static uint32_t channels_of(int color_type) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    default: return 0;
    }
}

/* Walks the chunk headers before libpng sees the file: libpng allocates a chunk's declared
   length before reading it (text, pCAL, sCAL, sPLT chunks; png_set_chunk_malloc_max does not
   cover them all), so a 57-byte file declaring a 1 GiB chunk would cost a gigabyte. A chunk
   whose length is above the PNG limit of 2^31 - 1 or runs past the end of the file is refused
   here. The walk stops at IEND; a file that ends between chunks is left to libpng. */
static int check_chunk_lengths(const uint8_t *in, size_t in_len, char *err, size_t err_len) {
    size_t pos = 8;
    while (in_len - pos >= 8) {
        uint32_t len = ((uint32_t)in[pos] << 24) | ((uint32_t)in[pos + 1] << 16) | ((uint32_t)in[pos + 2] << 8) | in[pos + 3];
        char name[5];
        for (int i = 0; i < 4; i++) {
            uint8_t ch = in[pos + 4 + i];
            name[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
        }
        name[4] = 0;
        if (len > 0x7fffffffu) {
            if (err && err_len)
                snprintf(err, err_len, "the '%s' chunk at byte %zu declares %u bytes, above the PNG limit of 2^31 - 1", name, pos, len);
            return MP_ERR_CORRUPT;
        }
        size_t left = in_len - pos - 8;
        if ((size_t)len + 4 > left) {
            if (err && err_len)
                snprintf(err, err_len, "the '%s' chunk at byte %zu declares %u bytes but the file ends %zu bytes later", name, pos,
                         len, left);
            return MP_ERR_TRUNCATED;
        }
        pos += 12 + (size_t)len;
        if (memcmp(name, "IEND", 4) == 0) break;
    }
    return MP_OK;
}

int mp_png_decode(const uint8_t *in, size_t in_len, uint64_t max_bytes, mp_png_image *out,
                  uint8_t *palette, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (in_len < 8 || png_sig_cmp((png_const_bytep)in, 0, 8) != 0) {
        copy_err(err, err_len, "the data does not start with the PNG signature");
        return MP_ERR_CORRUPT;
    }
    int walked = check_chunk_lengths(in, in_len, err, err_len);
    if (walked != MP_OK) return walked;
    read_ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.len = in_len;

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, read_error, read_warning);
    if (!png) { copy_err(err, err_len, "libpng could not start (out of memory)"); return MP_ERR_NOMEM; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        copy_err(err, err_len, "libpng could not start (out of memory)");
        return MP_ERR_NOMEM;
    }

    /* Everything that changes after setjmp lives in `c`, whose address libpng holds. */
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(c.rows);
        free(c.pixels);
        copy_err(err, err_len, c.msg[0] ? c.msg : "libpng error");
        return c.status == MP_OK ? MP_ERR_CORRUPT : c.status;
    }

    png_set_read_fn(png, &c, read_data);
    png_set_user_limits(png, MP_PNG_MAX_DIM, MP_PNG_MAX_DIM);
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)16 << 20);
    /* A CRC error in any chunk is an error, as it is for Pillow. */
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    /* Unknown ancillary chunks are skipped, never stored. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);

    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    uint32_t channels = channels_of(color_type);
    if (channels == 0) {
        c.status = MP_ERR_UNSUPPORTED;
        snprintf(c.msg, sizeof c.msg, "colour type '%d' is not a PNG colour type", color_type);
        png_error(png, c.msg);
    }
    uint32_t bps = bit_depth == 16 ? 2 : 1;
    uint64_t need = (uint64_t)width * height * channels * bps;
    if (need > max_bytes) {
        c.status = MP_ERR_TOO_LARGE;
        snprintf(c.msg, sizeof c.msg,
                 "the image is '%ux%u' with %u channel(s) of %u byte(s), '%llu' bytes decoded, more than the limit '%llu'",
                 (unsigned)width, (unsigned)height, (unsigned)channels, (unsigned)bps, (unsigned long long)need,
                 (unsigned long long)max_bytes);
        png_error(png, c.msg);
    }
    /* Filtered scanlines the zlib stream must produce (ignoring Adam7's few extra filter bytes). */
    uint64_t file_channels = color_type == PNG_COLOR_TYPE_PALETTE ? 1 : channels;
    uint64_t filtered = (uint64_t)height * (1 + ((uint64_t)width * file_channels * (uint64_t)bit_depth + 7) / 8);
    if (filtered > (uint64_t)in_len * MP_DEFLATE_MAX_RATIO + MP_PLAUSIBLE_SLACK) {
        c.status = MP_ERR_TOO_LARGE;
        snprintf(c.msg, sizeof c.msg,
                 "the header claims '%ux%u' pixels ('%llu' bytes of scanlines) but a '%zu'-byte file cannot hold that much compressed data",
                 (unsigned)width, (unsigned)height, (unsigned long long)filtered, in_len);
        png_error(png, c.msg);
    }

    out->palette_entries = 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte = NULL;
        int n = 0;
        if (png_get_PLTE(png, info, &plte, &n) == PNG_INFO_PLTE && plte && n > 0) {
            if (n > 256) n = 256;
            for (int i = 0; i < n; i++) {
                palette[3 * i] = plte[i].red;
                palette[3 * i + 1] = plte[i].green;
                palette[3 * i + 2] = plte[i].blue;
            }
            out->palette_entries = (uint32_t)n;
        }
        if (bit_depth < 8) png_set_packing(png); /* one index per byte, values unchanged */
    } else if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png); /* x255, x85, x17; does not turn tRNS into alpha */
    }
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t rowbytes = png_get_rowbytes(png, info);
    size_t want_row = (size_t)width * channels * bps;
    if (rowbytes != want_row || png_get_channels(png, info) != channels) {
        snprintf(c.msg, sizeof c.msg, "internal error: libpng rows are '%zu' bytes, expected '%zu'", rowbytes, want_row);
        png_error(png, c.msg);
    }
    c.pixels = (uint8_t *)malloc(need ? (size_t)need : 1);
    c.rows = (png_bytep *)malloc((height ? height : 1) * sizeof(png_bytep));
    if (!c.pixels || !c.rows) {
        c.status = MP_ERR_NOMEM;
        snprintf(c.msg, sizeof c.msg, "out of memory allocating '%llu' bytes", (unsigned long long)need);
        png_error(png, c.msg);
    }
    for (png_uint_32 y = 0; y < height; y++) c.rows[y] = c.pixels + (size_t)y * want_row;
    png_read_image(png, c.rows);
    /* The chunks after the image data are read too: their CRCs and IEND must be there. */
    png_read_end(png, NULL);

    png_destroy_read_struct(&png, &info, NULL);
    free(c.rows);
    out->width = width;
    out->height = height;
    out->channels = channels;
    out->bytes_per_sample = bps;
    out->bit_depth = (uint32_t)bit_depth;
    out->color_type = (uint32_t)color_type;
    out->interlaced = interlace != PNG_INTERLACE_NONE;
    out->pixels = c.pixels;
    out->pixels_len = (size_t)need;
    return MP_OK;
}

/* ---------------------------------------------------------------- writing */

typedef struct write_ctx {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int status;
    char msg[256];
    png_bytep *rows;
} write_ctx;

static void write_error(png_structp png, png_const_charp msg) {
    write_ctx *c = (write_ctx *)png_get_error_ptr(png);
    if (c->status == MP_OK) c->status = MP_ERR_CORRUPT;
    if (c->msg[0] == 0) snprintf(c->msg, sizeof c->msg, "libpng reports '%s'", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void write_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void write_data(png_structp png, png_bytep data, size_t n) {
    write_ctx *c = (write_ctx *)png_get_io_ptr(png);
    if (n > c->cap - c->len) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap - c->len < n) {
            if (cap > SIZE_MAX / 2) { cap = 0; break; }
            cap *= 2;
        }
        uint8_t *nb = cap ? (uint8_t *)realloc(c->buf, cap) : NULL;
        if (!nb) {
            c->status = MP_ERR_NOMEM;
            snprintf(c->msg, sizeof c->msg, "out of memory growing the PNG output buffer");
            png_error(png, c->msg);
        }
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
}

static void write_flush(png_structp png) { (void)png; }

int mp_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                  uint32_t bit_depth, const uint8_t *palette, uint32_t palette_entries, int level,
                  uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    *out = NULL;
    *out_len = 0;
    if (width == 0 || height == 0 || width > 0x7fffffffu || height > 0x7fffffffu) {
        copy_err(err, err_len, "PNG width and height must be between 1 and 2^31-1");
        return MP_ERR_UNSUPPORTED;
    }
    if (channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16)) {
        copy_err(err, err_len, "PNG needs 1 to 4 channels of 8 or 16 bits");
        return MP_ERR_UNSUPPORTED;
    }
    if (palette_entries > 0 && (channels != 1 || bit_depth != 8 || palette_entries > 256 || !palette)) {
        copy_err(err, err_len, "a palette PNG needs 1 channel of 8 bits and at most 256 palette entries");
        return MP_ERR_UNSUPPORTED;
    }
    int color_type = palette_entries > 0 ? PNG_COLOR_TYPE_PALETTE
                   : channels == 1 ? PNG_COLOR_TYPE_GRAY
                   : channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                   : channels == 3 ? PNG_COLOR_TYPE_RGB
                                   : PNG_COLOR_TYPE_RGB_ALPHA;
    size_t row_bytes = (size_t)width * channels * (bit_depth / 8);

    write_ctx c;
    memset(&c, 0, sizeof c);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, write_error, write_warning);
    if (!png) { copy_err(err, err_len, "libpng could not start (out of memory)"); return MP_ERR_NOMEM; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        copy_err(err, err_len, "libpng could not start (out of memory)");
        return MP_ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(c.rows);
        free(c.buf);
        copy_err(err, err_len, c.msg[0] ? c.msg : "libpng error");
        return c.status == MP_OK ? MP_ERR_CORRUPT : c.status;
    }
    png_set_write_fn(png, &c, write_data, write_flush);
    png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);
    png_set_compression_level(png, level < 0 ? 6 : level > 9 ? 9 : level);
    png_set_IHDR(png, info, width, height, (int)bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette_entries > 0) {
        png_color plte[256];
        for (uint32_t i = 0; i < palette_entries; i++) {
            plte[i].red = palette[3 * i];
            plte[i].green = palette[3 * i + 1];
            plte[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, plte, (int)palette_entries);
    }
    png_write_info(png, info);
    if (bit_depth == 16 && host_is_little_endian()) png_set_swap(png);
    c.rows = (png_bytep *)malloc((size_t)height * sizeof(png_bytep));
    if (!c.rows) {
        c.status = MP_ERR_NOMEM;
        snprintf(c.msg, sizeof c.msg, "out of memory");
        png_error(png, c.msg);
    }
    for (uint32_t y = 0; y < height; y++) c.rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);
    png_write_image(png, c.rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(c.rows);
    *out = c.buf;
    *out_len = c.len;
    return MP_OK;
}
