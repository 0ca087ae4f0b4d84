/*
 * rn_sys.h: the syscall and allocator seams of the pure-C core.
 *
 * The completion port (rn_port.c) and the async socket (rn_asock.c) never
 * call these libc functions directly: they call through the table below,
 * which points at libc.  The C unit tests (tests/c/) are ordinary programs
 * linked with the core, so the seams have to be swappable at run time, not
 * at link time: a test saves the table, installs a fake (failing epoll_ctl,
 * malloc returning NULL, sendmsg returning EAGAIN/ECONNRESET/EPIPE, ...)
 * and calls rn_sys_reset() when done.
 *
 * Invariant: every entry is non-NULL.  Fakes are expected to set errno the
 * way the real call would.  The table is written only while no other thread
 * of the core is calling through the entry being replaced (tests install
 * fakes that forward to libc by default, so a running worker is harmless).
 */
#ifndef RN_SYS_H
#define RN_SYS_H

#include <pthread.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

struct rn_sys {
    int (*epoll_create1)(int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *event);
    int (*epoll_wait)(int epfd, struct epoll_event *events, int maxevents,
                      int timeout);
    int (*eventfd)(unsigned int initval, int flags);
    ssize_t (*read)(int fd, void *buf, size_t count);
    ssize_t (*write)(int fd, const void *buf, size_t count);
    int (*close)(int fd);
    ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
    ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
    /* fcntl is variadic; the seam takes the one int argument we use. */
    int (*fcntl)(int fd, int cmd, int arg);
    void *(*malloc)(size_t size);
    void *(*calloc)(size_t nmemb, size_t size);
    void *(*realloc)(void *ptr, size_t size);
    void (*free)(void *ptr);
    int (*pthread_create)(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg);
};

/* The live table; the core reads it on every call. */
extern struct rn_sys rn_sys;

/* The libc defaults (read-only), for fakes that forward to the real call. */
extern const struct rn_sys rn_sys_libc;

/* Restores every entry to libc. */
void rn_sys_reset(void);

#endif /* RN_SYS_H */
