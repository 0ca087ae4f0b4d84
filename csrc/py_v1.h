/*
 * py_v1.h: what py_v1.c offers: the ReadyQueue type's set-up and the
 * module functions of the Repy V1 call style (repynet/v1.py).
 */
#ifndef REPYNET_PY_V1_H
#define REPYNET_PY_V1_H

#include "_repynet.h"

int repynet_v1_exec(PyObject *module);

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__v1_openconn(PyObject *module, PyObject *args);
PyObject *repynet__v1_sendmess(PyObject *module, PyObject *args);
PyObject *repynet__v1_recv(PyObject *module, PyObject *args);
PyObject *repynet__v1_send(PyObject *module, PyObject *args);
PyObject *repynet__v1_fileno(PyObject *module, PyObject *obj);
PyObject *repynet__v1_wake_fd(PyObject *module, PyObject *unused);
PyObject *repynet__v1_wake(PyObject *module, PyObject *arg);

#endif /* REPYNET_PY_V1_H */
