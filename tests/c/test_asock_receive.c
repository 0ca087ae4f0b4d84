/*
 * test_asock_receive.c: starting a receive on an async socket
 * (async_socket_receive_async; csrc/rn_asock.c): arguments, the buffers,
 * arming EPOLLIN, failures.
 *
 * Requirements and conventions as in test_asock_create.c: seed 002 as
 * amended in docs/srs/amendments.md, real sockets and port, faults through
 * the rn_sys seams, hang guards only.  How a receive completes is in
 * test_asock_events.c.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <unistd.h>

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_064 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_065 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_066 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_067 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_068 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_069 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_070 */
RN_TEST(receive_rejects_bad_arguments)
{
    int a, b;
    char x[4];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t ok = {x, 4};
    rn_asock_buffer_t null_buf[2] = {{x, 4}, {NULL, 4}};
    rn_asock_buffer_t zero_len[2] = {{x, 4}, {x, 0}};
    rn_asock_buffer_t huge[2] = {{x, UINT32_MAX}, {x, 1}};
    RN_CHECK(rn_asock_receive_async(NULL, &ok, 1, on_recv, NULL) != 0);
    RN_CHECK(rn_asock_receive_async(s, NULL, 1, on_recv, NULL) != 0);
    RN_CHECK(rn_asock_receive_async(s, &ok, 0, on_recv, NULL) != 0);
    RN_CHECK(rn_asock_receive_async(s, null_buf, 2, on_recv, NULL) != 0);
    RN_CHECK(rn_asock_receive_async(s, zero_len, 2, on_recv, NULL) != 0);
    RN_CHECK(rn_asock_receive_async(s, huge, 2, on_recv, NULL) != 0);
    RN_CHECK(rn_asock_receive_async(s, &ok, 1, NULL, NULL) != 0);
    rn_asock_destroy(s);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 0); /* none was queued */
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_071 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_077 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_082 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_083 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_092 */
RN_TEST(receive_completes_ok_with_the_bytes_read)
{
    int a, b;
    char buf[16] = {0};
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_recv_seam();
    RN_CHECK_EQ(receive_into(s, buf, sizeof(buf), NULL), 0);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 0); /* never inline */
    RN_CHECK_EQ(write(b, "data", 4), 4);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 4);
    RN_CHECK_MEM(buf, "data", 4);
    RN_CHECK(atomic_load(&g_recv_calls) >= 1);
    RN_CHECK(!pthread_equal(g_cb.thread, pthread_self()));
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_072 */
RN_TEST(receive_on_socket_not_open_fails)
{
    int a, b;
    char x[4];
    rn_asock_t *s = create_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, 4};
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    rn_asock_close(s);
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 0);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_073 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_074 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_092 */
RN_TEST(receive_copies_descriptors_and_fills_every_buffer)
{
    int a, b;
    char b1[2], b2[3], b3[4];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    {
        rn_asock_buffer_t desc[3] = {{b1, 2}, {b2, 3}, {b3, 4}};
        RN_CHECK_EQ(rn_asock_receive_async(s, desc, 3, on_recv, NULL), 0);
        memset(desc, 0, sizeof(desc)); /* the caller's array may go */
    }
    RN_CHECK_EQ(write(b, "123456789", 9), 9);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    /* Amended 11_092: one read scatters over all the buffers. */
    RN_CHECK_EQ(g_cb.recv_bytes[0], 9);
    RN_CHECK_MEM(b1, "12", 2);
    RN_CHECK_MEM(b2, "345", 3);
    RN_CHECK_MEM(b3, "6789", 4);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_102 */
RN_TEST(receive_arms_epollin_on_the_port)
{
    int a, b;
    char x[4];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_call_log();
    RN_CHECK_EQ(receive_into(s, x, 4, NULL), 0);
    int i = log_find(EPOLL_CTL_MOD, a);
    RN_CHECK(i >= 0);
    RN_CHECK(g_log[i].events & EPOLLIN);
    RN_CHECK(g_log[i].events & EPOLLRDHUP);
    RN_CHECK(g_log[i].events & EPOLLONESHOT);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_078 */
RN_TEST(receive_fails_cleanly_on_allocation_or_port_failure)
{
    int a, b;
    char x[4];
    use_counting_allocator();
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, 4};
    atomic_store(&g_fail_malloc, 1);
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    use_call_log();
    atomic_store(&g_ctl_fail_errno, ENOMEM);
    atomic_store(&g_ctl_fail_op, EPOLL_CTL_MOD);
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    atomic_store(&g_ctl_fail_op, -1);
    /* Nothing was queued: a new receive is the head and works. */
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(write(b, "w", 1), 1);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    rn_asock_destroy(s);
    rn_port_global_release();
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    close(b);
    finish();
}
