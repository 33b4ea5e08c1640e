/* Strict RFC 8259 JSON: a DOM parser for headers and metadata, and a string
 * escaper for the files we write. Rejects everything the RFC does not allow
 * (comments, trailing commas, NaN, lone surrogates, invalid UTF-8, control
 * characters in strings, trailing garbage) plus duplicate object keys, NUL in
 * object keys and nesting deeper than AT_JSON_MAX_DEPTH. */
#ifndef ATTRIB_JSON_H
#define ATTRIB_JSON_H

#include <stddef.h>
#include <stdint.h>

#define AT_JSON_MAX_DEPTH 64

typedef enum {
    AT_JSON_NULL,
    AT_JSON_BOOL,
    AT_JSON_NUMBER,
    AT_JSON_STRING,
    AT_JSON_ARRAY,
    AT_JSON_OBJECT
} at_json_type;

typedef struct at_json {
    at_json_type type;
    int boolean;
    double number;
    char *string;      /* UTF-8, NUL-terminated; may hold "\u0000" (see string_len) */
    size_t string_len; /* bytes, without the terminator */
    size_t n;          /* items in array/object */
    struct at_json *items;
    char **keys;       /* object keys, parallel to items; never contain NUL */
    int integer;       /* number was written without fraction or exponent */
} at_json;

/* Parses exactly len bytes (text need not be NUL-terminated). On failure
 * records "JSON: <what> at byte N" (N is a 0-based offset into text, subject
 * NULL: the caller prefixes its file) and sets *out = NULL. */
int at_json_parse(const char *text, size_t len, at_json **out);
/* Value of key in obj; NULL if absent or obj is not an object. */
const at_json *at_json_get(const at_json *obj, const char *key);
void at_json_free(at_json *j);

/* Calls fn on each complete line of a JSONL file that parses (a torn last
 * line and lines that do not parse are skipped), until fn returns AT_ERR.
 * AT_ERR when the file cannot be read or fn failed; AT_OK otherwise. */
int at_jsonl_each(const char *path, int (*fn)(const at_json *line, void *ctx), void *ctx);

/* "null", "boolean", "number", "string", "array", "object". */
const char *at_json_type_name(at_json_type t);
/* 1 and *out set when j is a number written as an integer literal whose value
 * is exact in a double (|v| < 2^53); 0 otherwise. */
int at_json_exact_int(const at_json *j, int64_t *out);
/* s as a quoted JSON string literal (malloc'd, NUL-terminated; its length in
 * *len_out when non-NULL). Returns NULL and records a message without subject
 * when s is not valid UTF-8 or memory runs out. */
char *at_json_escape(const char *s, size_t *len_out);

#endif
