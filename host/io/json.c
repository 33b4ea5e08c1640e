/* Strict RFC 8259 JSON parser (recursive descent, depth-limited) and string
 * escaper. Offsets in messages are 0-based bytes into the parsed text. */
#include "io/json.h"

#include "core/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *s;
    size_t len, pos;
    int depth;
} parser;

static int fail_at(size_t pos, const char *fmt, ...) AT_PRINTF(2, 3);
static int fail_at(size_t pos, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return at_fail(NULL, "JSON: %s at byte %zu", what, pos);
}

/* Names the byte at pos for a message: 'x', byte 0x01, or end of input. */
static int fail_unexpected(const parser *p, const char *expected) {
    if (p->pos >= p->len) return fail_at(p->pos, "unexpected end of input, expected %s", expected);
    unsigned c = p->s[p->pos];
    if (c > 0x20 && c < 0x7f)
        return fail_at(p->pos, "unexpected character '%c', expected %s", (char)c, expected);
    return fail_at(p->pos, "unexpected byte 0x%02x, expected %s", c, expected);
}

/* Length of the well-formed UTF-8 sequence at s (Unicode Table 3-7: no
 * overlongs, no surrogates, nothing above U+10FFFF), 0 when ill-formed. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (avail < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

static size_t utf8_encode(unsigned cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int is_digit(const parser *p, size_t i) {
    return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

/* Four hex digits at i (all within end) -> *cp; 0 when malformed. */
static int hex4(const unsigned char *s, size_t i, size_t end, unsigned *cp) {
    if (i + 4 > end) return 0;
    unsigned v = 0;
    for (size_t k = 0; k < 4; k++) {
        unsigned c = s[i + k], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *cp = v;
    return 1;
}

/* At an opening quote: decodes the string into a fresh buffer. */
static int parse_string(parser *p, char **out, size_t *out_len) {
    const unsigned char *s = p->s;
    size_t start = p->pos, end = p->pos + 1;
    /* Find the closing quote first so the buffer is sized by the literal,
     * never by the rest of the document. */
    while (end < p->len && s[end] != '"') end += s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail_at(start, "unterminated string");
    char *buf = malloc(end - start);
    if (!buf) return fail_at(start, "out of memory for a string of %zu bytes", end - start);
    size_t n = 0, i = start + 1;
    while (i < end) {
        unsigned c = s[i];
        if (c == '\\') {
            unsigned e = s[i + 1], cp;
            switch (e) {
            case '"': buf[n++] = '"'; break;
            case '\\': buf[n++] = '\\'; break;
            case '/': buf[n++] = '/'; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u':
                if (!hex4(s, i + 2, end, &cp)) {
                    free(buf);
                    return fail_at(i, "invalid \\u escape (need 4 hex digits)");
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    free(buf);
                    return fail_at(i, "unpaired low surrogate \\u%04X", cp);
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (!(i + 7 < end && s[i + 6] == '\\' && s[i + 7] == 'u' &&
                          hex4(s, i + 8, end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)) {
                        free(buf);
                        return fail_at(i, "high surrogate \\u%04X not followed by a low surrogate", cp);
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
                n += utf8_encode(cp, buf + n);
                i += 4;
                break;
            default:
                free(buf);
                if (e > 0x20 && e < 0x7f) return fail_at(i, "invalid escape '\\%c'", (char)e);
                return fail_at(i, "invalid escape: backslash followed by byte 0x%02x", e);
            }
            i += 2;
        } else if (c < 0x20) {
            free(buf);
            return fail_at(i, "control character 0x%02x in string (must be escaped)", c);
        } else {
            size_t k = utf8_seq_len(s + i, end - i);
            if (!k) {
                free(buf);
                return fail_at(i, "invalid UTF-8 byte 0x%02x in string", c);
            }
            memcpy(buf + n, s + i, k);
            n += k;
            i += k;
        }
    }
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    p->pos = end + 1;
    return AT_OK;
}

static int parse_number(parser *p, at_json *v) {
    size_t start = p->pos;
    int integer = 1;
    if (p->s[p->pos] == '-') p->pos++;
    if (!is_digit(p, p->pos)) return fail_unexpected(p, "a digit");
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (is_digit(p, p->pos)) return fail_at(p->pos, "leading zeros are not allowed in numbers");
    } else
        while (is_digit(p, p->pos)) p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integer = 0;
        p->pos++;
        if (!is_digit(p, p->pos)) return fail_unexpected(p, "a digit after '.'");
        while (is_digit(p, p->pos)) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integer = 0;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (!is_digit(p, p->pos)) return fail_unexpected(p, "a digit in the exponent");
        while (is_digit(p, p->pos)) p->pos++;
    }
    /* The grammar is checked above; strtod only converts (needs a NUL). */
    size_t n = p->pos - start;
    char small[64], *tok = n < sizeof small ? small : malloc(n + 1);
    if (!tok) return fail_at(start, "out of memory for a number of %zu bytes", n);
    memcpy(tok, p->s + start, n);
    tok[n] = 0;
    char *stop;
    double d = strtod(tok, &stop);
    int whole = stop == tok + n; /* fails only under a locale whose decimal point is not '.' */
    if (tok != small) free(tok);
    if (!whole) return fail_at(start, "number not convertible (is LC_NUMERIC set to a non-C locale?)");
    if (isinf(d)) return fail_at(start, "number out of range");
    v->type = AT_JSON_NUMBER;
    v->number = d;
    v->integer = integer;
    return AT_OK;
}

static int parse_value(parser *p, at_json *v);

static void free_contents(at_json *v) {
    if (v->type == AT_JSON_STRING) free(v->string);
    if (v->type == AT_JSON_ARRAY || v->type == AT_JSON_OBJECT) {
        for (size_t i = 0; i < v->n; i++) {
            free_contents(&v->items[i]);
            if (v->keys) free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

/* Grows items (and keys, positions for objects) to hold one more. */
static int reserve(at_json *v, size_t *cap, size_t **key_pos, size_t at) {
    if (v->n < *cap) return AT_OK;
    size_t nc = *cap ? *cap * 2 : 4;
    at_json *items = realloc(v->items, nc * sizeof *items);
    if (!items) return fail_at(at, "out of memory");
    v->items = items;
    if (key_pos) {
        char **keys = realloc(v->keys, nc * sizeof *keys);
        if (!keys) return fail_at(at, "out of memory");
        v->keys = keys;
        size_t *kp = realloc(*key_pos, nc * sizeof *kp);
        if (!kp) return fail_at(at, "out of memory");
        *key_pos = kp;
    }
    *cap = nc;
    return AT_OK;
}

static int enter(parser *p) {
    if (++p->depth > AT_JSON_MAX_DEPTH)
        return fail_at(p->pos, "nesting deeper than %d levels", AT_JSON_MAX_DEPTH);
    p->pos++;
    return AT_OK;
}

static int parse_array(parser *p, at_json *v) {
    v->type = AT_JSON_ARRAY;
    if (enter(p)) return AT_ERR;
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') goto done;
    for (;;) {
        if (reserve(v, &cap, NULL, p->pos)) return AT_ERR;
        if (parse_value(p, &v->items[v->n])) return AT_ERR;
        v->n++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ']') break;
        if (p->pos >= p->len || p->s[p->pos] != ',') return fail_unexpected(p, "',' or ']'");
        p->pos++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ']') return fail_at(p->pos, "trailing comma in array");
    }
done:
    p->pos++;
    p->depth--;
    return AT_OK;
}

typedef struct {
    const char *key;
    size_t pos;
} key_at;

static int cmp_key_at(const void *a, const void *b) {
    const key_at *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Sorting keeps large objects O(n log n); reports the earliest repeat. */
static int check_duplicate_keys(const at_json *v, const size_t *key_pos) {
    if (v->n < 2) return AT_OK;
    key_at *k = malloc(v->n * sizeof *k);
    if (!k) return fail_at(key_pos[0], "out of memory");
    for (size_t i = 0; i < v->n; i++) k[i] = (key_at){v->keys[i], key_pos[i]};
    qsort(k, v->n, sizeof *k, cmp_key_at);
    size_t dup = v->n;
    for (size_t i = 1; i < v->n; i++)
        if (!strcmp(k[i - 1].key, k[i].key) && (dup == v->n || k[i].pos < k[dup].pos)) dup = i;
    int rc = AT_OK;
    if (dup < v->n) rc = fail_at(k[dup].pos, "duplicate key \"%.80s\"", k[dup].key);
    free(k);
    return rc;
}

static int parse_object(parser *p, at_json *v) {
    v->type = AT_JSON_OBJECT;
    if (enter(p)) return AT_ERR;
    size_t cap = 0, *key_pos = NULL;
    int rc = AT_ERR;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') goto done;
    for (;;) {
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            fail_unexpected(p, "a string key");
            goto out;
        }
        if (reserve(v, &cap, &key_pos, p->pos)) goto out;
        size_t at = p->pos, klen;
        char *key;
        if (parse_string(p, &key, &klen)) goto out;
        if (strlen(key) != klen) {
            free(key);
            fail_at(at, "object key contains U+0000");
            goto out;
        }
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
            free(key);
            fail_unexpected(p, "':' after object key");
            goto out;
        }
        p->pos++;
        if (parse_value(p, &v->items[v->n])) {
            free(key);
            goto out;
        }
        v->keys[v->n] = key;
        key_pos[v->n] = at;
        v->n++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == '}') break;
        if (p->pos >= p->len || p->s[p->pos] != ',') {
            fail_unexpected(p, "',' or '}'");
            goto out;
        }
        p->pos++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == '}') {
            fail_at(p->pos, "trailing comma in object");
            goto out;
        }
    }
    if (check_duplicate_keys(v, key_pos)) goto out;
done:
    p->pos++;
    p->depth--;
    rc = AT_OK;
out:
    free(key_pos);
    return rc;
}

static int parse_literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
        return fail_at(p->pos, "invalid literal (expected '%s')", word);
    p->pos += n;
    return AT_OK;
}

/* On failure v is left empty (type NULL, nothing allocated). */
static int parse_value(parser *p, at_json *v) {
    memset(v, 0, sizeof *v);
    skip_ws(p);
    if (p->pos >= p->len) return fail_unexpected(p, "a value");
    int rc;
    switch (p->s[p->pos]) {
    case '{': rc = parse_object(p, v); break;
    case '[': rc = parse_array(p, v); break;
    case '"':
        v->type = AT_JSON_STRING;
        rc = parse_string(p, &v->string, &v->string_len);
        break;
    case 't': v->type = AT_JSON_BOOL; v->boolean = 1; rc = parse_literal(p, "true"); break;
    case 'f': v->type = AT_JSON_BOOL; rc = parse_literal(p, "false"); break;
    case 'n': rc = parse_literal(p, "null"); break;
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            rc = parse_number(p, v);
        else
            rc = fail_unexpected(p, "a value");
    }
    if (rc) free_contents(v);
    return rc;
}

int at_json_parse(const char *text, size_t len, at_json **out) {
    *out = NULL;
    parser p = {(const unsigned char *)text, text ? len : 0, 0, 0};
    if (p.len >= 3 && !memcmp(p.s, "\xEF\xBB\xBF", 3))
        return fail_at(0, "byte order mark is not allowed");
    at_json *root = calloc(1, sizeof *root);
    if (!root) return fail_at(0, "out of memory");
    if (parse_value(&p, root)) {
        free(root);
        return AT_ERR;
    }
    skip_ws(&p);
    if (p.pos < p.len) {
        at_json_free(root);
        unsigned c = p.s[p.pos];
        if (c > 0x20 && c < 0x7f) return fail_at(p.pos, "trailing character '%c' after the value", (char)c);
        return fail_at(p.pos, "trailing byte 0x%02x after the value", c);
    }
    *out = root;
    return AT_OK;
}

const at_json *at_json_get(const at_json *obj, const char *key) {
    if (!obj || obj->type != AT_JSON_OBJECT || !key) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

void at_json_free(at_json *j) {
    if (!j) return;
    free_contents(j);
    free(j);
}

const char *at_json_type_name(at_json_type t) {
    switch (t) {
    case AT_JSON_NULL: return "null";
    case AT_JSON_BOOL: return "boolean";
    case AT_JSON_NUMBER: return "number";
    case AT_JSON_STRING: return "string";
    case AT_JSON_ARRAY: return "array";
    case AT_JSON_OBJECT: return "object";
    }
    return "unknown";
}

int at_json_exact_int(const at_json *j, int64_t *out) {
    const double limit = 9007199254740992.0; /* 2^53: beyond, doubles skip integers */
    if (!j || j->type != AT_JSON_NUMBER || !j->integer) return 0;
    if (!(j->number < limit && j->number > -limit)) return 0;
    *out = (int64_t)j->number;
    return 1;
}

char *at_json_escape(const char *s, size_t *len_out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    char *out = malloc(6 * len + 3); /* worst case: every byte as \u00XX */
    if (!out) {
        at_fail(NULL, "out of memory escaping a string of %zu bytes", len);
        return NULL;
    }
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    out[n++] = '"';
    for (size_t i = 0; i < len;) {
        unsigned c = u[i];
        const char *short_esc = NULL;
        switch (c) {
        case '"': short_esc = "\\\""; break;
        case '\\': short_esc = "\\\\"; break;
        case '\b': short_esc = "\\b"; break;
        case '\f': short_esc = "\\f"; break;
        case '\n': short_esc = "\\n"; break;
        case '\r': short_esc = "\\r"; break;
        case '\t': short_esc = "\\t"; break;
        }
        if (short_esc) {
            out[n++] = short_esc[0];
            out[n++] = short_esc[1];
            i++;
        } else if (c < 0x20) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[c >> 4];
            out[n + 5] = hex[c & 15];
            n += 6;
            i++;
        } else {
            size_t k = utf8_seq_len(u + i, len - i);
            if (!k) {
                free(out);
                at_fail(NULL, "invalid UTF-8 byte 0x%02x at byte %zu", c, i);
                return NULL;
            }
            memcpy(out + n, u + i, k);
            n += k;
            i += k;
        }
    }
    out[n++] = '"';
    out[n] = 0;
    if (len_out) *len_out = n;
    return out;
}

int at_jsonl_each(const char *path, int (*fn)(const at_json *line, void *ctx), void *ctx) {
    FILE *f = fopen(path, "r");
    if (!f) return at_fail(path, "cannot read");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = AT_OK;
    while (rc == AT_OK && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break; /* a line still being written */
        at_json *j = NULL;
        if (at_json_parse(line, (size_t)len, &j)) {
            at_clear_error();
            continue;
        }
        rc = fn(j, ctx);
        at_json_free(j);
    }
    free(line);
    fclose(f);
    return rc;
}
