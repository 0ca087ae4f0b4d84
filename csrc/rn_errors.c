/*
 * rn_errors.c: errno -> OS-error group (spec section 1.3), the one place.
 */
#include "rn.h"

#include <errno.h>
#include <stdlib.h>

rn_errgroup_t
rn_errno_group(int err)
{
    switch (abs(err)) {
    case EADDRINUSE:
        return RN_ERRGROUP_IN_USE;
    case EADDRNOTAVAIL:
        return RN_ERRGROUP_UNAVAILABLE;
    case ENETDOWN:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return RN_ERRGROUP_NET_DOWN;
    case ECONNREFUSED:
        return RN_ERRGROUP_REFUSED;
    case ECONNABORTED:
        return RN_ERRGROUP_ABORTED;
    case EISCONN:
        return RN_ERRGROUP_ALREADY_CONNECTED;
    case EINTR:
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EBUSY:
    case ETIMEDOUT:
    case EALREADY:
    case EINPROGRESS:
    case ERESTART:
        return RN_ERRGROUP_RECOVERABLE;
    case EPIPE:
    case EBADF:
    case EBADR:
    case ENOLINK:
    case EBADFD:
    case ENETRESET:
    case ECONNRESET:
        return RN_ERRGROUP_TERMINATED;
    default:
        return RN_ERRGROUP_OTHER;
    }
}

const char *
rn_errgroup_name(rn_errgroup_t group)
{
    static const char *const names[RN_ERRGROUP_COUNT] = {
        [RN_ERRGROUP_OTHER] = "other",
        [RN_ERRGROUP_IN_USE] = "in-use",
        [RN_ERRGROUP_UNAVAILABLE] = "unavailable",
        [RN_ERRGROUP_NET_DOWN] = "net-down",
        [RN_ERRGROUP_REFUSED] = "refused",
        [RN_ERRGROUP_ABORTED] = "aborted",
        [RN_ERRGROUP_ALREADY_CONNECTED] = "already-connected",
        [RN_ERRGROUP_RECOVERABLE] = "recoverable",
        [RN_ERRGROUP_TERMINATED] = "terminated",
    };
    if ((unsigned)group >= RN_ERRGROUP_COUNT)
        return "other";
    return names[group];
}
