/*
 * rn_test.h: a minimal unit-test harness for the pure-C core.
 *
 * RN_TEST(name) { ... } defines a test and registers it before main runs.
 * The RN_CHECK macros record the first failure with its line and return
 * from the test.  tests/conftest.py builds each tests/c/test_*.c with
 * every tests/c/rn_test_*.c (the runner rn_test_main.c and the shared test
 * support) and every csrc/rn_*.c, lists the tests with --list and runs each
 * one as its own pytest item (`binary NAME`, pass on exit 0).
 */
#ifndef RN_TEST_H
#define RN_TEST_H

#include <stdio.h>
#include <string.h>

typedef void (*rn_test_fn)(void);

void rn_test_register(const char *name, rn_test_fn fn);
void rn_test_fail(const char *file, int line, const char *message);
void rn_test_skip(const char *reason);
int rn_test_failed(void);

/* The exit status of a skipped test (automake's convention). */
#define RN_TEST_SKIPPED 77

/* Ends the test as skipped, for a reason the runner reports. */
#define RN_SKIP(reason)                                                       \
    do {                                                                      \
        rn_test_skip(reason);                                                 \
        return;                                                               \
    } while (0)

/*
 * Skips a test that forks a process with threads under AddressSanitizer:
 * GCC 12's sanitizer allocator is not fork-safe, and the child can hang on
 * a mutex another thread held (google/sanitizers#836).
 */
#if defined(__SANITIZE_ADDRESS__)
#define RN_SKIP_FORK_UNDER_SANITIZERS()                                       \
    RN_SKIP("the sanitizer allocator deadlocks after fork in threaded "       \
            "processes (google/sanitizers#836)")
#else
#define RN_SKIP_FORK_UNDER_SANITIZERS() ((void)0)
#endif

#define RN_TEST(name)                                                         \
    static void name(void);                                                   \
    __attribute__((constructor)) static void name##_register(void)            \
    {                                                                         \
        rn_test_register(#name, name);                                        \
    }                                                                         \
    static void name(void)

#define RN_CHECK(cond)                                                        \
    do {                                                                      \
        if (!(cond)) {                                                        \
            rn_test_fail(__FILE__, __LINE__, "check failed: " #cond);         \
            return;                                                           \
        }                                                                     \
    } while (0)

#define RN_CHECK_EQ(a, b)                                                     \
    do {                                                                      \
        long long rn_a_ = (long long)(a), rn_b_ = (long long)(b);             \
        if (rn_a_ != rn_b_) {                                                 \
            char rn_msg_[512];                                                \
            snprintf(rn_msg_, sizeof(rn_msg_), "%s == %s: %lld != %lld", #a,  \
                     #b, rn_a_, rn_b_);                                       \
            rn_test_fail(__FILE__, __LINE__, rn_msg_);                        \
            return;                                                           \
        }                                                                     \
    } while (0)

#define RN_CHECK_MEM(a, b, n)                                                 \
    do {                                                                      \
        if (memcmp((a), (b), (n)) != 0) {                                     \
            rn_test_fail(__FILE__, __LINE__,                                  \
                         "memory differs: " #a " vs " #b);                    \
            return;                                                           \
        }                                                                     \
    } while (0)

#define RN_CHECK_STR(a, b)                                                    \
    do {                                                                      \
        const char *rn_sa_ = (a), *rn_sb_ = (b);                              \
        if (strcmp(rn_sa_, rn_sb_) != 0) {                                    \
            char rn_msg_[512];                                                \
            snprintf(rn_msg_, sizeof(rn_msg_), "%s == %s: \"%s\" != \"%s\"",  \
                     #a, #b, rn_sa_, rn_sb_);                                 \
            rn_test_fail(__FILE__, __LINE__, rn_msg_);                        \
            return;                                                           \
        }                                                                     \
    } while (0)

#endif /* RN_TEST_H */
