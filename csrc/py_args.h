/*
 * py_args.h: what py_args.c offers: the argument checks every call runs
 * (spec 1.1, D3-D6, D23) and the conversions of data and addresses.
 */
#ifndef REPYNET_PY_ARGS_H
#define REPYNET_PY_ARGS_H

#include "_repynet.h"

/* Reads a Python int into a C int; 0, or -1 with OverflowError/TypeError. */
static inline int
repynet_as_int(PyObject *obj, int *out)
{
    long value = PyLong_AsLong(obj);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value does not fit a C int");
        return -1;
    }
    *out = (int)value;
    return 0;
}

/* The most characters of a str argument an error message shows. */
#define REPYNET_ARG_TEXT_MAX 64

/*
 * How an error message shows an argument, from the exact value the checks
 * read and never through a subclass's __repr__/__str__ (no user code
 * runs): a str's first REPYNET_ARG_TEXT_MAX characters, quoted, then
 * "... (N characters)" if cut; an int's decimal value (only its sign
 * beyond 64 bits); a float's repr; anything else by its type.  New
 * reference, or NULL with an exception set.
 */
PyObject *repynet_arg_text(PyObject *arg);
/* Raises exc with the formatted message followed by repynet_arg_text(arg);
 * returns NULL. */
PyObject *repynet_raise_with_arg(repynet_state *state, repynet_exc_t exc,
                                 PyObject *arg, const char *format, ...);
/* Type checks (spec 1.1 step 3): str; int (bool refused, D5); int or
 * float (bool refused, D6).  0, or -1 with RepyArgumentError set. */
int repynet_arg_str(repynet_state *state, PyObject *arg, const char *what);
int repynet_arg_int(repynet_state *state, PyObject *arg, const char *what);
int repynet_arg_number(repynet_state *state, PyObject *arg, const char *what);

/* An IP literal argument (D3/D4/D13): fills *out and returns its family,
 * or -1 with RepyArgumentError set naming the argument. */
int repynet_arg_address(repynet_state *state, PyObject *arg, const char *what,
                        rn_addr_t *out);

/* Fails with RepyArgumentError unless the call has exactly expected
 * positional arguments and no keywords (spec 1.1 steps 1-2). */
int repynet_check_arity(repynet_state *state, const char *name,
                        Py_ssize_t nargs, PyObject *kwnames,
                        Py_ssize_t expected);
/* An int argument (subclasses allowed, bool refused, D5) in [min, max]. */
int repynet_arg_long(repynet_state *state, PyObject *arg, const char *what,
                     long min, long max, long *out);
/* A port: an int in 1..65535. */
int repynet_arg_port(repynet_state *state, PyObject *arg, const char *what,
                     uint16_t *out);
/* A size (recv's, D18): an int of at least 1; one above max, however
 * large, reads as max. */
int repynet_arg_size(repynet_state *state, PyObject *arg, const char *what,
                     long max, long *out);
/* A timeout (D6): int or float, not bool, finite and > 0. */
int repynet_arg_timeout(repynet_state *state, PyObject *arg, double *out);
/* A datagram's payload within the UDP cap (spec 2.3 step 9, D14). */
int repynet_arg_datagram_size(repynet_state *state, const Py_buffer *view);
/* The local and the destination IP of the same family (D21: checked once
 * the bind proved the local IP is ours). */
int repynet_arg_same_family(repynet_state *state, const rn_tuple_t *key);

/* sendmessage's and openconnection's arguments as given: both ends and the
 * one other argument, the message (sendmessage; timeout NULL) or the
 * timeout (openconnection; message NULL). */
typedef struct {
    PyObject *destip, *destport, *localip, *localport;
    PyObject *message, *timeout;
} repynet_ends_given;
/* ... and as checked. */
typedef struct {
    rn_tuple_t key;    /* local and remote end */
    Py_buffer message; /* release with repynet_release_data */
    double timeout;
} repynet_ends_checked;
/*
 * The argument checks the two calls share, in the spec's order (2.3 steps
 * 1-6, 2.5 steps 1-7): the ends' types, the other argument's type (the
 * message is read in the call's mode, text), the ends' values, the
 * timeout's value, then the ends must differ.  0, or -1 with
 * RepyArgumentError set and no message held.
 */
int repynet_arg_ends(repynet_state *state, const repynet_ends_given *given,
                     int text, repynet_ends_checked *out);
/*
 * Payload (D1): any bytes-like object; in text mode also a str whose
 * characters are all <= U+00FF, read in place (one byte a character).
 * Release the view with repynet_release_data.
 */
int repynet_arg_data(repynet_state *state, PyObject *arg, int text,
                     Py_buffer *view);
void repynet_release_data(Py_buffer *view);
/* Received bytes as the mode wants them (D2): bytes, or latin-1 str. */
PyObject *repynet_data_result(const char *buf, size_t len, int text);
/* The text of an address, as a new str. */
PyObject *repynet_format_address(repynet_state *state, const rn_addr_t *addr);

/* --- module functions (in the method table of _repynet.c) ---------------- */

PyObject *repynet__parse_address(PyObject *module, PyObject *arg);

#endif /* REPYNET_PY_ARGS_H */
