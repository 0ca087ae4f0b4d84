/*
 * test_asock_send.c: sending on an async socket (async_socket_send_async;
 * csrc/rn_asock.c): arguments, the inline path, EAGAIN and errors, order
 * under backpressure.
 *
 * Requirements and conventions as in test_asock_create.c: seed 002 as
 * amended in docs/srs/amendments.md, P-numbers of the reference
 * implementation's bugs, real sockets (AF_UNIX pairs, TCP over 127.0.0.1
 * where the kernel's TCP behaviour matters) and port, faults through the
 * rn_sys seams, hang guards only.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_043 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_044 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_045 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_046 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_047 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_048 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_049 */
RN_TEST(send_rejects_bad_arguments)
{
    int a, b;
    char x[4] = "abc";
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t ok = {x, 3};
    rn_asock_buffer_t null_buf[2] = {{x, 3}, {NULL, 3}};
    rn_asock_buffer_t zero_len[2] = {{x, 3}, {x, 0}};
    /* Never dereferenced: the sum is checked before any byte is used. */
    rn_asock_buffer_t huge[2] = {{x, UINT32_MAX}, {x, 1}};
    RN_CHECK_EQ(rn_asock_send_async(NULL, &ok, 1, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(rn_asock_send_async(s, NULL, 1, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(rn_asock_send_async(s, &ok, 0, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(rn_asock_send_async(s, null_buf, 2, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(rn_asock_send_async(s, zero_len, 2, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(rn_asock_send_async(s, huge, 2, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(rn_asock_send_async(s, &ok, 1, NULL, NULL),
                RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    rn_asock_destroy(s);
    /* Nothing was written by any of them. */
    char buf[4];
    RN_CHECK_EQ(read(b, buf, sizeof(buf)), 0);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_050 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_061 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_062 */
RN_TEST(send_completes_inline_with_send_ok)
{
    int a, b;
    char buf[5];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(send_str(s, "hello", NULL), RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1); /* before returning */
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK(pthread_equal(g_cb.thread, pthread_self()));
    RN_CHECK_EQ(read_exact(b, buf, 5), 0);
    RN_CHECK_MEM(buf, "hello", 5);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_051 */
RN_TEST(send_on_socket_not_open_is_abandoned)
{
    int a, b;
    rn_asock_t *s = create_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    rn_asock_close(s);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    finish_pair(s, b);
}

/** P19: every write goes through sendmsg with MSG_NOSIGNAL, so writing to a
 * peer that is gone never raises SIGPIPE (default action: kill). */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_052 */
RN_TEST(p19_send_uses_msg_nosignal)
{
    int a, b;
    signal(SIGPIPE, SIG_DFL);
    rn_asock_t *s = open_sock_on_tcp_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK(atomic_load(&g_send_flags) & MSG_NOSIGNAL);
    close(b);
    /* Write until the kernel reports the peer gone (EPIPE/ECONNRESET). */
    rn_asock_send_sync_result_t r = RN_ASOCK_SEND_SYNC_OK;
    for (int i = 0; i < 1000 && r == RN_ASOCK_SEND_SYNC_OK; i++) {
        r = send_str(s, "more", NULL);
        if (r == RN_ASOCK_SEND_SYNC_OK)
            sleep_ms(1);
    }
    RN_CHECK_EQ(r, RN_ASOCK_SEND_SYNC_ABANDONED); /* and we are alive */
    finish_pair(s, -1);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_053 */
RN_TEST(send_loops_until_the_payload_is_sent)
{
    int a, b;
    char buf[26];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_max, 3); /* short writes, 3 bytes each */
    char p1[] = "abcdefghij", p2[] = "klmnopqrstuvwxyz";
    rn_asock_buffer_t bufs[2] = {{p1, 10}, {p2, 16}};
    RN_CHECK_EQ(rn_asock_send_async(s, bufs, 2, on_send, NULL),
                RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1);
    RN_CHECK(atomic_load(&g_send_calls) >= 9);
    RN_CHECK_EQ(read_exact(b, buf, 26), 0);
    RN_CHECK_MEM(buf, "abcdefghijklmnopqrstuvwxyz", 26);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_054 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_055 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_056 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_057 */
RN_TEST(send_on_eagain_queues_and_arms_epollout)
{
    int a, b;
    char buf[6];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    use_call_log();
    atomic_store(&g_send_eagain, 1);
    /* The descriptor array is stored in the context: a stack array that
     * goes away right after the call is fine. */
    {
        char data[] = "queued";
        static char keep[7];
        memcpy(keep, data, 7);
        rn_asock_buffer_t b1 = {keep, 6};
        RN_CHECK_EQ(rn_asock_send_async(s, &b1, 1, on_send, NULL),
                    RN_ASOCK_SEND_SYNC_OK);
        memset(&b1, 0, sizeof(b1));
    }
    int i = log_find(EPOLL_CTL_MOD, a);
    RN_CHECK(i >= 0);
    RN_CHECK(g_log[i].events & EPOLLOUT);
    RN_CHECK(g_log[i].events & EPOLLONESHOT);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK(!pthread_equal(g_cb.thread, pthread_self())); /* the worker */
    RN_CHECK_EQ(read_exact(b, buf, 6), 0);
    RN_CHECK_MEM(buf, "queued", 6);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_059 */
RN_TEST(send_connection_errors_return_abandoned_without_callback)
{
    static const int errs[] = {ECONNRESET, ENOTCONN, EPIPE};
    for (int k = 0; k < 3; k++) {
        int a, b;
        rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
        RN_CHECK(s != NULL);
        use_send_seam();
        atomic_store(&g_send_fail_errno, errs[k]);
        atomic_store(&g_send_fail_at, 0);
        RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
        atomic_store(&g_send_fail_at, -1);
        rn_asock_destroy(s);
        close(b);
    }
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_060 */
RN_TEST(send_other_errors_return_error_without_callback)
{
    int a, b;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_fail_errno, ENOBUFS);
    atomic_store(&g_send_fail_at, 0);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    finish_pair(s, b);
}

/** P16: the errno of sendmsg is saved at once; a later call that changes
 * errno (here: free) cannot turn ECONNRESET into another result. */
RN_TEST(p16_send_errno_saved_before_other_calls)
{
    int a, b;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    use_counting_allocator();
    atomic_store(&g_free_clobbers_errno, 1);
    atomic_store(&g_send_fail_errno, ECONNRESET);
    atomic_store(&g_send_fail_at, 0);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    atomic_store(&g_send_fail_at, -1);
    atomic_store(&g_free_clobbers_errno, 0);
    finish_pair(s, b);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_063 */
RN_TEST(send_fails_cleanly_on_allocation_or_port_failure)
{
    int a, b;
    use_counting_allocator();
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    atomic_store(&g_fail_malloc, 1);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ERROR);
    /* EAGAIN, then arming EPOLLOUT fails. */
    use_send_seam();
    use_call_log();
    atomic_store(&g_send_eagain, 1);
    atomic_store(&g_ctl_fail_errno, ENOMEM);
    atomic_store(&g_ctl_fail_op, EPOLL_CTL_MOD);
    RN_CHECK_EQ(send_str(s, "y", NULL), RN_ASOCK_SEND_SYNC_ERROR);
    atomic_store(&g_ctl_fail_op, -1);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    /* Nothing was written, so the socket still sends. */
    RN_CHECK_EQ(send_str(s, "z", NULL), RN_ASOCK_SEND_SYNC_OK);
    char c;
    RN_CHECK_EQ(read_exact(b, &c, 1), 0);
    RN_CHECK_EQ(c, 'z');
    rn_asock_destroy(s);
    rn_port_global_release();
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    close(b);
    finish();
}

/** P7: a failure part-way through a multi-buffer send is reported (not
 * masked by a later buffer's success), nothing after it is written, and
 * the sends queued behind it fail too. */
RN_TEST(p7_error_mid_payload_is_not_masked)
{
    int a, b;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_max, 2);
    atomic_store(&g_send_fail_errno, ECONNRESET);
    atomic_store(&g_send_fail_at, 1); /* first 2 bytes go, then reset */
    char p1[] = "abcd", p2[] = "efgh";
    rn_asock_buffer_t bufs[2] = {{p1, 4}, {p2, 4}};
    RN_CHECK_EQ(rn_asock_send_async(s, bufs, 2, on_send, NULL),
                RN_ASOCK_SEND_SYNC_ABANDONED);
    atomic_store(&g_send_fail_at, -1);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    /* The stream has a hole: later sends are refused. */
    RN_CHECK_EQ(send_str(s, "ijkl", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    rn_asock_destroy(s);
    char buf[16];
    RN_CHECK_EQ(read(b, buf, sizeof(buf)), 2);
    RN_CHECK_MEM(buf, "ab", 2);
    close(b);
    finish();
}

/* --- sends under backpressure -------------------------------------------- */

struct reader {
    int fd;
    size_t want;
    unsigned char *buf;
    int slow;
    int rc;
};

static void *
reader_thread(void *arg)
{
    struct reader *r = arg;
    size_t got = 0;
    while (got < r->want) {
        size_t chunk = r->want - got < 4096 ? r->want - got : 4096;
        ssize_t n = read(r->fd, r->buf + got, chunk);
        if (n <= 0) {
            r->rc = -1;
            return NULL;
        }
        got += (size_t)n;
        if (r->slow && (got / 4096) % 64 == 0)
            sleep_ms(1);
    }
    r->rc = 0;
    return NULL;
}

/** P6, P8: many multi-buffer sends under real backpressure (small socket
 * buffers, slow reader) arrive complete and in order; every remaining
 * buffer is kept and a later send never overtakes a queued one. */
RN_TEST(p8_sends_keep_order_under_backpressure)
{
    int a, b;
    enum { SENDS = 128, PART = 16384 }; /* 128 sends x 2 x 16 KiB */
    size_t total = (size_t)SENDS * 2 * PART;
    unsigned char *data = malloc(total), *got = malloc(total);
    int ctx[SENDS];
    pthread_t t;
    int small = 16384;
    RN_CHECK(data && got);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)((i * 7 + i / 8192) & 0xff);
    RN_CHECK_EQ(tcp_pair(&a, &b), 0);
    setsockopt(a, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_send_seam(); /* pass-through, counts the kernel's EAGAINs */
    struct reader r = {b, total, got, 1, -1};
    for (int i = 0; i < SENDS; i++) {
        ctx[i] = i;
        rn_asock_buffer_t bufs[2] = {
            {data + (size_t)i * 2 * PART, PART},
            {data + (size_t)i * 2 * PART + PART, PART}};
        RN_CHECK_EQ(rn_asock_send_async(s, bufs, 2, on_send, &ctx[i]),
                    RN_ASOCK_SEND_SYNC_OK);
    }
    /* Nobody reads yet: the socket pushed back, sends are queued. */
    RN_CHECK(atomic_load(&g_send_real_eagain) >= 1);
    RN_CHECK(atomic_load(&g_cb.send_calls) < SENDS);
    pthread_create(&t, NULL, reader_thread, &r);
    pthread_join(t, NULL);
    RN_CHECK_EQ(r.rc, 0);
    RN_CHECK(memcmp(got, data, total) == 0);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == SENDS);
    for (int i = 0; i < SENDS; i++) {
        RN_CHECK_EQ(g_cb.send_results[i], RN_ASOCK_SEND_OK);
        RN_CHECK_EQ(g_cb.send_seq[i], i); /* callbacks in order too */
    }
    rn_asock_destroy(s);
    close(b);
    free(data);
    free(got);
    finish();
}

/** P22: every test here binds port 0 on 127.0.0.1 (tcp_pair) and reads the
 * port back; two binds in a row never collide. */
RN_TEST(p22_tests_bind_ephemeral_ports)
{
    int a, b, c, d;
    RN_CHECK_EQ(tcp_pair(&a, &b), 0);
    RN_CHECK_EQ(tcp_pair(&c, &d), 0);
    close(a);
    close(b);
    close(c);
    close(d);
}
