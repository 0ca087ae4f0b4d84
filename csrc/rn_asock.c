/*
 * rn_asock.c: async_socket over the completion port (seed 002, amended).
 *
 * Layer: pure C core; no Python, no logging, no threads of its own (the
 * port's worker runs the asynchronous completions).
 *
 * Per socket: a mutex guarding the state, the pending-API counter and two
 * FIFO queues of operations (sends, receives).  Only the head of each queue
 * is armed on the port (write slot / read slot), so a send and a receive
 * can be pending together (P3), and a send never overtakes an earlier one:
 * while the send queue is not empty a new send is appended, not written
 * (P8).  The head send keeps every unsent byte of every buffer as an iovec
 * array (P6) and its progress survives EAGAIN (P5).
 *
 * Callbacks are collected into a local "done" list while the mutex is held
 * and called after it is released, and after the last access to the socket:
 * a callback may close or destroy its own socket.
 *
 * Lock order: socket mutex, then the port's lock (rn_port_add is called
 * with the socket mutex held; the port never calls back with its lock held
 * and never takes a socket mutex).  rn_port_remove() is called without the
 * socket mutex, because it waits for this socket's running callbacks.
 */
#include "rn_asock.h"
#include "rn_sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

enum rn_asock_state {
    ST_CLOSED, /* fd >= 0: never opened; fd == -1: closed for good */
    ST_OPENING,
    ST_OPEN,
    ST_CLOSING,
};

struct rn_asock_op {
    rn_fifo_link_t link; /* first: in the socket's sends, receives or done */
    rn_asock_t *sock;
    bool is_send;
    union {
        rn_asock_on_send send;
        rn_asock_on_receive receive;
    } cb;
    void *cb_ctx;
    uint64_t seq;       /* start order, for FIFO abandonment at close */
    int result;         /* set when the op completes */
    uint32_t bytes;     /* receive: bytes read */
    uint32_t sent;      /* send: bytes written so far */
    uint32_t iov_first; /* send: first iovec with bytes left */
    uint32_t iov_count;
    struct iovec iov[];
};

struct rn_asock {
    rn_fork_guard_t fork_guard; /* first: a guard is its socket */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* state left OPENING/CLOSING, pending_api hit 0 */
    int fd;
    int state;
    unsigned pending_api;
    rn_port_t *port;
    uint64_t next_seq;
    /* After a send failed mid-stream the byte stream has a hole: every
     * queued and later send completes with this (P7).  0 = none. */
    int send_failed;
    rn_fifo_t sends;
    rn_fifo_t receives;
};

/* --- queues and the done list -------------------------------------------- */

/* The core's FIFOs (rn_port.h), typed: an op's link is the op. */
static struct rn_asock_op *
q_head(const rn_fifo_t *q)
{
    return (struct rn_asock_op *)q->head;
}

static void
q_push(rn_fifo_t *q, struct rn_asock_op *op)
{
    rn_fifo_push(q, &op->link);
}

static struct rn_asock_op *
q_pop(rn_fifo_t *q)
{
    return (struct rn_asock_op *)rn_fifo_pop(q);
}

static void
q_unlink(rn_fifo_t *q, struct rn_asock_op *op)
{
    (void)rn_fifo_unlink(q, &op->link);
}

static void
done_add(rn_fifo_t *done, struct rn_asock_op *op, int result, uint32_t bytes)
{
    op->result = result;
    op->bytes = bytes;
    q_push(done, op);
}

/* Calls and frees every completed op; no lock held, socket not touched. */
static void
done_run(rn_fifo_t *done)
{
    struct rn_asock_op *op;
    while ((op = q_pop(done)) != NULL) {
        if (op->is_send)
            op->cb.send(op->cb_ctx, (rn_asock_send_result_t)op->result);
        else
            op->cb.receive(op->cb_ctx, (rn_asock_receive_result_t)op->result,
                           op->bytes);
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_084 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_087 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_093 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_100 */
        rn_sys.free(op);
    }
}

static void
leave_call(rn_asock_t *sock)
{
    if (--sock->pending_api == 0)
        pthread_cond_broadcast(&sock->cond);
}

/* --- create / destroy ---------------------------------------------------- */

/*
 * In a child after fork() (99_009), with the socket's lock consistent (the
 * forking thread held it).  A thread opening or closing the socket at the
 * fork does not exist here: settle its state so close/destroy never wait
 * for it.  Operations the worker had completed but not yet reported are
 * never reported in the child (their callbacks belong to the parent).
 */
static void
asock_in_child(rn_fork_guard_t *guard)
{
    rn_asock_t *sock = (rn_asock_t *)guard;
    pthread_cond_init(&sock->cond, NULL);
    if (sock->state == ST_OPENING) {
        sock->state = ST_CLOSED; /* never opened: destroy closes the fd */
    }
    else if (sock->state == ST_CLOSING) {
        /* The closer may have closed the fd already, and its number may
         * be another fd's now: leave it. */
        sock->fd = -1;
        sock->state = ST_CLOSED;
    }
}

int
rn_asock_create(void *execution_engine, int fd, rn_asock_t **out)
{
    int rc;

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_002 */
    (void)execution_engine;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_003 */
    if (fd < 0)
        return -EBADF;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_001 */
    rn_asock_t *sock = rn_sys.calloc(1, sizeof(*sock));
    if (sock == NULL) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_006 */
        return -ENOMEM;
    }
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_005 */
    rc = rn_port_get(&sock->port);
    if (rc < 0) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_006 */
        rn_sys.free(sock);
        return rc;
    }
    pthread_mutex_init(&sock->lock, NULL);
    pthread_cond_init(&sock->cond, NULL);
    sock->fd = fd;
    sock->state = ST_CLOSED;
    sock->fork_guard.lock = &sock->lock;
    sock->fork_guard.in_child = asock_in_child;
    rn_fork_guard_add(&sock->fork_guard);
    *out = sock;
    return 0;
}

void
rn_asock_destroy(rn_asock_t *sock)
{
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_019 */
    if (sock == NULL)
        return;
    pthread_mutex_lock(&sock->lock);
    for (;;) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_020 */
        if (sock->state == ST_OPENING || sock->state == ST_CLOSING) {
            pthread_cond_wait(&sock->cond, &sock->lock);
            continue;
        }
        if (sock->state == ST_OPEN) {
            pthread_mutex_unlock(&sock->lock);
            /* Codes_SRS_ASYNC_SOCKET_LINUX_11_021 */
            rn_asock_close(sock);
            pthread_mutex_lock(&sock->lock);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&sock->lock);
    /* Never opened: the socket still owns the fd it was created with. */
    if (sock->fd >= 0)
        rn_sys.close(sock->fd);
    rn_fork_guard_remove(&sock->fork_guard);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_022 */
    rn_port_dec_ref(sock->port);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_023 */
    pthread_cond_destroy(&sock->cond);
    pthread_mutex_destroy(&sock->lock);
    rn_sys.free(sock);
}

/* --- open / close -------------------------------------------------------- */

int
rn_asock_open_async(rn_asock_t *sock, rn_asock_on_open on_open, void *context)
{
    int rc;

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_024 */
    if (sock == NULL)
        return -EINVAL;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_025 */
    if (on_open == NULL)
        return -EINVAL;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_026 (context may be NULL) */

    pthread_mutex_lock(&sock->lock);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_029 */
    if (sock->state != ST_CLOSED) {
        pthread_mutex_unlock(&sock->lock);
        return -EALREADY;
    }
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_030 */
    if (sock->fd < 0) {
        pthread_mutex_unlock(&sock->lock);
        return -EBADF;
    }
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_027 */
    sock->state = ST_OPENING;
    pthread_mutex_unlock(&sock->lock);

    /* A blocking fd would stall the one worker of the process (P17). */
    int flags = rn_sys.fcntl(sock->fd, F_GETFL, 0);
    if (flags < 0) {
        rc = -errno;
        goto error;
    }
    if (!(flags & O_NONBLOCK) &&
        rn_sys.fcntl(sock->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        rc = -errno;
        goto error;
    }
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_031 */
    rc = rn_port_register(sock->port, sock->fd);
    if (rc < 0)
        goto error;

    pthread_mutex_lock(&sock->lock);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_032 */
    sock->state = ST_OPEN;
    pthread_cond_broadcast(&sock->cond);
    pthread_mutex_unlock(&sock->lock);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_033 */
    on_open(context, RN_ASOCK_OPEN_OK);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_028 */
    return 0;

error:
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_034 */
    pthread_mutex_lock(&sock->lock);
    sock->state = ST_CLOSED;
    pthread_cond_broadcast(&sock->cond);
    pthread_mutex_unlock(&sock->lock);
    return rc;
}

void
rn_asock_close(rn_asock_t *sock)
{
    rn_fifo_t done = {NULL, NULL};

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_035 */
    if (sock == NULL)
        return;
    pthread_mutex_lock(&sock->lock);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_042 */
    if (sock->state != ST_OPEN) {
        pthread_mutex_unlock(&sock->lock);
        return;
    }
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_036 */
    sock->state = ST_CLOSING;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_037 */
    while (sock->pending_api > 0)
        pthread_cond_wait(&sock->cond, &sock->lock);
    pthread_mutex_unlock(&sock->lock);

    /* Deregister before close(fd) so no event of this fd (or of a socket
     * that reuses its number) can reach us (P20); this completes the armed
     * heads with ABANDONED and waits for a callback running on the worker. */
    rn_port_remove(sock->port, sock->fd);

    /* What the port never saw (queued behind a head): ABANDONED, FIFO. */
    pthread_mutex_lock(&sock->lock);
    for (;;) {
        struct rn_asock_op *s = q_head(&sock->sends),
                           *r = q_head(&sock->receives);
        if (s == NULL && r == NULL)
            break;
        if (s != NULL && (r == NULL || s->seq < r->seq))
            done_add(&done, q_pop(&sock->sends), RN_ASOCK_SEND_ABANDONED, 0);
        else
            done_add(&done, q_pop(&sock->receives), RN_ASOCK_RECEIVE_ABANDONED,
                     0);
    }
    pthread_mutex_unlock(&sock->lock);
    done_run(&done);

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_039 */
    rn_sys.close(sock->fd);
    pthread_mutex_lock(&sock->lock);
    sock->fd = -1;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_041 */
    sock->state = ST_CLOSED;
    pthread_cond_broadcast(&sock->cond);
    pthread_mutex_unlock(&sock->lock);
}

int
rn_asock_fd(rn_asock_t *sock)
{
    pthread_mutex_lock(&sock->lock);
    int fd = sock->fd;
    pthread_mutex_unlock(&sock->lock);
    return fd;
}

/* --- operations ---------------------------------------------------------- */

static struct rn_asock_op *
asock_op_new(rn_asock_t *sock, bool is_send, const rn_asock_buffer_t *buffers,
             uint32_t count, void *cb_ctx)
{
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_074 */
    struct rn_asock_op *op =
        rn_sys.malloc(offsetof(struct rn_asock_op, iov) +
                      (size_t)count * sizeof(struct iovec));
    if (op == NULL)
        return NULL;
    memset(op, 0, sizeof(*op));
    op->sock = sock;
    op->is_send = is_send;
    op->cb_ctx = cb_ctx;
    op->iov_count = count;
    for (uint32_t i = 0; i < count; i++) {
        op->iov[i].iov_base = buffers[i].buffer;
        op->iov[i].iov_len = buffers[i].length;
    }
    return op;
}

/* Sum of the lengths, or -1 if a buffer is NULL/empty or it overflows. */
static int
check_buffers(const rn_asock_buffer_t *buffers, uint32_t count,
              uint64_t *total)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < count; i++) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_046 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_067 */
        if (buffers[i].buffer == NULL)
            return -1;
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_047 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_068 */
        if (buffers[i].length == 0)
            return -1;
        sum += buffers[i].length;
    }
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_048 */
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_069 */
    if (sum > UINT32_MAX)
        return -1;
    *total = sum;
    return 0;
}

/* The argument checks of a send and a receive: 0, or -EINVAL. */
static int
check_request(const rn_asock_t *sock, const rn_asock_buffer_t *buffers,
              uint32_t count, bool has_callback)
{
    uint64_t total;

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_043 */
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_064 */
    if (sock == NULL)
        return -EINVAL;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_044 */
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_065 */
    if (buffers == NULL)
        return -EINVAL;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_045 */
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_066 */
    if (count == 0)
        return -EINVAL;
    if (check_buffers(buffers, count, &total) < 0)
        return -EINVAL;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_049 */
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_070 */
    if (!has_callback)
        return -EINVAL;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_050 (context may be NULL) */
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_071 (context may be NULL) */
    return 0;
}

/*
 * Writes what is left of op.  0 when all of it went out, else -errno
 * (-EAGAIN: the socket is full; the progress is kept in op).
 */
static int
op_send(int fd, struct rn_asock_op *op)
{
    while (op->iov_first < op->iov_count) {
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        size_t left = op->iov_count - op->iov_first;
        msg.msg_iov = &op->iov[op->iov_first];
        msg.msg_iovlen = left > IOV_MAX ? IOV_MAX : left;
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_052 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_096 */
        ssize_t n = rn_sys.sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            int err = errno; /* saved at once (P16) */
            if (err == EINTR)
                continue;
            return err == EWOULDBLOCK ? -EAGAIN : -err;
        }
        if (n == 0)
            return -EAGAIN; /* a stream socket never does this; no spin */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_053 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_101 */
        op->sent += (uint32_t)n;
        size_t k = (size_t)n;
        while (k > 0) {
            struct iovec *v = &op->iov[op->iov_first];
            if (k >= v->iov_len) {
                k -= v->iov_len;
                v->iov_len = 0;
                op->iov_first++;
            }
            else {
                v->iov_base = (char *)v->iov_base + k;
                v->iov_len -= k;
                k = 0;
            }
        }
    }
    return 0;
}

/* The refusals that mean the connection is gone (ABANDONED). */
static bool
send_abandoned(int err)
{
    return err == -ECONNRESET || err == -ENOTCONN || err == -EPIPE;
}

/* The send result for a failed write. */
static int
send_failure(int err)
{
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_098 */
    if (send_abandoned(err))
        return RN_ASOCK_SEND_ABANDONED;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_099 */
    return RN_ASOCK_SEND_ERROR;
}

/* Completes every queued send with result and breaks the stream.  Locked. */
static void
fail_sends(rn_asock_t *sock, int result, rn_fifo_t *done)
{
    struct rn_asock_op *op;
    sock->send_failed = result;
    while ((op = q_pop(&sock->sends)) != NULL)
        done_add(done, op, result, 0);
}

rn_asock_send_sync_result_t
rn_asock_send_refusal(int err)
{
    if (err == 0)
        return RN_ASOCK_SEND_SYNC_OK;
    return send_abandoned(err) ? RN_ASOCK_SEND_SYNC_ABANDONED
                               : RN_ASOCK_SEND_SYNC_ERROR;
}

rn_asock_send_sync_result_t
rn_asock_send_async(rn_asock_t *sock, const rn_asock_buffer_t *buffers,
                    uint32_t buffer_count, rn_asock_on_send on_send,
                    void *context)
{
    return rn_asock_send_refusal(
        rn_asock_send(sock, buffers, buffer_count, on_send, context));
}

int
rn_asock_send(rn_asock_t *sock, const rn_asock_buffer_t *buffers,
              uint32_t buffer_count, rn_asock_on_send on_send, void *context)
{
    rn_fifo_t done = {NULL, NULL};
    int result = check_request(sock, buffers, buffer_count, on_send != NULL);
    if (result < 0)
        return result;

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_056 */
    /* Allocated before anything is written, so a failed allocation can
     * never leave half a payload on the wire. */
    struct rn_asock_op *op =
        asock_op_new(sock, true, buffers, buffer_count, context);
    if (op == NULL) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_063 */
        return -ENOMEM;
    }
    op->cb.send = on_send;

    pthread_mutex_lock(&sock->lock);
    /* Count first, then look at the state (P15). */
    sock->pending_api++;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_051 */
    if (sock->state != ST_OPEN || sock->send_failed) {
        rn_sys.free(op);
        /* Not open, or the stream has a hole an earlier send left. */
        result = sock->state != ST_OPEN ? -ENOTCONN : -EPIPE;
        goto out;
    }
    op->seq = ++sock->next_seq;
    if (sock->sends.head != NULL) {
        /* Earlier sends still wait for EPOLLOUT: queue behind them (P8). */
        q_push(&sock->sends, op);
        result = 0;
        goto out;
    }
    int rc = op_send(sock->fd, op);
    if (rc == 0) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_061 */
        done_add(&done, op, RN_ASOCK_SEND_OK, 0);
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_062 */
        result = 0;
    }
    else if (rc == -EAGAIN) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_054 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_055 */
        q_push(&sock->sends, op);
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_057 */
        rc = rn_port_add(sock->port, EPOLLOUT, sock->fd,
                         rn_asock_event_complete, op);
        if (rc < 0) {
            q_unlink(&sock->sends, op);
            /* Part of it is on the wire: nothing after it may follow. */
            if (op->sent > 0)
                sock->send_failed = RN_ASOCK_SEND_ERROR;
            rn_sys.free(op);
            /* Codes_SRS_ASYNC_SOCKET_LINUX_11_063 */
            result = rc;
        }
        else {
            result = 0;
        }
    }
    else {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_059 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_060 */
        result = rc;
        if (op->sent > 0)
            sock->send_failed = send_failure(rc);
        rn_sys.free(op);
    }
out:
    leave_call(sock);
    pthread_mutex_unlock(&sock->lock);
    /* After the counter dropped: the callback may close this socket. */
    done_run(&done);
    return result;
}

/* Arms the head receive, failing heads the port refuses.  Locked. */
static void
arm_receive_head(rn_asock_t *sock, rn_fifo_t *done)
{
    struct rn_asock_op *op;
    while ((op = q_head(&sock->receives)) != NULL && sock->state == ST_OPEN) {
        int rc = rn_port_add(sock->port, EPOLLIN | EPOLLRDHUP, sock->fd,
                             rn_asock_event_complete, op);
        /* -ECANCELED: close is deregistering; it abandons the queue. */
        if (rc == 0 || rc == -ECANCELED)
            return;
        done_add(done, q_pop(&sock->receives), RN_ASOCK_RECEIVE_ERROR, 0);
    }
}

int
rn_asock_receive_async(rn_asock_t *sock, rn_asock_buffer_t *buffers,
                       uint32_t buffer_count, rn_asock_on_receive on_receive,
                       void *context)
{
    int rc = check_request(sock, buffers, buffer_count, on_receive != NULL);
    if (rc < 0)
        return rc;

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_073 */
    struct rn_asock_op *op =
        asock_op_new(sock, false, buffers, buffer_count, context);
    if (op == NULL) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_078 */
        return -ENOMEM;
    }
    op->cb.receive = on_receive;

    pthread_mutex_lock(&sock->lock);
    sock->pending_api++;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_072 */
    if (sock->state != ST_OPEN) {
        rn_sys.free(op);
        rc = -ENOTCONN;
        goto out;
    }
    op->seq = ++sock->next_seq;
    q_push(&sock->receives, op);
    if (q_head(&sock->receives) == op) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_102 */
        rc = rn_port_add(sock->port, EPOLLIN | EPOLLRDHUP, sock->fd,
                         rn_asock_event_complete, op);
        if (rc < 0) {
            /* Codes_SRS_ASYNC_SOCKET_LINUX_11_078 */
            q_unlink(&sock->receives, op);
            rn_sys.free(op);
        }
    }
out:
    leave_call(sock);
    pthread_mutex_unlock(&sock->lock);
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_077 */
    return rc;
}

/* --- event_complete_callback --------------------------------------------- */

/* EPOLLOUT for the head send: write the queue out in order.  Locked. */
static void
on_writable(rn_asock_t *sock, rn_fifo_t *done)
{
    struct rn_asock_op *op;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_094 */
    while ((op = q_head(&sock->sends)) != NULL && sock->state == ST_OPEN) {
        int rc = op_send(sock->fd, op);
        if (rc == 0) {
            done_add(done, q_pop(&sock->sends), RN_ASOCK_SEND_OK, 0);
            continue;
        }
        if (rc == -EAGAIN) {
            /* Still full: keep the progress and wait again (P5). */
            rc = rn_port_add(sock->port, EPOLLOUT, sock->fd,
                             rn_asock_event_complete, op);
            if (rc == 0 || rc == -ECANCELED)
                return;
            fail_sends(sock, RN_ASOCK_SEND_ERROR, done);
            return;
        }
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_097 */
        fail_sends(sock, send_failure(rc), done);
        return;
    }
    /* Not OPEN: close is running and abandons what is left. */
}

/* EPOLLIN (or RDHUP) for the head receive.  Locked. */
static void
on_readable(rn_asock_t *sock, struct rn_asock_op *op, rn_fifo_t *done)
{
    struct msghdr msg;
    ssize_t n;
    int result;

    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = op->iov;
    msg.msg_iovlen = op->iov_count > IOV_MAX ? IOV_MAX : op->iov_count;
    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_083 */
    do {
        n = rn_sys.recvmsg(sock->fd, &msg, 0);
    } while (n < 0 && errno == EINTR);

    if (n > 0) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_092 */
        result = RN_ASOCK_RECEIVE_OK;
    }
    else if (n == 0) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_091 */
        result = RN_ASOCK_RECEIVE_ABANDONED;
    }
    else {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_088 */
        int err = errno; /* saved at once (P16) */
        if (err == EAGAIN || err == EWOULDBLOCK) {
            /* Codes_SRS_ASYNC_SOCKET_LINUX_11_089 */
            /* Nothing to read after all: wait again, no callback (P10). */
            if (sock->state != ST_OPEN)
                return; /* close abandons it */
            int rc = rn_port_add(sock->port, EPOLLIN | EPOLLRDHUP, sock->fd,
                                 rn_asock_event_complete, op);
            if (rc == 0 || rc == -ECANCELED)
                return;
            result = RN_ASOCK_RECEIVE_ERROR;
        }
        else if (err == ECONNRESET) {
            /* Codes_SRS_ASYNC_SOCKET_LINUX_11_090 */
            result = RN_ASOCK_RECEIVE_ABANDONED;
        }
        else {
            /* Codes_SRS_ASYNC_SOCKET_LINUX_11_095 */
            result = RN_ASOCK_RECEIVE_ERROR;
        }
        n = 0;
    }
    q_unlink(&sock->receives, op);
    done_add(done, op, result, (uint32_t)n);
    arm_receive_head(sock, done);
}

void
rn_asock_event_complete(void *context, rn_port_action_t action)
{
    rn_fifo_t done = {NULL, NULL};

    /* Codes_SRS_ASYNC_SOCKET_LINUX_11_079 */
    if (context == NULL)
        return;
    struct rn_asock_op *op = context;
    rn_asock_t *sock = op->sock;

    pthread_mutex_lock(&sock->lock);
    if (action == RN_PORT_ABANDONED) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_080 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_081 */
        q_unlink(op->is_send ? &sock->sends : &sock->receives, op);
        done_add(&done, op,
                 op->is_send ? (int)RN_ASOCK_SEND_ABANDONED
                             : (int)RN_ASOCK_RECEIVE_ABANDONED,
                 0);
    }
    else if (action == RN_PORT_ERROR) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_085 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_086 */
        if (op->is_send) {
            fail_sends(sock, RN_ASOCK_SEND_ERROR, &done);
        }
        else {
            q_unlink(&sock->receives, op);
            done_add(&done, op, RN_ASOCK_RECEIVE_ERROR, 0);
            arm_receive_head(sock, &done);
        }
    }
    else if (!op->is_send) {
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_082 */
        /* Codes_SRS_ASYNC_SOCKET_LINUX_11_080 (amended: RDHUP reads first,
         * so bytes that came with the FIN are delivered before ABANDONED) */
        on_readable(sock, op, &done);
    }
    else if (action == RN_PORT_EPOLLOUT) {
        on_writable(sock, &done);
    }
    else {
        /* RDHUP/IN never reach a send (the port sends the read events to the
         * read slot); a peer that stopped writing does not stop our sending.
         * Treat it as a writability check. */
        on_writable(sock, &done);
    }
    pthread_mutex_unlock(&sock->lock);
    /* The socket must not be touched from here on. */
    done_run(&done);
}
