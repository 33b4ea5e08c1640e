/* The JSON object builder (io/json_write.h). */
#include "io/json_write.h"

#include "core/error.h"
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ======================= JSON object builder ======================= */

static void jw_put(at_jsonw *w, const char *s, size_t n) {
    if (w->failed) return;
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b) {
            w->failed = 1;
            at_fail(NULL, "out of memory building a results line");
            return;
        }
        w->buf = b, w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void jw_string(at_jsonw *w, const char *key, const char *s) {
    if (w->failed) return;
    size_t n;
    char *q = at_json_escape(s, &n);
    if (!q) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", at_last_error());
        w->failed = 1;
        at_fail(NULL, "results line: member \"%s\": %s", key, msg);
        return;
    }
    jw_put(w, q, n);
    free(q);
}

/* ",\"key\":" (no comma before the first member) */
static int jw_key(at_jsonw *w, const char *key) {
    if (w->failed) return 0;
    if (w->nfields++) jw_put(w, ",", 1);
    jw_string(w, key, key);
    jw_put(w, ":", 1);
    return !w->failed;
}

void at_jsonw_begin(at_jsonw *w) {
    memset(w, 0, sizeof *w);
    jw_put(w, "{", 1);
}

void at_jsonw_str(at_jsonw *w, const char *key, const char *value) {
    if (!jw_key(w, key)) return;
    if (value) jw_string(w, key, value);
    else jw_put(w, "null", 4);
}

void at_jsonw_int(at_jsonw *w, const char *key, long long value) {
    char b[32];
    if (jw_key(w, key)) jw_put(w, b, (size_t)snprintf(b, sizeof b, "%lld", value));
}

static void jw_num(at_jsonw *w, double v) {
    char b[40];
    if (isfinite(v)) jw_put(w, b, (size_t)snprintf(b, sizeof b, "%.9g", v));
    else jw_put(w, "null", 4); /* JSON has no NaN/inf */
}

void at_jsonw_num(at_jsonw *w, const char *key, double value) {
    if (jw_key(w, key)) jw_num(w, value);
}

void at_jsonw_bool(at_jsonw *w, const char *key, int value) {
    if (jw_key(w, key)) jw_put(w, value ? "true" : "false", value ? 4 : 5);
}

void at_jsonw_raw(at_jsonw *w, const char *key, const char *json) {
    if (jw_key(w, key)) jw_put(w, json ? json : "null", json ? strlen(json) : 4);
}

void at_jsonw_ints(at_jsonw *w, const char *key, const long long *v, int n) {
    if (!jw_key(w, key)) return;
    char b[32];
    jw_put(w, "[", 1);
    for (int i = 0; i < n; i++)
        jw_put(w, b, (size_t)snprintf(b, sizeof b, i ? ",%lld" : "%lld", v[i]));
    jw_put(w, "]", 1);
}

void at_jsonw_nums(at_jsonw *w, const char *key, const double *v, int n) {
    if (!jw_key(w, key)) return;
    jw_put(w, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i) jw_put(w, ",", 1);
        jw_num(w, v[i]);
    }
    jw_put(w, "]", 1);
}

void at_jsonw_objects(at_jsonw *w, const char *key, char *const *objects, int n) {
    if (!jw_key(w, key)) return;
    jw_put(w, "[", 1);
    for (int i = 0; i < n; i++) {
        if (!objects[i]) {
            if (!w->failed) w->failed = 1; /* the element's own message stands */
            return;
        }
        if (i) jw_put(w, ",", 1);
        jw_put(w, objects[i], strlen(objects[i]));
    }
    jw_put(w, "]", 1);
}

char *at_jsonw_end(at_jsonw *w) {
    jw_put(w, "}", 1);
    char *line = w->buf;
    at_json *j = NULL;
    /* Parsing it back catches a bad raw value or a duplicate key, which would
     * otherwise surface only when --resume reads the file. */
    if (!w->failed && at_json_parse(line, w->len, &j) != AT_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", at_last_error());
        at_fail(NULL, "results line is not valid JSON: %s", msg);
        w->failed = 1;
    }
    at_json_free(j);
    if (w->failed) {
        free(line);
        line = NULL;
    }
    memset(w, 0, sizeof *w);
    return line;
}

