/* Ground truth for the metrics (docs/methods.md#boxes-for-the-localisation-metrics): image class and object boxes,
 * read unchanged from the two dataset layouts the paper uses.
 *
 * 1. NIPS 2017 ImageNet-compatible set: one CSV with the exact header
 *    ImageId,URL,x1,y1,x2,y2,TrueLabel,TargetClass,OriginalLandingURL,License,Author,AuthorProfileURL
 *    (RFC 4180: quoted fields may hold commas, quotes as "", line breaks; LF
 *    or CRLF; a UTF-8 byte-order mark is skipped). Class index = TrueLabel - 1;
 *    TrueLabel 0 (the TF-Slim background class) and TrueLabel > n_classes are
 *    errors naming file:line. One box per row, its class the row's class:
 *      - x1..y2 all plain non-negative integers: an absolute box, 0-based
 *        inclusive original pixels (xmin, ymin, xmax, ymax), as ours;
 *      - otherwise all four must be numbers in [0,1]: a RELATIVE box, pixel
 *        edges as fractions of the image size (the NIPS dev_dataset.csv
 *        convention, and what tools/make_scenes.py writes: x1 = xmin/W,
 *        x2 = (xmax+1)/W). Detected per row by the text, not the value, so
 *        "0.0,0.0,1.0,1.0" (a whole-image box written by Python's repr) is
 *        relative. The image size is unknown when the CSV is read: the box
 *        is kept as fractions (at_box.relative) and resolved for the actual
 *        size by at_annotation_boxes_for_size / at_annotations_box_mask with
 *        the pixel-centre rule of at_box_mask: column i is inside when
 *        x1*W <= i + 0.5 < x2*W, i.e. xmin = ceil(x1*W - 0.5),
 *        xmax = ceil(x2*W - 0.5) - 1 (exact for make_scenes' k/W values; a
 *        box that covers no pixel centre resolves to nothing);
 *      - all four empty: no box. Anything else is an error naming file:line.
 *    Caution, real NIPS 2017 data: dev_dataset.csv's box is the crop window
 *    cut from the ORIGINAL photo by its download_images.py before resizing to
 *    299x299, so the shipped PNG already is that window; resolved against the
 *    PNG it is not an object box. Use ILSVRC XML for box metrics.
 *
 * 2. ILSVRC2012 validation boxes (PASCAL VOC layout): a directory of
 *    <id>.xml files (non-recursive, read in strcmp order; hidden files and
 *    names not ending in .xml are ignored; none at all is an error) or one
 *    .xml file. Read:
 *    <annotation><filename> (the image id; a trailing image extension such as
 *    .JPEG or .png is dropped), <size><width>/<height> (positive integers,
 *    required), and every <object><name>wnid</name><bndbox><xmin/><ymin/>
 *    <xmax/><ymax/></bndbox></object>. Other elements are ignored. VOC and
 *    ILSVRC write inclusive 1-based (MATLAB) pixel indices: the first pixel
 *    is 1 and the devkits' overlap code measures widths as xmax - xmin + 1;
 *    make_scenes.py writes the same, so the reader subtracts 1. A raw 0 (not
 *    a valid 1-based index, written by some tools) is clamped to pixel 0,
 *    not refused. Coordinates must be non-negative
 *    integers with xmin <= xmax, ymin <= ymax; boxes are not clipped here
 *    (at_box_mask clips to the image). <name> maps to a class index through
 *    m->labels[i].id; an unknown wnid is an error naming the file and wnid.
 *    The image's class is its FIRST object's class (ILSVRC val has one class
 *    per image; when objects disagree the others keep their own cls in their
 *    boxes); an image without objects has cls -1 and no boxes.
 *    The XML subset: elements, attributes (ignored), text, the five named
 *    entities and &#N; / &#xN;, comments, processing instructions (the
 *    <?xml ?> prolog), CDATA, a DOCTYPE without internal subset; anything
 *    malformed (mismatched or unclosed tags, unknown entity, text after the
 *    root) is an error naming the file.
 *
 * Image ids must be unique across the loaded set. */
#ifndef ATTRIB_ANNOTATIONS_H
#define ATTRIB_ANNOTATIONS_H

#include "model/model.h"
#include "preprocess/preprocess.h"

typedef struct {
    int cls;         /* class index of this object */
    int box[4];      /* xmin, ymin, xmax, ymax: 0-based inclusive original
                      * pixels; -1 while the box is relative */
    int relative;    /* 1: the box is frac[] (NIPS CSV), resolved per image size */
    double frac[4];  /* x1, y1, x2, y2: pixel edges as fractions of W, H */
} at_box;

typedef struct {
    char id[256];    /* image id = file stem */
    int cls;         /* ground-truth class index, or -1 */
    int width, height; /* original size when known (XML), else 0 */
    int n_boxes;
    at_box *boxes;
} at_annotation;

typedef struct {
    int n;
    at_annotation *items;
    int *index;      /* open-addressing hash of ids: item index or -1 */
    int index_cap;   /* a power of two, > 2n */
} at_annotations;

/* Loads a NIPS-style CSV, an XML directory or one XML file (by what path is:
 * a directory, a file ending in .xml, or anything else = CSV). m supplies the
 * class count and the wnids. On error returns AT_ERR with *out empty. */
int at_annotations_load(const char *path, const at_model *m, at_annotations *out);
void at_annotations_free(at_annotations *a);

/* The annotation of an image path: looked up by its stem (base name without
 * the last extension), then by its whole base name. NULL when absent. */
const at_annotation *at_annotations_find(const at_annotations *a, const char *image_path);

/* a's boxes for an image of w x h original pixels: relative boxes resolved
 * (see above; empty ones dropped), absolute ones passed through. Writes at
 * most cap boxes to out (relative = 0) and returns how many there are in all
 * (as snprintf), or AT_ERR when a relative box needs a size and w or h <= 0. */
int at_annotation_boxes_for_size(const at_annotation *a, int w, int h, at_box *out, int cap);

/* Clears mask (geo->out_h * geo->out_w bytes) and sets the union of a's
 * boxes of class cls (cls -1: every box) after preprocessing, via
 * at_box_mask (relative boxes resolved for geo->in_w x geo->in_h). Returns
 * the number of pixels inside. */
int at_annotations_box_mask(const at_annotation *a, const at_geometry *geo, int cls,
                            unsigned char *mask);

#endif
