/*
 * rn_limits.h: the arithmetic of Repy's resource restrictions.
 *
 * Port sets (connport/messport), item counters (insockets, outsockets,
 * events) and the leaky-bucket rate state (netsend, netrecv, loopsend,
 * looprecv).  The policy of which call charges what lives in the glue;
 * these functions only keep the numbers straight and are thread-safe.
 */
#ifndef RN_LIMITS_H
#define RN_LIMITS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- allowed ports ------------------------------------------------------- */

typedef struct rn_portset {
    uint64_t bits[65536 / 64];
} rn_portset_t;

void rn_portset_clear(rn_portset_t *set);
/* 0, or -EINVAL for a port outside 1..65535. */
int rn_portset_add(rn_portset_t *set, long port);
/*
 * Sets the whole set from a bitmap of RN_PORTSET_BITMAP_BYTES bytes in
 * which bit (port % 8) of byte (port / 8) stands for a port: 0, or -EINVAL
 * for another length or a set bit for port 0.
 */
#define RN_PORTSET_BITMAP_BYTES (65536 / 8)
int rn_portset_set_bitmap(rn_portset_t *set, const uint8_t *bitmap,
                          size_t len);
bool rn_portset_contains(const rn_portset_t *set, long port);
size_t rn_portset_count(const rn_portset_t *set);
/* Writes up to max ports in ascending order; returns how many exist. */
size_t rn_portset_list(const rn_portset_t *set, uint16_t *out, size_t max);

/* --- item counters ------------------------------------------------------- */

typedef struct rn_counter {
    pthread_mutex_t lock;
    long limit;
    long used;
} rn_counter_t;

void rn_counter_init(rn_counter_t *counter, long limit);
void rn_counter_destroy(rn_counter_t *counter);
void rn_counter_set_limit(rn_counter_t *counter, long limit);
/* Takes one item: 0, or -ENOSPC when used already equals the limit. */
int rn_counter_acquire(rn_counter_t *counter);
/* Gives one item back; never goes below 0. */
void rn_counter_release(rn_counter_t *counter);
long rn_counter_used(rn_counter_t *counter);

/* --- rates --------------------------------------------------------------- */

/*
 * limit and consumed are written under lock with atomic stores, so the
 * per-call checks (rn_rate_limit, rn_rate_within_limit) read them with
 * no lock at all.
 */
typedef struct rn_rate {
    pthread_mutex_t lock;
    double limit;      /* units per second, > 0 */
    double consumed;   /* the bucket's content as last updated */
    double updated_at; /* rn_now() of the last update */
    double waited;     /* seconds callers have slept for this rate */
} rn_rate_t;

void rn_rate_init(rn_rate_t *rate, double limit, double now);
void rn_rate_destroy(rn_rate_t *rate);
/* Sets a new limit and empties the bucket. */
void rn_rate_reset(rn_rate_t *rate, double limit, double now);

/*
 * Drains the bucket by (now - updated_at) * limit (never below 0), adds
 * amount and returns the seconds the caller must wait before the bucket is
 * back within one second's worth of the limit (0.0 when it already is).
 * The caller sleeps without holding any lock and calls again with amount 0
 * until 0.0 comes back: that is Repy's "block, never raise" rule.
 */
double rn_rate_charge(rn_rate_t *rate, double amount, double now);
/* Whether a zero charge would not wait: the bucket is within its limit
 * as last updated (draining only lowers it, so no clock is needed).
 * Lock-free. */
bool rn_rate_within_limit(rn_rate_t *rate);
/* The limit in force (units per second; 0 forbids).  Lock-free. */
double rn_rate_limit(rn_rate_t *rate);
/* Adds seconds a caller slept for this rate; rn_rate_waited sums them
 * since the rate was initialised (a reset keeps the sum). */
void rn_rate_add_waited(rn_rate_t *rate, double seconds);
double rn_rate_waited(rn_rate_t *rate);
/* The consumed amount as last updated (not decayed up to now). */
double rn_rate_consumed(rn_rate_t *rate);

/* Monotonic seconds. */
double rn_now(void);

#endif /* RN_LIMITS_H */
