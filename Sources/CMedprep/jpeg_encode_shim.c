#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include "mp_gzip.h"
#include "mp_jpeg_encode.h"

struct enc_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void enc_error_exit(j_common_ptr cinfo) {
    struct enc_error *e = (struct enc_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void enc_output_message(j_common_ptr cinfo) { (void)cinfo; /* never write to stderr */ }

int mp_jpeg_encode(const uint8_t *pixels, int width, int height, int channels, int quality,
                   uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    struct jpeg_compress_struct cinfo;
    struct enc_error jerr;
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    *out = NULL;
    *out_len = 0;
    if ((channels != 1 && channels != 3) || width <= 0 || height <= 0 || width > 65500 || height > 65500) {
        snprintf(err, err_len, "cannot encode %dx%d with %d channels as JPEG", width, height, channels);
        return MP_ERR_UNSUPPORTED;
    }
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = enc_error_exit;
    jerr.pub.output_message = enc_output_message;
    if (setjmp(jerr.jump)) {
        snprintf(err, err_len, "%s", jerr.message);
        jpeg_destroy_compress(&cinfo);
        free(mem);
        return MP_ERR_CORRUPT;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mem, &mem_len);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * (size_t)width * (size_t)channels);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = mem;
    *out_len = mem_len;
    return MP_OK;
}
