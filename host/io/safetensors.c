/* safetensors reader (mmap, validated) and float32 writer. Layout and padding
 * follow the reference implementation (huggingface/safetensors). */
#include "io/safetensors.h"

#include "core/error.h"
#include "io/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and copied as is: big-endian hosts are not supported"
#endif

typedef unsigned long long ull;

static const struct {
    const char *name;
    at_dtype dtype;
    size_t size; /* bytes per element */
} dtypes[] = {
    {"F32", AT_DT_F32, 4},   {"F16", AT_DT_F16, 2},    {"BF16", AT_DT_BF16, 2},
    {"F64", AT_DT_OTHER, 8}, {"I64", AT_DT_OTHER, 8},  {"U64", AT_DT_OTHER, 8},
    {"I32", AT_DT_OTHER, 4}, {"U32", AT_DT_OTHER, 4},  {"I16", AT_DT_OTHER, 2},
    {"U16", AT_DT_OTHER, 2}, {"I8", AT_DT_OTHER, 1},   {"U8", AT_DT_OTHER, 1},
    {"BOOL", AT_DT_OTHER, 1}, {"F8_E4M3", AT_DT_OTHER, 1}, {"F8_E5M2", AT_DT_OTHER, 1},
    {"F8_E8M0", AT_DT_OTHER, 1}, {"C64", AT_DT_OTHER, 8},
};

/* Index into dtypes, -1 when the name is not a safetensors dtype we know. */
static int dtype_index(const char *name) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (!strcmp(dtypes[i].name, name)) return (int)i;
    return -1;
}

float at_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in float32 */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31)
        bits = sign | 0x7F800000u | (mant << 13); /* inf, or NaN with its payload */
    else
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float at_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16; /* bfloat16 is the top half of a float32 */
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

size_t at_st_numel(const at_st_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d]; /* overflow ruled out at open */
    return n;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* "-3", "2.0 (not an integer literal)", "a JSON string", ... for messages. */
static const char *describe(const at_json *j, char *buf, size_t cap) {
    int64_t v;
    if (j->type != AT_JSON_NUMBER) snprintf(buf, cap, "a JSON %s", at_json_type_name(j->type));
    else if (!j->integer) {
        char num[40];
        snprintf(num, sizeof num, "%.17g", j->number);
        snprintf(buf, cap, "%s%s (not an integer literal)", num, strpbrk(num, ".eni") ? "" : ".0");
    }
    else if (!at_json_exact_int(j, &v)) snprintf(buf, cap, "%.17g (beyond 2^53)", j->number);
    else snprintf(buf, cap, "%lld", (long long)v);
    return buf;
}

/* A non-negative integer field (shape entry or offset). */
static int get_index(const char *path, const char *tname, const char *field, const at_json *j,
                     uint64_t *out) {
    int64_t v;
    char what[80];
    if (!at_json_exact_int(j, &v) || v < 0)
        return at_fail(path, "tensor \"%.200s\": %s is %s, expected a non-negative integer",
                       tname, field, describe(j, what, sizeof what));
    *out = (uint64_t)v;
    return AT_OK;
}

static int parse_tensor(at_safetensors *st, const char *name, const at_json *e, const unsigned char *data,
                        uint64_t data_size, at_st_tensor *t, uint64_t *begin_out) {
    const char *path = st->path;
    if (e->type != AT_JSON_OBJECT)
        return at_fail(path, "tensor \"%.200s\": entry is a JSON %s, expected an object", name,
                       at_json_type_name(e->type));
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->keys[i], "dtype") && strcmp(e->keys[i], "shape") && strcmp(e->keys[i], "data_offsets"))
            return at_fail(path, "tensor \"%.200s\": unknown field \"%.80s\" (expected dtype, shape, data_offsets)",
                           name, e->keys[i]);
    const at_json *dt = at_json_get(e, "dtype"), *sh = at_json_get(e, "shape"),
                  *off = at_json_get(e, "data_offsets");
    if (!dt) return at_fail(path, "tensor \"%.200s\": missing \"dtype\"", name);
    if (!sh) return at_fail(path, "tensor \"%.200s\": missing \"shape\"", name);
    if (!off) return at_fail(path, "tensor \"%.200s\": missing \"data_offsets\"", name);
    if (dt->type != AT_JSON_STRING)
        return at_fail(path, "tensor \"%.200s\": \"dtype\" is a JSON %s, expected a string", name,
                       at_json_type_name(dt->type));
    if (dt->string_len >= sizeof t->dtype_name || strlen(dt->string) != dt->string_len)
        return at_fail(path, "tensor \"%.200s\": unknown dtype \"%.40s\"", name, dt->string);
    memcpy(t->dtype_name, dt->string, dt->string_len + 1);
    int di = dtype_index(t->dtype_name);
    if (di < 0) return at_fail(path, "tensor \"%.200s\": unknown dtype \"%s\"", name, t->dtype_name);
    t->dtype = dtypes[di].dtype;
    size_t esize = dtypes[di].size;

    if (sh->type != AT_JSON_ARRAY)
        return at_fail(path, "tensor \"%.200s\": \"shape\" is a JSON %s, expected an array", name,
                       at_json_type_name(sh->type));
    if (sh->n > AT_ST_MAX_DIMS)
        return at_fail(path, "tensor \"%.200s\": shape has %zu dimensions, at most %d supported", name, sh->n,
                       AT_ST_MAX_DIMS);
    t->ndim = (int)sh->n;
    uint64_t numel = 1, nbytes;
    int overflow = 0;
    for (int d = 0; d < t->ndim; d++) {
        char field[32];
        uint64_t v;
        snprintf(field, sizeof field, "shape[%d]", d);
        if (get_index(path, name, field, &sh->items[d], &v)) return AT_ERR;
        t->shape[d] = (int64_t)v;
        overflow |= __builtin_mul_overflow(numel, v, &numel);
    }
    overflow |= __builtin_mul_overflow(numel, (uint64_t)esize, &nbytes);
    char shape_s[256];
    format_shape(shape_s, sizeof shape_s, t->ndim, t->shape);
    if (overflow || nbytes > SIZE_MAX)
        return at_fail(path, "tensor \"%.200s\": shape %s is too large (byte count overflows)", name, shape_s);

    if (off->type != AT_JSON_ARRAY || off->n != 2) {
        char what[64];
        if (off->type == AT_JSON_ARRAY) snprintf(what, sizeof what, "an array of length %zu", off->n);
        else snprintf(what, sizeof what, "a JSON %s", at_json_type_name(off->type));
        return at_fail(path, "tensor \"%.200s\": data_offsets is %s, expected [begin, end]", name, what);
    }
    uint64_t begin, end;
    if (get_index(path, name, "data_offsets[0]", &off->items[0], &begin) ||
        get_index(path, name, "data_offsets[1]", &off->items[1], &end))
        return AT_ERR;
    if (end < begin)
        return at_fail(path, "tensor \"%.200s\": data_offsets end %llu is before begin %llu", name, (ull)end,
                       (ull)begin);
    if (end - begin != nbytes)
        return at_fail(path, "tensor \"%.200s\": data_offsets [%llu, %llu] span %llu bytes but dtype %s with shape %s needs %llu",
                       name, (ull)begin, (ull)end, (ull)(end - begin), t->dtype_name, shape_s, (ull)nbytes);
    if (end > data_size)
        return at_fail(path, "tensor \"%.200s\": data_offsets end %llu is beyond the data section (%llu bytes after the header; file truncated?)",
                       name, (ull)end, (ull)data_size);
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    *begin_out = begin;
    t->name = strdup(name);
    if (!t->name) return at_fail(path, "out of memory");
    return AT_OK;
}

static int parse_metadata(at_safetensors *st, const at_json *m) {
    if (m->type != AT_JSON_OBJECT)
        return at_fail(st->path, "\"__metadata__\" is a JSON %s, expected an object of strings",
                       at_json_type_name(m->type));
    st->meta_keys = calloc(m->n ? m->n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(m->n ? m->n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values) return at_fail(st->path, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        const at_json *v = &m->items[i];
        if (v->type != AT_JSON_STRING)
            return at_fail(st->path, "\"__metadata__\" value of \"%.200s\" is a JSON %s, expected a string",
                           m->keys[i], at_json_type_name(v->type));
        if (strlen(v->string) != v->string_len)
            return at_fail(st->path, "\"__metadata__\" value of \"%.200s\" contains U+0000", m->keys[i]);
        st->meta_keys[i] = strdup(m->keys[i]);
        st->meta_values[i] = strdup(v->string);
        st->n_meta = (int)i + 1; /* what at_st_close must free */
        if (!st->meta_keys[i] || !st->meta_values[i]) return at_fail(st->path, "out of memory");
    }
    return AT_OK;
}

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Sorting makes the check O(n log n); empty tensors occupy no bytes. */
static int check_overlaps(const at_safetensors *st, span *spans) {
    qsort(spans, (size_t)st->n_tensors, sizeof *spans, cmp_span);
    int last = -1;
    for (int i = 0; i < st->n_tensors; i++) {
        if (spans[i].end == spans[i].begin) continue;
        if (last >= 0 && spans[i].begin < spans[last].end)
            return at_fail(st->path, "tensors \"%.150s\" [%llu, %llu] and \"%.150s\" [%llu, %llu] overlap",
                           st->tensors[spans[last].index].name, (ull)spans[last].begin, (ull)spans[last].end,
                           st->tensors[spans[i].index].name, (ull)spans[i].begin, (ull)spans[i].end);
        if (last < 0 || spans[i].end > spans[last].end) last = i;
    }
    return AT_OK;
}

/* torch.save's formats: a zip archive (PyTorch >= 1.6, TorchScript) or a
 * pickle (legacy: protocol 2 opening with the magic number). A safetensors
 * header could begin with the same bytes, but its JSON then starts at byte 8. */
static const char *pytorch_format(const unsigned char *m, size_t size) {
    if (size > 8 && m[8] == '{') return NULL;
    if (size >= 4 && !memcmp(m, "PK\x03\x04", 4)) return "zip";
    if (size >= 2 && m[0] == 0x80 && m[1] >= 2 && m[1] <= 5) return "pickle";
    return NULL;
}

static int parse_file(at_safetensors *st) {
    const unsigned char *m = st->map;
    const char *torch_fmt = pytorch_format(m, st->map_size);
    if (torch_fmt)
        return at_fail(st->path, "a PyTorch checkpoint (%s), not safetensors: convert it with "
                       "/usr/bin/python3 tools/export_torchvision.py --pth FILE --out FILE.safetensors (docs/models.md)",
                       torch_fmt);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | m[i];
    if (hlen > AT_ST_MAX_HEADER)
        return at_fail(st->path, "header length %llu is implausible (limit %llu bytes); not a safetensors file?",
                       (ull)hlen, (ull)AT_ST_MAX_HEADER);
    if (hlen > st->map_size - 8)
        return at_fail(st->path, "truncated: header declares %llu bytes but the file has %llu after the 8-byte length",
                       (ull)hlen, (ull)(st->map_size - 8));
    at_json *root;
    if (at_json_parse((const char *)m + 8, (size_t)hlen, &root)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", at_last_error());
        return at_fail(st->path, "header: %s", msg);
    }
    int rc = AT_ERR;
    span *spans = NULL;
    if (root->type != AT_JSON_OBJECT) {
        at_fail(st->path, "header is a JSON %s, expected an object", at_json_type_name(root->type));
        goto out;
    }
    size_t n = root->n - (at_json_get(root, "__metadata__") ? 1 : 0);
    if (n > (size_t)1 << 30) {
        at_fail(st->path, "header lists %zu tensors; too many", n);
        goto out;
    }
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    spans = calloc(n ? n : 1, sizeof *spans);
    if (!st->tensors || !spans) {
        at_fail(st->path, "out of memory");
        goto out;
    }
    const unsigned char *data = m + 8 + hlen;
    uint64_t data_size = st->map_size - 8 - hlen;
    for (size_t i = 0; i < root->n; i++) {
        if (!strcmp(root->keys[i], "__metadata__")) {
            if (parse_metadata(st, &root->items[i])) goto out;
            continue;
        }
        at_st_tensor *t = &st->tensors[st->n_tensors];
        if (parse_tensor(st, root->keys[i], &root->items[i], data, data_size, t, &spans[st->n_tensors].begin)) {
            free(t->name);
            t->name = NULL;
            goto out;
        }
        spans[st->n_tensors].end = spans[st->n_tensors].begin + t->nbytes;
        spans[st->n_tensors].index = st->n_tensors;
        st->n_tensors++;
    }
    rc = check_overlaps(st, spans);
out:
    free(spans);
    at_json_free(root);
    return rc;
}

int at_st_open(at_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return at_fail(path, "%s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb)) {
        int e = errno;
        close(fd);
        return at_fail(path, "%s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) { /* open() succeeds on directories and devices */
        close(fd);
        return at_fail(path, "%s", S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    }
    if (sb.st_size == 0) {
        close(fd);
        return at_fail(path, "empty file (0 bytes), not a safetensors file");
    }
    if (sb.st_size < 8) {
        close(fd);
        return at_fail(path, "too small for a safetensors file: %lld bytes, need at least 8 for the header length",
                       (long long)sb.st_size);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return at_fail(path, "file of %lld bytes is too large to map", (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return at_fail(path, "cannot map: %s", strerror(e));
    st->map = map;
    st->map_size = (size_t)sb.st_size;
    st->path = strdup(path);
    if (!st->path) {
        at_st_close(st);
        return at_fail(path, "out of memory");
    }
    if (parse_file(st)) {
        at_st_close(st);
        return AT_ERR;
    }
    return AT_OK;
}

const at_st_tensor *at_st_find(const at_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

int at_st_to_f32(const at_safetensors *st, const at_st_tensor *t, float *out) {
    if (!t) return at_fail(st->path, "no such tensor"); /* e.g. at_st_find's NULL passed on */
    size_t n = at_st_numel(t);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case AT_DT_F32:
        if (n) memcpy(out, p, n * sizeof(float));
        return AT_OK;
    case AT_DT_F16:
        for (size_t i = 0; i < n; i++) out[i] = at_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return AT_OK;
    case AT_DT_BF16:
        for (size_t i = 0; i < n; i++) out[i] = at_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return AT_OK;
    case AT_DT_OTHER: break;
    }
    return at_fail(st->path, "tensor \"%.200s\": unsupported dtype %s (F32, F16 or BF16 needed)", t->name,
                   t->dtype_name);
}

const char *at_st_meta(const at_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

void at_st_close(at_safetensors *st) {
    if (st->map) munmap(st->map, st->map_size);
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    memset(st, 0, sizeof *st);
}

/* ---- writer ---- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *p = realloc(b->p, nc);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static int sb_json_string(strbuf *b, const char *path, const char *what, const char *s) {
    size_t n;
    char *q = at_json_escape(s, &n);
    if (!q) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", at_last_error());
        return at_fail(path, "%s: %s", what, msg);
    }
    sb_add(b, q, n);
    free(q);
    return AT_OK;
}

/* The header exactly as the reference serializer writes it: compact JSON,
 * "__metadata__" first, then the tensors; padded with spaces to 8 bytes. */
static int build_header(strbuf *b, const char *path, int n, const char *const *names, const int *ndims,
                        const int64_t *const *shapes, const uint64_t *nbytes, int n_meta,
                        const char *const *meta_keys, const char *const *meta_values) {
    char num[64];
    sb_str(b, "{");
    if (n_meta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(b, ",");
            if (sb_json_string(b, path, "metadata key", meta_keys[i])) return AT_ERR;
            sb_str(b, ":");
            if (sb_json_string(b, path, "metadata value", meta_values[i])) return AT_ERR;
        }
        sb_str(b, n > 0 ? "}," : "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (i) sb_str(b, ",");
        if (sb_json_string(b, path, "tensor name", names[i])) return AT_ERR;
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < ndims[i]; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)shapes[i][d]);
            sb_str(b, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (ull)offset, (ull)(offset + nbytes[i]));
        sb_str(b, num);
        offset += nbytes[i];
    }
    sb_str(b, "}");
    while (b->n % 8) sb_str(b, " ");
    if (b->oom) return at_fail(path, "out of memory building the header");
    return AT_OK;
}

static int check_write_args(const char *path, int n, const char *const *names, const float *const *data,
                            const int *ndims, const int64_t *const *shapes, int n_meta,
                            const char *const *meta_keys, const char *const *meta_values, uint64_t *nbytes) {
    if (n < 0 || n_meta < 0) return at_fail(path, "negative tensor or metadata count");
    for (int i = 0; i < n; i++) {
        if (!names[i]) return at_fail(path, "tensor %d has no name", i);
        if (!strcmp(names[i], "__metadata__"))
            return at_fail(path, "tensor name \"__metadata__\" is reserved for the metadata");
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) return at_fail(path, "duplicate tensor name \"%.200s\"", names[i]);
        if (ndims[i] < 0 || ndims[i] > AT_ST_MAX_DIMS)
            return at_fail(path, "tensor \"%.200s\": %d dimensions, expected 0..%d", names[i], ndims[i],
                           AT_ST_MAX_DIMS);
        uint64_t count = 1;
        int overflow = 0;
        for (int d = 0; d < ndims[i]; d++) {
            if (shapes[i][d] < 0)
                return at_fail(path, "tensor \"%.200s\": shape[%d] is %lld, expected >= 0", names[i], d,
                               (long long)shapes[i][d]);
            overflow |= __builtin_mul_overflow(count, (uint64_t)shapes[i][d], &count);
        }
        overflow |= __builtin_mul_overflow(count, (uint64_t)sizeof(float), &nbytes[i]);
        if (overflow || nbytes[i] > SIZE_MAX / 2)
            return at_fail(path, "tensor \"%.200s\": shape is too large", names[i]);
        if (count && !data[i]) return at_fail(path, "tensor \"%.200s\": no data", names[i]);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_values[i]) return at_fail(path, "metadata entry %d is NULL", i);
        for (int j = 0; j < i; j++)
            if (!strcmp(meta_keys[i], meta_keys[j]))
                return at_fail(path, "duplicate metadata key \"%.200s\"", meta_keys[i]);
    }
    return AT_OK;
}

int at_st_write_f32(const char *path, int n, const char *const *names, const float *const *data,
                    const int *ndims, const int64_t *const *shapes, int n_meta,
                    const char *const *meta_keys, const char *const *meta_values) {
    uint64_t *nbytes = calloc(n > 0 ? (size_t)n : 1, sizeof *nbytes);
    if (!nbytes) return at_fail(path, "out of memory");
    strbuf hdr = {0};
    int rc = AT_ERR;
    char tmp[4096];
    FILE *f = NULL;
    if (check_write_args(path, n, names, data, ndims, shapes, n_meta, meta_keys, meta_values, nbytes) ||
        build_header(&hdr, path, n, names, ndims, shapes, nbytes, n_meta, meta_keys, meta_values))
        goto out;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
        at_fail(path, "path too long");
        goto out;
    }
    f = fopen(tmp, "wb");
    if (!f) {
        at_fail(path, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr.p, 1, hdr.n, f) == hdr.n;
    for (int i = 0; ok && i < n; i++)
        ok = !nbytes[i] || fwrite(data[i], 1, (size_t)nbytes[i], f) == nbytes[i];
    int e = errno;
    if (fclose(f) && ok) {
        ok = 0;
        e = errno;
    }
    f = NULL;
    if (!ok) {
        at_fail(path, "cannot write %s: %s", tmp, strerror(e));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path)) {
        at_fail(path, "cannot rename %s into place: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = AT_OK;
out:
    free(hdr.p);
    free(nbytes);
    return rc;
}
