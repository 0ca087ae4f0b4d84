/*
 * py_api.h: what py_api.c offers: the NetworkAPI type's set-up and the
 * bind-and-connect loop py_v1.c shares.
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

#endif /* REPYNET_PY_API_H */
