/*
 * py_args.c: the one place arguments are checked (spec 1.1, D3-D6, D23).
 *
 * Values are read exactly (PyUnicode_AsUTF8AndSize, PyLong_AsLong) and
 * never through an overridable __str__/__index__/__eq__ of a subclass: the
 * checked value is the value used, so it cannot change in between.  Error
 * messages show an argument through repynet_arg_text() only, which reads
 * the same exact value, so a message never runs user code either and never
 * holds more than the first REPYNET_ARG_TEXT_MAX characters of it.
 *
 * Each message is written here once, so a call checks an argument by
 * calling the function for its kind, in the spec's order; the calls
 * sendmessage and openconnection share their whole prologue
 * (repynet_arg_ends).  The private types (CompletionQueue, AsyncSocket,
 * ReadyQueue) and the configuration functions (_apply_restrictions and
 * the like) serve repynet's own Python code and check their arguments
 * themselves, with Python's exceptions.
 */
#include "py_args.h"
#include "_repynet.h"
#include "py_errors.h"

#include <math.h>

/* --- the one formatter of arguments in messages -------------------------- */

/* A str argument's exact characters, quoted as repr() quotes them, cut to
 * REPYNET_ARG_TEXT_MAX characters.  New reference or NULL. */
static PyObject *
str_text(PyObject *arg)
{
    Py_ssize_t len = PyUnicode_GetLength(arg);
    if (len < 0)
        return NULL;
    Py_ssize_t shown = len > REPYNET_ARG_TEXT_MAX ? REPYNET_ARG_TEXT_MAX : len;
    /* Substring copies a subclass's characters into an exact str, whose
     * repr is str's own. */
    PyObject *head = PyUnicode_Substring(arg, 0, shown);
    if (head == NULL)
        return NULL;
    PyObject *quoted = PyUnicode_Type.tp_repr(head);
    Py_DECREF(head);
    if (quoted == NULL || shown == len)
        return quoted;
    PyObject *text =
        PyUnicode_FromFormat("%U... (%zd characters)", quoted, len);
    Py_DECREF(quoted);
    return text;
}

/* An int argument's exact value in decimal; beyond 64 bits only its sign
 * (the digits of a huge int cost time, and Python limits them). */
static PyObject *
int_text(PyObject *arg)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    if (overflow > 0)
        return PyUnicode_FromString("an int above 2**63");
    if (overflow < 0)
        return PyUnicode_FromString("an int below -2**63");
    return PyUnicode_FromFormat("%lld", value);
}

PyObject *
repynet_arg_text(PyObject *arg)
{
    if (PyUnicode_Check(arg))
        return str_text(arg);
    if (PyLong_Check(arg) && !PyBool_Check(arg))
        return int_text(arg);
    if (PyFloat_Check(arg)) {
        char *digits = PyOS_double_to_string(PyFloat_AS_DOUBLE(arg), 'r', 0,
                                             Py_DTSF_ADD_DOT_0, NULL);
        if (digits == NULL)
            return NULL;
        PyObject *text = PyUnicode_FromString(digits);
        PyMem_Free(digits);
        return text;
    }
    if (arg == Py_None || PyBool_Check(arg))
        return PyUnicode_FromString(arg == Py_None   ? "None"
                                    : arg == Py_True ? "True"
                                                     : "False");
    return PyUnicode_FromFormat("a %.100s", Py_TYPE(arg)->tp_name);
}

PyObject *
repynet_raise_with_arg(repynet_state *state, repynet_exc_t exc, PyObject *arg,
                       const char *format, ...)
{
    va_list args;
    va_start(args, format);
    PyObject *prefix = PyUnicode_FromFormatV(format, args);
    va_end(args);
    if (prefix == NULL)
        return NULL;
    PyObject *text = repynet_arg_text(arg);
    if (text != NULL)
        repynet_raise(state, exc, "%U%U", prefix, text);
    Py_DECREF(prefix);
    Py_XDECREF(text);
    return NULL;
}

/* --- types --------------------------------------------------------------- */

int
repynet_arg_str(repynet_state *state, PyObject *arg, const char *what)
{
    if (PyUnicode_Check(arg))
        return 0;
    repynet_raise(state, REPYNET_EXC_ARGUMENT,
                  "Provided %s must be a str, not %.100s", what,
                  Py_TYPE(arg)->tp_name);
    return -1;
}

int
repynet_arg_int(repynet_state *state, PyObject *arg, const char *what)
{
    if (PyLong_Check(arg) && !PyBool_Check(arg))
        return 0;
    repynet_raise(state, REPYNET_EXC_ARGUMENT,
                  "Provided %s must be an int, not %.100s", what,
                  Py_TYPE(arg)->tp_name);
    return -1;
}

int
repynet_arg_number(repynet_state *state, PyObject *arg, const char *what)
{
    if (PyFloat_Check(arg) || (PyLong_Check(arg) && !PyBool_Check(arg)))
        return 0;
    repynet_raise(state, REPYNET_EXC_ARGUMENT,
                  "Provided %s must be an int or float, not %.100s", what,
                  Py_TYPE(arg)->tp_name);
    return -1;
}

/* --- values -------------------------------------------------------------- */

int
repynet_arg_address(repynet_state *state, PyObject *arg, const char *what,
                    rn_addr_t *out)
{
    Py_ssize_t len;
    const char *text;
    int rc;

    if (repynet_arg_str(state, arg, what) < 0)
        return -1;
    text = PyUnicode_AsUTF8AndSize(arg, &len);
    if (text == NULL) {
        /* Lone surrogates cannot be an address either. */
        PyErr_Clear();
        rc = -EINVAL;
    }
    else {
        rc = rn_addr_parse(text, (size_t)len, out);
    }
    if (rc < 0) {
        repynet_raise_with_arg(state, REPYNET_EXC_ARGUMENT, arg,
                               "Provided %s is not valid! IP: ", what);
        return -1;
    }
    return rc;
}

int
repynet_check_arity(repynet_state *state, const char *name, Py_ssize_t nargs,
                    PyObject *kwnames, Py_ssize_t expected)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        repynet_raise(state, REPYNET_EXC_ARGUMENT,
                      "%s() takes no keyword arguments", name);
        return -1;
    }
    if (nargs != expected) {
        repynet_raise(state, REPYNET_EXC_ARGUMENT,
                      "%s() takes exactly %zd arguments (%zd given)", name,
                      expected, nargs);
        return -1;
    }
    return 0;
}

int
repynet_arg_long(repynet_state *state, PyObject *arg, const char *what,
                 long min, long max, long *out)
{
    int overflow;

    if (repynet_arg_int(state, arg, what) < 0)
        return -1;
    /* An int subclass is read by value: no __index__ runs. */
    long value = PyLong_AsLongAndOverflow(arg, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow != 0 || value < min || value > max) {
        repynet_raise_with_arg(state, REPYNET_EXC_ARGUMENT, arg,
                               "Provided %s is not valid! Value: ", what);
        return -1;
    }
    *out = value;
    return 0;
}

int
repynet_arg_port(repynet_state *state, PyObject *arg, const char *what,
                 uint16_t *out)
{
    long port;
    if (repynet_arg_long(state, arg, what, 1, 65535, &port) < 0)
        return -1;
    *out = (uint16_t)port;
    return 0;
}

int
repynet_arg_size(repynet_state *state, PyObject *arg, const char *what,
                 long max, long *out)
{
    /* The common case first: no message is formatted for it. */
    if (PyLong_Check(arg) && !PyBool_Check(arg)) {
        int overflow;
        long value = PyLong_AsLongAndOverflow(arg, &overflow);
        if (overflow > 0 || value > max) {
            *out = max;
            return 0;
        }
        if (overflow == 0 && value >= 1) {
            *out = value;
            return 0;
        }
    }
    return repynet_arg_long(state, arg, what, 1, max, out);
}

int
repynet_arg_timeout(repynet_state *state, PyObject *arg, double *out)
{
    double value;

    if (repynet_arg_number(state, arg, "timeout") < 0)
        return -1;
    if (PyFloat_Check(arg)) {
        value = PyFloat_AS_DOUBLE(arg);
    }
    else {
        value = PyLong_AsDouble(arg);
        if (value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            value = Py_HUGE_VAL; /* too large to be finite */
        }
    }
    if (!isfinite(value) || value <= 0.0) {
        repynet_raise_with_arg(state, REPYNET_EXC_ARGUMENT, arg,
                               "Provided timeout is not valid, must be "
                               "positive and finite! Timeout: ");
        return -1;
    }
    *out = value;
    return 0;
}

int
repynet_arg_data(repynet_state *state, PyObject *arg, int text,
                 Py_buffer *view)
{
    if (PyUnicode_Check(arg)) {
        if (!text) {
            repynet_raise(state, REPYNET_EXC_ARGUMENT,
                          "Provided message must be bytes-like, not str "
                          "(str is accepted in text mode)");
            return -1;
        }
#if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(arg) < 0)
            return -1;
#endif
        if (PyUnicode_KIND(arg) != PyUnicode_1BYTE_KIND) {
            repynet_raise(state, REPYNET_EXC_ARGUMENT,
                          "Provided message has a character above U+00FF; "
                          "text mode sends one byte a character");
            return -1;
        }
        /* Compact 1-byte strings hold exactly their latin-1 bytes. */
        memset(view, 0, sizeof(*view));
        view->buf = PyUnicode_1BYTE_DATA(arg);
        view->len = PyUnicode_GET_LENGTH(arg);
        return 0;
    }
    if (!PyObject_CheckBuffer(arg)) {
        repynet_raise(state, REPYNET_EXC_ARGUMENT,
                      "Provided message must be bytes-like, not %.100s",
                      Py_TYPE(arg)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(arg, view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        repynet_raise(state, REPYNET_EXC_ARGUMENT,
                      "Provided message must be a contiguous bytes-like "
                      "object");
        return -1;
    }
    return 0;
}

int
repynet_arg_datagram_size(repynet_state *state, const Py_buffer *view)
{
    if (view->len <= RN_UDP_MAX_PAYLOAD)
        return 0;
    repynet_raise(state, REPYNET_EXC_ARGUMENT,
                  "Provided message is too long: %zd bytes, the limit is %d",
                  view->len, RN_UDP_MAX_PAYLOAD);
    return -1;
}

/* --- both ends of sendmessage and openconnection ------------------------- */

/* The two ends must differ (spec 2.3 step 6, 2.5 step 7; D24). */
static int
distinct_ends(repynet_state *state, const rn_tuple_t *key)
{
    if (key->local.port != key->remote.port ||
        !rn_addr_equal(&key->local.addr, &key->remote.addr))
        return 0;
    repynet_raise(state, REPYNET_EXC_ARGUMENT,
                  "Local and destination address and port are the same");
    return -1;
}

int
repynet_arg_same_family(repynet_state *state, const rn_tuple_t *key)
{
    if (key->local.addr.family == key->remote.addr.family)
        return 0;
    repynet_raise(state, REPYNET_EXC_ARGUMENT,
                  "Provided localip and destip are of different address "
                  "families");
    return -1;
}

/* The other argument's type: the message (read, in the call's mode) or the
 * timeout (spec 2.3 step 3, 2.5 step 3). */
static int
other_type(repynet_state *state, const repynet_ends_given *given, int text,
           repynet_ends_checked *out)
{
    if (given->message != NULL)
        return repynet_arg_data(state, given->message, text, &out->message);
    return repynet_arg_number(state, given->timeout, "timeout");
}

int
repynet_arg_ends(repynet_state *state, const repynet_ends_given *given,
                 int text, repynet_ends_checked *out)
{
    rn_tuple_t *key = &out->key;

    /* Zeroed whole, padding included, like every key the tables see. */
    memset(key, 0, sizeof(*key));
    out->message.obj = NULL;
    out->timeout = 0.0;
    if (repynet_arg_str(state, given->destip, "destip") < 0 ||
        repynet_arg_str(state, given->localip, "localip") < 0 ||
        repynet_arg_int(state, given->destport, "destport") < 0 ||
        repynet_arg_int(state, given->localport, "localport") < 0 ||
        other_type(state, given, text, out) < 0)
        return -1;
    if (repynet_arg_address(state, given->destip, "destip",
                            &key->remote.addr) < 0 ||
        repynet_arg_address(state, given->localip, "localip",
                            &key->local.addr) < 0 ||
        repynet_arg_port(state, given->destport, "destport",
                         &key->remote.port) < 0 ||
        repynet_arg_port(state, given->localport, "localport",
                         &key->local.port) < 0 ||
        (given->timeout != NULL &&
         repynet_arg_timeout(state, given->timeout, &out->timeout) < 0) ||
        distinct_ends(state, key) < 0) {
        repynet_release_data(&out->message);
        return -1;
    }
    return 0;
}

void
repynet_release_data(Py_buffer *view)
{
    if (view->obj != NULL)
        PyBuffer_Release(view);
}

PyObject *
repynet_data_result(const char *buf, size_t len, int text)
{
    if (text)
        return PyUnicode_DecodeLatin1(buf, (Py_ssize_t)len, NULL);
    return PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
}

PyObject *
repynet_format_address(repynet_state *state, const rn_addr_t *addr)
{
    char text[RN_ADDR_FORMAT_SIZE];
    int len = rn_addr_format(addr, text, sizeof(text));
    if (len < 0)
        return repynet_raise_chained(state, REPYNET_EXC_INTERNAL, len,
                                     "inet_ntop");
    return PyUnicode_FromStringAndSize(text, len);
}

/* _parse_address(text) -> (family, canonical text); for tests. */
PyObject *
repynet__parse_address(PyObject *module, PyObject *arg)
{
    repynet_state *state = repynet_get_state(module);
    rn_addr_t addr;

    int family = repynet_arg_address(state, arg, "address", &addr);
    if (family < 0)
        return NULL;
    PyObject *canonical = repynet_format_address(state, &addr);
    if (canonical == NULL)
        return NULL;
    return Py_BuildValue("(iN)", family, canonical);
}
