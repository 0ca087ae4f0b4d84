/*
 * test_port_add.c: arming a callback on a completion port
 * (completion_port_add; csrc/rn_port.c).
 *
 * Requirements and conventions as in test_port_create.c: the ids of
 * docs/srs/completion_port_linux.md, a real port, faults through the rn_sys
 * seams, hang guards only.
 */
#include "rn_test.h"
#include "rn_test_port.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <unistd.h>

/* Tests_SRS_COMPLETION_PORT_LINUX_11_016 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_017 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_018 */
RN_TEST(add_rejects_null_port_bad_fd_null_callback)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    RN_CHECK(rn_port_add(NULL, EPOLLIN, p[0], rec_cb, &r) != 0);
    RN_CHECK(rn_port_add(port, EPOLLIN, -1, rec_cb, &r) != 0);
    RN_CHECK(rn_port_add(port, EPOLLIN, p[0], NULL, &r) != 0);
    RN_CHECK(rn_port_add(port, 0, p[0], rec_cb, &r) != 0);
    release_port_and_pair(port, p);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_020 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_025 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_026 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_035 */
RN_TEST(add_succeeds_and_callback_runs_on_worker_with_in)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(open_port_with_armed_pipe(&port, p, &r), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLIN);
    RN_CHECK(!pthread_equal(r.thread, pthread_self()));
    /* 11_025: no call is left pending, so the last dec_ref returns. */
    rn_port_remove(port, p[0]);
    release_port_and_pair(port, p);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_021 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_027 */
RN_TEST(add_fails_cleanly_when_record_allocation_fails)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    use_counting_allocator();
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    atomic_store(&g_fail_calloc, 1);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), -ENOMEM);
    /* Nothing armed: a later add works and fires once. */
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    rn_port_remove(port, p[0]);
    release_port_and_pair(port, p);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_022 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_023 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_024 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_002 */
RN_TEST(add_does_mod_then_add_on_enoent_always_oneshot)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    use_call_log();
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(atomic_load(&g_nlog), 2);
    RN_CHECK_EQ(g_log[0].call, EPOLL_CTL_MOD);
    RN_CHECK_EQ(g_log[1].call, EPOLL_CTL_ADD);
    RN_CHECK_EQ(g_log[1].fd, p[0]);
    RN_CHECK(g_log[1].events & EPOLLIN);
    RN_CHECK(g_log[1].events & EPOLLONESHOT);
    /* Once known, the next add is a single MOD, ONESHOT again. */
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    atomic_store(&g_nlog, 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    WAIT_FOR(atomic_load(&r.calls) == 2);
    RN_CHECK(atomic_load(&g_nlog) >= 1);
    RN_CHECK_EQ(g_log[0].call, EPOLL_CTL_MOD);
    RN_CHECK(g_log[0].events & EPOLLONESHOT);
    rn_port_remove(port, p[0]);
    release_port_and_pair(port, p);
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_027 */
RN_TEST(add_fails_when_epoll_ctl_fails_and_arms_nothing)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    use_call_log();
    atomic_store(&g_ctl_fail_errno, EPERM);
    atomic_store(&g_ctl_fail_op, EPOLL_CTL_ADD);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), -EPERM);
    atomic_store(&g_ctl_fail_op, -1);
    /* The slot is free again (not -EBUSY). */
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    rn_port_remove(port, p[0]);
    RN_CHECK_EQ(atomic_load(&r.abandoned), 1);
    release_port_and_pair(port, p);
    rn_sys_reset();
}
