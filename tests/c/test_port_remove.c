/*
 * test_port_remove.c: removing an fd from a completion port
 * (completion_port_remove; csrc/rn_port.c), also from the fd's own
 * callback on the worker and with the fd number reused afterwards.
 *
 * Requirements and conventions as in test_port_create.c: the ids of
 * docs/srs/completion_port_linux.md, P-numbers of the reference
 * implementation's bugs, a real port, faults through the rn_sys seams, hang
 * guards only.
 */
#include "rn_test.h"
#include "rn_test_port.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <sys/socket.h>
#include <unistd.h>

/* Tests_SRS_COMPLETION_PORT_LINUX_11_028 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_029 */
RN_TEST(remove_ignores_null_port_and_bad_fd)
{
    rn_port_t *port = NULL;
    RN_CHECK_EQ(rn_port_create(&port), 0);
    rn_port_remove(NULL, 3);
    rn_port_remove(port, -1);
    rn_port_remove(port, 1000); /* never added: nothing happens */
    rn_port_dec_ref(port);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_030 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_037 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_038 */
RN_TEST(remove_deletes_and_abandons_on_calling_thread)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(open_port_with_armed_pipe(&port, p, &r), 0);
    use_call_log();
    rn_port_remove(port, p[0]);
    RN_CHECK_EQ(atomic_load(&g_nlog), 1);
    RN_CHECK_EQ(g_log[0].call, EPOLL_CTL_DEL);
    RN_CHECK_EQ(g_log[0].fd, p[0]);
    RN_CHECK_EQ(atomic_load(&r.calls), 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_ABANDONED);
    RN_CHECK(pthread_equal(r.thread, pthread_self()));
    /* Removed for good: data arriving later calls nothing. */
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    sleep_ms(20);
    RN_CHECK_EQ(atomic_load(&r.calls), 1);
    release_port_and_pair(port, p);
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_039 */
RN_TEST(remove_waits_for_callback_running_on_worker)
{
    rn_port_t *port = NULL;
    int p[2];
    struct background remover;
    gated_cb_arm();
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], gated_cb, NULL), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(gate_entered()); /* the worker runs the callback */
    struct remove_args ra = {port, p[0]};
    RN_CHECK_EQ(background_start(&remover, remove_call, &ra), 0);
    sleep_ms(50);
    RN_CHECK(!background_done(&remover));
    gate_open();
    background_join(&remover);
    RN_CHECK(atomic_load(&g_gate_cb_done));
    release_port_and_pair(port, p);
}

/** P12, P13: remove frees what it abandons and calls the callbacks in the
 * order they were armed (FIFO), not LIFO. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_005 */
RN_TEST(p13_remove_abandons_fifo_and_frees)
{
    rn_port_t *port = NULL;
    struct rec rd = {0}, wr = {0};
    int sv[2];
    RN_CHECK_EQ(unix_pair_first_end_full(sv), 0);
    use_counting_allocator();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    atomic_store(&g_order_next, 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLOUT, sv[0], rec_cb, &wr), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &rd), 0);
    rn_port_remove(port, sv[0]);
    RN_CHECK_EQ(atomic_load(&wr.action), RN_PORT_ABANDONED);
    RN_CHECK_EQ(atomic_load(&rd.action), RN_PORT_ABANDONED);
    RN_CHECK_EQ(atomic_load(&wr.order), 0); /* armed first, told first */
    RN_CHECK_EQ(atomic_load(&rd.order), 1);
    /* Churn: the table does not grow records (P12). */
    for (int i = 0; i < 200; i++) {
        RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &rd), 0);
        rn_port_remove(port, sv[0]);
    }
    release_port_and_pair(port, sv);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
}

/* ABANDONED callback that re-enters the port on another fd. */
struct reenter {
    rn_port_t *port;
    int other_fd;
    int rc;
    struct rec r;
};

static void
reenter_cb(void *ctx, rn_port_action_t action)
{
    struct reenter *re = ctx;
    re->rc = rn_port_add(re->port, EPOLLIN, re->other_fd, rec_cb, &re->r);
}

/** P1b: ABANDONED callbacks run without the port's lock, so one may call
 * back into the port (here: add on another fd) without self-deadlock. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_005 */
RN_TEST(p1b_abandoned_callback_may_reenter_port)
{
    rn_port_t *port = NULL;
    int a[2], b[2];
    RN_CHECK_EQ(make_pipe(a), 0);
    RN_CHECK_EQ(make_pipe(b), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    struct reenter re = {port, b[0], -1, {0}};
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, a[0], reenter_cb, &re), 0);
    rn_port_remove(port, a[0]);
    RN_CHECK_EQ(re.rc, 0);
    RN_CHECK_EQ(write(b[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&re.r.calls) == 1);
    rn_port_remove(port, b[0]);
    release_port_and_pair(port, a);
    close(b[0]);
    close(b[1]);
}

/* --- remove from the fd's own callback ----------------------------------- */

/* Callback that removes its own fd from the worker thread. */
struct self_remove {
    rn_port_t *port;
    int fd;
    atomic_int done;
};

static void
self_remove_cb(void *ctx, rn_port_action_t action)
{
    struct self_remove *sr = ctx;
    rn_port_remove(sr->port, sr->fd);
    atomic_store(&sr->done, 1);
}

/** P1: remove called from inside a callback of the same fd on the worker
 * returns (it used to wait for itself and block the whole port). */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_006 */
RN_TEST(p1_remove_from_own_callback_does_not_deadlock)
{
    rn_port_t *port = NULL;
    struct rec other = {0};
    int a[2], b[2];
    RN_CHECK_EQ(make_pipe(a), 0);
    RN_CHECK_EQ(make_pipe(b), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    struct self_remove sr = {port, a[0], 0};
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, a[0], self_remove_cb, &sr), 0);
    RN_CHECK_EQ(write(a[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&sr.done) == 1);
    /* The port still serves other fds. */
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, b[0], rec_cb, &other), 0);
    RN_CHECK_EQ(write(b[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&other.calls) == 1);
    rn_port_remove(port, b[0]);
    release_port_and_pair(port, a);
    close(b[0]);
    close(b[1]);
}

static void
self_release_cb(void *ctx, rn_port_action_t action)
{
    struct self_remove *sr = ctx;
    rn_port_remove(sr->port, sr->fd);
    rn_port_dec_ref(sr->port); /* the last reference, on the worker */
    atomic_store(&sr->done, 1);
}

/** P2: the last reference dropped on the worker thread detaches instead of
 * joining itself; the worker frees the port when the callback returns. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_006 */
RN_TEST(p2_last_dec_ref_on_worker_detaches_and_frees)
{
    rn_port_t *port = NULL;
    int p[2];
    int threads = thread_count();
    use_counting_allocator();
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    struct self_remove sr = {port, p[0], 0};
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], self_release_cb, &sr), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&sr.done) == 1);
    WAIT_FOR(thread_count() == threads);
    WAIT_FOR(atomic_load(&g_allocs) == atomic_load(&g_frees));
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/** P20: an fd number reused after remove never reaches the old callback
 * (epoll data carries a generation, and remove deletes before close). */
RN_TEST(p20_reused_fd_number_reaches_only_new_callback)
{
    rn_port_t *port = NULL;
    struct rec old = {0}, fresh = {0};
    int p[2], q[2];
    RN_CHECK_EQ(open_port_and_pipe(&port, p), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &old), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&old.calls) == 1);
    rn_port_remove(port, p[0]);
    int num = p[0];
    close(p[0]);
    close(p[1]);
    RN_CHECK_EQ(make_pipe(q), 0);
    RN_CHECK_EQ(q[0], num);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, q[0], rec_cb, &fresh), 0);
    RN_CHECK_EQ(write(q[1], "y", 1), 1);
    WAIT_FOR(atomic_load(&fresh.calls) == 1);
    RN_CHECK_EQ(atomic_load(&old.calls), 1);
    rn_port_remove(port, q[0]);
    release_port_and_pair(port, q);
}
