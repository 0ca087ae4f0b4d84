/*
 * py_sockets.c: the objects users touch: TCP socket, TCPServerSocket and
 * UDPServerSocket (spec section 3).
 *
 * Every method is one non-blocking syscall made with the GIL held (a
 * release would cost more than the call); only rate waits sleep, with the
 * GIL released.  Because the fd is only used while the GIL is held, the
 * GIL is also what serialises a socket's methods.  The three types share
 * RepynetSocketObject; `kind` says which table and counter it belongs to.
 */
#include "_repynet.h"

#include <errno.h>
#include <unistd.h>

/* recv(n) reads at most this much per call (D18). */
#define REPYNET_RECV_MAX (1024 * 1024)
#define REPYNET_STACK_BUFFER 65536

static rn_table_t *
socket_table(RepynetSocketObject *self)
{
    repynet_state *state = self->state;
    switch (self->kind) {
    case REPYNET_LIVE_TCP_SOCKET:
        return state->tcp_conns;
    case REPYNET_LIVE_TCP_SERVER:
        return state->tcp_listeners;
    default:
        return state->udp_listeners;
    }
}

static rn_counter_t *
socket_counter(RepynetSocketObject *self)
{
    repynet_resources *r = self->state->resources;
    return self->kind == REPYNET_LIVE_TCP_SOCKET ? &r->outsockets
                                                 : &r->insockets;
}

/* Closes the fd and gives back its table entry and count, silently (no
 * charges): the internal close, the finalizer's and the user's (D16). */
static void
socket_release(RepynetSocketObject *self)
{
    if (self->fd < 0)
        return;
    int fd = self->fd;
    self->fd = -1;
    rn_table_remove_value(socket_table(self), &self->key, self);
    rn_counter_release(socket_counter(self));
    if (self->kind == REPYNET_LIVE_TCP_SOCKET)
        rn_sock_close(fd);
    else
        close(fd);
}

static PyObject *
closed_locally(RepynetSocketObject *self)
{
    return repynet_raise(self->state, REPYNET_EXC_SOCKET_CLOSED_LOCAL,
                         "The socket has been closed locally!");
}

/* Raises what an errno means for a socket call, closing the socket first
 * where the spec closes it internally (terminated and unknown errors). */
static PyObject *
socket_error(RepynetSocketObject *self, repynet_call_t call, int err,
             const char *syscall)
{
    repynet_exc_t exc = repynet_errno_class(call, err);
    if (exc == REPYNET_EXC_SOCKET_CLOSED_LOCAL ||
        exc == REPYNET_EXC_SOCKET_CLOSED_REMOTE)
        socket_release(self);
    return repynet_raise_errno(self->state, call, err, syscall);
}

/* Registers a new object in its table and counts it alive.  On failure
 * the fd is closed and the caller keeps (and must give back) its count. */
static RepynetSocketObject *
socket_alloc(repynet_state *state, PyTypeObject *type, repynet_live_t kind,
             int fd, int text, const rn_tuple_t *key)
{
    RepynetSocketObject *self = PyObject_New(RepynetSocketObject, type);
    if (self == NULL) {
        close(fd);
        return NULL;
    }
    self->state = state;
    self->fd = fd;
    self->text = text;
    self->kind = kind;
    self->key = *key;
    self->loopback = rn_addr_is_loopback(kind == REPYNET_LIVE_TCP_SOCKET
                                             ? &key->remote.addr
                                             : &key->local.addr);
    state->live[kind]++;
    /* -EEXIST cannot happen: the kernel refused a duplicate bind first. */
    if (rn_table_insert(socket_table(self), key, self) == -ENOMEM) {
        /* The caller still owns the count it took: release only the fd. */
        self->fd = -1;
        close(fd);
        Py_DECREF(self);
        PyErr_NoMemory();
        return NULL;
    }
    return self;
}

static void
socket_dealloc(RepynetSocketObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    socket_release(self);
    self->state->live[self->kind]--;
    PyObject_Free(self);
    Py_DECREF(type);
}

static PyObject *
socket_enter(RepynetSocketObject *self, PyObject *unused)
{
    return Py_NewRef((PyObject *)self);
}

static PyObject *
socket_repr(RepynetSocketObject *self)
{
    PyObject *local = repynet_format_address(self->state, &self->key.local.addr);
    if (local == NULL)
        return NULL;
    PyObject *repr = PyUnicode_FromFormat(
        "<%s %U:%u%s>", Py_TYPE(self)->tp_name, local,
        (unsigned)self->key.local.port, self->fd < 0 ? " closed" : "");
    Py_DECREF(local);
    return repr;
}

/* --- TCP socket ------------------------------------------------------------ */

PyObject *
repynet_tcp_socket_new(repynet_state *state, int fd, int text,
                       const rn_tuple_t *key)
{
    return (PyObject *)socket_alloc(state, state->tcp_socket_type,
                                    REPYNET_LIVE_TCP_SOCKET, fd, text, key);
}

/* Both rates are waited for before every TCP socket call (spec 6.3). */
static int
wait_both(RepynetSocketObject *self)
{
    if (repynet_charge_recv(self->state, self->loopback, 0.0) < 0)
        return -1;
    return repynet_charge_send(self->state, self->loopback, 0.0);
}

/* Above this, a bytes-mode recv reads straight into its result object
 * (then shrinks it) instead of copying out of a stack buffer. */
#define REPYNET_RECV_DIRECT 4096

static PyObject *
tcp_recv(RepynetSocketObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    repynet_state *state = self->state;
    char stack_buffer[REPYNET_STACK_BUFFER];
    PyObject *result = NULL;
    char *buffer = stack_buffer, *heap_buffer = NULL;
    long wanted;

    if (repynet_check_arity(state, "recv", nargs, kwnames, 1) < 0 ||
        repynet_arg_long(state, args[0], "bytes", 1, LONG_MAX, &wanted) < 0)
        return NULL;
    if (wanted > REPYNET_RECV_MAX)
        wanted = REPYNET_RECV_MAX;
    if (wait_both(self) < 0)
        return NULL;
    if (self->fd < 0)
        return closed_locally(self);
    if (!self->text && wanted > REPYNET_RECV_DIRECT) {
        result = PyBytes_FromStringAndSize(NULL, wanted);
        if (result == NULL)
            return NULL;
        buffer = PyBytes_AS_STRING(result);
    }
    else if ((size_t)wanted > sizeof(stack_buffer)) {
        buffer = heap_buffer = PyMem_Malloc((size_t)wanted);
        if (buffer == NULL)
            return PyErr_NoMemory();
    }
    ssize_t got = rn_recv(self->fd, buffer, (size_t)wanted);
    if (got <= 0) {
        Py_CLEAR(result);
        if (got == 0)
            repynet_raise(state, REPYNET_EXC_SOCKET_CLOSED_REMOTE,
                          "The socket has been closed by the remote end!");
        else
            socket_error(self, REPYNET_CALL_STREAM_IO, (int)got, "recv");
    }
    else if (result != NULL) {
        if (got < wanted && _PyBytes_Resize(&result, got) < 0)
            result = NULL; /* _PyBytes_Resize freed it */
    }
    else {
        result = repynet_data_result(buffer, (size_t)got, self->text);
    }
    PyMem_Free(heap_buffer);
    if (result != NULL &&
        (repynet_charge_recv(state, self->loopback, 64.0 + (double)got) < 0 ||
         repynet_charge_send(state, self->loopback, 64.0) < 0))
        Py_CLEAR(result);
    return result;
}

static PyObject *
tcp_send(RepynetSocketObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    repynet_state *state = self->state;
    Py_buffer view;
    ssize_t sent;

    if (repynet_check_arity(state, "send", nargs, kwnames, 1) < 0 ||
        repynet_arg_data(state, args[0], self->text, &view) < 0)
        return NULL;
    if (wait_both(self) < 0)
        goto error;
    if (self->fd < 0) {
        closed_locally(self);
        goto error;
    }
    /* The original refuses to send once the peer has closed (spec 3.1). */
    int peer_closed = rn_peer_closed(self->fd);
    if (peer_closed == 1) {
        repynet_raise(state, REPYNET_EXC_SOCKET_CLOSED_REMOTE,
                      "The socket has been closed by the remote end!");
        goto error;
    }
    if (peer_closed < 0) {
        socket_error(self, REPYNET_CALL_STREAM_IO, peer_closed, "recv");
        goto error;
    }
    sent = rn_send(self->fd, view.buf, (size_t)view.len);
    repynet_release_data(&view);
    if (sent < 0)
        return socket_error(self, REPYNET_CALL_STREAM_IO, (int)sent, "send");
    if (repynet_charge_send(state, self->loopback, 64.0 + (double)sent) < 0 ||
        repynet_charge_recv(state, self->loopback, 64.0) < 0)
        return NULL;
    return PyLong_FromSsize_t(sent);
error:
    repynet_release_data(&view);
    return NULL;
}

static PyObject *
tcp_close(RepynetSocketObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    if (repynet_check_arity(self->state, "close", nargs, kwnames, 0) < 0)
        return NULL;
    if (self->fd < 0)
        Py_RETURN_FALSE;
    if (wait_both(self) < 0)
        return NULL;
    if (self->fd < 0) /* another thread closed it during the wait */
        Py_RETURN_FALSE;
    socket_release(self);
    if (repynet_charge_recv(self->state, self->loopback, 64.0) < 0 ||
        repynet_charge_send(self->state, self->loopback, 128.0) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *
tcp_exit(RepynetSocketObject *self, PyObject *args)
{
    PyObject *closed = tcp_close(self, NULL, 0, NULL);
    if (closed == NULL)
        return NULL;
    Py_DECREF(closed);
    Py_RETURN_FALSE;
}

#define FASTCALL_KW(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef tcp_socket_methods[] = {
    {"recv", FASTCALL_KW(tcp_recv),
     "recv(bytes) -> data: at most `bytes` bytes that have arrived."},
    {"send", FASTCALL_KW(tcp_send),
     "send(message) -> int: how much of message the kernel accepted."},
    {"close", FASTCALL_KW(tcp_close),
     "close() -> bool: True if this call closed the socket."},
    {"__enter__", (PyCFunction)socket_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)tcp_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* --- TCPServerSocket -------------------------------------------------------- */

static PyObject *
server_getconnection(RepynetSocketObject *self, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    rn_tuple_t key;

    if (repynet_check_arity(state, "getconnection", nargs, kwnames, 0) < 0)
        return NULL;
    if (wait_both(self) < 0)
        return NULL;
    if (self->fd < 0)
        return closed_locally(self);
    memset(&key, 0, sizeof(key));
    int conn = rn_tcp_accept(self->fd, &key.remote.addr, &key.remote.port);
    if (conn < 0)
        return socket_error(self, REPYNET_CALL_ACCEPT, conn, "accept");
    if (repynet_charge_recv(state, self->loopback, 128.0) < 0 ||
        repynet_charge_send(state, self->loopback, 64.0) < 0 ||
        repynet_acquire(state, &state->resources->outsockets, "outsockets") < 0) {
        close(conn);
        return NULL;
    }
    int rc = rn_sock_local(conn, &key.local.addr, &key.local.port);
    if (rc < 0) {
        close(conn);
        rn_counter_release(&state->resources->outsockets);
        return repynet_raise_chained(state, REPYNET_EXC_INTERNAL, rc,
                                     "getsockname");
    }
    PyObject *remote_ip = repynet_format_address(state, &key.remote.addr);
    if (remote_ip == NULL) {
        close(conn);
        rn_counter_release(&state->resources->outsockets);
        return NULL;
    }
    PyObject *sock = repynet_tcp_socket_new(state, conn, self->text, &key);
    if (sock == NULL) {
        rn_counter_release(&state->resources->outsockets);
        Py_DECREF(remote_ip);
        return NULL;
    }
    return Py_BuildValue("(NiN)", remote_ip, (int)key.remote.port, sock);
}

/* Server close() always returns True (spec 3.2, 3.3). */
static PyObject *
server_close(RepynetSocketObject *self, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    if (repynet_check_arity(self->state, "close", nargs, kwnames, 0) < 0)
        return NULL;
    socket_release(self);
    Py_RETURN_TRUE;
}

static PyObject *
server_exit(RepynetSocketObject *self, PyObject *args)
{
    socket_release(self);
    Py_RETURN_FALSE;
}

static PyMethodDef tcp_server_methods[] = {
    {"getconnection", FASTCALL_KW(server_getconnection),
     "getconnection() -> (remote_ip, remote_port, socket)."},
    {"close", FASTCALL_KW(server_close), "close() -> True."},
    {"__enter__", (PyCFunction)socket_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)server_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* --- UDPServerSocket ---------------------------------------------------------- */

static PyObject *
udp_getmessage(RepynetSocketObject *self, PyObject *const *args,
               Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    char buffer[65535];
    rn_addr_t from;
    uint16_t from_port;

    if (repynet_check_arity(state, "getmessage", nargs, kwnames, 0) < 0)
        return NULL;
    if (repynet_charge_recv(state, self->loopback, 0.0) < 0)
        return NULL;
    if (self->fd < 0)
        return closed_locally(self);
    ssize_t got = rn_recvfrom(self->fd, buffer, sizeof(buffer), &from, &from_port);
    if (got < 0)
        return socket_error(self, REPYNET_CALL_GETMESSAGE, (int)got, "recvfrom");
    PyObject *result = Py_BuildValue(
        "(NiN)", repynet_format_address(state, &from), (int)from_port,
        repynet_data_result(buffer, (size_t)got, self->text));
    if (result != NULL &&
        repynet_charge_recv(state, self->loopback, 64.0 + (double)got) < 0)
        Py_CLEAR(result);
    return result;
}

static PyMethodDef udp_server_methods[] = {
    {"getmessage", FASTCALL_KW(udp_getmessage),
     "getmessage() -> (remote_ip, remote_port, message)."},
    {"close", FASTCALL_KW(server_close), "close() -> True."},
    {"__enter__", (PyCFunction)socket_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)server_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* --- types ------------------------------------------------------------------ */

#define SOCKET_TYPE_SPEC(var, pyname, methods)                                 \
    static PyType_Slot var##_slots[] = {                                       \
        {Py_tp_dealloc, socket_dealloc},                                       \
        {Py_tp_repr, socket_repr},                                             \
        {Py_tp_methods, methods},                                              \
        {0, NULL},                                                             \
    };                                                                         \
    static PyType_Spec var = {                                                 \
        .name = "repynet." pyname,                                             \
        .basicsize = sizeof(RepynetSocketObject),                              \
        .flags = Py_TPFLAGS_DEFAULT,                                           \
        .slots = var##_slots,                                                  \
    }

SOCKET_TYPE_SPEC(tcp_socket_spec, "TCPSocket", tcp_socket_methods);
SOCKET_TYPE_SPEC(tcp_server_spec, "TCPServerSocket", tcp_server_methods);
SOCKET_TYPE_SPEC(udp_server_spec, "UDPServerSocket", udp_server_methods);

/* Adds a type users cannot instantiate; a new reference in *out. */
static int
add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **out)
{
    PyTypeObject *type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL)
        return -1;
    /* Only the API makes these objects (Py_TPFLAGS_DISALLOW_INSTANTIATION
     * is 3.10+). */
    type->tp_new = NULL;
    *out = type;
    return PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1,
                                 (PyObject *)type);
}

int
repynet_sockets_exec(PyObject *module)
{
    repynet_state *state = repynet_get_state(module);
    if (add_type(module, &tcp_socket_spec, &state->tcp_socket_type) < 0 ||
        add_type(module, &tcp_server_spec, &state->tcp_server_type) < 0 ||
        add_type(module, &udp_server_spec, &state->udp_server_type) < 0)
        return -1;
    return 0;
}

/* Used by py_api.c for listeners. */
PyObject *
repynet_server_new(repynet_state *state, int tcp, int fd, int text,
                   const rn_tuple_t *key)
{
    if (tcp)
        return (PyObject *)socket_alloc(state, state->tcp_server_type,
                                        REPYNET_LIVE_TCP_SERVER, fd, text, key);
    return (PyObject *)socket_alloc(state, state->udp_server_type,
                                    REPYNET_LIVE_UDP_SERVER, fd, text, key);
}

/* The fd of a live UDP listener, or -1. */
int
repynet_udp_listener_fd(PyObject *listener)
{
    return ((RepynetSocketObject *)listener)->fd;
}
