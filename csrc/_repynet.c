/*
 * _repynet.c: module wiring only (PyModuleDef, state, exec slots, the one
 * method table).
 *
 * The topic files define the module functions (declared in their headers)
 * and set up their own types from their exec functions; this file lists
 * every module function in one table, runs the exec functions in order,
 * owns the seed-000 tables, and owns the state's traverse/clear/free.
 */
#include "_repynet.h"
#include "py_api.h"
#include "py_args.h"
#include "py_errors.h"
#include "py_limits.h"
#include "py_queue.h"
#include "py_sockets.h"
#include "py_v1.h"

/* _live_objects() -> {kind: count}: C objects alive now, for leak checks. */
static PyObject *
live_objects(PyObject *module, PyObject *unused)
{
    static const char *const names[REPYNET_LIVE_COUNT] = {
        [REPYNET_LIVE_TCP_SOCKET] = "tcp_socket",
        [REPYNET_LIVE_TCP_SERVER] = "tcp_server",
        [REPYNET_LIVE_UDP_SERVER] = "udp_server",
        [REPYNET_LIVE_COMPLETION_QUEUE] = "completion_queue",
        [REPYNET_LIVE_ASYNC_SOCKET] = "async_socket",
    };
    repynet_state *state = repynet_get_state(module);
    PyObject *result = PyDict_New();
    if (result == NULL)
        return NULL;
    for (int kind = 0; kind < REPYNET_LIVE_COUNT; kind++) {
        PyObject *count = PyLong_FromSsize_t(state->live[kind]);
        if (count == NULL ||
            PyDict_SetItemString(result, names[kind], count) < 0) {
            Py_XDECREF(count);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(count);
    }
    return result;
}

/* --- the seed-000 tables ------------------------------------------------- */

/* py_sockets.c adds and removes the entries and py_api.c looks conflicts up
 * in them, so they belong to neither: they live as long as the module. */
static int
tables_new(repynet_state *state)
{
    state->tcp_conns = rn_table_new();
    state->tcp_listeners = rn_table_new();
    state->udp_listeners = rn_table_new();
    if (!state->tcp_conns || !state->tcp_listeners || !state->udp_listeners) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
tables_free(repynet_state *state)
{
    rn_table_free(state->tcp_conns);
    rn_table_free(state->tcp_listeners);
    rn_table_free(state->udp_listeners);
    state->tcp_conns = state->tcp_listeners = state->udp_listeners = NULL;
}

/*
 * Every module-level function, by the topic file that defines it.  The
 * types' own methods stay with their types (py_api.c, py_sockets.c,
 * py_queue.c, py_v1.c).
 */
static PyMethodDef module_methods[] = {
    /* _repynet.c */
    {"_live_objects", live_objects, METH_NOARGS,
     "Counts of live C objects by kind (for the test suite's leak check)."},
    /* py_errors.c: the exception registry and the errno table */
    {"_register_exceptions", repynet__register_exceptions, METH_O,
     "Hand the Repy exception classes (a namespace with them as attributes) "
     "to C."},
    {"_errno_class", (PyCFunction)(void (*)(void))repynet__errno_class,
     METH_FASTCALL,
     "The Repy class an errno becomes in a call context (testing aid)."},
    {"_errno_group", repynet__errno_group, METH_O,
     "The OS-error group of an errno (testing aid)."},
    /* py_args.c: argument checks */
    {"_parse_address", repynet__parse_address, METH_O,
     "Parse an IP literal as the API does: (family, canonical text)."},
    /* py_limits.c: restrictions, usage, charges, local-address preferences */
    {"_apply_restrictions", repynet__apply_restrictions, METH_O,
     "Put restrictions in force (a dict; see repynet.restrictions)."},
    {"_usage", repynet__usage, METH_NOARGS, "The network usage counters."},
    {"_rate_waits", repynet__rate_waits, METH_NOARGS,
     "Seconds slept for each rate since import."},
    {"_event_acquire", repynet__event_acquire, METH_NOARGS,
     "Take one 'events' item or raise ResourceExhaustedError."},
    {"_event_release", repynet__event_release, METH_NOARGS,
     "Give one 'events' item back."},
    {"_set_ip_preferences",
     (PyCFunction)(void (*)(void))repynet__set_ip_preferences, METH_FASTCALL,
     "Set the local-address preferences (spec 4.3)."},
    /* py_sockets.c: threads and the GIL */
    {"_spin_judgement", repynet__spin_judgement, METH_NOARGS,
     "Whether a would-block wait may spin now, judged afresh (testing "
     "aid)."},
    {"_peer_in_process", repynet__peer_in_process, METH_O,
     "_peer_in_process(sock) -> whether send knows, without a peek, that "
     "the peer of a TCP socket has not closed (it is a repynet socket of "
     "this process)."},
    /* py_api.c: getmyip */
    {"_set_probe_addresses",
     (PyCFunction)(void (*)(void))repynet__set_probe_addresses, METH_FASTCALL,
     "Set the getmyip probe addresses (v4, v6)."},
    {"_probe_addresses", repynet__probe_addresses, METH_NOARGS,
     "The getmyip probe addresses (v4, v6)."},
    /* py_queue.c: the completion port */
    {"_port_fds", repynet__port_fds, METH_NOARGS,
     "The fds the process-wide completion port owns (epoll fd, eventfd); "
     "[] when there is no port.  They live on by design."},
    {"_async_shutdown", repynet__async_shutdown, METH_NOARGS,
     "Close every AsyncSocket and release the completion port (atexit)."},
    /* py_v1.c: the Repy V1 call style */
    {"_v1_openconn", repynet__v1_openconn, METH_VARARGS,
     "_v1_openconn(text, destip, destport, localip, localport, timeout) -> "
     "TCPSocket (localport 0: any port)."},
    {"_v1_sendmess", repynet__v1_sendmess, METH_VARARGS,
     "_v1_sendmess(text, destip, destport, message, localip) -> int (from "
     "an ephemeral local port)."},
    {"_v1_recv", repynet__v1_recv, METH_VARARGS,
     "_v1_recv(sock, bytes, wake_fd): sock.recv(bytes), waiting (GIL "
     "released) while it would block; SocketClosedLocal once wake_fd is "
     "readable."},
    {"_v1_send", repynet__v1_send, METH_VARARGS,
     "_v1_send(sock, message, wake_fd): sock.send(message), waiting the "
     "same way."},
    {"_v1_fileno", repynet__v1_fileno, METH_O,
     "_v1_fileno(sock) -> the fd of a repynet socket, -1 once closed."},
    {"_v1_wake_fd", repynet__v1_wake_fd, METH_NOARGS,
     "_v1_wake_fd() -> a new wake-up eventfd (CLOEXEC, non-blocking)."},
    {"_v1_wake", repynet__v1_wake, METH_O,
     "_v1_wake(fd): make a wake-up eventfd readable for good."},
    {NULL, NULL, 0, NULL},
};

/*
 * The exec steps, in order.  Before the first, CPython has made the state
 * (zeroed) and added every function of module_methods
 * (PyModule_FromDefAndSpec); if a step fails, repynet_free still frees what
 * the steps before it made, once the module is collected.
 *
 * 1. The resources (py_limits.c) and the tables: plain memory that the
 *    calls reach through the state and that depends on nothing.
 * 2. The types of py_sockets.c, py_api.c and py_v1.c (and py_api.c's probe
 *    addresses), in any order: each exec makes only its own, and the types
 *    find each other through the state only when called, after the import.
 * 3. py_queue.c last: it registers _async_shutdown (one of the functions
 *    above) with atexit, and a failed import does not unregister it, so no
 *    step may come after it that could fail and leave the handler of a
 *    module that failed to import.
 *
 * No step raises a Repy exception: the classes arrive after the import,
 * from repynet/__init__.py (_register_exceptions).
 */
static int
repynet_exec(PyObject *module)
{
    repynet_state *state = repynet_get_state(module);

    if (repynet_limits_init(state) < 0 || tables_new(state) < 0)
        return -1;
    if (repynet_sockets_exec(module) < 0)
        return -1;
    if (repynet_api_exec(module) < 0)
        return -1;
    if (repynet_v1_exec(module) < 0)
        return -1;
    if (repynet_queue_exec(module) < 0)
        return -1;
    return 0;
}

static int
repynet_traverse(PyObject *module, visitproc visit, void *arg)
{
    repynet_state *state = repynet_get_state(module);
    for (int i = 0; i < REPYNET_EXC_COUNT; i++)
        Py_VISIT(state->exceptions[i]);
    Py_VISIT(state->ip_preferences);
    Py_VISIT(state->probes_v4);
    Py_VISIT(state->probes_v6);
    Py_VISIT(state->api_type);
    Py_VISIT(state->tcp_socket_type);
    Py_VISIT(state->tcp_server_type);
    Py_VISIT(state->udp_server_type);
    Py_VISIT(state->completion_queue_type);
    Py_VISIT(state->async_socket_type);
    return 0;
}

static int
repynet_clear(PyObject *module)
{
    repynet_state *state = repynet_get_state(module);
    for (int i = 0; i < REPYNET_EXC_COUNT; i++)
        Py_CLEAR(state->exceptions[i]);
    for (int i = 0; i < REPYNET_MESSAGE_CACHE; i++)
        Py_CLEAR(state->messages[i].message);
    Py_CLEAR(state->ip_preferences);
    Py_CLEAR(state->probes_v4);
    Py_CLEAR(state->probes_v6);
    Py_CLEAR(state->api_type);
    Py_CLEAR(state->tcp_socket_type);
    Py_CLEAR(state->tcp_server_type);
    Py_CLEAR(state->udp_server_type);
    Py_CLEAR(state->completion_queue_type);
    Py_CLEAR(state->async_socket_type);
    return 0;
}

static void
repynet_free(void *module)
{
    repynet_clear((PyObject *)module);
    /* Only here: sockets may outlive a clear() of a module cycle. */
    repynet_limits_free(repynet_get_state((PyObject *)module));
    tables_free(repynet_get_state((PyObject *)module));
    repynet_sockets_free(repynet_get_state((PyObject *)module));
}

static PyModuleDef_Slot repynet_slots[] = {
    {Py_mod_exec, repynet_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* The completion port and the resource accounting are per process. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

PyModuleDef repynet_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "repynet._repynet",
    .m_doc = "The C core of repynet (private: use the repynet package).",
    .m_size = sizeof(repynet_state),
    .m_methods = module_methods,
    .m_slots = repynet_slots,
    .m_traverse = repynet_traverse,
    .m_clear = repynet_clear,
    .m_free = repynet_free,
};

PyMODINIT_FUNC
PyInit__repynet(void)
{
    return PyModuleDef_Init(&repynet_module);
}
