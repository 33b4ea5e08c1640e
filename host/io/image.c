/* PNG/JPEG decoding to RGB8 the way PIL's convert("RGB") does (rules in
 * image.h), and atomic PNG writing. libpng and libjpeg report errors by
 * longjmp; each setjmp lives in a small *_run function whose resources are
 * owned by the caller's struct, so nothing is indeterminate after the jump
 * and every path frees the same way. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* fileno, fdopen */
#endif
#include "io/image.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* libjpeg keeps whole-image coefficient arrays for progressive files: about
 * 2 bytes per sample, 3 samples per pixel; allow a little more than that. */
#define JPEG_MAX_MEMORY ((long)AT_IMAGE_MAX_PIXELS * 8L + (64L << 20))
/* A progressive JPEG may carry thousands of tiny scans that each cost a full
 * pass over the coefficients (a known decoding-time bomb); real encoders
 * write about 10. libjpeg-turbo's own fuzzers stop at 500. */
#define JPEG_MAX_SCANS 500
/* Ancillary PNG chunks (text, ICC) we never use: bound their memory. */
#define PNG_CHUNK_MAX (8L << 20)
#define PNG_CHUNK_CACHE 1000

static const unsigned char PNG_MAGIC[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int check_size(const char *name, const char *fmt, unsigned long w, unsigned long h) {
    if (w == 0 || h == 0) return at_fail(name, "%s image has zero size (%lux%lu)", fmt, w, h);
    if (w > AT_IMAGE_MAX_SIDE || h > AT_IMAGE_MAX_SIDE ||
        (double)w * (double)h > (double)AT_IMAGE_MAX_PIXELS)
        return at_fail(name, "%s image too large (%lux%lu; limit %d per side, %ld pixels)", fmt, w,
                       h, AT_IMAGE_MAX_SIDE, (long)AT_IMAGE_MAX_PIXELS);
    return AT_OK;
}

/* ------------------------------------------------------------------ PNG */

typedef struct {
    const unsigned char *data;
    size_t len, pos;
    int truncated, too_big;
    char msg[200];
    unsigned char *rows; /* libpng output: one row, or the whole image if interlaced */
    unsigned char *rgb;
    int w, h;
    unsigned notes;
    unsigned char palette[256][3]; /* used when the image is indexed */
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png; /* the library never prints; PIL ignores the same warnings */
    (void)msg;
}

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    png_job *job = png_get_io_ptr(png);
    if (n > job->len - job->pos) {
        job->truncated = 1;
        png_error(png, "file ends early");
    }
    memcpy(out, job->data + job->pos, n);
    job->pos += n;
}

/* One libpng output row (after the transforms set in png_run) to RGB8;
 * palette != NULL: the row holds one palette index per byte. */
static void png_row_to_rgb(const unsigned char *in, unsigned char *out, int w, int channels,
                           int depth, const unsigned char (*palette)[3]) {
    if (palette) {
        for (int x = 0; x < w; x++, out += 3) memcpy(out, palette[in[x]], 3);
        return;
    }
    if (depth == 8) {
        for (int x = 0; x < w; x++, in += channels, out += 3) {
            if (channels <= 2) { /* grey, grey+alpha */
                out[0] = out[1] = out[2] = in[0];
            } else {
                out[0] = in[0], out[1] = in[1], out[2] = in[2];
            }
        }
        return;
    }
    /* 16-bit, big-endian samples */
    int step = 2 * channels;
    for (int x = 0; x < w; x++, in += step, out += 3) {
        if (channels == 1) { /* high byte as for RGB; PIL would clamp (image.h) */
            out[0] = out[1] = out[2] = in[0];
        } else if (channels == 2) { /* PIL "LA;16B": high byte */
            out[0] = out[1] = out[2] = in[0];
        } else { /* PIL "RGB;16B", "RGBA;16B": high byte */
            out[0] = in[0], out[1] = in[2], out[2] = in[4];
        }
    }
}

const char *at_image_notes_text(unsigned notes) {
    if (notes & AT_IMAGE_NOTE_GREY16_SCALED)
        return "16-bit greyscale PNG scaled to 8 bits (high byte, as for 16-bit RGB); PIL's convert(\"RGB\") "
               "would clamp it to near-white, so PyTorch pipelines that use it see another image (docs/usage.md)";
    return "";
}

static int png_run(png_structp png, png_infop info, png_job *job) {
    if (setjmp(png_jmpbuf(png))) return AT_ERR;
    png_set_user_limits(png, AT_IMAGE_MAX_SIDE, AT_IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color_type, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color_type, &interlace, NULL, NULL);
    if (w > AT_IMAGE_MAX_SIDE || h > AT_IMAGE_MAX_SIDE ||
        (double)w * (double)h > (double)AT_IMAGE_MAX_PIXELS) {
        job->too_big = 1;
        job->w = (int)(w > 0x7fffffff ? 0x7fffffff : w);
        job->h = (int)(h > 0x7fffffff ? 0x7fffffff : h);
        return AT_ERR;
    }
    const unsigned char(*palette)[3] = NULL;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        /* Our own lookup rather than png_set_palette_to_rgb: PIL's palette
         * starts as a grey ramp, so an index beyond PLTE gives (i, i, i) where
         * libpng would give black. tRNS alpha is dropped either way. */
        png_colorp plte = NULL;
        int n = 0;
        png_get_PLTE(png, info, &plte, &n);
        for (int i = 0; i < 256; i++) {
            const png_color *c = i < n && plte ? &plte[i] : NULL;
            job->palette[i][0] = c ? c->red : (unsigned char)i;
            job->palette[i][1] = c ? c->green : (unsigned char)i;
            job->palette[i][2] = c ? c->blue : (unsigned char)i;
        }
        palette = (const unsigned char(*)[3])job->palette;
        png_set_packing(png); /* 1/2/4-bit indices to one byte each */
    }
    if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = png_get_channels(png, info);
    int out_depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (out_depth != 8 && out_depth != 16) ||
        (palette && (channels != 1 || out_depth != 8)) ||
        rowbytes < (size_t)w * channels * (out_depth / 8))
        png_error(png, "unsupported pixel layout");

    size_t nrows = interlace != PNG_INTERLACE_NONE ? h : 1;
    job->rows = malloc(rowbytes * nrows);
    job->rgb = malloc((size_t)w * h * 3);
    if (!job->rows || !job->rgb) png_error(png, "out of memory");
    job->w = (int)w;
    job->h = (int)h;
    if (color_type == PNG_COLOR_TYPE_GRAY && depth == 16) job->notes |= AT_IMAGE_NOTE_GREY16_SCALED;

    if (interlace == PNG_INTERLACE_NONE) {
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, job->rows, NULL);
            png_row_to_rgb(job->rows, job->rgb + (size_t)y * w * 3, (int)w, channels, out_depth,
                           palette);
        }
    } else {
        /* Adam7: every pass revisits the rows, so libpng needs them all. */
        for (int p = 0; p < passes; p++)
            for (png_uint_32 y = 0; y < h; y++) png_read_row(png, job->rows + y * rowbytes, NULL);
        for (png_uint_32 y = 0; y < h; y++)
            png_row_to_rgb(job->rows + y * rowbytes, job->rgb + (size_t)y * w * 3, (int)w,
                           channels, out_depth, palette);
    }
    /* No png_read_end: like PIL, accept a file whose pixel data is complete
     * but whose trailing chunks (IEND) are missing. */
    return AT_OK;
}

static int load_png(const unsigned char *data, size_t len, const char *name, at_image *img) {
    /* Size check from IHDR before libpng, whose own limit (1e6 per side)
     * would only say "Invalid IHDR data". */
    if (len >= 24 && !memcmp(data + 12, "IHDR", 4)) {
        unsigned long w = (unsigned long)data[16] << 24 | (unsigned long)data[17] << 16 |
                          (unsigned long)data[18] << 8 | data[19];
        unsigned long h = (unsigned long)data[20] << 24 | (unsigned long)data[21] << 16 |
                          (unsigned long)data[22] << 8 | data[23];
        if (w > 0 && h > 0 && check_size(name, "PNG", w, h) != AT_OK) return AT_ERR;
    }
    png_job job = {.data = data, .len = len};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return at_fail(name, "out of memory creating PNG decoder");
    }
    png_set_read_fn(png, &job, png_read_mem);
    int rc = png_run(png, info, &job);
    png_destroy_read_struct(&png, &info, NULL);
    free(job.rows);
    if (rc != AT_OK) {
        free(job.rgb);
        if (job.too_big) return check_size(name, "PNG", (unsigned long)job.w, (unsigned long)job.h);
        if (job.truncated) return at_fail(name, "truncated PNG (file ends early)");
        return at_fail(name, "corrupt PNG: %s", job.msg[0] ? job.msg : "unknown libpng error");
    }
    img->w = job.w;
    img->h = job.h;
    img->rgb = job.rgb;
    img->notes = job.notes;
    return AT_OK;
}

/* ----------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int truncated, too_big, too_many_scans;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    struct jpeg_progress_mgr progress;
    unsigned char *line; /* one decoded scanline */
    unsigned char *rgb;
    int w, h;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    if (cinfo->err->msg_code == JERR_NO_BACKING_STORE) e->too_big = 1;
    longjmp(e->jmp, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    /* jpeg_mem_src reports running out of data as a warning and inserts a
     * fake EOI, which would decode as grey; PIL calls that truncation. Other
     * warnings (corrupt entropy data) are ignored, as PIL does. */
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        e->truncated = 1;
        longjmp(e->jmp, 1);
    }
}

static void jpeg_on_progress(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (cinfo->is_decompressor &&
        ((j_decompress_ptr)cinfo)->input_scan_number > JPEG_MAX_SCANS) {
        e->too_many_scans = 1;
        longjmp(e->jmp, 1);
    }
}

/* PIL's cmyk2rgb on its "CMYK;I" (inverted, Adobe) samples:
 * nk = 255 - k, out = nk - c*nk/255 with PIL's MULDIV255 rounding. */
static unsigned char pil_cmyk_channel(unsigned c, unsigned nk) {
    unsigned t = c * nk + 128;
    int v = (int)nk - (int)(((t >> 8) + t) >> 8);
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int jpeg_run(jpeg_job *job, const unsigned char *data, size_t len) {
    j_decompress_ptr cinfo = &job->cinfo;
    if (setjmp(job->err.jmp)) return AT_ERR;
    jpeg_create_decompress(cinfo);
    cinfo->progress = &job->progress;
    cinfo->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    jpeg_mem_src(cinfo, data, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->image_width > AT_IMAGE_MAX_SIDE || cinfo->image_height > AT_IMAGE_MAX_SIDE ||
        (double)cinfo->image_width * cinfo->image_height > (double)AT_IMAGE_MAX_PIXELS ||
        cinfo->image_width == 0 || cinfo->image_height == 0) {
        job->w = (int)cinfo->image_width;
        job->h = (int)cinfo->image_height;
        job->err.too_big = 2;
        return AT_ERR;
    }
    switch (cinfo->num_components) {
    case 1: cinfo->out_color_space = JCS_GRAYSCALE; break;
    case 3: cinfo->out_color_space = JCS_RGB; break;
    case 4: cinfo->out_color_space = JCS_CMYK; break; /* libjpeg turns YCCK into CMYK */
    default:
        snprintf(job->err.msg, sizeof job->err.msg, "unsupported number of components (%d)",
                 cinfo->num_components);
        return AT_ERR;
    }
    jpeg_start_decompress(cinfo);
    int w = (int)cinfo->output_width, h = (int)cinfo->output_height;
    int nc = cinfo->output_components;
    job->line = malloc((size_t)w * nc);
    job->rgb = malloc((size_t)w * h * 3);
    if (!job->line || !job->rgb) {
        snprintf(job->err.msg, sizeof job->err.msg, "out of memory");
        return AT_ERR;
    }
    job->w = w;
    job->h = h;
    while ((int)cinfo->output_scanline < h) {
        unsigned char *out = job->rgb + (size_t)cinfo->output_scanline * w * 3;
        JSAMPROW row = job->line;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
            job->err.truncated = 1;
            return AT_ERR;
        }
        const unsigned char *in = job->line;
        for (int x = 0; x < w; x++, in += nc, out += 3) {
            if (nc == 1) {
                out[0] = out[1] = out[2] = in[0];
            } else if (nc == 3) {
                out[0] = in[0], out[1] = in[1], out[2] = in[2];
            } else {
                unsigned nk = in[3]; /* = 255 - (255 - raw k) */
                out[0] = pil_cmyk_channel(255u - in[0], nk);
                out[1] = pil_cmyk_channel(255u - in[1], nk);
                out[2] = pil_cmyk_channel(255u - in[2], nk);
            }
        }
    }
    /* No jpeg_finish_decompress: like PIL, a missing EOI after complete
     * pixel data is not an error. jpeg_destroy_decompress aborts cleanly. */
    return AT_OK;
}

static int load_jpeg(const unsigned char *data, size_t len, const char *name, at_image *img) {
    jpeg_job *job = calloc(1, sizeof *job); /* jmp_buf + cinfo: keep off the stack */
    if (!job) return at_fail(name, "out of memory creating JPEG decoder");
    job->cinfo.err = jpeg_std_error(&job->err.pub);
    job->err.pub.error_exit = jpeg_on_error;
    job->err.pub.emit_message = jpeg_on_message;
    job->progress.progress_monitor = jpeg_on_progress;
    int rc = jpeg_run(job, data, len);
    jpeg_destroy_decompress(&job->cinfo); /* safe after a failed create: mem is NULL */
    free(job->line);
    if (rc != AT_OK) {
        free(job->rgb);
        if (job->err.too_big == 2)
            rc = check_size(name, "JPEG", (unsigned long)job->w, (unsigned long)job->h);
        else if (job->err.too_big)
            rc = at_fail(name, "JPEG needs more than %ld MB to decode",
                         (long)(JPEG_MAX_MEMORY >> 20));
        else if (job->err.truncated)
            rc = at_fail(name, "truncated JPEG (file ends early)");
        else if (job->err.too_many_scans)
            rc = at_fail(name, "corrupt JPEG: more than %d progressive scans", JPEG_MAX_SCANS);
        else
            rc = at_fail(name, "corrupt JPEG: %s",
                         job->err.msg[0] ? job->err.msg : "unknown libjpeg error");
        free(job);
        return rc;
    }
    img->w = job->w;
    img->h = job->h;
    img->rgb = job->rgb;
    free(job);
    return AT_OK;
}

/* ----------------------------------------------------------- public API */

int at_image_load_mem(const void *buf, size_t len, const char *name, at_image *img) {
    const unsigned char *p = buf;
    img->w = img->h = 0;
    img->rgb = NULL;
    img->notes = 0;
    if (len == 0) return at_fail(name, "empty file (0 bytes)");
    if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return load_jpeg(p, len, name, img);
    if (len >= sizeof PNG_MAGIC && !memcmp(p, PNG_MAGIC, sizeof PNG_MAGIC))
        return load_png(p, len, name, img);
    if (len < sizeof PNG_MAGIC && !memcmp(p, PNG_MAGIC, len))
        return at_fail(name, "truncated PNG (file ends inside the signature)");
    return at_fail(name, "not a PNG or JPEG image");
}

/* Reads the whole stream: st_size is only a hint (pipes, growing files). */
static int read_all(const char *path, FILE *f, size_t hint, unsigned char **out, size_t *out_len) {
    size_t cap = hint > 0 ? hint + 1 : (size_t)1 << 16, len = 0;
    unsigned char *data = malloc(cap);
    for (;;) {
        if (!data) return at_fail(path, "out of memory reading the file");
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (len < cap) break; /* EOF or error */
        if (cap > ((size_t)1 << 31)) {
            free(data);
            return at_fail(path, "file too large (over 2 GiB)");
        }
        unsigned char *bigger = realloc(data, cap * 2);
        if (!bigger) free(data);
        data = bigger;
        cap *= 2;
    }
    if (ferror(f)) {
        free(data);
        return at_fail(path, "read error: %s", strerror(errno));
    }
    *out = data;
    *out_len = len;
    return AT_OK;
}

int at_image_load(const char *path, at_image *img) {
    img->w = img->h = 0;
    img->rgb = NULL;
    img->notes = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return at_fail(path, "cannot open: %s", strerror(errno));
    struct stat st;
    int rc = AT_OK;
    if (fstat(fileno(f), &st) != 0)
        rc = at_fail(path, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = at_fail(path, "is a directory, not an image");
    unsigned char *data = NULL;
    size_t len = 0;
    if (rc == AT_OK)
        rc = read_all(path, f, S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size : 0,
                      &data, &len);
    fclose(f);
    if (rc == AT_OK) rc = at_image_load_mem(data, len, path, img);
    free(data);
    return rc;
}

void at_image_free(at_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
    img->notes = 0;
}

/* ---------------------------------------------------------- PNG writing */

typedef struct {
    char msg[200];
} png_wjob;

static void png_on_write_error(png_structp png, png_const_charp msg) {
    png_wjob *job = png_get_error_ptr(png);
    snprintf(job->msg, sizeof job->msg, "%s", msg);
    png_longjmp(png, 1);
}

static int png_write_run(png_structp png, png_infop info, FILE *f, int w, int h,
                         const unsigned char *rgb) {
    if (setjmp(png_jmpbuf(png))) return AT_ERR;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * w * 3);
    png_write_end(png, NULL);
    return AT_OK;
}

int at_image_write_png(const char *path, int w, int h, const unsigned char *rgb) {
    if (w <= 0 || h <= 0 || !rgb || w > AT_IMAGE_MAX_SIDE || h > AT_IMAGE_MAX_SIDE)
        return at_fail(path, "cannot write a %dx%d PNG", w, h);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return at_fail(path, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return at_fail(path, "cannot create %s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return at_fail(path, "cannot open %s: %s", tmp, strerror(e));
    }
    png_wjob job = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &job, png_on_write_error,
                                              png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc = png && info ? png_write_run(png, info, f, w, h, rgb) : AT_ERR;
    if (!png || !info) snprintf(job.msg, sizeof job.msg, "out of memory");
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    int write_failed = ferror(f);
    if (fclose(f) != 0) write_failed = 1;
    if (rc != AT_OK || write_failed) {
        int e = errno;
        unlink(tmp);
        if (rc != AT_OK) return at_fail(path, "cannot write PNG: %s", job.msg);
        return at_fail(path, "cannot write PNG: %s", strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return at_fail(path, "cannot rename %s into place: %s", tmp, strerror(e));
    }
    return AT_OK;
}
