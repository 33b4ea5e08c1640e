/* libFuzzer target: any file must open cleanly or fail with a message that
 * names it; an opened file must expose only tensors inside the mapping, and
 * every tensor must be findable and (for float dtypes) convertible. */
#include "core/error.h"
#include "io/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_path(data, size);
    if (!path) return 0;
    at_safetensors st;
    if (at_st_open(&st, path)) {
        if (strncmp(at_last_error(), path, strlen(path))) __builtin_trap();
        return 0;
    }
    const unsigned char *lo = st.map, *hi = lo + st.map_size;
    for (int i = 0; i < st.n_tensors; i++) {
        const at_st_tensor *t = &st.tensors[i];
        const unsigned char *p = t->data;
        if (p < lo || t->nbytes > (size_t)(hi - p)) __builtin_trap();
        if (at_st_find(&st, t->name) != t) __builtin_trap();
        size_t n = at_st_numel(t);
        float *out = malloc(n ? n * sizeof *out : 1);
        int rc = at_st_to_f32(&st, t, out);
        if ((rc == 0) != (t->dtype != AT_DT_OTHER)) __builtin_trap();
        free(out);
    }
    for (int i = 0; i < st.n_meta; i++)
        if (at_st_meta(&st, st.meta_keys[i]) != st.meta_values[i]) __builtin_trap();
    at_st_close(&st);
    return 0;
}
