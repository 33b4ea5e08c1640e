/* Fuzz inputs for readers that take a path (safetensors, npy): each input
 * goes into one memfd, opened again through /proc/self/fd. */
#ifndef ATTRIB_FUZZ_INPUT_H
#define ATTRIB_FUZZ_INPUT_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *fuzz_input_path(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd < 0) return NULL;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0)) return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t k = pwrite(fd, data + done, size - done, (off_t)done);
        if (k <= 0) return NULL;
        done += (size_t)k;
    }
    return path;
}

#endif
