/* libFuzzer target: the JSON parser must reject or accept any bytes without
 * crashing, leaking or reading past the input; every accepted string must
 * survive at_json_escape -> at_json_parse unchanged. */
#include "io/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_strings(const at_json *j) {
    if (j->type == AT_JSON_STRING && strlen(j->string) == j->string_len) {
        size_t n;
        char *q = at_json_escape(j->string, &n);
        at_json *back;
        if (!q || at_json_parse(q, n, &back)) __builtin_trap();
        if (back->type != AT_JSON_STRING || strcmp(back->string, j->string)) __builtin_trap();
        at_json_free(back);
        free(q);
    }
    for (size_t i = 0; i < j->n && (j->type == AT_JSON_ARRAY || j->type == AT_JSON_OBJECT); i++) {
        if (j->type == AT_JSON_OBJECT && !at_json_get(j, j->keys[i])) __builtin_trap();
        check_strings(&j->items[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    at_json *j;
    if (at_json_parse((const char *)data, size, &j) == 0) {
        check_strings(j);
        at_json_free(j);
    }
    return 0;
}
