/*
 * clock.h - the server's one monotonic clock in milliseconds, for expiries,
 * caches and rate limits (never the wall clock: it may be stepped).
 */
#ifndef TERN_SERVER_CLOCK_H
#define TERN_SERVER_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
