/* Unit tests of rn_errors.c: the OS-error groups of spec 1.3. */
#include "rn.h"
#include "rn_test.h"

#include <errno.h>

RN_TEST(every_listed_errno_is_in_its_group)
{
    RN_CHECK_EQ(rn_errno_group(EADDRINUSE), RN_ERRGROUP_IN_USE);
    RN_CHECK_EQ(rn_errno_group(EADDRNOTAVAIL), RN_ERRGROUP_UNAVAILABLE);
    RN_CHECK_EQ(rn_errno_group(ENETDOWN), RN_ERRGROUP_NET_DOWN);
    RN_CHECK_EQ(rn_errno_group(EHOSTUNREACH), RN_ERRGROUP_NET_DOWN);
    RN_CHECK_EQ(rn_errno_group(ENETUNREACH), RN_ERRGROUP_NET_DOWN);
    RN_CHECK_EQ(rn_errno_group(ECONNREFUSED), RN_ERRGROUP_REFUSED);
    RN_CHECK_EQ(rn_errno_group(ECONNABORTED), RN_ERRGROUP_ABORTED);
    RN_CHECK_EQ(rn_errno_group(EISCONN), RN_ERRGROUP_ALREADY_CONNECTED);
    static const int recoverable[] = {EINTR,    EAGAIN,     EWOULDBLOCK,
                                      EBUSY,    ETIMEDOUT,  ERESTART,
                                      EALREADY, EINPROGRESS};
    for (size_t i = 0; i < sizeof(recoverable) / sizeof(int); i++)
        RN_CHECK_EQ(rn_errno_group(recoverable[i]), RN_ERRGROUP_RECOVERABLE);
    static const int terminated[] = {EPIPE,  EBADF,     EBADR,     ENOLINK,
                                     EBADFD, ENETRESET, ECONNRESET};
    for (size_t i = 0; i < sizeof(terminated) / sizeof(int); i++)
        RN_CHECK_EQ(rn_errno_group(terminated[i]), RN_ERRGROUP_TERMINATED);
}

RN_TEST(negative_errno_is_accepted_and_others_are_other)
{
    RN_CHECK_EQ(rn_errno_group(-ECONNRESET), RN_ERRGROUP_TERMINATED);
    RN_CHECK_EQ(rn_errno_group(EACCES), RN_ERRGROUP_OTHER);
    RN_CHECK_EQ(rn_errno_group(EINVAL), RN_ERRGROUP_OTHER);
    RN_CHECK_EQ(rn_errno_group(0), RN_ERRGROUP_OTHER);
    RN_CHECK_STR(rn_errgroup_name(RN_ERRGROUP_IN_USE), "in-use");
    RN_CHECK_STR(rn_errgroup_name((rn_errgroup_t)99), "other");
}
