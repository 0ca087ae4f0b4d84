/*
 * rn_test_support.h: the fakes, gate and socket pairs the C tests share.
 *
 * One copy of what the test files of the completion port and the async
 * socket (and test_fd_exhaustion.c) need: connected socket pairs and pipes,
 * fakes for the rn_sys seams (a counting allocator that can fail, a log of
 * epoll_ctl and close calls, scripted sendmsg, recvmsg, epoll_wait and
 * fcntl) and a gate a seam or callback stops in until the test opens it.
 * The state lives in rn_test_support.c, linked into every test binary like
 * rn_test_main.c: a fake installed by one file's test is the same object
 * the shared helpers read.  A test installs fakes with the use_* calls and
 * sets the knobs (g_*) it needs; the runner calls test_support_reset()
 * before every test, so a test starts with libc's seams and every knob at
 * its default even when one binary runs all its tests in one process.
 */
#ifndef RN_TEST_SUPPORT_H
#define RN_TEST_SUPPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Puts every seam back to libc and every knob and the gate to its default. */
void test_support_reset(void);

/* --- sockets, pipes and fds ---------------------------------------------- */

/* A connected TCP pair over 127.0.0.1 (ephemeral port, TCP_NODELAY, both
 * blocking); 0 or -1. */
int tcp_pair(int *a, int *b);

/* A connected AF_UNIX stream pair (blocking, CLOEXEC); 0 or -1. */
int unix_pair(int *a, int *b);

/* A pipe, both ends CLOEXEC and non-blocking; 0 or -1. */
int make_pipe(int p[2]);

/* Writes into fd until the kernel takes no more, so EPOLLOUT cannot fire
 * until the peer reads; leaves fd non-blocking. */
void fill_send_buffer(int fd);

/* Reads exactly n bytes from a blocking fd; 0 or -1. */
int read_exact(int fd, void *buf, size_t n);

int fd_is_open(int fd);

/* The lowest free fd number: unchanged by a call that leaked no fd. */
int lowest_free_fd(void);

/* --- the counting allocator (rn_sys malloc/calloc/realloc/free) ---------- */

/* Successful allocations and frees of non-NULL pointers since
 * use_counting_allocator(); equal when everything was freed. */
extern atomic_long g_allocs, g_frees;
/* n > 0: the n-th next malloc (calloc) fails with ENOMEM. */
extern atomic_int g_fail_malloc, g_fail_calloc;
/* Set: free sets errno to EIO (P16: errno must be saved before a free). */
extern atomic_int g_free_clobbers_errno;

void use_counting_allocator(void);

/* --- the call log (rn_sys epoll_ctl and close) --------------------------- */

/* The call of a log entry: EPOLL_CTL_ADD, EPOLL_CTL_MOD, EPOLL_CTL_DEL or
 * LOG_CLOSE. */
#define LOG_CLOSE (-1)
#define LOG_MAX 4096

struct logged_call {
    int call;
    int fd;
    uint32_t events; /* of an epoll_ctl; 0 for DEL and close */
};

extern struct logged_call g_log[LOG_MAX];
extern atomic_int g_nlog;
/* epoll_ctl calls with op g_ctl_fail_op (-1: none) fail with
 * g_ctl_fail_errno, after they were logged. */
extern atomic_int g_ctl_fail_op, g_ctl_fail_errno;

/* Empties the log and logs every epoll_ctl and close from now on. */
void use_call_log(void);

/* The index of the first logged call of that kind on fd, or -1. */
int log_find(int call, int fd);

/* --- scripted sendmsg ---------------------------------------------------- */

extern atomic_int g_send_calls;
extern atomic_int g_send_flags;       /* of the last call */
extern atomic_int g_send_eagain;      /* the next n calls: EAGAIN */
extern atomic_int g_send_fail_errno;  /* fail from call g_send_fail_at on */
extern atomic_int g_send_fail_at;     /* -1: never */
extern atomic_int g_send_max;         /* bytes per call, 0 = no limit */
extern atomic_int g_send_flip;        /* alternate write / EWOULDBLOCK */
extern atomic_int g_send_real_eagain; /* EAGAINs the kernel returned */

/* Zeroes g_send_calls and routes sendmsg through the script above. */
void use_send_seam(void);

/* A sendmsg that stops in the gate, then sends. */
ssize_t gated_sendmsg(int fd, const struct msghdr *msg, int flags);

/* --- scripted recvmsg ---------------------------------------------------- */

extern atomic_int g_recv_calls;
extern atomic_int g_recv_eagain;     /* the next n calls: EAGAIN */
extern atomic_int g_recv_fail_errno; /* 0: no failure */

/* Zeroes g_recv_calls and routes recvmsg through the script above. */
void use_recv_seam(void);

/* --- fcntl --------------------------------------------------------------- */

/* Set: gated_fcntl fails with this errno (after the gate). */
extern atomic_int g_fcntl_fail;

/* An fcntl that stops in the gate, then fails or forwards. */
int gated_fcntl(int fd, int cmd, int arg);

/* --- epoll_wait: recorded, interrupted, rewritten ------------------------ */

extern atomic_int g_wait_calls, g_wait_maxevents, g_wait_timeout;
extern atomic_int g_wait_eintr; /* the next n calls: EINTR */
/* Events of fd g_rewrite_fd (-1: none) are replaced by g_rewrite_events. */
extern atomic_int g_rewrite_fd;
extern atomic_uint g_rewrite_events;
/* What the last call returned, and whether it included the port's wake-up
 * (the eventfd, epoll data UINT64_MAX). */
extern atomic_int g_last_wait_result;
extern atomic_int g_last_wait_was_wake;

void use_wait_log(void);

/* --- creating the port: epoll_create1, eventfd, the worker thread -------- */

extern atomic_int g_create_flags;  /* of the last logged_epoll_create1 */
extern atomic_int g_eventfd_flags; /* of the last logged_eventfd */

int logged_epoll_create1(int flags);
int logged_eventfd(unsigned int init, int flags);
int emfile_epoll_create1(int flags);
int eagain_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg);

/* --- the gate ------------------------------------------------------------ */

/*
 * One gate per process (a binary runs one test at a time).  gate_arm()
 * makes the next gate_pass() stop until gate_open(); a gate_pass() while
 * the gate is not armed returns at once, so a fake that passes the gate
 * can stay installed after it was used.
 */
void gate_arm(void);
void gate_pass(void);
int gate_entered(void);
void gate_open(void);

#endif /* RN_TEST_SUPPORT_H */
