/*
 * rn_test_threads.h: helpers for C tests that wait on other threads.
 *
 * WAIT_FOR polls a predicate every millisecond; HANG_GUARD_MS only stops a
 * test that would otherwise hang, it is not a time bound on the code.  A
 * background call runs one function on a thread of its own, so that a test
 * can see whether a call that should wait has returned.
 */
#ifndef RN_TEST_THREADS_H
#define RN_TEST_THREADS_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "rn_test.h"

#define HANG_GUARD_MS 60000

static inline void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls pred until it holds or the hang guard expires. */
#define WAIT_FOR(pred)                                                        \
    do {                                                                      \
        int rn_waited_ = 0;                                                   \
        while (!(pred) && rn_waited_ < HANG_GUARD_MS) {                       \
            sleep_ms(1);                                                      \
            rn_waited_++;                                                     \
        }                                                                     \
        RN_CHECK(pred);                                                       \
    } while (0)

/* The number of threads of this process, or -1. */
static inline int
thread_count(void)
{
    DIR *dir = opendir("/proc/self/task");
    int n = 0;
    struct dirent *de;
    if (dir == NULL)
        return -1;
    while ((de = readdir(dir)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(dir);
    return n;
}

/* fn(arg) running on its own thread; done turns 1 once fn has returned. */
struct background {
    pthread_t thread;
    void (*fn)(void *arg);
    void *arg;
    atomic_int done;
};

static inline void *
background_main(void *arg)
{
    struct background *call = arg;
    call->fn(call->arg);
    atomic_store(&call->done, 1);
    return NULL;
}

/* Starts fn(arg) on a new thread; 0 or the error of pthread_create. */
static inline int
background_start(struct background *call, void (*fn)(void *), void *arg)
{
    call->fn = fn;
    call->arg = arg;
    atomic_init(&call->done, 0);
    return pthread_create(&call->thread, NULL, background_main, call);
}

static inline int
background_done(struct background *call)
{
    return atomic_load(&call->done);
}

static inline void
background_join(struct background *call)
{
    pthread_join(call->thread, NULL);
}

#endif /* RN_TEST_THREADS_H */
