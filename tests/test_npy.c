/* .npy float32 files: written byte for byte as numpy writes them, read back
 * strictly, every malformed file refused with a message naming it. */
#include "core/error.h"
#include "io/npy.h"
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* A file with the given format version, header text (no padding added) and
 * data_len bytes of float32 data 0, 1, 2, ... */
static void make_npy(const char *path, int major, const char *header, size_t hl, size_t data_len) {
    size_t lb = major == 1 ? 2 : 4, n = 8 + lb + hl + data_len;
    unsigned char *b = malloc(n);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major, b[7] = 0;
    for (size_t i = 0; i < lb; i++) b[8 + i] = (unsigned char)(hl >> (8 * i));
    memcpy(b + 8 + lb, header, hl);
    for (size_t i = 0; i + 4 <= data_len; i += 4) {
        float v = (float)(i / 4);
        memcpy(b + 8 + lb + hl + i, &v, 4);
    }
    test_write_bytes(path, b, n);
    free(b);
}

static void expect_read_fails(const char *what, const char *path, const char *substr) {
    float *data = (float *)1;
    int ndim = -1;
    int64_t shape[8];
    int rc = at_npy_read_f32(path, &data, &ndim, shape);
    CHECKF(rc == AT_ERR, "%s: accepted", what);
    if (rc != AT_ERR) {
        free(data);
        return;
    }
    CHECKF(data == NULL && ndim == 0, "%s: outputs not reset on failure", what);
    const char *msg = at_last_error();
    size_t pl = strlen(path);
    CHECKF(!strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2), "%s: message \"%s\" does not start with the path",
           what, msg);
    CHECKF(strstr(msg, substr) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, substr);
}

static float pattern(long i) { return (float)i * 0.25f - 1.0f; }

static void round_trip(const char *dir, int ndim, const int64_t *shape) {
    char path[700];
    snprintf(path, sizeof path, "%s/r%d.npy", dir, ndim);
    long n = 1;
    for (int d = 0; d < ndim; d++) n *= (long)shape[d];
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (long i = 0; i < n; i++) v[i] = pattern(i);
    CHECKF(at_npy_write_f32(path, v, ndim, shape) == AT_OK, "write ndim %d: %s", ndim, at_last_error());
    float *got;
    int nd;
    int64_t sh[8];
    int rc = at_npy_read_f32(path, &got, &nd, sh);
    CHECKF(rc == AT_OK, "read ndim %d: %s", ndim, at_last_error());
    if (rc == AT_OK) {
        CHECK(got != NULL && nd == ndim);
        for (int d = 0; d < ndim && d < nd; d++) CHECKF(sh[d] == shape[d], "ndim %d: shape[%d] = %lld", ndim, d, (long long)sh[d]);
        CHECKF(!n || !memcmp(got, v, (size_t)n * sizeof *v), "ndim %d: values differ", ndim);
        free(got);
    }
    free(v);
}

TEST(npy_round_trips_arrays_of_every_rank) {
    const char *dir = test_tmpdir();
    const int64_t s1[] = {7}, s2[] = {3, 4}, s3[] = {2, 3, 5}, s8[] = {2, 1, 2, 1, 3, 1, 1, 2};
    round_trip(dir, 0, NULL);
    round_trip(dir, 1, s1);
    round_trip(dir, 2, s2);
    round_trip(dir, 3, s3);
    round_trip(dir, 8, s8);
}

TEST(npy_round_trips_empty_arrays) {
    const char *dir = test_tmpdir();
    const int64_t s1[] = {0}, s3[] = {3, 0, 2};
    round_trip(dir, 1, s1);
    round_trip(dir, 3, s3);
}

TEST(npy_writes_the_header_numpy_writes) {
    /* from numpy 1.24: np.save(f, np.zeros(shape, np.float32)) */
    static const struct {
        int ndim;
        int64_t shape[3];
        const char *dict;
    } cases[] = {
        {2, {3, 4}, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"},
        {1, {5}, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"},
        {0, {0}, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"},
        {3, {2, 3, 4}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }"},
    };
    char path[700];
    snprintf(path, sizeof path, "%s/h.npy", test_tmpdir());
    float zeros[24] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        REQUIRE(at_npy_write_f32(path, zeros, cases[i].ndim, cases[i].shape) == AT_OK);
        size_t n;
        unsigned char *b = test_read_bytes(path, &n);
        REQUIRE(b && n >= 128);
        CHECK(!memcmp(b, "\x93NUMPY\x01\x00\x76\x00", 10)); /* v1.0, header 118 bytes: total 128 */
        size_t dl = strlen(cases[i].dict);
        CHECKF(!memcmp(b + 10, cases[i].dict, dl), "case %zu: dict differs", i);
        for (size_t k = 10 + dl; k < 127; k++) CHECKF(b[k] == ' ', "case %zu: byte %zu is 0x%02x", i, k, b[k]);
        CHECK(b[127] == '\n');
        free(b);
    }
}

TEST(npy_header_keeps_64_byte_alignment_for_long_shapes) {
    char path[700];
    snprintf(path, sizeof path, "%s/long.npy", test_tmpdir());
    const int64_t shape[8] = {1, 22, 333, 4444, 0, 666666, 7777777, 88888888};
    REQUIRE(at_npy_write_f32(path, NULL, 8, shape) == AT_OK);
    size_t n;
    unsigned char *b = test_read_bytes(path, &n);
    REQUIRE(b && n > 10);
    size_t hl = (size_t)(b[8] | b[9] << 8);
    CHECK((10 + hl) % 64 == 0 && n == 10 + hl && b[n - 1] == '\n');
    CHECK(strstr((char *)b + 10, "'shape': (1, 22, 333, 4444, 0, 666666, 7777777, 88888888), }") != NULL);
    free(b);
}

TEST(npy_reads_header_variations_numpy_accepts) {
    static const char *headers[] = {
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
        "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3,)}\n",
        "  {'descr':'<f4','fortran_order':False,'shape':( 2 , 3 ),}   \n\n",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\t\r\n",
    };
    char path[700];
    snprintf(path, sizeof path, "%s/v.npy", test_tmpdir());
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        make_npy(path, 1, headers[i], strlen(headers[i]), 24);
        float *d;
        int nd;
        int64_t sh[8];
        int rc = at_npy_read_f32(path, &d, &nd, sh);
        CHECKF(rc == AT_OK, "header %zu: %s", i, at_last_error());
        if (rc) continue;
        CHECK(nd == 2 && sh[0] == 2 && sh[1] == 3 && d[5] == 5.0f);
        free(d);
    }
}

TEST(npy_reads_format_versions_2_and_3) {
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n";
    char path[700];
    snprintf(path, sizeof path, "%s/v23.npy", test_tmpdir());
    for (int major = 2; major <= 3; major++) {
        make_npy(path, major, h, strlen(h), 16);
        float *d;
        int nd;
        int64_t sh[8];
        REQUIRE(at_npy_read_f32(path, &d, &nd, sh) == AT_OK);
        CHECK(nd == 1 && sh[0] == 4 && d[3] == 3.0f);
        free(d);
    }
}

typedef struct {
    const char *name, *header, *message;
} npy_case;

TEST(npy_rejects_every_malformed_header) {
    /* each header is followed by the 8 data bytes of shape (2,) */
    static const npy_case cases[] = {
        {"big_endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
         "dtype '>f4' is not supported (need '<f4', little-endian float32)"},
        {"float64", "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", "dtype '<f8' is not supported"},
        {"int32", "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", "dtype '<i4' is not supported"},
        {"uint8", "{'descr': '|u1', 'fortran_order': False, 'shape': (8,), }", "dtype '|u1' is not supported"},
        {"structured", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
         "structured dtypes are not supported"},
        {"fortran_order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
         "Fortran-order arrays are not supported"},
        {"fortran_order_int", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }",
         "fortran_order is not True or False"},
        {"fortran_order_falsey", "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,), }",
         "fortran_order is not True or False"},
        {"missing_descr", "{'fortran_order': False, 'shape': (2,), }", "missing key 'descr'"},
        {"missing_fortran_order", "{'descr': '<f4', 'shape': (2,), }", "missing key 'fortran_order'"},
        {"missing_shape", "{'descr': '<f4', 'fortran_order': False, }", "missing key 'shape'"},
        {"extra_key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'foo': 1}", "unexpected key 'foo'"},
        {"duplicate_key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}",
         "key 'descr' appears twice"},
        {"unquoted_key", "{descr: '<f4', 'fortran_order': False, 'shape': (2,)}", "expected a quoted key"},
        {"shape_without_tuple_comma", "{'descr': '<f4', 'fortran_order': False, 'shape': (2), }",
         "a 1-D shape is written (N,)"},
        {"shape_list", "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", "shape is not a tuple"},
        {"shape_negative", "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "negative dimension"},
        {"shape_float", "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", "expected ',' or ')'"},
        {"shape_nine_dims", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,2), }",
         "more than 8 dimensions"},
        {"shape_huge", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
         "dimension too large"},
        {"not_a_dict", "[('descr', '<f4')]", "the header is not a dict"},
        {"text_after_dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x",
         "unexpected text after the header dict"},
        {"unterminated_dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "at the end of the header"},
        {"unterminated_string", "{'descr': '<f4", "unterminated string"},
        {"escape_in_string", "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,), }",
         "unsupported character in a string"},
        {"empty_header", "", "the header is not a dict"},
    };
    char path[700];
    snprintf(path, sizeof path, "%s/bad.npy", test_tmpdir());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        make_npy(path, 1, cases[i].header, strlen(cases[i].header), 8);
        expect_read_fails(cases[i].name, path, cases[i].message);
    }
}

TEST(npy_rejects_bad_prefixes) {
    char path[700];
    snprintf(path, sizeof path, "%s/p.npy", test_tmpdir());
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    test_write_lit(path, "PK\x03\x04 not npy");
    expect_read_fails("zip", path, "not a .npy file");
    test_write_lit(path, "\x93NUM");
    expect_read_fails("short_magic", path, "not a .npy file");
    test_write_lit(path, "\x93NUMPY\x01");
    expect_read_fails("no_version", path, "the format version is missing");
    test_write_lit(path, "\x93NUMPY\x01\x00\x10");
    expect_read_fails("short_length", path, "the header length is missing");
    test_write_lit(path, "\x93NUMPY\x02\x00\x10\x00\x00");
    expect_read_fails("short_length_v2", path, "the header length is missing");
    make_npy(path, 1, h, strlen(h), 8);
    FILE *f = fopen(path, "r+b");
    REQUIRE(f);
    fseek(f, 6, SEEK_SET);
    fputc(1, f), fputc(1, f);
    fclose(f);
    expect_read_fails("version_1_1", path, "unsupported .npy format version 1.1");
    make_npy(path, 4, h, strlen(h), 8);
    expect_read_fails("version_4", path, "unsupported .npy format version 4.0");
    test_write_lit(path, "\x93NUMPY\x01\x00\x40\x00{}");
    expect_read_fails("header_past_end", path, "truncated: header declares 64 bytes but the file has 2");
    test_write_lit(path, "\x93NUMPY\x02\x00\x11\x27\x00\x00{}");
    expect_read_fails("header_too_large", path, "header of 10001 bytes is larger than the limit of 10000");
}

TEST(npy_rejects_data_of_the_wrong_size) {
    char path[700];
    snprintf(path, sizeof path, "%s/d.npy", test_tmpdir());
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    make_npy(path, 1, h, strlen(h), 20);
    expect_read_fails("short_data", path, "truncated: the shape needs 24 data bytes but the file has 20");
    make_npy(path, 1, h, strlen(h), 28);
    expect_read_fails("long_data", path, "4 unexpected bytes after the array data (shape needs 24)");
    const char *huge = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }";
    make_npy(path, 1, huge, strlen(huge), 8);
    expect_read_fails("overflowing_shape", path, "truncated: the shape needs more than");
    const char *big = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }";
    make_npy(path, 1, big, strlen(big), 8);
    expect_read_fails("huge_shape_small_file", path, "needs 4000000000000 data bytes but the file has 8");
}

TEST(npy_rejects_missing_empty_and_non_regular_files) {
    const char *dir = test_tmpdir();
    char path[700];
    snprintf(path, sizeof path, "%s/missing.npy", dir);
    expect_read_fails("missing", path, "No such file or directory");
    expect_read_fails("directory", dir, "is a directory");
    expect_read_fails("device", "/dev/null", "not a regular file");
    snprintf(path, sizeof path, "%s/empty.npy", dir);
    test_write_lit(path, "");
    expect_read_fails("empty", path, "empty file (0 bytes)");
}

TEST(npy_truncated_at_every_length_fails_naming_the_path) {
    const char *dir = test_tmpdir();
    char full[700], cut[700];
    snprintf(full, sizeof full, "%s/full.npy", dir);
    snprintf(cut, sizeof cut, "%s/cut.npy", dir);
    const int64_t shape[2] = {3, 5};
    float v[15];
    for (int i = 0; i < 15; i++) v[i] = pattern(i);
    REQUIRE(at_npy_write_f32(full, v, 2, shape) == AT_OK);
    size_t n;
    unsigned char *b = test_read_bytes(full, &n);
    REQUIRE(b && n == 128 + 60);
    int failures = 0;
    for (size_t len = 0; len < n; len++) {
        test_write_bytes(cut, b, len);
        float *d = NULL;
        int nd;
        int64_t sh[8];
        if (at_npy_read_f32(cut, &d, &nd, sh) == AT_OK) {
            free(d);
            if (failures++ < 3) CHECKF(0, "truncated to %zu of %zu bytes: accepted", len, n);
        } else if (strncmp(at_last_error(), cut, strlen(cut)) || d != NULL) {
            if (failures++ < 3) CHECKF(0, "truncated to %zu bytes: \"%s\"", len, at_last_error());
        }
    }
    CHECK(failures == 0);
    free(b);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

TEST(npy_writer_replaces_files_atomically_and_leaves_no_temporary) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(path, sizeof path, "%s/map.npy", dir);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    const int64_t s4[] = {4}, s2[] = {2};
    REQUIRE(at_npy_write_f32(path, a, 1, s4) == AT_OK);
    REQUIRE(at_npy_write_f32(path, b, 1, s2) == AT_OK);
    CHECK(count_entries(dir) == 1);
    float *d;
    int nd;
    int64_t sh[8];
    REQUIRE(at_npy_read_f32(path, &d, &nd, sh) == AT_OK);
    CHECK(nd == 1 && sh[0] == 2 && d[0] == 5 && d[1] == 6);
    free(d);
}

TEST(npy_writer_rejects_bad_arguments_and_writes_nothing) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(path, sizeof path, "%s/w.npy", dir);
    float v[2] = {0};
    const int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[] = {2, -1}, s2[] = {2};
    CHECK(at_npy_write_f32(path, v, 9, s9) == AT_ERR);
    CHECKF(strstr(at_last_error(), "cannot write 9 dimensions") != NULL, "%s", at_last_error());
    CHECK(at_npy_write_f32(path, v, -1, s9) == AT_ERR);
    CHECK(at_npy_write_f32(path, v, 2, neg) == AT_ERR);
    CHECKF(strstr(at_last_error(), "shape[1] = -1 (negative)") != NULL, "%s", at_last_error());
    CHECK(at_npy_write_f32(path, NULL, 1, s2) == AT_ERR);
    CHECKF(!strncmp(at_last_error(), path, strlen(path)) && strstr(at_last_error(), "no data for shape (2,)"), "%s",
           at_last_error());
    CHECK(count_entries(dir) == 0);
}

TEST(npy_writer_reports_an_unwritable_destination) {
    char path[700];
    snprintf(path, sizeof path, "%s/no/such/dir/m.npy", test_tmpdir());
    float v = 0;
    CHECK(at_npy_write_f32(path, &v, 0, NULL) == AT_ERR);
    CHECKF(!strncmp(at_last_error(), path, strlen(path)) && strstr(at_last_error(), "No such file or directory"),
           "%s", at_last_error());
}

/* The interpreter for interop tests; ATTRIB_PYTHON overrides (e.g. a venv). */
static const char *python(void) {
    const char *p = getenv("ATTRIB_PYTHON");
    return p && p[0] ? p : "/usr/bin/python3";
}

static int have_numpy(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s -c 'import numpy' 2>/dev/null", python());
    return system(cmd) == 0;
}

TEST(npy_numpy_loads_what_we_write) {
    if (!have_numpy()) SKIP("python3 cannot import numpy");
    const char *dir = test_tmpdir();
    static const struct {
        int ndim;
        int64_t shape[3];
        const char *py;
    } cases[] = {{2, {3, 4}, "(3, 4)"}, {1, {7}, "(7,)"}, {0, {0}, "()"}, {3, {2, 0, 3}, "(2, 0, 3)"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[700], cmd[2048], out[4096];
        snprintf(path, sizeof path, "%s/ours%zu.npy", dir, i);
        float v[12];
        for (int k = 0; k < 12; k++) v[k] = pattern(k);
        REQUIRE(at_npy_write_f32(path, v, cases[i].ndim, cases[i].shape) == AT_OK);
        /* and numpy itself writes the very same bytes */
        snprintf(cmd, sizeof cmd,
                 "%s -c \"import numpy as np, io\n"
                 "a = np.load('%s'); s = %s; n = int(np.prod(s))\n"
                 "w = (np.arange(n, dtype=np.float32)*0.25-1).reshape(s)\n"
                 "assert a.dtype == np.float32 and a.shape == s and np.array_equal(a, w), (a.dtype, a.shape, a)\n"
                 "b = io.BytesIO(); np.save(b, w)\n"
                 "assert b.getvalue() == open('%s', 'rb').read(), 'bytes differ from np.save'\"",
                 python(), path, cases[i].py, path);
        int rc = run_cmd(cmd, out, sizeof out);
        CHECKF(rc == 0, "case %s: %s", cases[i].py, out);
    }
}

TEST(npy_reads_what_numpy_writes_in_every_format_version) {
    if (!have_numpy()) SKIP("python3 cannot import numpy");
    const char *dir = test_tmpdir();
    char cmd[2048], out[4096];
    snprintf(cmd, sizeof cmd,
             "%s -c \"import numpy as np\n"
             "w = (np.arange(24, dtype=np.float32)*0.25-1).reshape(2, 3, 4)\n"
             "np.save('%s/np1.npy', w)\n"
             "np.save('%s/vec.npy', w.reshape(-1)[:5])\n"
             "np.save('%s/scalar.npy', np.float32(-1))\n"
             "np.save('%s/fort.npy', np.asfortranarray(w))\n"
             "np.save('%s/f8.npy', w.astype(np.float64))\n"
             "for v in (2, 3):\n"
             "    with open('%s/np%%d.npy' %% v, 'wb') as f: np.lib.format.write_array(f, w, version=(v, 0))\"",
             python(), dir, dir, dir, dir, dir, dir);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0, "python: %s", out);
    if (rc) return;
    float ref[24];
    for (int i = 0; i < 24; i++) ref[i] = pattern(i);
    for (int v = 1; v <= 3; v++) {
        char path[700];
        snprintf(path, sizeof path, "%s/np%d.npy", dir, v);
        float *d;
        int nd;
        int64_t sh[8];
        rc = at_npy_read_f32(path, &d, &nd, sh);
        CHECKF(rc == AT_OK, "version %d: %s", v, at_last_error());
        if (rc) continue;
        CHECK(nd == 3 && sh[0] == 2 && sh[1] == 3 && sh[2] == 4);
        CHECK(!memcmp(d, ref, sizeof ref));
        free(d);
    }
    char path[700];
    float *d;
    int nd;
    int64_t sh[8];
    snprintf(path, sizeof path, "%s/vec.npy", dir);
    REQUIRE(at_npy_read_f32(path, &d, &nd, sh) == AT_OK);
    CHECK(nd == 1 && sh[0] == 5 && !memcmp(d, ref, 5 * sizeof *d));
    free(d);
    snprintf(path, sizeof path, "%s/scalar.npy", dir);
    REQUIRE(at_npy_read_f32(path, &d, &nd, sh) == AT_OK);
    CHECK(nd == 0 && d[0] == -1.0f);
    free(d);
    snprintf(path, sizeof path, "%s/fort.npy", dir);
    expect_read_fails("numpy_fortran", path, "Fortran-order");
    snprintf(path, sizeof path, "%s/f8.npy", dir);
    expect_read_fails("numpy_float64", path, "dtype '<f8' is not supported");
}
