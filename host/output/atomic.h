/* Files written whole or not at all, and cleanup of in-flight temporary
 * files on SIGINT/SIGTERM. */
#ifndef ATTRIB_OUTPUT_ATOMIC_H
#define ATTRIB_OUTPUT_ATOMIC_H

#include <stdint.h>

/* ---- atomic writes and interruption ----
 * The writers put data in a temporary file beside the target and rename it.
 * A tracked temporary file is removed by the handler that
 * at_output_install_signal_cleanup() installs for SIGINT and SIGTERM, which
 * then says how many results lines the run appended and exits with 130 /
 * 143: Ctrl-C leaves no half-written file and keeps every results line
 * already appended. Tracking is thread-safe and lock-free
 * (the handler may run at any instruction); AT_OUTPUT_MAX_INFLIGHT files at
 * once. */
#define AT_OUTPUT_MAX_INFLIGHT 64
#define AT_OUTPUT_PATH_MAX 4096
int at_output_install_signal_cleanup(void);
/* Registers tmp_path; returns a slot id >= 0 for at_output_untrack, or AT_ERR. */
int at_output_track(const char *tmp_path);
void at_output_untrack(int slot);
/* at_npy_write_f32 / at_image_write_png with their temporary file tracked. */
int at_output_write_npy(const char *path, const float *data, int ndim, const int64_t *shape);
int at_output_write_png(const char *path, int w, int h, const unsigned char *rgb);


#endif
