/* JPEG through libjpeg(-turbo), from memory. libjpeg's default error_exit calls exit() and its
   output_message writes to stderr: both are replaced here. Errors longjmp back to the one
   setjmp in mp_jpeg_decode; data warnings (premature end of file, corrupt entropy data) are
   promoted to errors, because a silently grey-filled image is worse than no image. */
#include <stddef.h>
#include <stdio.h> /* jpeglib.h needs stdio.h and stddef.h first */
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include "mp_jpeg.h"

/* Progressive files may hold many scans; more than this is an attack, not a photograph. */
#define MP_JPEG_MAX_SCANS 1000
/* Huffman coding needs at least one bit per 8x8 block and component for the DC scan (two in
   sequential mode); with 4x4 chroma subsampling that is about 1365 output bytes per input
   byte at the very best. Arithmetic coding can do far better on a constant image. */
#define MP_JPEG_MAX_RATIO_HUFFMAN 2048u
#define MP_JPEG_MAX_RATIO_ARITH 65536u
#define MP_PLAUSIBLE_SLACK ((uint64_t)4 << 20)

typedef struct mp_jpeg_err {
    struct jpeg_error_mgr pub; /* must be first: libjpeg sees this struct as its error manager */
    jmp_buf jump;
    int status;
    char msg[JMSG_LENGTH_MAX + 96];
    uint8_t *pixels; /* owned until handed to the caller */
} mp_jpeg_err;

static void copy_err(char *err, size_t err_len, const char *msg) {
    if (err && err_len) snprintf(err, err_len, "%s", msg);
}

static int status_for_error(int code) {
    switch (code) {
    case JERR_BAD_PRECISION:
    case JERR_SOF_UNSUPPORTED:
    case JERR_NOT_COMPILED:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_CCIR601_NOTIMPL:
    case JERR_ARITH_NOTIMPL:
    case JERR_FRACT_SAMPLE_NOTIMPL:
    case JERR_NOTIMPL:
        return MP_ERR_UNSUPPORTED;
    case JERR_IMAGE_TOO_BIG:
    case JERR_WIDTH_OVERFLOW:
    case JERR_NO_BACKING_STORE: /* the memory cap below was hit */
    case JERR_TFILE_CREATE:
        return MP_ERR_TOO_LARGE;
    case JERR_OUT_OF_MEMORY:
        return MP_ERR_NOMEM;
    default:
        return MP_ERR_CORRUPT;
    }
}

static void fail(j_common_ptr cinfo, int status) {
    mp_jpeg_err *e = (mp_jpeg_err *)cinfo->err;
    if (e->status == MP_OK) {
        e->status = status;
        char buf[JMSG_LENGTH_MAX];
        buf[0] = 0;
        (*cinfo->err->format_message)(cinfo, buf);
        snprintf(e->msg, sizeof e->msg, "libjpeg reports '%s'", buf);
    }
    longjmp(e->jump, 1);
}

static void on_error_exit(j_common_ptr cinfo) { fail(cinfo, status_for_error(cinfo->err->msg_code)); }

/* Warnings (level -1) about the data are fatal; trace messages (level >= 0) are dropped. */
static void on_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    int code = cinfo->err->msg_code;
    if (code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC) {
        cinfo->err->num_warnings++; /* metadata oddities: the pixels are unaffected */
        return;
    }
    fail(cinfo, code == JWRN_JPEG_EOF ? MP_ERR_TRUNCATED : MP_ERR_CORRUPT);
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void on_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MP_JPEG_MAX_SCANS) {
        mp_jpeg_err *e = (mp_jpeg_err *)cinfo->err;
        if (e->status == MP_OK) {
            e->status = MP_ERR_CORRUPT;
            snprintf(e->msg, sizeof e->msg, "the file has more than '%d' scans", MP_JPEG_MAX_SCANS);
        }
        longjmp(e->jump, 1);
    }
}

int mp_jpeg_library_version(void) {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
    return LIBJPEG_TURBO_VERSION_NUMBER;
#else
    return 0;
#endif
}

int mp_jpeg_decode(const uint8_t *in, size_t in_len, uint64_t max_bytes, mp_jpeg_image *out,
                   char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (in_len < 2 || in[0] != 0xFF || in[1] != 0xD8) {
        copy_err(err, err_len, "the data does not start with a JPEG SOI marker");
        return MP_ERR_CORRUPT;
    }
    if ((unsigned long)in_len != in_len) {
        copy_err(err, err_len, "the file is too large for libjpeg");
        return MP_ERR_TOO_LARGE;
    }

    struct jpeg_decompress_struct cinfo;
    mp_jpeg_err jerr;
    struct jpeg_progress_mgr progress;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&jerr, 0, sizeof jerr);
    memset(&progress, 0, sizeof progress);

    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = on_error_exit;
    jerr.pub.emit_message = on_emit_message;
    jerr.pub.output_message = on_output_message;
    progress.progress_monitor = on_progress;

    /* Everything that changes after setjmp lives in `jerr`, whose address libjpeg holds. */
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(jerr.pixels);
        copy_err(err, err_len, jerr.msg[0] ? jerr.msg : "libjpeg error");
        return jerr.status == MP_OK ? MP_ERR_CORRUPT : jerr.status;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, (const unsigned char *)in, (unsigned long)in_len);
    (void)jpeg_read_header(&cinfo, TRUE);

    uint32_t channels = 0;
    const char *unsupported = NULL;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: channels = 1; cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: channels = 3; cinfo.out_color_space = JCS_RGB; break;
    case JCS_CMYK: unsupported = "CMYK"; break;
    case JCS_YCCK: unsupported = "YCCK"; break;
    default: unsupported = "an unknown colour space"; break;
    }
    if (unsupported) {
        jerr.status = MP_ERR_UNSUPPORTED;
        snprintf(jerr.msg, sizeof jerr.msg, "colour space '%s' with '%d' components (only greyscale, YCbCr and RGB are read)",
                 unsupported, cinfo.num_components);
        longjmp(jerr.jump, 1);
    }
    if (cinfo.data_precision != 8) {
        jerr.status = MP_ERR_UNSUPPORTED;
        snprintf(jerr.msg, sizeof jerr.msg, "data precision '%d' bits (only 8-bit samples are read)", cinfo.data_precision);
        longjmp(jerr.jump, 1);
    }
    uint64_t need = (uint64_t)cinfo.image_width * cinfo.image_height * channels;
    if (need > max_bytes) {
        jerr.status = MP_ERR_TOO_LARGE;
        snprintf(jerr.msg, sizeof jerr.msg,
                 "the image is '%ux%u' with %u channel(s), '%llu' bytes decoded, more than the limit '%llu'",
                 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, (unsigned)channels,
                 (unsigned long long)need, (unsigned long long)max_bytes);
        longjmp(jerr.jump, 1);
    }
    uint64_t ratio = cinfo.arith_code ? MP_JPEG_MAX_RATIO_ARITH : MP_JPEG_MAX_RATIO_HUFFMAN;
    if (need > (uint64_t)in_len * ratio + MP_PLAUSIBLE_SLACK) {
        jerr.status = MP_ERR_TOO_LARGE;
        snprintf(jerr.msg, sizeof jerr.msg,
                 "the header claims '%ux%u' pixels ('%llu' bytes decoded) but a '%zu'-byte file cannot plausibly hold them",
                 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, (unsigned long long)need, in_len);
        longjmp(jerr.jump, 1);
    }
    /* Progressive files buffer every coefficient (2 bytes each): cap libjpeg's own memory. */
    cinfo.mem->max_memory_to_use = (long)(need * 4 + ((uint64_t)64 << 20));

    /* Pillow's defaults: accurate integer IDCT, fancy (smooth) upsampling. */
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;

    out->components = (uint32_t)cinfo.num_components;
    out->color_space = (uint32_t)cinfo.jpeg_color_space;
    out->progressive = cinfo.progressive_mode ? 1 : 0;
    out->arithmetic = cinfo.arith_code ? 1 : 0;
    for (int i = 0; i < 3 && i < cinfo.num_components; i++) {
        out->h_samp[i] = (uint32_t)cinfo.comp_info[i].h_samp_factor;
        out->v_samp[i] = (uint32_t)cinfo.comp_info[i].v_samp_factor;
    }

    (void)jpeg_start_decompress(&cinfo);
    if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height ||
        (uint32_t)cinfo.output_components != channels) {
        jerr.status = MP_ERR_CORRUPT;
        snprintf(jerr.msg, sizeof jerr.msg, "internal error: libjpeg output is '%ux%ux%d', expected '%ux%ux%u'",
                 (unsigned)cinfo.output_width, (unsigned)cinfo.output_height, cinfo.output_components,
                 (unsigned)cinfo.image_width, (unsigned)cinfo.image_height, (unsigned)channels);
        longjmp(jerr.jump, 1);
    }
    size_t stride = (size_t)cinfo.output_width * channels;
    jerr.pixels = (uint8_t *)malloc(need ? (size_t)need : 1);
    if (!jerr.pixels) {
        jerr.status = MP_ERR_NOMEM;
        snprintf(jerr.msg, sizeof jerr.msg, "out of memory allocating '%llu' bytes", (unsigned long long)need);
        longjmp(jerr.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[16];
        JDIMENSION start = cinfo.output_scanline;
        JDIMENSION n = cinfo.output_height - start;
        if (n > 16) n = 16;
        for (JDIMENSION r = 0; r < n; r++) rows[r] = jerr.pixels + (size_t)(start + r) * stride;
        if (jpeg_read_scanlines(&cinfo, rows, n) == 0) {
            jerr.status = MP_ERR_CORRUPT;
            snprintf(jerr.msg, sizeof jerr.msg, "libjpeg stopped at row '%u' of '%u'", (unsigned)start,
                     (unsigned)cinfo.output_height);
            longjmp(jerr.jump, 1);
        }
    }
    out->width = (uint32_t)cinfo.image_width;
    out->height = (uint32_t)cinfo.image_height;
    /* Reads on to EOI: a file cut after the last row still fails here. */
    (void)jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);

    out->channels = channels;
    out->pixels = jerr.pixels;
    out->pixels_len = (size_t)need;
    return MP_OK;
}
