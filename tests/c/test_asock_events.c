/*
 * test_asock_events.c: how the port's events complete an async socket's
 * sends and receives (event_complete_callback; csrc/rn_asock.c): data, end
 * of stream, reset, errors, ABANDONED, the EPOLLOUT path.
 *
 * Requirements and conventions as in test_asock_create.c: seed 002 as
 * amended in docs/srs/amendments.md, P-numbers of the reference
 * implementation's bugs, real sockets and port, faults through the rn_sys
 * seams, hang guards only.  Where a test must deliver one exact action it
 * takes the armed slot from the port (take_slot) and calls it itself.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_079 */
RN_TEST(event_complete_ignores_null_context)
{
    rn_asock_event_complete(NULL, RN_PORT_EPOLLIN);
    rn_asock_event_complete(NULL, RN_PORT_ABANDONED);
    RN_CHECK(1);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_080 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_081 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_084 */
RN_TEST(abandoned_completes_pending_send_and_receive_and_frees)
{
    int a, b;
    char x[4];
    int ctx_s = 1, ctx_r = 2;
    use_counting_allocator();
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_fail_errno, EAGAIN); /* the send stays pending */
    atomic_store(&g_send_fail_at, 0);
    RN_CHECK_EQ(send_str(s, "abc", &ctx_s), RN_ASOCK_SEND_SYNC_OK);
    rn_asock_buffer_t rb = {x, 4};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, &ctx_r), 0);
    rn_asock_close(s);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_ABANDONED);
    RN_CHECK_EQ(g_cb.send_seq[0], 1);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 0);
    RN_CHECK(pthread_equal(g_cb.thread, pthread_self())); /* close's thread */
    atomic_store(&g_send_fail_at, -1);
    rn_asock_destroy(s);
    rn_port_global_release();
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    close(b);
    finish();
}

/* --- receive completions ------------------------------------------------- */

/** P9: RDHUP for a receive reads first: bytes that came with the FIN are
 * delivered OK, and only the next (0-byte) read completes ABANDONED. */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_080 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_081 */
RN_TEST(p9_rdhup_delivers_remaining_data_before_abandoned)
{
    int a, b;
    char x[16];
    rn_port_cb cb;
    void *ctx;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(take_slot(a, EPOLLIN, &cb, &ctx), 0);
    RN_CHECK_EQ(write(b, "last", 4), 4);
    close(b);
    cb(ctx, RN_PORT_EPOLLRDHUP); /* what upstream turned into ABANDONED */
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 4);
    RN_CHECK_MEM(x, "last", 4);
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 2);
    RN_CHECK_EQ(g_cb.recv_results[1], RN_ASOCK_RECEIVE_ABANDONED);
    RN_CHECK_EQ(g_cb.recv_bytes[1], 0);
    finish_pair(s, -1);
}

/** P10: EAGAIN on a readiness report re-arms the receive without calling
 * back (upstream completed it OK with 0 bytes, which looks like EOF). */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_088 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_089 */
RN_TEST(p10_receive_eagain_rearms_without_callback)
{
    int a, b;
    char x[8];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_recv_seam();
    atomic_store(&g_recv_eagain, 2);
    RN_CHECK_EQ(receive_into(s, x, sizeof(x), NULL), 0);
    RN_CHECK_EQ(write(b, "ab", 2), 2);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK(atomic_load(&g_recv_calls) >= 3); /* two EAGAINs, then data */
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 2);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_090 */
RN_TEST(receive_connection_reset_is_abandoned)
{
    int a, b;
    char x[8];
    struct linger lg = {1, 0};
    rn_asock_t *s = open_sock_on_tcp_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_recv_seam();
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    /* The peer resets the connection (RST, not FIN). */
    setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(b);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    /* The same through the seam, to be sure it is ECONNRESET's branch. */
    atomic_store(&g_recv_fail_errno, ECONNRESET);
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 2);
    RN_CHECK_EQ(g_cb.recv_results[1], RN_ASOCK_RECEIVE_ABANDONED);
    atomic_store(&g_recv_fail_errno, 0);
    finish_pair(s, -1);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_095 */
RN_TEST(receive_other_errors_complete_with_error)
{
    int a, b;
    char x[8];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_recv_seam();
    atomic_store(&g_recv_fail_errno, EIO);
    RN_CHECK_EQ(receive_into(s, x, sizeof(x), NULL), 0);
    RN_CHECK_EQ(write(b, "z", 1), 1);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ERROR);
    atomic_store(&g_recv_fail_errno, 0);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_091 */
RN_TEST(receive_end_of_stream_is_abandoned)
{
    int a, b;
    char x[8];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(receive_into(s, x, sizeof(x), NULL), 0);
    shutdown(b, SHUT_WR);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 0);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_093 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_100 */
RN_TEST(completed_operations_free_their_context)
{
    int a, b;
    char x[8];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_counting_allocator();
    use_send_seam();
    rn_asock_buffer_t rb = {x, sizeof(x)};
    for (int i = 0; i < 50; i++) {
        RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
        RN_CHECK_EQ(write(b, "r", 1), 1);
        WAIT_FOR(atomic_load(&g_cb.recv_calls) == i + 1);
        atomic_store(&g_send_eagain, 1); /* through the EPOLLOUT path */
        RN_CHECK_EQ(send_str(s, "s", NULL), RN_ASOCK_SEND_SYNC_OK);
        WAIT_FOR(atomic_load(&g_cb.send_calls) == i + 1);
    }
    /* Every context was freed once its callback ran. */
    WAIT_FOR(atomic_load(&g_allocs) == atomic_load(&g_frees));
    finish_pair(s, b);
}

/* --- send completions (the EPOLLOUT path) -------------------------------- */

/** P5: EAGAIN inside the EPOLLOUT path keeps the progress and waits again;
 * it is never reported as an error. */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_094 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_096 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_101 */
RN_TEST(p5_epollout_path_keeps_progress_across_eagain)
{
    int a, b;
    enum { N = 3000 };
    static char data[N], got[N];
    for (int i = 0; i < N; i++)
        data[i] = (char)('a' + i % 26);
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_eagain, 1); /* into the EPOLLOUT path */
    atomic_store(&g_send_max, 100);  /* then 100 bytes ... */
    atomic_store(&g_send_flip, 1);   /* ... and EAGAIN, alternately */
    rn_asock_buffer_t bufs[3] = {
        {data, 1000}, {data + 1000, 1000}, {data + 2000, 1000}};
    RN_CHECK_EQ(rn_asock_send_async(s, bufs, 3, on_send, NULL),
                RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(read_exact(b, got, N), 0);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK_MEM(got, data, N);
    RN_CHECK(atomic_load(&g_send_calls) >= 60);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_097 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_098 */
RN_TEST(epollout_path_connection_reset_is_abandoned)
{
    static const int errs[] = {ECONNRESET, EPIPE};
    for (int k = 0; k < 2; k++) {
        int a, b;
        rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
        RN_CHECK(s != NULL);
        use_send_seam();
        atomic_store(&g_send_eagain, 1);
        atomic_store(&g_send_fail_errno, errs[k]);
        atomic_store(&g_send_fail_at, 1); /* the EPOLLOUT-path write */
        RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_OK);
        WAIT_FOR(atomic_load(&g_cb.send_calls) == k + 1);
        RN_CHECK_EQ(g_cb.send_results[k], RN_ASOCK_SEND_ABANDONED);
        atomic_store(&g_send_fail_at, -1);
        rn_asock_destroy(s);
        close(b);
    }
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_097 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_099 */
RN_TEST(epollout_path_other_error_is_error)
{
    int a, b;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_eagain, 1);
    atomic_store(&g_send_fail_errno, EIO);
    atomic_store(&g_send_fail_at, 1);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_OK);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_ERROR);
    atomic_store(&g_send_fail_at, -1);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_085 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_086 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_087 */
RN_TEST(error_action_completes_send_and_receive_with_error)
{
    int a, b;
    char x[4];
    rn_port_cb cb;
    void *ctx;
    use_counting_allocator();
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(receive_into(s, x, sizeof(x), NULL), 0);
    RN_CHECK_EQ(take_slot(a, EPOLLIN, &cb, &ctx), 0);
    cb(ctx, RN_PORT_ERROR);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ERROR);
    /* A full send buffer keeps the port's worker from firing EPOLLOUT
     * before this thread takes the slot (a writable socket fires at once,
     * and on a loaded machine the worker could win). */
    fill_send_buffer(a);
    use_send_seam();
    atomic_store(&g_send_eagain, 1);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(take_slot(a, EPOLLOUT, &cb, &ctx), 0);
    cb(ctx, RN_PORT_ERROR);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_ERROR);
    rn_asock_destroy(s);
    rn_port_global_release();
    /* 11_087: both contexts were freed. */
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    close(b);
    finish();
}

/** P3: a receive and a send outstanding at once on one socket (full
 * duplex): the send waiting for EPOLLOUT no longer orphans the receive. */
RN_TEST(p3_send_and_receive_outstanding_together)
{
    int a, b;
    char x[8];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(receive_into(s, x, sizeof(x), NULL), 0);
    /* Fill the socket so the next send must wait for EPOLLOUT. */
    static char big[1 << 20];
    rn_asock_buffer_t sb = {big, sizeof(big)};
    RN_CHECK_EQ(rn_asock_send_async(s, &sb, 1, on_send, NULL),
                RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0); /* pending */
    RN_CHECK_EQ(write(b, "in", 2), 2);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    static char sink[1 << 20];
    RN_CHECK_EQ(read_exact(b, sink, sizeof(sink)), 0);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    finish_pair(s, b);
}
