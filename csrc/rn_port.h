/*
 * rn_port.h: the completion port (docs/srs/completion_port_linux.md).
 *
 * One epoll instance and one worker thread per process.  A caller arms a
 * callback on the read or the write slot of a file descriptor; the worker
 * calls it once when epoll reports the fd ready (every registration is
 * ONESHOT), or rn_port_remove() calls it with RN_PORT_ABANDONED.
 *
 * Threads and locks: callbacks run on the worker thread, or on the thread
 * calling rn_port_remove() (ABANDONED), and never with any lock of the port
 * held, so a callback may call rn_port_add()/rn_port_remove()/
 * rn_port_dec_ref() on any fd, including its own.  The port never calls
 * Python and never blocks except where documented below.
 *
 * Return contract: functions returning int give 0 or -errno.
 */
#ifndef RN_PORT_H
#define RN_PORT_H

#include <pthread.h>
#include <stdint.h>

typedef struct rn_port rn_port_t;

/* The action a callback is invoked with (upstream order kept). */
typedef enum rn_port_action {
    RN_PORT_EPOLLRDHUP, /* peer shut down writing, nothing left to read */
    RN_PORT_EPOLLIN,    /* readable (data, or EOF/reset to be read) */
    RN_PORT_EPOLLOUT,   /* writable */
    RN_PORT_ABANDONED,  /* rn_port_remove() dropped the armed callback */
    RN_PORT_ERROR,      /* EPOLLERR/EPOLLHUP with neither IN nor OUT */
} rn_port_action_t;

typedef void (*rn_port_cb)(void *context, rn_port_action_t action);

/*
 * Creates a port with one reference, its epoll fd, its eventfd and its
 * worker thread.  Most code wants rn_port_get() (the process singleton).
 * 0 and *out set, or -errno and *out untouched.
 */
int rn_port_create(rn_port_t **out);

/* Adds a reference; NULL is ignored. */
void rn_port_inc_ref(rn_port_t *port);

/*
 * Drops a reference; NULL is ignored.  The last one stops the worker (at
 * once: the eventfd wakes it), joins it, closes the fds and frees the port.
 * Called on the worker itself (from a callback) it detaches instead of
 * joining and the worker frees the port when the callback returns.  Blocks
 * (join) otherwise: never call it holding a lock a callback may need.
 */
void rn_port_dec_ref(rn_port_t *port);

/*
 * Registers fd with epoll (EPOLL_CTL_ADD) with nothing armed, so that later
 * adds are plain MODs.  -EEXIST if fd is already known to the port.
 */
int rn_port_register(rn_port_t *port, int fd);

/*
 * Arms the callback on fd's read slot (events == EPOLLIN, optionally with
 * EPOLLRDHUP) or write slot (events == EPOLLOUT).  EPOLLONESHOT is added by
 * the port.  -EBUSY if that slot already has an armed callback, -ECANCELED
 * if rn_port_remove(fd) is in progress, -ESHUTDOWN once the port is
 * stopping (or was inherited through fork()).  On success the callback may
 * run on the worker before rn_port_add() returns.
 */
int rn_port_add(rn_port_t *port, uint32_t events, int fd, rn_port_cb cb,
                void *context);

/*
 * Forgets fd: EPOLL_CTL_DEL, then waits until no callback of fd runs on
 * another thread, then calls every armed callback of fd with
 * RN_PORT_ABANDONED, in the order they were armed, on this thread.  Call
 * it before close(fd).  Blocks: never call it holding a lock a callback of
 * fd may need.
 */
void rn_port_remove(rn_port_t *port, int fd);

/*
 * Test hook: disarms the callback of one slot (EPOLLIN or EPOLLOUT) of fd
 * and hands it back, as if the worker had picked it, so a unit test can
 * invoke it with an action epoll rarely produces.  0, or -ENOENT.
 */
int rn_port_take(rn_port_t *port, int fd, uint32_t slot, rn_port_cb *cb,
                 void **context);

/* The worker's thread function (public only for unit tests). */
void *rn_port_worker(void *port);

/* --- the process-wide port ----------------------------------------------- */

/*
 * Returns the process's port with a new reference for the caller (created
 * lazily; thread-safe; recreated in a child after fork()).  0 or -errno.
 */
int rn_port_get(rn_port_t **out);

/*
 * Drops the process's own reference: the port is destroyed once the last
 * user also dropped its reference.  A later rn_port_get() creates a new one.
 */
void rn_port_global_release(void);

/*
 * Writes the fds the process's port owns (epoll fd, eventfd) into fds[0..1]
 * and returns how many (0 when there is no port).
 */
int rn_port_global_fds(int fds[2]);

/* --- FIFOs: the async socket's operations, the completions Python drains */

/* An item's link, its first member (so a link is its item). */
typedef struct rn_fifo_link {
    struct rn_fifo_link *next;
} rn_fifo_link_t;

/* A FIFO of items; all zero is empty.  No lock of its own. */
typedef struct rn_fifo {
    rn_fifo_link_t *head, *tail;
} rn_fifo_t;

void rn_fifo_push(rn_fifo_t *fifo, rn_fifo_link_t *item);
/* The oldest item, taken out, or NULL. */
rn_fifo_link_t *rn_fifo_pop(rn_fifo_t *fifo);
/* Takes item out wherever it is; 0, or -ENOENT if it is not there. */
int rn_fifo_unlink(rn_fifo_t *fifo, rn_fifo_link_t *item);

/*
 * A FIFO other threads wait on: its eventfd is readable while it holds
 * items (for poll/epoll).  Every function takes the lock itself; any thread
 * may push.
 */
typedef struct rn_signal_fifo {
    pthread_mutex_t lock;
    rn_fifo_t items; /* guarded by lock */
    int efd;
    int signalled; /* efd written since the last take (guarded by lock) */
} rn_signal_fifo_t;

/* Creates the eventfd (CLOEXEC, non-blocking) and the lock: 0 or -errno. */
int rn_signal_fifo_init(rn_signal_fifo_t *fifo);
/* Waits for a pusher still leaving the lock, then closes the eventfd and
 * destroys the lock.  Items left are the caller's (take them first). */
void rn_signal_fifo_destroy(rn_signal_fifo_t *fifo);
/* Appends item, making the eventfd readable.  Once this returns the item
 * may be taken, and whatever it keeps alive freed, by another thread. */
void rn_signal_fifo_push(rn_signal_fifo_t *fifo, rn_fifo_link_t *item);
/* Takes every item (oldest first, a list ending in NULL; or NULL) and
 * makes the eventfd unreadable. */
rn_fifo_link_t *rn_signal_fifo_take(rn_signal_fifo_t *fifo);
/* Puts a list that take returned back in front, readable again. */
void rn_signal_fifo_put_back(rn_signal_fifo_t *fifo, rn_fifo_link_t *list);
/* Whether it holds items now. */
int rn_signal_fifo_ready(rn_signal_fifo_t *fifo);
/*
 * In a child after fork(), from an rn_fork_guard_t's in_child (the lock is
 * the guard's): the eventfd is the parent's, so a signal written or read
 * here would be one the parent misses or sees twice.  Gives the child its
 * own eventfd under the same number, readable if items are held; without
 * one, the fifo stops signalling (waiters then see only its items).
 * Async-signal-safe.
 */
void rn_signal_fifo_in_child(rn_signal_fifo_t *fifo);

/* --- fork safety of objects with a mutex of their own (99_009) ----------- */

/*
 * An object whose mutex the port's worker (or any thread) may hold.  While
 * a thread forks, every registered guard's lock is held by that thread,
 * taken before the port's own locks (so code holding a guarded lock may
 * call into the port, never the other way round), and released after.  In
 * the child the locks are released by the one thread that exists, never
 * taken, and then in_child (if not NULL) runs, still inside fork(): it may
 * only use async-signal-safe calls and the object's own fields.
 */
typedef struct rn_fork_guard rn_fork_guard_t;
struct rn_fork_guard {
    rn_fork_guard_t *prev, *next; /* the process's list; set by add */
    pthread_mutex_t *lock;
    void (*in_child)(rn_fork_guard_t *guard);
};

/* Registers guard (lock and in_child set by the caller).  Never call it
 * holding a guarded lock. */
void rn_fork_guard_add(rn_fork_guard_t *guard);
/* Unregisters guard; call it before destroying the lock, never holding a
 * guarded lock. */
void rn_fork_guard_remove(rn_fork_guard_t *guard);

#endif /* RN_PORT_H */
