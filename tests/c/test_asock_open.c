/*
 * test_asock_open.c: opening an async socket (async_socket_open_async;
 * csrc/rn_asock.c).
 *
 * Requirements and conventions as in test_asock_create.c: seed 002 as
 * amended in docs/srs/amendments.md, P-numbers of the reference
 * implementation's bugs, real sockets and port, faults through the rn_sys
 * seams, hang guards only.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"

#include "rn_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_024 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_025 */
RN_TEST(open_rejects_null_socket_and_null_callback)
{
    int a, b;
    rn_asock_t *s = NULL;
    RN_CHECK(rn_asock_open_async(NULL, on_open, NULL) != 0);
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    RN_CHECK(rn_asock_open_async(s, NULL, NULL) != 0);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_026 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_028 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_033 */
RN_TEST(open_calls_on_open_ok_inline_and_returns_0)
{
    int a, b;
    int ctx = 7;
    rn_asock_t *s = NULL, *t = NULL;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, &ctx), 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1); /* before returning */
    RN_CHECK_EQ(atomic_load(&g_cb.open_result), RN_ASOCK_OPEN_OK);
    RN_CHECK(g_cb.open_ctx == &ctx);
    RN_CHECK(pthread_equal(g_cb.thread, pthread_self()));
    /* A NULL context is fine. */
    RN_CHECK_EQ(rn_asock_create(NULL, b, &t), 0);
    RN_CHECK_EQ(rn_asock_open_async(t, on_open, NULL), 0);
    RN_CHECK(g_cb.open_ctx == NULL);
    rn_asock_destroy(s);
    finish_pair(t, -1);
}

static rn_asock_t *g_reenter_sock;
static atomic_int g_reenter_open_rc, g_reenter_send_rc;

static int
reentering_fcntl(int fd, int cmd, int arg)
{
    /* While the socket is OPENING: a second open and a send must fail. */
    if (g_reenter_sock != NULL) {
        rn_asock_t *s = g_reenter_sock;
        g_reenter_sock = NULL;
        atomic_store(&g_reenter_open_rc,
                     rn_asock_open_async(s, on_open, NULL));
        atomic_store(&g_reenter_send_rc, (int)send_str(s, "x", NULL));
    }
    return fcntl(fd, cmd, arg);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_027 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_029 */
RN_TEST(open_switches_to_opening_and_refuses_second_open)
{
    int a, b;
    rn_asock_t *s = create_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    g_reenter_sock = s;
    rn_sys.fcntl = reentering_fcntl;
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    RN_CHECK(atomic_load(&g_reenter_open_rc) != 0); /* OPENING */
    RN_CHECK_EQ(atomic_load(&g_reenter_send_rc), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK(rn_asock_open_async(s, on_open, NULL) != 0); /* OPEN */
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_030 */
RN_TEST(open_fails_after_the_socket_was_closed)
{
    int a, b;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_close(s);
    RN_CHECK(rn_asock_open_async(s, on_open, NULL) != 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_031 */
RN_TEST(open_adds_the_fd_to_epoll)
{
    int a, b;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    use_call_log();
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    int i = log_find(EPOLL_CTL_ADD, a);
    RN_CHECK(i >= 0);
    RN_CHECK(g_log[i].events & EPOLLONESHOT); /* registered, nothing armed */
    RN_CHECK(!(g_log[i].events & (EPOLLIN | EPOLLOUT)));
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_032 */
RN_TEST(open_sets_state_open)
{
    int a, b;
    char buf[4];
    rn_asock_t *s = create_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    RN_CHECK_EQ(send_str(s, "ok", NULL), RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(read_exact(b, buf, 2), 0);
    RN_CHECK_MEM(buf, "ok", 2);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_034 */
RN_TEST(open_fails_when_epoll_add_or_fcntl_fails)
{
    int a, b;
    rn_asock_t *s = create_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_call_log();
    atomic_store(&g_ctl_fail_errno, ENOSPC);
    atomic_store(&g_ctl_fail_op, EPOLL_CTL_ADD);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), -ENOSPC);
    atomic_store(&g_ctl_fail_op, -1);
    rn_sys.fcntl = gated_fcntl;
    atomic_store(&g_fcntl_fail, EBADF);
    RN_CHECK(rn_asock_open_async(s, on_open, NULL) != 0);
    atomic_store(&g_fcntl_fail, 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 0); /* no callback on error */
    /* Back to CLOSED, not broken: open can be retried. */
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    finish_pair(s, b);
}

/** P17: a blocking fd would stall the worker; open makes it non-blocking. */
RN_TEST(p17_open_makes_fd_non_blocking)
{
    int a, b;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK(!(fcntl(a, F_GETFL) & O_NONBLOCK));
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    RN_CHECK(fcntl(a, F_GETFL) & O_NONBLOCK);
    finish_pair(s, b);
}
