/* One error path for the library: a failing function records a one-line
 * message "subject: what is wrong" (subject = file or option) and returns
 * AT_ERR; the CLI prints it as "attrib: <message>". Thread-local, like errno. */
#ifndef ATTRIB_ERROR_H
#define ATTRIB_ERROR_H

#include <stdarg.h>

#define AT_OK 0
#define AT_ERR (-1)

#if defined(__GNUC__)
#define AT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AT_PRINTF(a, b)
#endif

/* Records "subject: <fmt...>" and returns AT_ERR. subject may be NULL. */
int at_fail(const char *subject, const char *fmt, ...) AT_PRINTF(2, 3);
int at_failv(const char *subject, const char *fmt, va_list ap);
/* Prefixes the current message with "subject: " (used when a lower layer
 * failed without knowing the file it was working on). Returns AT_ERR. */
int at_fail_prefix(const char *subject);
const char *at_last_error(void);
void at_clear_error(void);

#endif
