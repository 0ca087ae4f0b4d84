/*
 * py_api.c: the network calls of Repy V2 (spec section 2, D19-D27).
 *
 * NetworkAPI(text=False) is an object whose methods are the calls; its
 * mode is what the sockets it makes inherit (D1/D2), so a bytes-mode and a
 * text-mode user work side by side.  repynet's module-level functions are
 * the bound methods of a bytes-mode instance.  Checks run in the spec's
 * order: argument types, argument values, permissions (ResourceForbidden),
 * rate waits, then the syscalls, whose errors go through the one errno
 * table (py_errors.c).
 */
#include "py_api.h"
#include "_repynet.h"
#include "py_args.h"
#include "py_errors.h"
#include "py_limits.h"
#include "py_sockets.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* The API object: the six calls, in bytes or text mode. */
typedef struct {
    PyObject_HEAD
    repynet_state *state;
    int text;
} NetworkApiObject;

/* --- shared steps -------------------------------------------------------- */

/* The permission checks of a local end (spec 2.3 steps 7-8, 2.4 steps
 * 5-6, 2.5 steps 8-9): localip allowed, then localport in connport (tcp)
 * or messport. */
static int
local_permitted(repynet_state *state, PyObject *localip,
                const rn_endpoint_t *local, int tcp)
{
    if (repynet_check_localip(state, &local->addr, localip) < 0)
        return -1;
    return repynet_check_port(state, tcp, local->port);
}

/* Steps shared by the listen calls: types, values, IP and port permission. */
static int
listen_args(repynet_state *state, PyObject *const *args, int tcp,
            rn_endpoint_t *local)
{
    if (repynet_arg_str(state, args[0], "localip") < 0 ||
        repynet_arg_int(state, args[1], "localport") < 0 ||
        repynet_arg_address(state, args[0], "localip", &local->addr) < 0 ||
        repynet_arg_port(state, args[1], "localport", &local->port) < 0)
        return -1;
    return local_permitted(state, args[0], local, tcp);
}

/*
 * Rules U, C1 and C2 with D15: what a bind/listen/connect EADDRINUSE or
 * EADDRNOTAVAIL means, judged from our tables first and the OS listings
 * second.  key's remote end is zero unless connecting.  Returns NULL.
 */
static PyObject *
raise_conflict(repynet_state *state, int tcp, int connecting, int err,
               const rn_tuple_t *key)
{
    err = err < 0 ? -err : err;
    if (!tcp) {
        if (rn_table_local_conflict(state->udp_listeners, key) ||
            rn_os_udp_find(key) == 1)
            return repynet_raise(state, REPYNET_EXC_ALREADY_LISTENING,
                                 "A UDP listener already holds this local "
                                 "address and port");
        return repynet_raise(state, REPYNET_EXC_CLEANUP_IN_PROGRESS,
                             "The local port is in use by a socket that is "
                             "being cleaned up");
    }
    if (connecting && (rn_table_lookup(state->tcp_conns, key) != NULL ||
                       rn_os_tcp_find(key, RN_TCP_ACTIVE, true) == 1))
        return repynet_raise(state, REPYNET_EXC_DUPLICATE_TUPLE,
                             "This (localip, localport, destip, destport) "
                             "tuple is already connected");
    if (err == EADDRINUSE) {
        if (rn_table_local_conflict(state->tcp_listeners, key) ||
            rn_os_tcp_find(key, RN_TCP_STATE(RN_TCP_LISTEN), false) == 1)
            return repynet_raise(state, REPYNET_EXC_ALREADY_LISTENING,
                                 "A TCP listener already holds this local "
                                 "address and port");
        return repynet_raise(state, REPYNET_EXC_CLEANUP_IN_PROGRESS,
                             "The local port is in use by a socket that is "
                             "being cleaned up");
    }
    /* D30: the tuple's previous connection is still being torn down. */
    if (connecting && rn_os_tcp_find(key, RN_TCP_CLOSING_STATES, true) == 1)
        return repynet_raise(state, REPYNET_EXC_CLEANUP_IN_PROGRESS,
                             "This tuple's previous connection is still "
                             "closing");
    if (rn_os_addr_is_local(&key->local.addr) == 0)
        return repynet_raise(state, REPYNET_EXC_ADDRESS_BINDING,
                             "Cannot bind to the local IP: it is not an "
                             "address of this host");
    /* The address is ours, so the tuple was taken: by a connection that
     * finished closing between the refusal and the look at the listing. */
    return repynet_raise(state, REPYNET_EXC_CLEANUP_IN_PROGRESS,
                         "The local address and port are still held by a "
                         "connection that is being cleaned up");
}

/* Raises the Repy exception for err in call, resolving conflicts. */
static PyObject *
raise_setup_error(repynet_state *state, repynet_call_t call, int err,
                  const rn_tuple_t *key, const char *syscall)
{
    if (repynet_errno_class(call, err) == REPYNET_EXC_CONFLICT)
        return raise_conflict(state, call != REPYNET_CALL_LISTEN_UDP,
                              call == REPYNET_CALL_CONNECT, err, key);
    return repynet_raise_errno(state, call, err, syscall);
}

/* --- name resolution ----------------------------------------------------- */

/* A string of digits and dots only (D25: never sent to the resolver). */
static int
all_digits_and_dots(const char *text, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i < len; i++)
        if ((text[i] < '0' || text[i] > '9') && text[i] != '.')
            return 0;
    return 1;
}

static PyObject *
address_error(repynet_state *state, PyObject *name, const char *why)
{
    return repynet_raise_with_arg(state, REPYNET_EXC_NETWORK_ADDRESS, name,
                                  "Cannot resolve (%s): ", why);
}

static PyObject *resolve_exact(repynet_state *state, PyObject *name,
                               sa_family_t family);

/*
 * Resolves name to the addresses of family, in resolver order without
 * duplicates (D12, D17): a new list of str.  An address literal of either
 * family is returned as given without a query (D21: every call accepts
 * both, so gethostbyname('::1') and getAddripv6('127.0.0.1') work alike).
 */
static PyObject *
resolve(repynet_state *state, PyObject *name, sa_family_t family)
{
    /* The idna codec is Python code calling the name's methods: it gets an
     * exact str, never a subclass whose methods are the user's. */
    PyObject *exact = PyUnicode_Substring(name, 0, PY_SSIZE_T_MAX);
    if (exact == NULL)
        return NULL;
    PyObject *result = resolve_exact(state, exact, family);
    Py_DECREF(exact);
    return result;
}

static PyObject *
resolve_exact(repynet_state *state, PyObject *name, sa_family_t family)
{
    PyObject *encoded = NULL, *result = NULL;
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *infos = NULL;
    Py_ssize_t len;
    rn_addr_t literal;

    const char *text = PyUnicode_AsUTF8AndSize(name, &len);
    if (text == NULL) {
        PyErr_Clear();
        return address_error(state, name, "not a valid host name");
    }
    if (len > 0 && len <= RN_ADDR_TEXT_MAX &&
        rn_addr_parse(text, (size_t)len, &literal) > 0)
        return Py_BuildValue("[O]", name);
    if (family == AF_INET && all_digits_and_dots(text, len)) {
        struct in_addr dotted;
        if (rn_ipv4_parse_dotted(text, (size_t)len, &dotted) == 0)
            return Py_BuildValue("[O]", name);
        return address_error(state, name, "not a dotted-decimal address");
    }
    if (family == AF_INET6 &&
        (all_digits_and_dots(text, len) || memchr(text, ':', (size_t)len))) {
        return address_error(state, name, "not an IPv6 address");
    }
    if (family == AF_INET && memchr(text, ':', (size_t)len)) {
        return address_error(state, name, "not an IPv4 address");
    }
    /* The resolver takes ASCII: IDNA-encode other names (D17). */
    encoded = PyUnicode_AsEncodedString(name, "idna", NULL);
    if (encoded == NULL) {
        PyErr_Clear();
        return address_error(state, name, "not a valid host name");
    }
    const char *host = PyBytes_AS_STRING(encoded);
    if (strlen(host) != (size_t)PyBytes_GET_SIZE(encoded)) {
        address_error(state, name, "embedded NUL");
        goto done;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = getaddrinfo(host, NULL, &hints, &infos);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        address_error(state, name, gai_strerror(rc));
        goto done;
    }
    result = PyList_New(0);
    if (result == NULL)
        goto done;
    for (struct addrinfo *ai = infos; ai; ai = ai->ai_next) {
        rn_addr_t addr;
        uint16_t port;
        if (rn_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &addr, &port) <
            0)
            continue;
        PyObject *text_addr = repynet_format_address(state, &addr);
        if (text_addr == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        int seen = PySequence_Contains(result, text_addr);
        if (seen < 0 || (!seen && PyList_Append(result, text_addr) < 0)) {
            Py_DECREF(text_addr);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(text_addr);
    }
    if (PyList_GET_SIZE(result) == 0) {
        Py_CLEAR(result);
        address_error(state, name, "no address of that family");
    }
done:
    if (infos)
        freeaddrinfo(infos);
    Py_XDECREF(encoded);
    return result;
}

/* The steps both lookups share: one str argument, then the charges, which
 * are always the network rates and come up front (spec 6.3). */
static int
lookup_args(repynet_state *state, const char *call, PyObject *const *args,
            Py_ssize_t nargs, PyObject *kwnames)
{
    if (repynet_check_arity(state, call, nargs, kwnames, 1) < 0 ||
        repynet_arg_str(state, args[0], "name") < 0 ||
        repynet_charge_send(state, 0, 1024.0) < 0)
        return -1;
    return repynet_charge_recv(state, 0, 4096.0);
}

static PyObject *
api_gethostbyname(NetworkApiObject *self, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    if (nargs == 1 && PySys_Audit("repynet.gethostbyname", "O", args[0]) < 0)
        return NULL;
    if (lookup_args(state, "gethostbyname", args, nargs, kwnames) < 0)
        return NULL;
    if (PyUnicode_GET_LENGTH(args[0]) == 0)
        return PyUnicode_FromString("0.0.0.0");
    PyObject *all = resolve(state, args[0], AF_INET);
    if (all == NULL)
        return NULL;
    PyObject *first = Py_NewRef(PyList_GET_ITEM(all, 0));
    Py_DECREF(all);
    return first;
}

static PyObject *
api_getaddripv6(NetworkApiObject *self, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    if (nargs == 1 && PySys_Audit("repynet.getAddripv6", "O", args[0]) < 0)
        return NULL;
    if (lookup_args(state, "getAddripv6", args, nargs, kwnames) < 0)
        return NULL;
    return resolve(state, args[0], AF_INET6);
}

/* --- getmyip (D19, D27) -------------------------------------------------- */

/* The source address the kernel would use toward probe: 0, or -errno.
 * A UDP connect sends no packet. */
static int
route_source(const rn_addr_t *probe, rn_addr_t *source)
{
    uint16_t port;
    int fd =
        socket(probe->family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = rn_tcp_connect_start(fd, probe, 80);
    if (rc == 0)
        rc = rn_sock_local(fd, source, &port);
    close(fd);
    return rc < 0 ? rc : 0;
}

static PyObject *
getmyip_family(repynet_state *state, sa_family_t family, PyObject *probes)
{
    if (repynet_charge_send(state, 0, 256.0) < 0 ||
        repynet_charge_recv(state, 0, 128.0) < 0)
        return NULL;
    PyObject *preferred = repynet_preferred_ip(state, family);
    if (preferred != NULL || PyErr_Occurred())
        return preferred;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(probes); i++) {
        rn_addr_t probe, source;
        Py_ssize_t len;
        const char *text =
            PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(probes, i), &len);
        if (text == NULL ||
            rn_addr_parse(text, (size_t)len, &probe) != family) {
            PyErr_Clear();
            continue;
        }
        if (route_source(&probe, &source) < 0 ||
            rn_addr_is_loopback(&source) || rn_addr_is_any(&source))
            continue;
        return repynet_format_address(state, &source);
    }
    return repynet_raise(state, REPYNET_EXC_INTERNET_CONNECTIVITY,
                         "Cannot detect a connection to the Internet.");
}

static PyObject *
api_getmyip(NetworkApiObject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    if (PySys_Audit("repynet.getmyip", NULL) < 0)
        return NULL;
    if (repynet_check_arity(self->state, "getmyip", nargs, kwnames, 0) < 0)
        return NULL;
    return getmyip_family(self->state, AF_INET, self->state->probes_v4);
}

static PyObject *
api_getmyip_ipv6(NetworkApiObject *self, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    if (PySys_Audit("repynet.getmyip_ipv6", NULL) < 0)
        return NULL;
    if (repynet_check_arity(self->state, "getmyip_ipv6", nargs, kwnames, 0) <
        0)
        return NULL;
    return getmyip_family(self->state, AF_INET6, self->state->probes_v6);
}

/* --- sendmessage (spec 2.3) ---------------------------------------------- */

/* Waits, GIL released, until fd is writable; -1 with an exception on a
 * signal (nothing has been sent yet). */
static int
wait_writable(repynet_state *state, int fd)
{
    PyThreadState *saved = repynet_release(state);
    int rc = rn_wait_fd(fd, POLLOUT, 1000);
    repynet_take(state, saved);
    if (rc == -EINTR)
        return PyErr_CheckSignals();
    return 0;
}

ssize_t
repynet_send_datagram(repynet_state *state, int fd, const Py_buffer *view,
                      const rn_endpoint_t *dest, int own_socket)
{
    /* D11: the outsocket is held only while the call runs. */
    if (own_socket && repynet_acquire(state, &state->resources->outsockets,
                                      "outsockets") < 0)
        return -1;
    rn_io_t io = {.op = RN_IO_SENDTO,
                  .buf = view->buf,
                  .len = (size_t)view->len,
                  .peer = dest->addr,
                  .peer_port = dest->port};
    ssize_t sent;
    for (;;) {
        /* While CPUs are free and a thread of ours waits for the GIL, the
         * send runs without it (D32), so that the stream's receiver works
         * meanwhile: the UDP stream program went from about 130,000 to
         * 157,000 messages/s.  The same for TCP send did not pay
         * (docs/design-core.md). */
        if (repynet_gil_waiter(state) && repynet_spin_judge(state)) {
            PyThreadState *saved = repynet_release(state);
            sent = rn_sock_io(fd, &io);
            repynet_take(state, saved);
        }
        else {
            sent = rn_sock_io(fd, &io);
        }
        if (sent >= 0 || repynet_errno_class(REPYNET_CALL_SENDMESSAGE,
                                             (int)sent) != REPYNET_EXC_RETRY)
            break;
        if (wait_writable(state, fd) < 0)
            break;
    }
    if (own_socket)
        rn_counter_release(&state->resources->outsockets);
    if (PyErr_Occurred())
        return -1;
    if (sent < 0) {
        repynet_raise_errno(state, REPYNET_CALL_SENDMESSAGE, (int)sent,
                            "sendto");
        return -1;
    }
    repynet_charge_after(state, rn_addr_is_loopback(&dest->addr),
                         64.0 + (double)sent, 0.0);
    return sent;
}

/* Spec 2.3 steps 0-10: the arguments, the permissions, the size cap, then
 * the wait for the send rate.  0, or -1 with an exception and no message
 * held. */
static int
sendmessage_checks(NetworkApiObject *self, PyObject *const *args,
                   Py_ssize_t nargs, PyObject *kwnames,
                   repynet_ends_checked *checked)
{
    repynet_state *state = self->state;
    if (repynet_check_arity(state, "sendmessage", nargs, kwnames, 5) < 0)
        return -1;
    repynet_ends_given given = {.destip = args[0],
                                .destport = args[1],
                                .message = args[2],
                                .localip = args[3],
                                .localport = args[4]};
    if (repynet_arg_ends(state, &given, self->text, checked) < 0)
        return -1;
    if (local_permitted(state, args[3], &checked->key.local, 0) < 0 ||
        repynet_arg_datagram_size(state, &checked->message) < 0 ||
        repynet_charge_send(
            state, rn_addr_is_loopback(&checked->key.remote.addr), 0.0) < 0) {
        repynet_release_data(&checked->message);
        return -1;
    }
    return 0;
}

/*
 * Step 11: the socket a datagram leaves from.  Replies reach a listener on
 * the same pair, so it is sent from that listener (*listener set: it stays
 * in use, its fd open, until repynet_socket_unuse, even if another thread
 * closes it during a wait, D32); otherwise from a new socket bound to the
 * local end (*listener NULL; the caller closes it).  The fd, or -1 with
 * an exception set.
 */
static int
datagram_source(repynet_state *state, const rn_tuple_t *key,
                PyObject **listener)
{
    rn_tuple_t local;
    rn_tuple_local(&local, &key->local.addr, key->local.port);
    int fd;
    *listener = rn_table_lookup(state->udp_listeners, &local);
    if (*listener != NULL) {
        /* Open: a closed listener has left the table. */
        fd = repynet_socket_use(*listener);
    }
    else {
        fd = rn_udp_bound(&key->local.addr, key->local.port);
        if (fd < 0) {
            raise_setup_error(state, REPYNET_CALL_SENDMESSAGE, fd, &local,
                              "bind");
            return -1;
        }
    }
    /* D21: a listener or a bind proved localip is ours; only now is a
     * mismatch an argument error. */
    if (repynet_arg_same_family(state, key) < 0) {
        if (*listener != NULL)
            repynet_socket_unuse(*listener);
        else
            close(fd);
        return -1;
    }
    return fd;
}

static PyObject *
api_sendmessage(NetworkApiObject *self, PyObject *const *args,
                Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    repynet_ends_checked checked;
    PyObject *listener;

    if (sendmessage_checks(self, args, nargs, kwnames, &checked) < 0)
        return NULL;
    int fd = datagram_source(state, &checked.key, &listener);
    ssize_t sent = -1;
    if (fd >= 0) {
        sent = repynet_send_datagram(state, fd, &checked.message,
                                     &checked.key.remote, listener == NULL);
        if (listener != NULL)
            repynet_socket_unuse(listener);
        else
            close(fd);
    }
    repynet_release_data(&checked.message);
    if (sent < 0)
        return NULL;
    repynet_gil_turn(state);
    return PyLong_FromSsize_t(sent);
}

/* --- listeners (spec 2.4, 2.6) ------------------------------------------- */

static PyObject *
listen_on(NetworkApiObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames, int tcp)
{
    repynet_state *state = self->state;
    rn_endpoint_t local;
    rn_tuple_t key;
    repynet_call_t call =
        tcp ? REPYNET_CALL_LISTEN_TCP : REPYNET_CALL_LISTEN_UDP;
    if (nargs == 2 && PySys_Audit(tcp ? "repynet.listenforconnection"
                                      : "repynet.listenformessage",
                                  "OO", args[0], args[1]) < 0)
        return NULL;

    if (repynet_check_arity(state,
                            tcp ? "listenforconnection" : "listenformessage",
                            nargs, kwnames, 2) < 0 ||
        listen_args(state, args, tcp, &local) < 0)
        return NULL;
    rn_tuple_local(&key, &local.addr, local.port);
    int fd = tcp ? rn_tcp_bound(&local.addr, local.port)
                 : rn_udp_bound(&local.addr, local.port);
    if (fd < 0)
        return raise_setup_error(state, call, fd, &key, "bind");
    /* D26: binding errors win over ResourceExhaustedError. */
    if (repynet_acquire(state, &state->resources->insockets, "insockets") <
        0) {
        close(fd);
        return NULL;
    }
    if (tcp) {
        int rc = rn_tcp_listen(fd, state->resources->backlog);
        if (rc < 0) {
            close(fd);
            rn_counter_release(&state->resources->insockets);
            return raise_setup_error(state, call, rc, &key, "listen");
        }
    }
    PyObject *server = repynet_server_new(state, tcp, fd, self->text, &key);
    if (server == NULL)
        rn_counter_release(&state->resources->insockets);
    return server;
}

static PyObject *
api_listenformessage(NetworkApiObject *self, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    return listen_on(self, args, nargs, kwnames, 0);
}

static PyObject *
api_listenforconnection(NetworkApiObject *self, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames)
{
    return listen_on(self, args, nargs, kwnames, 1);
}

/* --- openconnection (spec 2.5) ------------------------------------------- */

/* Seconds between connect attempts after a recoverable error (spec 2.5). */
#define REPYNET_CONNECT_RETRY 0.2

/* The longest single poll of a connect wait; the loop re-checks the
 * deadline, so a timeout of years never overflows poll()'s int. */
#define REPYNET_CONNECT_WAIT_SLICE_MS 60000

/* Milliseconds to poll for left seconds (> 0): rounded up, at most a slice. */
static int
wait_slice_ms(double left)
{
    if (left >= REPYNET_CONNECT_WAIT_SLICE_MS / 1000.0)
        return REPYNET_CONNECT_WAIT_SLICE_MS;
    return (int)(left * 1000.0) + 1;
}

/*
 * Binds and connects until connected or the deadline: the fd, or -1 with
 * an exception set.
 */
static int
connect_until(repynet_state *state, const rn_tuple_t *key, double timeout)
{
    double deadline = rn_now() + timeout;
    for (;;) {
        int fd = rn_tcp_bound(&key->local.addr, key->local.port);
        if (fd < 0) {
            raise_setup_error(state, REPYNET_CALL_CONNECT, fd, key, "bind");
            return -1;
        }
        /* D21: the bind proved localip is ours; only now is a mismatch an
         * argument error. */
        if (repynet_arg_same_family(state, key) < 0) {
            close(fd);
            return -1;
        }
        int rc = rn_tcp_connect_start(fd, &key->remote.addr, key->remote.port);
        while (rc == 1) {
            double left = deadline - rn_now();
            if (left <= 0.0)
                break;
            Py_BEGIN_ALLOW_THREADS
            rc = rn_wait_fd(fd, POLLOUT, wait_slice_ms(left));
            Py_END_ALLOW_THREADS
            if (rc == -EINTR) {
                if (PyErr_CheckSignals() < 0) {
                    close(fd);
                    return -1;
                }
                rc = 1;
            }
            else if (rc == 1) {
                rc = rn_tcp_connect_result(fd);
            }
            else if (rc == 0) {
                rc = 1; /* poll timed out: the loop checks the deadline */
            }
        }
        if (rc == 0)
            return fd;
        close(fd);
        if (rc == 1)
            break;
        repynet_exc_t exc = repynet_errno_class(REPYNET_CALL_CONNECT, rc);
        if (exc != REPYNET_EXC_RETRY) {
            raise_setup_error(state, REPYNET_CALL_CONNECT, rc, key, "connect");
            return -1;
        }
        double pause = deadline - rn_now();
        if (pause <= 0.0)
            break;
        if (pause > REPYNET_CONNECT_RETRY)
            pause = REPYNET_CONNECT_RETRY;
        struct timespec ts = {0, (long)(pause * 1e9)};
        Py_BEGIN_ALLOW_THREADS
        nanosleep(&ts, NULL);
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
    repynet_raise(state, REPYNET_EXC_TIMEOUT, "Connection timed out!");
    return -1;
}

PyObject *
repynet_connected_socket(repynet_state *state, int fd, int text,
                         rn_tuple_t *key)
{
    /* The kernel picked what the caller left open (V1's optional local
     * end): the socket's table entry names the real one. */
    if (key->local.port == 0 || rn_addr_is_any(&key->local.addr)) {
        int rc = rn_sock_local(fd, &key->local.addr, &key->local.port);
        if (rc < 0) {
            rn_sock_close(fd);
            rn_counter_release(&state->resources->outsockets);
            return repynet_raise_chained(state, REPYNET_EXC_INTERNAL, rc,
                                         "getsockname");
        }
    }
    PyObject *sock = repynet_tcp_socket_new(state, fd, text, key);
    if (sock == NULL) {
        rn_counter_release(&state->resources->outsockets);
        return NULL;
    }
    repynet_charge_after(state, rn_addr_is_loopback(&key->remote.addr), 128.0,
                         64.0);
    return sock;
}

static PyObject *
api_openconnection(NetworkApiObject *self, PyObject *const *args,
                   Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    repynet_ends_checked checked;

    if (nargs == 5 && PySys_Audit("repynet.openconnection", "OOOOO", args[0],
                                  args[1], args[2], args[3], args[4]) < 0)
        return NULL;
    if (repynet_check_arity(state, "openconnection", nargs, kwnames, 5) < 0)
        return NULL;
    repynet_ends_given given = {.destip = args[0],
                                .destport = args[1],
                                .localip = args[2],
                                .localport = args[3],
                                .timeout = args[4]};
    if (repynet_arg_ends(state, &given, self->text, &checked) < 0 ||
        local_permitted(state, args[2], &checked.key.local, 1) < 0)
        return NULL;
    int fd = repynet_connect_until(state, &checked.key, checked.timeout);
    if (fd < 0)
        return NULL;
    /* D26: connect errors win over ResourceExhaustedError; the peer sees
     * a connection that is then dropped, as in the original. */
    if (repynet_acquire(state, &state->resources->outsockets, "outsockets") <
        0) {
        rn_sock_close(fd);
        return NULL;
    }
    return repynet_connected_socket(state, fd, self->text, &checked.key);
}

/* --- the NetworkAPI type ------------------------------------------------- */

static PyObject *
api_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"text", NULL};
    int text = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:NetworkAPI", keywords,
                                     &text))
        return NULL;
    repynet_state *state = repynet_state_from_type(type);
    if (state == NULL)
        return NULL;
    NetworkApiObject *self = (NetworkApiObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->state = state;
    self->text = text;
    return (PyObject *)self;
}

static void
api_dealloc(NetworkApiObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

static PyObject *
api_get_text(NetworkApiObject *self, void *closure)
{
    return PyBool_FromLong(self->text);
}

#define API_METHOD(name, fn, doc)                                             \
    {name, (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS,  \
     doc}

static PyMethodDef api_methods[] = {
    API_METHOD("gethostbyname", api_gethostbyname,
               "gethostbyname($self, name, /)\n--\n\nAn IPv4 address of name, "
               "as a str."),
    API_METHOD("getAddripv6", api_getaddripv6,
               "getAddripv6($self, name, /)\n--\n\nThe IPv6 addresses of "
               "name, a list of str."),
    API_METHOD("getmyip", api_getmyip,
               "getmyip($self, /)\n--\n\nThe local IPv4 address with a route "
               "out, as a str."),
    API_METHOD("getmyip_ipv6", api_getmyip_ipv6,
               "getmyip_ipv6($self, /)\n--\n\nThe local IPv6 address with a "
               "route out, as a str."),
    API_METHOD("sendmessage", api_sendmessage,
               "sendmessage($self, destip, destport, message, localip, "
               "localport, /)\n--\n\n"
               "Send one UDP datagram; returns the number of bytes sent."),
    API_METHOD("listenformessage", api_listenformessage,
               "listenformessage($self, localip, localport, /)\n--\n\n"
               "Listen for UDP datagrams; returns a UDPServerSocket."),
    API_METHOD("openconnection", api_openconnection,
               "openconnection($self, destip, destport, localip, localport, "
               "timeout, /)\n--\n\n"
               "Open a TCP connection; returns a TCPSocket."),
    API_METHOD("listenforconnection", api_listenforconnection,
               "listenforconnection($self, localip, localport, /)\n--\n\n"
               "Listen for TCP connections; returns a TCPServerSocket."),
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef api_getset[] = {
    {"text", (getter)api_get_text, NULL,
     "True when data is str (one character a byte) instead of bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot api_slots[] = {
    {Py_tp_new, api_new},
    {Py_tp_dealloc, api_dealloc},
    {Py_tp_methods, api_methods},
    {Py_tp_getset, api_getset},
    {Py_tp_doc, "NetworkAPI(text=False): the Repy V2 network calls.\n\n"
                "In text mode (text=True) payloads are str, one character a "
                "byte, and sockets made by this object inherit the mode."},
    {0, NULL},
};

static PyType_Spec api_spec = {
    .name = "repynet.NetworkAPI",
    .basicsize = sizeof(NetworkApiObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = api_slots,
};

/* _set_probe_addresses(v4, v6): where getmyip looks for a route (D19). */
PyObject *
repynet__set_probe_addresses(PyObject *module, PyObject *const *args,
                             Py_ssize_t nargs)
{
    repynet_state *state = repynet_get_state(module);
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_set_probe_addresses(v4, v6)");
        return NULL;
    }
    PyObject *v4 = PySequence_Tuple(args[0]);
    PyObject *v6 = v4 ? PySequence_Tuple(args[1]) : NULL;
    if (v6 == NULL) {
        Py_XDECREF(v4);
        return NULL;
    }
    Py_XSETREF(state->probes_v4, v4);
    Py_XSETREF(state->probes_v6, v6);
    Py_RETURN_NONE;
}

PyObject *
repynet__probe_addresses(PyObject *module, PyObject *unused)
{
    repynet_state *state = repynet_get_state(module);
    return Py_BuildValue("(OO)", state->probes_v4, state->probes_v6);
}

int
repynet_api_exec(PyObject *module)
{
    repynet_state *state = repynet_get_state(module);
    /* The original's stable probe addresses (spec 2.2, 7.3). */
    state->probes_v4 = Py_BuildValue("(ssss)", "18.7.22.69", "171.67.216.8",
                                     "169.229.131.81", "140.142.12.202");
    state->probes_v6 =
        Py_BuildValue("(sssss)", "2404:6800:4009:806::200e",
                      "2001:4998:58:c02::a9", "2607:f6d0:0:925a::ab43:d7c8",
                      "2607:f140:0:82::10", "2607:f010:2e8:228::ff:fe00:152");
    if (state->probes_v4 == NULL || state->probes_v6 == NULL)
        return -1;
    state->api_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &api_spec, NULL);
    if (state->api_type == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "NetworkAPI",
                              (PyObject *)state->api_type) < 0)
        return -1;
    return 0;
}

/* For py_v1.c too (see py_api.h). */
int
repynet_connect_until(repynet_state *state, const rn_tuple_t *key,
                      double timeout)
{
    int loopback = rn_addr_is_loopback(&key->remote.addr);
    if (repynet_charge_send(state, loopback, 0.0) < 0 ||
        repynet_charge_recv(state, loopback, 0.0) < 0)
        return -1;
    return connect_until(state, key, timeout);
}
