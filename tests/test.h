/* Minimal test harness: TEST(name) { ... } registers itself; CHECK records a
 * failure and continues, REQUIRE returns from the test, SKIP(reason) marks it
 * skipped and prints why. The runner (tests/run_tests.c) ends with the line
 * "N passed, N failed, N skipped". */
#ifndef ATTRIB_TEST_H
#define ATTRIB_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn, const char *file);
void test_fail_at(const char *file, int line, const char *fmt, ...);
void test_skip(const char *reason);
int test_failed_now(void);
/* Root of the repository (tests run from there; overridable with ATTRIB_ROOT). */
const char *test_root(void);
/* Path under the repository root, in a static rotating buffer. */
const char *test_path(const char *rel);
/* A fresh empty temporary directory for this test (removed at exit). */
const char *test_tmpdir(void);

#define TEST(name)                                                              \
    static void name(void);                                                     \
    __attribute__((constructor)) static void register_##name(void) {           \
        test_register(#name, name, __FILE__);                                   \
    }                                                                           \
    static void name(void)

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, "CHECK(%s)", #cond);      \
    } while (0)
#define CHECKF(cond, ...)                                                       \
    do {                                                                        \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__);             \
    } while (0)
#define REQUIRE(cond)                                                           \
    do {                                                                        \
        if (!(cond)) {                                                          \
            test_fail_at(__FILE__, __LINE__, "REQUIRE(%s)", #cond);             \
            return;                                                             \
        }                                                                       \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                   \
    do {                                                                        \
        double a_ = (a), b_ = (b);                                              \
        if (!(fabs(a_ - b_) <= (tol)))                                          \
            test_fail_at(__FILE__, __LINE__, "%s = %.9g, %s = %.9g, |diff| > %g", \
                         #a, a_, #b, b_, (double)(tol));                        \
    } while (0)
#define SKIP(reason)                                                            \
    do {                                                                        \
        test_skip(reason);                                                      \
        return;                                                                 \
    } while (0)

/* Compares arrays: every |a-b| <= atol + rtol*|ref| ; prints the worst index. */
int check_close(const char *what, const float *got, const float *ref, long n,
                double atol, double rtol, const char *file, int line);
#define CHECK_CLOSE(what, got, ref, n, atol, rtol)                              \
    check_close(what, got, ref, n, atol, rtol, __FILE__, __LINE__)

/* Whole-file helpers for corruption tests: write n bytes (a string literal
 * with its embedded NULs for test_write_lit), read a file (malloc'ed, *n bytes;
 * NULL when it cannot be opened). */
void test_write_bytes(const char *path, const void *data, size_t n);
#define test_write_lit(path, lit) test_write_bytes(path, lit, sizeof(lit) - 1)
unsigned char *test_read_bytes(const char *path, size_t *n);

/* Runs a shell command, captures stdout+stderr (truncated to cap) and returns
 * its exit status (or -1 when it was killed by a signal). */
int run_cmd(const char *cmd, char *out, int cap);
/* Up to cap - 1 bytes of the file at path into buf, NUL-terminated; the
 * length read (0 when it cannot be read). */
size_t test_read_text(const char *path, char *buf, size_t cap);
/* Newlines in the file at path; -1 when it cannot be read. */
int test_count_lines(const char *path);

#endif
