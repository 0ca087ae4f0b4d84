/*
 * rn_sock.h: non-blocking TCP/UDP set-up and I/O for IPv4 and IPv6, and
 * the reader of the OS socket listings (/proc/net/{tcp,tcp6,udp,udp6}).
 *
 * Every fd is created SOCK_CLOEXEC | SOCK_NONBLOCK; every IPv6 socket is
 * IPV6_V6ONLY (D13).  Functions return >= 0 or -errno and close what they
 * opened on failure.
 */
#ifndef RN_SOCK_H
#define RN_SOCK_H

#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#include "rn_addr.h"
#include "rn_table.h"

/*
 * Buffer sizes (D22): the kernel doubles what is set, so each side keeps
 * 256 KiB and a connection holds at most 512 KiB in flight (our send
 * buffer plus the peer's receive buffer) before send would block.
 */
#define RN_TCP_BUFFER_SIZE (128 * 1024)
#define RN_UDP_BUFFER_SIZE 66000
#define RN_UDP_MAX_PAYLOAD 9216
#define RN_TCP_DEFAULT_BACKLOG 5

/* A socket of addr's family, bound to (addr, port), not yet listening:
 * the fd, or -errno (bind's error for a bind failure). */
int rn_tcp_bound(const rn_addr_t *addr, uint16_t port);
/* listen(2) on a bound socket: 0 or -errno. */
int rn_tcp_listen(int fd, int backlog);
/* Starts a connect: 0 when connected at once, 1 when in progress, -errno. */
int rn_tcp_connect_start(int fd, const rn_addr_t *addr, uint16_t port);
/* The outcome of an in-progress connect once writable: 0 or -errno. */
int rn_tcp_connect_result(int fd);
/* accept4(2) with CLOEXEC | NONBLOCK: the new fd, or -errno. */
int rn_tcp_accept(int fd, rn_addr_t *peer, uint16_t *peer_port);

/* A UDP socket bound to (addr, port): the fd, or -errno. */
int rn_udp_bound(const rn_addr_t *addr, uint16_t port);

/*
 * One socket operation of a hot path, described so that it can run with or
 * without the GIL and be retried after a wait (rn_sock_io).
 */
typedef enum rn_io_op {
    RN_IO_RECV,     /* recv into buf: 0 at orderly EOF */
    RN_IO_SEND,     /* send buf (MSG_NOSIGNAL) */
    RN_IO_ACCEPT,   /* accept4: the new fd (CLOEXEC | NONBLOCK); peer out */
    RN_IO_RECVFROM, /* recvfrom into buf; peer out */
    RN_IO_SENDTO,   /* sendto peer */
} rn_io_op_t;

typedef struct rn_io {
    rn_io_op_t op;
    void *buf; /* read into, or sent from (never written for sends) */
    size_t len;
    rn_addr_t peer; /* accept/recvfrom: who; sendto: where */
    uint16_t peer_port;
} rn_io_t;

/* Runs io once on fd, non-blocking: >= 0 (bytes or the new fd) or -errno
 * (-EAGAIN when it would block).  Needs no GIL. */
ssize_t rn_sock_io(int fd, rn_io_t *io);
/* The poll(2) event io waits for: POLLIN or POLLOUT. */
short rn_sock_io_events(const rn_io_t *io);
/* Waits until fd is ready for events or timeout_us microseconds pass:
 * 1 ready (or in error), 0 timed out, -errno (EINTR included). Blocks. */
int rn_wait_fd_us(int fd, short events, long timeout_us);
/*
 * The clock of a spin: it goes on for up to spin_us microseconds, and
 * stops early when a gap in the clock as long as that shows the thread
 * lost its CPU (the thread it waits for may then have run instead).
 */
typedef struct rn_spin {
    double limit, start, last; /* seconds */
} rn_spin_t;

rn_spin_t rn_spin_start(long spin_us);
/* Whether the spin may try again. */
bool rn_spin_go_on(rn_spin_t *spin);

/* Retries io on fd for up to spin_us microseconds without blocking (see
 * rn_spin_t): its first result other than -EAGAIN, or -EAGAIN. */
ssize_t rn_sock_io_spin(int fd, rn_io_t *io, long spin_us);

/* poll(2) with a zero timeout, repeated for up to spin_us microseconds
 * (see rn_spin_t) while nothing is ready: poll's count, 0 when the time is
 * up, or -errno. */
int rn_poll_spin(struct pollfd *fds, nfds_t n, long spin_us);

/* Sleeps while *word == expected, at most timeout_us microseconds (a
 * private futex): 0 once woken or the word differs, -ETIMEDOUT or -EINTR. */
int rn_word_wait(unsigned *word, unsigned expected, long timeout_us);
/* Wakes every thread asleep in rn_word_wait on word. */
void rn_word_wake(unsigned *word);

/* How many threads the machine is running this instant, all CPUs
 * together (/proc/loadavg): > 0, or -errno. */
int rn_running_threads(void);

/* One non-blocking recv; 0 at orderly EOF. */
ssize_t rn_recv(int fd, void *buf, size_t len);
/* One non-blocking send (MSG_NOSIGNAL). */
ssize_t rn_send(int fd, const void *buf, size_t len);
/* 1 when the peer has closed and nothing is left to read, 0 otherwise,
 * without consuming data; -errno for a socket error. */
int rn_peer_closed(int fd);
/* 1 when the TCP connection is established (neither end has sent its
 * FIN, no reset), 0 otherwise, -errno when it cannot be asked. */
int rn_sock_established(int fd);
ssize_t rn_sendto(int fd, const void *buf, size_t len, const rn_addr_t *addr,
                  uint16_t port);
ssize_t rn_recvfrom(int fd, void *buf, size_t len, rn_addr_t *from,
                    uint16_t *from_port);
/* Waits until fd is ready for events (POLLIN/POLLOUT) or timeout_ms
 * passes: 1 ready, 0 timed out, -errno (EINTR included). Blocks. */
int rn_wait_fd(int fd, short events, int timeout_ms);
/* Local address of a socket. */
int rn_sock_local(int fd, rn_addr_t *addr, uint16_t *port);
/* Shuts down the write side and closes (so the peer sees EOF even while a
 * forked child still holds the socket: only for the process that made
 * it); errors are ignored, fd is gone. */
void rn_sock_close(int fd);

/* --- OS socket listings -------------------------------------------------- */

/* Linux TCP states as /proc/net/tcp numbers them. */
enum {
    RN_TCP_ESTABLISHED = 1,
    RN_TCP_SYN_SENT = 2,
    RN_TCP_FIN_WAIT1 = 4,
    RN_TCP_FIN_WAIT2 = 5,
    RN_TCP_TIME_WAIT = 6,
    RN_TCP_CLOSE_WAIT = 8,
    RN_TCP_LAST_ACK = 9,
    RN_TCP_LISTEN = 10,
    RN_TCP_CLOSING = 11,
};
#define RN_TCP_STATE(s) (1u << (s))
#define RN_TCP_ACTIVE                                                         \
    (RN_TCP_STATE(RN_TCP_ESTABLISHED) | RN_TCP_STATE(RN_TCP_CLOSE_WAIT) |     \
     RN_TCP_STATE(RN_TCP_SYN_SENT))
/* The states of a connection being torn down that still hold its 4-tuple
 * (D30). */
#define RN_TCP_CLOSING_STATES                                                 \
    (RN_TCP_STATE(RN_TCP_FIN_WAIT1) | RN_TCP_STATE(RN_TCP_FIN_WAIT2) |        \
     RN_TCP_STATE(RN_TCP_CLOSING) | RN_TCP_STATE(RN_TCP_LAST_ACK) |           \
     RN_TCP_STATE(RN_TCP_TIME_WAIT))

/*
 * Whether the OS lists a TCP socket in one of the states of state_mask
 * whose local end matches key's (wildcard-aware, D15) and, when
 * match_remote, whose remote end equals key's.  For an IPv4 key, dual-stack
 * IPv6 sockets ("::" or v4-mapped in tcp6/udp6) count too.  1 found, 0
 * not, -errno.
 */
int rn_os_tcp_find(const rn_tuple_t *key, unsigned state_mask,
                   bool match_remote);
/* Whether addr is an address of this host (a socket can bind to it):
 * 1, 0 or -errno. */
int rn_os_addr_is_local(const rn_addr_t *addr);
/* Whether the OS lists a UDP socket bound to key's local end
 * (wildcard-aware).  1, 0 or -errno. */
int rn_os_udp_find(const rn_tuple_t *key);

#endif /* RN_SOCK_H */
