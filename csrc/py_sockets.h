/*
 * py_sockets.h: what py_sockets.c offers: the socket objects users touch
 * (TCPSocket, TCPServerSocket, UDPServerSocket) and the GIL hand-over of
 * D32.
 */
#ifndef REPYNET_PY_SOCKETS_H
#define REPYNET_PY_SOCKETS_H

#include "_repynet.h"

/*
 * The three objects users touch share one layout.  A socket's fd is -1
 * once it is closed, by the user or internally after a fatal error.
 */
typedef struct RepynetSocketObject {
    PyObject_HEAD
    repynet_state *state; /* borrowed: the type keeps its module alive */
    int fd;
    int text;     /* text mode (D1/D2), inherited by accepted sockets */
    int loopback; /* charges go to loop* rather than net* (spec 6.3) */
    repynet_live_t kind;
    rn_tuple_t key; /* its entry in the seed-000 table of its kind */
    /* D32: calls using the fd with the GIL released (changed under the
     * GIL); a close during such a call leaves the real close(2) of
     * orphan_fd to the last of them. */
    int users;
    int orphan_fd;
    pid_t owner;  /* the process that made it: only it shuts it down */
    int peer_eof; /* recv saw the peer's FIN */
    /* The other end when it is a repynet socket of this process
     * (borrowed; both ends unlinked when either is released): until then
     * it has sent no FIN, so send needs no peek to know (spec 3.1). */
    struct RepynetSocketObject *peer;
    /* How long a would-block waits in the kernel for readiness before it
     * raises (reading, writing), in microseconds: halved on each timeout
     * so idle sockets stop waiting, reset by every success. */
    unsigned wait_us[2];
    /* The last read (recv, getmessage, getconnection) found nothing at
     * its first attempt. */
    int read_waited;
} RepynetSocketObject;

/* Wraps a connected TCP fd (taking ownership; closed on failure) in a new
 * socket object, registered in tcp_conn_table.  The caller has already
 * taken the outsocket, which the object then owns. */
PyObject *repynet_tcp_socket_new(repynet_state *state, int fd, int text,
                                 const rn_tuple_t *key);
/* A new listener object (TCP when tcp, else UDP) owning fd and the
 * insocket the caller took; registered in its listen table. */
PyObject *repynet_server_new(repynet_state *state, int tcp, int fd, int text,
                             const rn_tuple_t *key);
/* Marks a socket object in use by a call that may release the GIL: its fd
 * (valid until repynet_socket_unuse, even if the socket is closed
 * meanwhile), or -1 when it is closed.  Takes a reference. */
int repynet_socket_use(PyObject *sock);
void repynet_socket_unuse(PyObject *sock);

/* --- threads and the GIL (D32) ------------------------------------------- */

/* Whether the interpreter has Python threads besides the caller's. */
int repynet_other_threads(void);
/* The GIL release and take-back of a call that waits (D32): the take-back
 * is counted, so that a busy holder hands the GIL over to it. */
PyThreadState *repynet_release(repynet_state *state);
void repynet_take(repynet_state *state, PyThreadState *saved);
/* After a successful hot-path call: hands the GIL to a thread of ours that
 * waits for it once the holder has made enough calls. */
void repynet_gil_turn(repynet_state *state);
/* Whether a wait may spin now (under the GIL): only while the machine
 * has a CPU free for the spinner. */
int repynet_spin_judge(repynet_state *state);
/* Without the GIL: poll(2) on fds with no timeout, first spinning on the
 * CPU when `spinning` (repynet_spin_judge's verdict) and a spin slot is
 * free; once something is ready, waits on the CPU for a thread of ours to
 * release the GIL, as the V2 waits do.  poll's count, or -errno. */
int repynet_poll_spinning(repynet_state *state, int spinning,
                          struct pollfd *fds, nfds_t n);
/* Whether a thread of ours waits to take the GIL back. */
int repynet_gil_waiter(repynet_state *state);

/* _spin_judgement(): whether a would-block wait may spin, judged now. */
PyObject *repynet__spin_judgement(PyObject *module, PyObject *unused);
/* _peer_in_process(sock): whether send knows the peer has not closed
 * without asking the kernel (the peer is a repynet socket of this
 * process). */
PyObject *repynet__peer_in_process(PyObject *module, PyObject *sock);

int repynet_sockets_exec(PyObject *module);
void repynet_sockets_free(repynet_state *state);

#endif /* REPYNET_PY_SOCKETS_H */
