/* Image decoding (PNG, JPEG) to interleaved RGB8, matching what PIL's
 * Image.open(path).convert("RGB") produces, and PNG writing.
 *
 * Decoding rules (all checked against PIL 9.4 by tests/test_image.c):
 *   - the format is detected from the magic bytes, never the extension;
 *   - alpha is dropped, not composited (PIL's RGBA/LA -> RGB); tRNS is ignored
 *     except through the palette, whose alpha is dropped too;
 *   - 1/2/4-bit grey is scaled to 0..255 (x255, x85, x17);
 *   - 16-bit RGB, RGBA and grey+alpha keep the high byte of each sample;
 *   - 16-bit grey keeps the high byte too. This is where we depart from PIL
 *     on purpose: PIL opens it as mode "I" and its I->RGB conversion clamps
 *     (256..65535 all become 255, a near-white image that no user wants);
 *     the image's notes say so (AT_IMAGE_NOTE_GREY16_SCALED);
 *   - JPEG: libjpeg-turbo defaults (ISLOW DCT, fancy upsampling), as PIL;
 *     4-component (CMYK/YCCK) JPEGs are read as Adobe-inverted CMYK and
 *     converted with PIL's formula;
 *   - a PNG whose pixel data is complete but lacks the chunks after it (IEND)
 *     decodes, as in PIL; a file that ends inside the pixel data fails.
 * Images larger than AT_IMAGE_MAX_SIDE per side or AT_IMAGE_MAX_PIXELS in all
 * are refused before any pixel memory is allocated. */
#ifndef ATTRIB_IMAGE_H
#define ATTRIB_IMAGE_H

#include <stddef.h>

#ifndef AT_IMAGE_MAX_SIDE
#define AT_IMAGE_MAX_SIDE 30000
#endif
#ifndef AT_IMAGE_MAX_PIXELS
#define AT_IMAGE_MAX_PIXELS 200000000L
#endif

/* Bits of at_image.notes: where decoding departed from PIL's convert("RGB"). */
#define AT_IMAGE_NOTE_GREY16_SCALED 1u /* 16-bit grey scaled to 8 bits, not clamped */

typedef struct {
    int w, h;
    unsigned char *rgb; /* interleaved RGB8, row-major, w*h*3 bytes */
    unsigned notes;     /* AT_IMAGE_NOTE_* bits; kept through preprocessing */
} at_image;

/* One line saying what the set notes mean for a user ("" for none); the
 * library never prints it. */
const char *at_image_notes_text(unsigned notes);

/* Loads a PNG or JPEG file. On error returns AT_ERR with a message naming
 * path, and leaves *img empty ({0, 0, NULL}). */
int at_image_load(const char *path, at_image *img);
/* Same from memory; name is the subject of error messages (may be NULL). */
int at_image_load_mem(const void *buf, size_t len, const char *name, at_image *img);
/* Frees the pixels and empties *img; safe on an empty or freed image. */
void at_image_free(at_image *img);

/* Writes an 8-bit RGB PNG atomically: to a temporary name in the same
 * directory, then rename(). */
int at_image_write_png(const char *path, int w, int h, const unsigned char *rgb);

#endif
