/* Monotonic seconds, for rates, ETAs and per-image timings. */
#ifndef ATTRIB_CORE_CLOCK_H
#define ATTRIB_CORE_CLOCK_H

double at_now_s(void);

#endif
