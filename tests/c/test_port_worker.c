/*
 * test_port_worker.c: the completion port's worker thread
 * (epoll_worker_func; csrc/rn_port.c): how it waits, which action each
 * epoll event becomes, and its signal mask and name.
 *
 * Requirements and conventions as in test_port_create.c: the ids of
 * docs/srs/completion_port_linux.md, P-numbers of the reference
 * implementation's bugs, a real port, faults through the rn_sys seams
 * (epoll_wait can be interrupted or have its events rewritten), hang guards
 * only.
 */
#include "rn_test.h"
#include "rn_test_port.h"
#include "rn_test_support.h"
#include "rn_test_threads.h"

#include "rn_sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

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
    release_port_and_pair(port, p);
    rn_sys_reset();
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
            snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
                     de->d_name);
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

/* --- from epoll events to actions ---------------------------------------- */

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
    RN_CHECK_EQ(unix_pair(&sv[0], &sv[1]), 0);
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
    release_port_and_pair(port, sv);
}

/** P3: a pending receive and a pending send on one fd both complete; the
 * second add no longer replaces the first. */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_003 */
RN_TEST(p3_read_and_write_slots_do_not_replace_each_other)
{
    rn_port_t *port = NULL;
    struct rec rd = {0}, wr = {0}, extra = {0};
    int sv[2];
    RN_CHECK_EQ(unix_pair_first_end_full(sv), 0);
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
    release_port_and_pair(port, sv);
}

/** P9: data followed by FIN arrives as IN|RDHUP; the action is IN so the
 * receiver reads the bytes (RDHUP used to win and lose them). */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_004 */
RN_TEST(p9_data_and_fin_map_to_in)
{
    rn_port_t *port = NULL;
    struct rec r = {0};
    int sv[2];
    RN_CHECK_EQ(unix_pair(&sv[0], &sv[1]), 0);
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
    RN_CHECK_EQ(unix_pair(&sv[0], &sv[1]), 0);
    use_wait_log();
    atomic_store(&g_rewrite_events, EPOLLRDHUP);
    atomic_store(&g_rewrite_fd, sv[0]);
    RN_CHECK_EQ(rn_port_create(&port), 0);
    RN_CHECK_EQ(rn_port_add(port, EPOLLIN, sv[0], rec_cb, &r), 0);
    shutdown(sv[1], SHUT_WR);
    WAIT_FOR(atomic_load(&r.calls) == 1);
    RN_CHECK_EQ(atomic_load(&r.action), RN_PORT_EPOLLRDHUP);
    rn_port_remove(port, sv[0]);
    release_port_and_pair(port, sv);
    rn_sys_reset();
}

/** P11: EPOLLERR/EPOLLHUP without IN/OUT is delivered as ERROR to both
 * slots instead of being skipped (which left the record pending forever). */
/* Tests_SRS_COMPLETION_PORT_LINUX_99_004 */
RN_TEST(p11_error_only_event_maps_to_error)
{
    rn_port_t *port = NULL;
    struct rec rd = {0}, wr = {0};
    int sv[2];
    RN_CHECK_EQ(unix_pair_first_end_full(sv), 0);
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
    release_port_and_pair(port, sv);
    rn_sys_reset();
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
    RN_CHECK_EQ(unix_pair(&sv[0], &sv[1]), 0);
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
