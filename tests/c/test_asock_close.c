/*
 * test_asock_close.c: closing an async socket (async_socket_close;
 * csrc/rn_asock.c), alone and racing sends and callbacks.
 *
 * Requirements and conventions as in test_asock_create.c: seed 002 as
 * amended in docs/srs/amendments.md, P-numbers of the reference
 * implementation's bugs, real sockets and port, faults through the rn_sys
 * seams, hang guards only.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_035 */
RN_TEST(close_ignores_null)
{
    rn_asock_close(NULL);
    RN_CHECK(1);
}

static rn_asock_t *g_closing_sock;
static atomic_int g_closing_send_rc = -1, g_closing_open_rc = 1;

static void
on_recv_while_closing(void *ctx, rn_asock_receive_result_t r, uint32_t n)
{
    /* Called with ABANDONED from inside close: the state is CLOSING. */
    atomic_store(&g_closing_send_rc, (int)send_str(g_closing_sock, "x", NULL));
    atomic_store(&g_closing_open_rc,
                 rn_asock_open_async(g_closing_sock, on_open, NULL));
    on_recv(ctx, r, n);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_036 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_041 */
RN_TEST(close_goes_through_closing_to_closed)
{
    int a, b;
    char buf[4];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    g_closing_sock = s;
    rn_asock_buffer_t rb = {buf, sizeof(buf)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv_while_closing, NULL),
                0);
    rn_asock_close(s);
    RN_CHECK_EQ(atomic_load(&g_closing_send_rc), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK(atomic_load(&g_closing_open_rc) != 0);
    /* CLOSED: nothing works any more, and close again is harmless. */
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    RN_CHECK_EQ(rn_asock_fd(s), -1);
    rn_asock_close(s);
    finish_pair(s, b);
}

struct send_args {
    rn_asock_t *s;
    int rc;
};

static void
send_call(void *arg)
{
    struct send_args *call = arg;
    call->rc = (int)send_str(call->s, "abc", NULL);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_037 */
RN_TEST(close_waits_for_executing_send)
{
    int a, b;
    char buf[4];
    struct background sender, closer;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    gate_arm();
    rn_sys.sendmsg = gated_sendmsg;
    struct send_args sa = {s, -1};
    RN_CHECK_EQ(background_start(&sender, send_call, &sa), 0);
    WAIT_FOR(gate_entered()); /* send_async is executing */
    RN_CHECK_EQ(background_start(&closer, close_call, s), 0);
    sleep_ms(50);
    RN_CHECK(!background_done(&closer));
    gate_open();
    background_join(&sender);
    background_join(&closer);
    RN_CHECK_EQ(sa.rc, RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK_EQ(read_exact(b, buf, 3), 0); /* it got out before close */
    RN_CHECK_MEM(buf, "abc", 3);
    finish_pair(s, b);
}

/** P20: close deregisters the fd from epoll before it closes it. */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_039 */
RN_TEST(close_deletes_from_epoll_then_closes_fd)
{
    int a, b;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_call_log();
    rn_asock_close(s);
    int del = log_find(EPOLL_CTL_DEL, a), cls = log_find(LOG_CLOSE, a);
    RN_CHECK(del >= 0);
    RN_CHECK(cls >= 0);
    RN_CHECK(del < cls);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_042 */
RN_TEST(close_does_nothing_unless_open)
{
    int a, b;
    rn_asock_t *s = create_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_call_log();
    rn_asock_close(s); /* never opened */
    RN_CHECK_EQ(atomic_load(&g_nlog), 0);
    RN_CHECK(fcntl(a, F_GETFD) >= 0);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    rn_asock_close(s);
    int n = atomic_load(&g_nlog);
    rn_asock_close(s); /* already closed */
    RN_CHECK_EQ(atomic_load(&g_nlog), n);
    finish_pair(s, b);
}

/* --- close against pending operations, sends and callbacks --------------- */

/** P13: pending operations are abandoned at close in the order they were
 * started (per kind), not LIFO. */
RN_TEST(p13_close_abandons_in_start_order)
{
    int a, b;
    char x[3][4];
    int rctx[3] = {10, 11, 12}, sctx[3] = {20, 21, 22};
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_fail_errno, EAGAIN);
    atomic_store(&g_send_fail_at, 0);
    for (int i = 0; i < 3; i++) {
        rn_asock_buffer_t rb = {x[i], 4};
        RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, &rctx[i]), 0);
        RN_CHECK_EQ(send_str(s, "s", &sctx[i]), RN_ASOCK_SEND_SYNC_OK);
    }
    rn_asock_close(s);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 3);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 3);
    for (int i = 0; i < 3; i++) {
        RN_CHECK_EQ(g_cb.recv_seq[i], 10 + i);
        RN_CHECK_EQ(g_cb.recv_results[i], RN_ASOCK_RECEIVE_ABANDONED);
        RN_CHECK_EQ(g_cb.send_seq[i], 20 + i);
        RN_CHECK_EQ(g_cb.send_results[i], RN_ASOCK_SEND_ABANDONED);
    }
    atomic_store(&g_send_fail_at, -1);
    finish_pair(s, b);
}

/* An inline send callback that closes its own socket. */
static rn_asock_t *g_inline_close;
static atomic_int g_inline_closed;

static void
close_in_send_callback(void *ctx, rn_asock_send_result_t r)
{
    rn_asock_close(g_inline_close);
    atomic_store(&g_inline_closed, 1);
}

/** P18: completions that run inline (a send finished at once) run after
 * the socket's lock and API counter were released, so the callback may
 * close the socket without deadlock. */
RN_TEST(p18_inline_callback_may_close_its_socket)
{
    int a, b;
    char buf[2];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    g_inline_close = s;
    rn_asock_buffer_t sb = {"hi", 2};
    RN_CHECK_EQ(rn_asock_send_async(s, &sb, 1, close_in_send_callback, NULL),
                RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_inline_closed), 1);
    RN_CHECK_EQ(rn_asock_fd(s), -1);
    RN_CHECK_EQ(read_exact(b, buf, 2), 0);
    finish_pair(s, b);
}

struct churn {
    rn_asock_t *s;
    atomic_int stop;
    atomic_int accepted;
};

static void
count_send(void *ctx, rn_asock_send_result_t r)
{
    atomic_fetch_add(&g_cb.send_calls, 1);
}

static void *
churn_sender(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop)) {
        rn_asock_buffer_t sb = {"0123456789", 10};
        if (rn_asock_send_async(c->s, &sb, 1, count_send, NULL) ==
            RN_ASOCK_SEND_SYNC_OK)
            atomic_fetch_add(&c->accepted, 1);
        /* Under valgrind, which runs one thread at a time, a loop that
         * re-takes the socket's mutex at once starves close() of it
         * forever; yielding keeps the race without the starvation. */
        sched_yield();
    }
    return NULL;
}

/** P15: sends racing close: every send close lets in is counted before the
 * state check, close waits for it, and each accepted send gets exactly one
 * callback (none touches the fd after close). */
RN_TEST(p15_sends_racing_close_each_complete_once)
{
    for (int round = 0; round < 20; round++) {
        int a, b;
        pthread_t t;
        cb_reset();
        rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
        fcntl(b, F_SETFL, O_NONBLOCK);
        RN_CHECK(s != NULL);
        struct churn c = {s, 0, 0};
        pthread_create(&t, NULL, churn_sender, &c);
        sleep_ms(2);
        rn_asock_close(s);
        atomic_store(&c.stop, 1);
        pthread_join(t, NULL);
        RN_CHECK_EQ(atomic_load(&g_cb.send_calls), atomic_load(&c.accepted));
        rn_asock_destroy(s);
        close(b);
    }
    finish();
}
