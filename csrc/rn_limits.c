/*
 * rn_limits.c: port sets, item counters and rate buckets (rn_limits.h).
 */
#include "rn.h"

#include <errno.h>
#include <string.h>
#include <time.h>

void
rn_portset_clear(rn_portset_t *set)
{
    memset(set->bits, 0, sizeof(set->bits));
}

int
rn_portset_add(rn_portset_t *set, long port)
{
    if (port < 1 || port > 65535)
        return -EINVAL;
    set->bits[port / 64] |= UINT64_C(1) << (port % 64);
    return 0;
}

int
rn_portset_set_bitmap(rn_portset_t *set, const uint8_t *bitmap, size_t len)
{
    if (len != RN_PORTSET_BITMAP_BYTES || (bitmap[0] & 1))
        return -EINVAL;
    /* Byte order independent: byte i holds ports 8i..8i+7, low bit first. */
    size_t words = sizeof(set->bits) / sizeof(set->bits[0]);
    for (size_t word = 0; word < words; word++) {
        uint64_t bits = 0;
        for (size_t byte = 0; byte < 8; byte++)
            bits |= (uint64_t)bitmap[word * 8 + byte] << (8 * byte);
        set->bits[word] = bits;
    }
    return 0;
}

bool
rn_portset_contains(const rn_portset_t *set, long port)
{
    if (port < 1 || port > 65535)
        return false;
    return (set->bits[port / 64] >> (port % 64)) & 1;
}

size_t
rn_portset_count(const rn_portset_t *set)
{
    size_t count = 0;
    for (size_t i = 0; i < sizeof(set->bits) / sizeof(set->bits[0]); i++)
        count += (size_t)__builtin_popcountll(set->bits[i]);
    return count;
}

size_t
rn_portset_list(const rn_portset_t *set, uint16_t *out, size_t max)
{
    size_t found = 0;
    for (long port = 1; port <= 65535; port++) {
        if (rn_portset_contains(set, port)) {
            if (found < max)
                out[found] = (uint16_t)port;
            found++;
        }
    }
    return found;
}

void
rn_counter_init(rn_counter_t *counter, long limit)
{
    pthread_mutex_init(&counter->lock, NULL);
    counter->limit = limit;
    counter->used = 0;
}

void
rn_counter_destroy(rn_counter_t *counter)
{
    pthread_mutex_destroy(&counter->lock);
}

void
rn_counter_set_limit(rn_counter_t *counter, long limit)
{
    pthread_mutex_lock(&counter->lock);
    counter->limit = limit;
    pthread_mutex_unlock(&counter->lock);
}

int
rn_counter_acquire(rn_counter_t *counter)
{
    int rc = 0;
    pthread_mutex_lock(&counter->lock);
    if (counter->used >= counter->limit)
        rc = -ENOSPC;
    else
        counter->used++;
    pthread_mutex_unlock(&counter->lock);
    return rc;
}

void
rn_counter_release(rn_counter_t *counter)
{
    pthread_mutex_lock(&counter->lock);
    if (counter->used > 0)
        counter->used--;
    pthread_mutex_unlock(&counter->lock);
}

long
rn_counter_used(rn_counter_t *counter)
{
    pthread_mutex_lock(&counter->lock);
    long used = counter->used;
    pthread_mutex_unlock(&counter->lock);
    return used;
}

/* Relaxed atomic access to the fields the hot path reads without lock. */
static inline double
load_double(const double *field)
{
    double value;
    __atomic_load(field, &value, __ATOMIC_RELAXED);
    return value;
}

static inline void
store_double(double *field, double value)
{
    __atomic_store(field, &value, __ATOMIC_RELAXED);
}

void
rn_rate_init(rn_rate_t *rate, double limit, double now)
{
    pthread_mutex_init(&rate->lock, NULL);
    store_double(&rate->limit, limit);
    store_double(&rate->consumed, 0.0);
    rate->updated_at = now;
    rate->waited = 0.0;
}

void
rn_rate_destroy(rn_rate_t *rate)
{
    pthread_mutex_destroy(&rate->lock);
}

void
rn_rate_reset(rn_rate_t *rate, double limit, double now)
{
    pthread_mutex_lock(&rate->lock);
    store_double(&rate->limit, limit);
    store_double(&rate->consumed, 0.0);
    rate->updated_at = now;
    pthread_mutex_unlock(&rate->lock);
}

double
rn_rate_charge(rn_rate_t *rate, double amount, double now)
{
    double wait = 0.0;

    pthread_mutex_lock(&rate->lock);
    double consumed = rate->consumed, limit = rate->limit;
    double elapsed = now - rate->updated_at;
    if (elapsed > 0.0) {
        consumed -= elapsed * limit;
        if (consumed < 0.0)
            consumed = 0.0;
        rate->updated_at = now;
    }
    consumed += amount;
    if (consumed > limit)
        wait = (consumed - limit) / limit;
    store_double(&rate->consumed, consumed);
    pthread_mutex_unlock(&rate->lock);
    return wait;
}

bool
rn_rate_within_limit(rn_rate_t *rate)
{
    return load_double(&rate->consumed) <= load_double(&rate->limit);
}

double
rn_rate_limit(rn_rate_t *rate)
{
    return load_double(&rate->limit);
}

void
rn_rate_add_waited(rn_rate_t *rate, double seconds)
{
    pthread_mutex_lock(&rate->lock);
    rate->waited += seconds;
    pthread_mutex_unlock(&rate->lock);
}

double
rn_rate_waited(rn_rate_t *rate)
{
    pthread_mutex_lock(&rate->lock);
    double waited = rate->waited;
    pthread_mutex_unlock(&rate->lock);
    return waited;
}

double
rn_rate_consumed(rn_rate_t *rate)
{
    return load_double(&rate->consumed);
}

double
rn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
