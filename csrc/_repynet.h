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

typedef struct repynet_state {
    PyObject *exceptions[REPYNET_EXC_COUNT]; /* strong references */
    Py_ssize_t live[REPYNET_LIVE_COUNT];
} repynet_state;

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

int repynet_errors_exec(PyObject *module);

/* --- py_args.c -------------------------------------------------------- */

/* An IP literal argument (D3/D4/D13): fills *out and returns its family,
 * or -1 with RepyArgumentError set naming the argument. */
int repynet_arg_address(repynet_state *state, PyObject *arg, const char *what,
                        rn_addr_t *out);

int repynet_args_exec(PyObject *module);

#endif /* REPYNET_GLUE_H */
