/*
 * py_args.c: the one place arguments are checked (spec 1.1, D3-D6, D23).
 *
 * Values are read exactly (PyUnicode_AsUTF8AndSize, PyLong_AsLong) and
 * never through an overridable __str__/__index__/__eq__ of a subclass: the
 * checked value is the value used, so it cannot change in between.
 */
#include "_repynet.h"

int
repynet_arg_address(repynet_state *state, PyObject *arg, const char *what,
                    rn_addr_t *out)
{
    Py_ssize_t len;
    const char *text;
    int rc;

    if (!PyUnicode_Check(arg)) {
        repynet_raise(state, REPYNET_EXC_ARGUMENT,
                      "Provided %s must be a str, not %.100s", what,
                      Py_TYPE(arg)->tp_name);
        return -1;
    }
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
        repynet_raise(state, REPYNET_EXC_ARGUMENT,
                      "Provided %s is not valid! IP: %R", what, arg);
        return -1;
    }
    return rc;
}

/* _parse_address(text) -> (family, canonical text); for tests. */
static PyObject *
parse_address(PyObject *module, PyObject *arg)
{
    repynet_state *state = repynet_get_state(module);
    char text[RN_ADDR_FORMAT_SIZE];
    rn_addr_t addr;

    int family = repynet_arg_address(state, arg, "address", &addr);
    if (family < 0)
        return NULL;
    int len = rn_addr_format(&addr, text, sizeof(text));
    if (len < 0)
        return repynet_raise_chained(state, REPYNET_EXC_INTERNAL, len,
                                     "inet_ntop");
    return Py_BuildValue("(is#)", family, text, (Py_ssize_t)len);
}

static PyMethodDef args_methods[] = {
    {"_parse_address", parse_address, METH_O,
     "Parse an IP literal as the API does: (family, canonical text)."},
    {NULL, NULL, 0, NULL},
};

int
repynet_args_exec(PyObject *module)
{
    return PyModule_AddFunctions(module, args_methods);
}
