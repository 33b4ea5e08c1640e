/* Coverage by construction for the CUDA execution layer (tests/cuemu): the
 * emulated runs record every kernel they launch (CUEMU_COVERAGE), and this
 * test, run after them by tests/run_all.sh, fails naming any __global__
 * kernel of kernels/ that none of them launched. */
#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* Kernels that exist only to be queried, never launched. */
static const char *const NOT_LAUNCHED[] = {
    "arch_probe_kernel", /* read through cudaFuncGetAttributes: which sm_XY the build has */
};

#define MAX_KERNELS 256

/* Appends the __global__ function names of one source file (comments skipped). */
static int kernel_names(const char *path, char names[][96], int n) {
    size_t len = 0;
    unsigned char *text = test_read_bytes(path, &len);
    if (!text) return n;
    char *s = realloc(text, len + 1);
    s[len] = 0;
    for (char *p = s; (p = strstr(p, "__global__")) != NULL; p += 10) {
        const char *line = p;
        while (line > s && line[-1] != '\n') line--;
        const char *c = strstr(line, "//");
        if (c && c < p) continue; /* in a comment */
        /* the identifier right before the parameter list, skipping __launch_bounds__(...) */
        const char *q = p + 10, *name = NULL;
        size_t name_len = 0;
        while (*q && *q != ';' && *q != '{') {
            if (isalpha((unsigned char)*q) || *q == '_') {
                const char *id = q;
                while (isalnum((unsigned char)*q) || *q == '_') q++;
                if ((size_t)(q - id) == 17 && !strncmp(id, "__launch_bounds__", 17)) {
                    while (*q && *q != ')') q++;
                    continue;
                }
                name = id, name_len = (size_t)(q - id);
                continue;
            }
            if (*q == '(') break;
            q++;
        }
        if (name && n < MAX_KERNELS && name_len < 96) {
            memcpy(names[n], name, name_len);
            names[n][name_len] = 0;
            n++;
        }
    }
    free(s);
    return n;
}

static int launched(const char *name, const char *files) {
    char list[2048];
    snprintf(list, sizeof list, "%s", files);
    for (char *f = strtok(list, ":"); f; f = strtok(NULL, ":")) {
        FILE *fp = fopen(f, "r");
        if (!fp) continue;
        char line[256];
        while (fgets(line, sizeof line, fp)) {
            line[strcspn(line, "\n")] = 0;
            if (!strcmp(line, name)) {
                fclose(fp);
                return 1;
            }
        }
        fclose(fp);
    }
    return 0;
}

TEST(emu_every_global_kernel_is_launched) {
    const char *files = getenv("CUEMU_COVERAGE_FILES");
    if (!files || !*files) SKIP("runs after the emulated CUDA tests, which record the kernels they launch (tests/run_all.sh)");
    static char names[MAX_KERNELS][96];
    int n = 0;
    DIR *d = opendir(test_path("kernels"));
    REQUIRE(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 3 && !strcmp(e->d_name + l - 3, ".cu")) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", test_path("kernels"), e->d_name);
            n = kernel_names(path, names, n);
        }
    }
    closedir(d);
    CHECKF(n >= 10, "found only %d __global__ kernels in kernels/", n);
    int missing = 0;
    for (int i = 0; i < n; i++) {
        int exempt = 0;
        for (size_t j = 0; j < sizeof NOT_LAUNCHED / sizeof NOT_LAUNCHED[0]; j++) exempt |= !strcmp(names[i], NOT_LAUNCHED[j]);
        if (exempt) continue;
        if (!launched(names[i], files)) {
            test_fail_at(__FILE__, __LINE__, "kernel %s is never launched by an emulated test", names[i]);
            missing++;
        }
    }
    CHECKF(missing == 0, "%d of %d kernels not covered", missing, n);
}
