/*
 * clock.h - the server's clocks. clock_mono_ms is the one monotonic clock in
 * milliseconds for expiries, caches and rate limits (never the wall clock:
 * it may be stepped). struct clock_scaled is a worker's TURN clock in whole
 * seconds that runs limits.time_scale times faster in tests, and that a
 * packet batch can hold at one reading.
 */
#ifndef TERN_SERVER_CORE_CLOCK_H
#define TERN_SERVER_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A worker's TURN clock; owned by the worker, used on its thread only. */
struct clock_scaled {
    uint64_t base_ms; /* epoch: clock_scaled_init */
    unsigned scale;   /* limits.time_scale, >= 1 */
    uint32_t held;    /* a batch's reading (clock_scaled_hold), else 0 */
};

static inline void clock_scaled_init(struct clock_scaled *c, unsigned scale)
{
    c->base_ms = clock_mono_ms();
    c->scale = scale ? scale : 1;
    c->held = 0;
}

/* Scaled seconds since init; never 0, so 0 can mean "never" in expiries. */
static inline uint32_t clock_scaled_now(const struct clock_scaled *c)
{
    if (c->held)
        return c->held;
    return (uint32_t)((clock_mono_ms() - c->base_ms) * c->scale / 1000u) + 1;
}

/* Read the clock once for a batch of packets: until clock_scaled_release,
 * clock_scaled_now returns that reading (expiries have one-second
 * resolution, so a batch needs no fresher one). */
static inline void clock_scaled_hold(struct clock_scaled *c)
{
    c->held = 0;
    c->held = clock_scaled_now(c);
}

static inline void clock_scaled_release(struct clock_scaled *c)
{
    c->held = 0;
}

#endif
