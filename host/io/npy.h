/* NumPy .npy files of float32 (maps, gates). Written as numpy itself writes
 * them (format 1.0, header padded to 64 bytes); read back strictly: only
 * '<f4', C order, format 1.0/2.0/3.0, data exactly the size the shape says. */
#ifndef ATTRIB_NPY_H
#define ATTRIB_NPY_H

#include <stdint.h>

#define AT_NPY_MAX_DIMS 8

/* Writes path.tmp.<pid> and renames it over path, so a reader never sees a
 * partial file. ndim 0..8; data may be NULL only when the array is empty. */
int at_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape);
/* Reads a float32 array; *data is malloc'd (never NULL on success, even for
 * an empty array) and freed by the caller. Messages start with the path. */
int at_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[AT_NPY_MAX_DIMS]);

#endif
