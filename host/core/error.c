#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

int at_fail(const char *subject, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = at_failv(subject, fmt, ap);
    va_end(ap);
    return rc;
}

int at_failv(const char *subject, const char *fmt, va_list ap) {
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (subject && subject[0])
        snprintf(last_error, sizeof last_error, "%s: %s", subject, msg);
    else
        snprintf(last_error, sizeof last_error, "%s", msg);
    /* one line, always */
    for (char *p = last_error; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return AT_ERR;
}

int at_fail_prefix(const char *subject) {
    char old[1024];
    snprintf(old, sizeof old, "%s", last_error);
    return at_fail(subject, "%s", old);
}

const char *at_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void at_clear_error(void) { last_error[0] = 0; }
