/*
 * py_api.h: what py_api.c offers: the NetworkAPI type's set-up, the
 * connect and datagram steps py_v1.c shares and the getmyip probe addresses.
 */
#ifndef REPYNET_PY_API_H
#define REPYNET_PY_API_H

#include "_repynet.h"

/* py_api.c's connect: waits for the send and receive rates (spec 2.5
 * step 10), then binds and connects until key is connected or timeout
 * seconds pass (GIL released while waiting): the fd, or -1 with an
 * exception set.  key->local.port 0 lets the kernel pick the port. */
int repynet_connect_until(repynet_state *state, const rn_tuple_t *key,
                          double timeout);
/* What follows a connect (spec 2.5 steps 12-13): wraps the connected fd,
 * for which the caller took an outsocket, in a TCP socket object, filling
 * in the local end the kernel picked when key leaves it open (port 0 or
 * the any address), then charges the connect.  On failure the fd is
 * closed and the outsocket given back.  New reference, or NULL. */
PyObject *repynet_connected_socket(repynet_state *state, int fd, int text,
                                   rn_tuple_t *key);
/* py_api.c's datagram send (spec 2.3 steps 12-13): sends view to dest from
 * fd, waiting (GIL released) while the socket is full, then charges it.
 * own_socket: fd is the call's own socket, held as an outsocket while it
 * sends (D11).  The bytes sent, or -1 with an exception set. */
ssize_t repynet_send_datagram(repynet_state *state, int fd,
                              const Py_buffer *view, const rn_endpoint_t *dest,
                              int own_socket);

int repynet_api_exec(PyObject *module);

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__set_probe_addresses(PyObject *module, PyObject *const *args,
                                       Py_ssize_t nargs);
PyObject *repynet__probe_addresses(PyObject *module, PyObject *unused);

#endif /* REPYNET_PY_API_H */
