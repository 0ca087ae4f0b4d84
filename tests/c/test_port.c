/*
 * test_port.c: unit tests of the completion port (csrc/rn_port.c).
 *
 * Requirements: docs/srs/completion_port_linux.md.  Each test is tagged with
 * the ids it checks (Tests_SRS_...) and, for a bug of the reference
 * implementation that must not come back, the P-number of
 * async-socket-notes section 5.
 *
 * The port is real (real epoll, real worker thread); faults are injected
 * through the rn_sys seams.  Waiting for the worker uses a hang guard
 * (HANG_GUARD_MS), never an assertion about how fast something happened.
 */
#include "rn_test.h"
#include "rn_test_threads.h"

#include "rn_port.h"
#include "rn_sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* --- helpers ------------------------------------------------------------ */

static int
fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* A recorder for port callbacks. */
struct rec {
    atomic_int calls;
    atomic_int action;
    atomic_int abandoned;
    pthread_t thread;
    atomic_int order[8];
    int id;
};

static atomic_int g_order_next;

static void
rec_cb(void *ctx, rn_port_action_t action)
{
    struct rec *r = ctx;
    r->thread = pthread_self();
    atomic_store(&r->action, (int)action);
    if (action == RN_PORT_ABANDONED)
        atomic_fetch_add(&r->abandoned, 1);
    int slot = atomic_fetch_add(&g_order_next, 1);
    if (slot < 8)
        atomic_store(&r->order[0], slot);
    atomic_fetch_add(&r->calls, 1);
}

/* --- seams: allocation counting and failure injection ------------------- */

static atomic_long g_allocs, g_frees;
static atomic_int g_fail_calloc; /* fail the next N-th calloc (1 = next) */

static void *
count_calloc(size_t n, size_t size)
{
    if (atomic_load(&g_fail_calloc) > 0 &&
        atomic_fetch_sub(&g_fail_calloc, 1) == 1) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = calloc(n, size);
    if (p)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static void *
count_malloc(size_t size)
{
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static void *
count_realloc(void *old, size_t size)
{
    void *p = realloc(old, size);
    if (p && old == NULL)
        atomic_fetch_add(&g_allocs, 1);
    return p;
}

static void
count_free(void *p)
{
    if (p)
        atomic_fetch_add(&g_frees, 1);
    free(p);
}

static void
use_counting_allocator(void)
{
    atomic_store(&g_allocs, 0);
    atomic_store(&g_frees, 0);
    rn_sys.calloc = count_calloc;
    rn_sys.malloc = count_malloc;
    rn_sys.realloc = count_realloc;
    rn_sys.free = count_free;
}

/* epoll_ctl log */
struct ctl_call {
    int epfd, op, fd;
    uint32_t events;
};
static struct ctl_call g_ctl[256];
static atomic_int g_nctl;
static atomic_int g_ctl_fail_op = -1; /* op to fail, -1 none */
static atomic_int g_ctl_fail_errno;

static int
log_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    int i = atomic_fetch_add(&g_nctl, 1);
    if (i < 256) {
        g_ctl[i].epfd = epfd;
        g_ctl[i].op = op;
        g_ctl[i].fd = fd;
        g_ctl[i].events = ev ? ev->events : 0;
    }
    if (atomic_load(&g_ctl_fail_op) == op) {
        errno = atomic_load(&g_ctl_fail_errno);
        return -1;
    }
    return epoll_ctl(epfd, op, fd, ev);
}

static void
use_ctl_log(void)
{
    atomic_store(&g_nctl, 0);
    rn_sys.epoll_ctl = log_epoll_ctl;
}

/* epoll_wait: record arguments, optionally rewrite events of one fd. */
static atomic_int g_wait_calls, g_wait_maxevents, g_wait_timeout;
static atomic_int g_wait_eintr; /* fail this many calls with EINTR */
static atomic_int g_rewrite_fd = -1;
static atomic_uint g_rewrite_events;
static atomic_int g_last_wait_result = -2;
static atomic_int g_last_wait_was_wake;

static int
log_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
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

static void
use_wait_log(void)
{
    rn_sys.epoll_wait = log_epoll_wait;
}

static int
fail_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*f)(void *),
                    void *arg)
{
    return EAGAIN;
}

static int
fail_epoll_create1(int flags)
{
    errno = EMFILE;
    return -1;
}

static atomic_int g_create_flags = -1;
static int
log_epoll_create1(int flags)
{
    atomic_store(&g_create_flags, flags);
    return epoll_create1(flags);
}

static atomic_int g_eventfd_flags = -1;
static int
log_eventfd(unsigned int init, int flags)
{
    atomic_store(&g_eventfd_flags, flags);
    return eventfd(init, flags);
}

static int
make_pipe(int p[2])
{
    return pipe2(p, O_CLOEXEC | O_NONBLOCK);
}

/* --- create -------------------------------------------------------------- */

/* Tests_SRS_COMPLETION_PORT_LINUX_11_001 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_002 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_003 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_004 */
RN_TEST(create_returns_port_with_epoll_and_worker)
{
    int threads = thread_count();
    rn_port_t *port = NULL;
    rn_sys.epoll_create1 = log_epoll_create1;
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
    rn_sys.epoll_create1 = fail_epoll_create1;
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
    int probe = dup(0);
    close(probe);
    use_counting_allocator();
    rn_sys.pthread_create = fail_pthread_create;
    RN_CHECK_EQ(rn_port_create(&port), -EAGAIN);
    RN_CHECK(port == NULL);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    /* The epoll fd and the eventfd were closed: the lowest free fd is the
     * same as before. */
    int again = dup(0);
    RN_CHECK_EQ(again, probe);
    close(again);
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_99_001 */
RN_TEST(create_uses_cloexec_epoll_and_eventfd)
{
    rn_port_t *port = NULL;
    int fds[2];
    rn_sys.epoll_create1 = log_epoll_create1;
    rn_sys.eventfd = log_eventfd;
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

/* dec_ref must wait for an in-flight remove (pending_calls). */
struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    int entered;
    int open;
};
#define GATE_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0}

static void
gate_pass(struct gate *g)
{
    pthread_mutex_lock(&g->m);
    g->entered = 1;
    pthread_cond_broadcast(&g->c);
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static int
gate_entered(struct gate *g)
{
    pthread_mutex_lock(&g->m);
    int e = g->entered;
    pthread_mutex_unlock(&g->m);
    return e;
}

static void
gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = 1;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

static struct gate g_gate = GATE_INIT;
static atomic_int g_gate_cb_done;

/* Tests share one process when the binary runs them all. */
static void
gate_reset(void)
{
    g_gate.entered = 0;
    g_gate.open = 0;
    atomic_store(&g_gate_cb_done, 0);
}

static void
gated_cb(void *ctx, rn_port_action_t action)
{
    gate_pass(&g_gate);
    atomic_store(&g_gate_cb_done, 1);
}

struct remove_args {
    rn_port_t *port;
    int fd;
    atomic_int done;
};

static void *
remove_thread(void *arg)
{
    struct remove_args *a = arg;
    rn_port_remove(a->port, a->fd);
    atomic_store(&a->done, 1);
    return NULL;
}

struct decref_args {
    rn_port_t *port;
    atomic_int done;
};

static void *
decref_thread(void *arg)
{
    struct decref_args *a = arg;
    rn_port_dec_ref(a->port);
    atomic_store(&a->done, 1);
    return NULL;
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_011 */
RN_TEST(last_dec_ref_waits_for_pending_calls)
{
    rn_port_t *port = NULL;
    int p[2];
    pthread_t t1, t2;
    gate_reset();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], gated_cb, NULL), 0);
    struct remove_args ra = {port, p[0], 0};
    pthread_create(&t1, NULL, remove_thread, &ra);
    WAIT_FOR(gate_entered(&g_gate)); /* remove is inside the ABANDONED cb */
    struct decref_args da = {port, 0};
    pthread_create(&t2, NULL, decref_thread, &da);
    sleep_ms(50);
    RN_CHECK(!atomic_load(&da.done)); /* still waiting for the remove */
    gate_open(&g_gate);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    RN_CHECK(atomic_load(&g_gate_cb_done));
    RN_CHECK(atomic_load(&da.done));
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

/* --- add ----------------------------------------------------------------- */

/* Tests_SRS_COMPLETION_PORT_LINUX_11_016 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_017 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_018 */
RN_TEST(add_rejects_null_port_bad_fd_null_callback)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK(rn_port_add(NULL, EPOLLIN, p[0], rec_cb, &r) != 0);
    RN_CHECK(rn_port_add(port, EPOLLIN, -1, rec_cb, &r) != 0);
    RN_CHECK(rn_port_add(port, EPOLLIN, p[0], NULL, &r) != 0);
    RN_CHECK(rn_port_add(port, 0, p[0], rec_cb, &r) != 0);
    rn_port_dec_ref(port);
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_019 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_007 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_009 */
RN_TEST(add_fails_once_port_stopped_by_fork)
{
    RN_SKIP_FORK_UNDER_SANITIZERS();
    rn_port_t *port = NULL;
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_get(&port), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct rec r = {0};
        /* The inherited port is stopped: add fails, and the failed add
         * left no pending call behind (dec_ref below would wait forever). */
        int rc = rn_port_add(port, EPOLLIN, p[0], rec_cb, &r);
        rn_port_dec_ref(port);
        _exit(rc == -ESHUTDOWN ? 0 : 1);
    }
    int status = 0;
    RN_CHECK_EQ(waitpid(pid, &status, 0), pid);
    RN_CHECK(WIFEXITED(status));
    RN_CHECK_EQ(WEXITSTATUS(status), 0);
    rn_port_dec_ref(port);
    rn_port_global_release();
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_020 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_025 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_026 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_035 */
RN_TEST(add_succeeds_and_callback_runs_on_worker_with_in)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLIN);
    RN_CHECK(!pthread_equal(r.thread, pthread_self()));
    /* 11_025: no call is left pending, so the last dec_ref returns. */
    rn_port_remove(port, p[0]);
    rn_port_dec_ref(port);
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_021 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_027 */
RN_TEST(add_fails_cleanly_when_record_allocation_fails)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    use_counting_allocator();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    atomic_store(&g_fail_calloc, 1);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), -ENOMEM);
    /* Nothing armed: a later add works and fires once. */
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    rn_port_remove(port, p[0]);
    rn_port_dec_ref(port);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_022 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_023 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_024 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_002 */
RN_TEST(add_does_mod_then_add_on_enoent_always_oneshot)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    use_ctl_log();
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(atomic_load(&g_nctl), 2);
    RN_CHECK_EQ(g_ctl[0].op, EPOLL_CTL_MOD);
    RN_CHECK_EQ(g_ctl[1].op, EPOLL_CTL_ADD);
    RN_CHECK_EQ(g_ctl[1].fd, p[0]);
    RN_CHECK(g_ctl[1].events & EPOLLIN);
    RN_CHECK(g_ctl[1].events & EPOLLONESHOT);
    /* Once known, the next add is a single MOD, ONESHOT again. */
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    atomic_store(&g_nctl, 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    WAIT_FOR(atomic_load(&r.calls) == 2);
    RN_CHECK(atomic_load(&g_nctl) >= 1);
    RN_CHECK_EQ(g_ctl[0].op, EPOLL_CTL_MOD);
    RN_CHECK(g_ctl[0].events & EPOLLONESHOT);
    rn_port_remove(port, p[0]);
    rn_port_dec_ref(port);
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_027 */
RN_TEST(add_fails_when_epoll_ctl_fails_and_arms_nothing)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    use_ctl_log();
    atomic_store(&g_ctl_fail_errno, EPERM);
    atomic_store(&g_ctl_fail_op, EPOLL_CTL_ADD);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), -EPERM);
    atomic_store(&g_ctl_fail_op, -1);
    /* The slot is free again (not -EBUSY). */
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    rn_port_remove(port, p[0]);
    RN_CHECK_EQ(atomic_load(&r.abandoned), 1);
    rn_port_dec_ref(port);
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/* --- remove -------------------------------------------------------------- */

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
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    use_ctl_log();
    rn_port_remove(port, p[0]);
    RN_CHECK_EQ(atomic_load(&g_nctl), 1);
    RN_CHECK_EQ(g_ctl[0].op, EPOLL_CTL_DEL);
    RN_CHECK_EQ(g_ctl[0].fd, p[0]);
    RN_CHECK_EQ(atomic_load(&r.calls), 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_ABANDONED);
    RN_CHECK(pthread_equal(r.thread, pthread_self()));
    /* Removed for good: data arriving later calls nothing. */
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    sleep_ms(20);
    RN_CHECK_EQ(atomic_load(&r.calls), 1);
    rn_port_dec_ref(port);
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_039 */
RN_TEST(remove_waits_for_callback_running_on_worker)
{
    rn_port_t *port = NULL;
    int p[2];
    pthread_t t;
    gate_reset();
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], gated_cb, NULL), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(gate_entered(&g_gate)); /* the worker runs the callback */
    struct remove_args ra = {port, p[0], 0};
    pthread_create(&t, NULL, remove_thread, &ra);
    sleep_ms(50);
    RN_CHECK(!atomic_load(&ra.done));
    gate_open(&g_gate);
    pthread_join(t, NULL);
    RN_CHECK(atomic_load(&g_gate_cb_done));
    rn_port_dec_ref(port);
    close(p[0]);
    close(p[1]);
}

/** P12, P13: remove frees what it abandons and calls the callbacks in the
 * order they were armed (FIFO), not LIFO. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_005 */
RN_TEST(p13_remove_abandons_fifo_and_frees)
{
    rn_port_t *port = NULL;
    struct rec rd = {0}, wr = {0};
    int sv[2];
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* Fill the socket so EPOLLOUT cannot fire. */
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    char buf[4096] = {0};
    while (write(sv[0], buf, sizeof(buf)) > 0) {
    }
    use_counting_allocator();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    atomic_store(&g_order_next, 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLOUT, sv[0], rec_cb, &wr), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &rd), 0);
    rn_port_remove(port, sv[0]);
    RN_CHECK_EQ(atomic_load(&wr.action), RN_PORT_ABANDONED);
    RN_CHECK_EQ(atomic_load(&rd.action), RN_PORT_ABANDONED);
    RN_CHECK_EQ(atomic_load(&wr.order[0]), 0); /* armed first, told first */
    RN_CHECK_EQ(atomic_load(&rd.order[0]), 1);
    /* Churn: the table does not grow records (P12). */
    for (int i = 0; i < 200; i++) {
        RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &rd), 0);
        rn_port_remove(port, sv[0]);
    }
    rn_port_dec_ref(port);
    RN_CHECK_EQ(atomic_load(&g_allocs), atomic_load(&g_frees));
    rn_sys_reset();
    close(sv[0]);
    close(sv[1]);
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
    rn_port_dec_ref(port);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

/* --- worker -------------------------------------------------------------- */

/* Tests_SRS_COMPLETION_PORT_LINUX_11_031 */
RN_TEST(worker_returns_on_null_argument)
{
    RN_CHECK(rn_port_worker(NULL) == NULL);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_032 */
RN_TEST(worker_waits_for_64_events_with_timeout)
{
    rn_port_t *port = NULL;
    use_wait_log();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    WAIT_FOR(atomic_load(&g_wait_calls) >= 1);
    RN_CHECK_EQ(atomic_load(&g_wait_maxevents), 64);
    RN_CHECK_EQ(atomic_load(&g_wait_timeout), 2000);
    rn_port_dec_ref(port);
    rn_sys_reset();
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_033 */
RN_TEST(worker_keeps_going_after_eintr)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int p[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    atomic_store(&g_wait_eintr, 3);
    use_wait_log();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK(atomic_load(&g_wait_calls) >= 4);
    rn_port_remove(port, p[0]);
    rn_port_dec_ref(port);
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_034 */
RN_TEST(worker_processes_every_returned_event)
{
    rn_port_t *port = NULL;
    enum { N = 20 };
    struct rec r[N];
    int p[N][2];
    memset(r, 0, sizeof(r));
    RN_CHECK_EQ(rn_port_create(&port), 0);
    for (int i = 0; i < N; i++) {
        RN_CHECK_EQ(make_pipe(p[i]), 0);
        RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[i][0], rec_cb, &r[i]), 0);
    }
    for (int i = 0; i < N; i++)
        RN_CHECK_EQ(write(p[i][1], "x", 1), 1);
    for (int i = 0; i < N; i++)
        WAIT_FOR(atomic_load(&r[i].calls) == 1);
    for (int i = 0; i < N; i++) {
        rn_port_remove(port, p[i][0]);
        close(p[i][0]);
        close(p[i][1]);
    }
    rn_port_dec_ref(port);
}

/** P4: a level-triggered EPOLLOUT registration would report the same
 * (freed) record on every wait; ONESHOT reports it exactly once. */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_035 */
/* Tests_SRS_COMPLETION_PORT_LINUX_11_036 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_002 */
RN_TEST(p4_writable_fires_once_then_slot_is_free)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int sv[2];
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLOUT, sv[0], rec_cb, &r), 0);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLOUT);
    sleep_ms(50); /* still writable, yet nothing more is reported */
    RN_CHECK_EQ(atomic_load(&r.calls), 1);
    /* 11_036: the record is gone, the slot can be armed again. */
    RN_CHECK_EQ(rn_port_add(port, EPOLLOUT, sv[0], rec_cb, &r), 0);
    WAIT_FOR(atomic_load(&r.calls) == 2);
    rn_port_remove(port, sv[0]);
    rn_port_dec_ref(port);
    close(sv[0]);
    close(sv[1]);
}

/** P3: a pending receive and a pending send on one fd both complete; the
 * second add no longer replaces the first. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_003 */
RN_TEST(p3_read_and_write_slots_do_not_replace_each_other)
{
    rn_port_t *port = NULL;
    struct rec rd = {0}, wr = {0}, extra = {0};
    int sv[2];
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    char buf[4096] = {0};
    while (write(sv[0], buf, sizeof(buf)) > 0) {
    }
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &rd), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLOUT, sv[0], rec_cb, &wr), 0);
    /* One callback per slot: a second one is refused, not swapped in. */
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &extra), -EBUSY);
    RN_CHECK_EQ(write(sv[1], "x", 1), 1); /* readable, still not writable */
    WAIT_FOR(atomic_load(&rd.calls) == 1);
    RN_CHECK_EQ(atomic_load(&rd.action), RN_PORT_EPOLLIN);
    RN_CHECK_EQ(atomic_load(&wr.calls), 0);
    /* Drain the peer: now the write slot fires. */
    char sink[65536];
    while (read(sv[1], sink, sizeof(sink)) == (ssize_t)sizeof(sink)) {
    }
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    while (read(sv[1], sink, sizeof(sink)) > 0) {
    }
    WAIT_FOR(atomic_load(&wr.calls) == 1);
    RN_CHECK_EQ(atomic_load(&wr.action), RN_PORT_EPOLLOUT);
    rn_port_remove(port, sv[0]);
    RN_CHECK_EQ(atomic_load(&extra.calls), 0);
    rn_port_dec_ref(port);
    close(sv[0]);
    close(sv[1]);
}

/** P9: data followed by FIN arrives as IN|RDHUP; the action is IN so the
 * receiver reads the bytes (RDHUP used to win and lose them). */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_004 */
RN_TEST(p9_data_and_fin_map_to_in)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int sv[2];
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    RN_CHECK_EQ(write(sv[1], "abc", 3), 3);
    close(sv[1]);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &r), 0);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLIN);
    rn_port_remove(port, sv[0]);
    rn_port_dec_ref(port);
    close(sv[0]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_11_035 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_004 */
RN_TEST(rdhup_without_in_maps_to_rdhup)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int sv[2];
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    use_wait_log();
    atomic_store(&g_rewrite_events, EPOLLRDHUP);
    atomic_store(&g_rewrite_fd, sv[0]);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &r), 0);
    shutdown(sv[1], SHUT_WR);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLRDHUP);
    rn_port_remove(port, sv[0]);
    rn_port_dec_ref(port);
    rn_sys_reset();
    close(sv[0]);
    close(sv[1]);
}

/** P11: EPOLLERR/EPOLLHUP without IN/OUT is delivered as ERROR to both
 * slots instead of being skipped (which left the record pending forever). */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_004 */
RN_TEST(p11_error_only_event_maps_to_error)
{
    rn_port_t *port = NULL;
    struct rec rd = {0}, wr = {0};
    int sv[2];
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    char buf[4096] = {0};
    while (write(sv[0], buf, sizeof(buf)) > 0) {
    }
    use_wait_log();
    atomic_store(&g_rewrite_events, EPOLLERR | EPOLLHUP);
    atomic_store(&g_rewrite_fd, sv[0]);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &rd), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLOUT, sv[0], rec_cb, &wr), 0);
    RN_CHECK_EQ(write(sv[1], "x", 1), 1); /* makes an event happen */
    WAIT_FOR(atomic_load(&rd.calls) == 1 && atomic_load(&wr.calls) == 1);
    RN_CHECK_EQ(atomic_load(&rd.action), RN_PORT_ERROR);
    RN_CHECK_EQ(atomic_load(&wr.action), RN_PORT_ERROR);
    rn_port_remove(port, sv[0]);
    rn_port_dec_ref(port);
    rn_sys_reset();
    close(sv[0]);
    close(sv[1]);
}

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
    rn_port_dec_ref(port);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

struct self_release {
    rn_port_t *port;
    int fd;
    atomic_int done;
};

static void
self_release_cb(void *ctx, rn_port_action_t action)
{
    struct self_release *sr = ctx;
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
    RN_CHECK_EQ(make_pipe(p), 0);
    use_counting_allocator();
    RN_CHECK_EQ(rn_port_create(&port), 0);
    struct self_release sr = {port, p[0], 0};
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], self_release_cb, &sr), 0);
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&sr.done) == 1);
    WAIT_FOR(thread_count() == threads);
    WAIT_FOR(atomic_load(&g_allocs) == atomic_load(&g_frees));
    rn_sys_reset();
    close(p[0]);
    close(p[1]);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_99_008 */
RN_TEST(worker_blocks_all_signals_and_is_named)
{
    rn_port_t *port = NULL;
    sigset_t before, after;
    pthread_sigmask(SIG_SETMASK, NULL, &before);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    /* The creator's own mask is unchanged. */
    RN_CHECK_EQ(sigismember(&after, SIGINT), sigismember(&before, SIGINT));
    int found = 0;
    DIR *dir = opendir("/proc/self/task");
    struct dirent *de;
    RN_CHECK(dir != NULL);
    for (int tries = 0; tries < 1000 && !found; tries++) {
        rewinddir(dir);
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char path[300], comm[64] = {0};
            snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
            FILE *f = fopen(path, "r");
            if (f == NULL)
                continue;
            if (fgets(comm, sizeof(comm), f) &&
                strncmp(comm, "repynet-epoll", 13) == 0) {
                fclose(f);
                snprintf(path, sizeof(path), "/proc/self/task/%s/status",
                         de->d_name);
                f = fopen(path, "r");
                char line[256];
                while (f && fgets(line, sizeof(line), f)) {
                    if (strncmp(line, "SigBlk:", 7) == 0) {
                        /* Every signal the kernel can block is blocked
                         * (SIGKILL/SIGSTOP cannot be, glibc keeps 32/33). */
                        unsigned long long mask = strtoull(line + 7, NULL, 16);
                        if ((mask & (1ULL << (SIGINT - 1))) &&
                            (mask & (1ULL << (SIGTERM - 1))) &&
                            (mask & (1ULL << (SIGPIPE - 1))) &&
                            (mask & (1ULL << (SIGUSR1 - 1))))
                            found = 1;
                    }
                }
                if (f)
                    fclose(f);
                break;
            }
            fclose(f);
        }
        if (!found)
            sleep_ms(1);
    }
    closedir(dir);
    RN_CHECK(found);
    rn_port_dec_ref(port);
}

/* --- the process-wide port --------------------------------------------- */

static void *
get_port_thread(void *arg)
{
    rn_port_t **out = arg;
    if (rn_port_get(out) != 0)
        *out = NULL;
    return NULL;
}

/** P21: concurrent first use creates exactly one port. */
RN_TEST(p21_concurrent_get_creates_one_port)
{
    enum { N = 8 };
    pthread_t t[N];
    rn_port_t *got[N];
    int threads = thread_count();
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, get_port_thread, &got[i]);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) {
        RN_CHECK(got[i] != NULL);
        RN_CHECK(got[i] == got[0]);
    }
    RN_CHECK_EQ(thread_count(), threads + 1); /* one worker */
    for (int i = 0; i < N; i++)
        rn_port_dec_ref(got[i]);
    rn_port_global_release();
    RN_CHECK_EQ(thread_count(), threads);
}

static atomic_int g_child_epfd_ctl = 0;
static int g_parent_epfd = -1;

static int
child_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (epfd == g_parent_epfd)
        atomic_fetch_add(&g_child_epfd_ctl, 1);
    return epoll_ctl(epfd, op, fd, ev);
}

/* Tests_SRS_COMPLETION_PORT_LINUX_99_009 */
RN_TEST(fork_child_gets_new_port_and_never_touches_parent_epoll)
{
    RN_SKIP_FORK_UNDER_SANITIZERS();
    rn_port_t *port = NULL;
    struct rec r = {0};
    int fds[2], p[2], q[2];
    RN_CHECK_EQ(make_pipe(p), 0);
    RN_CHECK_EQ(make_pipe(q), 0);
    RN_CHECK_EQ(rn_port_get(&port), 0);
    RN_CHECK_EQ(rn_port_global_fds(fds), 2);
    g_parent_epfd = fds[0];
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, p[0], rec_cb, &r), 0);
    pid_t pid = fork();
    if (pid == 0) {
        rn_sys.epoll_ctl = child_epoll_ctl;
        int ok = 1;
        /* The inherited registration is the parent's: removing and closing
         * it here must not edit the parent's epoll instance. */
        rn_port_remove(port, p[0]);
        if (atomic_load(&r.abandoned) != 1)
            ok = 0; /* pending callbacks still complete (ABANDONED) */
        rn_port_dec_ref(port);
        /* (Checked now: the child's new epoll fd may reuse the number.) */
        if (atomic_load(&g_child_epfd_ctl) != 0)
            ok = 0;
        /* A new port for the child, with its own worker. */
        rn_port_t *child = NULL;
        struct rec cr = {0};
        if (rn_port_get(&child) != 0)
            _exit(3);
        if (rn_port_add(child, EPOLLIN, q[0], rec_cb, &cr) != 0)
            _exit(4);
        if (write(q[1], "x", 1) != 1)
            _exit(5);
        for (int i = 0; i < HANG_GUARD_MS && atomic_load(&cr.calls) == 0; i++)
            sleep_ms(1);
        if (atomic_load(&cr.calls) != 1)
            ok = 0;
        rn_port_remove(child, q[0]);
        rn_port_dec_ref(child);
        rn_port_global_release();
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    RN_CHECK_EQ(waitpid(pid, &status, 0), pid);
    RN_CHECK(WIFEXITED(status));
    RN_CHECK_EQ(WEXITSTATUS(status), 0);
    /* The parent's registration survived the child. */
    RN_CHECK_EQ(write(p[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLIN);
    rn_port_remove(port, p[0]);
    rn_port_dec_ref(port);
    rn_port_global_release();
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
}

/** P20: an fd number reused after remove never reaches the old callback
 * (epoll data carries a generation, and remove deletes before close). */
RN_TEST(p20_reused_fd_number_reaches_only_new_callback)
{
    rn_port_t *port = NULL;
    struct rec old = {0}, fresh = {0};
    int p[2], q[2];
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(make_pipe(p), 0);
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
    rn_port_dec_ref(port);
    close(q[0]);
    close(q[1]);
}

/* A receive armed on the worker thread between epoll_wait's harvest and
 * the dispatch of what it harvested, as another thread's arming can be. */
static rn_port_t *g_late_port;
static int g_late_fd = -1;
static struct rec g_late_rd;
static atomic_int g_late_armed;

static int
arm_after_harvest_epoll_wait(int epfd, struct epoll_event *evs, int max,
                             int timeout)
{
    int n = epoll_wait(epfd, evs, max, timeout);
    for (int i = 0; i < n; i++) {
        if ((int)(uint32_t)evs[i].data.u64 != g_late_fd ||
            atomic_exchange(&g_late_armed, 1))
            continue;
        (void)rn_port_add(g_late_port, EPOLLIN, g_late_fd, rec_cb, &g_late_rd);
        /* What the kernel reports for a hung-up fd whose mask lacked IN. */
        evs[i].events = EPOLLHUP;
    }
    return n;
}

/** An event harvested before a slot was armed is not delivered to it: the
 * HUP that once turned into ERROR for a receive armed a moment too late
 * (seen under valgrind) waits for the re-arm's fresh poll instead. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_003 */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_004 */
RN_TEST(event_harvested_before_arming_is_not_delivered_to_the_new_slot)
{
    struct rec wr = {0};
    int sv[2];
    memset(&g_late_rd, 0, sizeof(g_late_rd));
    atomic_store(&g_late_armed, 0);
    RN_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    g_late_fd = sv[0];
    rn_sys.epoll_wait = arm_after_harvest_epoll_wait;
    RN_CHECK_EQ(rn_port_create(&g_late_port), 0);
    /* The socket is writable at once: the harvest that arms the receive. */
    RN_CHECK_EQ(rn_port_add(g_late_port, EPOLLOUT, sv[0], rec_cb, &wr), 0);
    WAIT_FOR(atomic_load(&wr.calls) == 1);
    RN_CHECK_EQ(atomic_load(&g_late_armed), 1);
    usleep(50 * 1000);
    RN_CHECK_EQ(atomic_load(&g_late_rd.calls), 0);
    /* The receive completes with what the socket really says. */
    RN_CHECK_EQ(write(sv[1], "x", 1), 1);
    WAIT_FOR(atomic_load(&g_late_rd.calls) == 1);
    RN_CHECK_EQ(atomic_load(&g_late_rd.action), RN_PORT_EPOLLIN);
    rn_port_remove(g_late_port, sv[0]);
    rn_port_dec_ref(g_late_port);
    rn_sys_reset();
    g_late_fd = -1;
    close(sv[0]);
    close(sv[1]);
}

/* --- fork guards (99_009) ------------------------------------------------- */

struct guarded {
    rn_fork_guard_t guard; /* first */
    pthread_mutex_t lock;
    atomic_int held;
    int in_child_calls;
};

static void
guarded_in_child(rn_fork_guard_t *guard)
{
    ((struct guarded *)guard)->in_child_calls++;
}

/* Holds the guarded lock for a while, as the worker does inside a socket. */
static void *
hold_guarded_lock(void *arg)
{
    struct guarded *g = arg;
    pthread_mutex_lock(&g->lock);
    atomic_store(&g->held, 1);
    sleep_ms(100);
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

/** A fork while another thread holds a guarded mutex waits for it, so the
 * child finds the mutex free (it would be held forever by a thread that
 * does not exist there) and in_child has run. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_009 */
RN_TEST(fork_guard_child_finds_guarded_lock_free)
{
    RN_SKIP_FORK_UNDER_SANITIZERS();
    struct guarded g = {.in_child_calls = 0};
    pthread_t holder;
    pthread_mutex_init(&g.lock, NULL);
    atomic_init(&g.held, 0);
    g.guard.lock = &g.lock;
    g.guard.in_child = guarded_in_child;
    rn_fork_guard_add(&g.guard);
    RN_CHECK_EQ(pthread_create(&holder, NULL, hold_guarded_lock, &g), 0);
    WAIT_FOR(atomic_load(&g.held) == 1);
    pid_t pid = fork();
    if (pid == 0) {
        int free_now = pthread_mutex_trylock(&g.lock) == 0;
        _exit(free_now && g.in_child_calls == 1 ? 0 : 1);
    }
    int status = 0;
    RN_CHECK_EQ(waitpid(pid, &status, 0), pid);
    RN_CHECK(WIFEXITED(status));
    RN_CHECK_EQ(WEXITSTATUS(status), 0);
    pthread_join(holder, NULL);
    /* The parent's lock is usable and in_child never ran here. */
    RN_CHECK_EQ(pthread_mutex_trylock(&g.lock), 0);
    pthread_mutex_unlock(&g.lock);
    RN_CHECK_EQ(g.in_child_calls, 0);
    rn_fork_guard_remove(&g.guard);
    pthread_mutex_destroy(&g.lock);
}
