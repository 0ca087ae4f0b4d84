/*
 * rn_test_asock.h: the callback recorder and helpers of the async socket
 * tests (test_asock_*.c).
 *
 * Every callback records into g_cb (how often, with what result, on which
 * thread, with which int context); the runner empties it (cb_reset())
 * before every test, and a test ends with finish() or finish_pair(), which
 * put the seams back and let the process's port go.
 */
#ifndef RN_TEST_ASOCK_H
#define RN_TEST_ASOCK_H

#include "rn_asock.h"
#include "rn_port.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define CB_MAX 512

/* The recorder every callback writes to. */
struct cb {
    atomic_int open_calls;
    atomic_int open_result;
    void *open_ctx;
    atomic_int send_calls;
    int send_results[CB_MAX];
    atomic_int recv_calls;
    int recv_results[CB_MAX];
    uint32_t recv_bytes[CB_MAX];
    pthread_t thread; /* of the last callback */
    /* The int a send's or receive's context points at (-1: NULL). */
    int send_seq[CB_MAX];
    int recv_seq[CB_MAX];
};

extern struct cb g_cb;

/* Empties g_cb: the runner does before every test; a test that runs one
 * scenario several times does before each. */
void cb_reset(void);
void on_open(void *ctx, rn_asock_open_result_t result);
void on_send(void *ctx, rn_asock_send_result_t result);
void on_recv(void *ctx, rn_asock_receive_result_t result, uint32_t bytes);

/* Creates and opens (on_open) an async socket over fd; NULL, with fd
 * closed, on failure. */
rn_asock_t *open_sock(int fd);

/* A connected AF_UNIX (TCP over 127.0.0.1) pair with an async socket
 * created and opened (on_open) over its first end, *fd; *peer is the other
 * end, the test's.  NULL, with both ends closed, on failure. */
rn_asock_t *open_sock_on_unix_pair(int *fd, int *peer);
rn_asock_t *open_sock_on_tcp_pair(int *fd, int *peer);

/* The same over an AF_UNIX pair, but the socket only created, not opened. */
rn_asock_t *create_sock_on_unix_pair(int *fd, int *peer);

/* Starts a receive of up to len bytes into buf with on_recv and ctx. */
int receive_into(rn_asock_t *s, void *buf, uint32_t len, void *ctx);

/* Sends the string (without its NUL) with on_send and ctx. */
rn_asock_send_sync_result_t send_str(rn_asock_t *s, const char *data,
                                     void *ctx);

/* Ends a test: the seams go back to libc and the process's port goes. */
void finish(void);

/* Ends a test on an opened pair: destroys s, closes peer (-1: already
 * closed), then finish(). */
void finish_pair(rn_asock_t *s, int peer);

/* Takes the armed callback of fd's read or write slot from the port. */
int take_slot(int fd, uint32_t slot, rn_port_cb *cb, void **ctx);

/* For background_start: rn_asock_destroy and rn_asock_close of sock. */
void destroy_call(void *sock);
void close_call(void *sock);

#endif /* RN_TEST_ASOCK_H */
