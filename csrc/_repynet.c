/*
 * _repynet.c: module wiring only (PyModuleDef, state, exec slots).
 *
 * Each topic file adds its own functions and types from its exec
 * function; this file only calls them in order and owns the state's
 * traverse/clear/free.
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
        if (count == NULL || PyDict_SetItemString(result, names[kind], count) < 0) {
            Py_XDECREF(count);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(count);
    }
    return result;
}

/* --- the seed-000 tables ------------------------------------------------ */

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

static PyMethodDef module_methods[] = {
    {"_live_objects", live_objects, METH_NOARGS,
     "Counts of live C objects by kind (for the test suite's leak check)."},
    {NULL, NULL, 0, NULL},
};

static int
repynet_exec(PyObject *module)
{
    if (repynet_errors_exec(module) < 0)
        return -1;
    if (repynet_args_exec(module) < 0)
        return -1;
    if (repynet_limits_exec(module) < 0)
        return -1;
    if (tables_new(repynet_get_state(module)) < 0)
        return -1;
    if (repynet_sockets_exec(module) < 0)
        return -1;
    if (repynet_api_exec(module) < 0)
        return -1;
    if (repynet_queue_exec(module) < 0)
        return -1;
    if (repynet_v1_exec(module) < 0)
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
