/* .npy float32 reader/writer. Format: "\x93NUMPY", major, minor, header
 * length (u16 LE for 1.0, u32 LE for 2.0/3.0), a Python dict literal
 * {'descr': ..., 'fortran_order': ..., 'shape': (...), }, raw data. */
#include "io/npy.h"

#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "'<f4' data is copied as is: big-endian hosts are not supported"
#endif

typedef unsigned long long ull;

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64             /* numpy's ARRAY_ALIGN */
#define NPY_GROWTH_DIGITS 21     /* numpy's GROWTH_AXIS_MAX_DIGITS */
#define NPY_MAX_HEADER 10000     /* numpy's default max_header_size */

/* ---- header dict parser (the subset of Python literals numpy writes) ---- */

typedef struct {
    const char *s;
    size_t n, pos;
    const char *path;
} hparse;

static void hp_ws(hparse *h) {
    while (h->pos < h->n && h->s[h->pos] && strchr(" \t\r\n\f", h->s[h->pos])) h->pos++;
}

static int hp_fail(hparse *h, const char *what) {
    if (h->pos >= h->n) return at_fail(h->path, "header: %s at the end of the header", what);
    return at_fail(h->path, "header: %s at header byte %zu", what, h->pos);
}

static int hp_expect(hparse *h, char c, const char *what) {
    hp_ws(h);
    if (h->pos >= h->n || h->s[h->pos] != c) return hp_fail(h, what);
    h->pos++;
    return AT_OK;
}

/* A quoted string without escapes (numpy never writes any) -> buf. */
static int hp_string(hparse *h, char *buf, size_t cap, const char *what) {
    hp_ws(h);
    if (h->pos >= h->n || (h->s[h->pos] != '\'' && h->s[h->pos] != '"')) return hp_fail(h, what);
    char q = h->s[h->pos++];
    size_t k = 0;
    while (h->pos < h->n && h->s[h->pos] != q) {
        char c = h->s[h->pos];
        if (c == '\\' || c == '\n' || c == 0) return hp_fail(h, "unsupported character in a string");
        if (k + 1 < cap) buf[k++] = c;
        else return hp_fail(h, "string too long");
        h->pos++;
    }
    if (h->pos >= h->n) return hp_fail(h, "unterminated string");
    h->pos++;
    buf[k] = 0;
    return AT_OK;
}

static int hp_word(hparse *h, const char *w) {
    size_t n = strlen(w);
    if (h->n - h->pos < n || memcmp(h->s + h->pos, w, n)) return 0;
    char next = h->pos + n < h->n ? h->s[h->pos + n] : ' ';
    if ((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') || (next >= '0' && next <= '9') || next == '_')
        return 0;
    h->pos += n;
    return 1;
}

static int hp_shape(hparse *h, int *ndim, int64_t *shape) {
    if (hp_expect(h, '(', "shape is not a tuple (expected '(')")) return AT_ERR;
    int nd = 0;
    for (;;) {
        hp_ws(h);
        if (h->pos < h->n && h->s[h->pos] == ')') break;
        if (h->pos < h->n && h->s[h->pos] == '-') return hp_fail(h, "negative dimension in shape");
        if (h->pos >= h->n || h->s[h->pos] < '0' || h->s[h->pos] > '9')
            return hp_fail(h, "expected a non-negative integer in shape");
        if (nd == AT_NPY_MAX_DIMS) return hp_fail(h, "shape has more than 8 dimensions");
        int64_t v = 0;
        while (h->pos < h->n && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
            if (v > (INT64_MAX - 9) / 10) return hp_fail(h, "dimension too large in shape");
            v = v * 10 + (h->s[h->pos++] - '0');
        }
        shape[nd++] = v;
        hp_ws(h);
        if (h->pos < h->n && h->s[h->pos] == ',') {
            h->pos++;
            continue;
        }
        if (h->pos < h->n && h->s[h->pos] == ')') {
            /* Python: "(3)" is the integer 3, a 1-tuple needs its comma */
            if (nd == 1) return hp_fail(h, "shape (N) is not a tuple (a 1-D shape is written (N,))");
            break;
        }
        return hp_fail(h, "expected ',' or ')' in shape");
    }
    h->pos++;
    *ndim = nd;
    return AT_OK;
}

static int parse_header(const char *path, const char *s, size_t n, int *ndim, int64_t *shape) {
    hparse h = {s, n, 0, path};
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (hp_expect(&h, '{', "expected '{' (the header is not a dict)")) return AT_ERR;
    for (;;) {
        hp_ws(&h);
        if (h.pos < h.n && h.s[h.pos] == '}') break;
        char key[32];
        if (hp_string(&h, key, sizeof key, "expected a quoted key")) return AT_ERR;
        if (hp_expect(&h, ':', "expected ':' after a key")) return AT_ERR;
        hp_ws(&h);
        int *seen;
        if (!strcmp(key, "descr")) {
            seen = &seen_descr;
            char descr[64];
            if (h.pos < h.n && (h.s[h.pos] == '[' || h.s[h.pos] == '{'))
                return at_fail(path, "header: structured dtypes are not supported (need '<f4', float32)");
            if (hp_string(&h, descr, sizeof descr, "descr is not a dtype string")) return AT_ERR;
            if (strcmp(descr, "<f4"))
                return at_fail(path, "dtype '%s' is not supported (need '<f4', little-endian float32)", descr);
        } else if (!strcmp(key, "fortran_order")) {
            seen = &seen_fortran;
            if (hp_word(&h, "True"))
                return at_fail(path, "Fortran-order arrays are not supported (need fortran_order False)");
            if (!hp_word(&h, "False")) return hp_fail(&h, "fortran_order is not True or False");
        } else if (!strcmp(key, "shape")) {
            seen = &seen_shape;
            if (hp_shape(&h, ndim, shape)) return AT_ERR;
        } else
            return at_fail(path, "header: unexpected key '%s' (expected descr, fortran_order, shape)", key);
        if (*seen) return at_fail(path, "header: key '%s' appears twice", key);
        *seen = 1;
        hp_ws(&h);
        if (h.pos < h.n && h.s[h.pos] == ',') {
            h.pos++;
            continue;
        }
        if (h.pos < h.n && h.s[h.pos] == '}') break;
        return hp_fail(&h, "expected ',' or '}'");
    }
    h.pos++;
    hp_ws(&h);
    if (h.pos < h.n) return hp_fail(&h, "unexpected text after the header dict");
    if (!seen_descr) return at_fail(path, "header: missing key 'descr'");
    if (!seen_fortran) return at_fail(path, "header: missing key 'fortran_order'");
    if (!seen_shape) return at_fail(path, "header: missing key 'shape'");
    return AT_OK;
}

/* ---- reader ---- */

/* Reads exactly n bytes at off; 0 on success. */
static int read_at(int fd, void *buf, size_t n, off_t off) {
    char *p = buf;
    while (n) {
        ssize_t k = pread(fd, p, n, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO; /* shrank while reading */
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

static int read_file(int fd, const char *path, float **data, int *ndim, int64_t *shape) {
    struct stat sb;
    if (fstat(fd, &sb)) return at_fail(path, "%s", strerror(errno));
    if (S_ISDIR(sb.st_mode)) return at_fail(path, "is a directory");
    if (!S_ISREG(sb.st_mode)) return at_fail(path, "not a regular file");
    uint64_t size = (uint64_t)sb.st_size;
    if (size == 0) return at_fail(path, "empty file (0 bytes), not a .npy file");
    unsigned char pre[12];
    size_t have = size < sizeof pre ? (size_t)size : sizeof pre;
    if (read_at(fd, pre, have, 0)) return at_fail(path, "read error: %s", strerror(errno));
    if (have < NPY_MAGIC_LEN || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN))
        return at_fail(path, "not a .npy file (does not start with \\x93NUMPY)");
    if (have < 8) return at_fail(path, "truncated: %llu bytes, the format version is missing", (ull)size);
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return at_fail(path, "unsupported .npy format version %d.%d (need 1.0, 2.0 or 3.0)", major, minor);
    size_t lenbytes = major == 1 ? 2 : 4, prefix = 8 + lenbytes;
    if (have < prefix) return at_fail(path, "truncated: %llu bytes, the header length is missing", (ull)size);
    uint64_t hlen = 0;
    for (size_t i = lenbytes; i-- > 0;) hlen = hlen << 8 | pre[8 + i];
    if (hlen > NPY_MAX_HEADER)
        return at_fail(path, "header of %llu bytes is larger than the limit of %d", (ull)hlen, NPY_MAX_HEADER);
    if (hlen > size - prefix)
        return at_fail(path, "truncated: header declares %llu bytes but the file has %llu after the prefix",
                       (ull)hlen, (ull)(size - prefix));
    char hdr[NPY_MAX_HEADER + 1];
    if (read_at(fd, hdr, (size_t)hlen, (off_t)prefix)) return at_fail(path, "read error: %s", strerror(errno));
    hdr[hlen] = 0;
    if (parse_header(path, hdr, (size_t)hlen, ndim, shape)) return AT_ERR;

    uint64_t count = 1, nbytes;
    int overflow = 0;
    for (int d = 0; d < *ndim; d++) overflow |= __builtin_mul_overflow(count, (uint64_t)shape[d], &count);
    overflow |= __builtin_mul_overflow(count, (uint64_t)sizeof(float), &nbytes);
    uint64_t avail = size - prefix - hlen;
    if (overflow || nbytes > avail)
        return at_fail(path, "truncated: the shape needs %s%llu data bytes but the file has %llu",
                       overflow ? "more than " : "", overflow ? (ull)UINT64_MAX : (ull)nbytes, (ull)avail);
    if (nbytes < avail)
        return at_fail(path, "%llu unexpected bytes after the array data (shape needs %llu)",
                       (ull)(avail - nbytes), (ull)nbytes);
    float *buf = malloc(nbytes ? (size_t)nbytes : 1);
    if (!buf) return at_fail(path, "out of memory for %llu bytes", (ull)nbytes);
    if (read_at(fd, buf, (size_t)nbytes, (off_t)(prefix + hlen))) {
        free(buf);
        return at_fail(path, "read error: %s", strerror(errno));
    }
    *data = buf;
    return AT_OK;
}

int at_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[AT_NPY_MAX_DIMS]) {
    *data = NULL;
    *ndim = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return at_fail(path, "%s", strerror(errno));
    int nd = 0;
    int64_t sh[AT_NPY_MAX_DIMS] = {0};
    int rc = read_file(fd, path, data, &nd, sh);
    close(fd);
    if (rc == AT_OK) {
        *ndim = nd;
        memcpy(shape, sh, sizeof sh);
    }
    return rc;
}

/* ---- writer ---- */

int at_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > AT_NPY_MAX_DIMS)
        return at_fail(path, "cannot write %d dimensions (0..%d supported)", ndim, AT_NPY_MAX_DIMS);
    uint64_t count = 1, nbytes;
    int overflow = 0;
    char sh[256], first[32] = "";
    size_t k = (size_t)snprintf(sh, sizeof sh, "(");
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return at_fail(path, "cannot write shape[%d] = %lld (negative)", d, (long long)shape[d]);
        overflow |= __builtin_mul_overflow(count, (uint64_t)shape[d], &count);
        k += (size_t)snprintf(sh + k, sizeof sh - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    }
    snprintf(sh + k, sizeof sh - k, ndim == 1 ? ",)" : ")");
    overflow |= __builtin_mul_overflow(count, (uint64_t)sizeof(float), &nbytes);
    if (overflow || nbytes > SIZE_MAX / 2) return at_fail(path, "cannot write: shape %s is too large", sh);
    if (nbytes && !data) return at_fail(path, "cannot write: no data for shape %s", sh);

    /* numpy's _write_array_header: the dict, spare spaces so shape[0] can
     * grow to 21 digits in place, then spaces and '\n' up to 64 bytes. */
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", sh);
    if (ndim > 0) {
        int digits = snprintf(first, sizeof first, "%lld", (long long)shape[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++) hdr[n++] = ' ';
    }
    int pad = NPY_ALIGN - (NPY_MAGIC_LEN + 2 + 2 + n + 1) % NPY_ALIGN; /* 1..64, as numpy */
    for (int i = 0; i < pad; i++) hdr[n++] = ' ';
    hdr[n++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(n & 0xFF),
                             (unsigned char)(n >> 8)};

    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return at_fail(path, "path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return at_fail(path, "cannot create %s: %s", tmp, strerror(errno));
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(hdr, 1, (size_t)n, f) == (size_t)n &&
             (!nbytes || fwrite(data, 1, (size_t)nbytes, f) == nbytes);
    int e = errno;
    if (fclose(f) && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return at_fail(path, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        e = errno;
        unlink(tmp);
        return at_fail(path, "cannot rename %s into place: %s", tmp, strerror(e));
    }
    return AT_OK;
}
