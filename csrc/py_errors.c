/*
 * py_errors.c: the Repy exception registry and the one errno table (D8).
 *
 * The classes are Python's (repynet/errors.py); C holds strong references
 * in module state so that raising one runs no Python frame.
 */
#include "py_errors.h"
#include "_repynet.h"
#include "py_args.h"

#include <string.h>

/*
 * One row per call context, one cell per OS-error group (spec 1.3, 2.x,
 * 3.x).  A cell left out takes its row's fallback; a row whose fallback is
 * left out falls back to REPYNET_EXC_INTERNAL (0), the original's Fatal
 * path, raised as InternalRepyError with the OSError chained (D9).
 */
typedef struct {
    repynet_exc_t fallback;
    repynet_exc_t by_group[RN_ERRGROUP_COUNT]; /* 0: use the fallback */
} errno_row;

/* clang-format off: one row per call, one line per errno group */
static const errno_row errno_table[REPYNET_CALL_COUNT] = {
    [REPYNET_CALL_RESOLVE] = {.fallback = REPYNET_EXC_NETWORK_ADDRESS},
    [REPYNET_CALL_SENDMESSAGE] =
        {.by_group =
             {
                 [RN_ERRGROUP_IN_USE] = REPYNET_EXC_DUPLICATE_TUPLE,
                 [RN_ERRGROUP_UNAVAILABLE] = REPYNET_EXC_ADDRESS_BINDING,
                 [RN_ERRGROUP_NET_DOWN] = REPYNET_EXC_INTERNET_CONNECTIVITY,
                 /* The original's blocking sendto waited here: wait for room.
                  */
                 [RN_ERRGROUP_RECOVERABLE] = REPYNET_EXC_RETRY,
             }},
    [REPYNET_CALL_LISTEN_UDP] = {.by_group =
                                     {
                                         [RN_ERRGROUP_IN_USE] =
                                             REPYNET_EXC_CONFLICT,
                                         [RN_ERRGROUP_UNAVAILABLE] =
                                             REPYNET_EXC_ADDRESS_BINDING,
                                     }},
    [REPYNET_CALL_LISTEN_TCP] = {.by_group =
                                     {
                                         [RN_ERRGROUP_IN_USE] =
                                             REPYNET_EXC_CONFLICT,
                                         [RN_ERRGROUP_UNAVAILABLE] =
                                             REPYNET_EXC_ADDRESS_BINDING,
                                     }},
    [REPYNET_CALL_CONNECT] =
        {.by_group =
             {
                 [RN_ERRGROUP_IN_USE] = REPYNET_EXC_CONFLICT,
                 [RN_ERRGROUP_UNAVAILABLE] = REPYNET_EXC_CONFLICT,
                 [RN_ERRGROUP_NET_DOWN] = REPYNET_EXC_INTERNET_CONNECTIVITY,
                 [RN_ERRGROUP_REFUSED] = REPYNET_EXC_CONNECTION_REFUSED,
                 [RN_ERRGROUP_ABORTED] = REPYNET_EXC_CONNECTION_REFUSED,
                 /* D29: a reset (or EPIPE) during the handshake is the
                  * listener closing meanwhile, a normal race, refused like
                  * ECONNABORTED. */
                 [RN_ERRGROUP_TERMINATED] = REPYNET_EXC_CONNECTION_REFUSED,
                 [RN_ERRGROUP_ALREADY_CONNECTED] = REPYNET_EXC_DUPLICATE_TUPLE,
                 [RN_ERRGROUP_RECOVERABLE] = REPYNET_EXC_RETRY,
             }},
    /* Socket calls: unknown errors close the socket (spec 3.1-3.3). */
    [REPYNET_CALL_STREAM_IO] = {.fallback = REPYNET_EXC_SOCKET_CLOSED_LOCAL,
                                .by_group =
                                    {
                                        [RN_ERRGROUP_RECOVERABLE] =
                                            REPYNET_EXC_SOCKET_WOULD_BLOCK,
                                        [RN_ERRGROUP_TERMINATED] =
                                            REPYNET_EXC_SOCKET_CLOSED_REMOTE,
                                    }},
    [REPYNET_CALL_ACCEPT] = {.fallback = REPYNET_EXC_SOCKET_CLOSED_LOCAL,
                             .by_group =
                                 {
                                     [RN_ERRGROUP_RECOVERABLE] =
                                         REPYNET_EXC_SOCKET_WOULD_BLOCK,
                                     /* A connection reset before accept() took
                                        it: nothing pending. */
                                     [RN_ERRGROUP_ABORTED] =
                                         REPYNET_EXC_SOCKET_WOULD_BLOCK,
                                 }},
    [REPYNET_CALL_GETMESSAGE] = {.fallback = REPYNET_EXC_SOCKET_CLOSED_LOCAL,
                                 .by_group =
                                     {
                                         [RN_ERRGROUP_RECOVERABLE] =
                                             REPYNET_EXC_SOCKET_WOULD_BLOCK,
                                     }},
};
/* clang-format on */

static const char *const exception_names[REPYNET_EXC_COUNT] = {
#define REPYNET_EXC_NAME(id, name) [REPYNET_EXC_##id] = name,
    REPYNET_EXCEPTIONS(REPYNET_EXC_NAME)
#undef REPYNET_EXC_NAME
};

repynet_exc_t
repynet_errno_class(repynet_call_t call, int err)
{
    const errno_row *row = &errno_table[call];
    repynet_exc_t exc = row->by_group[rn_errno_group(err)];
    return exc != REPYNET_EXC_INTERNAL ? exc : row->fallback;
}

static PyObject *
exception_class(repynet_state *state, repynet_exc_t exc)
{
    PyObject *cls = state->exceptions[exc];
    if (cls == NULL) {
        /* Only reachable when _repynet is used without the repynet package. */
        PyErr_Format(PyExc_SystemError,
                     "repynet: exception %s is not registered",
                     exception_names[exc]);
    }
    return cls;
}

/* Raises cls with value, which it steals (NULL: making it failed and set
 * the error).  Returns NULL. */
static PyObject *
raise_value(PyObject *cls, PyObject *value)
{
    if (value != NULL) {
        PyErr_SetObject(cls, value);
        Py_DECREF(value);
    }
    return NULL;
}

PyObject *
repynet_raise(repynet_state *state, repynet_exc_t exc, const char *format, ...)
{
    va_list args;
    PyObject *cls = exception_class(state, exc);
    if (cls == NULL)
        return NULL;
    va_start(args, format);
    PyObject *message = PyUnicode_FromFormatV(format, args);
    va_end(args);
    return raise_value(cls, message);
}

PyObject *
repynet_raise_chained(repynet_state *state, repynet_exc_t exc, int err,
                      const char *syscall)
{
    PyObject *cause = NULL, *instance = NULL;
    PyObject *cls = exception_class(state, exc);
    int code = err < 0 ? -err : err;

    if (cls == NULL)
        return NULL;
    cause = PyObject_CallFunction(PyExc_OSError, "is", code, strerror(code));
    if (cause == NULL)
        goto error;
    instance = PyObject_CallFunction(cls, "s", "");
    if (instance == NULL)
        goto error;
    PyObject *message = PyUnicode_FromFormat("%s: [Errno %d] %s", syscall,
                                             code, strerror(code));
    if (message == NULL)
        goto error;
    PyObject *args = PyTuple_Pack(1, message);
    Py_DECREF(message);
    if (args == NULL)
        goto error;
    if (PyObject_SetAttrString(instance, "args", args) < 0) {
        Py_DECREF(args);
        goto error;
    }
    Py_DECREF(args);
    PyException_SetCause(instance, cause); /* steals cause */
    cause = NULL;
    PyErr_SetObject(cls, instance);
error:
    Py_XDECREF(cause);
    Py_XDECREF(instance);
    return NULL;
}

/* "syscall: [Errno N] text" for (syscall, code): a new reference, or NULL
 * with an exception set.  The first REPYNET_MESSAGE_CACHE distinct
 * messages are kept in module state and reused. */
static PyObject *
errno_message(repynet_state *state, const char *syscall, int code)
{
    int i;
    for (i = 0; i < REPYNET_MESSAGE_CACHE && state->messages[i].message; i++) {
        if (state->messages[i].syscall == syscall &&
            state->messages[i].err == code)
            return Py_NewRef(state->messages[i].message);
    }
    PyObject *message = PyUnicode_FromFormat("%s: [Errno %d] %s", syscall,
                                             code, strerror(code));
    if (message != NULL && i < REPYNET_MESSAGE_CACHE) {
        state->messages[i].syscall = syscall;
        state->messages[i].err = code;
        state->messages[i].message = Py_NewRef(message);
    }
    return message;
}

PyObject *
repynet_raise_errno(repynet_state *state, repynet_call_t call, int err,
                    const char *syscall)
{
    int code = err < 0 ? -err : err;
    repynet_exc_t exc = repynet_errno_class(call, code);

    assert(exc < REPYNET_EXC_COUNT);
    if (exc == REPYNET_EXC_INTERNAL)
        return repynet_raise_chained(state, exc, code, syscall);
    PyObject *cls = exception_class(state, exc);
    if (cls == NULL)
        return NULL;
    return raise_value(cls, errno_message(state, syscall, code));
}

PyObject *
repynet_raise_oserror(PyObject *cls, int err)
{
    int code = err < 0 ? -err : err;
    /* OSError's constructor picks the subclass errno names; an explicit
     * class keeps the errno all the same. */
    PyObject *instance = PyObject_CallFunction(
        cls != NULL ? cls : PyExc_OSError, "is", code, strerror(code));
    if (instance == NULL)
        return NULL;
    return raise_value((PyObject *)Py_TYPE(instance), instance);
}

/* --- Python-visible functions -------------------------------------------- */

PyObject *
repynet__register_exceptions(PyObject *module, PyObject *namespace)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *classes[REPYNET_EXC_COUNT] = {NULL};

    for (int i = 0; i < REPYNET_EXC_COUNT; i++) {
        classes[i] = PyObject_GetAttrString(namespace, exception_names[i]);
        if (classes[i] == NULL)
            goto error;
        if (!PyType_Check(classes[i]) ||
            !PyType_IsSubtype((PyTypeObject *)classes[i],
                              (PyTypeObject *)PyExc_Exception)) {
            PyErr_Format(PyExc_TypeError, "%s must be an Exception subclass",
                         exception_names[i]);
            goto error;
        }
    }
    for (int i = 0; i < REPYNET_EXC_COUNT; i++)
        Py_XSETREF(state->exceptions[i], classes[i]);
    Py_RETURN_NONE;
error:
    for (int i = 0; i < REPYNET_EXC_COUNT; i++)
        Py_XDECREF(classes[i]);
    return NULL;
}

static const char *const call_names[REPYNET_CALL_COUNT] = {
    [REPYNET_CALL_RESOLVE] = "resolve",
    [REPYNET_CALL_SENDMESSAGE] = "sendmessage",
    [REPYNET_CALL_LISTEN_UDP] = "listen_udp",
    [REPYNET_CALL_LISTEN_TCP] = "listen_tcp",
    [REPYNET_CALL_CONNECT] = "connect",
    [REPYNET_CALL_STREAM_IO] = "stream_io",
    [REPYNET_CALL_ACCEPT] = "accept",
    [REPYNET_CALL_GETMESSAGE] = "getmessage",
};

/* _errno_class(call, errno) -> class, "retry" or "conflict"; for tests. */
PyObject *
repynet__errno_class(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *call_name;
    int err;

    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "_errno_class(call: str, errno: int)");
        return NULL;
    }
    call_name = PyUnicode_AsUTF8(args[0]);
    if (call_name == NULL)
        return NULL;
    if (repynet_as_int(args[1], &err) < 0)
        return NULL;
    for (int call = 0; call < REPYNET_CALL_COUNT; call++) {
        if (strcmp(call_names[call], call_name) != 0)
            continue;
        repynet_exc_t exc = repynet_errno_class(call, err);
        if (exc == REPYNET_EXC_RETRY)
            return PyUnicode_FromString("retry");
        if (exc == REPYNET_EXC_CONFLICT)
            return PyUnicode_FromString("conflict");
        PyObject *cls = exception_class(repynet_get_state(module), exc);
        return Py_XNewRef(cls);
    }
    PyErr_Format(PyExc_ValueError, "unknown call context %.100s", call_name);
    return NULL;
}

/* _errno_group(errno) -> the group name of spec 1.3; for tests. */
PyObject *
repynet__errno_group(PyObject *module, PyObject *arg)
{
    int err;
    if (repynet_as_int(arg, &err) < 0)
        return NULL;
    return PyUnicode_FromString(rn_errgroup_name(rn_errno_group(err)));
}
