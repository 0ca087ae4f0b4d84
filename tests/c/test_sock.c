/* Unit tests of rn_sock.c's would-block helpers: the spin before a wait. */
#include "rn.h"
#include "rn_test.h"
#include "rn_test_threads.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static int
nonblocking_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                      fds);
}

RN_TEST(spin_on_an_idle_socket_gives_up_with_eagain_after_its_time)
{
    int fds[2];
    char buf[8];
    rn_io_t io = {.op = RN_IO_RECV, .buf = buf, .len = sizeof(buf)};
    RN_CHECK_EQ(nonblocking_pair(fds), 0);
    double started = rn_now();
    ssize_t rc = rn_sock_io_spin(fds[0], &io, 2000);
    double spun = rn_now() - started;
    close(fds[0]);
    close(fds[1]);
    RN_CHECK_EQ(rc, -EAGAIN);
    RN_CHECK(spun >= 0.002);
}

RN_TEST(spin_returns_data_already_there_at_once)
{
    int fds[2];
    char buf[8];
    rn_io_t io = {.op = RN_IO_RECV, .buf = buf, .len = sizeof(buf)};
    RN_CHECK_EQ(nonblocking_pair(fds), 0);
    RN_CHECK_EQ(write(fds[1], "abc", 3), 3);
    ssize_t rc = rn_sock_io_spin(fds[0], &io, 0);
    close(fds[0]);
    close(fds[1]);
    RN_CHECK_EQ(rc, 3);
    RN_CHECK_MEM(buf, "abc", 3);
}

static void *
write_after_a_pause(void *arg)
{
    int fd = *(int *)arg;
    sleep_ms(5);
    return (void *)(intptr_t)write(fd, "late", 4);
}

RN_TEST(spin_returns_data_that_arrives_while_it_spins)
{
    int fds[2];
    char buf[8];
    pthread_t writer;
    void *written;
    rn_io_t io = {.op = RN_IO_RECV, .buf = buf, .len = sizeof(buf)};
    RN_CHECK_EQ(nonblocking_pair(fds), 0);
    RN_CHECK_EQ(pthread_create(&writer, NULL, write_after_a_pause, &fds[1]), 0);
    /* Spins up to the hang guard: the write comes long before. */
    ssize_t rc = rn_sock_io_spin(fds[0], &io, (long)HANG_GUARD_MS * 1000);
    pthread_join(writer, &written);
    close(fds[0]);
    close(fds[1]);
    RN_CHECK_EQ((intptr_t)written, 4);
    RN_CHECK_EQ(rc, 4);
    RN_CHECK_MEM(buf, "late", 4);
}

RN_TEST(spin_reports_an_error_other_than_eagain_at_once)
{
    int fds[2];
    char buf[8] = "message";
    rn_io_t io = {.op = RN_IO_SEND, .buf = buf, .len = sizeof(buf)};
    RN_CHECK_EQ(nonblocking_pair(fds), 0);
    close(fds[1]);
    ssize_t rc = rn_sock_io_spin(fds[0], &io, (long)HANG_GUARD_MS * 1000);
    close(fds[0]);
    RN_CHECK_EQ(rc, -EPIPE);
}
