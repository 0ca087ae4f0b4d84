/*
 * _repynet.h: the module state every glue file shares, with its inline
 * getters (Python.h + the core).
 *
 * The header of the module file _repynet.c, as CPython's
 * Modules/_sqlite/module.h is of module.c: the module defines the state,
 * so the state keeps the module's name, and every glue file includes it
 * first.  What a topic offers the others is in that topic's header
 * (py_errors.h, py_args.h, py_limits.h, py_sockets.h, py_api.h, py_queue.h,
 * py_v1.h), so a change to one topic edits one header.
 *
 * Module functions: the topic file defines each, its header declares it,
 * and the one method table, in _repynet.c, lists it with its docstring.
 * Its C name is repynet_ followed by its Python name: repynet__usage is
 * _repynet._usage.
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

/*
 * The Repy exception classes C raises, defined in repynet/errors.py and
 * handed over once at import (repynet._repynet._register_exceptions).
 * X(enum suffix, Python class name).
 */
#define REPYNET_EXCEPTIONS(X)                                                 \
    X(INTERNAL, "InternalRepyError")                                          \
    X(REPY, "RepyException")                                                  \
    X(ARGUMENT, "RepyArgumentError")                                          \
    X(TIMEOUT, "TimeoutError")                                                \
    X(RESOURCE_EXHAUSTED, "ResourceExhaustedError")                           \
    X(RESOURCE_FORBIDDEN, "ResourceForbiddenError")                           \
    X(NETWORK, "NetworkError")                                                \
    X(NETWORK_ADDRESS, "NetworkAddressError")                                 \
    X(ALREADY_LISTENING, "AlreadyListeningError")                             \
    X(DUPLICATE_TUPLE, "DuplicateTupleError")                                 \
    X(CLEANUP_IN_PROGRESS, "CleanupInProgressError")                          \
    X(INTERNET_CONNECTIVITY, "InternetConnectivityError")                     \
    X(ADDRESS_BINDING, "AddressBindingError")                                 \
    X(CONNECTION_REFUSED, "ConnectionRefusedError")                           \
    X(SOCKET_CLOSED_LOCAL, "SocketClosedLocal")                               \
    X(SOCKET_CLOSED_REMOTE, "SocketClosedRemote")                             \
    X(SOCKET_WOULD_BLOCK, "SocketWouldBlockError")

typedef enum repynet_exc {
#define REPYNET_EXC_ENUM(id, name) REPYNET_EXC_##id,
    REPYNET_EXCEPTIONS(REPYNET_EXC_ENUM)
#undef REPYNET_EXC_ENUM
        REPYNET_EXC_COUNT,
    /* Not classes: outcomes the errno table hands back to the caller. */
    REPYNET_EXC_RETRY = REPYNET_EXC_COUNT, /* try the syscall again */
    REPYNET_EXC_CONFLICT, /* apply the conflict rules U/C1/C2 */
} repynet_exc_t;

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

/*
 * The module state, grouped by the file that owns (sets up and changes)
 * each group; _repynet.c visits, clears and frees them all.
 */
typedef struct repynet_state {
    /* _repynet.c: the leak-check counts (each type's new and dealloc
     * change its own), and the three seed-000 tables, whose values are
     * borrowed socket objects (py_sockets.c fills them, py_api.c looks
     * conflicts up in them). */
    Py_ssize_t live[REPYNET_LIVE_COUNT];
    rn_table_t *tcp_conns, *tcp_listeners, *udp_listeners;

    /* py_errors.c: the exception classes (strong references) and the
     * cached messages. */
    PyObject *exceptions[REPYNET_EXC_COUNT];
    repynet_cached_message messages[REPYNET_MESSAGE_CACHE];

    /* py_limits.c: the restrictions and their use, and the local-address
     * preferences (spec 4.3): NULL when off, else a list of ("ip" |
     * "iface", text) tuples in order of preference. */
    repynet_resources *resources;
    PyObject *ip_preferences;
    int nootherips;

    /* py_api.c: its type, and where getmyip looks for a route (D19): a
     * tuple of address str per family. */
    PyTypeObject *api_type;
    PyObject *probes_v4, *probes_v6;

    /* py_sockets.c: its three types, and the D32 hand-over: threads of
     * ours waiting to take the GIL back, how often one took it (a futex
     * word) and threads asleep until it changes (all atomic), whether a
     * thread of ours holds it (atomic, a hint: set when repynet takes it
     * back, cleared when repynet releases it), the thread whose calls in a
     * row are counted and how many (under the GIL), and a receive buffer
     * free for the next call (NULL while a call without the GIL uses it). */
    PyTypeObject *tcp_socket_type, *tcp_server_type, *udp_server_type;
    int gil_wanted;
    unsigned gil_takes;
    int gil_take_sleepers;
    int gil_held;
    PyThreadState *holder;
    unsigned holder_calls;
    char *scratch;
    /* ... and the spin before a wait: the machine's CPUs, threads of
     * ours spinning (atomic; one per CPU beyond the first may), and
     * whether the CPUs are free to spin on, judged at most once per window
     * (under the GIL). */
    int cpus, spinners;
    /* ... and this process.  In a forked child an os.register_at_fork hook
     * sets it again and clears the counts of threads the child does not
     * have; a link between two sockets (py_sockets.h) holds only in the
     * process that made it. */
    pid_t pid;
    int spin_allowed;
    double spin_judged_at;

    /* py_queue.c: its two types and its list of live AsyncSockets. */
    PyTypeObject *completion_queue_type, *async_socket_type;
    void *async_sockets;
} repynet_state;

extern PyModuleDef repynet_module;

/* Borrowed state of the module object. */
static inline repynet_state *
repynet_get_state(PyObject *module)
{
    return (repynet_state *)PyModule_GetState(module);
}

/* Borrowed state of the module that defines a heap type (NULL + error if
 * the type is not ours). */
static inline repynet_state *
repynet_state_from_type(PyTypeObject *type)
{
#if PY_VERSION_HEX >= 0x030A0000
    PyObject *module = PyType_GetModuleByDef(type, &repynet_module);
#else
    /* Our types cannot be subclassed, so the type itself holds the module. */
    PyObject *module = PyType_GetModule(type);
#endif
    if (module == NULL)
        return NULL;
    return repynet_get_state(module);
}

#endif /* REPYNET_GLUE_H */
