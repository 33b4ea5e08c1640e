/* SplitMix64 (Steele et al. 2014), the one generator behind the shared PRNG
 * (tools/prng.py) and the bootstrap's resampling. */
#ifndef ATTRIB_SPLITMIX_H
#define ATTRIB_SPLITMIX_H

#include <stdint.h>

static inline uint64_t at_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
