/*
 * py_queue.h: what py_queue.c offers: the set-up of the private
 * CompletionQueue and AsyncSocket types and the completion port's module
 * functions.
 */
#ifndef REPYNET_PY_QUEUE_H
#define REPYNET_PY_QUEUE_H

#include "_repynet.h"

int repynet_queue_exec(PyObject *module);

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__port_fds(PyObject *module, PyObject *unused);
PyObject *repynet__async_shutdown(PyObject *module, PyObject *unused);

#endif /* REPYNET_PY_QUEUE_H */
