/* Unit tests of rn_sock.c's waits for the GIL-free paths (D32): the spins
 * before a would-block wait (V2) and a blocking wait (V1), the futex word
 * a hand-over sleeps on, and the machine's running-thread count that
 * decides whether a wait may spin. */
#include "rn.h"
#include "rn_test.h"
#include "rn_test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Long enough that no test here ends a spin by its time limit unless it
 * means to. */
#define LONG_SPIN_US 5000000L

struct late_write {
    int fd;
    useconds_t delay_us;
};

static void *
write_late(void *arg)
{
    struct late_write *w = arg;
    usleep(w->delay_us);
    ssize_t sent = write(w->fd, "spin", 4);
    return (void *)(intptr_t)sent;
}

/* A connected TCP pair whose first end, the one under test, is
 * non-blocking, as repynet's sockets are. */
static int
nonblocking_pair(int *tested, int *peer)
{
    if (tcp_pair(tested, peer) != 0)
        return -1;
    int flags = fcntl(*tested, F_GETFL);
    return flags < 0 ? -1 : fcntl(*tested, F_SETFL, flags | O_NONBLOCK);
}

/* A read of up to sizeof(buf) bytes into buf. */
#define RECV_INTO(buf)                                                        \
    ((rn_io_t){.op = RN_IO_RECV, .buf = (buf), .len = sizeof(buf)})

RN_TEST(spin_goes_on_within_its_time_and_stops_after_it)
{
    rn_spin_t spin = rn_spin_start(LONG_SPIN_US);
    RN_CHECK(rn_spin_go_on(&spin));
    spin = rn_spin_start(1000);
    usleep(3000);
    RN_CHECK(!rn_spin_go_on(&spin));
}

RN_TEST(sock_io_spin_returns_data_that_arrives_while_it_spins)
{
    int a, b;
    RN_CHECK(nonblocking_pair(&a, &b) == 0);
    struct late_write late = {.fd = b, .delay_us = 2000};
    pthread_t writer;
    RN_CHECK(pthread_create(&writer, NULL, write_late, &late) == 0);
    char buf[16];
    rn_io_t io = RECV_INTO(buf);
    ssize_t got = rn_sock_io_spin(a, &io, LONG_SPIN_US);
    void *sent;
    pthread_join(writer, &sent);
    RN_CHECK_EQ((intptr_t)sent, 4);
    RN_CHECK_EQ(got, 4);
    RN_CHECK_MEM(buf, "spin", 4);
    close(a);
    close(b);
}

RN_TEST(sock_io_spin_gives_up_with_eagain_once_its_time_is_up)
{
    int a, b;
    RN_CHECK(nonblocking_pair(&a, &b) == 0);
    char buf[16];
    rn_io_t io = RECV_INTO(buf);
    double start = rn_now();
    ssize_t got = rn_sock_io_spin(a, &io, 2000);
    double spun = rn_now() - start;
    RN_CHECK_EQ(got, -EAGAIN);
    RN_CHECK(spun >= 0.002);
    close(a);
    close(b);
}

RN_TEST(sock_io_spin_returns_the_first_result_that_is_not_eagain)
{
    int a, b;
    RN_CHECK(nonblocking_pair(&a, &b) == 0);
    close(b);
    char buf[16];
    rn_io_t io = RECV_INTO(buf);
    /* The peer's FIN: an orderly EOF ends the spin at once. */
    RN_CHECK_EQ(rn_sock_io_spin(a, &io, LONG_SPIN_US), 0);
    close(a);
}

RN_TEST(sock_io_spin_sends_when_the_buffer_has_room)
{
    int a, b;
    RN_CHECK(nonblocking_pair(&a, &b) == 0);
    rn_io_t io = {.op = RN_IO_SEND, .buf = "spin", .len = 4};
    RN_CHECK_EQ(rn_sock_io_spin(a, &io, LONG_SPIN_US), 4);
    char buf[4];
    RN_CHECK(read_exact(b, buf, 4) == 0);
    RN_CHECK_MEM(buf, "spin", 4);
    close(a);
    close(b);
}

RN_TEST(poll_spin_sees_readiness_that_comes_while_it_spins)
{
    int a, b;
    RN_CHECK(tcp_pair(&a, &b) == 0);
    struct late_write late = {.fd = b, .delay_us = 2000};
    pthread_t writer;
    RN_CHECK(pthread_create(&writer, NULL, write_late, &late) == 0);
    struct pollfd fds[1] = {{.fd = a, .events = POLLIN}};
    int ready = rn_poll_spin(fds, 1, LONG_SPIN_US);
    pthread_join(writer, NULL);
    RN_CHECK_EQ(ready, 1);
    RN_CHECK(fds[0].revents & POLLIN);
    close(a);
    close(b);
}

RN_TEST(poll_spin_returns_0_once_its_time_is_up)
{
    int a, b;
    RN_CHECK(tcp_pair(&a, &b) == 0);
    struct pollfd fds[1] = {{.fd = a, .events = POLLIN}};
    double start = rn_now();
    int ready = rn_poll_spin(fds, 1, 2000);
    double spun = rn_now() - start;
    RN_CHECK_EQ(ready, 0);
    RN_CHECK(spun >= 0.002);
    close(a);
    close(b);
}

RN_TEST(poll_spin_reports_every_ready_fd)
{
    int a, b, p[2];
    RN_CHECK(tcp_pair(&a, &b) == 0);
    RN_CHECK(make_pipe(p) == 0);
    /* The V1 wait: the socket and a wake-up fd; here only the wake-up. */
    RN_CHECK_EQ(write(p[1], "w", 1), 1);
    struct pollfd fds[2] = {{.fd = a, .events = POLLIN},
                            {.fd = p[0], .events = POLLIN}};
    RN_CHECK_EQ(rn_poll_spin(fds, 2, LONG_SPIN_US), 1);
    RN_CHECK_EQ(fds[0].revents, 0);
    RN_CHECK(fds[1].revents & POLLIN);
    close(a);
    close(b);
    close(p[0]);
    close(p[1]);
}

RN_TEST(word_wait_returns_at_once_when_the_word_differs)
{
    unsigned word = 7;
    RN_CHECK_EQ(rn_word_wait(&word, 6, LONG_SPIN_US), 0);
}

RN_TEST(word_wait_times_out_when_nobody_changes_the_word)
{
    unsigned word = 7;
    double start = rn_now();
    RN_CHECK_EQ(rn_word_wait(&word, 7, 2000), -ETIMEDOUT);
    RN_CHECK(rn_now() - start >= 0.002);
}

struct word_change {
    unsigned *word;
    useconds_t delay_us;
};

static void *
change_and_wake(void *arg)
{
    struct word_change *change = arg;
    usleep(change->delay_us);
    __atomic_add_fetch(change->word, 1, __ATOMIC_SEQ_CST);
    rn_word_wake(change->word);
    return NULL;
}

RN_TEST(word_wait_wakes_when_another_thread_changes_the_word)
{
    unsigned word = 7;
    struct word_change change = {.word = &word, .delay_us = 2000};
    pthread_t thread;
    RN_CHECK(pthread_create(&thread, NULL, change_and_wake, &change) == 0);
    /* Asleep until woken: the timeout is far beyond the change. */
    int rc;
    do
        rc = rn_word_wait(&word, 7, LONG_SPIN_US);
    while (rc == -EINTR);
    pthread_join(thread, NULL);
    RN_CHECK_EQ(rc, 0);
    RN_CHECK_EQ(word, 8);
}

RN_TEST(running_threads_counts_the_caller_and_a_busy_process)
{
    /* This thread runs while it reads the count: at least 1. */
    RN_CHECK(rn_running_threads() >= 1);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 2)
        RN_SKIP("needs a second CPU for the busy process to run on");
    /* A process, not a thread: under valgrind only one thread of a
     * process runs at a time, and the others sleep. */
    int started[2];
    RN_CHECK(pipe(started) == 0);
    pid_t busy = fork();
    RN_CHECK(busy >= 0);
    if (busy == 0) {
        if (write(started[1], "s", 1) != 1)
            _exit(1);
        for (;;)
            ;
    }
    char byte;
    ssize_t got = read(started[0], &byte, 1);
    /* From now on the busy process never sleeps, so the count includes it
     * as well as this thread (other processes may add more). */
    int running = rn_running_threads();
    kill(busy, SIGKILL);
    waitpid(busy, NULL, 0);
    close(started[0]);
    close(started[1]);
    RN_CHECK_EQ(got, 1);
    RN_CHECK(running >= 2);
}
