/*
 * test_port_create.c: creating a completion port and counting its
 * references (completion_port_create, inc_ref, dec_ref; csrc/rn_port.c).
 *
 * Requirements: docs/srs/completion_port_linux.md.  Each test is tagged with
 * the ids it checks (Tests_SRS_...) and, for a bug of the reference
 * implementation that must not come back, the P-number of
 * async-socket-notes section 5.  The port is real (real epoll, real worker
 * thread); faults are injected through the rn_sys seams
 * (rn_test_support.h).  Waiting for the worker uses a hang guard
 * (HANG_GUARD_MS), never an assertion about how fast something happened.
 */
#include "rn_test.h"
#include "rn_test_port.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Tests_SRS_COMPLETION_PORT_LINUX_11_001 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_002 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_003 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_004 */
RN_TEST(create_returns_port_with_epoll_and_worker)
{
    int threads = thread_count();
    rn_port_t *port = NULL;
    rn_sys.epoll_create1 = logged_epoll_create1;
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK(port != NULL);
    RN_CHECK(atomic_load(&g_create_flags) >= 0);
    RN_CHECK_EQ(thread_count(), threads + 1);
    rn_port_dec_ref(port);
    RN_CHECK_EQ(thread_count(), threads);
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_001 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_005 */
RN_TEST(create_fails_when_allocation_fails)
{
    rn_port_t *port = NULL;
    use_counting_allocator();
    atomic_store(&g_fail_calloc, 1);
    RN_CHECK_EQ(rn_port_create(&port), -ENOMEM);
    RN_CHECK(port == NULL);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_002 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_005 */
RN_TEST(create_fails_when_epoll_create_fails)
{
    rn_port_t *port = NULL;
    use_counting_allocator();
    rn_sys.epoll_create1 = emfile_epoll_create1;
    RN_CHECK_EQ(rn_port_create(&port), -EMFILE);
    RN_CHECK(port == NULL);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_003 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_005 */
RN_TEST(create_fails_and_closes_fds_when_thread_fails)
{
    rn_port_t *port = NULL;
    int probe = lowest_free_fd();
    use_counting_allocator();
    rn_sys.pthread_create = eagain_pthread_create;
    RN_CHECK_EQ(rn_port_create(&port), -EAGAIN);
    RN_CHECK(port == NULL);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    /* The epoll fd and the eventfd were closed: the lowest free fd is the
     * same as before. */
    RN_CHECK_EQ(lowest_free_fd(), probe);
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_99_001 */
RN_TEST(create_uses_cloexec_epoll_and_eventfd)
{
    rn_port_t *port = NULL;
    int fds[2];
    rn_sys.epoll_create1 = logged_epoll_create1;
    rn_sys.eventfd = logged_eventfd;
    RN_CHECK_EQ(rn_port_get(&port), 0);
    RN_CHECK(atomic_load(&g_create_flags) & EPOLL_CLOEXEC);
    RN_CHECK(atomic_load(&g_eventfd_flags) & EFD_CLOEXEC);
    RN_CHECK_EQ(rn_port_global_fds(fds), 2);
    RN_CHECK(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    RN_CHECK(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
    rn_port_dec_ref(port);
    rn_port_global_release();
    RN_CHECK_EQ(rn_port_global_fds(fds), 0);
    rn_sys_reset();
}

/* --- refcount ------------------------------------------------------------ */

/* Tests_SRS_COMPLETION_PORT_LINUX_11_006 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_008 */
RN_TEST(inc_ref_and_dec_ref_ignore_null)
{
    rn_port_inc_ref(NULL);
    rn_port_dec_ref(NULL);
    RN_CHECK(1);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_007 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_009 */
RN_TEST(port_lives_until_last_reference)
{
    rn_port_t *port = NULL;
    int threads = thread_count();
    int p[2];
    struct rec r = {0};
    RN_CHECK_EQ(rn_port_create(&port), 0);
    rn_port_inc_ref(port);
    rn_port_dec_ref(port);
    /* Still alive and working after one of two references went. */
    RN_CHECK_EQ(thread_count(), threads + 1);
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    rn_port_remove(port, p[0]);
    rn_port_dec_ref(port);
    RN_CHECK_EQ(thread_count(), threads);
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_010 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_012 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_013 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_014 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_015 */
RN_TEST(last_dec_ref_stops_joins_closes_and_frees)
{
    rn_port_t *port = NULL;
    int fds[2];
    int threads = thread_count();
    use_counting_allocator();
    RN_CHECK_EQ(rn_port_get(&port), 0);
    RN_CHECK_EQ(rn_port_global_fds(fds), 2);
    rn_port_global_release();
    RN_CHECK(fd_is_open(fds[0]));
    rn_port_dec_ref(port);
    RN_CHECK(!fd_is_open(fds[0]));
    RN_CHECK(!fd_is_open(fds[1]));
    RN_CHECK_EQ(thread_count(), threads);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
}

static void
dec_ref_call(void *port)
{
    rn_port_dec_ref(port);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_011 */
RN_TEST(last_dec_ref_waits_for_pending_calls)
{
    rn_port_t *port = NULL;
    int p[2];
    struct background remover, releaser;
    gated_cb_arm();
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], gated_cb, NULL), 0);
    struct remove_args ra = {port, p[0]};
    RN_CHECK_EQ(background_start(&remover, remove_call, &ra), 0);
    WAIT_FOR(gate_entered()); /* remove is inside the ABANDONED cb */
    RN_CHECK_EQ(background_start(&releaser, dec_ref_call, port), 0);
    sleep_ms(50);
    RN_CHECK(!background_done(&releaser)); /* still waiting for the remove */
    gate_open();
    background_join(&remover);
    background_join(&releaser);
    RN_CHECK(atomic_load(&g_gate_cb_done));
    RN_CHECK(background_done(&releaser));
    close(p[0]);
    close(p[1]);
}

/** P14: the last dec_ref wakes the worker through the eventfd instead of
 * waiting for epoll_wait's timeout. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_001 */
RN_TEST(p14_stop_wakes_worker_through_eventfd)
{
    rn_port_t *port = NULL;
    use_wait_log();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    WAIT_FOR(atomic_load(&g_wait_calls) >= 1);
    rn_port_dec_ref(port);
    /* The worker's last wait returned the wake-up event, not a timeout. */
    RN_CHECK_EQ(atomic_load(&g_last_wait_result), 1);
    RN_CHECK_EQ(atomic_load(&g_last_wait_was_wake), 1);
    rn_sys_reset();
}
