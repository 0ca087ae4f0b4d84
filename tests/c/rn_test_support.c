/*
 * rn_test_support.c: the seam fakes, the gate and the socket helpers that
 * rn_test_support.h declares.
 *
 * Every fake forwards to the real call unless a test's knob says otherwise,
 * so one left installed while the port's worker runs is harmless.
 */
#include "rn_test_support.h"

#include "rn_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

/* --- sockets, pipes and fds ---------------------------------------------- */

int
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
        if (*a >= 0)
            close(*a);
        close(lst);
        return -1;
    }
    *b = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
    close(lst);
    if (*b < 0) {
        close(*a);
        return -1;
    }
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

int
unix_pair(int *a, int *b)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    *a = sv[0];
    *b = sv[1];
    return 0;
}

int
make_pipe(int p[2])
{
    return pipe2(p, O_CLOEXEC | O_NONBLOCK);
}

void
fill_send_buffer(int fd)
{
    char chunk[4096] = {0};
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (write(fd, chunk, sizeof(chunk)) > 0) {
    }
}

int
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

int
fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

int
lowest_free_fd(void)
{
    int fd = dup(0);
    close(fd);
    return fd;
}

/* --- the counting allocator ---------------------------------------------- */

atomic_long g_allocs, g_frees;
atomic_int g_fail_malloc, g_fail_calloc;
atomic_int g_free_clobbers_errno;

/* True on the call a countdown knob (n > 0: the n-th call) points at. */
static int
countdown(atomic_int *knob)
{
    return atomic_load(knob) > 0 && atomic_fetch_sub(knob, 1) == 1;
}

static void *
counting_malloc(size_t n)
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
counting_calloc(size_t n, size_t size)
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
counting_realloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (p && !old)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static void
counting_free(void *p)
{
    if (p)
        atomic_fetch_add(&g_frees, 1);
    free(p);
    if (atomic_load(&g_free_clobbers_errno))
        errno = EIO;
}

void
use_counting_allocator(void)
{
    atomic_store(&g_allocs, 0);
    atomic_store(&g_frees, 0);
    rn_sys.malloc = counting_malloc;
    rn_sys.calloc = counting_calloc;
    rn_sys.realloc = counting_realloc;
    rn_sys.free = counting_free;
}

/* --- the call log -------------------------------------------------------- */

struct logged_call g_log[LOG_MAX];
atomic_int g_nlog;
atomic_int g_ctl_fail_op = -1;
atomic_int g_ctl_fail_errno;

static void
log_call(int call, int fd, uint32_t events)
{
    int i = atomic_fetch_add(&g_nlog, 1);
    if (i < LOG_MAX) {
        g_log[i].call = call;
        g_log[i].fd = fd;
        g_log[i].events = events;
    }
}

int
log_find(int call, int fd)
{
    int n = atomic_load(&g_nlog);
    for (int i = 0; i < n && i < LOG_MAX; i++)
        if (g_log[i].call == call && g_log[i].fd == fd)
            return i;
    return -1;
}

static int
logged_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    log_call(op, fd, ev ? ev->events : 0);
    if (atomic_load(&g_ctl_fail_op) == op) {
        errno = atomic_load(&g_ctl_fail_errno);
        return -1;
    }
    return epoll_ctl(epfd, op, fd, ev);
}

static int
logged_close(int fd)
{
    log_call(LOG_CLOSE, fd, 0);
    return close(fd);
}

void
use_call_log(void)
{
    atomic_store(&g_nlog, 0);
    rn_sys.epoll_ctl = logged_epoll_ctl;
    rn_sys.close = logged_close;
}

/* --- scripted sendmsg ---------------------------------------------------- */

atomic_int g_send_calls;
atomic_int g_send_flags;
atomic_int g_send_eagain;
atomic_int g_send_fail_errno;
atomic_int g_send_fail_at = -1;
atomic_int g_send_max;
atomic_int g_send_flip;
atomic_int g_send_real_eagain;
static atomic_int g_send_flip_state;

/* Sends at most max bytes of msg's buffers. */
static ssize_t
sendmsg_at_most(int fd, const struct msghdr *msg, int flags, size_t max)
{
    struct iovec iov[64];
    size_t n = 0, left = max;
    for (size_t i = 0; i < msg->msg_iovlen && left > 0 && n < 64; i++) {
        iov[n].iov_base = msg->msg_iov[i].iov_base;
        iov[n].iov_len =
            msg->msg_iov[i].iov_len < left ? msg->msg_iov[i].iov_len : left;
        left -= iov[n].iov_len;
        n++;
    }
    struct msghdr m = *msg;
    m.msg_iov = iov;
    m.msg_iovlen = n;
    return sendmsg(fd, &m, flags);
}

static ssize_t
scripted_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    int call = atomic_fetch_add(&g_send_calls, 1);
    atomic_store(&g_send_flags, flags);
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
    if (atomic_load(&g_send_flip) &&
        atomic_fetch_xor(&g_send_flip_state, 1) == 1) {
        errno = EWOULDBLOCK;
        return -1;
    }
    int max = atomic_load(&g_send_max);
    if (max > 0)
        return sendmsg_at_most(fd, msg, flags, (size_t)max);
    ssize_t n = sendmsg(fd, msg, flags);
    if (n < 0 && errno == EAGAIN)
        atomic_fetch_add(&g_send_real_eagain, 1);
    return n;
}

void
use_send_seam(void)
{
    atomic_store(&g_send_calls, 0);
    rn_sys.sendmsg = scripted_sendmsg;
}

ssize_t
gated_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    gate_pass();
    return sendmsg(fd, msg, flags);
}

/* --- scripted recvmsg ---------------------------------------------------- */

atomic_int g_recv_calls;
atomic_int g_recv_eagain;
atomic_int g_recv_fail_errno;

static ssize_t
scripted_recvmsg(int fd, struct msghdr *msg, int flags)
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

void
use_recv_seam(void)
{
    atomic_store(&g_recv_calls, 0);
    rn_sys.recvmsg = scripted_recvmsg;
}

/* --- fcntl --------------------------------------------------------------- */

atomic_int g_fcntl_fail;

int
gated_fcntl(int fd, int cmd, int arg)
{
    gate_pass();
    if (atomic_load(&g_fcntl_fail)) {
        errno = atomic_load(&g_fcntl_fail);
        return -1;
    }
    return fcntl(fd, cmd, arg);
}

/* --- epoll_wait ---------------------------------------------------------- */

atomic_int g_wait_calls, g_wait_maxevents, g_wait_timeout;
atomic_int g_wait_eintr;
atomic_int g_rewrite_fd = -1;
atomic_uint g_rewrite_events;
atomic_int g_last_wait_result = -2;
atomic_int g_last_wait_was_wake;

static int
logged_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    atomic_fetch_add(&g_wait_calls, 1);
    atomic_store(&g_wait_maxevents, max);
    atomic_store(&g_wait_timeout, timeout);
    if (atomic_load(&g_wait_eintr) > 0) {
        atomic_fetch_sub(&g_wait_eintr, 1);
        errno = EINTR;
        return -1;
    }
    int n = epoll_wait(epfd, evs, max, timeout);
    int wake = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.u64 == UINT64_MAX)
            wake = 1;
        else if ((int)(uint32_t)evs[i].data.u64 == atomic_load(&g_rewrite_fd))
            evs[i].events = atomic_load(&g_rewrite_events);
    }
    atomic_store(&g_last_wait_was_wake, wake);
    atomic_store(&g_last_wait_result, n);
    return n;
}

void
use_wait_log(void)
{
    rn_sys.epoll_wait = logged_epoll_wait;
}

/* --- creating the port --------------------------------------------------- */

atomic_int g_create_flags = -1;
atomic_int g_eventfd_flags = -1;

int
logged_epoll_create1(int flags)
{
    atomic_store(&g_create_flags, flags);
    return epoll_create1(flags);
}

int
logged_eventfd(unsigned int init, int flags)
{
    atomic_store(&g_eventfd_flags, flags);
    return eventfd(init, flags);
}

int
emfile_epoll_create1(int flags)
{
    (void)flags;
    errno = EMFILE;
    return -1;
}

int
eagain_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                      void *(*start)(void *), void *arg)
{
    (void)thread;
    (void)attr;
    (void)start;
    (void)arg;
    return EAGAIN;
}

/* --- the gate ------------------------------------------------------------ */

static pthread_mutex_t gate_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_changed = PTHREAD_COND_INITIALIZER;
static int gate_armed, gate_was_entered, gate_is_open;

static void
gate_reset(void)
{
    pthread_mutex_lock(&gate_mutex);
    gate_armed = 0;
    gate_was_entered = 0;
    gate_is_open = 0;
    pthread_mutex_unlock(&gate_mutex);
}

void
gate_arm(void)
{
    pthread_mutex_lock(&gate_mutex);
    gate_was_entered = 0;
    gate_is_open = 0;
    gate_armed = 1;
    pthread_mutex_unlock(&gate_mutex);
}

void
gate_pass(void)
{
    pthread_mutex_lock(&gate_mutex);
    if (gate_armed) {
        gate_armed = 0;
        gate_was_entered = 1;
        pthread_cond_broadcast(&gate_changed);
        while (!gate_is_open)
            pthread_cond_wait(&gate_changed, &gate_mutex);
    }
    pthread_mutex_unlock(&gate_mutex);
}

int
gate_entered(void)
{
    pthread_mutex_lock(&gate_mutex);
    int entered = gate_was_entered;
    pthread_mutex_unlock(&gate_mutex);
    return entered;
}

void
gate_open(void)
{
    pthread_mutex_lock(&gate_mutex);
    gate_is_open = 1;
    pthread_cond_broadcast(&gate_changed);
    pthread_mutex_unlock(&gate_mutex);
}

/* --- all of it ----------------------------------------------------------- */

void
test_support_reset(void)
{
    rn_sys_reset();
    atomic_store(&g_fail_malloc, 0);
    atomic_store(&g_fail_calloc, 0);
    atomic_store(&g_free_clobbers_errno, 0);
    atomic_store(&g_nlog, 0);
    atomic_store(&g_ctl_fail_op, -1);
    atomic_store(&g_ctl_fail_errno, 0);
    atomic_store(&g_send_calls, 0);
    atomic_store(&g_send_flags, 0);
    atomic_store(&g_send_eagain, 0);
    atomic_store(&g_send_fail_errno, 0);
    atomic_store(&g_send_fail_at, -1);
    atomic_store(&g_send_max, 0);
    atomic_store(&g_send_flip, 0);
    atomic_store(&g_send_flip_state, 0);
    atomic_store(&g_send_real_eagain, 0);
    atomic_store(&g_recv_calls, 0);
    atomic_store(&g_recv_eagain, 0);
    atomic_store(&g_recv_fail_errno, 0);
    atomic_store(&g_fcntl_fail, 0);
    atomic_store(&g_wait_calls, 0);
    atomic_store(&g_wait_maxevents, 0);
    atomic_store(&g_wait_timeout, 0);
    atomic_store(&g_wait_eintr, 0);
    atomic_store(&g_rewrite_fd, -1);
    atomic_store(&g_rewrite_events, 0);
    atomic_store(&g_last_wait_result, -2);
    atomic_store(&g_last_wait_was_wake, 0);
    atomic_store(&g_create_flags, -1);
    atomic_store(&g_eventfd_flags, -1);
    gate_reset();
}
