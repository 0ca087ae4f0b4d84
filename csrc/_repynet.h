/*
 * _repynet.h: the glue layer's one shared header (Python.h + the core).
 *
 * Glue contract: a function returning PyObject * returns a new reference,
 * or NULL with an exception set; one returning int returns 0 (or a count)
 * on success and -1 with an exception set.  Every glue function needs the
 * GIL unless it says otherwise.
 */
#ifndef REPYNET_GLUE_H
#define REPYNET_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "rn.h"

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
Py_NewRef(PyObject *obj)
{
    Py_INCREF(obj);
    return obj;
}
static inline PyObject *
Py_XNewRef(PyObject *obj)
{
    Py_XINCREF(obj);
    return obj;
}
static inline int
PyModule_AddObjectRef(PyObject *module, const char *name, PyObject *value)
{
    Py_INCREF(value);
    if (PyModule_AddObject(module, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}
#endif

/* Reads a Python int into a C int; 0, or -1 with OverflowError/TypeError. */
static inline int
repynet_as_int(PyObject *obj, int *out)
{
    long value = PyLong_AsLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value does not fit a C int");
        return -1;
    }
    *out = (int)value;
    return 0;
}

/*
 * The Repy exception classes C raises, defined in repynet/errors.py and
 * handed over once at import (repynet._repynet._register_exceptions).
 * X(enum suffix, Python class name).
 */
#define REPYNET_EXCEPTIONS(X)                                    \
    X(INTERNAL, "InternalRepyError")                             \
    X(REPY, "RepyException")                                     \
    X(ARGUMENT, "RepyArgumentError")                             \
    X(TIMEOUT, "TimeoutError")                                   \
    X(RESOURCE_EXHAUSTED, "ResourceExhaustedError")              \
    X(RESOURCE_FORBIDDEN, "ResourceForbiddenError")              \
    X(NETWORK, "NetworkError")                                   \
    X(NETWORK_ADDRESS, "NetworkAddressError")                    \
    X(ALREADY_LISTENING, "AlreadyListeningError")                \
    X(DUPLICATE_TUPLE, "DuplicateTupleError")                    \
    X(CLEANUP_IN_PROGRESS, "CleanupInProgressError")             \
    X(INTERNET_CONNECTIVITY, "InternetConnectivityError")        \
    X(ADDRESS_BINDING, "AddressBindingError")                    \
    X(CONNECTION_REFUSED, "ConnectionRefusedError")              \
    X(SOCKET_CLOSED_LOCAL, "SocketClosedLocal")                  \
    X(SOCKET_CLOSED_REMOTE, "SocketClosedRemote")                \
    X(SOCKET_WOULD_BLOCK, "SocketWouldBlockError")

typedef enum repynet_exc {
#define REPYNET_EXC_ENUM(id, name) REPYNET_EXC_##id,
    REPYNET_EXCEPTIONS(REPYNET_EXC_ENUM)
#undef REPYNET_EXC_ENUM
    REPYNET_EXC_COUNT,
    /* Not classes: outcomes the errno table hands back to the caller. */
    REPYNET_EXC_RETRY = REPYNET_EXC_COUNT, /* try the syscall again */
    REPYNET_EXC_CONFLICT,  /* apply the conflict rules U/C1/C2 */
} repynet_exc_t;

/*
 * The contexts whose errno mapping differs (spec sections 2 and 3); the
 * single table in py_errors.c has one row per context.
 */
typedef enum repynet_call {
    REPYNET_CALL_RESOLVE,     /* gethostbyname, getAddripv6 */
    REPYNET_CALL_SENDMESSAGE, /* bind and sendto of sendmessage */
    REPYNET_CALL_LISTEN_UDP,  /* bind of listenformessage (rule U) */
    REPYNET_CALL_LISTEN_TCP,  /* bind/listen of listenforconnection */
    REPYNET_CALL_CONNECT,     /* bind/connect of openconnection (rule T) */
    REPYNET_CALL_STREAM_IO,   /* TCP socket send/recv */
    REPYNET_CALL_ACCEPT,      /* TCPServerSocket.getconnection */
    REPYNET_CALL_GETMESSAGE,  /* UDPServerSocket.getmessage */
    REPYNET_CALL_COUNT
} repynet_call_t;

/* Objects counted for the test suite's leak check (_repynet._live_objects). */
typedef enum repynet_live {
    REPYNET_LIVE_TCP_SOCKET,
    REPYNET_LIVE_TCP_SERVER,
    REPYNET_LIVE_UDP_SERVER,
    REPYNET_LIVE_COMPLETION_QUEUE,
    REPYNET_LIVE_ASYNC_SOCKET,
    REPYNET_LIVE_COUNT
} repynet_live_t;

/*
 * The restrictions in force and what has been used of them (spec 6).  One
 * per process: the module is single-interpreter.
 */
typedef struct repynet_resources {
    rn_portset_t connport, messport;           /* allowed local ports */
    rn_portset_t connport_used, messport_used; /* ports that passed a check */
    rn_counter_t insockets, outsockets, events;
    rn_rate_t netsend, netrecv, loopsend, looprecv;
    int backlog; /* outsockets, or RN_TCP_DEFAULT_BACKLOG when 0 */
} repynet_resources;

/* Messages of raised errno exceptions, made once: formatting them is most
 * of the cost of a call that would block. */
#define REPYNET_MESSAGE_CACHE 16
typedef struct {
    const char *syscall; /* a string literal, compared by address */
    int err;
    PyObject *message;
} repynet_cached_message;

typedef struct repynet_state {
    PyObject *exceptions[REPYNET_EXC_COUNT]; /* strong references */
    repynet_cached_message messages[REPYNET_MESSAGE_CACHE];
    Py_ssize_t live[REPYNET_LIVE_COUNT];
    repynet_resources *resources;
    /* The three seed-000 tables; values are borrowed socket objects. */
    rn_table_t *tcp_conns, *tcp_listeners, *udp_listeners;
    /* Local-address preferences (spec 4.3): NULL when off, else a list of
     * ("ip" | "iface", text) tuples in order of preference. */
    PyObject *ip_preferences;
    int nootherips;
    /* Where getmyip looks for a route (D19): a tuple of address str. */
    PyObject *probes_v4, *probes_v6;
    PyTypeObject *api_type, *tcp_socket_type, *tcp_server_type,
        *udp_server_type;
    /* py_queue.c: its two types and its list of live AsyncSockets. */
    PyTypeObject *completion_queue_type, *async_socket_type;
    void *async_sockets;
    /* py_sockets.c, the D32 hand-over: threads of ours waiting to take
     * the GIL back and how often one took it (both atomic), the calls the
     * holder made since (under the GIL), and a receive buffer free for the
     * next call (NULL while a call without the GIL uses it). */
    int gil_wanted;
    pid_t gil_pid; /* the process gil_wanted counts threads of */
    unsigned long gil_takes;
    unsigned holder_calls;
    char *scratch;
} repynet_state;

/*
 * The three objects users touch share one layout.  A socket's fd is -1
 * once it is closed, by the user or internally after a fatal error.
 */
typedef struct {
    PyObject_HEAD
    repynet_state *state; /* borrowed: the type keeps its module alive */
    int fd;
    int text;     /* text mode (D1/D2), inherited by accepted sockets */
    int loopback; /* charges go to loop* rather than net* (spec 6.3) */
    repynet_live_t kind;
    rn_tuple_t key; /* its entry in the seed-000 table of its kind */
    /* D32: calls using the fd with the GIL released (changed under the
     * GIL); a close during such a call leaves the real close(2) of
     * orphan_fd to the last of them. */
    int users;
    int orphan_fd;
    pid_t owner;     /* the process that made it: only it shuts it down */
    int peer_eof;    /* recv saw the peer's FIN */
    /* How long a would-block waits in the kernel for readiness before it
     * raises (reading, writing), in microseconds: halved on each timeout
     * so idle sockets stop waiting, reset by every success. */
    unsigned wait_us[2];
} RepynetSocketObject;

/* The API object: the six calls, in bytes or text mode. */
typedef struct {
    PyObject_HEAD
    repynet_state *state;
    int text;
} NetworkApiObject;

extern PyModuleDef repynet_module;

/* Borrowed state of the module object. */
repynet_state *repynet_get_state(PyObject *module);
/* Borrowed state of the module that defines a heap type (NULL + error if
 * the type is not ours). */
repynet_state *repynet_state_from_type(PyTypeObject *type);

/* --- py_errors.c ------------------------------------------------------ */

/* The Repy class (or REPYNET_EXC_RETRY / _CONFLICT) for an errno seen by a
 * call: the one errno -> Repy exception table (spec D8). */
repynet_exc_t repynet_errno_class(repynet_call_t call, int err);

/* Raises exc with a formatted message; always returns NULL. */
PyObject *repynet_raise(repynet_state *state, repynet_exc_t exc,
                        const char *format, ...);

/*
 * Raises the Repy exception for an errno (either sign) that syscall gave
 * in call.  InternalRepyError gets the OSError chained as __cause__ (D9).
 * Must not be given an errno whose class is RETRY or CONFLICT.  Always
 * returns NULL.
 */
PyObject *repynet_raise_errno(repynet_state *state, repynet_call_t call,
                              int err, const char *syscall);

/* Raises exc_id with an OSError(err) chained as __cause__; returns NULL. */
PyObject *repynet_raise_chained(repynet_state *state, repynet_exc_t exc,
                                int err, const char *syscall);

/* Raises Python's OSError for an errno (either sign) with errno and
 * strerror set: the subclass errno picks (as PyErr_SetFromErrno does), or
 * cls, an OSError subclass, when not NULL.  For the private types
 * (py_queue.c, py_v1.c), whose callers are Python code, not Repy code.
 * Always returns NULL. */
PyObject *repynet_raise_oserror(PyObject *cls, int err);

int repynet_errors_exec(PyObject *module);

/* --- py_args.c -------------------------------------------------------- */

/* The most characters of a str argument an error message shows. */
#define REPYNET_ARG_TEXT_MAX 64

/*
 * How an error message shows an argument, from the exact value the checks
 * read and never through a subclass's __repr__/__str__ (no user code
 * runs): a str's first REPYNET_ARG_TEXT_MAX characters, quoted, then
 * "... (N characters)" if cut; an int's decimal value (only its sign
 * beyond 64 bits); a float's repr; anything else by its type.  New
 * reference, or NULL with an exception set.
 */
PyObject *repynet_arg_text(PyObject *arg);
/* Raises exc with the formatted message followed by repynet_arg_text(arg);
 * returns NULL. */
PyObject *repynet_raise_with_arg(repynet_state *state, repynet_exc_t exc,
                                 PyObject *arg, const char *format, ...);
/* Type checks (spec 1.1 step 3): str; int (bool refused, D5); int or
 * float (bool refused, D6).  0, or -1 with RepyArgumentError set. */
int repynet_arg_str(repynet_state *state, PyObject *arg, const char *what);
int repynet_arg_int(repynet_state *state, PyObject *arg, const char *what);
int repynet_arg_number(repynet_state *state, PyObject *arg, const char *what);

/* An IP literal argument (D3/D4/D13): fills *out and returns its family,
 * or -1 with RepyArgumentError set naming the argument. */
int repynet_arg_address(repynet_state *state, PyObject *arg, const char *what,
                        rn_addr_t *out);

/* Fails with RepyArgumentError unless the call has exactly expected
 * positional arguments and no keywords (spec 1.1 steps 1-2). */
int repynet_check_arity(repynet_state *state, const char *name,
                        Py_ssize_t nargs, PyObject *kwnames,
                        Py_ssize_t expected);
/* An int argument (subclasses allowed, bool refused, D5) in [min, max]. */
int repynet_arg_long(repynet_state *state, PyObject *arg, const char *what,
                     long min, long max, long *out);
/* A port: an int in 1..65535. */
int repynet_arg_port(repynet_state *state, PyObject *arg, const char *what,
                     uint16_t *out);
/* A size (recv's, D18): an int of at least 1; one above max, however
 * large, reads as max. */
int repynet_arg_size(repynet_state *state, PyObject *arg, const char *what,
                     long max, long *out);
/* A timeout (D6): int or float, not bool, finite and > 0. */
int repynet_arg_timeout(repynet_state *state, PyObject *arg, double *out);
/* A datagram's payload within the UDP cap (spec 2.3 step 9, D14). */
int repynet_arg_datagram_size(repynet_state *state, const Py_buffer *view);
/* The local and the destination IP of the same family (D21: checked once
 * the bind proved the local IP is ours). */
int repynet_arg_same_family(repynet_state *state, const rn_tuple_t *key);

/* sendmessage's and openconnection's arguments as given: both ends and the
 * one other argument, the message (sendmessage; timeout NULL) or the
 * timeout (openconnection; message NULL). */
typedef struct {
    PyObject *destip, *destport, *localip, *localport;
    PyObject *message, *timeout;
} repynet_ends_given;
/* ... and as checked. */
typedef struct {
    rn_tuple_t key;    /* local and remote end */
    Py_buffer message; /* release with repynet_release_data */
    double timeout;
} repynet_ends_checked;
/*
 * The argument checks the two calls share, in the spec's order (2.3 steps
 * 1-6, 2.5 steps 1-7): the ends' types, the other argument's type (the
 * message is read in the call's mode, text), the ends' values, the
 * timeout's value, then the ends must differ.  0, or -1 with
 * RepyArgumentError set and no message held.
 */
int repynet_arg_ends(repynet_state *state, const repynet_ends_given *given,
                     int text, repynet_ends_checked *out);
/*
 * Payload (D1): any bytes-like object; in text mode also a str whose
 * characters are all <= U+00FF, read in place (one byte a character).
 * Release the view with repynet_release_data.
 */
int repynet_arg_data(repynet_state *state, PyObject *arg, int text,
                     Py_buffer *view);
void repynet_release_data(Py_buffer *view);
/* Received bytes as the mode wants them (D2): bytes, or latin-1 str. */
PyObject *repynet_data_result(const char *buf, size_t len, int text);
/* The text of an address, as a new str. */
PyObject *repynet_format_address(repynet_state *state, const rn_addr_t *addr);

int repynet_args_exec(PyObject *module);

/* --- py_limits.c: restrictions, charges, local-address policy ---------- */

/*
 * The charge before a call's work: adds amount (0: only waits) to the send
 * (or receive) rate of the loopback or network kind and sleeps, GIL
 * released, until the bucket is within its limit.  -1 with an exception
 * for a rate of 0 or when a signal handler raises.  Charges after the work
 * go through repynet_charge_after.
 */
int repynet_charge_send(repynet_state *state, int loopback, double amount);
int repynet_charge_recv(repynet_state *state, int loopback, double amount);
/* The send rate a TCP send charges, in bytes per second (D31). */
double repynet_send_limit(repynet_state *state, int loopback);
/*
 * The charges after a call's work, to the send and the receive rate of the
 * loopback or network kind, waited for together (GIL released): a signal
 * ends the whole wait, leaving the unpaid part in the buckets for the next
 * call.  Never fails: the work must reach the caller.
 */
void repynet_charge_after(repynet_state *state, int loopback,
                          double send_amount, double recv_amount);
/* ResourceForbiddenError unless the local IP may be used (spec 4.3). */
int repynet_check_localip(repynet_state *state, const rn_addr_t *addr,
                          PyObject *arg);
/* ResourceForbiddenError unless port is in the allowed set; records its
 * use for getresources. */
int repynet_check_port(repynet_state *state, int tcp, uint16_t port);
/* Takes one insocket/outsocket: 0, or -1 with ResourceExhaustedError. */
int repynet_acquire(repynet_state *state, rn_counter_t *counter,
                    const char *name);
/* The first preferred local address of a family as str, or NULL without an
 * exception when preferences are off or hold none of that family. */
PyObject *repynet_preferred_ip(repynet_state *state, sa_family_t family);
int repynet_limits_init(repynet_state *state);
void repynet_limits_free(repynet_state *state);
int repynet_limits_exec(PyObject *module);

/* --- py_sockets.c / py_api.c -------------------------------------------- */

/* Wraps a connected TCP fd (taking ownership; closed on failure) in a new
 * socket object, registered in tcp_conn_table.  The caller has already
 * taken the outsocket, which the object then owns. */
PyObject *repynet_tcp_socket_new(repynet_state *state, int fd, int text,
                                 const rn_tuple_t *key);
/* A new listener object (TCP when tcp, else UDP) owning fd and the
 * insocket the caller took; registered in its listen table. */
PyObject *repynet_server_new(repynet_state *state, int tcp, int fd, int text,
                             const rn_tuple_t *key);
/* Marks a socket object in use by a call that may release the GIL: its fd
 * (valid until repynet_socket_unuse, even if the socket is closed
 * meanwhile), or -1 when it is closed.  Takes a reference. */
int repynet_socket_use(PyObject *sock);
void repynet_socket_unuse(PyObject *sock);
/* Whether the interpreter has Python threads besides the caller's. */
int repynet_other_threads(void);
/* The GIL release and take-back of a call that waits (D32): the take-back
 * is counted, so that a busy holder hands the GIL over to it. */
PyThreadState *repynet_release(void);
void repynet_take(repynet_state *state, PyThreadState *saved);
/* After a successful hot-path call: hands the GIL to a thread of ours that
 * waits for it once the holder has made enough calls. */
void repynet_gil_turn(repynet_state *state);
int repynet_sockets_exec(PyObject *module);
void repynet_sockets_free(repynet_state *state);
int repynet_api_exec(PyObject *module);
int repynet_queue_exec(PyObject *module); /* py_queue.c */

/* --- py_v1.c: the Repy V1 call style (repynet/v1.py) ---------------------- */

/* py_api.c's connect: waits for the send and receive rates (spec 2.5
 * step 10), then binds and connects until key is connected or timeout
 * seconds pass (GIL released while waiting): the fd, or -1 with an
 * exception set.  key->local.port 0 lets the kernel pick the port. */
int repynet_connect_until(repynet_state *state, const rn_tuple_t *key,
                          double timeout);
/* What follows a connect (spec 2.5 steps 12-13): wraps the connected fd,
 * for which the caller took an outsocket, in a TCP socket object, filling
 * in the local end the kernel picked when key leaves it open (port 0 or
 * the any address), then charges the connect.  On failure the fd is
 * closed and the outsocket given back.  New reference, or NULL. */
PyObject *repynet_connected_socket(repynet_state *state, int fd, int text,
                                   rn_tuple_t *key);
/* py_api.c's datagram send (spec 2.3 steps 12-13): sends view to dest from
 * fd, waiting (GIL released) while the socket is full, then charges it.
 * own_socket: fd is the call's own socket, held as an outsocket while it
 * sends (D11).  The bytes sent, or -1 with an exception set. */
ssize_t repynet_send_datagram(repynet_state *state, int fd,
                              const Py_buffer *view, const rn_endpoint_t *dest,
                              int own_socket);
int repynet_v1_exec(PyObject *module);

#endif /* REPYNET_GLUE_H */
