/*
 * rn_sock.c: socket set-up, I/O and the /proc/net listings (rn_sock.h).
 */
#include "rn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int
open_socket(sa_family_t family, int type)
{
    int fd = socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
            int err = errno;
            close(fd);
            return -err;
        }
    }
    return fd;
}

static int
set_int_option(int fd, int level, int name, int value)
{
    if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
        return -errno;
    return 0;
}

static int
bind_to(int fd, const rn_addr_t *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = rn_addr_to_sockaddr(addr, port, &ss);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        return -errno;
    return 0;
}

int
rn_tcp_bound(const rn_addr_t *addr, uint16_t port)
{
    int rc, fd = open_socket(addr->family, SOCK_STREAM);
    if (fd < 0)
        return fd;
    if ((rc = set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0 ||
        (rc = bind_to(fd, addr, port)) < 0 ||
        /* Before listen/connect, so window scaling is negotiated for them
         * and accepted sockets inherit them. */
        (rc = set_int_option(fd, SOL_SOCKET, SO_RCVBUF, RN_TCP_BUFFER_SIZE)) <
            0 ||
        (rc = set_int_option(fd, SOL_SOCKET, SO_SNDBUF, RN_TCP_BUFFER_SIZE)) <
            0) {
        close(fd);
        return rc;
    }
    return fd;
}

int
rn_tcp_listen(int fd, int backlog)
{
    if (listen(fd, backlog) < 0)
        return -errno;
    return 0;
}

int
rn_tcp_connect_start(int fd, const rn_addr_t *addr, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = rn_addr_to_sockaddr(addr, port, &ss);
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&ss, len);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return 0;
    if (errno == EINPROGRESS)
        return 1;
    return -errno;
}

int
rn_tcp_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int
rn_tcp_accept(int fd, rn_addr_t *peer, uint16_t *peer_port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int conn = accept4(fd, (struct sockaddr *)&ss, &len,
                       SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0)
        return -errno;
    int rc =
        rn_addr_from_sockaddr((struct sockaddr *)&ss, len, peer, peer_port);
    if (rc < 0) {
        close(conn);
        return rc;
    }
    return conn;
}

int
rn_udp_bound(const rn_addr_t *addr, uint16_t port)
{
    int rc, fd = open_socket(addr->family, SOCK_DGRAM);
    if (fd < 0)
        return fd;
    if ((rc = bind_to(fd, addr, port)) < 0 ||
        (rc = set_int_option(fd, SOL_SOCKET, SO_RCVBUF, RN_UDP_BUFFER_SIZE)) <
            0 ||
        (rc = set_int_option(fd, SOL_SOCKET, SO_SNDBUF, RN_UDP_BUFFER_SIZE)) <
            0) {
        close(fd);
        return rc;
    }
    return fd;
}

ssize_t
rn_recv(int fd, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = recv(fd, buf, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t
rn_send(int fd, const void *buf, size_t len)
{
    ssize_t n;
    do {
        n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int
rn_peer_closed(int fd)
{
    char byte;
    ssize_t n;
    do {
        n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return 1;
    if (n > 0 || errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return -errno;
}

int
rn_sock_established(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
        return -errno;
    return info.tcpi_state == TCP_ESTABLISHED;
}

ssize_t
rn_sendto(int fd, const void *buf, size_t len, const rn_addr_t *addr,
          uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t sslen = rn_addr_to_sockaddr(addr, port, &ss);
    ssize_t n;
    do {
        n = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                   (struct sockaddr *)&ss, sslen);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t
rn_recvfrom(int fd, void *buf, size_t len, rn_addr_t *from,
            uint16_t *from_port)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    ssize_t n;
    do {
        n = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&ss,
                     &sslen);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int rc =
        rn_addr_from_sockaddr((struct sockaddr *)&ss, sslen, from, from_port);
    return rc < 0 ? rc : n;
}

int
rn_wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc = poll(&pfd, 1, timeout_ms);
    if (rc < 0)
        return -errno;
    return rc > 0;
}

int
rn_sock_local(int fd, rn_addr_t *addr, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    return rn_addr_from_sockaddr((struct sockaddr *)&ss, len, addr, port);
}

void
rn_sock_close(int fd)
{
    shutdown(fd, SHUT_WR);
    close(fd);
}

ssize_t
rn_sock_io(int fd, rn_io_t *io)
{
    switch (io->op) {
    case RN_IO_RECV:
        return rn_recv(fd, io->buf, io->len);
    case RN_IO_SEND:
        return rn_send(fd, io->buf, io->len);
    case RN_IO_ACCEPT:
        return rn_tcp_accept(fd, &io->peer, &io->peer_port);
    case RN_IO_RECVFROM:
        return rn_recvfrom(fd, io->buf, io->len, &io->peer, &io->peer_port);
    case RN_IO_SENDTO:
        return rn_sendto(fd, io->buf, io->len, &io->peer, io->peer_port);
    }
    return -EINVAL;
}

short
rn_sock_io_events(const rn_io_t *io)
{
    return io->op == RN_IO_SEND || io->op == RN_IO_SENDTO ? POLLOUT : POLLIN;
}

static struct timespec
timespec_from_us(long us)
{
    return (struct timespec){us / 1000000, (us % 1000000) * 1000};
}

int
rn_wait_fd_us(int fd, short events, long timeout_us)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    struct timespec timeout = timespec_from_us(timeout_us);
    int rc = ppoll(&pfd, 1, &timeout, NULL);
    if (rc < 0)
        return -errno;
    return rc > 0;
}

rn_spin_t
rn_spin_start(long spin_us)
{
    double now = rn_now();
    return (rn_spin_t){
        .limit = (double)spin_us * 1e-6, .start = now, .last = now};
}

bool
rn_spin_go_on(rn_spin_t *spin)
{
    double now = rn_now();
    if (now - spin->start > spin->limit || now - spin->last > spin->limit)
        return false;
    spin->last = now;
    return true;
}

ssize_t
rn_sock_io_spin(int fd, rn_io_t *io, long spin_us)
{
    rn_spin_t spin = rn_spin_start(spin_us);
    ssize_t rc;
    do
        rc = rn_sock_io(fd, io);
    while (rc == -EAGAIN && rn_spin_go_on(&spin));
    return rc;
}

int
rn_poll_spin(struct pollfd *fds, nfds_t n, long spin_us)
{
    rn_spin_t spin = rn_spin_start(spin_us);
    int rc;
    do
        rc = poll(fds, n, 0);
    while (rc == 0 && rn_spin_go_on(&spin));
    return rc < 0 ? -errno : rc;
}

int
rn_word_wait(unsigned *word, unsigned expected, long timeout_us)
{
    struct timespec timeout = timespec_from_us(timeout_us);
    if (syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, &timeout, NULL,
                0) == 0)
        return 0;
    return errno == EAGAIN ? 0 : -errno;
}

void
rn_word_wake(unsigned *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

int
rn_running_threads(void)
{
    char text[128];
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t length = read(fd, text, sizeof(text) - 1);
    int saved = errno;
    close(fd);
    if (length < 0)
        return -saved;
    text[length] = '\0';
    int running;
    if (sscanf(text, "%*s %*s %*s %d/", &running) != 1 || running <= 0)
        return -EPROTO;
    return running;
}

/* --- /proc/net ----------------------------------------------------------- */

/* Parses "HEXADDR:HEXPORT" as the kernel prints it (host-order words). */
static int
parse_proc_endpoint(const char *text, sa_family_t family, rn_endpoint_t *out)
{
    unsigned words[4] = {0};
    unsigned port;
    memset(out, 0, sizeof(*out));
    out->addr.family = family;
    if (family == AF_INET) {
        if (sscanf(text, "%8x:%4x", &words[0], &port) != 2)
            return -EINVAL;
        memcpy(&out->addr.ip.v4, &words[0], 4);
    }
    else {
        if (sscanf(text, "%8x%8x%8x%8x:%4x", &words[0], &words[1], &words[2],
                   &words[3], &port) != 5)
            return -EINVAL;
        memcpy(&out->addr.ip.v6, words, 16);
    }
    out->port = (uint16_t)port;
    return 0;
}

static bool
local_matches(const rn_endpoint_t *listed, const rn_endpoint_t *wanted)
{
    if (listed->port != wanted->port ||
        listed->addr.family != wanted->addr.family)
        return false;
    rn_addr_t listed_addr = listed->addr, wanted_addr = wanted->addr;
    /* /proc has no scope ids; compare the addresses alone. */
    listed_addr.scope_id = wanted_addr.scope_id = 0;
    return rn_addr_equal(&listed_addr, &wanted_addr) ||
           rn_addr_is_any(&listed_addr) || rn_addr_is_any(&wanted_addr);
}

static bool
remote_matches(const rn_endpoint_t *listed, const rn_endpoint_t *wanted)
{
    rn_addr_t listed_addr = listed->addr, wanted_addr = wanted->addr;
    listed_addr.scope_id = wanted_addr.scope_id = 0;
    return listed->port == wanted->port &&
           rn_addr_equal(&listed_addr, &wanted_addr);
}

/*
 * An IPv6 socket that leaves IPV6_V6ONLY off (as other programs may) holds
 * IPv4 ports too, yet /proc lists it only in tcp6/udp6, as "::" or as a
 * v4-mapped address.  Rewrites such an endpoint as the IPv4 one it holds:
 * 0, or -EAFNOSUPPORT for a plain IPv6 endpoint.  The listing does not say
 * whether a "::" socket is V6ONLY; the lookups run only after the kernel
 * refused an IPv4 bind or connect, so one on the port is taken as the
 * holder.
 */
static int
as_ipv4(rn_endpoint_t *ep)
{
    struct in_addr v4 = {.s_addr = htonl(INADDR_ANY)};
    if (IN6_IS_ADDR_V4MAPPED(&ep->addr.ip.v6))
        memcpy(&v4, &ep->addr.ip.v6.s6_addr[12], sizeof(v4));
    else if (!IN6_IS_ADDR_UNSPECIFIED(&ep->addr.ip.v6))
        return -EAFNOSUPPORT;
    memset(&ep->addr, 0, sizeof(ep->addr));
    ep->addr.family = AF_INET;
    ep->addr.ip.v4 = v4;
    return 0;
}

/* Scans one listing whose entries are of family listed. */
static int
scan_listing(const char *path, sa_family_t listed, const rn_tuple_t *key,
             unsigned state_mask, bool match_remote)
{
    char line[512], local[64], remote[64];
    unsigned state;
    int found = 0;
    FILE *file = fopen(path, "re");
    if (file == NULL)
        return errno == ENOENT ? 0 : -errno;
    if (fgets(line, sizeof(line), file) == NULL) { /* the header */
        fclose(file);
        return 0;
    }
    while (!found && fgets(line, sizeof(line), file)) {
        rn_endpoint_t listed_local, listed_remote;
        if (sscanf(line, " %*u: %63s %63s %x", local, remote, &state) != 3)
            continue;
        if (state >= 32 || !(state_mask & RN_TCP_STATE(state)))
            continue;
        if (parse_proc_endpoint(local, listed, &listed_local) < 0 ||
            parse_proc_endpoint(remote, listed, &listed_remote) < 0)
            continue;
        if (listed != key->local.addr.family &&
            (as_ipv4(&listed_local) < 0 ||
             (match_remote && as_ipv4(&listed_remote) < 0)))
            continue;
        if (!local_matches(&listed_local, &key->local))
            continue;
        if (match_remote && !remote_matches(&listed_remote, &key->remote))
            continue;
        found = 1;
    }
    fclose(file);
    return found;
}

/* An IPv4 key is looked up in the IPv6 listing too (see as_ipv4). */
static int
scan_listings(const char *v4_path, const char *v6_path, const rn_tuple_t *key,
              unsigned state_mask, bool match_remote)
{
    if (key->local.addr.family == AF_INET6)
        return scan_listing(v6_path, AF_INET6, key, state_mask, match_remote);
    int found = scan_listing(v4_path, AF_INET, key, state_mask, match_remote);
    if (found != 0)
        return found;
    return scan_listing(v6_path, AF_INET6, key, state_mask, match_remote);
}

int
rn_os_tcp_find(const rn_tuple_t *key, unsigned state_mask, bool match_remote)
{
    return scan_listings("/proc/net/tcp", "/proc/net/tcp6", key, state_mask,
                         match_remote);
}

int
rn_os_udp_find(const rn_tuple_t *key)
{
    /* UDP sockets are listed with state 7 (TCP_CLOSE) when unconnected. */
    return scan_listings("/proc/net/udp", "/proc/net/udp6", key, ~0u, false);
}

int
rn_os_addr_is_local(const rn_addr_t *addr)
{
    /* Port 0 never conflicts, so only the address can make bind fail. */
    int fd = rn_udp_bound(addr, 0);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    return fd == -EADDRNOTAVAIL ? 0 : fd;
}
