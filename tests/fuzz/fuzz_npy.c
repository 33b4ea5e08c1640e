/* libFuzzer target: any file must read cleanly or fail with a message that
 * names it; an array that reads must survive write -> read unchanged. */
#include "core/error.h"
#include "io/npy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_input.h"

static char out_dir[64], out_path[96];

static void remove_out_dir(void) {
    unlink(out_path);
    rmdir(out_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!out_path[0]) {
        snprintf(out_dir, sizeof out_dir, "/tmp/fuzz-npy-XXXXXX");
        if (!mkdtemp(out_dir)) return 0;
        snprintf(out_path, sizeof out_path, "%s/a.npy", out_dir);
        atexit(remove_out_dir);
    }
    const char *path = fuzz_input_path(data, size);
    if (!path) return 0;
    float *a, *b;
    int nd, nd2;
    int64_t sh[AT_NPY_MAX_DIMS], sh2[AT_NPY_MAX_DIMS];
    if (at_npy_read_f32(path, &a, &nd, sh)) {
        if (strncmp(at_last_error(), path, strlen(path))) __builtin_trap();
        return 0;
    }
    size_t n = 1;
    for (int d = 0; d < nd; d++) n *= (size_t)sh[d];
    if (at_npy_write_f32(out_path, a, nd, sh) || at_npy_read_f32(out_path, &b, &nd2, sh2)) __builtin_trap();
    if (nd2 != nd || memcmp(sh, sh2, (size_t)nd * sizeof *sh) || memcmp(a, b, n * sizeof *a)) __builtin_trap();
    free(a);
    free(b);
    return 0;
}
