/*
 * py_v1.c: what the Repy V1 call style (repynet/v1.py, spec section 8)
 * needs from C.
 *
 * - ReadyQueue: listener readiness through the completion port.  A
 *   listener's fd is watched under an int key; arm(key) arms one ONESHOT
 *   EPOLLIN callback on the port, which runs on the port's worker (no
 *   Python there) and appends the key to the queue's FIFO under the
 *   queue's mutex, signalling its condition variable.  get() waits on that
 *   condition with the GIL released, so the Python threads that run V1
 *   callbacks sleep in the kernel until a listener is ready: no selector
 *   thread, no polling.  V1 re-arms a listener only after it accepted (or
 *   read) the work, so pending work waits in the kernel backlog meanwhile;
 *   a re-arm that finds more work waiting reports it at once.
 * - _v1_openconn / _v1_sendmess: V1's optional local IP and port (the
 *   kernel picks them; no connport/messport check for port 0), over the
 *   same checks, counts and charges as the V2 calls.
 * - _v1_recv / _v1_send: V1's blocking socket calls, the V2 method retried
 *   after a poll of the socket's fd together with a per-socket wake-up
 *   eventfd (GIL released); _v1_fileno: a socket's fd (willblock).
 *
 * Locks: a queue's lock is a leaf; rn_port_remove() (which waits for a
 * running callback that takes that lock) is only called without it and
 * without the GIL.
 */
#include "py_v1.h"
#include "_repynet.h"
#include "py_api.h"
#include "py_args.h"
#include "py_errors.h"
#include "py_limits.h"
#include "py_sockets.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* One watched listener fd. */
typedef struct v1_watch {
    rn_fifo_link_t ready_link; /* first (a link is its watch): in ready */
    struct v1_watch *next;     /* the queue's list of watches */
    struct ReadyQueueObject *queue;
    long key;
    int fd;
    int ready;    /* in the ready FIFO */
    int dropping; /* unwatch has begun: arm and find skip it */
} v1_watch;

typedef struct ReadyQueueObject {
    PyObject_HEAD
    rn_port_t *port; /* one reference */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    v1_watch *watches; /* guarded by lock */
    rn_fifo_t ready;   /* guarded by lock */
    int closed;        /* guarded by lock */
} ReadyQueueObject;

/* --- the port's side: any thread, no GIL --------------------------------- */

static void
v1_on_ready(void *context, rn_port_action_t action)
{
    v1_watch *w = context;
    ReadyQueueObject *q = w->queue;
    if (action == RN_PORT_ABANDONED)
        return; /* unwatch is dropping it */
    /* EPOLLIN, RDHUP or ERROR: let accept/recvfrom find out which. */
    pthread_mutex_lock(&q->lock);
    if (!w->ready) {
        w->ready = 1;
        rn_fifo_push(&q->ready, &w->ready_link);
        pthread_cond_signal(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
}

/* Unlinks w from the ready FIFO (lock held). */
static void
v1_unready(ReadyQueueObject *q, v1_watch *w)
{
    if (!w->ready)
        return;
    (void)rn_fifo_unlink(&q->ready, &w->ready_link);
    w->ready = 0;
}

/* --- ReadyQueue (GIL held unless said) ----------------------------------- */

/* The live watch of key, or NULL.  Watches are only freed with the GIL
 * held (drop_watch), so the result stays valid while the caller keeps it. */
static v1_watch *
find_watch(ReadyQueueObject *q, long key)
{
    v1_watch *found = NULL;
    pthread_mutex_lock(&q->lock);
    for (v1_watch *w = q->watches; w != NULL; w = w->next) {
        if (w->key == key && !w->dropping) {
            found = w;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return found;
}

static PyObject *
ready_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {NULL};
    rn_port_t *port = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":ReadyQueue", kwlist))
        return NULL;
    int rc = rn_port_get(&port);
    if (rc < 0)
        return repynet_raise_oserror(NULL, rc);
    ReadyQueueObject *q = (ReadyQueueObject *)type->tp_alloc(type, 0);
    if (q == NULL) {
        Py_BEGIN_ALLOW_THREADS
        rn_port_dec_ref(port);
        Py_END_ALLOW_THREADS
        return NULL;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&q->lock, NULL);
    q->port = port;
    return (PyObject *)q;
}

/* Forgets one watch: its fd leaves the port (a running callback is waited
 * for), then it leaves the lists.  GIL released around the wait. */
static void
drop_watch(ReadyQueueObject *q, v1_watch *w)
{
    rn_port_t *port = q->port;
    int fd = w->fd;
    /* Set with the GIL held: an arm() either finished before (and remove
     * drops its registration) or will not find w. */
    pthread_mutex_lock(&q->lock);
    w->dropping = 1;
    pthread_mutex_unlock(&q->lock);
    Py_BEGIN_ALLOW_THREADS
    rn_port_remove(port, fd);
    pthread_mutex_lock(&q->lock);
    v1_unready(q, w);
    for (v1_watch **link = &q->watches; *link != NULL; link = &(*link)->next) {
        if (*link == w) {
            *link = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    Py_END_ALLOW_THREADS
    free(w);
}

static void
ready_dealloc(ReadyQueueObject *q)
{
    PyTypeObject *type = Py_TYPE(q);
    while (q->watches != NULL)
        drop_watch(q, q->watches);
    rn_port_t *port = q->port;
    Py_BEGIN_ALLOW_THREADS
    rn_port_dec_ref(port);
    Py_END_ALLOW_THREADS
    pthread_cond_destroy(&q->changed);
    pthread_mutex_destroy(&q->lock);
    type->tp_free((PyObject *)q);
    Py_DECREF(type);
}

/* watch(fd, key): starts watching fd under key (not armed yet). */
static PyObject *
ready_watch(ReadyQueueObject *q, PyObject *args)
{
    int fd;
    long key;
    if (!PyArg_ParseTuple(args, "il:watch", &fd, &key))
        return NULL;
    if (fd < 0)
        return repynet_raise_oserror(NULL, EBADF);
    if (find_watch(q, key) != NULL) {
        PyErr_Format(PyExc_ValueError, "key %ld is already watched", key);
        return NULL;
    }
    v1_watch *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return PyErr_NoMemory();
    w->queue = q;
    w->key = key;
    w->fd = fd;
    pthread_mutex_lock(&q->lock);
    w->next = q->watches;
    q->watches = w;
    pthread_mutex_unlock(&q->lock);
    Py_RETURN_NONE;
}

/* arm(key): one readiness report of key's fd will reach the FIFO. */
static PyObject *
ready_arm(ReadyQueueObject *q, PyObject *arg)
{
    long key = PyLong_AsLong(arg);
    if (key == -1 && PyErr_Occurred())
        return NULL;
    v1_watch *w = find_watch(q, key);
    if (w == NULL) {
        PyErr_Format(PyExc_KeyError, "key %ld is not watched", key);
        return NULL;
    }
    /* Work already waiting is reported at once, without a round trip
     * through the port's worker: under load this is the common case. */
    struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
    if (poll(&pfd, 1, 0) == 1) {
        v1_on_ready(w, RN_PORT_EPOLLIN);
        Py_RETURN_NONE;
    }
    /* Non-blocking (the callback may run on the worker at once). */
    int rc = rn_port_add(q->port, EPOLLIN, w->fd, v1_on_ready, w);
    if (rc == -EBUSY)
        Py_RETURN_NONE; /* already armed */
    if (rc < 0)
        return repynet_raise_oserror(NULL, rc);
    Py_RETURN_NONE;
}

/* unwatch(key): forgets key; call it before closing the fd. */
static PyObject *
ready_unwatch(ReadyQueueObject *q, PyObject *arg)
{
    long key = PyLong_AsLong(arg);
    if (key == -1 && PyErr_Occurred())
        return NULL;
    v1_watch *w = find_watch(q, key);
    if (w == NULL)
        Py_RETURN_FALSE;
    drop_watch(q, w);
    Py_RETURN_TRUE;
}

/* get(timeout=None) -> key, or None on timeout or once closed. */
static PyObject *
ready_get(ReadyQueueObject *q, PyObject *args)
{
    PyObject *timeout_obj = Py_None;
    struct timespec deadline;
    int timed = 0, have = 0;
    long key = 0;

    if (!PyArg_ParseTuple(args, "|O:get", &timeout_obj))
        return NULL;
    if (timeout_obj != Py_None) {
        double timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        if (!(timeout >= 0.0) || timeout > 1e9)
            timeout = timeout > 0 ? 1e9 : 0.0;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        double whole = (double)(long)timeout;
        deadline.tv_sec += (time_t)whole;
        deadline.tv_nsec += (long)((timeout - whole) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        timed = 1;
    }
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&q->lock);
    for (;;) {
        v1_watch *w = (v1_watch *)rn_fifo_pop(&q->ready);
        if (w != NULL) {
            w->ready = 0;
            key = w->key;
            have = 1;
            break;
        }
        if (q->closed)
            break;
        if (!timed) {
            pthread_cond_wait(&q->changed, &q->lock);
        }
        else if (pthread_cond_timedwait(&q->changed, &q->lock, &deadline) ==
                 ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    Py_END_ALLOW_THREADS
    if (!have)
        Py_RETURN_NONE;
    return PyLong_FromLong(key);
}

/* close(): every get(), now and later, returns None once the FIFO is empty. */
static PyObject *
ready_close(ReadyQueueObject *q, PyObject *unused)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
    Py_RETURN_NONE;
}

static PyMethodDef ready_methods[] = {
    {"watch", (PyCFunction)ready_watch, METH_VARARGS,
     "watch(fd, key): watch a listener fd under an int key (not armed)."},
    {"arm", (PyCFunction)ready_arm, METH_O,
     "arm(key): report key once when its fd is next readable."},
    {"unwatch", (PyCFunction)ready_unwatch, METH_O,
     "unwatch(key) -> bool: stop watching (before the fd is closed)."},
    {"get", (PyCFunction)ready_get, METH_VARARGS,
     "get(timeout=None) -> key or None: the oldest ready key, waiting with "
     "the GIL released; None on timeout or once closed."},
    {"close", (PyCFunction)ready_close, METH_NOARGS,
     "close(): wake every get(); they return None from now on."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ready_slots[] = {
    {Py_tp_new, ready_new},
    {Py_tp_dealloc, ready_dealloc},
    {Py_tp_methods, ready_methods},
    {Py_tp_doc, "ReadyQueue(): listener readiness from the completion port "
                "(private; repynet.v1)."},
    {0, NULL},
};

static PyType_Spec ready_spec = {
    .name = "repynet._repynet.ReadyQueue",
    .basicsize = sizeof(ReadyQueueObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = ready_slots,
};

/* --- openconn with an optional local port -------------------------------- */

/*
 * The local end of a V1 call: localip None means any address of the
 * destination's family (the kernel picks, no IP check); else the IP check
 * of spec 4.3.  0, or -1 with an exception set.
 */
static int
v1_local_address(repynet_state *state, PyObject *localip, sa_family_t family,
                 rn_addr_t *out)
{
    if (localip == Py_None) {
        rn_addr_any(family, out);
        return 0;
    }
    if (repynet_arg_address(state, localip, "localip", out) < 0)
        return -1;
    return repynet_check_localip(state, out, localip);
}

/*
 * _v1_openconn(text, destip, destport, localip|None, localport, timeout):
 * V1's connect once repynet/v1.py has checked its arguments.  localport 0
 * lets the kernel pick the port and skips the connport check (spec 8).  The
 * outsocket is taken before connecting, as V1 does.
 */
PyObject *
repynet__v1_openconn(PyObject *module, PyObject *args)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *destip, *destport, *localip, *localport, *timeout_arg;
    int text;
    long local_port;
    double timeout;
    rn_tuple_t key;

    if (!PyArg_ParseTuple(args, "pOOOOO:_v1_openconn", &text, &destip,
                          &destport, &localip, &localport, &timeout_arg))
        return NULL;
    memset(&key, 0, sizeof(key));
    if (repynet_arg_address(state, destip, "destip", &key.remote.addr) < 0 ||
        repynet_arg_port(state, destport, "destport", &key.remote.port) < 0 ||
        repynet_arg_long(state, localport, "localport", 0, 65535,
                         &local_port) < 0 ||
        repynet_arg_timeout(state, timeout_arg, &timeout) < 0)
        return NULL;
    key.local.port = (uint16_t)local_port;
    if (v1_local_address(state, localip, key.remote.addr.family,
                         &key.local.addr) < 0)
        return NULL;
    if (local_port != 0 && repynet_check_port(state, 1, key.local.port) < 0)
        return NULL;
    if (repynet_acquire(state, &state->resources->outsockets, "outsockets") <
        0)
        return NULL;
    int fd = repynet_connect_until(state, &key, timeout);
    if (fd < 0) {
        rn_counter_release(&state->resources->outsockets);
        return NULL;
    }
    return repynet_connected_socket(state, fd, text, &key);
}

/*
 * _v1_sendmess(text, destip, destport, message, localip|None) -> int: a
 * datagram from a socket of its own on an ephemeral local port (V1's
 * localport 0), charged as sendmessage is (spec 6.3, D11).
 */
PyObject *
repynet__v1_sendmess(PyObject *module, PyObject *args)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *destip, *destport, *message, *localip;
    int text;
    rn_endpoint_t dest;
    rn_addr_t local;
    Py_buffer view = {.obj = NULL};

    if (!PyArg_ParseTuple(args, "pOOOO:_v1_sendmess", &text, &destip,
                          &destport, &message, &localip))
        return NULL;
    if (repynet_arg_data(state, message, text, &view) < 0)
        return NULL;
    ssize_t sent = -1;
    if (repynet_arg_address(state, destip, "destip", &dest.addr) < 0 ||
        v1_local_address(state, localip, dest.addr.family, &local) < 0 ||
        repynet_arg_port(state, destport, "destport", &dest.port) < 0 ||
        repynet_arg_datagram_size(state, &view) < 0 ||
        repynet_charge_send(state, rn_addr_is_loopback(&dest.addr), 0.0) < 0)
        goto done;
    int fd = rn_udp_bound(&local, 0);
    if (fd < 0) {
        repynet_raise_errno(state, REPYNET_CALL_SENDMESSAGE, fd, "bind");
        goto done;
    }
    sent = repynet_send_datagram(state, fd, &view, &dest, 1);
    close(fd);
done:
    repynet_release_data(&view);
    return sent < 0 ? NULL : PyLong_FromSsize_t(sent);
}

/*
 * Waits, GIL released, until fd has one of events (errors and hang-ups
 * count) or wake_fd is readable; while a CPU is free it spins first, as
 * the V2 waits do (D32: a handler's ping-pong pays no sleep and wake-up).
 * 1: fd is ready; 0: woken (closed locally); -1 with an exception (a
 * signal handler raised, or poll failed).  fd may have been closed and
 * even reused meanwhile: the caller only looks at it again with the GIL
 * held.
 */
static int
v1_poll(repynet_state *state, int fd, short events, int wake_fd)
{
    struct pollfd fds[2] = {
        {.fd = fd, .events = events},
        {.fd = wake_fd, .events = POLLIN},
    };
    for (;;) {
        int spinning = repynet_spin_judge(state);
        PyThreadState *saved = repynet_release(state);
        int rc = repynet_poll_spinning(state, spinning, fds, 2);
        repynet_take(state, saved);
        if (rc >= 0)
            return fds[1].revents != 0 ? 0 : 1;
        if (rc != -EINTR) {
            repynet_raise_oserror(NULL, -rc);
            return -1;
        }
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/*
 * The blocking V1 socket call (spec 8): method(arg) of a TCPSocket, retried
 * after a wait whenever it would block.  wait_first: wait before the first
 * try (a recv usually has to).  Raises SocketClosedLocal once wake_fd is
 * readable (the V1 socket was closed, also during the wait).
 */
static PyObject *
v1_blocking(PyObject *module, PyObject *args, const char *method, short events,
            int wait_first)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *sock, *arg;
    int wake_fd;

    if (!PyArg_ParseTuple(args, "O!Oi", state->tcp_socket_type, &sock, &arg,
                          &wake_fd))
        return NULL;
    PyObject *would_block = state->exceptions[REPYNET_EXC_SOCKET_WOULD_BLOCK];
    for (int must_wait = wait_first;; must_wait = 1) {
        if (must_wait) {
            /* The in-use count keeps the fd from being closed (and its
             * number reused) while the GIL is released in the wait (D32). */
            int fd = repynet_socket_use(sock);
            int ready = fd < 0 ? 0 : v1_poll(state, fd, events, wake_fd);
            repynet_socket_unuse(sock);
            if (ready < 0)
                return NULL;
            if (ready == 0)
                return repynet_raise(state, REPYNET_EXC_SOCKET_CLOSED_LOCAL,
                                     "Socket closed");
        }
        /* The V2 method: its checks, charges and errors, all in C. */
        PyObject *result = PyObject_CallMethod(sock, method, "O", arg);
        if (result != NULL || !PyErr_ExceptionMatches(would_block))
            return result;
        PyErr_Clear();
    }
}

/* _v1_recv(sock, bytes, wake_fd): waits for data first (a V1 recv usually
 * has to), then reads. */
PyObject *
repynet__v1_recv(PyObject *module, PyObject *args)
{
    return v1_blocking(module, args, "recv", POLLIN, 1);
}

/* _v1_send(sock, message, wake_fd): tries at once (a send usually fits),
 * waits only when the socket pushes back. */
PyObject *
repynet__v1_send(PyObject *module, PyObject *args)
{
    return v1_blocking(module, args, "send", POLLOUT, 0);
}

/* _v1_fileno(sock) -> the fd of a repynet socket object (-1 once closed). */
PyObject *
repynet__v1_fileno(PyObject *module, PyObject *obj)
{
    repynet_state *state = repynet_get_state(module);
    PyTypeObject *type = Py_TYPE(obj);
    if (type != state->tcp_socket_type && type != state->tcp_server_type &&
        type != state->udp_server_type) {
        PyErr_Format(PyExc_TypeError, "not a repynet socket: %.100s",
                     type->tp_name);
        return NULL;
    }
    return PyLong_FromLong(((RepynetSocketObject *)obj)->fd);
}

/* _v1_wake_fd() -> a new eventfd (CLOEXEC, non-blocking) for a V1 socket's
 * waiters; os.eventfd is 3.10+ and repynet supports 3.9. */
PyObject *
repynet__v1_wake_fd(PyObject *module, PyObject *unused)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return repynet_raise_oserror(NULL, errno);
    return PyLong_FromLong(fd);
}

/* _v1_wake(fd): makes a wake-up eventfd readable, for good (nobody reads
 * it), so every waiter, now or later, wakes at once. */
PyObject *
repynet__v1_wake(PyObject *module, PyObject *arg)
{
    int fd;
    uint64_t one = 1;
    if (repynet_as_int(arg, &fd) < 0)
        return NULL;
    /* EAGAIN cannot happen: the counter stays far below its maximum. */
    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return repynet_raise_oserror(NULL, errno);
    Py_RETURN_NONE;
}

int
repynet_v1_exec(PyObject *module)
{
    PyTypeObject *type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &ready_spec, NULL);
    if (type == NULL)
        return -1;
    int rc = PyModule_AddObjectRef(module, "ReadyQueue", (PyObject *)type);
    Py_DECREF(type);
    if (rc < 0)
        return -1;
    return 0;
}
