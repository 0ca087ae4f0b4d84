/*
 * py_limits.c: the restrictions in force, the charges of spec 6.3 and the
 * local-address policy of spec 4.3.
 *
 * The numbers live in the core (rn_limits.c); this file decides which
 * bucket a call charges, sleeps with the GIL released and no lock held
 * while a rate is over its limit, and turns refusals into Repy exceptions.
 */
#include "py_limits.h"
#include "_repynet.h"
#include "py_args.h"
#include "py_errors.h"

#include <errno.h>
#include <ifaddrs.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --- rates --------------------------------------------------------------- */

/* The longest single sleep: a rate so small that its wait overflows
 * time_t still sleeps (in steps), never spins. */
#define REPYNET_SLEEP_STEP 1.0

/* Sleeps up to seconds (capped at one step) with the GIL released: 0, or
 * -EINTR when a signal cut the sleep short. */
static int
sleep_released(double seconds)
{
    struct timespec ts;
    int rc;
    if (!(seconds < REPYNET_SLEEP_STEP))
        seconds = REPYNET_SLEEP_STEP;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    Py_BEGIN_ALLOW_THREADS
    rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    Py_END_ALLOW_THREADS
    return rc == EINTR ? -EINTR : 0;
}

/* Announces a refusal to audit hooks, then raises exc; always -1. */
static int
deny(repynet_state *state, repynet_exc_t exc, const char *resource,
     const char *detail, const char *format, ...)
{
    va_list va;
    if (PySys_Audit("repynet.denied", "ss", resource, detail) < 0)
        return -1;
    va_start(va, format);
    PyObject *message = PyUnicode_FromFormatV(format, va);
    va_end(va);
    if (message == NULL)
        return -1;
    repynet_raise(state, exc, "%U", message);
    Py_DECREF(message);
    return -1;
}

/*
 * The charge before a call's work (amount 0 is a plain wait): raises for a
 * rate of 0, and a signal handler's exception ends the wait and the call.
 * The charges after the work are repynet_charge_after's.
 */
static int
charge(repynet_state *state, rn_rate_t *rate, const char *name, double amount)
{
    if (rn_rate_limit(rate) <= 0.0)
        return deny(state, REPYNET_EXC_RESOURCE_FORBIDDEN, name,
                    "restricted to 0", "Resource '%s' is restricted to 0",
                    name);
    /* The waits before most calls charge nothing: skip the clock then. */
    if (amount == 0.0 && rn_rate_within_limit(rate))
        return 0;
    double wait = rn_rate_charge(rate, amount, rn_now());
    if (wait <= 0.0)
        return 0;
    if (PySys_Audit("repynet.ratewait", "sd", name, wait) < 0)
        return -1;
    int rc = 0;
    double started = rn_now();
    while (wait > 0.0) {
        /* Before each sleep too: a signal that arrived while the GIL was
         * held interrupts no sleep, and must not wait for the whole wait. */
        if ((rc = PyErr_CheckSignals()) < 0)
            break;
        sleep_released(wait);
        wait = rn_rate_charge(rate, 0.0, rn_now());
    }
    rn_rate_add_waited(rate, rn_now() - started);
    return rc;
}

/* One post-work charge of repynet_charge_after. */
typedef struct {
    rn_rate_t *rate;
    const char *name;
    double amount;
    double wait; /* still to wait, seconds */
} after_work_charge;

void
repynet_charge_after(repynet_state *state, int loopback, double send_amount,
                     double recv_amount)
{
    repynet_resources *r = state->resources;
    after_work_charge charges[2] = {
        {loopback ? &r->loopsend : &r->netsend,
         loopback ? "loopsend" : "netsend", send_amount, 0.0},
        {loopback ? &r->looprecv : &r->netrecv,
         loopback ? "looprecv" : "netrecv", recv_amount, 0.0},
    };
    double started = rn_now(), now = started, longest = 0.0;
    for (int i = 0; i < 2; i++) {
        after_work_charge *c = &charges[i];
        /* A rate of 0 here means the restrictions changed during the call. */
        if (c->amount <= 0.0 || rn_rate_limit(c->rate) <= 0.0)
            continue;
        c->wait = rn_rate_charge(c->rate, c->amount, now);
        if (c->wait > 0.0 &&
            PySys_Audit("repynet.ratewait", "sd", c->name, c->wait) < 0)
            PyErr_WriteUnraisable(NULL);
        longest = fmax(longest, c->wait);
    }
    /* Both rates are waited for at once, so that one signal ends the whole
     * wait of the call (the handler runs as the call returns). */
    while (longest > 0.0 && sleep_released(longest) != -EINTR) {
        now = rn_now();
        longest = 0.0;
        for (int i = 0; i < 2; i++) {
            after_work_charge *c = &charges[i];
            if (c->wait <= 0.0)
                continue;
            c->wait = rn_rate_charge(c->rate, 0.0, now);
            if (c->wait <= 0.0)
                rn_rate_add_waited(c->rate, now - started);
            longest = fmax(longest, c->wait);
        }
    }
    now = rn_now();
    for (int i = 0; i < 2; i++)
        if (charges[i].wait > 0.0) /* cut short by a signal */
            rn_rate_add_waited(charges[i].rate, now - started);
}

int
repynet_charge_send(repynet_state *state, int loopback, double amount)
{
    repynet_resources *r = state->resources;
    if (loopback)
        return charge(state, &r->loopsend, "loopsend", amount);
    return charge(state, &r->netsend, "netsend", amount);
}

int
repynet_charge_recv(repynet_state *state, int loopback, double amount)
{
    repynet_resources *r = state->resources;
    if (loopback)
        return charge(state, &r->looprecv, "looprecv", amount);
    return charge(state, &r->netrecv, "netrecv", amount);
}

double
repynet_send_limit(repynet_state *state, int loopback)
{
    repynet_resources *r = state->resources;
    return rn_rate_limit(loopback ? &r->loopsend : &r->netsend);
}

/* _rate_waits() -> seconds slept per rate since import. */
PyObject *
repynet__rate_waits(PyObject *module, PyObject *unused)
{
    repynet_resources *r = repynet_get_state(module)->resources;
    return Py_BuildValue(
        "{s:d,s:d,s:d,s:d}", "netsend", rn_rate_waited(&r->netsend), "netrecv",
        rn_rate_waited(&r->netrecv), "loopsend", rn_rate_waited(&r->loopsend),
        "looprecv", rn_rate_waited(&r->looprecv));
}

/* --- ports and counts ---------------------------------------------------- */

int
repynet_check_port(repynet_state *state, int tcp, uint16_t port)
{
    repynet_resources *r = state->resources;
    rn_portset_t *allowed = tcp ? &r->connport : &r->messport;
    if (!rn_portset_contains(allowed, port)) {
        const char *resource = tcp ? "connport" : "messport";
        char detail[8];
        snprintf(detail, sizeof(detail), "%u", (unsigned)port);
        return deny(state, REPYNET_EXC_RESOURCE_FORBIDDEN, resource, detail,
                    "Provided localport is not allowed: resource '%s %u' "
                    "is not granted",
                    resource, (unsigned)port);
    }
    rn_portset_add(tcp ? &r->connport_used : &r->messport_used, port);
    return 0;
}

int
repynet_acquire(repynet_state *state, rn_counter_t *counter, const char *name)
{
    if (rn_counter_acquire(counter) < 0)
        return deny(state, REPYNET_EXC_RESOURCE_EXHAUSTED, name,
                    "limit exceeded", "Resource '%s' limit exceeded", name);
    return 0;
}

/* --- local-address policy (spec 4.3) ------------------------------------- */

static int
bindable(const rn_addr_t *addr)
{
    int fd = rn_udp_bound(addr, 0);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static int
append_unique(rn_addr_t *list, size_t *count, size_t max,
              const rn_addr_t *addr)
{
    for (size_t i = 0; i < *count; i++)
        if (rn_addr_equal(&list[i], addr))
            return 0;
    if (*count == max)
        return 0;
    list[(*count)++] = *addr;
    return 0;
}

static void
append_interface(const char *name, rn_addr_t *list, size_t *count, size_t max)
{
    struct ifaddrs *all, *ifa;
    if (getifaddrs(&all) < 0)
        return;
    for (ifa = all; ifa; ifa = ifa->ifa_next) {
        rn_addr_t addr;
        uint16_t port;
        if (ifa->ifa_addr == NULL || strcmp(ifa->ifa_name, name) != 0)
            continue;
        socklen_t len = ifa->ifa_addr->sa_family == AF_INET6
                            ? sizeof(struct sockaddr_in6)
                            : sizeof(struct sockaddr_in);
        if (rn_addr_from_sockaddr(ifa->ifa_addr, len, &addr, &port) == 0)
            append_unique(list, count, max, &addr);
    }
    freeifaddrs(all);
}

#define REPYNET_PREFERRED_MAX 64

/*
 * The allow-list as of now: the preferences expanded in order, kept only
 * where a UDP socket can bind, then 127.0.0.1 and ::1.  Returns the count.
 */
static size_t
preferred_addresses(repynet_state *state, rn_addr_t *out)
{
    size_t count = 0, kept = 0;
    Py_ssize_t n = PyList_GET_SIZE(state->ip_preferences);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *entry = PyList_GET_ITEM(state->ip_preferences, i);
        const char *kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(entry, 0));
        Py_ssize_t len;
        const char *text =
            PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(entry, 1), &len);
        rn_addr_t addr;
        if (strcmp(kind, "ip") == 0) {
            if (rn_addr_parse(text, (size_t)len, &addr) >= 0)
                append_unique(out, &count, REPYNET_PREFERRED_MAX, &addr);
        }
        else {
            append_interface(text, out, &count, REPYNET_PREFERRED_MAX);
        }
    }
    for (size_t i = 0; i < count; i++)
        if (bindable(&out[i]))
            out[kept++] = out[i];
    rn_addr_t loopback;
    rn_addr_parse("127.0.0.1", 9, &loopback);
    append_unique(out, &kept, REPYNET_PREFERRED_MAX, &loopback);
    rn_addr_parse("::1", 3, &loopback);
    append_unique(out, &kept, REPYNET_PREFERRED_MAX, &loopback);
    return kept;
}

int
repynet_check_localip(repynet_state *state, const rn_addr_t *addr,
                      PyObject *arg)
{
    rn_addr_t allowed[REPYNET_PREFERRED_MAX];
    if (state->ip_preferences == NULL || !state->nootherips)
        return 0;
    size_t count = preferred_addresses(state, allowed);
    for (size_t i = 0; i < count; i++)
        if (rn_addr_equal(&allowed[i], addr))
            return 0;
    char detail[RN_ADDR_FORMAT_SIZE];
    rn_addr_format(addr, detail, sizeof(detail));
    if (PySys_Audit("repynet.denied", "ss", "localip", detail) < 0)
        return -1;
    repynet_raise_with_arg(state, REPYNET_EXC_RESOURCE_FORBIDDEN, arg,
                           "Provided localip is not allowed! IP: ");
    return -1;
}

/* The first preferred address of a family, or NULL (no exception) when
 * preferences are off.  Used by getmyip. */
PyObject *
repynet_preferred_ip(repynet_state *state, sa_family_t family)
{
    rn_addr_t allowed[REPYNET_PREFERRED_MAX];
    if (state->ip_preferences == NULL)
        return NULL;
    size_t count = preferred_addresses(state, allowed);
    for (size_t i = 0; i < count; i++)
        if (allowed[i].family == family)
            return repynet_format_address(state, &allowed[i]);
    return NULL;
}

/* --- Python-visible configuration ---------------------------------------- */

/*
 * repynet/restrictions.py checks every value once; these readers check only
 * what the core needs of what it is handed: the type, and that the value
 * fits its C representation.
 */
static PyObject *
read_limit(PyObject *limits, const char *key)
{
    PyObject *value = PyDict_GetItemString(limits, key); /* borrowed */
    if (value == NULL)
        PyErr_Format(PyExc_KeyError, "restrictions lack %s", key);
    return value;
}

/* A port set: the bitmap of rn_portset_set_bitmap, as bytes. */
static int
read_ports(PyObject *limits, const char *key, rn_portset_t *out)
{
    PyObject *bitmap = read_limit(limits, key);
    if (bitmap == NULL)
        return -1;
    if (!PyBytes_CheckExact(bitmap) ||
        rn_portset_set_bitmap(out, (const uint8_t *)PyBytes_AS_STRING(bitmap),
                              (size_t)PyBytes_GET_SIZE(bitmap)) < 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a port bitmap of %d bytes "
                     "without port 0",
                     key, RN_PORTSET_BITMAP_BYTES);
        return -1;
    }
    return 0;
}

/* A count: an int that fits a long, >= 0. */
static int
read_count(PyObject *limits, const char *key, long *out)
{
    PyObject *value = read_limit(limits, key);
    if (value == NULL)
        return -1;
    if (!PyLong_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int", key);
        return -1;
    }
    *out = PyLong_AsLong(value);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (*out < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative", key);
        return -1;
    }
    return 0;
}

/* A rate: a float, finite and >= 0, as the bucket arithmetic needs. */
static int
read_rate(PyObject *limits, const char *key, double *out)
{
    PyObject *value = read_limit(limits, key);
    if (value == NULL)
        return -1;
    if (!PyFloat_CheckExact(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be a float", key);
        return -1;
    }
    *out = PyFloat_AS_DOUBLE(value);
    if (!isfinite(*out) || *out < 0.0) {
        PyErr_Format(PyExc_ValueError, "%s must be finite and not negative",
                     key);
        return -1;
    }
    return 0;
}

/* _apply_restrictions(limits): a dict from Restrictions._native_limits(). */
PyObject *
repynet__apply_restrictions(PyObject *module, PyObject *limits)
{
    repynet_state *state = repynet_get_state(module);
    repynet_resources *r = state->resources;
    static rn_portset_t connport, messport;
    static const char *const rate_names[4] = {"netsend", "netrecv", "loopsend",
                                              "looprecv"};
    static const char *const count_names[3] = {"insockets", "outsockets",
                                               "events"};
    double rates[4];
    long counts[3];

    if (!PyDict_Check(limits)) {
        PyErr_SetString(PyExc_TypeError, "limits must be a dict");
        return NULL;
    }
    /* Read everything first: a refused dict changes nothing. */
    if (read_ports(limits, "connport", &connport) < 0 ||
        read_ports(limits, "messport", &messport) < 0)
        return NULL;
    for (int i = 0; i < 4; i++)
        if (read_rate(limits, rate_names[i], &rates[i]) < 0)
            return NULL;
    for (int i = 0; i < 3; i++)
        if (read_count(limits, count_names[i], &counts[i]) < 0)
            return NULL;

    r->connport = connport;
    r->messport = messport;
    double now = rn_now();
    rn_rate_reset(&r->netsend, rates[0], now);
    rn_rate_reset(&r->netrecv, rates[1], now);
    rn_rate_reset(&r->loopsend, rates[2], now);
    rn_rate_reset(&r->looprecv, rates[3], now);
    rn_counter_set_limit(&r->insockets, counts[0]);
    rn_counter_set_limit(&r->outsockets, counts[1]);
    rn_counter_set_limit(&r->events, counts[2]);
    if (counts[1] <= 0)
        r->backlog = RN_TCP_DEFAULT_BACKLOG;
    else
        r->backlog = counts[1] < SOMAXCONN ? (int)counts[1] : SOMAXCONN;
    Py_RETURN_NONE;
}

static PyObject *
port_set(const rn_portset_t *ports)
{
    PyObject *set = PySet_New(NULL);
    if (set == NULL)
        return NULL;
    /* Word by word: a set of a few ports skips the empty words at once. */
    size_t words = sizeof(ports->bits) / sizeof(ports->bits[0]);
    for (size_t word = 0; word < words; word++) {
        for (uint64_t bits = ports->bits[word]; bits; bits &= bits - 1) {
            long port = (long)(word * 64) + __builtin_ctzll(bits);
            PyObject *value = PyLong_FromLong(port);
            if (value == NULL || PySet_Add(set, value) < 0) {
                Py_XDECREF(value);
                Py_DECREF(set);
                return NULL;
            }
            Py_DECREF(value);
        }
    }
    return set;
}

/* _usage() -> the network part of getresources()'s usage dict. */
PyObject *
repynet__usage(PyObject *module, PyObject *unused)
{
    repynet_resources *r = repynet_get_state(module)->resources;
    return Py_BuildValue(
        "{s:l,s:l,s:l,s:d,s:d,s:d,s:d,s:N,s:N}", "insockets",
        rn_counter_used(&r->insockets), "outsockets",
        rn_counter_used(&r->outsockets), "events", rn_counter_used(&r->events),
        "netsend", rn_rate_consumed(&r->netsend), "netrecv",
        rn_rate_consumed(&r->netrecv), "loopsend",
        rn_rate_consumed(&r->loopsend), "looprecv",
        rn_rate_consumed(&r->looprecv), "connport",
        port_set(&r->connport_used), "messport", port_set(&r->messport_used));
}

PyObject *
repynet__event_acquire(PyObject *module, PyObject *unused)
{
    repynet_state *state = repynet_get_state(module);
    if (repynet_acquire(state, &state->resources->events, "events") < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyObject *
repynet__event_release(PyObject *module, PyObject *unused)
{
    rn_counter_release(&repynet_get_state(module)->resources->events);
    Py_RETURN_NONE;
}

/* _set_ip_preferences(entries, nootherips): spec 4.3; entries None = off. */
PyObject *
repynet__set_ip_preferences(PyObject *module, PyObject *const *args,
                            Py_ssize_t nargs)
{
    repynet_state *state = repynet_get_state(module);
    PyObject *entries;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError,
                        "_set_ip_preferences(entries, nootherips)");
        return NULL;
    }
    int nootherips = PyObject_IsTrue(args[1]);
    if (nootherips < 0)
        return NULL;
    if (args[0] == Py_None) {
        Py_CLEAR(state->ip_preferences);
        state->nootherips = 0;
        Py_RETURN_NONE;
    }
    entries = PySequence_List(args[0]);
    if (entries == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(entries); i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
            !PyUnicode_Check(PyTuple_GET_ITEM(entry, 0)) ||
            !PyUnicode_Check(PyTuple_GET_ITEM(entry, 1)) ||
            (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 0),
                                              "ip") != 0 &&
             PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 0),
                                              "iface") != 0)) {
            Py_DECREF(entries);
            PyErr_SetString(
                PyExc_TypeError,
                "entries are ('ip', text) or ('iface', name) tuples");
            return NULL;
        }
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 0),
                                             "ip") == 0) {
            rn_addr_t addr;
            if (repynet_arg_address(state, PyTuple_GET_ITEM(entry, 1), "--ip",
                                    &addr) < 0) {
                Py_DECREF(entries);
                return NULL;
            }
        }
    }
    Py_XSETREF(state->ip_preferences, entries);
    state->nootherips = nootherips;
    Py_RETURN_NONE;
}

int
repynet_limits_init(repynet_state *state)
{
    repynet_resources *r = PyMem_Calloc(1, sizeof(*r));
    if (r == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    double now = rn_now();
    /* Nothing is allowed until repynet applies its restrictions. */
    rn_counter_init(&r->insockets, 0);
    rn_counter_init(&r->outsockets, 0);
    rn_counter_init(&r->events, 0);
    rn_rate_init(&r->netsend, 0.0, now);
    rn_rate_init(&r->netrecv, 0.0, now);
    rn_rate_init(&r->loopsend, 0.0, now);
    rn_rate_init(&r->looprecv, 0.0, now);
    r->backlog = RN_TCP_DEFAULT_BACKLOG;
    state->resources = r;
    return 0;
}

void
repynet_limits_free(repynet_state *state)
{
    repynet_resources *r = state->resources;
    if (r != NULL) {
        rn_counter_destroy(&r->insockets);
        rn_counter_destroy(&r->outsockets);
        rn_counter_destroy(&r->events);
        rn_rate_destroy(&r->netsend);
        rn_rate_destroy(&r->netrecv);
        rn_rate_destroy(&r->loopsend);
        rn_rate_destroy(&r->looprecv);
        PyMem_Free(r);
        state->resources = NULL;
    }
}
