/*
 * rn_test_port.c: the completion port tests' callback recorder and helpers
 * that rn_test_port.h declares.
 */
#include "rn_test_port.h"

#include "rn_test_support.h"

#include <unistd.h>

atomic_int g_order_next;
atomic_int g_gate_cb_done;

void
rec_cb(void *ctx, rn_port_action_t action)
{
    struct rec *r = ctx;
    r->thread = pthread_self();
    atomic_store(&r->action, (int)action);
    if (action == RN_PORT_ABANDONED)
        atomic_fetch_add(&r->abandoned, 1);
    atomic_store(&r->order, atomic_fetch_add(&g_order_next, 1));
    atomic_fetch_add(&r->calls, 1);
}

void
gated_cb(void *ctx, rn_port_action_t action)
{
    (void)ctx;
    (void)action;
    gate_pass();
    atomic_store(&g_gate_cb_done, 1);
}

void
gated_cb_arm(void)
{
    atomic_store(&g_gate_cb_done, 0);
    gate_arm();
}

int
open_port_and_pipe(rn_port_t **port, int p[2])
{
    if (make_pipe(p) != 0)
        return -1;
    if (rn_port_create(port) != 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    return 0;
}

int
open_port_with_armed_pipe(rn_port_t **port, int p[2], struct rec *r)
{
    if (open_port_and_pipe(port, p) != 0)
        return -1;
    if (rn_port_add(*port, EPOLLIN, p[0], rec_cb, r) != 0) {
        release_port_and_pair(*port, p);
        return -1;
    }
    return 0;
}

int
unix_pair_first_end_full(int pair[2])
{
    if (unix_pair(&pair[0], &pair[1]) != 0)
        return -1;
    fill_send_buffer(pair[0]);
    return 0;
}

void
release_port_and_pair(rn_port_t *port, int pair[2])
{
    rn_port_dec_ref(port);
    close(pair[0]);
    close(pair[1]);
}

void
remove_call(void *remove_args)
{
    struct remove_args *args = remove_args;
    rn_port_remove(args->port, args->fd);
}
