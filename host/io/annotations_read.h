/* Shared by the annotation readers (annotations.c, annotations_csv.c,
 * annotations_xml.c); not part of the API. */
#ifndef ATTRIB_IO_ANNOTATIONS_READ_H
#define ATTRIB_IO_ANNOTATIONS_READ_H

#include <stddef.h>

#include "io/annotations.h"

#define MAX_FILE_BYTES (1L << 30) /* refuse anything larger than 1 GiB */

int ann_read_whole_file(const char *path, char **buf, long *len);
size_t ann_trim_copy(const char *s, size_t n, char *out, size_t cap);
int ann_parse_uint(const char *s, int *v);
int ann_parse_finite(const char *s, double *v);
int ann_is_negative_int(const char *s);
int ann_ends_with_ci(const char *s, const char *suffix);
int ann_set_add(at_annotations *a, int *cap, const char *id, const char *subject, int *slot);
int ann_add_box(at_annotation *it, const at_box *b, const char *subject);
int ann_load_csv(const char *path, const at_model *m, at_annotations *out);
int ann_load_xml(const char *path, int is_dir, const at_model *m, at_annotations *out);

#endif
