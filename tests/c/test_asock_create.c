/*
 * test_asock_create.c: creating and destroying an async socket
 * (async_socket_create, async_socket_destroy; csrc/rn_asock.c).
 *
 * Requirements: docs/srs/async_socket_linux.md (seed 002), amended as in
 * docs/srs/amendments.md; where a requirement is amended the test asserts
 * the amended behaviour.  Regression tests for the reference
 * implementation's bugs carry their P-number (async-socket-notes section 5)
 * in the comment above them.  Sockets are real (AF_UNIX socketpairs) and so
 * are the port and its worker; faults are injected through the rn_sys
 * seams (rn_test_support.h).  Waits use a hang guard only, never a bound on
 * how fast.
 */
#include "rn_test.h"
#include "rn_test_asock.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <fcntl.h>
#include <unistd.h>

/* --- async_socket_create ------------------------------------------------- */

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_001 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_002 */
RN_TEST(create_returns_handle_with_null_engine)
{
    int a, b;
    rn_asock_t *s = NULL, *t = NULL;
    int engine = 0;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(rn_asock_create(&engine, b, &t), 0); /* any engine too */
    RN_CHECK(t != NULL);
    rn_asock_destroy(s);
    finish_pair(t, -1);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_003 */
RN_TEST(create_fails_for_invalid_socket)
{
    rn_asock_t *s = NULL;
    RN_CHECK(rn_asock_create(NULL, -1, &s) != 0);
    RN_CHECK(s == NULL);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_005 */
RN_TEST(create_gets_the_process_completion_port)
{
    int a, b, fds[2];
    rn_asock_t *s = NULL, *t = NULL;
    int threads = thread_count();
    RN_CHECK_EQ(rn_port_global_fds(fds), 0);
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    RN_CHECK_EQ(rn_port_global_fds(fds), 2); /* created lazily */
    RN_CHECK_EQ(rn_asock_create(NULL, b, &t), 0);
    RN_CHECK_EQ(thread_count(), threads + 1); /* one port, one worker */
    rn_asock_destroy(s);
    finish_pair(t, -1);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_006 */
RN_TEST(create_fails_cleanly_on_any_error)
{
    int a, b;
    rn_asock_t *s = NULL;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    use_counting_allocator();
    /* The socket's own allocation fails. */
    atomic_store(&g_fail_calloc, 1);
    RN_CHECK(rn_asock_create(NULL, a, &s) != 0);
    RN_CHECK(s == NULL);
    /* Getting (creating) the completion port fails. */
    atomic_store(&g_fail_calloc, 2);
    RN_CHECK(rn_asock_create(NULL, a, &s) != 0);
    RN_CHECK(s == NULL);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    /* The caller still owns the fd. */
    RN_CHECK(fcntl(a, F_GETFD) >= 0);
    close(a);
    close(b);
    finish();
}

/* --- async_socket_destroy ------------------------------------------------ */

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_019 */
RN_TEST(destroy_ignores_null)
{
    rn_asock_destroy(NULL);
    RN_CHECK(1);
}

struct open_args {
    rn_asock_t *s;
    int rc;
};

static void
open_call(void *arg)
{
    struct open_args *call = arg;
    call->rc = rn_asock_open_async(call->s, on_open, NULL);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_020 */
RN_TEST(destroy_waits_while_opening)
{
    int a, b;
    rn_asock_t *s = NULL;
    struct background opener, destroyer;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    gate_arm();
    rn_sys.fcntl = gated_fcntl; /* open stops in its fcntl, state OPENING */
    struct open_args oa = {s, -1};
    RN_CHECK_EQ(background_start(&opener, open_call, &oa), 0);
    WAIT_FOR(gate_entered());
    RN_CHECK_EQ(background_start(&destroyer, destroy_call, s), 0);
    sleep_ms(50);
    RN_CHECK(!background_done(&destroyer));
    gate_open();
    background_join(&opener);
    background_join(&destroyer);
    RN_CHECK_EQ(oa.rc, 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    close(b);
    finish();
}

/* A receive callback that stops in the gate (close is then CLOSING). */
static void
gated_on_recv(void *ctx, rn_asock_receive_result_t result, uint32_t bytes)
{
    gate_pass();
    on_recv(ctx, result, bytes);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_020 */
RN_TEST(destroy_waits_while_closing)
{
    int a, b;
    char buf[8];
    struct background closer, destroyer;
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {buf, sizeof(buf)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, gated_on_recv, NULL), 0);
    gate_arm();
    RN_CHECK_EQ(background_start(&closer, close_call, s), 0);
    WAIT_FOR(gate_entered()); /* close delivers ABANDONED: CLOSING */
    RN_CHECK_EQ(background_start(&destroyer, destroy_call, s), 0);
    sleep_ms(50);
    RN_CHECK(!background_done(&destroyer));
    gate_open();
    background_join(&closer);
    background_join(&destroyer);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_021 */
RN_TEST(destroy_closes_an_open_socket)
{
    int a, b;
    char buf[8];
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(receive_into(s, buf, sizeof(buf), NULL), 0);
    use_call_log();
    rn_asock_destroy(s);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    RN_CHECK(log_find(LOG_CLOSE, a) >= 0);
    /* The peer sees the end of the stream. */
    RN_CHECK_EQ(read(b, buf, sizeof(buf)), 0);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_022 */
RN_TEST(destroy_releases_the_completion_port)
{
    int a, b;
    int threads = thread_count();
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    rn_port_global_release(); /* only the socket holds the port now */
    RN_CHECK_EQ(thread_count(), threads + 1);
    rn_asock_destroy(s);
    RN_CHECK_EQ(thread_count(), threads); /* last reference: port gone */
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_023 */
RN_TEST(destroy_frees_everything)
{
    int a, b;
    char buf[8];
    use_counting_allocator();
    rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(receive_into(s, buf, sizeof(buf), NULL), 0);
    RN_CHECK_EQ(send_str(s, "hi", NULL), RN_ASOCK_SEND_SYNC_OK);
    rn_asock_destroy(s);
    /* A never-opened socket: destroy closes its fd too. */
    RN_CHECK_EQ(rn_asock_create(NULL, b, &s), 0);
    rn_asock_destroy(s);
    RN_CHECK(fcntl(b, F_GETFD) < 0);
    rn_port_global_release();
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    finish();
}

/* A receive callback that destroys its own socket on the worker. */
static rn_asock_t *g_self_destroy;
static atomic_int g_self_destroyed;

static void
destroy_in_callback(void *ctx, rn_asock_receive_result_t r, uint32_t n)
{
    rn_asock_destroy(g_self_destroy);
    atomic_store(&g_self_destroyed, 1);
}

/** P1, P2: destroying a socket from inside its own callback on the worker
 * neither deadlocks nor frees the port under the running worker, even when
 * it drops the port's last reference. */
RN_TEST(p1_p2_destroy_from_own_callback)
{
    int a, b, c, d;
    char x[4];
    int threads = thread_count();
    use_counting_allocator();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(unix_pair(&c, &d), 0);
    rn_asock_t *s = open_sock(a);
    rn_asock_t *other = open_sock(c);
    RN_CHECK(s && other);
    g_self_destroy = s;
    rn_asock_buffer_t rb = {x, 4};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, destroy_in_callback, NULL),
                0);
    RN_CHECK_EQ(write(b, "q", 1), 1);
    WAIT_FOR(atomic_load(&g_self_destroyed) == 1);
    /* The port still serves the other socket. */
    RN_CHECK_EQ(rn_asock_receive_async(other, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(write(d, "r", 1), 1);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    /* Now the last reference goes on the worker (P2). */
    rn_port_global_release();
    g_self_destroy = other;
    atomic_store(&g_self_destroyed, 0);
    RN_CHECK_EQ(
        rn_asock_receive_async(other, &rb, 1, destroy_in_callback, NULL), 0);
    RN_CHECK_EQ(write(d, "s", 1), 1);
    WAIT_FOR(atomic_load(&g_self_destroyed) == 1);
    WAIT_FOR(thread_count() == threads);
    WAIT_FOR(atomic_load(&g_allocs) == atomic_load(&g_frees));
    close(b);
    close(d);
    finish();
}

/** P12: connection churn leaves no per-operation record behind. */
RN_TEST(p12_churn_leaves_nothing_behind)
{
    char x[4];
    use_counting_allocator();
    for (int i = 0; i < 200; i++) {
        int a, b;
        rn_asock_t *s = open_sock_on_unix_pair(&a, &b);
        RN_CHECK(s != NULL);
        RN_CHECK_EQ(receive_into(s, x, 4, NULL), 0);
        rn_asock_destroy(s);
        close(b);
    }
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 200);
    rn_port_global_release();
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    finish();
}
