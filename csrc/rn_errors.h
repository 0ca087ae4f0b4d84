/*
 * rn_errors.h: the OS-error groups of spec section 1.3.
 *
 * Every errno repynet sees is put into exactly one group here; which Repy
 * exception a group becomes depends on the call and is decided by the one
 * table in py_errors.c.
 */
#ifndef RN_ERRORS_H
#define RN_ERRORS_H

typedef enum rn_errgroup {
    RN_ERRGROUP_OTHER = 0,
    RN_ERRGROUP_IN_USE,            /* EADDRINUSE */
    RN_ERRGROUP_UNAVAILABLE,       /* EADDRNOTAVAIL */
    RN_ERRGROUP_NET_DOWN,          /* ENETDOWN, EHOSTUNREACH, ENETUNREACH */
    RN_ERRGROUP_REFUSED,           /* ECONNREFUSED */
    RN_ERRGROUP_ABORTED,           /* ECONNABORTED */
    RN_ERRGROUP_ALREADY_CONNECTED, /* EISCONN */
    RN_ERRGROUP_RECOVERABLE,       /* EINTR, EAGAIN, EBUSY, ETIMEDOUT, ... */
    RN_ERRGROUP_TERMINATED,        /* EPIPE, EBADF, ECONNRESET, ... */
    RN_ERRGROUP_COUNT
} rn_errgroup_t;

/* The group of a positive or negative errno value. */
rn_errgroup_t rn_errno_group(int err);

/* A short stable name for a group ("in-use", ...), for messages and tests. */
const char *rn_errgroup_name(rn_errgroup_t group);

#endif /* RN_ERRORS_H */
