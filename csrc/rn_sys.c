/*
 * rn_sys.c: the libc defaults of the seam table (see rn_sys.h).
 *
 * Small wrappers exist only where libc's prototype differs from the seam
 * (fcntl is variadic) so that the table's types stay exact and no cast of a
 * function pointer is needed.
 */
#include "rn_sys.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int
libc_fcntl(int fd, int cmd, int arg)
{
    return fcntl(fd, cmd, arg);
}

static int
libc_eventfd(unsigned int initval, int flags)
{
    return eventfd(initval, flags);
}

/* The libc functions; rn_sys starts as this and tests restore it. */
#define RN_SYS_LIBC                                                           \
    {                                                                         \
        .epoll_create1 = epoll_create1,                                       \
        .epoll_ctl = epoll_ctl,                                               \
        .epoll_wait = epoll_wait,                                             \
        .eventfd = libc_eventfd,                                              \
        .read = read,                                                         \
        .write = write,                                                       \
        .close = close,                                                       \
        .sendmsg = sendmsg,                                                   \
        .recvmsg = recvmsg,                                                   \
        .fcntl = libc_fcntl,                                                  \
        .malloc = malloc,                                                     \
        .calloc = calloc,                                                     \
        .realloc = realloc,                                                   \
        .free = free,                                                         \
        .pthread_create = pthread_create,                                     \
    }

const struct rn_sys rn_sys_libc = RN_SYS_LIBC;
struct rn_sys rn_sys = RN_SYS_LIBC;

void
rn_sys_reset(void)
{
    rn_sys = rn_sys_libc;
}
