/*
 * py_api.h: what py_api.c offers: the NetworkAPI type's set-up, the
 * bind-and-connect loop py_v1.c shares and the getmyip probe addresses.
 */
#ifndef REPYNET_PY_API_H
#define REPYNET_PY_API_H

#include "_repynet.h"

/* py_api.c's bind-and-connect loop until key is connected or timeout
 * seconds pass (GIL released while waiting): the fd, or -1 with an
 * exception set.  key->local.port 0 lets the kernel pick the port. */
int repynet_connect_until(repynet_state *state, const rn_tuple_t *key,
                          double timeout);

int repynet_api_exec(PyObject *module);

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__set_probe_addresses(PyObject *module, PyObject *const *args,
                                       Py_ssize_t nargs);
PyObject *repynet__probe_addresses(PyObject *module, PyObject *unused);

#endif /* REPYNET_PY_API_H */
