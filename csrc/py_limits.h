/*
 * py_limits.h: what py_limits.c offers: the charges of spec 6.3, the
 * permission checks of restrictions and the local-address policy of spec
 * 4.3.
 */
#ifndef REPYNET_PY_LIMITS_H
#define REPYNET_PY_LIMITS_H

#include "_repynet.h"

/*
 * The charge before a call's work: adds amount (0: only waits) to the send
 * (or receive) rate of the loopback or network kind and sleeps, GIL
 * released, until the bucket is within its limit.  -1 with an exception
 * for a rate of 0 or when a signal handler raises.  Charges after the work
 * go through repynet_charge_after.
 */
int repynet_charge_send(repynet_state *state, int loopback, double amount);
int repynet_charge_recv(repynet_state *state, int loopback, double amount);
/* The send rate a TCP send charges, in bytes per second (D31). */
double repynet_send_limit(repynet_state *state, int loopback);
/*
 * The charges after a call's work, to the send and the receive rate of the
 * loopback or network kind, waited for together (GIL released): a signal
 * ends the whole wait, leaving the unpaid part in the buckets for the next
 * call.  Never fails: the work must reach the caller.
 */
void repynet_charge_after(repynet_state *state, int loopback,
                          double send_amount, double recv_amount);
/* ResourceForbiddenError unless the local IP may be used (spec 4.3). */
int repynet_check_localip(repynet_state *state, const rn_addr_t *addr,
                          PyObject *arg);
/* ResourceForbiddenError unless port is in the allowed set; records its
 * use for getresources. */
int repynet_check_port(repynet_state *state, int tcp, uint16_t port);
/* Takes one insocket/outsocket: 0, or -1 with ResourceExhaustedError. */
int repynet_acquire(repynet_state *state, rn_counter_t *counter,
                    const char *name);
/* The first preferred local address of a family as str, or NULL without an
 * exception when preferences are off or hold none of that family. */
PyObject *repynet_preferred_ip(repynet_state *state, sa_family_t family);
/* Creates state->resources, allowing nothing until repynet applies its
 * restrictions; repynet_limits_free frees them, if they were made. */
int repynet_limits_init(repynet_state *state);
void repynet_limits_free(repynet_state *state);

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__apply_restrictions(PyObject *module, PyObject *limits);
PyObject *repynet__usage(PyObject *module, PyObject *unused);
PyObject *repynet__rate_waits(PyObject *module, PyObject *unused);
PyObject *repynet__event_acquire(PyObject *module, PyObject *unused);
PyObject *repynet__event_release(PyObject *module, PyObject *unused);
PyObject *repynet__set_ip_preferences(PyObject *module, PyObject *const *args,
                                      Py_ssize_t nargs);

#endif /* REPYNET_PY_LIMITS_H */
