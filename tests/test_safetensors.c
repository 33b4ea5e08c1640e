/* safetensors: reading what the format allows, refusing everything else with
 * a message that names the file, and writing what the reference writes. */
#include "core/error.h"
#include "io/safetensors.h"
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* A file: 8-byte LE length of header, the header as given (no padding), then
 * data_len bytes counting up from 0. */
static void make_file(const char *path, const char *header, size_t data_len) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)i;
    test_write_bytes(path, b, n);
    free(b);
}

static int st_is_zeroed(const at_safetensors *st) {
    return !st->path && !st->map && !st->tensors && !st->n_tensors && !st->n_meta && !st->meta_keys;
}

/* Opening path must fail with "path: ...substr..." and leave st zeroed. */
static void expect_open_fails(const char *what, const char *path, const char *substr) {
    at_safetensors st;
    int rc = at_st_open(&st, path);
    CHECKF(rc == AT_ERR, "%s: opened", what);
    if (rc != AT_ERR) {
        at_st_close(&st);
        return;
    }
    const char *msg = at_last_error();
    size_t pl = strlen(path);
    CHECKF(!strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2), "%s: message \"%s\" does not start with the path",
           what, msg);
    CHECKF(strstr(msg, substr) != NULL, "%s: message \"%s\" lacks \"%s\"", what, msg, substr);
    CHECKF(st_is_zeroed(&st), "%s: st not zeroed after failure", what);
}

TEST(safetensors_reads_a_hand_built_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/a.safetensors", test_tmpdir());
    make_file(path,
              "{\"__metadata__\":{\"arch\":\"vgg16\",\"crop\":\"224\"},"
              "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]}}",
              28);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    CHECK(st.n_tensors == 2 && st.n_meta == 2);
    CHECK(!strcmp(st.tensors[0].name, "w") && !strcmp(st.tensors[1].name, "b")); /* header order */
    const at_st_tensor *w = at_st_find(&st, "w");
    REQUIRE(w != NULL);
    CHECK(w->dtype == AT_DT_F32 && !strcmp(w->dtype_name, "F32") && w->ndim == 2);
    CHECK(w->shape[0] == 2 && w->shape[1] == 3 && w->nbytes == 24 && at_st_numel(w) == 6);
    const at_st_tensor *b = at_st_find(&st, "b");
    REQUIRE(b != NULL);
    CHECK(b->ndim == 0 && at_st_numel(b) == 1 && b->nbytes == 4);
    CHECK((const unsigned char *)b->data - (const unsigned char *)w->data == 24);
    CHECK(at_st_find(&st, "missing") == NULL);
    float scratch[6];
    CHECK(at_st_to_f32(&st, at_st_find(&st, "missing"), scratch) == AT_ERR);
    CHECK(!strcmp(at_st_meta(&st, "arch"), "vgg16") && !strcmp(at_st_meta(&st, "crop"), "224"));
    CHECK(at_st_meta(&st, "resize") == NULL);
    at_st_close(&st);
    CHECK(st_is_zeroed(&st));
    at_st_close(&st); /* twice is harmless */
}

TEST(safetensors_accepts_empty_header_and_metadata_only_files) {
    char path[600];
    snprintf(path, sizeof path, "%s/e.safetensors", test_tmpdir());
    make_file(path, "{}", 0);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    CHECK(st.n_tensors == 0 && st.n_meta == 0 && at_st_meta(&st, "x") == NULL);
    at_st_close(&st);
    make_file(path, "{\"__metadata__\":{}}    ", 0);
    REQUIRE(at_st_open(&st, path) == AT_OK);
    CHECK(st.n_tensors == 0 && st.n_meta == 0);
    at_st_close(&st);
}

TEST(safetensors_allows_empty_tensors_anywhere_and_gaps_between_tensors) {
    char path[600];
    snprintf(path, sizeof path, "%s/z.safetensors", test_tmpdir());
    make_file(path,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
              "\"c\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[12,14]}}",
              16);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    const at_st_tensor *e = at_st_find(&st, "empty");
    REQUIRE(e != NULL);
    CHECK(e->nbytes == 0 && at_st_numel(e) == 0);
    float dummy = 7;
    CHECK(at_st_to_f32(&st, e, &dummy) == AT_OK && dummy == 7);
    at_st_close(&st);
}

TEST(safetensors_records_other_dtypes_but_refuses_to_convert_them) {
    char path[600];
    snprintf(path, sizeof path, "%s/i.safetensors", test_tmpdir());
    make_file(path,
              "{\"idx\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},"
              "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[24,32]},"
              "\"m\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[32,34]}}",
              34);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    const at_st_tensor *t = at_st_find(&st, "idx");
    REQUIRE(t != NULL);
    CHECK(t->dtype == AT_DT_OTHER && !strcmp(t->dtype_name, "I64") && t->nbytes == 24);
    float out[3];
    CHECK(at_st_to_f32(&st, t, out) == AT_ERR);
    char want[700];
    snprintf(want, sizeof want, "%s: tensor \"idx\": unsupported dtype I64", path);
    CHECKF(!strncmp(at_last_error(), want, strlen(want)), "message: %s", at_last_error());
    CHECK(at_st_find(&st, "m")->nbytes == 2);
    at_st_close(&st);
}

typedef struct {
    const char *name, *header;
    const char *message;
} header_case;

TEST(safetensors_rejects_every_malformed_header) {
    /* Each header sits in front of 64 data bytes. */
    static const header_case cases[] = {
        {"header_is_array", "[]", "header is a JSON array, expected an object"},
        {"header_is_string", "\"x\"", "header is a JSON string"},
        {"json_syntax", "{\"a\":", "header: JSON: unexpected end of input"},
        {"json_trailing_comma", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}",
         "header: JSON: trailing comma in object at byte"},
        {"json_invalid_utf8", "{\"\xff\":1}", "invalid UTF-8"},
        {"json_nul_padding", "{}\0\0\0\0\0\0", "header: JSON: trailing byte 0x00"},
        {"duplicate_tensor_name",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         "duplicate key \"a\""},
        {"entry_not_object", "{\"a\":1}", "tensor \"a\": entry is a JSON number, expected an object"},
        {"missing_dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor \"a\": missing \"dtype\""},
        {"missing_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "tensor \"a\": missing \"shape\""},
        {"missing_data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "tensor \"a\": missing \"data_offsets\""},
        {"unknown_field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}",
         "tensor \"a\": unknown field \"extra\""},
        {"dtype_not_string", "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}",
         "\"dtype\" is a JSON number, expected a string"},
        {"unknown_dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype \"F33\""},
        {"lowercase_dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype \"f32\""},
        {"overlong_dtype", "{\"a\":{\"dtype\":\"F32F32F32F32F32F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "unknown dtype \"F32F32F32F32F32F32\""},
        {"dtype_with_nul", "{\"a\":{\"dtype\":\"F32\\u0000\",\"shape\":[2],\"data_offsets\":[0,8]}}", "unknown dtype"},
        {"shape_not_array", "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}",
         "\"shape\" is a JSON number, expected an array"},
        {"shape_negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
         "tensor \"a\": shape[0] is -2, expected a non-negative integer"},
        {"shape_fractional", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2.5],\"data_offsets\":[0,8]}}",
         "shape[1] is 2.5 (not an integer literal)"},
        {"shape_float_literal", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
         "shape[0] is 2.0 (not an integer literal)"},
        {"shape_exponent", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}",
         "shape[0] is 1.0000000000000001e+300 (not an integer literal)"},
        {"shape_beyond_2_53", "{\"a\":{\"dtype\":\"F32\",\"shape\":[100000000000000000000],\"data_offsets\":[0,8]}}",
         "shape[0] is 1e+20 (beyond 2^53)"},
        {"shape_string_entry", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}",
         "shape[0] is a JSON string"},
        {"shape_too_many_dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
         "shape has 9 dimensions, at most 8 supported"},
        {"shape_element_count_overflows",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[4503599627370496,4096],\"data_offsets\":[0,8]}}",
         "shape [4503599627370496, 4096] is too large"},
        {"shape_byte_count_overflows",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,8]}}",
         "is too large (byte count overflows)"},
        {"offsets_not_array", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":0}}",
         "data_offsets is a JSON number, expected [begin, end]"},
        {"offsets_one_item", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}",
         "data_offsets is an array of length 1"},
        {"offsets_three_items", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}",
         "data_offsets is an array of length 3"},
        {"offsets_negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}",
         "data_offsets[0] is -8"},
        {"offsets_fractional", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}",
         "data_offsets[1] is 8.5"},
        {"offsets_string", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",8]}}",
         "data_offsets[0] is a JSON string"},
        {"end_before_begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}",
         "data_offsets end 0 is before begin 8"},
        {"span_larger_than_shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}",
         "data_offsets [0, 12] span 12 bytes but dtype F32 with shape [2] needs 8"},
        {"span_smaller_than_shape_f16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,6]}}",
         "span 6 bytes but dtype F16 with shape [2, 3] needs 12"},
        {"end_beyond_file", "{\"a\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[0,128]}}",
         "tensor \"a\": data_offsets end 128 is beyond the data section (64 bytes after the header"},
        {"begin_beyond_file", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[65,65]}}",
         "data_offsets end 65 is beyond the data section"},
        {"overlapping_tensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         "tensors \"a\" [0, 8] and \"b\" [4, 12] overlap"},
        {"identical_offsets",
         "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]},"
         "\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[16,24]}}",
         "[16, 24] overlap"},
        {"tensor_inside_another",
         "{\"big\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
         "\"mid\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]},"
         "\"small\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[8,10]}}",
         "tensors \"big\" [0, 32] and \"small\" [8, 10] overlap"},
        {"metadata_not_object", "{\"__metadata__\":[]}", "\"__metadata__\" is a JSON array, expected an object"},
        {"metadata_value_not_string", "{\"__metadata__\":{\"k\":\"v\",\"n\":1}}",
         "\"__metadata__\" value of \"n\" is a JSON number, expected a string"},
        {"metadata_value_with_nul", "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", "value of \"k\" contains U+0000"},
    };
    char path[600];
    snprintf(path, sizeof path, "%s/bad.safetensors", test_tmpdir());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* json_nul_padding carries NUL bytes: give its length explicitly */
        const char *h = cases[i].header;
        size_t hl = strcmp(cases[i].name, "json_nul_padding") ? strlen(h) : 8;
        unsigned char buf[1024];
        for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
        memcpy(buf + 8, h, hl);
        memset(buf + 8 + hl, 0, 64);
        test_write_bytes(path, buf, 8 + hl + 64);
        expect_open_fails(cases[i].name, path, cases[i].message);
    }
}

TEST(safetensors_rejects_a_missing_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/nope.safetensors", test_tmpdir());
    expect_open_fails("missing", path, "No such file or directory");
}

TEST(safetensors_rejects_a_directory) { expect_open_fails("directory", test_tmpdir(), "is a directory"); }

TEST(safetensors_rejects_a_device_file) { expect_open_fails("device", "/dev/null", "not a regular file"); }

TEST(safetensors_rejects_an_empty_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/empty.safetensors", test_tmpdir());
    test_write_lit(path, "");
    expect_open_fails("empty", path, "empty file (0 bytes)");
}

TEST(safetensors_rejects_a_file_shorter_than_the_length_field) {
    char path[600];
    snprintf(path, sizeof path, "%s/short.safetensors", test_tmpdir());
    test_write_lit(path, "\x02\0\0\0\0");
    expect_open_fails("short", path, "too small for a safetensors file: 5 bytes, need at least 8");
}

TEST(safetensors_rejects_header_longer_than_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/long.safetensors", test_tmpdir());
    test_write_lit(path, "\x64\0\0\0\0\0\0\0{}");
    expect_open_fails("long", path, "truncated: header declares 100 bytes but the file has 2 after the 8-byte length");
}

TEST(safetensors_rejects_an_implausible_header_length) {
    char path[600];
    snprintf(path, sizeof path, "%s/huge.safetensors", test_tmpdir());
    test_write_lit(path, "\0\0\0\0\0\0\0\x80{}");
    expect_open_fails("2^63", path, "header length 9223372036854775808 is implausible");
    unsigned char b[16] = {0};
    uint64_t n = AT_ST_MAX_HEADER + 1;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
    test_write_bytes(path, b, sizeof b);
    expect_open_fails("limit+1", path, "is implausible (limit 100000000 bytes)");
}

/* Issue 13 item 11: a PyTorch checkpoint given as --model names what it is
 * and the converter, not an absurd header length. torch.save writes a zip
 * (PyTorch >= 1.6, TorchScript too) or, legacy, a protocol-2 pickle starting
 * with its magic number as a LONG1. */
TEST(safetensors_recognises_pytorch_checkpoints_and_names_the_converter) {
    char path[600];
    snprintf(path, sizeof path, "%s/vgg16-397923af.pth", test_tmpdir());
    test_write_lit(path, "PK\x03\x04\x00\x00\x08\x08\x00\x00archive/data.pkl");
    expect_open_fails("zip", path, "PyTorch checkpoint (zip)");
    expect_open_fails("zip", path, "tools/export_torchvision.py --pth");
    test_write_lit(path, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    expect_open_fails("legacy pickle", path, "PyTorch checkpoint (pickle)");
    expect_open_fails("legacy pickle", path, "tools/export_torchvision.py");
    test_write_lit(path, "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}");
    expect_open_fails("pickle 4", path, "pickle");
}

TEST(safetensors_rejects_a_json_file_without_the_length_prefix) {
    char path[600];
    snprintf(path, sizeof path, "%s/plain.json", test_tmpdir());
    const char *j = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    test_write_bytes(path, j, strlen(j));
    expect_open_fails("json", path, "implausible");
}

/* ---- conversions ---- */

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

TEST(f16_converts_known_bit_patterns) {
    CHECK(at_f16_to_f32(0x3C00) == 1.0f);
    CHECK(at_f16_to_f32(0xC000) == -2.0f);
    CHECK(at_f16_to_f32(0x0001) == 5.960464477539063e-08f); /* smallest subnormal, 2^-24 */
    CHECK(at_f16_to_f32(0x03FF) == 6.097555160522461e-05f); /* largest subnormal */
    CHECK(at_f16_to_f32(0x0400) == 6.103515625e-05f);       /* smallest normal, 2^-14 */
    CHECK(at_f16_to_f32(0x7BFF) == 65504.0f);               /* largest finite */
    CHECK(at_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(at_f16_to_f32(0x7C00) == INFINITY);
    CHECK(at_f16_to_f32(0xFC00) == -INFINITY);
    CHECK(isnan(at_f16_to_f32(0x7E00)) && isnan(at_f16_to_f32(0xFE01)));
    CHECK(bits_of(at_f16_to_f32(0x0000)) == 0x00000000u);
    CHECK(bits_of(at_f16_to_f32(0x8000)) == 0x80000000u); /* -0 keeps its sign */
    CHECK(bits_of(at_f16_to_f32(0x8001)) == bits_of(-5.960464477539063e-08f));
}

TEST(f16_conversion_is_exact_for_all_65536_values) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        int e = (h >> 10) & 31, m = h & 1023;
        double ref = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
        if (h & 0x8000) ref = -ref;
        float got = at_f16_to_f32((uint16_t)h);
        int ok = isnan(ref) ? isnan(got) && !!signbit(got) == !!(h & 0x8000)
                            : bits_of(got) == bits_of((float)ref);
        if (!ok && bad++ < 5) CHECKF(0, "f16 0x%04x -> %.9g, want %.9g", h, got, ref);
    }
    CHECK(bad == 0);
}

TEST(bf16_converts_known_bit_patterns) {
    CHECK(at_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(at_bf16_to_f32(0xC000) == -2.0f);
    CHECK(at_bf16_to_f32(0x4049) == 3.140625f);
    CHECK(at_bf16_to_f32(0x0001) == 9.183549615799121e-41f); /* subnormal, 2^-133 */
    CHECK(at_bf16_to_f32(0x7F80) == INFINITY && at_bf16_to_f32(0xFF80) == -INFINITY);
    CHECK(isnan(at_bf16_to_f32(0x7FC0)));
    CHECK(bits_of(at_bf16_to_f32(0x8000)) == 0x80000000u);
}

TEST(safetensors_converts_f16_and_bf16_tensors_from_a_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/h.safetensors", test_tmpdir());
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[8,12]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[13,21]}}";
    size_t hl = strlen(hdr);
    unsigned char buf[512];
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, hdr, hl);
    unsigned char data[21] = {0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0x00, 0x7C, /* 1, -2, 2^-24, inf */
                              0x80, 0x3F, 0x00, 0xC0,                         /* 1, -2 */
                              0xEE};
    float f32[2] = {0.1f, -3.5e30f};
    memcpy(data + 13, f32, 8); /* starts at an odd offset: memcpy must be used to read it */
    memcpy(buf + 8 + hl, data, sizeof data);
    test_write_bytes(path, buf, 8 + hl + sizeof data);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    float out[4];
    const at_st_tensor *h = at_st_find(&st, "h");
    REQUIRE(h && h->dtype == AT_DT_F16);
    REQUIRE(at_st_to_f32(&st, h, out) == AT_OK);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 5.960464477539063e-08f && out[3] == INFINITY);
    const at_st_tensor *b = at_st_find(&st, "b");
    REQUIRE(b && b->dtype == AT_DT_BF16);
    REQUIRE(at_st_to_f32(&st, b, out) == AT_OK);
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    const at_st_tensor *f = at_st_find(&st, "f");
    REQUIRE(f && ((uintptr_t)f->data & 3) != 0);
    REQUIRE(at_st_to_f32(&st, f, out) == AT_OK);
    CHECK(out[0] == 0.1f && out[1] == -3.5e30f);
    at_st_close(&st);
}

/* ---- writer ---- */

TEST(safetensors_writer_round_trips_tensors_and_metadata) {
    char path[600];
    snprintf(path, sizeof path, "%s/rt.safetensors", test_tmpdir());
    float w[2 * 3 * 3 * 3], bias[2], scalar = -7.25f;
    for (int i = 0; i < 54; i++) w[i] = (float)i * 0.5f - 3.0f;
    bias[0] = 1e-30f, bias[1] = -0.0f;
    const char *names[] = {"features.0.weight", "features.0.bias", "scale", "empty"};
    const float *data[] = {w, bias, &scalar, NULL};
    const int ndims[] = {4, 1, 0, 2};
    const int64_t s0[] = {2, 3, 3, 3}, s1[] = {2}, s3[] = {0, 9};
    const int64_t *shapes[] = {s0, s1, NULL, s3};
    const char *mk[] = {"arch", "mean"}, *mv[] = {"vgg16", "[0.485, 0.456, 0.406]"};
    REQUIRE(at_st_write_f32(path, 4, names, data, ndims, shapes, 2, mk, mv) == AT_OK);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    REQUIRE(st.n_tensors == 4);
    for (int i = 0; i < 4; i++) CHECK(!strcmp(st.tensors[i].name, names[i]));
    const at_st_tensor *t = at_st_find(&st, "features.0.weight");
    REQUIRE(t && t->ndim == 4 && t->shape[3] == 3 && t->dtype == AT_DT_F32);
    float out[54];
    REQUIRE(at_st_to_f32(&st, t, out) == AT_OK);
    CHECK(!memcmp(out, w, sizeof w));
    REQUIRE(at_st_to_f32(&st, at_st_find(&st, "features.0.bias"), out) == AT_OK);
    CHECK(out[0] == 1e-30f && bits_of(out[1]) == 0x80000000u);
    t = at_st_find(&st, "scale");
    REQUIRE(t && t->ndim == 0);
    REQUIRE(at_st_to_f32(&st, t, out) == AT_OK);
    CHECK(out[0] == -7.25f);
    CHECK(at_st_find(&st, "empty")->nbytes == 0 && at_st_find(&st, "empty")->shape[1] == 9);
    CHECK(!strcmp(at_st_meta(&st, "arch"), "vgg16") && !strcmp(at_st_meta(&st, "mean"), mv[1]));
    at_st_close(&st);
}

TEST(safetensors_writer_lays_out_the_header_as_the_reference_does) {
    char path[600];
    snprintf(path, sizeof path, "%s/ref.safetensors", test_tmpdir());
    float a[2] = {1, 2}, b[1] = {3};
    const char *names[] = {"a", "b"}, *mk[] = {"k"}, *mv[] = {"v"};
    const float *data[] = {a, b};
    const int ndims[] = {1, 2};
    const int64_t sa[] = {2}, sb[] = {1, 1};
    const int64_t *shapes[] = {sa, sb};
    REQUIRE(at_st_write_f32(path, 2, names, data, ndims, shapes, 1, mk, mv) == AT_OK);
    const char *want = "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[8,12]}}";
    size_t wl = strlen(want), padded = (wl + 7) / 8 * 8, n;
    unsigned char *got = test_read_bytes(path, &n);
    REQUIRE(got != NULL);
    REQUIRE(n == 8 + padded + 12);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | got[i];
    CHECK(hl == padded && hl % 8 == 0);
    CHECK(!memcmp(got + 8, want, wl));
    for (size_t i = wl; i < padded; i++) CHECKF(got[8 + i] == ' ', "padding byte %zu is 0x%02x", i, got[8 + i]);
    CHECK(!memcmp(got + 8 + padded, a, 8) && !memcmp(got + 8 + padded + 8, b, 4));
    free(got);
}

TEST(safetensors_writer_escapes_names_and_metadata) {
    char path[600];
    snprintf(path, sizeof path, "%s/esc.safetensors", test_tmpdir());
    float v = 1;
    const char *names[] = {"quote\"back\\slash", "new\nline\ttab\x01", "caf\xC3\xA9/\xF0\x9F\x98\x80"};
    const float *data[] = {&v, &v, &v};
    const int ndims[] = {0, 0, 0};
    const int64_t *shapes[] = {NULL, NULL, NULL};
    const char *mk[] = {"k\"ey"}, *mv[] = {"{\"json\": [1, 2]}\n"};
    REQUIRE(at_st_write_f32(path, 3, names, data, ndims, shapes, 1, mk, mv) == AT_OK);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    for (int i = 0; i < 3; i++) CHECKF(at_st_find(&st, names[i]) != NULL, "name %d lost", i);
    CHECK(at_st_meta(&st, "k\"ey") && !strcmp(at_st_meta(&st, "k\"ey"), mv[0]));
    at_st_close(&st);
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

TEST(safetensors_writer_replaces_files_atomically_and_leaves_no_temporary) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float one = 1, two = 2;
    const char *names[] = {"x"};
    const float *d1[] = {&one}, *d2[] = {&two};
    const int ndims[] = {0};
    const int64_t *shapes[] = {NULL};
    REQUIRE(at_st_write_f32(path, 1, names, d1, ndims, shapes, 0, NULL, NULL) == AT_OK);
    REQUIRE(at_st_write_f32(path, 1, names, d2, ndims, shapes, 0, NULL, NULL) == AT_OK);
    CHECK(count_entries(dir) == 1);
    at_safetensors st;
    REQUIRE(at_st_open(&st, path) == AT_OK);
    float out;
    REQUIRE(at_st_to_f32(&st, &st.tensors[0], &out) == AT_OK);
    CHECK(out == 2);
    at_st_close(&st);
}

TEST(safetensors_writer_rejects_bad_arguments_and_writes_nothing) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float v[4] = {0};
    const float *data[] = {v, v};
    const int64_t s2[] = {2}, sneg[] = {-1}, *shapes[] = {s2, s2};
    const int nd1[] = {1, 1}, nd9[] = {9, 1};
    const char *dup[] = {"a", "a"}, *meta[] = {"__metadata__", "b"}, *bad_utf8[] = {"a\xFF", "b"};
    const char *null_name[] = {NULL, "b"}, *ok_names[] = {"a", "b"};
    const int64_t *neg_shapes[] = {sneg, s2};
    const float *no_data[] = {NULL, v};
    struct {
        const char *name;
        int rc;
        const char *message;
    } cases[] = {
        {"duplicate", at_st_write_f32(path, 2, dup, data, nd1, shapes, 0, NULL, NULL), "duplicate tensor name \"a\""},
        {"reserved", at_st_write_f32(path, 2, meta, data, nd1, shapes, 0, NULL, NULL), "\"__metadata__\" is reserved"},
        {"utf8", at_st_write_f32(path, 2, bad_utf8, data, nd1, shapes, 0, NULL, NULL), "tensor name: invalid UTF-8"},
        {"null_name", at_st_write_f32(path, 2, null_name, data, nd1, shapes, 0, NULL, NULL), "tensor 0 has no name"},
        {"ndim", at_st_write_f32(path, 2, ok_names, data, nd9, shapes, 0, NULL, NULL), "9 dimensions, expected 0..8"},
        {"negative", at_st_write_f32(path, 2, ok_names, data, nd1, neg_shapes, 0, NULL, NULL), "shape[0] is -1"},
        {"no_data", at_st_write_f32(path, 1, dup, no_data, nd1, shapes, 0, NULL, NULL), "tensor \"a\": no data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECKF(cases[i].rc == AT_ERR, "%s: accepted", cases[i].name);
    }
    /* messages are checked one call at a time since each overwrites the last */
    CHECK(at_st_write_f32(path, 2, dup, data, nd1, shapes, 0, NULL, NULL) == AT_ERR);
    CHECKF(!strncmp(at_last_error(), path, strlen(path)) && strstr(at_last_error(), cases[0].message),
           "%s", at_last_error());
    CHECK(at_st_write_f32(path, 2, bad_utf8, data, nd1, shapes, 0, NULL, NULL) == AT_ERR);
    CHECKF(strstr(at_last_error(), cases[2].message) != NULL, "%s", at_last_error());
    CHECK(at_st_write_f32(path, 2, ok_names, data, nd1, neg_shapes, 0, NULL, NULL) == AT_ERR);
    CHECKF(strstr(at_last_error(), cases[5].message) != NULL, "%s", at_last_error());
    CHECK(count_entries(dir) == 0);
}

TEST(safetensors_writer_reports_an_unwritable_destination) {
    char path[700];
    snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", test_tmpdir());
    float v = 0;
    const char *names[] = {"x"};
    const float *data[] = {&v};
    const int nd[] = {0};
    const int64_t *shapes[] = {NULL};
    CHECK(at_st_write_f32(path, 1, names, data, nd, shapes, 0, NULL, NULL) == AT_ERR);
    CHECKF(!strncmp(at_last_error(), path, strlen(path)) && strstr(at_last_error(), "No such file or directory"),
           "%s", at_last_error());
}

TEST(safetensors_truncated_at_every_length_fails_naming_the_path) {
    char dir[600], full[700], cut[700];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(full, sizeof full, "%s/full.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {7, 8, 9};
    const char *names[] = {"a", "b"}, *mk[] = {"arch"}, *mv[] = {"vgg"};
    const float *data[] = {a, b};
    const int nd[] = {2, 1};
    const int64_t sa[] = {2, 3}, sb[] = {3}, *shapes[] = {sa, sb};
    REQUIRE(at_st_write_f32(full, 2, names, data, nd, shapes, 1, mk, mv) == AT_OK);
    size_t n;
    unsigned char *bytes = test_read_bytes(full, &n);
    REQUIRE(bytes && n > 100);
    int failures = 0;
    for (size_t len = 0; len < n; len++) {
        test_write_bytes(cut, bytes, len);
        at_safetensors st;
        int rc = at_st_open(&st, cut);
        if (rc == AT_OK) {
            at_st_close(&st);
            if (failures++ < 3) CHECKF(0, "truncated to %zu of %zu bytes: opened", len, n);
            continue;
        }
        if (strncmp(at_last_error(), cut, strlen(cut)) || !st_is_zeroed(&st))
            if (failures++ < 3) CHECKF(0, "truncated to %zu bytes: message \"%s\"", len, at_last_error());
    }
    CHECK(failures == 0);
    test_write_bytes(cut, bytes, n);
    at_safetensors st;
    CHECK(at_st_open(&st, cut) == AT_OK);
    at_st_close(&st);
    free(bytes);
}

/* The interpreter for interop tests; ATTRIB_PYTHON overrides (e.g. a venv). */
static const char *python(void) {
    const char *p = getenv("ATTRIB_PYTHON");
    return p && p[0] ? p : "/usr/bin/python3";
}

TEST(safetensors_interoperates_with_the_python_safetensors_module) {
    char cmd[3500], out[4096];
    snprintf(cmd, sizeof cmd, "%s -c 'import safetensors.numpy, numpy' 2>/dev/null", python());
    if (system(cmd) != 0)
        SKIP("python3 module safetensors not importable (hand-built files are tested instead)");
    char dir[600], ours[700], theirs[700];
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(ours, sizeof ours, "%s/ours.safetensors", dir);
    snprintf(theirs, sizeof theirs, "%s/theirs.safetensors", dir);
    float w[12], b[3] = {0.5f, -1e-20f, 3e30f};
    for (int i = 0; i < 12; i++) w[i] = (float)i * 0.25f - 1;
    /* in name order, as the reference sorts tensors of one dtype */
    const char *names[] = {"b", "w"}, *mk[] = {"arch"}, *mv[] = {"vgg16"};
    const float *data[] = {b, w};
    const int nd[] = {1, 2};
    const int64_t sb[] = {3}, sw[] = {3, 4}, *shapes[] = {sb, sw};
    REQUIRE(at_st_write_f32(ours, 2, names, data, nd, shapes, 1, mk, mv) == AT_OK);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import numpy as np, safetensors.numpy as sn\n"
             "d = sn.load_file('%s'); w = (np.arange(12, dtype=np.float32)*0.25-1).reshape(3, 4)\n"
             "b = np.array([0.5, -1e-20, 3e30], np.float32)\n"
             "assert np.array_equal(d['w'], w) and np.array_equal(d['b'], b), d\n"
             "ref = sn.save({'w': w, 'b': b}, metadata={'arch': 'vgg16'})\n"
             "assert ref == open('%s', 'rb').read(), 'bytes differ from the reference writer'\n"
             "sn.save_file({'w': w, 'h': w.astype(np.float16), 'bf': w[0]}, '%s', metadata={'arch': 'vgg16'})\"",
             python(), ours, ours, theirs);
    int rc = run_cmd(cmd, out, sizeof out);
    CHECKF(rc == 0, "python: %s", out);
    if (rc) return;
    at_safetensors st;
    REQUIRE(at_st_open(&st, theirs) == AT_OK);
    float got[12];
    REQUIRE(at_st_to_f32(&st, at_st_find(&st, "w"), got) == AT_OK);
    CHECK(!memcmp(got, w, sizeof w));
    REQUIRE(at_st_to_f32(&st, at_st_find(&st, "h"), got) == AT_OK);
    CHECK(!memcmp(got, w, sizeof w)); /* multiples of 0.25 are exact in F16 */
    CHECK(at_st_find(&st, "h")->dtype == AT_DT_F16 && at_st_find(&st, "bf")->ndim == 1);
    CHECK(at_st_meta(&st, "arch") && !strcmp(at_st_meta(&st, "arch"), "vgg16"));
    at_st_close(&st);
}
