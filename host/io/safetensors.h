/* safetensors files: an 8-byte little-endian header length N, N bytes of
 * JSON header {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}, then the raw little-endian tensors
 * (offsets relative to the byte after the header). Read via a read-only mmap;
 * every field is validated before a tensor is exposed. */
#ifndef ATTRIB_SAFETENSORS_H
#define ATTRIB_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define AT_ST_MAX_DIMS 8
#define AT_ST_MAX_HEADER 100000000ull /* bytes; larger headers are rejected as implausible */

/* OTHER: a dtype of the format we recognise (I64, F64, U8, ...) but cannot
 * convert; see dtype_name. */
typedef enum { AT_DT_F32, AT_DT_F16, AT_DT_BF16, AT_DT_OTHER } at_dtype;

typedef struct {
    char *name;
    at_dtype dtype;
    char dtype_name[16]; /* as in the file: "F32", "I64", ... */
    int ndim;
    int64_t shape[AT_ST_MAX_DIMS];
    const void *data; /* inside the mapping; may be unaligned */
    size_t nbytes;
} at_st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    int n_tensors;
    at_st_tensor *tensors; /* in header order */
    int n_meta;
    char **meta_keys;
    char **meta_values;
} at_safetensors;

/* Opens and validates path. On failure st is left zeroed (at_st_close is
 * still safe) and the message starts with the path. */
int at_st_open(at_safetensors *st, const char *path);
/* NULL when no tensor has that name. */
const at_st_tensor *at_st_find(const at_safetensors *st, const char *name);
/* Number of elements of t (product of its shape; 1 for a scalar). */
size_t at_st_numel(const at_st_tensor *t);
/* Converts t to float32 into out (at_st_numel(t) floats): F32 copied, F16 and
 * BF16 widened exactly (subnormals, inf and NaN kept). Other dtypes fail. */
int at_st_to_f32(const at_safetensors *st, const at_st_tensor *t, float *out);
/* Metadata value for key; NULL when absent. */
const char *at_st_meta(const at_safetensors *st, const char *key);
void at_st_close(at_safetensors *st);

/* The exact IEEE conversions used by at_st_to_f32. */
float at_f16_to_f32(uint16_t h);
float at_bf16_to_f32(uint16_t b);

/* Writes n float32 tensors (in the given order, contiguous) and n_meta
 * metadata strings, as the reference implementation lays them out (header
 * padded with spaces to a multiple of 8). Written to a temporary name in the
 * same directory and renamed, so readers never see a partial file. */
int at_st_write_f32(const char *path, int n, const char *const *names, const float *const *data,
                    const int *ndims, const int64_t *const *shapes, int n_meta,
                    const char *const *meta_keys, const char *const *meta_values);

#endif
