/* The one JSON writer: objects built member by member (results lines, --json
 * output), strings escaped by at_json_escape (io/json.h). */
#ifndef ATTRIB_IO_JSON_WRITE_H
#define ATTRIB_IO_JSON_WRITE_H

#include <stddef.h>

/* ---- JSON object builder for one results line ----
 * Usage: at_jsonw w; at_jsonw_begin(&w); at_jsonw_str(&w, "image", p); ...;
 * char *line = at_jsonw_end(&w);  Errors (invalid UTF-8, OOM, a raw value
 * that is not JSON, a duplicate key) are sticky: later calls do nothing and
 * at_jsonw_end returns NULL with the first message. */
typedef struct {
    char *buf;
    size_t len, cap;
    int nfields;
    int failed;
} at_jsonw;

void at_jsonw_begin(at_jsonw *w);
void at_jsonw_str(at_jsonw *w, const char *key, const char *value); /* NULL value -> null */
void at_jsonw_int(at_jsonw *w, const char *key, long long value);
void at_jsonw_num(at_jsonw *w, const char *key, double value); /* %.9g; NaN, inf -> null */
void at_jsonw_bool(at_jsonw *w, const char *key, int value);
void at_jsonw_raw(at_jsonw *w, const char *key, const char *json); /* nested array/object */
void at_jsonw_ints(at_jsonw *w, const char *key, const long long *v, int n);
void at_jsonw_nums(at_jsonw *w, const char *key, const double *v, int n);
/* An array of objects, each made by at_jsonw_end (NULL entries fail the writer). */
void at_jsonw_objects(at_jsonw *w, const char *key, char *const *objects, int n);
/* The line "{...}" without newline (malloc'd), checked by parsing it back, or
 * NULL and a message. Always releases w's buffer. */
char *at_jsonw_end(at_jsonw *w);


#endif
