/*
 * rn_test_port.h: the callback recorder and helpers of the completion port
 * tests (test_port_*.c).
 */
#ifndef RN_TEST_PORT_H
#define RN_TEST_PORT_H

#include "rn_port.h"

#include <pthread.h>
#include <stdatomic.h>

/* What a port callback was called with; zero-initialize one per slot. */
struct rec {
    atomic_int calls;
    atomic_int action; /* of the last call */
    atomic_int abandoned;
    pthread_t thread; /* of the last call */
    /* The place of its last call in the order of every rec_cb call since
     * g_order_next was zeroed. */
    atomic_int order;
};

extern atomic_int g_order_next;

/* A port callback recording into the struct rec its context points at. */
void rec_cb(void *ctx, rn_port_action_t action);

/* A port callback that stops in the gate, then sets g_gate_cb_done. */
void gated_cb(void *ctx, rn_port_action_t action);
extern atomic_int g_gate_cb_done;

/* Arms the gate for gated_cb and clears g_gate_cb_done. */
void gated_cb_arm(void);

/* A new port and a pipe (both ends CLOEXEC, non-blocking); 0, or -1
 * with neither left open. */
int open_port_and_pipe(rn_port_t **port, int p[2]);

/* open_port_and_pipe, then the pipe's read end armed for EPOLLIN with
 * rec_cb recording into r; 0, or -1 with nothing left open. */
int open_port_with_armed_pipe(rn_port_t **port, int p[2], struct rec *r);

/* A connected AF_UNIX pair (unix_pair) whose first end's send buffer is
 * full, so EPOLLOUT cannot fire on it until the other end reads; 0 or -1. */
int unix_pair_first_end_full(int pair[2]);

/* Drops the test's reference to port and closes both ends of the pipe
 * or socket pair. */
void release_port_and_pair(rn_port_t *port, int pair[2]);

/* rn_port_remove(port, fd), for background_start. */
struct remove_args {
    rn_port_t *port;
    int fd;
};
void remove_call(void *remove_args);

#endif /* RN_TEST_PORT_H */
