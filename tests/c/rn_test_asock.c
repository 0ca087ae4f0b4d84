/*
 * rn_test_asock.c: the async socket tests' callback recorder and helpers
 * that rn_test_asock.h declares.
 */
#include "rn_test_asock.h"

#include "rn_sys.h"
#include "rn_test_support.h"

#include <string.h>
#include <unistd.h>

struct cb g_cb;

void
cb_reset(void)
{
    memset(&g_cb, 0, sizeof(g_cb));
}

void
on_open(void *ctx, rn_asock_open_result_t result)
{
    g_cb.open_ctx = ctx;
    g_cb.thread = pthread_self();
    atomic_store(&g_cb.open_result, (int)result);
    atomic_fetch_add(&g_cb.open_calls, 1);
}

void
on_send(void *ctx, rn_asock_send_result_t result)
{
    int i = atomic_load(&g_cb.send_calls);
    if (i < CB_MAX) {
        g_cb.send_results[i] = (int)result;
        g_cb.send_seq[i] = ctx ? *(int *)ctx : -1;
    }
    g_cb.thread = pthread_self();
    atomic_fetch_add(&g_cb.send_calls, 1);
}

void
on_recv(void *ctx, rn_asock_receive_result_t result, uint32_t bytes)
{
    int i = atomic_load(&g_cb.recv_calls);
    if (i < CB_MAX) {
        g_cb.recv_results[i] = (int)result;
        g_cb.recv_bytes[i] = bytes;
        g_cb.recv_seq[i] = ctx ? *(int *)ctx : -1;
    }
    g_cb.thread = pthread_self();
    atomic_fetch_add(&g_cb.recv_calls, 1);
}

rn_asock_t *
open_sock(int fd)
{
    rn_asock_t *s = NULL;
    if (rn_asock_create(NULL, fd, &s) != 0) {
        close(fd); /* the socket owns fd only once create succeeds */
        return NULL;
    }
    if (rn_asock_open_async(s, on_open, NULL) != 0) {
        rn_asock_destroy(s);
        return NULL;
    }
    return s;
}

/* A created (not opened) socket over the first end of a pair made by
 * make_pair; NULL, with both ends closed, on failure. */
static rn_asock_t *
create_sock_on_pair(int (*make_pair)(int *, int *), int *fd, int *peer)
{
    rn_asock_t *s = NULL;
    if (make_pair(fd, peer) != 0)
        return NULL;
    if (rn_asock_create(NULL, *fd, &s) != 0) {
        close(*fd);
        close(*peer);
        return NULL;
    }
    return s;
}

/* open_sock over the first end of a pair made by make_pair. */
static rn_asock_t *
open_sock_on_pair(int (*make_pair)(int *, int *), int *fd, int *peer)
{
    if (make_pair(fd, peer) != 0)
        return NULL;
    rn_asock_t *s = open_sock(*fd);
    if (s == NULL)
        close(*peer);
    return s;
}

rn_asock_t *
create_sock_on_unix_pair(int *fd, int *peer)
{
    return create_sock_on_pair(unix_pair, fd, peer);
}

rn_asock_t *
open_sock_on_unix_pair(int *fd, int *peer)
{
    return open_sock_on_pair(unix_pair, fd, peer);
}

rn_asock_t *
open_sock_on_tcp_pair(int *fd, int *peer)
{
    return open_sock_on_pair(tcp_pair, fd, peer);
}

int
receive_into(rn_asock_t *s, void *buf, uint32_t len, void *ctx)
{
    rn_asock_buffer_t b = {buf, len};
    return rn_asock_receive_async(s, &b, 1, on_recv, ctx);
}

rn_asock_send_sync_result_t
send_str(rn_asock_t *s, const char *data, void *ctx)
{
    rn_asock_buffer_t b = {(void *)data, (uint32_t)strlen(data)};
    return rn_asock_send_async(s, &b, 1, on_send, ctx);
}

void
finish(void)
{
    rn_sys_reset();
    rn_port_global_release();
}

void
finish_pair(rn_asock_t *s, int peer)
{
    rn_asock_destroy(s);
    if (peer >= 0)
        close(peer);
    finish();
}

int
take_slot(int fd, uint32_t slot, rn_port_cb *cb, void **ctx)
{
    rn_port_t *port = NULL;
    if (rn_port_get(&port) != 0)
        return -1;
    int rc = rn_port_take(port, fd, slot, cb, ctx);
    rn_port_dec_ref(port);
    return rc;
}

void
destroy_call(void *sock)
{
    rn_asock_destroy(sock);
}

void
close_call(void *sock)
{
    rn_asock_close(sock);
}
