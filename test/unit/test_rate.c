/*
 * test_rate.c - the limits on unauthenticated answers (server/turn/rate.c)
 * as functions: a source gets its allowance once, whichever worker its
 * packets reach and whoever shares its slot; a newcomer never gets a fresh
 * bucket; the node's budget in answers and bytes per second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "server/turn/rate.h"

static struct sockaddr_in v4(uint32_t ip)
{
    struct sockaddr_in s = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(ip) };
    return s;
}

static unsigned take_n(struct rate *r, const struct sockaddr_in *a, unsigned n, uint64_t now)
{
    unsigned got = 0;
    for (unsigned i = 0; i < n; i++)
        got += rate_take_source(r, (const struct sockaddr *)a, now);
    return got;
}

/* The victim interleaved with a source in its own slot: the two share one
 * bucket, so together they never get more than the burst (the old table
 * gave a full bucket to whichever source arrived, so both got everything). */
static void test_collision_shares_the_bucket(void **state)
{
    (void)state;
    struct rate_sources *src = rate_sources_new(50);
    struct rate *r = rate_new(src, 0, 0, 1);
    struct sockaddr_in victim = v4(0x7F000001), other;
    size_t slot = rate_slot(r, (struct sockaddr *)&victim);
    uint32_t ip = 0x7F000002;
    do
        other = v4(ip++);
    while (rate_slot(r, (struct sockaddr *)&other) != slot);
    unsigned got_v = 0, got_o = 0;
    for (int i = 0; i < 1000; i++) {
        got_v += take_n(r, &victim, 1, 1000);
        got_o += take_n(r, &other, 1, 1000);
    }
    /* a slot never used starts with one second's worth (50), not the burst */
    assert_int_equal(got_v + got_o, 50);
    /* and refills at the rate, up to the burst */
    assert_int_equal(take_n(r, &victim, 1000, 1000 + 1000), 50);
    assert_int_equal(take_n(r, &victim, 1000, 2000 + 10000), 100);
    rate_free(r);
    rate_sources_free(src);
}

/* Two workers (two struct rate on one table): one allowance for a source. */
static void test_workers_share_the_allowance(void **state)
{
    (void)state;
    struct rate_sources *src = rate_sources_new(20);
    struct rate *w0 = rate_new(src, 0, 0, 2), *w1 = rate_new(src, 0, 0, 2);
    struct sockaddr_in a = v4(0x0B000001);
    unsigned got = 0;
    for (int i = 0; i < 100; i++)
        got += take_n(i % 2 ? w1 : w0, &a, 1, 5000);
    assert_int_equal(got, 20);
    rate_free(w0);
    rate_free(w1);
    rate_sources_free(src);
}

static void test_off_means_no_limit(void **state)
{
    (void)state;
    struct rate_sources *src = rate_sources_new(0);
    struct rate *r = rate_new(src, 0, 0, 1);
    struct sockaddr_in a = v4(0x0B000001);
    assert_int_equal(take_n(r, &a, 10000, 1), 10000);
    for (int i = 0; i < 10000; i++)
        assert_true(rate_take_budget(r, 1500, 1));
    rate_free(r);
    rate_sources_free(src);
}

/* The node's budget, split between its workers: answers and bytes. */
static void test_budget_answers_and_bytes(void **state)
{
    (void)state;
    struct rate_sources *src = rate_sources_new(0);
    struct rate *r = rate_new(src, 200, 1000000, 2); /* this worker: 100/s, 500000 B/s */
    unsigned got = 0;
    for (int i = 0; i < 1000; i++)
        got += rate_take_budget(r, 100, 1000);
    assert_int_equal(got, 100);
    assert_false(rate_take_budget(r, 100, 1000));
    assert_true(rate_take_budget(r, 100, 1010)); /* 10 ms later: one more */
    rate_free(r);
    struct rate *b = rate_new(src, 0, 1000, 1);
    assert_true(rate_take_budget(b, 600, 1000));
    assert_false(rate_take_budget(b, 600, 1000)); /* 1200 bytes > 1000/s */
    rate_free(b);
    rate_sources_free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collision_shares_the_bucket),
        cmocka_unit_test(test_workers_share_the_allowance),
        cmocka_unit_test(test_off_means_no_limit),
        cmocka_unit_test(test_budget_answers_and_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
