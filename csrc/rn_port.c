/*
 * rn_port.c: the completion port: one epoll fd, one eventfd, one worker.
 *
 * Requirements: docs/srs/completion_port_linux.md (upstream's
 * SRS_COMPLETION_PORT_LINUX_11_xxx and repynet's accepted amendments
 * 99_001..99_009).  Design: docs/design-core.md.
 *
 * Also here: the FIFOs of completions (rn_fifo_t, and rn_signal_fifo_t
 * whose eventfd is readable while it holds items), which rn_asock.c's
 * operation queues and py_queue.c's completion queue are built on.
 *
 * Registration table.  The port keeps one entry per fd, in an array indexed
 * by fd (no global list).  An entry has a read slot and a write slot, each
 * holding at most one armed callback.  The kernel registration is always
 * EPOLLONESHOT and its mask is the union of the armed slots, so a pending
 * receive and a pending send never replace each other (P3), and a fired
 * registration can never report again until the port re-arms it (P4).
 * epoll_event.data carries (generation << 32 | fd), never a pointer: an
 * event for an fd that was removed, or whose number was reused since, finds
 * a different generation and is dropped (P20).
 *
 * Locking.  port->lock guards the table, the flags and the counters.  The
 * worker picks a slot under the lock, marks it executing, releases the lock
 * and only then calls the callback; rn_port_remove() also calls ABANDONED
 * callbacks after releasing the lock.  So no callback ever runs with a lock
 * of the port held (P1b) and a callback may re-enter the port.
 *
 * Invariants.
 *  - A slot is NONE, ARMED (in the kernel mask) or FIRED (an event picked
 *    it; the worker will run it unless rn_port_remove() abandons it first).
 *  - `executing` is independent of the state: while a callback runs, the
 *    same slot may be armed again (re-arm from inside the callback).
 *  - An entry is freed only by rn_port_remove() (after every callback of
 *    that fd running on another thread has returned) or with the port.
 *    The worker never keeps an entry pointer across an unlock; it looks the
 *    entry up again by fd and generation.
 */
#include "rn_port.h"
#include "rn_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define RN_PORT_MAX_EVENTS 64
/* A safety net only: the eventfd makes a stop immediate (99_001). */
#define RN_PORT_WAIT_MS 2000
#define RN_PORT_WAKE_TOKEN UINT64_MAX
#define RN_PORT_THREAD_NAME "repynet-epoll"

enum { SLOT_NONE, SLOT_ARMED, SLOT_FIRED };
enum { RD = 0, WR = 1 };

struct rn_port_slot {
    rn_port_cb cb;
    void *ctx;
    uint64_t seq;         /* arming order, for FIFO abandonment (99_005) */
    uint64_t armed_round; /* the worker's wait round when it was armed */
    int state;
    bool executing;
    pthread_t exec_thread;
};

struct rn_port_fdent {
    uint32_t gen;
    bool closing; /* rn_port_remove() is in progress */
    struct rn_port_slot slot[2];
};

struct rn_port {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* pending_calls reached 0, a callback returned */
    int epfd;
    int evfd;
    pthread_t worker;
    bool stop;
    bool forked;       /* inherited through fork(): no worker, no epoll */
    bool free_on_exit; /* the last reference was dropped on the worker */
    atomic_int refcount;
    unsigned pending_calls;
    uint32_t next_gen;
    uint64_t next_seq;
    /* Counts the worker's epoll_wait calls.  An event harvested in a round
     * may reflect a mask from before a slot was armed (a HUP reported
     * without IN because IN was not asked for yet); it is not delivered to
     * a slot armed in that round.  The slot stays armed, and the re-arm
     * (EPOLL_CTL_MOD) polls the fd again under the new mask. */
    uint64_t wait_round;
    struct rn_port_fdent **tab;
    size_t tab_len;
};

/* --- table --------------------------------------------------------------- */

static struct rn_port_fdent *
ent_lookup(rn_port_t *port, int fd)
{
    if (fd < 0 || (size_t)fd >= port->tab_len)
        return NULL;
    return port->tab[fd];
}

static struct rn_port_fdent *
ent_lookup_gen(rn_port_t *port, int fd, uint32_t gen)
{
    struct rn_port_fdent *ent = ent_lookup(port, fd);
    return (ent != NULL && ent->gen == gen) ? ent : NULL;
}

/* A new, unarmed entry for fd (the caller checked there is none). */
static int
ent_new(rn_port_t *port, int fd, struct rn_port_fdent **out)
{
    if ((size_t)fd >= port->tab_len) {
        size_t len = port->tab_len ? port->tab_len : 64;
        while (len <= (size_t)fd)
            len *= 2;
        struct rn_port_fdent **tab =
            rn_sys.realloc(port->tab, len * sizeof(*tab));
        if (tab == NULL)
            return -ENOMEM;
        memset(tab + port->tab_len, 0, (len - port->tab_len) * sizeof(*tab));
        port->tab = tab;
        port->tab_len = len;
    }
    struct rn_port_fdent *ent = rn_sys.calloc(1, sizeof(*ent));
    if (ent == NULL)
        return -ENOMEM;
    ent->gen = port->next_gen++;
    /* Generation 0xffffffff with fd -1 would spell the wake token. */
    if (port->next_gen == UINT32_MAX)
        port->next_gen = 1;
    port->tab[fd] = ent;
    *out = ent;
    return 0;
}

static void
ent_drop(rn_port_t *port, int fd)
{
    rn_sys.free(port->tab[fd]);
    port->tab[fd] = NULL;
}

static uint64_t
ent_token(const struct rn_port_fdent *ent, int fd)
{
    return ((uint64_t)ent->gen << 32) | (uint32_t)fd;
}

/*
 * The kernel mask of an entry: the armed slots, always ONESHOT.
 * Codes_SRS_COMPLETION_PORT_LINUX_99_002
 * Codes_SRS_COMPLETION_PORT_LINUX_99_003
 */
static uint32_t
ent_mask(const struct rn_port_fdent *ent)
{
    uint32_t mask = EPOLLONESHOT;
    /* RDHUP only with a receive armed: a half-closed peer must not wake a
     * pending send (it would fire again at once after every re-arm). */
    if (ent->slot[RD].state == SLOT_ARMED)
        mask |= EPOLLIN | EPOLLRDHUP;
    if (ent->slot[WR].state == SLOT_ARMED)
        mask |= EPOLLOUT;
    return mask;
}

/* Loads the entry's mask into the kernel.  0 or -errno.  Lock held. */
static int
ent_arm(rn_port_t *port, int fd, struct rn_port_fdent *ent)
{
    struct epoll_event ev = {.events = ent_mask(ent)};
    ev.data.u64 = ent_token(ent, fd);
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_023 */
    if (rn_sys.epoll_ctl(port->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    int err = errno;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_024 */
    if (err == ENOENT) {
        if (rn_sys.epoll_ctl(port->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
            return 0;
        err = errno;
    }
    return -err;
}

/* --- create / refcount --------------------------------------------------- */

/* Frees a port whose worker is gone (joined, exiting, or never forked in). */
static void
port_free(rn_port_t *port)
{
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_013 */
    if (port->epfd >= 0)
        rn_sys.close(port->epfd);
    if (port->evfd >= 0)
        rn_sys.close(port->evfd);
    /* Entries left behind belong to fds never removed; their callbacks are
     * not called (nobody is left to receive them). */
    for (size_t fd = 0; fd < port->tab_len; fd++)
        rn_sys.free(port->tab[fd]);
    rn_sys.free(port->tab);
    pthread_cond_destroy(&port->cond);
    pthread_mutex_destroy(&port->lock);
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_015 */
    rn_sys.free(port);
}

int
rn_port_create(rn_port_t **out)
{
    sigset_t all, old;
    int rc;

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_001 */
    rn_port_t *port = rn_sys.calloc(1, sizeof(*port));
    if (port == NULL)
        return -ENOMEM;
    port->epfd = -1;
    port->evfd = -1;
    port->next_gen = 1;
    atomic_init(&port->refcount, 1);
    pthread_mutex_init(&port->lock, NULL);
    pthread_cond_init(&port->cond, NULL);

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_002 */
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_001 */
    port->epfd = rn_sys.epoll_create1(EPOLL_CLOEXEC);
    if (port->epfd < 0) {
        rc = -errno;
        goto error;
    }
    port->evfd = rn_sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (port->evfd < 0) {
        rc = -errno;
        goto error;
    }
    /* The wake-up is the port's own level-triggered registration. */
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = RN_PORT_WAKE_TOKEN;
    if (rn_sys.epoll_ctl(port->epfd, EPOLL_CTL_ADD, port->evfd, &ev) < 0) {
        rc = -errno;
        goto error;
    }

    /* Codes_SRS_COMPLETION_PORT_LINUX_99_008 */
    /* The worker inherits the creator's mask: block everything around the
     * create so signals go to the application's (Python's) threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_003 */
    rc = rn_sys.pthread_create(&port->worker, NULL, rn_port_worker, port);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        rc = -rc;
        goto error;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_004 */
    *out = port;
    return 0;

error:
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_005 */
    port_free(port);
    return rc;
}

void
rn_port_inc_ref(rn_port_t *port)
{
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_006 */
    if (port == NULL)
        return;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_007 */
    atomic_fetch_add(&port->refcount, 1);
}

void
rn_port_dec_ref(rn_port_t *port)
{
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_008 */
    if (port == NULL)
        return;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_009 */
    if (atomic_fetch_sub(&port->refcount, 1) != 1)
        return;

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_010 */
    pthread_mutex_lock(&port->lock);
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_012 */
    port->stop = true;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_011 */
    while (port->pending_calls > 0)
        pthread_cond_wait(&port->cond, &port->lock);
    bool forked = port->forked;
    bool on_worker = !forked && pthread_equal(pthread_self(), port->worker);
    if (on_worker)
        port->free_on_exit = true;
    pthread_mutex_unlock(&port->lock);

    if (forked) {
        /* No worker exists in this process (99_009). */
        port_free(port);
        return;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_001 */
    uint64_t one = 1;
    (void)!rn_sys.write(port->evfd, &one, sizeof(one));
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_006 */
    if (on_worker) {
        /* A thread cannot join itself (P2): the worker frees the port
         * once the callback that dropped the reference returns. */
        pthread_detach(port->worker);
        return;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_014 */
    pthread_join(port->worker, NULL);
    port_free(port);
}

/* --- add / register / remove --------------------------------------------- */

static int
slot_of(uint32_t events)
{
    uint32_t in = events & (EPOLLIN | EPOLLRDHUP);
    uint32_t out = events & EPOLLOUT;
    if (in && !out)
        return RD;
    if (out && !in)
        return WR;
    return -1;
}

/* Drops one pending call; wakes a dec_ref waiting for 0.  Lock held. */
static void
pending_done(rn_port_t *port)
{
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_025 */
    if (--port->pending_calls == 0)
        pthread_cond_broadcast(&port->cond);
}

int
rn_port_add(rn_port_t *port, uint32_t events, int fd, rn_port_cb cb,
            void *context)
{
    struct rn_port_fdent *ent;
    bool created = false;
    int rc;

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_016 */
    if (port == NULL)
        return -EINVAL;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_017 */
    if (fd < 0)
        return -EBADF;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_018 */
    if (cb == NULL)
        return -EINVAL;
    int s = slot_of(events);
    if (s < 0)
        return -EINVAL;

    pthread_mutex_lock(&port->lock);
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_020 */
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_007 */
    port->pending_calls++;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_019 */
    if (port->stop) {
        rc = -ESHUTDOWN;
        goto out;
    }
    ent = ent_lookup(port, fd);
    if (ent == NULL) {
        /* Codes_SRS_COMPLETION_PORT_LINUX_11_021 */
        rc = ent_new(port, fd, &ent);
        if (rc < 0)
            goto out;
        created = true;
    }
    if (ent->closing) {
        rc = -ECANCELED;
        goto out;
    }
    struct rn_port_slot *slot = &ent->slot[s];
    if (slot->state != SLOT_NONE) {
        rc = -EBUSY;
        goto out;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_022 */
    slot->cb = cb;
    slot->ctx = context;
    slot->seq = ++port->next_seq;
    slot->armed_round = port->wait_round;
    slot->state = SLOT_ARMED;
    rc = ent_arm(port, fd, ent);
    if (rc < 0) {
        /* Codes_SRS_COMPLETION_PORT_LINUX_11_027 */
        slot->state = SLOT_NONE;
        if (created)
            ent_drop(port, fd);
    }
out:
    pending_done(port);
    pthread_mutex_unlock(&port->lock);
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_026 */
    return rc;
}

int
rn_port_register(rn_port_t *port, int fd)
{
    struct rn_port_fdent *ent;
    int rc;

    if (port == NULL)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    pthread_mutex_lock(&port->lock);
    port->pending_calls++;
    if (port->stop) {
        rc = -ESHUTDOWN;
        goto out;
    }
    if (ent_lookup(port, fd) != NULL) {
        rc = -EEXIST;
        goto out;
    }
    rc = ent_new(port, fd, &ent);
    if (rc < 0)
        goto out;
    /* Nothing armed: ONESHOT with an empty mask can report ERR/HUP at most
     * once, and the dispatcher ignores an event no slot is armed for. */
    struct epoll_event ev = {.events = EPOLLONESHOT};
    ev.data.u64 = ent_token(ent, fd);
    if (rn_sys.epoll_ctl(port->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rc = -errno;
        ent_drop(port, fd);
    }
out:
    pending_done(port);
    pthread_mutex_unlock(&port->lock);
    return rc;
}

struct rn_port_abandon {
    rn_port_cb cb;
    void *ctx;
    uint64_t seq;
};

void
rn_port_remove(rn_port_t *port, int fd)
{
    struct rn_port_abandon ab[2];
    int nab = 0;

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_028 */
    if (port == NULL)
        return;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_029 */
    if (fd < 0)
        return;

    pthread_mutex_lock(&port->lock);
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_007 */
    port->pending_calls++;
    struct rn_port_fdent *ent = ent_lookup(port, fd);
    /* Nothing to do, another remove of fd is running, or the port is
     * being destroyed (its fds are going away anyway). */
    if (ent == NULL || ent->closing || (port->stop && !port->forked))
        goto out;
    ent->closing = true;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_030 */
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_009 */
    if (!port->forked) {
        /* A failure (the fd was closed behind our back) changes nothing:
         * the kernel already forgot it. */
        (void)rn_sys.epoll_ctl(port->epfd, EPOLL_CTL_DEL, fd, NULL);
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_037 */
    for (int s = RD; s <= WR; s++) {
        struct rn_port_slot *slot = &ent->slot[s];
        if (slot->state == SLOT_NONE)
            continue;
        ab[nab].cb = slot->cb;
        ab[nab].ctx = slot->ctx;
        ab[nab].seq = slot->seq;
        nab++;
        slot->state = SLOT_NONE;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_005 */
    if (nab == 2 && ab[1].seq < ab[0].seq) {
        struct rn_port_abandon tmp = ab[0];
        ab[0] = ab[1];
        ab[1] = tmp;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_039 */
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_006 */
    for (;;) {
        bool busy = false;
        for (int s = RD; s <= WR; s++) {
            struct rn_port_slot *slot = &ent->slot[s];
            if (slot->executing &&
                !pthread_equal(slot->exec_thread, pthread_self()))
                busy = true;
        }
        /* After fork() the thread running it does not exist here. */
        if (!busy || port->forked)
            break;
        pthread_cond_wait(&port->cond, &port->lock);
        ent = ent_lookup(port, fd); /* the table may have moved */
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_005 */
    ent_drop(port, fd);
    pthread_mutex_unlock(&port->lock);

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_038 */
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_005 */
    for (int i = 0; i < nab; i++)
        ab[i].cb(ab[i].ctx, RN_PORT_ABANDONED);

    pthread_mutex_lock(&port->lock);
out:
    pending_done(port);
    pthread_mutex_unlock(&port->lock);
}

int
rn_port_take(rn_port_t *port, int fd, uint32_t slot_events, rn_port_cb *cb,
             void **context)
{
    int s = slot_of(slot_events);
    int rc = -ENOENT;
    if (port == NULL || s < 0)
        return -EINVAL;
    pthread_mutex_lock(&port->lock);
    struct rn_port_fdent *ent = ent_lookup(port, fd);
    if (ent != NULL && ent->slot[s].state == SLOT_ARMED) {
        ent->slot[s].state = SLOT_NONE;
        *cb = ent->slot[s].cb;
        *context = ent->slot[s].ctx;
        if (!port->forked)
            (void)ent_arm(port, fd, ent);
        rc = 0;
    }
    pthread_mutex_unlock(&port->lock);
    return rc;
}

/* --- worker -------------------------------------------------------------- */

/* Runs one FIRED slot of (fd, gen) unless remove abandoned it meanwhile. */
static void
run_slot(rn_port_t *port, int fd, uint32_t gen, int s, rn_port_action_t act)
{
    pthread_mutex_lock(&port->lock);
    struct rn_port_fdent *ent = ent_lookup_gen(port, fd, gen);
    if (ent == NULL || ent->slot[s].state != SLOT_FIRED) {
        pthread_mutex_unlock(&port->lock);
        return;
    }
    struct rn_port_slot *slot = &ent->slot[s];
    rn_port_cb cb = slot->cb;
    void *ctx = slot->ctx;
    /* Codes_SRS_COMPLETION_PORT_LINUX_11_036 */
    slot->state = SLOT_NONE;
    slot->executing = true;
    slot->exec_thread = pthread_self();
    pthread_mutex_unlock(&port->lock);

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_035 */
    cb(ctx, act);

    pthread_mutex_lock(&port->lock);
    /* The callback may have removed fd (and the number may be reused). */
    ent = ent_lookup_gen(port, fd, gen);
    if (ent != NULL)
        ent->slot[s].executing = false;
    pthread_cond_broadcast(&port->cond);
    pthread_mutex_unlock(&port->lock);
}

static void
dispatch(rn_port_t *port, uint64_t token, uint32_t events, uint64_t round)
{
    int fd = (int)(uint32_t)token;
    uint32_t gen = (uint32_t)(token >> 32);
    rn_port_action_t act[2] = {RN_PORT_ERROR, RN_PORT_ERROR};
    bool fired[2] = {false, false};

    pthread_mutex_lock(&port->lock);
    struct rn_port_fdent *ent = ent_lookup_gen(port, fd, gen);
    if (ent == NULL) {
        /* Stale: fd was removed (and maybe reused) after epoll queued it. */
        pthread_mutex_unlock(&port->lock);
        return;
    }
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_004 */
    if (ent->slot[RD].state == SLOT_ARMED &&
        ent->slot[RD].armed_round < round &&
        (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
        /* IN wins over RDHUP: the receive reads the last bytes and meets
         * the EOF on its next read (P9). */
        if (events & EPOLLIN)
            act[RD] = RN_PORT_EPOLLIN;
        else if (events & EPOLLRDHUP)
            act[RD] = RN_PORT_EPOLLRDHUP;
        else
            act[RD] = RN_PORT_ERROR; /* P11: never skipped */
        fired[RD] = true;
    }
    if (ent->slot[WR].state == SLOT_ARMED &&
        ent->slot[WR].armed_round < round &&
        (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        act[WR] = (events & EPOLLOUT) ? RN_PORT_EPOLLOUT : RN_PORT_ERROR;
        fired[WR] = true;
    }
    for (int s = RD; s <= WR; s++) {
        if (fired[s])
            ent->slot[s].state = SLOT_FIRED;
    }
    /* Any reported event disabled the ONESHOT registration: re-arm the
     * slots that are still waiting.  Codes_SRS_COMPLETION_PORT_LINUX_99_003 */
    if (ent->slot[RD].state == SLOT_ARMED || ent->slot[WR].state == SLOT_ARMED)
        (void)ent_arm(port, fd, ent);
    pthread_mutex_unlock(&port->lock);

    for (int s = RD; s <= WR; s++) {
        if (fired[s])
            run_slot(port, fd, gen, s, act[s]);
    }
}

static bool
should_stop(rn_port_t *port)
{
    pthread_mutex_lock(&port->lock);
    bool stop = port->stop;
    pthread_mutex_unlock(&port->lock);
    return stop;
}

void *
rn_port_worker(void *arg)
{
    struct epoll_event evs[RN_PORT_MAX_EVENTS];

    /* Codes_SRS_COMPLETION_PORT_LINUX_11_031 */
    if (arg == NULL)
        return NULL;
    rn_port_t *port = arg;
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_008 */
    pthread_setname_np(pthread_self(), RN_PORT_THREAD_NAME);

    for (;;) {
        pthread_mutex_lock(&port->lock);
        uint64_t round = ++port->wait_round;
        pthread_mutex_unlock(&port->lock);
        /* Codes_SRS_COMPLETION_PORT_LINUX_11_032 */
        int n = rn_sys.epoll_wait(port->epfd, evs, RN_PORT_MAX_EVENTS,
                                  RN_PORT_WAIT_MS);
        /* Codes_SRS_COMPLETION_PORT_LINUX_11_033 */
        if (n < 0)
            n = 0; /* EINTR (signals are blocked, but a debugger may
                      interrupt) and the like: look at the flag, wait again */
        /* Codes_SRS_COMPLETION_PORT_LINUX_11_034 */
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == RN_PORT_WAKE_TOKEN) {
                uint64_t count;
                (void)!rn_sys.read(port->evfd, &count, sizeof(count));
                continue;
            }
            /* Once the last reference is gone no fd may be touched. */
            if (should_stop(port))
                break;
            dispatch(port, evs[i].data.u64, evs[i].events, round);
        }
        if (should_stop(port))
            break;
    }

    pthread_mutex_lock(&port->lock);
    bool free_self = port->free_on_exit;
    pthread_mutex_unlock(&port->lock);
    /* Codes_SRS_COMPLETION_PORT_LINUX_99_006 */
    if (free_self)
        port_free(port);
    return NULL;
}

/* --- FIFOs --------------------------------------------------------------- */

void
rn_fifo_push(rn_fifo_t *fifo, rn_fifo_link_t *item)
{
    item->next = NULL;
    if (fifo->tail != NULL)
        fifo->tail->next = item;
    else
        fifo->head = item;
    fifo->tail = item;
}

rn_fifo_link_t *
rn_fifo_pop(rn_fifo_t *fifo)
{
    rn_fifo_link_t *item = fifo->head;
    if (item != NULL) {
        fifo->head = item->next;
        if (fifo->head == NULL)
            fifo->tail = NULL;
        item->next = NULL;
    }
    return item;
}

int
rn_fifo_unlink(rn_fifo_t *fifo, rn_fifo_link_t *item)
{
    rn_fifo_link_t *prev = NULL;
    for (rn_fifo_link_t *it = fifo->head; it != NULL; it = it->next) {
        if (it == item) {
            if (prev != NULL)
                prev->next = item->next;
            else
                fifo->head = item->next;
            if (fifo->tail == item)
                fifo->tail = prev;
            item->next = NULL;
            return 0;
        }
        prev = it;
    }
    return -ENOENT;
}

/* Makes the eventfd readable, once per take.  Locked. */
static void
fifo_signal(rn_signal_fifo_t *fifo)
{
    if (fifo->signalled || fifo->items.head == NULL)
        return;
    uint64_t one = 1;
    (void)!rn_sys.write(fifo->efd, &one, sizeof(one));
    fifo->signalled = 1;
}

int
rn_signal_fifo_init(rn_signal_fifo_t *fifo)
{
    memset(fifo, 0, sizeof(*fifo));
    fifo->efd = rn_sys.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fifo->efd < 0)
        return -errno;
    pthread_mutex_init(&fifo->lock, NULL);
    return 0;
}

void
rn_signal_fifo_destroy(rn_signal_fifo_t *fifo)
{
    /* A pusher may still be inside unlock(): wait for it to leave. */
    pthread_mutex_lock(&fifo->lock);
    pthread_mutex_unlock(&fifo->lock);
    pthread_mutex_destroy(&fifo->lock);
    rn_sys.close(fifo->efd);
    fifo->efd = -1;
}

void
rn_signal_fifo_push(rn_signal_fifo_t *fifo, rn_fifo_link_t *item)
{
    pthread_mutex_lock(&fifo->lock);
    rn_fifo_push(&fifo->items, item);
    /* Signalled under the lock: once it is released, a taker may free
     * the item and what keeps the fifo alive. */
    fifo_signal(fifo);
    pthread_mutex_unlock(&fifo->lock);
}

rn_fifo_link_t *
rn_signal_fifo_take(rn_signal_fifo_t *fifo)
{
    pthread_mutex_lock(&fifo->lock);
    rn_fifo_link_t *list = fifo->items.head;
    fifo->items.head = fifo->items.tail = NULL;
    if (fifo->signalled) {
        uint64_t count;
        (void)!rn_sys.read(fifo->efd, &count, sizeof(count));
        fifo->signalled = 0;
    }
    pthread_mutex_unlock(&fifo->lock);
    return list;
}

void
rn_signal_fifo_put_back(rn_signal_fifo_t *fifo, rn_fifo_link_t *list)
{
    if (list == NULL)
        return;
    rn_fifo_link_t *last = list;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&fifo->lock);
    last->next = fifo->items.head;
    fifo->items.head = list;
    if (fifo->items.tail == NULL)
        fifo->items.tail = last;
    fifo_signal(fifo);
    pthread_mutex_unlock(&fifo->lock);
}

int
rn_signal_fifo_ready(rn_signal_fifo_t *fifo)
{
    pthread_mutex_lock(&fifo->lock);
    int ready = fifo->items.head != NULL;
    pthread_mutex_unlock(&fifo->lock);
    return ready;
}

void
rn_signal_fifo_in_child(rn_signal_fifo_t *fifo)
{
    /* Inside fork(): plain async-signal-safe calls (dup3 has no seam). */
    int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fresh < 0 || dup3(fresh, fifo->efd, O_CLOEXEC) < 0) {
        /* Without a private eventfd the child must not touch the
         * parent's: marked signalled, it is never written again. */
        if (fresh >= 0)
            close(fresh);
        fifo->signalled = 1;
        return;
    }
    close(fresh);
    fifo->signalled = 0;
    fifo_signal(fifo);
}

/* --- the process-wide port (99_009) -------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static rn_port_t *g_port; /* holds one reference */
/* The fork guards (async sockets, completion queues); a leaf lock except
 * in atfork_prepare, which takes the guarded locks under it. */
static pthread_mutex_t g_guards_lock = PTHREAD_MUTEX_INITIALIZER;
static rn_fork_guard_t *g_guards;

static void install_fork_handlers(void);

void
rn_fork_guard_add(rn_fork_guard_t *guard)
{
    pthread_once(&g_once, install_fork_handlers);
    pthread_mutex_lock(&g_guards_lock);
    guard->prev = NULL;
    guard->next = g_guards;
    if (g_guards != NULL)
        g_guards->prev = guard;
    g_guards = guard;
    pthread_mutex_unlock(&g_guards_lock);
}

void
rn_fork_guard_remove(rn_fork_guard_t *guard)
{
    pthread_mutex_lock(&g_guards_lock);
    if (guard->prev != NULL)
        guard->prev->next = guard->next;
    else if (g_guards == guard)
        g_guards = guard->next;
    if (guard->next != NULL)
        guard->next->prev = guard->prev;
    guard->prev = guard->next = NULL;
    pthread_mutex_unlock(&g_guards_lock);
}

/*
 * Before fork(): no thread is inside a guarded object, the table or the
 * singleton, so the child inherits them consistent.  Guarded locks come
 * first: a thread holding one may be waiting for the port's lock.
 */
static void
atfork_prepare(void)
{
    pthread_mutex_lock(&g_guards_lock);
    for (rn_fork_guard_t *guard = g_guards; guard != NULL; guard = guard->next)
        pthread_mutex_lock(guard->lock);
    pthread_mutex_lock(&g_lock);
    if (g_port != NULL)
        pthread_mutex_lock(&g_port->lock);
}

static void
guards_unlock(void)
{
    for (rn_fork_guard_t *guard = g_guards; guard != NULL; guard = guard->next)
        pthread_mutex_unlock(guard->lock);
}

static void
atfork_parent(void)
{
    if (g_port != NULL)
        pthread_mutex_unlock(&g_port->lock);
    pthread_mutex_unlock(&g_lock);
    guards_unlock();
    pthread_mutex_unlock(&g_guards_lock);
}

/*
 * In the child: the worker does not exist and the epoll instance is the
 * parent's (epoll interest is keyed by open file description, so an
 * epoll_ctl here would edit the parent's registrations).  Mark the port
 * dead without any epoll_ctl/epoll_wait, close our copies of its two fds
 * (the parent keeps its own), and let rn_port_get() build a new port.
 * Codes_SRS_COMPLETION_PORT_LINUX_99_009
 */
static void
atfork_child(void)
{
    rn_port_t *port = g_port;
    g_port = NULL;
    if (port != NULL) {
        port->forked = true;
        port->stop = true;
        /* Threads counted here do not exist in the child. */
        port->pending_calls = 0;
        rn_sys.close(port->epfd);
        rn_sys.close(port->evfd);
        port->epfd = -1;
        port->evfd = -1;
        pthread_cond_destroy(&port->cond);
        pthread_cond_init(&port->cond, NULL);
        pthread_mutex_unlock(&port->lock);
    }
    pthread_mutex_unlock(&g_lock);
    /* The forking thread took every guarded lock: it is this thread now. */
    guards_unlock();
    for (rn_fork_guard_t *guard = g_guards; guard != NULL; guard = guard->next)
        if (guard->in_child != NULL)
            guard->in_child(guard);
    pthread_mutex_unlock(&g_guards_lock);
    /* The singleton's reference; sockets inherited from the parent keep
     * theirs and free the dead port with their last destroy. */
    rn_port_dec_ref(port);
}

static void
install_fork_handlers(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

int
rn_port_get(rn_port_t **out)
{
    int rc = 0;
    pthread_once(&g_once, install_fork_handlers);
    pthread_mutex_lock(&g_lock);
    if (g_port == NULL)
        rc = rn_port_create(&g_port);
    if (rc == 0) {
        rn_port_inc_ref(g_port);
        *out = g_port;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

void
rn_port_global_release(void)
{
    pthread_mutex_lock(&g_lock);
    rn_port_t *port = g_port;
    g_port = NULL;
    pthread_mutex_unlock(&g_lock);
    rn_port_dec_ref(port);
}

int
rn_port_global_fds(int fds[2])
{
    int n = 0;
    pthread_mutex_lock(&g_lock);
    if (g_port != NULL) {
        fds[n++] = g_port->epfd;
        fds[n++] = g_port->evfd;
    }
    pthread_mutex_unlock(&g_lock);
    return n;
}
