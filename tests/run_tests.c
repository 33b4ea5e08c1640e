/* Test runner: runs every registered test (or those whose name contains one
 * of the arguments) and ends with "N passed, N failed, N skipped". */
#include "test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const char *name, *file;
    test_fn fn;
} test_entry;

static test_entry tests[1024];
static int n_tests;
static int cur_failed, cur_skipped;
static char cur_skip_reason[256];
static char tmp_root[256];
static int tmp_count;

void test_register(const char *name, test_fn fn, const char *file) {
    if (n_tests < (int)(sizeof tests / sizeof tests[0]))
        tests[n_tests++] = (test_entry){name, file, fn};
}

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
    cur_failed++;
}

void test_skip(const char *reason) {
    cur_skipped = 1;
    snprintf(cur_skip_reason, sizeof cur_skip_reason, "%s", reason);
}

int test_failed_now(void) { return cur_failed; }

const char *test_root(void) {
    const char *r = getenv("ATTRIB_ROOT");
    return r && r[0] ? r : ".";
}

const char *test_path(const char *rel) {
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, 1024, "%s/%s", test_root(), rel);
    return b;
}

const char *test_tmpdir(void) {
    static char dir[512];
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/attrib-tests-XXXXXX");
        if (!mkdtemp(tmp_root)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    snprintf(dir, sizeof dir, "%s/t%d", tmp_root, tmp_count++);
    mkdir(dir, 0755);
    return dir;
}

int check_close(const char *what, const float *got, const float *ref, long n,
                double atol, double rtol, const char *file, int line) {
    long worst = -1, bad = 0;
    double worst_excess = 0, max_abs = 0, max_rel = 0, se = 0, sr = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double lim = atol + rtol * fabs((double)ref[i]);
        se += d * d;
        sr += (double)ref[i] * ref[i];
        if (d > max_abs) max_abs = d;
        if (fabs(ref[i]) > 0 && d / fabs(ref[i]) > max_rel) max_rel = d / fabs(ref[i]);
        if (!(d <= lim)) { /* NaN counts as bad */
            bad++;
            if (worst < 0 || d - lim > worst_excess || isnan(d)) {
                worst = i;
                worst_excess = d - lim;
            }
        }
    }
    if (bad) {
        test_fail_at(file, line,
                     "%s: %ld of %ld values out of tolerance (atol %g, rtol %g); max abs %.3g, "
                     "max rel %.3g, nmse %.3g; worst [%ld] got %.9g want %.9g",
                     what, bad, n, atol, rtol, max_abs, max_rel, sr > 0 ? se / sr : se, worst,
                     got[worst], ref[worst]);
        return 0;
    }
    return 1;
}

void test_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

unsigned char *test_read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

size_t test_read_text(const char *path, char *buf, size_t cap) {
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(buf, 1, cap - 1, fp) : 0;
    if (fp) fclose(fp);
    buf[n] = 0;
    return n;
}

int test_count_lines(const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    int n = 0, c;
    while ((c = fgetc(fp)) != EOF) n += c == '\n';
    fclose(fp);
    return n;
}

int run_cmd(const char *cmd, char *out, int cap) {
    char full[4096];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    int len = 0;
    if (out && cap > 0) out[0] = 0;
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out && len < cap - 1) {
            size_t take = k < (size_t)(cap - 1 - len) ? k : (size_t)(cap - 1 - len);
            memcpy(out + len, buf, take);
            len += (int)take;
            out[len] = 0;
        }
    }
    int st = pclose(p);
    if (st == -1) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return -1;
}

/* An argument selects the tests whose name contains it, or starts with the
 * rest of it when it begins with '^' (e.g. ^cuda_ for the CUDA tests only). */
static int matches(const char *name, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '^' ? !strncmp(name, a + 1, strlen(a + 1)) : strstr(name, a) != NULL) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* ATTRIB_TEST_LABEL prefixes every name (e.g. "emu:" for the tests run
     * under the CUDA execution layer, tests/cuemu), so a log says which run it is. */
    const char *label = getenv("ATTRIB_TEST_LABEL");
    if (!label) label = "";
    for (int i = 0; i < n_tests; i++) {
        if (!matches(tests[i].name, argc, argv)) continue;
        cur_failed = 0;
        cur_skipped = 0;
        tests[i].fn();
        if (cur_failed) {
            printf("FAIL %s%s (%s)\n", label, tests[i].name, tests[i].file);
            failed++;
        } else if (cur_skipped) {
            printf("SKIP %s%s: %s\n", label, tests[i].name, cur_skip_reason);
            skipped++;
        } else {
            printf("ok   %s%s\n", label, tests[i].name);
            passed++;
        }
    }
    if (tmp_root[0]) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
