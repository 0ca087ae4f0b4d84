/*
 * py_sockets.c: the objects users touch: TCP socket, TCPServerSocket and
 * UDPServerSocket (spec section 3), and the thread rules of D32.
 *
 * A method makes its non-blocking syscall with the GIL held: a lone
 * thread pays nothing for threads.  When the syscall would block and other
 * Python threads exist, the call releases the GIL and waits in the kernel
 * (poll, a short adaptive bound) for readiness, retries once, then returns
 * or raises SocketWouldBlockError: a thread that waits in the kernel does
 * not compete for the GIL, so the other thread surely gets it.  While the
 * machine has a CPU free for it, the wait first spins (retrying the
 * syscall), and after a success spins until the thread of ours holding
 * the GIL releases it: two threads taking turns then pay no sleep and
 * wake-up per turn.  A thread
 * of ours that waits to take the GIL back is counted, and a holder that
 * never blocks hands the GIL over to it every REPYNET_TURN_CALLS calls
 * (or, when none waits yet, yields the CPU so that one whose wait ended
 * gets scheduled).
 * docs/design-core.md ("Threads and the GIL") has the measurements.
 *
 * An fd used without the GIL is protected by the object's in-use count: a
 * close meanwhile gives back the table entry and count at once and leaves
 * close(2) to the last user, so the fd number is never reused under a
 * syscall.  The three types share RepynetSocketObject; `kind` says which
 * table and counter it belongs to.
 */
#include "py_sockets.h"
#include "_repynet.h"
#include "py_args.h"
#include "py_errors.h"
#include "py_limits.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

/* recv(n) reads at most this much per call (D18). */
#define REPYNET_RECV_MAX (1024 * 1024)
/* Small recvs read into the C stack; larger ones into the heap (a thread
 * may have as little as 32 KiB of stack). */
#define REPYNET_STACK_BUFFER 1024
/* The shared receive buffer: any UDP datagram fits. */
#define REPYNET_SCRATCH_SIZE 65536
/* Would-block waits in the kernel: at most this long, and not at all once
 * halving has taken them below the minimum (microseconds). */
#define REPYNET_WAIT_MAX_US 1000
#define REPYNET_WAIT_MIN_US 50
/* While CPUs are free (see repynet_spin_judge), a would-block wait first
 * retries on the CPU for this long (microseconds), and a thread whose
 * retry succeeded waits on the CPU this long for a thread of ours to
 * release the GIL: both in place of a sleep and a wake-up. */
#define REPYNET_SPIN_US 50
/* Whether CPUs are free to spin on is judged at most once per this many
 * seconds. */
#define REPYNET_SPIN_WINDOW 0.01
/* A holder that never blocks hands the GIL to a waiting thread of ours
 * after this many calls, and waits at most this long for it to take it. */
#define REPYNET_TURN_CALLS 16
#define REPYNET_HAND_OVER_MAX 0.01
/* ... and, when none waits yet on a busy machine, sleeps this long (s) for
 * one whose wait has ended to take it. */
#define REPYNET_YIELD_SLEEP 50e-6

/* --- threads and the GIL (D32) ------------------------------------------- */

int
repynet_other_threads(void)
{
    PyThreadState *me = PyThreadState_Get();
    PyThreadState *head =
        PyInterpreterState_ThreadHead(PyThreadState_GetInterpreter(me));
    return head != me || PyThreadState_Next(head) != NULL;
}

PyThreadState *
repynet_release(repynet_state *state)
{
    __atomic_store_n(&state->gil_held, 0, __ATOMIC_RELEASE);
    return PyEval_SaveThread();
}

void
repynet_take(repynet_state *state, PyThreadState *saved)
{
    __atomic_add_fetch(&state->gil_wanted, 1, __ATOMIC_RELAXED);
    PyEval_RestoreThread(saved);
    __atomic_store_n(&state->gil_held, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&state->gil_wanted, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&state->gil_takes, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&state->gil_take_sleepers, __ATOMIC_SEQ_CST) > 0)
        rn_word_wake(&state->gil_takes);
    state->holder = saved;
    state->holder_calls = 0;
}

/* Whether a thread of ours waits to take the GIL back. */
int
repynet_gil_waiter(repynet_state *state)
{
    return __atomic_load_n(&state->gil_wanted, __ATOMIC_RELAXED) > 0;
}

/*
 * Releases the GIL and gives the CPU away until a thread of ours has taken
 * the GIL, or `seconds` have passed, or, with `while_wanted`, none waits
 * any more; then queues to take it back.  While CPUs are free it yields
 * (once when no thread is known to wait).  On a busy machine it sleeps
 * instead: a thread that yields there waits out another process's time
 * slice (about 1 ms per hand-over, measured in a UDP stream beside two
 * busy processes, which fell to 8,000 messages/s), where a thread that
 * sleeps is woken the moment the GIL is taken.
 */
static void
give_way(repynet_state *state, double seconds, int while_wanted)
{
    int busy = !repynet_spin_judge(state);
    unsigned takes = __atomic_load_n(&state->gil_takes, __ATOMIC_SEQ_CST);
    PyThreadState *saved = repynet_release(state);
    double deadline = rn_now() + seconds;
    for (;;) {
        if (__atomic_load_n(&state->gil_takes, __ATOMIC_SEQ_CST) != takes ||
            (while_wanted &&
             __atomic_load_n(&state->gil_wanted, __ATOMIC_RELAXED) <= 0))
            break;
        double left = deadline - rn_now();
        if (left <= 0)
            break;
        if (!busy) {
            sched_yield();
            if (!while_wanted)
                break;
            continue;
        }
        __atomic_add_fetch(&state->gil_take_sleepers, 1, __ATOMIC_SEQ_CST);
        rn_word_wait(&state->gil_takes, takes, (long)(left * 1e6) + 1);
        __atomic_sub_fetch(&state->gil_take_sleepers, 1, __ATOMIC_SEQ_CST);
    }
    repynet_take(state, saved);
}

/* Hands the GIL to a waiting thread of ours (bounded, in case it gave
 * up). */
static void
hand_over(repynet_state *state)
{
    give_way(state, REPYNET_HAND_OVER_MAX, 1);
}

void
repynet_gil_turn(repynet_state *state)
{
    /* Counts one thread's calls in a row: a thread that took the GIL
     * outside repynet (the interpreter's own switch, a V1 wait) starts
     * afresh, so threads that each block after a call or two (V1
     * handlers, ping-pong ends) never hand over for nothing. */
    PyThreadState *me = PyThreadState_Get();
    if (me != state->holder) {
        state->holder = me;
        state->holder_calls = 1;
        return;
    }
    if (++state->holder_calls < REPYNET_TURN_CALLS)
        return;
    if (repynet_gil_waiter(state)) {
        hand_over(state);
    }
    else if (repynet_other_threads()) {
        /* A thread whose wait ended may not have been scheduled yet:
         * give it the CPU before going on (once, or for a short sleep). */
        give_way(state, REPYNET_YIELD_SLEEP, 0);
    }
    else {
        state->holder_calls = 0;
    }
}

/* --- the shared receive buffer ------------------------------------------- */

/* A buffer of at least size bytes: the shared one when free and large
 * enough, else a new one.  NULL with MemoryError. */
static char *
take_buffer(repynet_state *state, size_t size)
{
    char *buffer = NULL;
    if (size <= REPYNET_SCRATCH_SIZE) {
        buffer = state->scratch;
        state->scratch = NULL;
        if (buffer == NULL)
            buffer = PyMem_RawMalloc(REPYNET_SCRATCH_SIZE);
    }
    else {
        buffer = PyMem_RawMalloc(size);
    }
    if (buffer == NULL)
        PyErr_NoMemory();
    return buffer;
}

static void
give_buffer(repynet_state *state, char *buffer, size_t size)
{
    if (buffer != NULL && size <= REPYNET_SCRATCH_SIZE &&
        state->scratch == NULL)
        state->scratch = buffer;
    else
        PyMem_RawFree(buffer);
}

void
repynet_sockets_free(repynet_state *state)
{
    PyMem_RawFree(state->scratch);
    state->scratch = NULL;
}

/* --- fd lifetime --------------------------------------------------------- */

static rn_table_t *
socket_table(RepynetSocketObject *self)
{
    repynet_state *state = self->state;
    switch (self->kind) {
    case REPYNET_LIVE_TCP_SOCKET:
        return state->tcp_conns;
    case REPYNET_LIVE_TCP_SERVER:
        return state->tcp_listeners;
    default:
        return state->udp_listeners;
    }
}

static rn_counter_t *
socket_counter(RepynetSocketObject *self)
{
    repynet_resources *r = self->state->resources;
    return self->kind == REPYNET_LIVE_TCP_SOCKET ? &r->outsockets
                                                 : &r->insockets;
}

/*
 * Closes the socket and gives back its table entry and count, silently
 * (no charges): the internal close, the finalizer's and the user's (D16).
 * Only an explicit close in the process that made a TCP socket shuts it
 * down (so the peer sees EOF even while a forked child holds it); the
 * finalizer never does, nor does a child, whose exit must not half-close
 * the parent's connections.  While calls use the fd, close(2) waits for
 * the last of them.
 */
static void
socket_release(RepynetSocketObject *self, int explicit_close)
{
    if (self->fd < 0)
        return;
    int fd = self->fd;
    self->fd = -1;
    if (self->peer != NULL) {
        self->peer->peer = NULL;
        self->peer = NULL;
    }
    rn_table_remove_value(socket_table(self), &self->key, self);
    rn_counter_release(socket_counter(self));
    bool shut_down = explicit_close && self->kind == REPYNET_LIVE_TCP_SOCKET &&
                     self->owner == self->state->pid;
    if (shut_down)
        shutdown(fd, SHUT_WR);
    if (self->users == 0)
        close(fd);
    else
        self->orphan_fd = fd;
}

static void
socket_unuse(RepynetSocketObject *self)
{
    if (--self->users == 0 && self->orphan_fd >= 0) {
        close(self->orphan_fd);
        self->orphan_fd = -1;
    }
}

int
repynet_socket_use(PyObject *sock)
{
    RepynetSocketObject *self = (RepynetSocketObject *)sock;
    Py_INCREF(sock);
    self->users++;
    return self->fd;
}

void
repynet_socket_unuse(PyObject *sock)
{
    socket_unuse((RepynetSocketObject *)sock);
    Py_DECREF(sock);
}

/* --- spinning instead of sleeping ---------------------------------------- */

/*
 * Whether a wait may spin now (under the GIL).  Two threads that take
 * turns pay a sleep and a wake-up per turn (some 10 µs each on a VM) when
 * they wait in the kernel; spinning saves them, but only while a CPU is
 * free for the spinner.  When other threads want the CPUs, a spinner
 * gives up the priority a sleeping thread has when woken and waits out
 * their time slices instead (measured: one connection pair's ping-pong
 * 2.5x slower beside two busy processes).  So a wait spins only while the
 * machine runs no more threads than it has CPUs, this one included:
 * /proc/loadavg's count of running threads, read at most once per window.
 */
int
repynet_spin_judge(repynet_state *state)
{
    double now = rn_now();
    if (now - state->spin_judged_at < REPYNET_SPIN_WINDOW)
        return state->spin_allowed;
    state->spin_judged_at = now;
    int running = rn_running_threads();
    state->spin_allowed =
        state->cpus > 1 && running > 0 && running <= state->cpus;
    return state->spin_allowed;
}

/* _spin_judgement() -> whether a would-block wait may spin, judged now. */
PyObject *
repynet__spin_judgement(PyObject *module, PyObject *unused)
{
    repynet_state *state = repynet_get_state(module);
    state->spin_judged_at = 0;
    return PyBool_FromLong(repynet_spin_judge(state));
}

/* One spinner per CPU beyond the first, so that the thread it waits for
 * always has a CPU. */
static int
spin_slot_take(repynet_state *state)
{
    if (__atomic_add_fetch(&state->spinners, 1, __ATOMIC_RELAXED) <
        state->cpus)
        return 1;
    __atomic_sub_fetch(&state->spinners, 1, __ATOMIC_RELAXED);
    return 0;
}

static void
spin_slot_give(repynet_state *state)
{
    __atomic_sub_fetch(&state->spinners, 1, __ATOMIC_RELAXED);
}

static inline void
spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Waits on the CPU (GIL released, at most REPYNET_SPIN_US, less if the
 * thread loses its CPU) while a thread of ours holds the GIL: the holder
 * of a ping-pong releases it within microseconds, at its own would-block,
 * and taking a free GIL needs no wake-up. */
static void
spin_for_gil(repynet_state *state)
{
    rn_spin_t spin = rn_spin_start(REPYNET_SPIN_US);
    while (__atomic_load_n(&state->gil_held, __ATOMIC_ACQUIRE) &&
           rn_spin_go_on(&spin))
        spin_pause();
}

int
repynet_poll_spinning(repynet_state *state, int spinning, struct pollfd *fds,
                      nfds_t n)
{
    int rc = 0;
    if (spinning && spin_slot_take(state)) {
        rc = rn_poll_spin(fds, n, REPYNET_SPIN_US);
        spin_slot_give(state);
    }
    if (rc == 0) {
        rc = poll(fds, n, -1);
        if (rc < 0)
            rc = -errno;
    }
    if (spinning && rc > 0)
        spin_for_gil(state);
    return rc;
}

/*
 * The would-block path of socket_io when other threads exist: waits for
 * readiness with the GIL released (the fd kept alive by the in-use count),
 * spinning first while CPUs are free, and retries io once (tried: io
 * already failed with the GIL held; else its first attempt is made here,
 * GIL released).  An idle socket's bound decays to 0, and then the call
 * only hands the GIL to a waiting thread.
 */
static ssize_t
wait_and_retry(RepynetSocketObject *self, rn_io_t *io, int writing, int tried)
{
    repynet_state *state = self->state;
    ssize_t rc = -EAGAIN;
    long bound = (long)self->wait_us[writing];
    if (bound == 0) {
        if (repynet_gil_waiter(state))
            hand_over(state);
        else
            repynet_take(state, repynet_release(state));
        return rc;
    }
    int fd = self->fd, ready = 0, found_at_once = 0;
    int spinning = repynet_spin_judge(state);
    self->users++;
    PyThreadState *saved = repynet_release(state);
    if (!tried)
        found_at_once = (rc = rn_sock_io(fd, io)) != -EAGAIN;
    if (rc == -EAGAIN && spinning && spin_slot_take(state)) {
        rc = rn_sock_io_spin(
            fd, io, bound < REPYNET_SPIN_US ? bound : REPYNET_SPIN_US);
        spin_slot_give(state);
    }
    if (rc == -EAGAIN) {
        /* A signal (-EINTR) ends the wait; its handler runs as the call
         * returns. */
        ready = rn_wait_fd_us(fd, rn_sock_io_events(io), bound);
        if (ready == 1)
            rc = rn_sock_io(fd, io);
    }
    if (spinning && rc != -EAGAIN)
        spin_for_gil(state);
    repynet_take(state, saved);
    socket_unuse(self);
    if (!writing)
        self->read_waited = !found_at_once;
    if (rc >= 0)
        self->wait_us[writing] = REPYNET_WAIT_MAX_US;
    else if (rc == -EAGAIN && ready == 0)
        self->wait_us[writing] =
            bound / 2 < REPYNET_WAIT_MIN_US ? 0 : (unsigned)(bound / 2);
    return rc;
}

/*
 * Runs io on the socket's open fd the D32 way: rn_sock_io's result (>= 0,
 * or -errno).  A negative result with self->fd < 0 means that another
 * thread closed the socket during the call.
 */
static ssize_t
socket_io(RepynetSocketObject *self, rn_io_t *io)
{
    int writing = rn_sock_io_events(io) == POLLOUT;
    /* A read whose last one found nothing will most likely find nothing
     * again (a peer answers after this call, not before), so while a CPU
     * is free to spin its first attempt is made without the GIL too: the
     * other end gets the GIL one syscall sooner. */
    if (!writing && self->read_waited && self->state->spin_allowed &&
        self->wait_us[0] > 0 && !repynet_gil_waiter(self->state) &&
        repynet_other_threads())
        return wait_and_retry(self, io, 0, 0);
    ssize_t rc = rn_sock_io(self->fd, io);
    if (rc >= 0) {
        self->wait_us[writing] = REPYNET_WAIT_MAX_US;
        if (!writing)
            self->read_waited = 0;
        repynet_gil_turn(self->state);
        return rc;
    }
    if (rc != -EAGAIN || !repynet_other_threads())
        return rc;
    return wait_and_retry(self, io, writing, 1);
}

/* --- shared methods ------------------------------------------------------ */

static PyObject *
closed_locally(RepynetSocketObject *self)
{
    return repynet_raise(self->state, REPYNET_EXC_SOCKET_CLOSED_LOCAL,
                         "The socket has been closed locally!");
}

/* Raises what an errno means for a socket call, closing the socket first
 * where the spec closes it internally (terminated and unknown errors).  A
 * socket another thread closed during the call raises SocketClosedLocal. */
static PyObject *
socket_error(RepynetSocketObject *self, repynet_call_t call, int err,
             const char *syscall)
{
    if (self->fd < 0)
        return closed_locally(self);
    repynet_exc_t exc = repynet_errno_class(call, err);
    if (exc == REPYNET_EXC_SOCKET_CLOSED_LOCAL ||
        exc == REPYNET_EXC_SOCKET_CLOSED_REMOTE)
        socket_release(self, 1);
    return repynet_raise_errno(self->state, call, err, syscall);
}

/*
 * Links a new connection to its other end when that is a repynet socket of
 * this process, made earlier (an accepted socket finds its client, or a
 * client its accepted socket).  The other end is found by the reversed
 * tuple, and trusted only if it is the tuple's only entry and its
 * connection is established: an entry whose connection was reset, or that
 * shares its tuple with a newer connection (rn_table_insert_shared),
 * belongs to an older connection.  An established connection's tuple is
 * the kernel's only one, so its other end is this socket.  Without a link
 * send peeks, as before.
 */
static void
link_in_process_peer(RepynetSocketObject *self)
{
    repynet_state *state = self->state;
    rn_tuple_t reversed = {.local = self->key.remote,
                           .remote = self->key.local};
    RepynetSocketObject *other =
        rn_table_lookup_unique(state->tcp_conns, &reversed);
    if (other == NULL || other->peer != NULL || other->fd < 0 ||
        other->owner != state->pid || rn_sock_established(other->fd) != 1)
        return;
    self->peer = other;
    other->peer = self;
}

/* Whether send may skip the peek: the other end is linked, and the link
 * was made in this process (a forked child's copy is not: the parent may
 * shut the other end down). */
static int
peer_in_process(RepynetSocketObject *self)
{
    return self->peer != NULL && self->owner == self->state->pid;
}

PyObject *
repynet__peer_in_process(PyObject *module, PyObject *sock)
{
    repynet_state *state = repynet_get_state(module);
    if (Py_TYPE(sock) != state->tcp_socket_type) {
        PyErr_Format(PyExc_TypeError, "not a repynet TCP socket: %.100s",
                     Py_TYPE(sock)->tp_name);
        return NULL;
    }
    return PyBool_FromLong(peer_in_process((RepynetSocketObject *)sock));
}

/* Registers a new object in its table and counts it alive.  On failure
 * the fd is closed and the caller keeps (and must give back) its count. */
static RepynetSocketObject *
socket_alloc(repynet_state *state, PyTypeObject *type, repynet_live_t kind,
             int fd, int text, const rn_tuple_t *key)
{
    RepynetSocketObject *self = PyObject_New(RepynetSocketObject, type);
    if (self == NULL) {
        close(fd);
        return NULL;
    }
    self->state = state;
    self->fd = fd;
    self->text = text;
    self->kind = kind;
    self->key = *key;
    self->loopback = rn_addr_is_loopback(kind == REPYNET_LIVE_TCP_SOCKET
                                             ? &key->remote.addr
                                             : &key->local.addr);
    self->users = 0;
    self->orphan_fd = -1;
    self->owner = state->pid;
    self->peer_eof = 0;
    self->peer = NULL;
    self->read_waited = 0;
    self->wait_us[0] = self->wait_us[1] = REPYNET_WAIT_MAX_US;
    state->live[kind]++;
    /* A listener's key cannot be taken (the kernel refused a duplicate
     * bind first), but Linux may hand an accepted connection the 4-tuple
     * of one still open here (its old end a FIN_WAIT2 minisocket): both
     * then keep an entry, and each close removes its own. */
    int rc = kind == REPYNET_LIVE_TCP_SOCKET
                 ? rn_table_insert_shared(socket_table(self), key, self)
                 : rn_table_insert(socket_table(self), key, self);
    if (rc == -ENOMEM) {
        /* The caller still owns the count it took: release only the fd. */
        self->fd = -1;
        close(fd);
        Py_DECREF(self);
        PyErr_NoMemory();
        return NULL;
    }
    if (kind == REPYNET_LIVE_TCP_SOCKET && self->loopback)
        link_in_process_peer(self);
    return self;
}

static void
socket_dealloc(RepynetSocketObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    socket_release(self, 0);
    self->state->live[self->kind]--;
    PyObject_Free(self);
    Py_DECREF(type);
}

static PyObject *
socket_enter(RepynetSocketObject *self, PyObject *unused)
{
    return Py_NewRef((PyObject *)self);
}

static PyObject *
socket_repr(RepynetSocketObject *self)
{
    PyObject *local =
        repynet_format_address(self->state, &self->key.local.addr);
    if (local == NULL)
        return NULL;
    PyObject *repr = PyUnicode_FromFormat(
        "<%s %U:%u%s>", Py_TYPE(self)->tp_name, local,
        (unsigned)self->key.local.port, self->fd < 0 ? " closed" : "");
    Py_DECREF(local);
    return repr;
}

/* --- TCP socket ---------------------------------------------------------- */

PyObject *
repynet_tcp_socket_new(repynet_state *state, int fd, int text,
                       const rn_tuple_t *key)
{
    return (PyObject *)socket_alloc(state, state->tcp_socket_type,
                                    REPYNET_LIVE_TCP_SOCKET, fd, text, key);
}

/* Both rates are waited for before every TCP socket call (spec 6.3). */
static int
wait_both(RepynetSocketObject *self)
{
    if (repynet_charge_recv(self->state, self->loopback, 0.0) < 0)
        return -1;
    return repynet_charge_send(self->state, self->loopback, 0.0);
}

static PyObject *
tcp_recv(RepynetSocketObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    repynet_state *state = self->state;
    char stack_buffer[REPYNET_STACK_BUFFER];
    PyObject *result = NULL;
    char *heap_buffer = NULL;
    rn_io_t io = {.op = RN_IO_RECV, .buf = stack_buffer};
    long wanted;

    if (repynet_check_arity(state, "recv", nargs, kwnames, 1) < 0 ||
        repynet_arg_size(state, args[0], "bytes", REPYNET_RECV_MAX, &wanted) <
            0)
        return NULL;
    if (wait_both(self) < 0)
        return NULL;
    if (self->fd < 0)
        return closed_locally(self);
    io.len = (size_t)wanted;
    if (io.len <= sizeof(stack_buffer)) {
        /* io.buf is the stack buffer */
    }
    else if (!self->text) {
        /* Read straight into the result, then shrink it. */
        result = PyBytes_FromStringAndSize(NULL, wanted);
        if (result == NULL)
            return NULL;
        io.buf = PyBytes_AS_STRING(result);
    }
    else if ((io.buf = heap_buffer = take_buffer(state, io.len)) == NULL) {
        return NULL;
    }
    ssize_t got = socket_io(self, &io);
    if (got <= 0) {
        Py_CLEAR(result);
        if (got == 0) {
            self->peer_eof = 1;
            repynet_raise(state, REPYNET_EXC_SOCKET_CLOSED_REMOTE,
                          "The socket has been closed by the remote end!");
        }
        else {
            socket_error(self, REPYNET_CALL_STREAM_IO, (int)got, "recv");
        }
    }
    else if (result != NULL) {
        if (got < wanted && _PyBytes_Resize(&result, got) < 0)
            result = NULL; /* _PyBytes_Resize freed it */
    }
    else {
        result = repynet_data_result(io.buf, (size_t)got, self->text);
    }
    give_buffer(state, heap_buffer, io.len);
    if (got > 0) {
        repynet_charge_after(state, self->loopback, 64.0, 64.0 + (double)got);
    }
    return result;
}

static PyObject *
tcp_send(RepynetSocketObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    repynet_state *state = self->state;
    Py_buffer view;
    ssize_t sent;

    if (repynet_check_arity(state, "send", nargs, kwnames, 1) < 0 ||
        repynet_arg_data(state, args[0], self->text, &view) < 0)
        return NULL;
    if (wait_both(self) < 0)
        goto error;
    if (self->fd < 0) {
        closed_locally(self);
        goto error;
    }
    /* The original refuses to send once the peer has closed with nothing
     * left to read (spec 3.1).  A one-byte peek asks the kernel; the
     * answer is known without it once our own recv has seen the FIN, or
     * while the peer is a linked socket of this process, which closes
     * through socket_release.  Learning of the FIN from the completion
     * port instead would race a FIN that arrives just before the send
     * (docs/decisions.md). */
    int peer_closed = self->peer_eof          ? 1
                      : peer_in_process(self) ? 0
                                              : rn_peer_closed(self->fd);
    if (peer_closed == 1) {
        repynet_raise(state, REPYNET_EXC_SOCKET_CLOSED_REMOTE,
                      "The socket has been closed by the remote end!");
        goto error;
    }
    if (peer_closed < 0) {
        socket_error(self, REPYNET_CALL_STREAM_IO, peer_closed, "recv");
        goto error;
    }
    /* D31: one send passes at most one second of its rate. */
    rn_io_t io = {.op = RN_IO_SEND, .buf = view.buf, .len = (size_t)view.len};
    double per_second = repynet_send_limit(state, self->loopback);
    if ((double)io.len > per_second)
        io.len = per_second < 1.0 ? 1 : (size_t)per_second;
    sent = socket_io(self, &io);
    repynet_release_data(&view);
    if (sent < 0)
        return socket_error(self, REPYNET_CALL_STREAM_IO, (int)sent, "send");
    repynet_charge_after(state, self->loopback, 64.0 + (double)sent, 64.0);
    return PyLong_FromSsize_t(sent);
error:
    repynet_release_data(&view);
    return NULL;
}

static PyObject *
tcp_close(RepynetSocketObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    if (repynet_check_arity(self->state, "close", nargs, kwnames, 0) < 0)
        return NULL;
    if (self->fd < 0)
        Py_RETURN_FALSE;
    if (wait_both(self) < 0)
        return NULL;
    if (self->fd < 0) /* another thread closed it during the wait */
        Py_RETURN_FALSE;
    socket_release(self, 1);
    repynet_charge_after(self->state, self->loopback, 128.0, 64.0);
    Py_RETURN_TRUE;
}

static PyObject *
tcp_exit(RepynetSocketObject *self, PyObject *args)
{
    PyObject *closed = tcp_close(self, NULL, 0, NULL);
    if (closed == NULL)
        return NULL;
    Py_DECREF(closed);
    Py_RETURN_FALSE;
}

#define FASTCALL_KW(fn)                                                       \
    (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

static PyMethodDef tcp_socket_methods[] = {
    {"recv", FASTCALL_KW(tcp_recv),
     "recv(bytes) -> data: at most `bytes` bytes that have arrived."},
    {"send", FASTCALL_KW(tcp_send),
     "send(message) -> int: how much of message the kernel accepted."},
    {"close", FASTCALL_KW(tcp_close),
     "close() -> bool: True if this call closed the socket."},
    {"__enter__", (PyCFunction)socket_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)tcp_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* --- TCPServerSocket ----------------------------------------------------- */

static PyObject *
server_getconnection(RepynetSocketObject *self, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    rn_tuple_t key;
    rn_io_t io = {.op = RN_IO_ACCEPT};

    if (repynet_check_arity(state, "getconnection", nargs, kwnames, 0) < 0)
        return NULL;
    if (wait_both(self) < 0)
        return NULL;
    if (self->fd < 0)
        return closed_locally(self);
    ssize_t accepted = socket_io(self, &io);
    if (accepted < 0)
        return socket_error(self, REPYNET_CALL_ACCEPT, (int)accepted,
                            "accept");
    int conn = (int)accepted;
    memset(&key, 0, sizeof(key));
    key.remote.addr = io.peer;
    key.remote.port = io.peer_port;
    repynet_charge_after(state, self->loopback, 64.0, 128.0);
    if (repynet_acquire(state, &state->resources->outsockets, "outsockets") <
        0) {
        close(conn);
        return NULL;
    }
    int rc = rn_sock_local(conn, &key.local.addr, &key.local.port);
    if (rc < 0) {
        close(conn);
        rn_counter_release(&state->resources->outsockets);
        return repynet_raise_chained(state, REPYNET_EXC_INTERNAL, rc,
                                     "getsockname");
    }
    PyObject *remote_ip = repynet_format_address(state, &key.remote.addr);
    if (remote_ip == NULL) {
        close(conn);
        rn_counter_release(&state->resources->outsockets);
        return NULL;
    }
    PyObject *sock = repynet_tcp_socket_new(state, conn, self->text, &key);
    if (sock == NULL) {
        rn_counter_release(&state->resources->outsockets);
        Py_DECREF(remote_ip);
        return NULL;
    }
    return Py_BuildValue("(NiN)", remote_ip, (int)key.remote.port, sock);
}

/* Server close() always returns True (spec 3.2, 3.3). */
static PyObject *
server_close(RepynetSocketObject *self, PyObject *const *args,
             Py_ssize_t nargs, PyObject *kwnames)
{
    if (repynet_check_arity(self->state, "close", nargs, kwnames, 0) < 0)
        return NULL;
    socket_release(self, 1);
    Py_RETURN_TRUE;
}

static PyObject *
server_exit(RepynetSocketObject *self, PyObject *args)
{
    socket_release(self, 1);
    Py_RETURN_FALSE;
}

static PyMethodDef tcp_server_methods[] = {
    {"getconnection", FASTCALL_KW(server_getconnection),
     "getconnection() -> (remote_ip, remote_port, socket)."},
    {"close", FASTCALL_KW(server_close), "close() -> True."},
    {"__enter__", (PyCFunction)socket_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)server_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* --- UDPServerSocket ----------------------------------------------------- */

static PyObject *
udp_getmessage(RepynetSocketObject *self, PyObject *const *args,
               Py_ssize_t nargs, PyObject *kwnames)
{
    repynet_state *state = self->state;
    rn_io_t io = {.op = RN_IO_RECVFROM, .len = REPYNET_SCRATCH_SIZE};

    if (repynet_check_arity(state, "getmessage", nargs, kwnames, 0) < 0)
        return NULL;
    if (repynet_charge_recv(state, self->loopback, 0.0) < 0)
        return NULL;
    if (self->fd < 0)
        return closed_locally(self);
    if ((io.buf = take_buffer(state, io.len)) == NULL)
        return NULL;
    ssize_t got = socket_io(self, &io);
    if (got < 0) {
        give_buffer(state, io.buf, io.len);
        return socket_error(self, REPYNET_CALL_GETMESSAGE, (int)got,
                            "recvfrom");
    }
    PyObject *result = Py_BuildValue(
        "(NiN)", repynet_format_address(state, &io.peer), (int)io.peer_port,
        repynet_data_result(io.buf, (size_t)got, self->text));
    give_buffer(state, io.buf, io.len);
    repynet_charge_after(state, self->loopback, 0.0, 64.0 + (double)got);
    return result;
}

static PyMethodDef udp_server_methods[] = {
    {"getmessage", FASTCALL_KW(udp_getmessage),
     "getmessage() -> (remote_ip, remote_port, message)."},
    {"close", FASTCALL_KW(server_close), "close() -> True."},
    {"__enter__", (PyCFunction)socket_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)server_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

/* --- types --------------------------------------------------------------- */

#define SOCKET_TYPE_SPEC(var, pyname, methods)                                \
    static PyType_Slot var##_slots[] = {                                      \
        {Py_tp_dealloc, socket_dealloc},                                      \
        {Py_tp_repr, socket_repr},                                            \
        {Py_tp_methods, methods},                                             \
        {0, NULL},                                                            \
    };                                                                        \
    static PyType_Spec var = {                                                \
        .name = "repynet." pyname,                                            \
        .basicsize = sizeof(RepynetSocketObject),                             \
        .flags = Py_TPFLAGS_DEFAULT,                                          \
        .slots = var##_slots,                                                 \
    }

SOCKET_TYPE_SPEC(tcp_socket_spec, "TCPSocket", tcp_socket_methods);
SOCKET_TYPE_SPEC(tcp_server_spec, "TCPServerSocket", tcp_server_methods);
SOCKET_TYPE_SPEC(udp_server_spec, "UDPServerSocket", udp_server_methods);

/* Adds a type users cannot instantiate; a new reference in *out. */
static int
add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **out)
{
    PyTypeObject *type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL)
        return -1;
    /* Only the API makes these objects (Py_TPFLAGS_DISALLOW_INSTANTIATION
     * is 3.10+). */
    type->tp_new = NULL;
    *out = type;
    return PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1,
                                 (PyObject *)type);
}

/* In a forked child: its own process id, and none of the parent's other
 * threads waiting for the GIL, asleep until it is taken, or spinning. */
static PyObject *
after_fork_in_child(PyObject *module, PyObject *unused)
{
    repynet_state *state = repynet_get_state(module);
    state->pid = getpid();
    __atomic_store_n(&state->gil_wanted, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&state->gil_take_sleepers, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&state->spinners, 0, __ATOMIC_RELAXED);
    Py_RETURN_NONE;
}

static PyMethodDef after_fork_def = {
    "_after_fork_in_child", after_fork_in_child, METH_NOARGS,
    "Sets the module's process state in a forked child."};

/* os.register_at_fork(after_in_child=...): a child that goes on running
 * Python has run it before its next call. */
static int
register_after_fork(PyObject *module)
{
    PyObject *hook = PyCFunction_NewEx(&after_fork_def, module, NULL);
    if (hook == NULL)
        return -1;
    PyObject *os = PyImport_ImportModule("os");
    PyObject *registered = NULL;
    if (os != NULL) {
        PyObject *kwargs = Py_BuildValue("{sO}", "after_in_child", hook);
        PyObject *register_at_fork =
            PyObject_GetAttrString(os, "register_at_fork");
        PyObject *no_args = PyTuple_New(0);
        if (kwargs && register_at_fork && no_args)
            registered = PyObject_Call(register_at_fork, no_args, kwargs);
        Py_XDECREF(no_args);
        Py_XDECREF(register_at_fork);
        Py_XDECREF(kwargs);
        Py_DECREF(os);
    }
    Py_DECREF(hook);
    if (registered == NULL)
        return -1;
    Py_DECREF(registered);
    return 0;
}

int
repynet_sockets_exec(PyObject *module)
{
    repynet_state *state = repynet_get_state(module);
    state->pid = getpid();
    if (register_after_fork(module) < 0)
        return -1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    state->cpus = cpus > 0 ? (int)cpus : 1;
    if (add_type(module, &tcp_socket_spec, &state->tcp_socket_type) < 0 ||
        add_type(module, &tcp_server_spec, &state->tcp_server_type) < 0 ||
        add_type(module, &udp_server_spec, &state->udp_server_type) < 0)
        return -1;
    return 0;
}

/* Used by py_api.c for listeners. */
PyObject *
repynet_server_new(repynet_state *state, int tcp, int fd, int text,
                   const rn_tuple_t *key)
{
    if (tcp)
        return (PyObject *)socket_alloc(state, state->tcp_server_type,
                                        REPYNET_LIVE_TCP_SERVER, fd, text,
                                        key);
    return (PyObject *)socket_alloc(state, state->udp_server_type,
                                    REPYNET_LIVE_UDP_SERVER, fd, text, key);
}
