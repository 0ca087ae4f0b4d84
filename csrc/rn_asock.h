/*
 * rn_asock.h: async_socket over the completion port
 * (docs/srs/async_socket_linux.md, seed 002, amended as listed in
 * docs/srs/amendments.md).
 *
 * An rn_asock_t owns the fd given to rn_asock_create() (once that succeeds)
 * and closes it in close/destroy.  It never owns the data buffers: the
 * caller keeps them valid until the operation's callback has run.  The
 * descriptor arrays (rn_asock_buffer_t[]) are copied; they may go away when
 * the call returns.
 *
 * Which thread runs a callback (docs/design-core.md):
 *  - on_open_complete: the caller, inside rn_asock_open_async();
 *  - on_send_complete: the caller, inside rn_asock_send_async(), when every
 *    byte went out at once; otherwise the port's worker;
 *  - on_receive_complete: the worker;
 *  - ABANDONED for operations still pending at close/destroy: the thread
 *    calling close/destroy, before it returns.
 * No callback runs with a lock held, so a callback may call any function
 * here, including close/destroy of its own socket (but see destroy below).
 *
 * Ordering: sends reach the byte stream in the order rn_asock_send_async()
 * accepted them (a FIFO queue while the socket pushes back), and their
 * callbacks come in that order.  Receives are also a FIFO: each completes
 * with the bytes of one read, in order.  A send and receives may be
 * outstanding at the same time (full duplex).
 *
 * Return contract: int functions return 0 or -errno; "non-zero" in the
 * requirements means a negative errno here, and "returns NULL" for create
 * means a negative errno with *out untouched.
 */
#ifndef RN_ASOCK_H
#define RN_ASOCK_H

#include <stdint.h>

#include "rn_port.h"

typedef struct rn_asock rn_asock_t;

typedef enum rn_asock_open_result {
    RN_ASOCK_OPEN_OK,
    RN_ASOCK_OPEN_ERROR,
} rn_asock_open_result_t;

typedef enum rn_asock_send_sync_result {
    RN_ASOCK_SEND_SYNC_OK,        /* accepted: the callback will run */
    RN_ASOCK_SEND_SYNC_ERROR,     /* refused: no callback */
    RN_ASOCK_SEND_SYNC_ABANDONED, /* not open / connection gone: no callback */
} rn_asock_send_sync_result_t;

typedef enum rn_asock_send_result {
    RN_ASOCK_SEND_OK,
    RN_ASOCK_SEND_ERROR,
    RN_ASOCK_SEND_ABANDONED,
} rn_asock_send_result_t;

typedef enum rn_asock_receive_result {
    RN_ASOCK_RECEIVE_OK,
    RN_ASOCK_RECEIVE_ERROR,
    RN_ASOCK_RECEIVE_ABANDONED,
} rn_asock_receive_result_t;

typedef void (*rn_asock_on_open)(void *context, rn_asock_open_result_t result);
typedef void (*rn_asock_on_send)(void *context, rn_asock_send_result_t result);
typedef void (*rn_asock_on_receive)(void *context,
                                    rn_asock_receive_result_t result,
                                    uint32_t bytes_received);

typedef struct rn_asock_buffer {
    void *buffer;
    uint32_t length;
} rn_asock_buffer_t;

/*
 * Wraps fd (a connected stream socket; -1 is INVALID_SOCKET) and takes a
 * reference on the process's completion port.  execution_engine is unused
 * and may be NULL.  0 and *out, or -errno (the caller still owns fd).
 */
int rn_asock_create(void *execution_engine, int fd, rn_asock_t **out);

/*
 * Closes (if open), drops the port reference and frees.  Waits for an open
 * or close running on another thread.  Call it from one thread only, and
 * not from an ABANDONED callback that close/destroy of the same socket is
 * delivering.  NULL is ignored.
 */
void rn_asock_destroy(rn_asock_t *sock);

/*
 * Makes fd non-blocking, registers it with the port and calls on_open
 * (inline) with RN_ASOCK_OPEN_OK.  0 or -errno (no callback then).
 */
int rn_asock_open_async(rn_asock_t *sock, rn_asock_on_open on_open,
                        void *context);

/*
 * Stops new operations, deregisters the fd, completes every pending
 * operation with ABANDONED (in the order they were started) on this thread,
 * waits for a callback of this socket running on another thread, then
 * closes the fd.  Does nothing unless the socket is OPEN.
 */
void rn_asock_close(rn_asock_t *sock);

rn_asock_send_sync_result_t
rn_asock_send_async(rn_asock_t *sock, const rn_asock_buffer_t *buffers,
                    uint32_t buffer_count, rn_asock_on_send on_send,
                    void *context);

/*
 * rn_asock_send_async with the reason of a refusal: 0 (accepted: the
 * callback will run) or -errno (no callback).  -ENOTCONN (not open),
 * -EPIPE (an earlier send broke the stream) and -ECONNRESET are ABANDONED;
 * -EINVAL (bad arguments), -ENOMEM and the rest are ERROR.
 */
int rn_asock_send(rn_asock_t *sock, const rn_asock_buffer_t *buffers,
                  uint32_t buffer_count, rn_asock_on_send on_send,
                  void *context);
/* The result rn_asock_send_async gives for what rn_asock_send returned. */
rn_asock_send_sync_result_t rn_asock_send_refusal(int err);

/*
 * Queues a receive into buffers[0..buffer_count-1]; it completes OK with the
 * bytes of one read (scattered over the buffers in order), ABANDONED on
 * end of stream/reset/close, ERROR otherwise.  0 or -errno.
 */
int rn_asock_receive_async(rn_asock_t *sock, rn_asock_buffer_t *buffers,
                           uint32_t buffer_count,
                           rn_asock_on_receive on_receive, void *context);

/* The socket's fd (-1 once closed). */
int rn_asock_fd(rn_asock_t *sock);

/*
 * event_complete_callback: the port callback of every operation (public
 * only for unit tests, which take a context with rn_port_take()).
 */
void rn_asock_event_complete(void *context, rn_port_action_t action);

#endif /* RN_ASOCK_H */
