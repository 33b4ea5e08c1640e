/* SHA-256 (FIPS 180-4), used to stamp results with the model file's digest. */
#ifndef ATTRIB_SHA256_H
#define ATTRIB_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t fill;
} at_sha256;

void at_sha256_init(at_sha256 *s);
void at_sha256_update(at_sha256 *s, const void *data, size_t n);
void at_sha256_hex(at_sha256 *s, char out[65]);
/* The SHA-256 of a file's bytes as 64 hex digits; AT_ERR naming the file. */
int at_sha256_file(const char *path, char hex[65]);

#endif
