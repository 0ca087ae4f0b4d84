/*
 * py_errors.h: what py_errors.c offers: the one errno -> Repy exception table
 * (D8), the functions that raise Repy exceptions and the registry of their
 * classes.
 */
#ifndef REPYNET_PY_ERRORS_H
#define REPYNET_PY_ERRORS_H

#include "_repynet.h"

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

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__register_exceptions(PyObject *module, PyObject *namespace);
PyObject *repynet__errno_class(PyObject *module, PyObject *const *args,
                               Py_ssize_t nargs);
PyObject *repynet__errno_group(PyObject *module, PyObject *arg);

#endif /* REPYNET_PY_ERRORS_H */
