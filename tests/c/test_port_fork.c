/*
 * test_port_fork.c: the process-wide completion port and fork
 * (rn_port_get, rn_port_global_release, the fork guards; csrc/rn_port.c).
 *
 * Requirements and conventions as in test_port_create.c: the ids of
 * docs/srs/completion_port_linux.md (99_007, 99_009), P-numbers of the
 * reference implementation's bugs, a real port, faults through the rn_sys
 * seams, hang guards only.  The tests that fork skip under ASan
 * (RN_SKIP_FORK_UNDER_SANITIZERS in rn_test.h).
 */
#include "rn_test.h"
#include "rn_test_port.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* --- fork guards (99_009) ------------------------------------------------ */

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
