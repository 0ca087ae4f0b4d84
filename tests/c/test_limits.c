/* Unit tests of rn_limits.c: port sets, counters, rate buckets (spec 6.2). */
#include "rn.h"
#include "rn_test.h"

#include <errno.h>
#include <math.h>
#include <string.h>

RN_TEST(portset_add_contains_count_list)
{
    static rn_portset_t set;
    uint16_t ports[4];
    rn_portset_clear(&set);
    RN_CHECK_EQ(rn_portset_count(&set), 0);
    RN_CHECK_EQ(rn_portset_add(&set, 63100), 0);
    RN_CHECK_EQ(rn_portset_add(&set, 1), 0);
    RN_CHECK_EQ(rn_portset_add(&set, 65535), 0);
    RN_CHECK_EQ(rn_portset_add(&set, 63100), 0);
    RN_CHECK_EQ(rn_portset_add(&set, 0), -EINVAL);
    RN_CHECK_EQ(rn_portset_add(&set, 65536), -EINVAL);
    RN_CHECK_EQ(rn_portset_add(&set, -1), -EINVAL);
    RN_CHECK(rn_portset_contains(&set, 63100));
    RN_CHECK(!rn_portset_contains(&set, 63101));
    RN_CHECK(!rn_portset_contains(&set, 0));
    RN_CHECK(!rn_portset_contains(&set, 70000));
    RN_CHECK_EQ(rn_portset_count(&set), 3);
    RN_CHECK_EQ(rn_portset_list(&set, ports, 2), 3);
    RN_CHECK_EQ(ports[0], 1);
    RN_CHECK_EQ(ports[1], 63100);
}

RN_TEST(portset_set_bitmap_reads_one_bit_per_port)
{
    static rn_portset_t set;
    static uint8_t bitmap[RN_PORTSET_BITMAP_BYTES];
    memset(bitmap, 0, sizeof(bitmap));
    bitmap[1] = 0x81; /* ports 8 and 15 */
    bitmap[63100 / 8] |= 1 << (63100 % 8);
    bitmap[RN_PORTSET_BITMAP_BYTES - 1] = 0x80; /* port 65535 */
    rn_portset_add(&set, 7);                    /* replaced, not merged */
    RN_CHECK_EQ(rn_portset_set_bitmap(&set, bitmap, sizeof(bitmap)), 0);
    RN_CHECK_EQ(rn_portset_count(&set), 4);
    RN_CHECK(rn_portset_contains(&set, 8) && rn_portset_contains(&set, 15));
    RN_CHECK(rn_portset_contains(&set, 63100));
    RN_CHECK(rn_portset_contains(&set, 65535));
    RN_CHECK(!rn_portset_contains(&set, 7));
    RN_CHECK_EQ(rn_portset_set_bitmap(&set, bitmap, sizeof(bitmap) - 1),
                -EINVAL);
    bitmap[0] = 1; /* port 0 */
    RN_CHECK_EQ(rn_portset_set_bitmap(&set, bitmap, sizeof(bitmap)), -EINVAL);
    /* A refused bitmap changes nothing. */
    RN_CHECK_EQ(rn_portset_count(&set), 4);
}

RN_TEST(counter_refuses_at_the_limit)
{
    rn_counter_t counter;
    rn_counter_init(&counter, 2);
    RN_CHECK_EQ(rn_counter_acquire(&counter), 0);
    RN_CHECK_EQ(rn_counter_acquire(&counter), 0);
    RN_CHECK_EQ(rn_counter_acquire(&counter), -ENOSPC);
    RN_CHECK_EQ(rn_counter_used(&counter), 2);
    rn_counter_release(&counter);
    RN_CHECK_EQ(rn_counter_acquire(&counter), 0);
    rn_counter_release(&counter);
    rn_counter_release(&counter);
    rn_counter_release(&counter); /* never below zero */
    RN_CHECK_EQ(rn_counter_used(&counter), 0);
    rn_counter_set_limit(&counter, 0);
    RN_CHECK_EQ(rn_counter_acquire(&counter), -ENOSPC);
    rn_counter_destroy(&counter);
}

RN_TEST(rate_within_limit_never_waits)
{
    rn_rate_t rate;
    rn_rate_init(&rate, 1000.0, 10.0);
    RN_CHECK(rn_rate_charge(&rate, 500.0, 10.0) == 0.0);
    RN_CHECK(rn_rate_charge(&rate, 500.0, 10.0) == 0.0);
    RN_CHECK(rn_rate_consumed(&rate) == 1000.0);
    rn_rate_destroy(&rate);
}

RN_TEST(rate_over_limit_waits_for_the_excess)
{
    rn_rate_t rate;
    rn_rate_init(&rate, 1000.0, 10.0);
    /* 2500 in a 1000/s bucket: 1500 over, 1.5 s to drain it. */
    double wait = rn_rate_charge(&rate, 2500.0, 10.0);
    RN_CHECK(fabs(wait - 1.5) < 1e-9);
    /* Half a second later 500 drained: 1.0 s still to wait. */
    wait = rn_rate_charge(&rate, 0.0, 10.5);
    RN_CHECK(fabs(wait - 1.0) < 1e-9);
    /* After the full wait the bucket is back at the limit. */
    wait = rn_rate_charge(&rate, 0.0, 11.5);
    RN_CHECK(wait == 0.0);
    RN_CHECK(fabs(rn_rate_consumed(&rate) - 1000.0) < 1e-9);
    rn_rate_destroy(&rate);
}

RN_TEST(rate_drain_never_goes_below_zero)
{
    rn_rate_t rate;
    rn_rate_init(&rate, 100.0, 0.0);
    rn_rate_charge(&rate, 50.0, 0.0);
    rn_rate_charge(&rate, 0.0, 100.0);
    RN_CHECK(rn_rate_consumed(&rate) == 0.0);
    /* Time going backwards (another thread's older timestamp) drains nothing.
     */
    rn_rate_charge(&rate, 10.0, 50.0);
    RN_CHECK(rn_rate_consumed(&rate) == 10.0);
    rn_rate_reset(&rate, 5.0, 200.0);
    RN_CHECK(rn_rate_consumed(&rate) == 0.0);
    RN_CHECK(fabs(rn_rate_charge(&rate, 10.0, 200.0) - 1.0) < 1e-9);
    rn_rate_destroy(&rate);
}

RN_TEST(infinite_rate_never_waits)
{
    rn_rate_t rate;
    rn_rate_init(&rate, INFINITY, 0.0);
    RN_CHECK(rn_rate_charge(&rate, 1e300, 0.0) == 0.0);
    RN_CHECK(rn_rate_charge(&rate, 0.0, 1.0) == 0.0);
    rn_rate_destroy(&rate);
}

RN_TEST(now_is_monotonic)
{
    double a = rn_now(), b = rn_now();
    RN_CHECK(b >= a);
    RN_CHECK(a > 0.0);
}
