/* What explain and eval share on the command line: gathering image paths
 * (positional, --list, --dir), their output stems, the per-image work loop
 * bookkeeping (resume keys, progress), and writing one image's map files. */
#ifndef ATTRIB_CLI_EXPLAIN_IO_H
#define ATTRIB_CLI_EXPLAIN_IO_H

#include "cli.h"
#include "output/output.h"

/* Writes DIR/<stem>.<tag>.npy (H x W float32) and, unless no_overlay, the
 * overlay PNG on the preprocessed image; returns the paths (malloc'd). */
int cli_write_map(const char *dir, const char *stem, const char *tag, const char *param, const float *map, int w,
                  int h, const unsigned char *rgb, int no_overlay, char **npy_path, char **png_path);

#endif
