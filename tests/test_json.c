/* Strict JSON parser: what it accepts, what it rejects and how it says so. */
#include "core/error.h"
#include "io/json.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* Parses an exact-size heap copy, so ASan catches any read past len. */
static int parse_n(const char *text, size_t len, at_json **out) {
    char *copy = malloc(len ? len : 1);
    memcpy(copy, text, len);
    int rc = at_json_parse(copy, len, out);
    free(copy);
    return rc;
}

static int parse(const char *text, at_json **out) { return parse_n(text, strlen(text), out); }

typedef struct {
    const char *name, *text;
    size_t len;            /* 0: strlen(text) */
    const char *message;   /* substring the error must contain */
} reject_case;

static void check_rejects(const reject_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const reject_case *c = &cases[i];
        at_json *j = (at_json *)1;
        int rc = parse_n(c->text, c->len ? c->len : strlen(c->text), &j);
        CHECKF(rc == AT_ERR, "case %s: accepted", c->name);
        if (rc != AT_ERR) {
            at_json_free(j);
            continue;
        }
        CHECKF(j == NULL, "case %s: *out not NULL on failure", c->name);
        const char *msg = at_last_error();
        CHECKF(!strncmp(msg, "JSON: ", 6) && strstr(msg, " at byte "), "case %s: message \"%s\" lacks form", c->name,
               msg);
        CHECKF(strstr(msg, c->message) != NULL, "case %s: message \"%s\" lacks \"%s\"", c->name, msg, c->message);
    }
}

TEST(json_parses_every_scalar_type) {
    at_json *j;
    REQUIRE(parse("null", &j) == AT_OK);
    CHECK(j->type == AT_JSON_NULL);
    at_json_free(j);
    REQUIRE(parse("true", &j) == AT_OK);
    CHECK(j->type == AT_JSON_BOOL && j->boolean == 1);
    at_json_free(j);
    REQUIRE(parse("false", &j) == AT_OK);
    CHECK(j->type == AT_JSON_BOOL && j->boolean == 0);
    at_json_free(j);
    REQUIRE(parse("-12.5e1", &j) == AT_OK);
    CHECK(j->type == AT_JSON_NUMBER && j->number == -125.0 && !j->integer);
    at_json_free(j);
    REQUIRE(parse("\"hi\"", &j) == AT_OK);
    CHECK(j->type == AT_JSON_STRING && !strcmp(j->string, "hi") && j->string_len == 2);
    at_json_free(j);
}

TEST(json_parses_nested_objects_and_arrays) {
    const char *doc = " {\"a\": [1, 2, {\"b\": null}], \"c\": {\"d\": \"e\"}, \"f\": []} \n";
    at_json *j;
    REQUIRE(parse(doc, &j) == AT_OK);
    REQUIRE(j->type == AT_JSON_OBJECT && j->n == 3);
    CHECK(!strcmp(j->keys[0], "a") && !strcmp(j->keys[1], "c") && !strcmp(j->keys[2], "f"));
    const at_json *a = at_json_get(j, "a");
    REQUIRE(a && a->type == AT_JSON_ARRAY && a->n == 3);
    CHECK(a->items[0].number == 1 && a->items[1].number == 2);
    CHECK(at_json_get(&a->items[2], "b") && at_json_get(&a->items[2], "b")->type == AT_JSON_NULL);
    const at_json *d = at_json_get(at_json_get(j, "c"), "d");
    REQUIRE(d && d->type == AT_JSON_STRING);
    CHECK(!strcmp(d->string, "e"));
    CHECK(at_json_get(j, "f")->n == 0);
    at_json_free(j);
}

TEST(json_get_returns_null_for_absent_key_or_non_object) {
    at_json *j;
    REQUIRE(parse("{\"a\": 1}", &j) == AT_OK);
    CHECK(at_json_get(j, "b") == NULL);
    CHECK(at_json_get(j, "") == NULL);
    CHECK(at_json_get(at_json_get(j, "a"), "a") == NULL);
    CHECK(at_json_get(NULL, "a") == NULL);
    at_json_free(j);
    REQUIRE(parse("[\"a\"]", &j) == AT_OK);
    CHECK(at_json_get(j, "a") == NULL);
    at_json_free(j);
}

TEST(json_accepts_numbers_in_the_rfc_grammar) {
    static const struct {
        const char *text;
        double value;
        int integer;
    } ok[] = {
        {"0", 0, 1},           {"-0", -0.0, 1},         {"7", 7, 1},
        {"1234567890", 1234567890, 1}, {"1.5", 1.5, 0}, {"-0.25", -0.25, 0},
        {"1e3", 1000, 0},      {"1E+2", 100, 0},        {"25e-2", 0.25, 0},
        {"0.0", 0, 0},         {"1e-400", 0, 0}, /* underflow to 0 is not an error */
        {"9007199254740993", 9007199254740992.0, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        at_json *j;
        int rc = parse(ok[i].text, &j);
        CHECKF(rc == AT_OK, "%s rejected: %s", ok[i].text, at_last_error());
        if (rc) continue;
        CHECKF(j->type == AT_JSON_NUMBER && j->number == ok[i].value && j->integer == ok[i].integer,
               "%s parsed as %.17g (integer %d)", ok[i].text, j->number, j->integer);
        at_json_free(j);
    }
}

TEST(json_rejects_numbers_outside_the_rfc_grammar) {
    static const reject_case cases[] = {
        {"leading_zero", "01", 0, "leading zeros"},
        {"leading_zero_negative", "-01", 0, "leading zeros"},
        {"plus_sign", "+1", 0, "unexpected character '+'"},
        {"bare_fraction", ".5", 0, "unexpected character '.'"},
        {"dot_without_digits", "1.", 0, "digit after '.'"},
        {"exponent_without_digits", "1e", 0, "digit in the exponent"},
        {"exponent_sign_only", "1e+", 0, "digit in the exponent"},
        {"minus_alone", "-", 0, "expected a digit"},
        {"minus_space", "- 1", 0, "expected a digit"},
        {"hex", "0x10", 0, "trailing character 'x'"},
        {"two_dots", "1.5.2", 0, "trailing character '.'"},
        {"infinity", "Infinity", 0, "unexpected character 'I'"},
        {"negative_infinity", "-Infinity", 0, "expected a digit"},
        {"nan", "NaN", 0, "unexpected character 'N'"},
        {"overflow", "1e400", 0, "number out of range"},
        {"negative_overflow", "-1e400", 0, "number out of range"},
    };
    check_rejects(cases, sizeof cases / sizeof cases[0]);
}

TEST(json_exact_int_accepts_only_integer_literals_below_2_53) {
    at_json *j;
    int64_t v = -1;
    REQUIRE(parse("[3, -4, 3.0, 1e2, 9007199254740991, 9007199254740992, \"3\"]", &j) == AT_OK);
    CHECK(at_json_exact_int(&j->items[0], &v) && v == 3);
    CHECK(at_json_exact_int(&j->items[1], &v) && v == -4);
    CHECK(!at_json_exact_int(&j->items[2], &v));
    CHECK(!at_json_exact_int(&j->items[3], &v));
    CHECK(at_json_exact_int(&j->items[4], &v) && v == 9007199254740991LL);
    CHECK(!at_json_exact_int(&j->items[5], &v));
    CHECK(!at_json_exact_int(&j->items[6], &v));
    at_json_free(j);
}

TEST(json_decodes_simple_escapes) {
    at_json *j;
    REQUIRE(parse("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", &j) == AT_OK);
    CHECK(!strcmp(j->string, "\" \\ / \b \f \n \r \t"));
    at_json_free(j);
}

TEST(json_decodes_unicode_escapes_to_utf8) {
    static const struct {
        const char *text, *utf8;
    } cases[] = {
        {"\"\\u0041\"", "A"},
        {"\"\\u00e9\"", "\xC3\xA9"},
        {"\"\\u00E9\"", "\xC3\xA9"},
        {"\"\\u07FF\"", "\xDF\xBF"},
        {"\"\\u20ac\"", "\xE2\x82\xAC"},
        {"\"\\uFFFF\"", "\xEF\xBF\xBF"},
        {"\"\\ud83d\\ude00\"", "\xF0\x9F\x98\x80"},   /* U+1F600 from a surrogate pair */
        {"\"\\uD834\\uDD1E\"", "\xF0\x9D\x84\x9E"},   /* U+1D11E, upper-case hex */
        {"\"\\uDBFF\\uDFFF\"", "\xF4\x8F\xBF\xBF"},   /* U+10FFFF, the last code point */
        {"\"x\\u0041y\\n\"", "xAy\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        at_json *j;
        int rc = parse(cases[i].text, &j);
        CHECKF(rc == AT_OK, "%s rejected: %s", cases[i].text, at_last_error());
        if (rc) continue;
        CHECKF(!strcmp(j->string, cases[i].utf8) && j->string_len == strlen(cases[i].utf8), "%s decoded wrongly",
               cases[i].text);
        at_json_free(j);
    }
}

TEST(json_keeps_escaped_nul_in_string_values_with_length) {
    at_json *j;
    REQUIRE(parse("\"a\\u0000b\"", &j) == AT_OK);
    CHECK(j->string_len == 3 && !memcmp(j->string, "a\0b", 4));
    at_json_free(j);
}

TEST(json_accepts_raw_utf8_in_strings) {
    at_json *j;
    const char *doc = "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \x7F\"";
    REQUIRE(parse(doc, &j) == AT_OK);
    CHECK(!strcmp(j->string, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \x7F"));
    at_json_free(j);
}

TEST(json_rejects_malformed_strings) {
    static const reject_case cases[] = {
        {"unterminated", "\"abc", 0, "unterminated string"},
        {"unterminated_after_escape", "\"abc\\\"", 0, "unterminated string"},
        {"raw_newline", "\"a\nb\"", 0, "control character 0x0a"},
        {"raw_tab", "\"a\tb\"", 0, "control character 0x09"},
        {"raw_0x01", "\"a\x01\"", 0, "control character 0x01"},
        {"raw_nul", "\"a\0b\"", 5, "control character 0x00"},
        {"unknown_escape", "\"\\x41\"", 0, "invalid escape '\\x'"},
        {"single_quote_escape", "\"\\'\"", 0, "invalid escape '\\''"},
        {"short_unicode_escape", "\"\\u12\"", 0, "invalid \\u escape"},
        {"non_hex_unicode_escape", "\"\\u12G4\"", 0, "invalid \\u escape"},
        {"lone_high_surrogate", "\"\\ud83d\"", 0, "not followed by a low surrogate"},
        {"high_surrogate_then_letter", "\"\\ud83dx\"", 0, "not followed by a low surrogate"},
        {"high_surrogate_then_high", "\"\\ud83d\\ud83d\"", 0, "not followed by a low surrogate"},
        {"high_surrogate_then_bmp", "\"\\ud83d\\u0041\"", 0, "not followed by a low surrogate"},
        {"lone_low_surrogate", "\"\\ude00\"", 0, "unpaired low surrogate"},
        {"single_quotes", "'a'", 0, "unexpected character '''"},
    };
    check_rejects(cases, sizeof cases / sizeof cases[0]);
}

TEST(json_rejects_invalid_utf8_in_strings) {
    static const reject_case cases[] = {
        {"lone_continuation", "\"\x80\"", 0, "invalid UTF-8 byte 0x80"},
        {"overlong_2_byte", "\"\xC0\x80\"", 0, "invalid UTF-8 byte 0xc0"},
        {"overlong_C1", "\"\xC1\xBF\"", 0, "invalid UTF-8 byte 0xc1"},
        {"overlong_3_byte", "\"\xE0\x80\x80\"", 0, "invalid UTF-8 byte 0xe0"},
        {"overlong_4_byte", "\"\xF0\x80\x80\x80\"", 0, "invalid UTF-8 byte 0xf0"},
        {"encoded_surrogate", "\"\xED\xA0\x80\"", 0, "invalid UTF-8 byte 0xed"},
        {"above_10FFFF", "\"\xF4\x90\x80\x80\"", 0, "invalid UTF-8 byte 0xf4"},
        {"F5_lead", "\"\xF5\x80\x80\x80\"", 0, "invalid UTF-8 byte 0xf5"},
        {"FF_byte", "\"\xFF\"", 0, "invalid UTF-8 byte 0xff"},
        {"truncated_sequence", "\"\xE2\x82\"", 0, "invalid UTF-8 byte 0xe2"},
        {"sequence_cut_by_ascii", "\"\xE2\x41\x41\"", 0, "invalid UTF-8 byte 0xe2"},
    };
    check_rejects(cases, sizeof cases / sizeof cases[0]);
}

TEST(json_rejects_structural_errors) {
    static const reject_case cases[] = {
        {"empty_input", "", 0, "unexpected end of input"},
        {"only_whitespace", " \n\t ", 0, "unexpected end of input"},
        {"trailing_comma_in_array", "[1, 2,]", 0, "trailing comma in array"},
        {"trailing_comma_in_object", "{\"a\": 1,}", 0, "trailing comma in object"},
        {"leading_comma", "[,1]", 0, "unexpected character ','"},
        {"double_comma", "[1,,2]", 0, "unexpected character ','"},
        {"missing_comma", "[1 2]", 0, "expected ',' or ']'"},
        {"missing_colon", "{\"a\" 1}", 0, "expected ':'"},
        {"non_string_key", "{1: 2}", 0, "expected a string key"},
        {"bare_key", "{a: 2}", 0, "expected a string key"},
        {"missing_value", "{\"a\":}", 0, "expected a value"},
        {"unclosed_array", "[1, 2", 0, "unexpected end of input"},
        {"unclosed_object", "{\"a\": 1", 0, "unexpected end of input"},
        {"mismatched_bracket", "[1}", 0, "expected ',' or ']'"},
        {"line_comment", "{} // x", 0, "trailing character '/'"},
        {"block_comment", "[/* x */ 1]", 0, "unexpected character '/'"},
        {"truncated_true", "tru", 0, "invalid literal"},
        {"misspelled_null", "nul", 0, "invalid literal"},
        {"capitalised_true", "True", 0, "unexpected character 'T'"},
        {"trailing_garbage", "{} x", 0, "trailing character 'x'"},
        {"two_values", "1 2", 0, "trailing character '2'"},
        {"extra_bracket", "[]]", 0, "trailing character ']'"},
        {"literal_run_on", "truex", 0, "trailing character 'x'"},
        {"trailing_nul", "{}\0", 3, "trailing byte 0x00"},
        {"vertical_tab_whitespace", "\v1", 0, "unexpected byte 0x0b"},
        {"form_feed_whitespace", "[1,\f2]", 0, "unexpected byte 0x0c"},
        {"nbsp_whitespace", "\xC2\xA0" "1", 0, "unexpected byte 0xc2"},
        {"byte_order_mark", "\xEF\xBB\xBF{}", 0, "byte order mark"},
        {"duplicate_key", "{\"a\": 1, \"b\": 2, \"a\": 3}", 0, "duplicate key \"a\""},
        {"duplicate_key_after_escape", "{\"a\": 1, \"\\u0061\": 2}", 0, "duplicate key \"a\""},
        {"nul_in_key", "{\"a\\u0000b\": 1}", 0, "object key contains U+0000"},
    };
    check_rejects(cases, sizeof cases / sizeof cases[0]);
}

TEST(json_error_names_the_byte_offset) {
    at_json *j;
    REQUIRE(parse("[1, 2, x]", &j) == AT_ERR);
    CHECKF(strstr(at_last_error(), "at byte 7") != NULL, "message: %s", at_last_error());
    REQUIRE(parse("{\"k\": 1, \"k\": 2}", &j) == AT_ERR);
    CHECKF(strstr(at_last_error(), "duplicate key \"k\" at byte 9") != NULL, "message: %s", at_last_error());
}

TEST(json_allows_whitespace_around_every_token) {
    at_json *j;
    REQUIRE(parse(" \t\r\n{ \"a\" \n:\r[ 1 ,\t2 ] , \"b\" : { } }\n ", &j) == AT_OK);
    CHECK(j->n == 2 && at_json_get(j, "a")->n == 2);
    at_json_free(j);
}

static char *nested(int depth) {
    char *s = malloc(2 * (size_t)depth + 1);
    for (int i = 0; i < depth; i++) s[i] = '[', s[depth + i] = ']';
    s[2 * depth] = 0;
    return s;
}

TEST(json_accepts_nesting_up_to_the_depth_limit) {
    char *s = nested(AT_JSON_MAX_DEPTH);
    at_json *j;
    CHECKF(parse(s, &j) == AT_OK, "%s", at_last_error());
    at_json_free(j);
    free(s);
}

TEST(json_rejects_nesting_beyond_the_depth_limit) {
    char *s = nested(AT_JSON_MAX_DEPTH + 1);
    at_json *j;
    CHECK(parse(s, &j) == AT_ERR);
    CHECKF(strstr(at_last_error(), "nesting deeper than 64 levels at byte 64") != NULL, "%s", at_last_error());
    free(s);
    /* a huge depth must not exhaust the stack either */
    s = nested(1000000);
    CHECK(parse(s, &j) == AT_ERR);
    free(s);
}

TEST(json_detects_duplicate_keys_in_large_objects) {
    size_t n = 5000, cap = n * 24 + 64, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "{");
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(s + len, cap - len, "%s\"k%zu\": %zu", i ? "," : "", i, i);
    len += (size_t)snprintf(s + len, cap - len, "}");
    at_json *j;
    REQUIRE(parse(s, &j) == AT_OK);
    CHECK(j->n == n && at_json_get(j, "k4999")->number == 4999);
    at_json_free(j);
    len -= 1;
    len += (size_t)snprintf(s + len, cap - len, ",\"k1234\": 0}");
    CHECK(parse(s, &j) == AT_ERR);
    CHECKF(strstr(at_last_error(), "duplicate key \"k1234\"") != NULL, "%s", at_last_error());
    free(s);
}

TEST(json_parses_only_the_given_length) {
    at_json *j;
    REQUIRE(parse_n("123", 2, &j) == AT_OK);
    CHECK(j->number == 12);
    at_json_free(j);
    CHECK(parse_n("true", 3, &j) == AT_ERR);
    CHECK(parse_n("\"ab\"", 3, &j) == AT_ERR);
    CHECK(parse_n("\"\\u0041\"", 6, &j) == AT_ERR);
    CHECK(parse_n("\"\\ud83d\\ude00\"", 13, &j) == AT_ERR);
}

TEST(json_escape_round_trips_through_the_parser) {
    const char *inputs[] = {"", "plain", "quote \" backslash \\ slash /", "\b\f\n\r\t\x01\x1f\x7f",
                            "caf\xC3\xA9 \xF0\x9F\x98\x80"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t n;
        char *q = at_json_escape(inputs[i], &n);
        REQUIRE(q != NULL);
        CHECK(strlen(q) == n && q[0] == '"' && q[n - 1] == '"');
        for (size_t k = 0; k < n; k++) CHECKF((unsigned char)q[k] >= 0x20, "raw control byte in %s", q);
        at_json *j;
        REQUIRE(parse(q, &j) == AT_OK);
        CHECKF(!strcmp(j->string, inputs[i]), "round trip of input %zu gave \"%s\"", i, j->string);
        at_json_free(j);
        free(q);
    }
}

TEST(json_escape_rejects_invalid_utf8) {
    CHECK(at_json_escape("ok \xC3(", NULL) == NULL);
    CHECKF(strstr(at_last_error(), "invalid UTF-8 byte 0xc3 at byte 3") != NULL, "%s", at_last_error());
    CHECK(at_json_escape("\xED\xA0\x80", NULL) == NULL);
}

TEST(json_free_accepts_null) { at_json_free(NULL); }
