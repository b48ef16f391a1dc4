/*
 * ternbench allocate and hold modes, both on the session engine of
 * bench_turn.c.
 */
#include <stdio.h>

#include "test/bench/bench_turn.h"

int bench_allocate(const struct bench_opts *o)
{
    struct bturn t;
    unsigned n = o->n ? o->n : 64;
    if (bturn_init(&t, o, n, n) < 0) {
        perror("ternbench");
        return 1;
    }
    t.cycle = true;
    uint64_t start = bench_now_ns(), end = start + (uint64_t)(o->seconds * 1e9);
    while (!bench_stop && bench_now_ns() < end && !(o->count && t.handshakes >= o->count))
        bturn_poll(&t, 10);
    double secs = (double)(bench_now_ns() - start) / 1e9;
    uint64_t done = t.handshakes, failed = t.failed;
    /* Let handshakes in flight finish, so the server is left with nothing. */
    bench_stop = 1;
    uint64_t drain = bench_now_ns() + 3000000000u;
    while (t.n_active && bench_now_ns() < drain)
        bturn_poll(&t, 10);
    fprintf(stderr, "allocate: %llu handshakes in %.2f s, %.0f/s, %llu failed\n",
            (unsigned long long)done, secs, done / secs, (unsigned long long)failed);
    printf("result mode=allocate handshakes=%llu failed=%llu seconds=%.3f rate=%.0f\n",
           (unsigned long long)done, (unsigned long long)failed, secs, done / secs);
    bturn_free(&t);
    return done > 0 ? 0 : 1;
}

int bench_hold(const struct bench_opts *o)
{
    struct bturn t;
    unsigned n = o->n ? o->n : 1000;
    if (bturn_init(&t, o, n, 256) < 0) {
        perror("ternbench");
        return 1;
    }
    t.refresh = true;
    uint64_t t0 = bench_now_ns();
    bturn_setup(&t, t0 + 900000000000u);
    fprintf(stderr, "hold: %llu allocations up in %.1f s, %llu failed\n",
            (unsigned long long)t.ready, (double)(bench_now_ns() - t0) / 1e9,
            (unsigned long long)t.failed);
    printf("holding %llu\n", (unsigned long long)t.ready);
    fflush(stdout);
    uint64_t end = bench_now_ns() + (uint64_t)(o->seconds * 1e9);
    while (!bench_stop && bench_now_ns() < end)
        bturn_poll(&t, 100);
    uint64_t held = t.ready, failed = t.failed;
    bturn_delete_all(&t, bench_now_ns() + 60000000000u);
    fprintf(stderr, "hold: %llu refreshes, %llu deleted\n", (unsigned long long)t.refreshes,
            (unsigned long long)t.deleted);
    printf("result mode=hold allocations=%llu failed=%llu refreshes=%llu deleted=%llu\n",
           (unsigned long long)held, (unsigned long long)failed,
           (unsigned long long)t.refreshes, (unsigned long long)t.deleted);
    bturn_free(&t);
    return held == n && failed == 0 ? 0 : 1;
}
