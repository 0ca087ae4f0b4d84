/* Unit tests of rn_sock.c's questions about a connection's other end: has
 * it closed with nothing left to read (the peek before a send, spec 3.1),
 * and is the connection still established (what lets py_sockets.c link two
 * sockets of this process and skip that peek). */
#include "rn.h"
#include "rn_test.h"
#include "rn_test_support.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

RN_TEST(peer_closed_is_0_while_the_peer_is_open)
{
    int a, b;
    RN_CHECK(tcp_pair(&a, &b) == 0);
    RN_CHECK_EQ(rn_peer_closed(a), 0);
    close(a);
    close(b);
}

RN_TEST(peer_closed_is_1_after_the_peers_fin_with_nothing_to_read)
{
    int a, b;
    RN_CHECK(tcp_pair(&a, &b) == 0);
    close(b);
    RN_CHECK_EQ(rn_peer_closed(a), 1);
    close(a);
}

RN_TEST(peer_closed_is_0_while_data_before_the_fin_is_unread)
{
    int a, b;
    RN_CHECK(tcp_pair(&a, &b) == 0);
    RN_CHECK_EQ(write(b, "x", 1), 1);
    close(b);
    RN_CHECK_EQ(rn_peer_closed(a), 0);
    char byte;
    RN_CHECK_EQ(read(a, &byte, 1), 1); /* the peek consumed nothing */
    RN_CHECK_EQ(rn_peer_closed(a), 1);
    close(a);
}

RN_TEST(established_until_either_end_sends_its_fin)
{
    int a, b;
    RN_CHECK(tcp_pair(&a, &b) == 0);
    RN_CHECK_EQ(rn_sock_established(a), 1);
    RN_CHECK_EQ(rn_sock_established(b), 1);
    RN_CHECK(shutdown(b, SHUT_WR) == 0);
    RN_CHECK_EQ(rn_sock_established(b), 0); /* FIN_WAIT */
    RN_CHECK_EQ(rn_sock_established(a), 0); /* CLOSE_WAIT */
    close(a);
    close(b);
}

RN_TEST(established_is_an_errno_for_what_is_not_a_socket)
{
    int p[2];
    RN_CHECK(make_pipe(p) == 0);
    RN_CHECK_EQ(rn_sock_established(p[0]), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
}
