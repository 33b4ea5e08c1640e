/* Per-thread scratch buffers (see thread_scratch.h). */
#include "cpu/thread_scratch.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    float *buf[AT_SCRATCH_SLOTS];
    size_t cap[AT_SCRATCH_SLOTS];
} scratch;

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int key_ok;

static void free_scratch(void *p) {
    scratch *s = p;
    for (int i = 0; i < AT_SCRATCH_SLOTS; i++) free(s->buf[i]);
    free(s);
}
static void make_key(void) { key_ok = pthread_key_create(&key, free_scratch) == 0; }

float *at_thread_scratch(int slot, size_t floats) {
    pthread_once(&once, make_key);
    if (!key_ok || slot < 0 || slot >= AT_SCRATCH_SLOTS) return NULL;
    scratch *s = pthread_getspecific(key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap[slot] < floats) {
        size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
        float *p = aligned_alloc(64, bytes);
        if (!p) return NULL;
        free(s->buf[slot]);
        s->buf[slot] = p;
        s->cap[slot] = bytes / sizeof(float);
    }
    return s->buf[slot];
}
