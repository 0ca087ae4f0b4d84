/*
 * test_asock.c: unit tests of async_socket (csrc/rn_asock.c).
 *
 * Requirements: docs/srs/async_socket_linux.md (seed 002), amended as in
 * docs/srs/amendments.md; where a requirement is amended the test asserts
 * the amended behaviour.  Regression tests for the reference
 * implementation's bugs carry their P-number (async-socket-notes section 5)
 * in the comment above them.
 *
 * Sockets are real (TCP over 127.0.0.1, port 0, or AF_UNIX socketpairs) and
 * so are the port and its worker; faults are injected through the rn_sys
 * seams.  Waits use a hang guard only, never a bound on how fast.
 */
#include "rn_test.h"
#include "rn_test_threads.h"

#include "rn_asock.h"
#include "rn_port.h"
#include "rn_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ------------------------------------------------------------ */

/* A connected TCP pair over 127.0.0.1 (ephemeral port); 0 or -1. */
static int
tcp_pair(int *a, int *b)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int one = 1;
    int lst = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lst < 0)
        return -1;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(lst, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(lst, 1) < 0 ||
        getsockname(lst, (struct sockaddr *)&addr, &len) < 0) {
        close(lst);
        return -1;
    }
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(lst);
        return -1;
    }
    *b = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
    close(lst);
    if (*b < 0)
        return -1;
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

static int
unix_pair(int *a, int *b)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    *a = sv[0];
    *b = sv[1];
    return 0;
}

/* Reads exactly n bytes from a blocking fd; 0 or -1. */
static int
read_exact(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* The recorder every callback writes to. */
struct cb {
    atomic_int open_calls;
    atomic_int open_result;
    void *open_ctx;
    atomic_int send_calls;
    int send_results[512];
    atomic_int recv_calls;
    int recv_results[512];
    uint32_t recv_bytes[512];
    pthread_t thread;
    atomic_int seq; /* global order of any callback */
    int send_seq[512];
    int recv_seq[512];
};

static struct cb g_cb;
static atomic_int g_seq;

static void
cb_reset(void)
{
    memset(&g_cb, 0, sizeof(g_cb));
    atomic_store(&g_seq, 0);
}

static void
on_open(void *ctx, rn_asock_open_result_t result)
{
    g_cb.open_ctx = ctx;
    g_cb.thread = pthread_self();
    atomic_store(&g_cb.open_result, (int)result);
    atomic_fetch_add(&g_cb.open_calls, 1);
}

static void
on_send(void *ctx, rn_asock_send_result_t result)
{
    int i = atomic_load(&g_cb.send_calls);
    if (i < 512) {
        g_cb.send_results[i] = (int)result;
        g_cb.send_seq[i] = ctx ? *(int *)ctx : -1;
    }
    g_cb.thread = pthread_self();
    atomic_fetch_add(&g_cb.send_calls, 1);
}

static void
on_recv(void *ctx, rn_asock_receive_result_t result, uint32_t bytes)
{
    int i = atomic_load(&g_cb.recv_calls);
    if (i < 512) {
        g_cb.recv_results[i] = (int)result;
        g_cb.recv_bytes[i] = bytes;
        g_cb.recv_seq[i] = ctx ? *(int *)ctx : -1;
    }
    g_cb.thread = pthread_self();
    atomic_fetch_add(&g_cb.recv_calls, 1);
}

/* Creates and opens an async socket over fd. */
static rn_asock_t *
open_sock(int fd)
{
    rn_asock_t *s = NULL;
    if (rn_asock_create(NULL, fd, &s) != 0)
        return NULL;
    if (rn_asock_open_async(s, on_open, NULL) != 0) {
        rn_asock_destroy(s);
        return NULL;
    }
    return s;
}

static rn_asock_send_sync_result_t
send_str(rn_asock_t *s, const char *data, void *ctx)
{
    rn_asock_buffer_t b = {(void *)data, (uint32_t)strlen(data)};
    return rn_asock_send_async(s, &b, 1, on_send, ctx);
}

/* Every test ends with this: the process's port goes away too. */
static void
finish(void)
{
    rn_sys_reset();
    rn_port_global_release();
}

/* Takes the armed callback of fd's read or write slot from the port. */
static int
take_slot(int fd, uint32_t slot, rn_port_cb *cb, void **ctx)
{
    rn_port_t *port = NULL;
    if (rn_port_get(&port) != 0)
        return -1;
    int rc = rn_port_take(port, fd, slot, cb, ctx);
    rn_port_dec_ref(port);
    return rc;
}

/* --- seams ---------------------------------------------------------------- */

static atomic_long g_allocs, g_frees;
static atomic_int g_fail_malloc, g_fail_calloc; /* fail the n-th next call */

static int
countdown(atomic_int *c)
{
    return atomic_load(c) > 0 && atomic_fetch_sub(c, 1) == 1;
}

static void *
f_malloc(size_t n)
{
    if (countdown(&g_fail_malloc)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static void *
f_calloc(size_t n, size_t size)
{
    if (countdown(&g_fail_calloc)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = calloc(n, size);
    if (p)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static void *
f_realloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (p && !old)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static atomic_int g_free_clobbers_errno;

static void
f_free(void *p)
{
    if (p)
        atomic_fetch_add(&g_frees, 1);
    free(p);
    if (atomic_load(&g_free_clobbers_errno))
        errno = EIO; /* P16: errno must have been saved before this */
}

static void
use_alloc_seams(void)
{
    atomic_store(&g_allocs, 0);
    atomic_store(&g_frees, 0);
    rn_sys.malloc = f_malloc;
    rn_sys.calloc = f_calloc;
    rn_sys.realloc = f_realloc;
    rn_sys.free = f_free;
}

/* A global log of seam calls (kind, fd) to check their order. */
enum { LOG_CTL_ADD = 1, LOG_CTL_MOD, LOG_CTL_DEL, LOG_CLOSE };
static struct {
    int kind, fd;
    uint32_t events;
} g_log[4096];
static atomic_int g_nlog;
static atomic_int g_ctl_fail_op = -1;
static atomic_int g_ctl_fail_errno;

static void
log_add(int kind, int fd, uint32_t events)
{
    int i = atomic_fetch_add(&g_nlog, 1);
    if (i < 4096) {
        g_log[i].kind = kind;
        g_log[i].fd = fd;
        g_log[i].events = events;
    }
}

static int
log_find(int kind, int fd)
{
    int n = atomic_load(&g_nlog);
    for (int i = 0; i < n && i < 4096; i++)
        if (g_log[i].kind == kind && g_log[i].fd == fd)
            return i;
    return -1;
}

static int
f_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    log_add(op == EPOLL_CTL_ADD ? LOG_CTL_ADD
            : op == EPOLL_CTL_MOD ? LOG_CTL_MOD
                                  : LOG_CTL_DEL,
            fd, ev ? ev->events : 0);
    if (atomic_load(&g_ctl_fail_op) == op) {
        errno = atomic_load(&g_ctl_fail_errno);
        return -1;
    }
    return epoll_ctl(epfd, op, fd, ev);
}

static int
f_close(int fd)
{
    log_add(LOG_CLOSE, fd, 0);
    return close(fd);
}

static void
use_log_seams(void)
{
    atomic_store(&g_nlog, 0);
    rn_sys.epoll_ctl = f_epoll_ctl;
    rn_sys.close = f_close;
}

/* sendmsg: scripted EAGAIN/errors/partial writes, flags recorded. */
static atomic_int g_send_calls;
static atomic_int g_send_flags;
static atomic_int g_send_eagain;      /* the next n calls: EAGAIN */
static atomic_int g_send_fail_errno;  /* fail from call g_send_fail_at on */
static atomic_int g_send_fail_at = -1;
static atomic_int g_send_max;         /* bytes per call, 0 = no limit */
static atomic_int g_send_flip;        /* alternate write / EAGAIN */
static atomic_int g_send_flip_state;
static atomic_int g_send_iovlen_max;
static atomic_int g_send_real_eagain; /* EAGAINs the kernel returned */

static ssize_t
f_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    int call = atomic_fetch_add(&g_send_calls, 1);
    atomic_store(&g_send_flags, flags);
    if ((int)msg->msg_iovlen > atomic_load(&g_send_iovlen_max))
        atomic_store(&g_send_iovlen_max, (int)msg->msg_iovlen);
    if (atomic_load(&g_send_fail_at) >= 0 &&
        call >= atomic_load(&g_send_fail_at)) {
        errno = atomic_load(&g_send_fail_errno);
        return -1;
    }
    if (atomic_load(&g_send_eagain) > 0) {
        atomic_fetch_sub(&g_send_eagain, 1);
        errno = EAGAIN;
        return -1;
    }
    if (atomic_load(&g_send_flip)) {
        if (atomic_fetch_xor(&g_send_flip_state, 1) == 1) {
            errno = EWOULDBLOCK;
            return -1;
        }
    }
    int max = atomic_load(&g_send_max);
    if (max > 0) {
        /* Write at most max bytes of the iovecs. */
        struct iovec iov[64];
        size_t n = 0, left = (size_t)max;
        for (size_t i = 0; i < msg->msg_iovlen && left > 0 && n < 64; i++) {
            iov[n].iov_base = msg->msg_iov[i].iov_base;
            iov[n].iov_len = msg->msg_iov[i].iov_len < left
                                 ? msg->msg_iov[i].iov_len
                                 : left;
            left -= iov[n].iov_len;
            n++;
        }
        struct msghdr m = *msg;
        m.msg_iov = iov;
        m.msg_iovlen = n;
        return sendmsg(fd, &m, flags);
    }
    ssize_t n = sendmsg(fd, msg, flags);
    if (n < 0 && errno == EAGAIN)
        atomic_fetch_add(&g_send_real_eagain, 1);
    return n;
}

static void
use_send_seam(void)
{
    atomic_store(&g_send_calls, 0);
    rn_sys.sendmsg = f_sendmsg;
}

static atomic_int g_recv_calls;
static atomic_int g_recv_eagain;
static atomic_int g_recv_fail_errno;

static ssize_t
f_recvmsg(int fd, struct msghdr *msg, int flags)
{
    atomic_fetch_add(&g_recv_calls, 1);
    if (atomic_load(&g_recv_eagain) > 0) {
        atomic_fetch_sub(&g_recv_eagain, 1);
        errno = EAGAIN;
        return -1;
    }
    if (atomic_load(&g_recv_fail_errno)) {
        errno = atomic_load(&g_recv_fail_errno);
        return -1;
    }
    return recvmsg(fd, msg, flags);
}

static void
use_recv_seam(void)
{
    atomic_store(&g_recv_calls, 0);
    rn_sys.recvmsg = f_recvmsg;
}

/* A gate a seam can stop in until the test opens it. */
static pthread_mutex_t g_gm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_gc = PTHREAD_COND_INITIALIZER;
static int g_gate_entered, g_gate_open, g_gate_armed;

static void
gate_arm(void)
{
    pthread_mutex_lock(&g_gm);
    g_gate_entered = 0;
    g_gate_open = 0;
    g_gate_armed = 1;
    pthread_mutex_unlock(&g_gm);
}

static void
gate_pass(void)
{
    pthread_mutex_lock(&g_gm);
    if (g_gate_armed) {
        g_gate_armed = 0;
        g_gate_entered = 1;
        pthread_cond_broadcast(&g_gc);
        while (!g_gate_open)
            pthread_cond_wait(&g_gc, &g_gm);
    }
    pthread_mutex_unlock(&g_gm);
}

static int
gate_entered(void)
{
    pthread_mutex_lock(&g_gm);
    int e = g_gate_entered;
    pthread_mutex_unlock(&g_gm);
    return e;
}

static void
gate_open(void)
{
    pthread_mutex_lock(&g_gm);
    g_gate_open = 1;
    pthread_cond_broadcast(&g_gc);
    pthread_mutex_unlock(&g_gm);
}

static atomic_int g_fcntl_fail;

static int
f_fcntl(int fd, int cmd, int arg)
{
    gate_pass();
    if (atomic_load(&g_fcntl_fail)) {
        errno = atomic_load(&g_fcntl_fail);
        return -1;
    }
    return fcntl(fd, cmd, arg);
}

static ssize_t
gated_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    gate_pass();
    return sendmsg(fd, msg, flags);
}

/* --- async_socket_create ------------------------------------------------ */

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
    rn_asock_destroy(t);
    finish();
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
    rn_asock_destroy(t);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_006 */
RN_TEST(create_fails_cleanly_on_any_error)
{
    int a, b;
    rn_asock_t *s = NULL;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    use_alloc_seams();
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

/* --- async_socket_destroy ----------------------------------------------- */

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_019 */
RN_TEST(destroy_ignores_null)
{
    rn_asock_destroy(NULL);
    RN_CHECK(1);
}

struct destroy_args {
    rn_asock_t *s;
    atomic_int done;
};

static void *
destroy_thread(void *arg)
{
    struct destroy_args *d = arg;
    rn_asock_destroy(d->s);
    atomic_store(&d->done, 1);
    return NULL;
}

struct open_args {
    rn_asock_t *s;
    int rc;
};

static void *
open_thread(void *arg)
{
    struct open_args *o = arg;
    o->rc = rn_asock_open_async(o->s, on_open, NULL);
    return NULL;
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_020 */
RN_TEST(destroy_waits_while_opening)
{
    int a, b;
    rn_asock_t *s = NULL;
    pthread_t t1, t2;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    gate_arm();
    rn_sys.fcntl = f_fcntl; /* open stops in its fcntl, state OPENING */
    struct open_args oa = {s, -1};
    pthread_create(&t1, NULL, open_thread, &oa);
    WAIT_FOR(gate_entered());
    struct destroy_args da = {s, 0};
    pthread_create(&t2, NULL, destroy_thread, &da);
    sleep_ms(50);
    RN_CHECK(!atomic_load(&da.done));
    gate_open();
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
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

struct close_args {
    rn_asock_t *s;
    atomic_int done;
};

static void *
close_thread(void *arg)
{
    struct close_args *c = arg;
    rn_asock_close(c->s);
    atomic_store(&c->done, 1);
    return NULL;
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_020 */
RN_TEST(destroy_waits_while_closing)
{
    int a, b;
    char buf[8];
    pthread_t t1, t2;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {buf, sizeof(buf)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, gated_on_recv, NULL), 0);
    gate_arm();
    struct close_args ca = {s, 0};
    pthread_create(&t1, NULL, close_thread, &ca);
    WAIT_FOR(gate_entered()); /* close delivers ABANDONED: CLOSING */
    struct destroy_args da = {s, 0};
    pthread_create(&t2, NULL, destroy_thread, &da);
    sleep_ms(50);
    RN_CHECK(!atomic_load(&da.done));
    gate_open();
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_021 */
RN_TEST(destroy_closes_an_open_socket)
{
    int a, b;
    char buf[8];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {buf, sizeof(buf)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    use_log_seams();
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
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    use_alloc_seams();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {buf, sizeof(buf)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
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

/* --- async_socket_open_async ------------------------------------------ */

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
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_026 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_028 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_033 */
RN_TEST(open_calls_on_open_ok_inline_and_returns_0)
{
    int a, b;
    int ctx = 7;
    rn_asock_t *s = NULL, *t = NULL;
    cb_reset();
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
    rn_asock_destroy(t);
    finish();
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
        atomic_store(&g_reenter_open_rc, rn_asock_open_async(s, on_open, NULL));
        atomic_store(&g_reenter_send_rc, (int)send_str(s, "x", NULL));
    }
    return fcntl(fd, cmd, arg);
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_027 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_029 */
RN_TEST(open_switches_to_opening_and_refuses_second_open)
{
    int a, b;
    rn_asock_t *s = NULL;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    g_reenter_sock = s;
    rn_sys.fcntl = reentering_fcntl;
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    RN_CHECK(atomic_load(&g_reenter_open_rc) != 0);  /* OPENING */
    RN_CHECK_EQ(atomic_load(&g_reenter_send_rc), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK(rn_asock_open_async(s, on_open, NULL) != 0); /* OPEN */
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_030 */
RN_TEST(open_fails_after_the_socket_was_closed)
{
    int a, b;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_close(s);
    RN_CHECK(rn_asock_open_async(s, on_open, NULL) != 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_031 */
RN_TEST(open_adds_the_fd_to_epoll)
{
    int a, b;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    use_log_seams();
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    int i = log_find(LOG_CTL_ADD, a);
    RN_CHECK(i >= 0);
    RN_CHECK(g_log[i].events & EPOLLONESHOT); /* registered, nothing armed */
    RN_CHECK(!(g_log[i].events & (EPOLLIN | EPOLLOUT)));
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_032 */
RN_TEST(open_sets_state_open)
{
    int a, b;
    char buf[4];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = NULL;
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    RN_CHECK_EQ(send_str(s, "ok", NULL), RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(read_exact(b, buf, 2), 0);
    RN_CHECK_MEM(buf, "ok", 2);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_034 */
RN_TEST(open_fails_when_epoll_add_or_fcntl_fails)
{
    int a, b;
    rn_asock_t *s = NULL;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    use_log_seams();
    atomic_store(&g_ctl_fail_errno, ENOSPC);
    atomic_store(&g_ctl_fail_op, EPOLL_CTL_ADD);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), -ENOSPC);
    atomic_store(&g_ctl_fail_op, -1);
    rn_sys.fcntl = f_fcntl;
    atomic_store(&g_fcntl_fail, EBADF);
    RN_CHECK(rn_asock_open_async(s, on_open, NULL) != 0);
    atomic_store(&g_fcntl_fail, 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 0); /* no callback on error */
    /* Back to CLOSED, not broken: open can be retried. */
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    RN_CHECK_EQ(atomic_load(&g_cb.open_calls), 1);
    rn_asock_destroy(s);
    close(b);
    finish();
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
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* --- async_socket_close --------------------------------------------------- */

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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    close(b);
    finish();
}

struct send_args {
    rn_asock_t *s;
    int rc;
};

static void *
send_thread(void *arg)
{
    struct send_args *sa = arg;
    sa->rc = (int)send_str(sa->s, "abc", NULL);
    return NULL;
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_037 */
RN_TEST(close_waits_for_executing_send)
{
    int a, b;
    char buf[4];
    pthread_t t1, t2;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    gate_arm();
    rn_sys.sendmsg = gated_sendmsg;
    struct send_args sa = {s, -1};
    pthread_create(&t1, NULL, send_thread, &sa);
    WAIT_FOR(gate_entered()); /* send_async is executing */
    struct close_args ca = {s, 0};
    pthread_create(&t2, NULL, close_thread, &ca);
    sleep_ms(50);
    RN_CHECK(!atomic_load(&ca.done));
    gate_open();
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    RN_CHECK_EQ(sa.rc, RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK_EQ(read_exact(b, buf, 3), 0); /* it got out before close */
    RN_CHECK_MEM(buf, "abc", 3);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/** P20: close deregisters the fd from epoll before it closes it. */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_039 */
RN_TEST(close_deletes_from_epoll_then_closes_fd)
{
    int a, b;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_log_seams();
    rn_asock_close(s);
    int del = log_find(LOG_CTL_DEL, a), cls = log_find(LOG_CLOSE, a);
    RN_CHECK(del >= 0);
    RN_CHECK(cls >= 0);
    RN_CHECK(del < cls);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_042 */
RN_TEST(close_does_nothing_unless_open)
{
    int a, b;
    rn_asock_t *s = NULL;
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    use_log_seams();
    rn_asock_close(s); /* never opened */
    RN_CHECK_EQ(atomic_load(&g_nlog), 0);
    RN_CHECK(fcntl(a, F_GETFD) >= 0);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    rn_asock_close(s);
    int n = atomic_load(&g_nlog);
    rn_asock_close(s); /* already closed */
    RN_CHECK_EQ(atomic_load(&g_nlog), n);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* --- async_socket_send_async --------------------------------------------- */

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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    RN_CHECK_EQ(send_str(s, "hello", NULL), RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 1); /* before returning */
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK(pthread_equal(g_cb.thread, pthread_self()));
    RN_CHECK_EQ(read_exact(b, buf, 5), 0);
    RN_CHECK_MEM(buf, "hello", 5);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_051 */
RN_TEST(send_on_socket_not_open_is_abandoned)
{
    int a, b;
    rn_asock_t *s = NULL;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    rn_asock_close(s);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/** P19: every write goes through sendmsg with MSG_NOSIGNAL, so writing to a
 * peer that is gone never raises SIGPIPE (default action: kill). */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_052 */
RN_TEST(p19_send_uses_msg_nosignal)
{
    int a, b;
    cb_reset();
    signal(SIGPIPE, SIG_DFL);
    RN_CHECK_EQ(tcp_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_053 */
RN_TEST(send_loops_until_the_payload_is_sent)
{
    int a, b;
    char buf[26];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_054 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_055 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_056 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_057 */
RN_TEST(send_on_eagain_queues_and_arms_epollout)
{
    int a, b;
    char buf[6];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_send_seam();
    use_log_seams();
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
    int i = log_find(LOG_CTL_MOD, a);
    RN_CHECK(i >= 0);
    RN_CHECK(g_log[i].events & EPOLLOUT);
    RN_CHECK(g_log[i].events & EPOLLONESHOT);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK(!pthread_equal(g_cb.thread, pthread_self())); /* the worker */
    RN_CHECK_EQ(read_exact(b, buf, 6), 0);
    RN_CHECK_MEM(buf, "queued", 6);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_059 */
RN_TEST(send_connection_errors_return_abandoned_without_callback)
{
    static const int errs[] = {ECONNRESET, ENOTCONN, EPIPE};
    cb_reset();
    for (int k = 0; k < 3; k++) {
        int a, b;
        RN_CHECK_EQ(unix_pair(&a, &b), 0);
        rn_asock_t *s = open_sock(a);
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_fail_errno, ENOBUFS);
    atomic_store(&g_send_fail_at, 0);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ERROR);
    RN_CHECK_EQ(atomic_load(&g_cb.send_calls), 0);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/** P16: the errno of sendmsg is saved at once; a later call that changes
 * errno (here: free) cannot turn ECONNRESET into another result. */
RN_TEST(p16_send_errno_saved_before_other_calls)
{
    int a, b;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_send_seam();
    use_alloc_seams();
    atomic_store(&g_free_clobbers_errno, 1);
    atomic_store(&g_send_fail_errno, ECONNRESET);
    atomic_store(&g_send_fail_at, 0);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ABANDONED);
    atomic_store(&g_send_fail_at, -1);
    atomic_store(&g_free_clobbers_errno, 0);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_063 */
RN_TEST(send_fails_cleanly_on_allocation_or_port_failure)
{
    int a, b;
    cb_reset();
    use_alloc_seams();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    atomic_store(&g_fail_malloc, 1);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_ERROR);
    /* EAGAIN, then arming EPOLLOUT fails. */
    use_send_seam();
    use_log_seams();
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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

/* --- async_socket_receive_async ---------------------------------------- */

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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_recv_seam();
    rn_asock_buffer_t rb = {buf, sizeof(buf)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 0); /* never inline */
    RN_CHECK_EQ(write(b, "data", 4), 4);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 4);
    RN_CHECK_MEM(buf, "data", 4);
    RN_CHECK(atomic_load(&g_recv_calls) >= 1);
    RN_CHECK(!pthread_equal(g_cb.thread, pthread_self()));
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_072 */
RN_TEST(receive_on_socket_not_open_fails)
{
    int a, b;
    char x[4];
    rn_asock_t *s = NULL;
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    RN_CHECK_EQ(rn_asock_create(NULL, a, &s), 0);
    rn_asock_buffer_t rb = {x, 4};
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    RN_CHECK_EQ(rn_asock_open_async(s, on_open, NULL), 0);
    rn_asock_close(s);
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 0);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_073 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_074 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_092 */
RN_TEST(receive_copies_descriptors_and_fills_every_buffer)
{
    int a, b;
    char b1[2], b2[3], b3[4];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_102 */
RN_TEST(receive_arms_epollin_on_the_port)
{
    int a, b;
    char x[4];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_log_seams();
    rn_asock_buffer_t rb = {x, 4};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    int i = log_find(LOG_CTL_MOD, a);
    RN_CHECK(i >= 0);
    RN_CHECK(g_log[i].events & EPOLLIN);
    RN_CHECK(g_log[i].events & EPOLLRDHUP);
    RN_CHECK(g_log[i].events & EPOLLONESHOT);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_078 */
RN_TEST(receive_fails_cleanly_on_allocation_or_port_failure)
{
    int a, b;
    char x[4];
    cb_reset();
    use_alloc_seams();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, 4};
    atomic_store(&g_fail_malloc, 1);
    RN_CHECK(rn_asock_receive_async(s, &rb, 1, on_recv, NULL) != 0);
    use_log_seams();
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

/* --- event_complete_callback ---------------------------------------------- */

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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    use_alloc_seams();
    rn_asock_t *s = open_sock(a);
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    finish();
}

/** P10: EAGAIN on a readiness report re-arms the receive without calling
 * back (upstream completed it OK with 0 bytes, which looks like EOF). */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_088 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_089 */
RN_TEST(p10_receive_eagain_rearms_without_callback)
{
    int a, b;
    char x[8];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_recv_seam();
    atomic_store(&g_recv_eagain, 2);
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(write(b, "ab", 2), 2);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK(atomic_load(&g_recv_calls) >= 3); /* two EAGAINs, then data */
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_OK);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 2);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_090 */
RN_TEST(receive_connection_reset_is_abandoned)
{
    int a, b;
    char x[8];
    struct linger lg = {1, 0};
    cb_reset();
    RN_CHECK_EQ(tcp_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_095 */
RN_TEST(receive_other_errors_complete_with_error)
{
    int a, b;
    char x[8];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_recv_seam();
    atomic_store(&g_recv_fail_errno, EIO);
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(write(b, "z", 1), 1);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ERROR);
    atomic_store(&g_recv_fail_errno, 0);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_091 */
RN_TEST(receive_end_of_stream_is_abandoned)
{
    int a, b;
    char x[8];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    shutdown(b, SHUT_WR);
    WAIT_FOR(atomic_load(&g_cb.recv_calls) == 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ABANDONED);
    RN_CHECK_EQ(g_cb.recv_bytes[0], 0);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_093 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_100 */
RN_TEST(completed_operations_free_their_context)
{
    int a, b;
    char x[8];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_alloc_seams();
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
    rn_asock_destroy(s);
    close(b);
    finish();
}

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
    cb_reset();
    for (int i = 0; i < N; i++)
        data[i] = (char)('a' + i % 26);
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_eagain, 1);  /* into the EPOLLOUT path */
    atomic_store(&g_send_max, 100);   /* then 100 bytes ... */
    atomic_store(&g_send_flip, 1);    /* ... and EAGAIN, alternately */
    rn_asock_buffer_t bufs[3] = {{data, 1000}, {data + 1000, 1000},
                                 {data + 2000, 1000}};
    RN_CHECK_EQ(rn_asock_send_async(s, bufs, 3, on_send, NULL),
                RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(read_exact(b, got, N), 0);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_OK);
    RN_CHECK_MEM(got, data, N);
    RN_CHECK(atomic_load(&g_send_calls) >= 60);
    rn_asock_destroy(s);
    close(b);
    finish();
}

/* Tests_SRS_ASYNC_SOCKET_LINUX_11_097 */
/* Tests_SRS_ASYNC_SOCKET_LINUX_11_098 */
RN_TEST(epollout_path_connection_reset_is_abandoned)
{
    static const int errs[] = {ECONNRESET, EPIPE};
    cb_reset();
    for (int k = 0; k < 2; k++) {
        int a, b;
        RN_CHECK_EQ(unix_pair(&a, &b), 0);
        rn_asock_t *s = open_sock(a);
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    use_send_seam();
    atomic_store(&g_send_eagain, 1);
    atomic_store(&g_send_fail_errno, EIO);
    atomic_store(&g_send_fail_at, 1);
    RN_CHECK_EQ(send_str(s, "x", NULL), RN_ASOCK_SEND_SYNC_OK);
    WAIT_FOR(atomic_load(&g_cb.send_calls) == 1);
    RN_CHECK_EQ(g_cb.send_results[0], RN_ASOCK_SEND_ERROR);
    atomic_store(&g_send_fail_at, -1);
    rn_asock_destroy(s);
    close(b);
    finish();
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    use_alloc_seams();
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
    RN_CHECK_EQ(take_slot(a, EPOLLIN, &cb, &ctx), 0);
    cb(ctx, RN_PORT_ERROR);
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 1);
    RN_CHECK_EQ(g_cb.recv_results[0], RN_ASOCK_RECEIVE_ERROR);
    /* A full send buffer keeps the port's worker from firing EPOLLOUT
     * before this thread takes the slot (a writable socket fires at once,
     * and on a loaded machine the worker could win). */
    char chunk[4096] = {0};
    while (send(a, chunk, sizeof(chunk), MSG_DONTWAIT) > 0)
        ;
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

/* --- the reference implementation's bugs (P-numbers) --------------------- */

/** P3: a receive and a send outstanding at once on one socket (full
 * duplex): the send waiting for EPOLLOUT no longer orphans the receive. */
RN_TEST(p3_send_and_receive_outstanding_together)
{
    int a, b;
    char x[8];
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    rn_asock_buffer_t rb = {x, sizeof(x)};
    RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
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
    rn_asock_destroy(s);
    close(b);
    finish();
}

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
    cb_reset();
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

/** P13: pending operations are abandoned at close in the order they were
 * started (per kind), not LIFO. */
RN_TEST(p13_close_abandons_in_start_order)
{
    int a, b;
    char x[3][4];
    int rctx[3] = {10, 11, 12}, sctx[3] = {20, 21, 22};
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
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
    rn_asock_destroy(s);
    close(b);
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
    cb_reset();
    use_alloc_seams();
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
    RN_CHECK_EQ(rn_asock_receive_async(other, &rb, 1, destroy_in_callback,
                                       NULL),
                0);
    RN_CHECK_EQ(write(d, "s", 1), 1);
    WAIT_FOR(atomic_load(&g_self_destroyed) == 1);
    WAIT_FOR(thread_count() == threads);
    WAIT_FOR(atomic_load(&g_allocs) == atomic_load(&g_frees));
    close(b);
    close(d);
    finish();
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
    cb_reset();
    RN_CHECK_EQ(unix_pair(&a, &b), 0);
    rn_asock_t *s = open_sock(a);
    RN_CHECK(s != NULL);
    g_inline_close = s;
    rn_asock_buffer_t sb = {"hi", 2};
    RN_CHECK_EQ(rn_asock_send_async(s, &sb, 1, close_in_send_callback, NULL),
                RN_ASOCK_SEND_SYNC_OK);
    RN_CHECK_EQ(atomic_load(&g_inline_closed), 1);
    RN_CHECK_EQ(rn_asock_fd(s), -1);
    RN_CHECK_EQ(read_exact(b, buf, 2), 0);
    rn_asock_destroy(s);
    close(b);
    finish();
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
        RN_CHECK_EQ(unix_pair(&a, &b), 0);
        fcntl(b, F_SETFL, O_NONBLOCK);
        rn_asock_t *s = open_sock(a);
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

/** P12: connection churn leaves no per-operation record behind. */
RN_TEST(p12_churn_leaves_nothing_behind)
{
    char x[4];
    cb_reset();
    use_alloc_seams();
    for (int i = 0; i < 200; i++) {
        int a, b;
        RN_CHECK_EQ(unix_pair(&a, &b), 0);
        rn_asock_t *s = open_sock(a);
        RN_CHECK(s != NULL);
        rn_asock_buffer_t rb = {x, 4};
        RN_CHECK_EQ(rn_asock_receive_async(s, &rb, 1, on_recv, NULL), 0);
        rn_asock_destroy(s);
        close(b);
    }
    RN_CHECK_EQ(atomic_load(&g_cb.recv_calls), 200);
    rn_port_global_release();
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
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
