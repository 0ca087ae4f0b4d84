/*
 * py_queue.c: the private CompletionQueue and AsyncSocket types, the
 * Python face of the completion port and async socket (rn_port.c,
 * rn_asock.c).  Design: docs/design-core.md, "Python exposure".
 *
 * Rule one: the port's worker never runs Python code.  The C completion
 * callbacks below (pyq_on_send/pyq_on_receive) run on the worker, or inline
 * on a thread that may not hold the GIL (close with the GIL released); they
 * only fill in a C record and push it into the queue's rn_signal_fifo_t
 * (rn_port.h), whose eventfd is readable while records wait.
 * drain() runs on a Python thread with the GIL, and only it releases the
 * Py_buffer export, the token and the socket reference of an operation.
 *
 * Lifetimes: an operation holds strong references to its queue, its token
 * and (through the Py_buffer export) its buffer, never to its socket: a
 * socket object nobody references any more is deallocated even with
 * operations pending, and its deallocation closes it, which completes them
 * ABANDONED into the queue (destroy waits for callbacks running on the
 * worker, so C never points into a freed socket).  Completed records sitting
 * in a queue, the queue itself included, are visible to the GC through the
 * queue's traverse.
 *
 * Locks: the fifo's lock is a leaf (nothing is called while holding it
 * except the eventfd's read/write).  Never waited on with the GIL held for
 * long.  Errors raise OSError with their errno (repynet_raise_oserror).
 */
#include "py_queue.h"
#include "_repynet.h"
#include "py_errors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#if PY_VERSION_HEX >= 0x030D0000
#define PYQ_FINALIZING() Py_IsFinalizing()
#else
#define PYQ_FINALIZING() _Py_IsFinalizing()
#endif

typedef struct CompletionQueueObject CompletionQueueObject;
typedef struct AsyncSocketObject AsyncSocketObject;

/* One operation, from send_async/receive_async until drain() delivers it. */
typedef struct pyq_op {
    rn_fifo_link_t link;          /* first (a link is its op): in done */
    CompletionQueueObject *queue; /* strong */
    PyObject *token;              /* strong */
    Py_buffer view;               /* export held until delivered */
    int result;
    uint32_t nbytes;
} pyq_op;

struct CompletionQueueObject {
    PyObject_HEAD
    rn_fork_guard_t fork_guard;
    rn_signal_fifo_t done; /* completed, not yet drained */
};

struct AsyncSocketObject {
    PyObject_HEAD
    rn_asock_t *sock;
    CompletionQueueObject *queue; /* strong */
    /* The module's list of live sockets, closed at exit. */
    AsyncSocketObject *live_prev;
    AsyncSocketObject *live_next;
    repynet_state *state;
};

/* --- C side: runs on any thread, no GIL ---------------------------------- */

/* Completed: into its queue, whose eventfd becomes readable.  The op
 * must not be touched after this. */
static void
pyq_push(pyq_op *op)
{
    rn_signal_fifo_push(&op->queue->done, &op->link);
}

static void
pyq_on_send(void *context, rn_asock_send_result_t result)
{
    pyq_op *op = context;
    op->result = (int)result;
    op->nbytes = result == RN_ASOCK_SEND_OK ? (uint32_t)op->view.len : 0;
    pyq_push(op);
}

static void
pyq_on_receive(void *context, rn_asock_receive_result_t result, uint32_t n)
{
    pyq_op *op = context;
    op->result = (int)result;
    op->nbytes = n;
    pyq_push(op);
}

/* --- Python side (GIL held) ---------------------------------------------- */

/* Drops an operation's Python references and frees it. */
static void
pyq_op_release(pyq_op *op)
{
    if (PYQ_FINALIZING()) {
        /* Late completion while the interpreter is going away: leak the
         * references rather than run deallocators now. */
        free(op);
        return;
    }
    if (op->view.obj != NULL)
        PyBuffer_Release(&op->view);
    Py_XDECREF(op->token);
    Py_XDECREF((PyObject *)op->queue);
    free(op);
}

/* The next record of a list rn_signal_fifo_take returned. */
static pyq_op *
pyq_next(pyq_op *op)
{
    return (pyq_op *)op->link.next;
}

/* In a child after fork(), inside fork(): see rn_signal_fifo_in_child. */
static void
queue_in_child(rn_fork_guard_t *guard)
{
    CompletionQueueObject *q =
        (CompletionQueueObject *)((char *)guard -
                                  offsetof(CompletionQueueObject, fork_guard));
    rn_signal_fifo_in_child(&q->done);
}

static PyObject *
queue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":CompletionQueue", kwlist))
        return NULL;
    repynet_state *state = repynet_state_from_type(type);
    if (state == NULL)
        return NULL;
    CompletionQueueObject *q =
        (CompletionQueueObject *)type->tp_alloc(type, 0);
    if (q == NULL)
        return NULL;
    int rc = rn_signal_fifo_init(&q->done);
    if (rc < 0) {
        /* Not counted live yet: freed without the dealloc. */
        PyObject_GC_UnTrack(q);
        type->tp_free((PyObject *)q);
        Py_DECREF(type);
        return repynet_raise_oserror(NULL, rc);
    }
    q->fork_guard.lock = &q->done.lock;
    q->fork_guard.in_child = queue_in_child;
    rn_fork_guard_add(&q->fork_guard);
    state->live[REPYNET_LIVE_COMPLETION_QUEUE]++;
    return (PyObject *)q;
}

static int
queue_traverse(CompletionQueueObject *q, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(q));
    pthread_mutex_lock(&q->done.lock);
    for (pyq_op *op = (pyq_op *)q->done.items.head; op != NULL;
         op = pyq_next(op)) {
        int rc = 0;
        if (op->token != NULL)
            rc = visit(op->token, arg);
        if (rc == 0 && op->queue != NULL)
            rc = visit((PyObject *)op->queue, arg);
        if (rc == 0 && op->view.obj != NULL)
            rc = visit(op->view.obj, arg);
        if (rc != 0) {
            pthread_mutex_unlock(&q->done.lock);
            return rc;
        }
    }
    pthread_mutex_unlock(&q->done.lock);
    return 0;
}

static int
queue_clear(CompletionQueueObject *q)
{
    pyq_op *list = (pyq_op *)rn_signal_fifo_take(&q->done);
    while (list != NULL) {
        pyq_op *next = pyq_next(list);
        pyq_op_release(list);
        list = next;
    }
    return 0;
}

static void
queue_dealloc(CompletionQueueObject *q)
{
    PyTypeObject *type = Py_TYPE(q);
    repynet_state *state = repynet_state_from_type(type);
    PyObject_GC_UnTrack(q);
    queue_clear(q);
    rn_fork_guard_remove(&q->fork_guard);
    rn_signal_fifo_destroy(&q->done);
    if (state != NULL)
        state->live[REPYNET_LIVE_COMPLETION_QUEUE]--;
    else
        PyErr_Clear();
    type->tp_free((PyObject *)q);
    Py_DECREF(type);
}

static PyObject *
queue_fileno(CompletionQueueObject *q, PyObject *unused)
{
    return PyLong_FromLong(q->done.efd);
}

/* drain() -> [(token, result, nbytes), ...] in completion order. */
static PyObject *
queue_drain(CompletionQueueObject *q, PyObject *unused)
{
    pyq_op *list = (pyq_op *)rn_signal_fifo_take(&q->done);
    Py_ssize_t n = 0;
    for (pyq_op *op = list; op != NULL; op = pyq_next(op))
        n++;
    PyObject *result = PyList_New(n);
    if (result == NULL) {
        rn_signal_fifo_put_back(&q->done, (rn_fifo_link_t *)list);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        pyq_op *op = list;
        PyObject *item = Py_BuildValue("(Oik)", op->token, op->result,
                                       (unsigned long)op->nbytes);
        if (item == NULL) {
            /* Keep what was not delivered for the next drain. */
            rn_signal_fifo_put_back(&q->done, (rn_fifo_link_t *)list);
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, item);
        list = pyq_next(op);
        pyq_op_release(op);
    }
    return result;
}

/* wait(timeout=None) -> bool: True once a completion is ready. */
static PyObject *
queue_wait(CompletionQueueObject *q, PyObject *args)
{
    PyObject *timeout_obj = Py_None;
    double timeout = -1.0;
    struct timespec start, now;

    if (!PyArg_ParseTuple(args, "|O:wait", &timeout_obj))
        return NULL;
    if (timeout_obj != Py_None) {
        timeout = PyFloat_AsDouble(timeout_obj);
        if (timeout == -1.0 && PyErr_Occurred())
            return NULL;
        /* NaN compares false with everything: it would never time out. */
        if (isnan(timeout)) {
            PyErr_SetString(PyExc_ValueError,
                            "wait() timeout must not be NaN");
            return NULL;
        }
        /* As threading.Event.wait: a negative timeout polls once, an
         * infinite one waits like None. */
        if (timeout < 0)
            timeout = 0;
        else if (isinf(timeout))
            timeout = -1.0;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (rn_signal_fifo_ready(&q->done))
            Py_RETURN_TRUE;
        int ms = -1;
        if (timeout >= 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            double left =
                timeout - ((double)(now.tv_sec - start.tv_sec) +
                           (double)(now.tv_nsec - start.tv_nsec) / 1e9);
            if (left <= 0)
                Py_RETURN_FALSE;
            ms = left > 2e9 / 1000 ? 2000000000 : (int)(left * 1000) + 1;
        }
        struct pollfd pfd = {.fd = q->done.efd, .events = POLLIN};
        int rc, err = 0;
        Py_BEGIN_ALLOW_THREADS
        rc = poll(&pfd, 1, ms);
        if (rc < 0)
            err = errno;
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            if (err != EINTR)
                return repynet_raise_oserror(NULL, err);
            if (PyErr_CheckSignals() < 0)
                return NULL;
        }
    }
}

static PyMethodDef queue_methods[] = {
    {"fileno", (PyCFunction)queue_fileno, METH_NOARGS,
     "The queue's eventfd: readable while completions wait (for "
     "loop.add_reader)."},
    {"drain", (PyCFunction)queue_drain, METH_NOARGS,
     "drain() -> [(token, result, nbytes), ...], oldest first.  result is "
     "ASYNC_RESULT_OK, _ERROR or _ABANDONED; releases the operations' "
     "buffers."},
    {"wait", (PyCFunction)queue_wait, METH_VARARGS,
     "wait(timeout=None) -> bool: block (GIL released) until a completion is "
     "ready; False on timeout.  A negative timeout polls once, inf waits like "
     "None, NaN raises ValueError."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot queue_slots[] = {
    {Py_tp_new, queue_new},
    {Py_tp_dealloc, queue_dealloc},
    {Py_tp_traverse, queue_traverse},
    {Py_tp_clear, queue_clear},
    {Py_tp_methods, queue_methods},
    {Py_tp_doc, "CompletionQueue(): where AsyncSocket operations complete "
                "(private)."},
    {0, NULL},
};

static PyType_Spec queue_spec = {
    .name = "repynet._repynet.CompletionQueue",
    .basicsize = sizeof(CompletionQueueObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = queue_slots,
};

/* --- AsyncSocket --------------------------------------------------------- */

static void
live_link(repynet_state *state, AsyncSocketObject *s)
{
    AsyncSocketObject *head = state->async_sockets;
    s->live_prev = NULL;
    s->live_next = head;
    if (head != NULL)
        head->live_prev = s;
    state->async_sockets = s;
}

static void
live_unlink(repynet_state *state, AsyncSocketObject *s)
{
    if (s->live_prev != NULL)
        s->live_prev->live_next = s->live_next;
    else if (state->async_sockets == s)
        state->async_sockets = s->live_next;
    if (s->live_next != NULL)
        s->live_next->live_prev = s->live_prev;
    s->live_prev = s->live_next = NULL;
}

static void
asock_opened(void *context, rn_asock_open_result_t result)
{
    /* open is synchronous: its return value says everything. */
}

/* AsyncSocket(fd, queue): takes ownership of fd (also on failure). */
static PyObject *
asock_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fd", "queue", NULL};
    int fd, rc;
    PyObject *queue;
    rn_asock_t *sock = NULL;

    repynet_state *state = repynet_state_from_type(type);
    if (state == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO!:AsyncSocket", kwlist,
                                     &fd, state->completion_queue_type,
                                     &queue))
        return NULL;
    if (fd < 0)
        return repynet_raise_oserror(NULL, EBADF);
    rc = rn_asock_create(NULL, fd, &sock);
    if (rc < 0) {
        close(fd);
        goto error;
    }
    rc = rn_asock_open_async(sock, asock_opened, NULL);
    if (rc < 0) {
        Py_BEGIN_ALLOW_THREADS
        rn_asock_destroy(sock); /* closes fd */
        Py_END_ALLOW_THREADS
        goto error;
    }
    AsyncSocketObject *s = (AsyncSocketObject *)type->tp_alloc(type, 0);
    if (s == NULL) {
        Py_BEGIN_ALLOW_THREADS
        rn_asock_destroy(sock);
        Py_END_ALLOW_THREADS
        return NULL;
    }
    s->sock = sock;
    s->queue = (CompletionQueueObject *)Py_NewRef(queue);
    s->state = state;
    live_link(state, s);
    state->live[REPYNET_LIVE_ASYNC_SOCKET]++;
    return (PyObject *)s;

error:
    return repynet_raise_oserror(NULL, rc);
}

static int
asock_traverse(AsyncSocketObject *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->queue);
    return 0;
}

static void
asock_dealloc(AsyncSocketObject *s)
{
    PyTypeObject *type = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    live_unlink(s->state, s);
    if (s->sock != NULL) {
        rn_asock_t *sock = s->sock;
        s->sock = NULL;
        /* Closing completes what is pending ABANDONED into the queue,
         * which each operation keeps alive; destroy may join the worker if
         * it drops the last port reference, so never with the GIL. */
        Py_BEGIN_ALLOW_THREADS
        rn_asock_destroy(sock);
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(s->queue);
    s->state->live[REPYNET_LIVE_ASYNC_SOCKET]--;
    type->tp_free((PyObject *)s);
    Py_DECREF(type);
}

static pyq_op *
pyq_op_new(AsyncSocketObject *s, PyObject *token)
{
    pyq_op *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    op->queue = (CompletionQueueObject *)Py_NewRef((PyObject *)s->queue);
    op->token = Py_NewRef(token);
    return op;
}

static int
check_length(Py_ssize_t len)
{
    if (len == 0) {
        PyErr_SetString(PyExc_ValueError, "empty buffer");
        return -1;
    }
    if ((uint64_t)len > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError,
                        "buffer larger than 4 GiB - 1 (uint32_t lengths)");
        return -1;
    }
    return 0;
}

/* send_async(data, token): the completion (token, result, len) is queued. */
static PyObject *
asock_send_async(AsyncSocketObject *s, PyObject *args)
{
    PyObject *data, *token;
    if (!PyArg_ParseTuple(args, "OO:send_async", &data, &token))
        return NULL;
    pyq_op *op = pyq_op_new(s, token);
    if (op == NULL)
        return NULL;
    if (PyObject_GetBuffer(data, &op->view, PyBUF_SIMPLE) < 0 ||
        check_length(op->view.len) < 0) {
        pyq_op_release(op);
        return NULL;
    }
    /* Non-blocking: no GIL release (it would cost more than the call).
     * The callback may run (inline) before this returns. */
    rn_asock_buffer_t buf = {op->view.buf, (uint32_t)op->view.len};
    int rc = rn_asock_send(s->sock, &buf, 1, pyq_on_send, op);
    if (rc == 0)
        Py_RETURN_NONE;
    pyq_op_release(op);
    /* ABANDONED (closed, or the connection gone) is ConnectionAbortedError
     * whatever its errno says. */
    PyObject *cls = rn_asock_send_refusal(rc) == RN_ASOCK_SEND_SYNC_ABANDONED
                        ? PyExc_ConnectionAbortedError
                        : NULL;
    return repynet_raise_oserror(cls, rc);
}

/*
 * receive_async(nbytes_or_buffer, token) -> the buffer read into (a new
 * bytearray for a size).  The completion (token, result, nbytes) is queued.
 */
static PyObject *
asock_receive_async(AsyncSocketObject *s, PyObject *args)
{
    PyObject *what, *token, *target;
    if (!PyArg_ParseTuple(args, "OO:receive_async", &what, &token))
        return NULL;
    if (PyLong_Check(what)) {
        Py_ssize_t n = PyLong_AsSsize_t(what);
        if (n == -1 && PyErr_Occurred())
            return NULL;
        if (n < 0) {
            PyErr_SetString(PyExc_ValueError, "negative size");
            return NULL;
        }
        if (check_length(n) < 0)
            return NULL;
        target = PyByteArray_FromStringAndSize(NULL, n);
        if (target == NULL)
            return NULL;
    }
    else {
        target = Py_NewRef(what);
    }
    pyq_op *op = pyq_op_new(s, token);
    if (op == NULL) {
        Py_DECREF(target);
        return NULL;
    }
    if (PyObject_GetBuffer(target, &op->view, PyBUF_WRITABLE) < 0 ||
        check_length(op->view.len) < 0) {
        pyq_op_release(op);
        Py_DECREF(target);
        return NULL;
    }
    rn_asock_buffer_t buf = {op->view.buf, (uint32_t)op->view.len};
    int rc = rn_asock_receive_async(s->sock, &buf, 1, pyq_on_receive, op);
    if (rc < 0) {
        pyq_op_release(op);
        Py_DECREF(target);
        return repynet_raise_oserror(NULL, rc);
    }
    return target;
}

/* close(): pending operations complete ABANDONED (queued); GIL released. */
static PyObject *
asock_close(AsyncSocketObject *s, PyObject *unused)
{
    rn_asock_t *sock = s->sock;
    Py_BEGIN_ALLOW_THREADS
    rn_asock_close(sock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
asock_fileno(AsyncSocketObject *s, PyObject *unused)
{
    return PyLong_FromLong(rn_asock_fd(s->sock));
}

static PyObject *
asock_get_queue(AsyncSocketObject *s, void *closure)
{
    return Py_NewRef((PyObject *)s->queue);
}

static PyMethodDef asock_methods[] = {
    {"send_async", (PyCFunction)asock_send_async, METH_VARARGS,
     "send_async(data, token): queue a send of a bytes-like object."},
    {"receive_async", (PyCFunction)asock_receive_async, METH_VARARGS,
     "receive_async(nbytes_or_buffer, token) -> buffer: queue a receive."},
    {"close", (PyCFunction)asock_close, METH_NOARGS,
     "close(): pending operations complete with ASYNC_RESULT_ABANDONED."},
    {"fileno", (PyCFunction)asock_fileno, METH_NOARGS,
     "The socket's fd, or -1 once closed."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef asock_getset[] = {
    {"queue", (getter)asock_get_queue, NULL, "The CompletionQueue.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot asock_slots[] = {
    {Py_tp_new, asock_new},
    {Py_tp_dealloc, asock_dealloc},
    {Py_tp_traverse, asock_traverse},
    {Py_tp_methods, asock_methods},
    {Py_tp_getset, asock_getset},
    {Py_tp_doc, "AsyncSocket(fd, queue): an epoll-driven socket that owns fd "
                "(pass sock.detach()) and completes into queue (private)."},
    {0, NULL},
};

static PyType_Spec asock_spec = {
    .name = "repynet._repynet.AsyncSocket",
    .basicsize = sizeof(AsyncSocketObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = asock_slots,
};

/* --- module functions ---------------------------------------------------- */

/* _port_fds() -> [epoll fd, eventfd] of the process's port, or []. */
PyObject *
repynet__port_fds(PyObject *module, PyObject *unused)
{
    int fds[2];
    int n = rn_port_global_fds(fds);
    PyObject *list = PyList_New(n);
    if (list == NULL)
        return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *fd = PyLong_FromLong(fds[i]);
        if (fd == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, fd);
    }
    return list;
}

/*
 * _async_shutdown(): the atexit handler.  Closes every live AsyncSocket
 * (their pending operations are queued ABANDONED), drains their queues so
 * the buffers are released, then drops the process's port reference (the
 * worker stops once no socket uses it) with the GIL released.
 */
PyObject *
repynet__async_shutdown(PyObject *module, PyObject *unused)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *live = PyList_New(0);
    if (live == NULL)
        return NULL;
    for (AsyncSocketObject *s = state->async_sockets; s; s = s->live_next) {
        if (PyList_Append(live, (PyObject *)s) < 0) {
            Py_DECREF(live);
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(live); i++) {
        AsyncSocketObject *s = (AsyncSocketObject *)PyList_GET_ITEM(live, i);
        rn_asock_t *sock = s->sock;
        Py_BEGIN_ALLOW_THREADS
        rn_asock_close(sock);
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(live); i++) {
        AsyncSocketObject *s = (AsyncSocketObject *)PyList_GET_ITEM(live, i);
        queue_clear(s->queue);
    }
    Py_DECREF(live);
    Py_BEGIN_ALLOW_THREADS
    rn_port_global_release();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

int
repynet_queue_exec(PyObject *module)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *atexit = NULL, *handler = NULL, *rc = NULL;

    state->completion_queue_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &queue_spec, NULL);
    if (state->completion_queue_type == NULL)
        return -1;
    if (PyModule_AddType(module, state->completion_queue_type) < 0)
        return -1;
    state->async_socket_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &asock_spec, NULL);
    if (state->async_socket_type == NULL)
        return -1;
    if (PyModule_AddType(module, state->async_socket_type) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "ASYNC_RESULT_OK", 0) < 0 ||
        PyModule_AddIntConstant(module, "ASYNC_RESULT_ERROR", 1) < 0 ||
        PyModule_AddIntConstant(module, "ASYNC_RESULT_ABANDONED", 2) < 0)
        return -1;

    /* Close the sockets before finalization, while Python still works. */
    handler = PyObject_GetAttrString(module, "_async_shutdown");
    if (handler == NULL)
        goto error;
    atexit = PyImport_ImportModule("atexit");
    if (atexit == NULL)
        goto error;
    rc = PyObject_CallMethod(atexit, "register", "O", handler);
    if (rc == NULL)
        goto error;
    Py_DECREF(rc);
    Py_DECREF(atexit);
    Py_DECREF(handler);
    return 0;

error:
    Py_XDECREF(atexit);
    Py_XDECREF(handler);
    return -1;
}
