/*
 * test_fd_exhaustion.c: ENFILE (the system's file table is full) at every
 * place the core makes an fd, and nothing leaks.
 *
 * The completion port makes its epoll fd and eventfd through the rn_sys
 * seam, so the fault goes in there.  rn_sock.c calls socket() and
 * accept4() straight from libc, so this binary interposes those two
 * symbols (an executable's definition wins over libc's for the whole
 * program) and forwards to the kernel with syscall(2) unless a test asks
 * for ENFILE.  Every test checks the return value, that the lowest free fd
 * is unchanged (no fd leaked) and that the call works again once the fault
 * is gone.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rn.h"
#include "rn_test.h"
#include "rn_test_support.h"

static atomic_int g_enfile_sockets;

int
socket(int domain, int type, int protocol)
{
    if (atomic_load(&g_enfile_sockets)) {
        errno = ENFILE;
        return -1;
    }
    return (int)syscall(SYS_socket, domain, type, protocol);
}

int
accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (atomic_load(&g_enfile_sockets)) {
        errno = ENFILE;
        return -1;
    }
    return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

static int
enfile_epoll_create1(int flags)
{
    errno = ENFILE;
    return -1;
}

static int
enfile_eventfd(unsigned int initval, int flags)
{
    errno = ENFILE;
    return -1;
}

static void
loopback(rn_addr_t *out)
{
    rn_addr_parse("127.0.0.1", 9, out);
}

RN_TEST(enfile_at_tcp_socket_creation_is_returned_and_leaks_nothing)
{
    rn_addr_t lo;
    loopback(&lo);
    int before = lowest_free_fd();
    atomic_store(&g_enfile_sockets, 1);
    int rc = rn_tcp_bound(&lo, 0);
    atomic_store(&g_enfile_sockets, 0);
    RN_CHECK_EQ(rc, -ENFILE);
    RN_CHECK_EQ(lowest_free_fd(), before);
    int fd = rn_tcp_bound(&lo, 0);
    RN_CHECK(fd >= 0);
    rn_sock_close(fd);
}

RN_TEST(enfile_at_udp_socket_creation_is_returned_and_leaks_nothing)
{
    rn_addr_t lo;
    loopback(&lo);
    int before = lowest_free_fd();
    atomic_store(&g_enfile_sockets, 1);
    int rc = rn_udp_bound(&lo, 0);
    atomic_store(&g_enfile_sockets, 0);
    RN_CHECK_EQ(rc, -ENFILE);
    RN_CHECK_EQ(lowest_free_fd(), before);
    int fd = rn_udp_bound(&lo, 0);
    RN_CHECK(fd >= 0);
    rn_sock_close(fd);
}

RN_TEST(enfile_at_accept_keeps_the_connection_pending)
{
    rn_addr_t lo;
    loopback(&lo);
    int listener = rn_tcp_bound(&lo, 0);
    RN_CHECK(listener >= 0);
    RN_CHECK_EQ(rn_tcp_listen(listener, 4), 0);
    rn_addr_t bound;
    uint16_t port = 0;
    RN_CHECK_EQ(rn_sock_local(listener, &bound, &port), 0);
    int client = rn_tcp_bound(&lo, 0);
    RN_CHECK(client >= 0);
    int rc = rn_tcp_connect_start(client, &lo, port);
    RN_CHECK(rc == 0 || rc == 1);
    RN_CHECK(rn_wait_fd(listener, POLLIN, 10000) > 0);

    int before = lowest_free_fd();
    rn_addr_t peer;
    uint16_t peer_port = 0;
    atomic_store(&g_enfile_sockets, 1);
    rc = rn_tcp_accept(listener, &peer, &peer_port);
    atomic_store(&g_enfile_sockets, 0);
    RN_CHECK_EQ(rc, -ENFILE);
    RN_CHECK_EQ(lowest_free_fd(), before);
    /* The kernel kept the connection queued: the next accept takes it. */
    int accepted = rn_tcp_accept(listener, &peer, &peer_port);
    RN_CHECK(accepted >= 0);
    RN_CHECK(rn_addr_is_loopback(&peer));
    rn_sock_close(accepted);
    rn_sock_close(client);
    rn_sock_close(listener);
}

RN_TEST(enfile_at_epoll_create_fails_the_port_and_leaks_nothing)
{
    rn_port_t *port = NULL;
    int before = lowest_free_fd();
    rn_sys.epoll_create1 = enfile_epoll_create1;
    int rc = rn_port_create(&port);
    rn_sys_reset();
    RN_CHECK_EQ(rc, -ENFILE);
    RN_CHECK(port == NULL);
    RN_CHECK_EQ(lowest_free_fd(), before);
}

RN_TEST(enfile_at_eventfd_closes_the_epoll_fd)
{
    rn_port_t *port = NULL;
    int before = lowest_free_fd();
    rn_sys.eventfd = enfile_eventfd;
    int rc = rn_port_create(&port);
    rn_sys_reset();
    RN_CHECK_EQ(rc, -ENFILE);
    RN_CHECK(port == NULL);
    RN_CHECK_EQ(lowest_free_fd(), before);
}

RN_TEST(enfile_at_the_process_port_is_not_sticky)
{
    rn_port_t *port = NULL;
    int before = lowest_free_fd();
    rn_sys.epoll_create1 = enfile_epoll_create1;
    int rc = rn_port_get(&port);
    rn_sys_reset();
    RN_CHECK_EQ(rc, -ENFILE);
    RN_CHECK_EQ(lowest_free_fd(), before);
    /* Once fds are back, the process-wide port is created after all. */
    RN_CHECK_EQ(rn_port_get(&port), 0);
    RN_CHECK(port != NULL);
    rn_port_dec_ref(port);
    rn_port_global_release();
    RN_CHECK_EQ(lowest_free_fd(), before);
}
