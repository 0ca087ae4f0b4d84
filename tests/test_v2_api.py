"""The Repy V2 network API (spec sections 1-3 and 6, decisions D1-D28).

Loopback only; local ports come from the default restrictions (63100-63199);
this file uses 63100-63149.  A test that takes the conftest ``family``
fixture runs once on 127.0.0.1 and once on ::1 (skipped on a host without
it); tests/test_ipv6.py keeps what only IPv6 has.  Every object a test opens
is closed, or the autouse leak check in conftest.py fails the test.
"""

import builtins
import gc
import math
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import repynet
from repynet import _repynet, errors

LO = "127.0.0.1"
FORBIDDEN_PORT = 80  # outside the default 63100-63199
# Per family: an address of no interface of this host (only ever bound to,
# which fails, never sent to).
NOT_OURS = {"127.0.0.1": "10.255.255.1", "::1": "2001:db8::1"}
# More of them, of kinds only IPv6 has: link-local with a scope, unique-local.
MORE_NOT_OURS = {"127.0.0.1": (), "::1": ("fe80::1%lo", "fd00:0:0:ffff::1")}
# Per family: the ways to write its loopback address; the tables compare
# addresses, not text (D24).
SPELLINGS = {"127.0.0.1": ("127.0.0.1",), "::1": ("::1", "0::1", "0:0:0:0:0:0:0:1")}


def _port(n):
    return 63100 + n


@pytest.fixture
def server():
    """A TCP listener on 127.0.0.1:63100, closed after the test."""
    srv = repynet.listenforconnection(LO, _port(0))
    yield srv
    srv.close()


def _connected_pair(srv: repynet.TCPServerSocket, local_port: int = 63101,
                    ip: str = LO) -> tuple[repynet.TCPSocket, repynet.TCPSocket]:
    """(client, accepted): a connection from ip:local_port to srv on ip:63100,
    whose peer getconnection reports as ip:local_port."""
    client = repynet.openconnection(ip, _port(0), ip, local_port, 5)
    try:
        peer_ip, peer_port, accepted = _accept(srv)
    except AssertionError:
        client.close()
        raise
    if (peer_ip, peer_port) != (ip, local_port):
        client.close()
        accepted.close()
        raise AssertionError(f"getconnection reported {peer_ip} {peer_port}, "
                             f"not {ip} {local_port}")
    return client, accepted


@pytest.fixture
def pair(server):
    client, accepted = _connected_pair(server)
    yield client, accepted
    client.close()
    accepted.close()


@pytest.fixture
def connection(family: str) -> Iterator[tuple[repynet.TCPServerSocket, repynet.TCPSocket,
                                              repynet.TCPSocket]]:
    """(listener, client, accepted) on the family's loopback, closed after the test."""
    srv = repynet.listenforconnection(family, _port(0))
    client, accepted = _connected_pair(srv, _port(1), family)
    yield srv, client, accepted
    for obj in (accepted, client, srv):
        obj.close()


def _recv_all(sock, count, deadline=10.0):
    data = b""
    end = time.monotonic() + deadline
    while len(data) < count and time.monotonic() < end:
        try:
            data += sock.recv(count - len(data))
        except errors.SocketWouldBlockError:
            time.sleep(0.001)
    return data


def _poll(call: Callable[[], Any], what: str) -> Any:
    """call() once it stops raising SocketWouldBlockError (a hang guard, no time bound)."""
    for _ in range(2500):
        try:
            return call()
        except errors.SocketWouldBlockError:
            time.sleep(0.002)
    raise AssertionError(f"{what} never arrived")


def _accept(srv: repynet.TCPServerSocket) -> tuple[str, int, repynet.TCPSocket]:
    return _poll(srv.getconnection, "the connection")


def _wait_message(udp: repynet.UDPServerSocket) -> tuple[str, int, Any]:
    return _poll(udp.getmessage, "the datagram")


def _usage():
    return repynet.getresources()[1]


def _with_local_address(ip: Any, other: str) -> tuple[Callable[[], Any], ...]:
    """The calls that take ip as their local address (other at the far end)."""
    return (lambda: repynet.listenforconnection(ip, _port(5)),
            lambda: repynet.listenformessage(ip, _port(5)),
            lambda: repynet.openconnection(other, _port(5), ip, _port(6), 1),
            lambda: repynet.sendmessage(other, _port(5), b"x", ip, _port(6)))


def _with_destination(ip: Any, other: str) -> tuple[Callable[[], Any], ...]:
    """The calls that take ip as their destination (other as the local address)."""
    return (lambda: repynet.openconnection(ip, _port(5), other, _port(6), 1),
            lambda: repynet.sendmessage(ip, _port(5), b"x", other, _port(6)))


# --- the call wrapper: arity, keywords, types (spec 1.1, D3, D5, D6, D23) ----


@pytest.mark.parametrize("call,args", [
    ("gethostbyname", ()),
    ("gethostbyname", ("a", "b")),
    ("getmyip", ("x",)),
    ("sendmessage", (LO, _port(5), b"x", LO)),
    ("listenformessage", (LO,)),
    ("openconnection", (LO, _port(5), LO, _port(6))),
    ("listenforconnection", (LO, _port(5), 1)),
    ("getAddripv6", ()),
    ("getAddripv6", ("::1", "::1")),
    ("getmyip_ipv6", ("::1",)),
    ("sendmessage_ipv6", ("::1", _port(5), b"x", "::1")),
    ("listenformessage_ipv6", ("::1",)),
    ("openconnection_ipv6", ("::1", _port(5), "::1", _port(6))),
    ("listenforconnection_ipv6", ("::1", _port(5), 1)),
])
def test_wrong_argument_count_is_an_argument_error(call, args):
    with pytest.raises(errors.RepyArgumentError):
        getattr(repynet, call)(*args)


def test_keyword_arguments_are_argument_errors():
    with pytest.raises(errors.RepyArgumentError):
        repynet.listenformessage(localip=LO, localport=_port(5))
    with pytest.raises(errors.RepyArgumentError):
        repynet.gethostbyname(name="localhost")
    with pytest.raises(errors.RepyArgumentError):
        repynet.getAddripv6(name="::1")
    with pytest.raises(errors.RepyArgumentError):
        repynet.listenforconnection_ipv6(localip="::1", localport=_port(5))


@pytest.mark.parametrize("bad_ip", [b"127.0.0.1", b"::1", bytearray(b"::1"), 127, None,
                                    ["127.0.0.1"], ["::1"]])
def test_ip_must_be_str(family, bad_ip):
    for call in (*_with_local_address(bad_ip, family), *_with_destination(bad_ip, family)):
        with pytest.raises(errors.RepyArgumentError):
            call()
    with pytest.raises(errors.RepyArgumentError):
        repynet.getAddripv6(bad_ip)


@pytest.mark.parametrize("bad_port", [True, False, 1.0, "63105", None, 0, 65536, -1, 2**70])
def test_port_must_be_an_int_in_range(family, bad_port):
    with pytest.raises(errors.RepyArgumentError):
        repynet.listenformessage(family, bad_port)
    with pytest.raises(errors.RepyArgumentError):
        repynet.listenforconnection(family, bad_port)
    with pytest.raises(errors.RepyArgumentError):
        repynet.openconnection(family, bad_port, family, _port(6), 1)
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage(family, _port(5), b"x", family, bad_port)


def test_int_and_str_subclasses_are_read_by_value():
    class Port(int):
        def __index__(self):
            return 80

        def __int__(self):
            return 80

    class Ip(str):
        def __str__(self):
            return "10.0.0.1"

    udp = repynet.listenformessage(Ip(LO), Port(_port(5)))
    try:
        assert repr(udp) == f"<repynet.UDPServerSocket 127.0.0.1:{_port(5)}>"
    finally:
        udp.close()


@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf,
                                     True, "1", None, 10**400])
def test_bad_timeouts_are_argument_errors(family, timeout):
    with pytest.raises(errors.RepyArgumentError):
        repynet.openconnection(family, _port(5), family, _port(6), timeout)


# Literals D4 and D13 refuse, and text that is no address literal at all.
REFUSED_IPS = [
    "127.0.0.010", "127.0.0.1 ", " 127.0.0.1", "1.2.3", "0.0.0.0", "224.0.0.1",
    "255.255.255.255", "localhost", "127.0.0.1\x00", "", "١٢٧.0.0.1",
    "::",                       # unspecified
    "ff02::1",                  # multicast
    "ff05::2",
    "::ffff:127.0.0.1",         # v4-mapped
    "::ffff:7f00:1",
    "::2",                      # v4-compatible (deprecated ::a.b.c.d)
    "fe80::1",                  # link-local without %scope
    "::1%lo",                   # a scope on a non-link-local address
    "2001:db8::1%1",
    "fe80::1%",                 # empty scope
    "fe80::1%no-such-if9",      # a scope naming no interface
    "fe80::1%0",
    ":::1", "::1::", "[::1]", " ::1", "::1 ", "::1\x00", "::g", "::1/128",
]


@pytest.mark.parametrize("ip", REFUSED_IPS)
def test_malformed_or_unusable_ips_are_argument_errors(ip):
    other = "::1" if ":" in ip else LO  # the other end in the family ip looks like
    for call in (*_with_local_address(ip, other), *_with_destination(ip, other)):
        with pytest.raises(errors.RepyArgumentError):
            call()


def test_d4_drops_the_192_168_0_0_quirk():
    # A well-formed address that is not ours: judged at bind, not parse.
    with pytest.raises(errors.AddressBindingError):
        repynet.listenforconnection("192.168.0.0", _port(5))


@pytest.mark.parametrize("payload", ["text", 5, None, ["x"]])
def test_bytes_mode_payload_must_be_bytes_like(family, payload):
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage(family, _port(5), payload, family, _port(6))


# --- check order: which exception wins (spec 2.x, D26) ------------------------


def test_type_errors_win_over_forbidden_ports():
    with pytest.raises(errors.RepyArgumentError):
        repynet.listenforconnection(5, 80)


def test_forbidden_port_wins_over_address_binding(family):
    not_ours = NOT_OURS[family]
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.listenforconnection(not_ours, FORBIDDEN_PORT)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.openconnection(family, _port(5), not_ours, FORBIDDEN_PORT, 1)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage(family, _port(5), b"x", not_ours, FORBIDDEN_PORT)


def test_udp_size_cap_comes_after_the_permission_checks(family):
    # D14: after the port check (RFE wins) and before binding (so before
    # AddressBindingError).
    big = b"x" * 9217
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage(family, _port(5), big, family, FORBIDDEN_PORT)
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage(family, _port(5), big, NOT_OURS[family], _port(6))
    with pytest.raises(errors.RepyArgumentError):
        repynet.sendmessage(family, _port(5), big, family, _port(6))


def test_same_local_and_destination_is_an_argument_error(family):
    # Compared as addresses (D24), and before the port permission (RFE).
    for local in SPELLINGS[family]:
        for port in (_port(5), FORBIDDEN_PORT):
            with pytest.raises(errors.RepyArgumentError):
                repynet.sendmessage(family, port, b"x", local, port)
            with pytest.raises(errors.RepyArgumentError):
                repynet.openconnection(family, port, local, port, 1)


def test_ports_outside_the_restrictions_are_forbidden(family):
    for call in (lambda: repynet.listenforconnection(family, FORBIDDEN_PORT),
                 lambda: repynet.listenformessage(family, FORBIDDEN_PORT),
                 lambda: repynet.openconnection(family, _port(5), family, FORBIDDEN_PORT, 1),
                 lambda: repynet.sendmessage(family, _port(5), b"x", family, FORBIDDEN_PORT)):
        with pytest.raises(errors.ResourceForbiddenError):
            call()


@pytest.mark.parametrize("rate", ["netsend", "netrecv"])
def test_a_network_rate_of_0_forbids_the_lookups_and_getmyip(restrict, rate):
    # Their charges come before the work (spec 6.3), so a rate of 0 refuses
    # them as it refuses every call that charges it.
    restrict(**{rate: 0.0})
    for call in (lambda: repynet.gethostbyname("127.0.0.1"),
                 lambda: repynet.getAddripv6("::1"),
                 repynet.getmyip):
        with pytest.raises(errors.ResourceForbiddenError, match=f"'{rate}' is restricted to 0"):
            call()


def test_connport_and_messport_are_separate(family, restrict):
    restrict(connport=[_port(5)], messport=[_port(6)])
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.listenforconnection(family, _port(6))
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.listenformessage(family, _port(5))
    # A message from a local port that is a connport only.
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage(family, _port(6), b"x", family, _port(5))
    with repynet.listenforconnection(family, _port(5)), \
            repynet.listenformessage(family, _port(6)):
        pass


def test_address_binding_error_for_an_address_that_is_not_ours(family):
    for not_ours in (NOT_OURS[family], *MORE_NOT_OURS[family]):
        # sendmessage's bind fails before anything is sent.
        for call in _with_local_address(not_ours, family):
            with pytest.raises(errors.AddressBindingError):
                call()


# --- local-address preferences (spec 4.3) --------------------------------------


def test_nootherips_allows_only_the_preferred_addresses(family, ip_preferences):
    ip_preferences([("ip", "127.0.0.2")], True)
    with repynet.listenformessage("127.0.0.2", _port(5)):
        pass
    # 127.0.0.1 is always appended to the list, and ::1 is allowed alike.
    with repynet.listenformessage(family, _port(5)):
        pass
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.listenformessage("127.0.0.3", _port(5))
    # An address that is not allowed is refused before binding: RFE, not
    # AddressBindingError.
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.listenforconnection(NOT_OURS[family], _port(5))
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.openconnection(family, _port(5), NOT_OURS[family], _port(6), 1)


def test_preferences_without_nootherips_allow_every_address(ip_preferences):
    ip_preferences([("ip", "127.0.0.2")], False)
    with repynet.listenformessage("127.0.0.3", _port(5)):
        pass


def test_getmyip_returns_the_first_preferred_address(ip_preferences):
    ip_preferences([("ip", "127.0.0.9"), ("ip", "127.0.0.2")], False)
    assert repynet.getmyip() == "127.0.0.9"
    ip_preferences([("iface", "lo")], True)
    assert repynet.getmyip() == "127.0.0.1"


def test_ip_preferences_refuse_malformed_addresses(ip_preferences):
    with pytest.raises(errors.RepyArgumentError):
        ip_preferences([("ip", "127.0.0.010")], True)


# --- gethostbyname and getmyip (spec 2.1, 2.2, D17, D19, D25, D27) --------------


def test_gethostbyname_literals_and_hosts_file_names():
    assert repynet.gethostbyname("127.0.0.1") == "127.0.0.1"
    assert repynet.gethostbyname("10.1.2.3") == "10.1.2.3"
    assert repynet.gethostbyname("") == "0.0.0.0"
    assert repynet.gethostbyname("localhost") == "127.0.0.1"
    assert repynet.gethostbyname("::1") == "::1"


@pytest.mark.parametrize("name", ["127.0.0.010", "1.2.3", "1.2.3.4.5", "999.1.1.1", "1..2.3"])
def test_non_canonical_dotted_names_never_reach_the_resolver(name):
    with pytest.raises(errors.NetworkAddressError):
        repynet.gethostbyname(name)


def test_gethostbyname_refuses_non_str():
    with pytest.raises(errors.RepyArgumentError):
        repynet.gethostbyname(b"localhost")


def test_gethostbyname_charges_the_network_rates_even_for_localhost(restrict):
    # A 2048 B/s bucket: the 4096-byte receive charge must wait about 1 s.
    restrict(netrecv=2048.0)
    start = time.monotonic()
    repynet.gethostbyname("127.0.0.1")
    assert time.monotonic() - start >= 0.9


def test_getmyip_sends_nothing_and_returns_a_local_ipv4_address():
    ip = repynet.getmyip()
    family, canonical = _repynet._parse_address(ip)
    assert family == socket.AF_INET and canonical == ip
    assert not ip.startswith("127.")


def test_getmyip_without_a_route_is_an_internet_connectivity_error():
    v4, v6 = _repynet._probe_addresses()
    _repynet._set_probe_addresses((), v6)
    try:
        with pytest.raises(errors.InternetConnectivityError):
            repynet.getmyip()
    finally:
        _repynet._set_probe_addresses(v4, v6)


# --- UDP (spec 2.3, 2.4, 3.3, D10, D11, D14) -------------------------------------


def test_udp_round_trip_and_source_of_replies(family):
    with repynet.listenformessage(family, _port(5)) as a, \
            repynet.listenformessage(family, _port(6)) as b:
        # Sent from a's own socket (found by address, D24), so b sees a's
        # port and a gets the reply.
        for spelling in SPELLINGS[family]:
            assert repynet.sendmessage(family, _port(6), b"ping", spelling, _port(5)) == 4
            assert _wait_message(b) == (family, _port(5), b"ping")
            assert repynet.sendmessage(spelling, _port(5), bytearray(b"pong"),
                                       family, _port(6)) == 4
            assert _wait_message(a) == (family, _port(6), b"pong")


def test_udp_payload_sizes_up_to_the_cap(family):
    with repynet.listenformessage(family, _port(5)) as udp:
        for size in (0, 1, 5 * 1024, 9216):
            message = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
            assert repynet.sendmessage(family, _port(5), memoryview(message),
                                       family, _port(6)) == size
            assert _wait_message(udp) == (family, _port(6), message)


def test_sendmessage_holds_no_outsocket_after_the_call(restrict):
    restrict(outsockets=1)
    with repynet.listenformessage(LO, _port(5)) as udp:
        for _ in range(3):
            repynet.sendmessage(LO, _port(5), b"x", LO, _port(6))
        assert _usage()["outsockets"] == 0
        for _ in range(3):
            _wait_message(udp)
        # And the pair it used can be listened on at once (D11).
        with repynet.listenformessage(LO, _port(6)):
            pass


def test_sendmessage_needs_an_outsocket_while_it_runs(family, restrict):
    restrict(outsockets=0)
    with pytest.raises(errors.ResourceExhaustedError):
        repynet.sendmessage(family, _port(5), b"x", family, _port(6))


def test_a_pair_held_by_another_program_is_found_in_proc(family, closing):
    # Rule U / C1 with the OS listing (/proc/net/{tcp,udp}[6], D15).
    kind = socket.AF_INET6 if ":" in family else socket.AF_INET
    holder = socket.socket(kind, socket.SOCK_DGRAM)
    closing(holder)
    holder.bind((family, _port(6)))
    with pytest.raises(errors.AlreadyListeningError):
        repynet.listenformessage(family, _port(6))
    # sendmessage only binds: EADDRINUSE there is DuplicateTupleError (spec 2.3).
    with pytest.raises(errors.DuplicateTupleError):
        repynet.sendmessage(family, _port(5), b"x", family, _port(6))
    listener = socket.socket(kind, socket.SOCK_STREAM)
    closing(listener)
    listener.bind((family, _port(6)))
    listener.listen(1)
    with pytest.raises(errors.AlreadyListeningError):
        repynet.listenforconnection(family, _port(6))
    with pytest.raises(errors.AlreadyListeningError):
        repynet.openconnection(family, _port(5), family, _port(6), 1)


def test_closing_a_udp_listener_forgets_its_pair():
    # D10: the original reused the closed socket and died with EBADF.
    udp = repynet.listenformessage(LO, _port(6))
    assert udp.close() is True
    with repynet.listenformessage(LO, _port(5)) as receiver:
        assert repynet.sendmessage(LO, _port(5), b"after", LO, _port(6)) == 5
        assert _wait_message(receiver) == (LO, _port(6), b"after")


def test_udp_listener_conflicts(family):
    with repynet.listenformessage(family, _port(5)):
        with pytest.raises(errors.AlreadyListeningError):
            repynet.listenformessage(family, _port(5))
        # A TCP listener and a UDP listener share a port happily; a second
        # of either kind is refused, however the address is written (D24).
        with repynet.listenforconnection(family, _port(5)):
            for same in SPELLINGS[family]:
                with pytest.raises(errors.AlreadyListeningError):
                    repynet.listenforconnection(same, _port(5))
                with pytest.raises(errors.AlreadyListeningError):
                    repynet.listenformessage(same, _port(5))


def test_udp_wildcard_holder_elsewhere_is_already_listening():
    # D15: another "process" bound 0.0.0.0:port; matched wildcard-aware.
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        holder.bind(("0.0.0.0", _port(5)))
        with pytest.raises(errors.AlreadyListeningError):
            repynet.listenformessage(LO, _port(5))
    finally:
        holder.close()


def test_getmessage_would_block_and_closed_listener(family):
    udp = repynet.listenformessage(family, _port(5))
    with pytest.raises(errors.SocketWouldBlockError):
        udp.getmessage()
    assert udp.close() is True
    assert udp.close() is True
    with pytest.raises(errors.SocketClosedLocal):
        udp.getmessage()


def test_insockets_limit(restrict):
    restrict(insockets=1)
    with repynet.listenformessage(LO, _port(5)):
        with pytest.raises(errors.ResourceExhaustedError):
            repynet.listenformessage(LO, _port(6))
        with pytest.raises(errors.ResourceExhaustedError):
            repynet.listenforconnection(LO, _port(6))
        assert _usage()["insockets"] == 1
    assert _usage()["insockets"] == 0


def test_bind_errors_win_over_exhausted_insockets(family, restrict):
    # D26: bind/connect errors first, then ResourceExhaustedError.
    restrict(insockets=1)
    with repynet.listenformessage(family, _port(5)):
        with pytest.raises(errors.AlreadyListeningError):
            repynet.listenformessage(family, _port(5))
        with pytest.raises(errors.AddressBindingError):
            repynet.listenforconnection(NOT_OURS[family], _port(6))
    restrict(insockets=0, outsockets=0)
    with pytest.raises(errors.AddressBindingError):
        repynet.listenforconnection(NOT_OURS[family], _port(5))
    with pytest.raises(errors.ResourceExhaustedError):
        repynet.listenforconnection(family, _port(5))
    with pytest.raises(errors.ResourceExhaustedError):
        repynet.listenformessage(family, _port(5))


# --- TCP set-up (spec 2.5, 2.6, 3.2, D15, D26) ------------------------------------


def test_connect_and_exchange(connection):
    _srv, client, accepted = connection
    assert client.send(b"hello") == 5
    assert _recv_all(accepted, 5) == b"hello"
    assert accepted.send(memoryview(b"world")) == 5
    assert _recv_all(client, 5) == b"world"


def test_getconnection_reports_the_peer(server):
    client = repynet.openconnection(LO, _port(0), LO, _port(7), 5)
    try:
        ip, port, accepted = _accept(server)
        assert (ip, port) == (LO, _port(7))
        accepted.close()
    finally:
        client.close()


def test_connection_refused(family):
    with pytest.raises(errors.ConnectionRefusedError):
        repynet.openconnection(family, _port(9), family, _port(8), 5)
    assert not issubclass(errors.ConnectionRefusedError, OSError)  # D7


def test_connecting_from_a_listening_port_is_already_listening(family):
    with repynet.listenforconnection(family, _port(0)):
        # Even toward a port nobody listens on: the bind fails first.
        for local in SPELLINGS[family]:
            with pytest.raises(errors.AlreadyListeningError):
                repynet.openconnection(family, _port(9), local, _port(0), 5)


def test_duplicate_listener_is_already_listening(server):
    with pytest.raises(errors.AlreadyListeningError):
        repynet.listenforconnection(LO, _port(0))


def test_listener_on_a_wildcard_held_port_is_already_listening():
    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", _port(5)))
        holder.listen(1)
        with pytest.raises(errors.AlreadyListeningError):
            repynet.listenforconnection(LO, _port(5))
    finally:
        holder.close()


def test_the_same_four_tuple_twice_is_a_duplicate_tuple(family, closing):
    srv = repynet.listenforconnection(family, _port(0))
    closing(srv)
    for sock in _connected_pair(srv, _port(1), family):
        closing(sock)
    for dest in SPELLINGS[family]:  # the tables compare addresses (D24)
        with pytest.raises(errors.DuplicateTupleError):
            repynet.openconnection(dest, _port(0), family, _port(1), 5)


def test_listen_close_listen(family, closing):
    for _ in range(3):
        srv = repynet.listenforconnection(family, _port(0))
        assert srv.close() is True
        assert srv.close() is True
    srv = repynet.listenforconnection(family, _port(0))
    client, accepted = _connected_pair(srv, _port(1), family)
    closing(client)
    closing(accepted)
    assert client.close() is True
    assert srv.close() is True
    # An accepted connection outlives its listener (spec 3.2): it sees the
    # client's FIN.
    with pytest.raises(errors.SocketClosedRemote):
        _poll(lambda: accepted.recv(1), "the FIN")
    assert accepted.close() is True
    srv = repynet.listenforconnection(family, _port(0))
    closing(srv)
    for sock in _connected_pair(srv, _port(2), family):  # asserts the peer
        closing(sock)


def test_timeout_against_a_listener_that_never_accepts(family):
    # A full backlog on loopback: further SYNs are dropped, so connect hangs.
    kind = socket.AF_INET6 if ":" in family else socket.AF_INET
    holder = socket.socket(kind)
    fillers = []
    try:
        holder.bind((family, _port(9)))
        holder.listen(0)
        for _ in range(10):
            filler = socket.socket(kind)
            filler.setblocking(False)
            fillers.append(filler)
            filler.connect_ex((family, _port(9)))
        time.sleep(0.2)
        start = time.monotonic()
        with pytest.raises(errors.TimeoutError) as raised:
            repynet.openconnection(family, _port(9), family, _port(8), 0.5)
        assert time.monotonic() - start >= 0.5
        assert not isinstance(raised.value, OSError)  # the Repy class, not the builtin
    finally:
        for filler in fillers:
            filler.close()
        holder.close()


def test_outsockets_limit_for_openconnection_and_getconnection(restrict, server):
    restrict(outsockets=1)
    client = repynet.openconnection(LO, _port(0), LO, _port(1), 5)
    try:
        assert _usage()["outsockets"] == 1
        with pytest.raises(errors.ResourceExhaustedError):
            repynet.openconnection(LO, _port(0), LO, _port(2), 5)
        deadline = time.monotonic() + 5
        while True:
            try:
                server.getconnection()
            except errors.SocketWouldBlockError:
                assert time.monotonic() < deadline
                time.sleep(0.01)
                continue
            except errors.ResourceExhaustedError:
                break
            raise AssertionError("getconnection took an outsocket over the limit")
    finally:
        client.close()
    assert _usage()["outsockets"] == 0


def test_connect_errors_win_over_exhausted_outsockets(family, restrict):
    restrict(outsockets=0)
    with pytest.raises(errors.ConnectionRefusedError):
        repynet.openconnection(family, _port(9), family, _port(8), 5)
    # With a listener, the connection is made and then refused for the count.
    restrict(insockets=1, outsockets=0)
    with repynet.listenforconnection(family, _port(9)):
        with pytest.raises(errors.ResourceExhaustedError):
            repynet.openconnection(family, _port(9), family, _port(8), 5)


def test_server_close_resets_pending_but_not_accepted_connections():
    srv = repynet.listenforconnection(LO, _port(0))
    client, accepted = _connected_pair(srv, _port(1))
    pending = repynet.openconnection(LO, _port(0), LO, _port(2), 5)
    time.sleep(0.05)
    assert srv.close() is True
    try:
        assert client.send(b"still") == 5
        assert _recv_all(accepted, 5) == b"still"
        # The kernel resets the connection nobody accepted.
        with pytest.raises(errors.SocketClosedRemote):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    pending.recv(1)
                except errors.SocketWouldBlockError:
                    time.sleep(0.01)
    finally:
        for sock in (client, accepted, pending):
            sock.close()


# --- the TCP socket (spec 3.1, D18, D22) -----------------------------------------


def test_recv_would_block(connection):
    srv, client, accepted = connection
    with pytest.raises(errors.SocketWouldBlockError):
        client.recv(10)
    with pytest.raises(errors.SocketWouldBlockError):
        accepted.recv(10)
    with pytest.raises(errors.SocketWouldBlockError):
        srv.getconnection()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10", None])
def test_recv_size_must_be_a_positive_int(pair, bad):
    client, _ = pair
    with pytest.raises(errors.RepyArgumentError):
        client.recv(bad)


def test_huge_recv_size_is_clamped(pair):
    client, accepted = pair
    accepted.send(b"abc")
    assert _recv_all(client, 3) == b"abc"
    accepted.send(b"d")
    time.sleep(0.05)
    assert client.recv(10**15) == b"d"


def test_peer_close_gives_closed_remote_repeatedly_without_a_local_close(connection):
    _srv, client, accepted = connection
    accepted.send(b"last")
    accepted.close()
    assert _recv_all(client, 4) == b"last"
    for _ in range(3):  # repeatable, and the socket stays open (spec 3.1)
        with pytest.raises(errors.SocketClosedRemote):
            client.recv(1)
        with pytest.raises(errors.SocketClosedRemote):
            client.send(b"x")
    with pytest.raises(errors.SocketClosedRemote):
        client.send(b"")
    assert client.close() is True


def test_peer_reset_closes_internally(server):
    raw = socket.create_connection((LO, _port(0)))
    try:
        _ip, _port_, accepted = _accept(server)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        raw.close()
    time.sleep(0.05)
    with pytest.raises(errors.SocketClosedRemote):
        accepted.recv(1)
    with pytest.raises(errors.SocketClosedLocal):
        accepted.recv(1)
    with pytest.raises(errors.SocketClosedLocal):
        accepted.send(b"x")
    assert accepted.close() is False
    assert _usage()["outsockets"] == 0


def test_double_close_and_use_after_close(connection):
    srv, client, accepted = connection
    for sock in (client, accepted):
        assert sock.close() is True
        assert sock.close() is False
        with pytest.raises(errors.SocketClosedLocal):
            sock.recv(1)
        with pytest.raises(errors.SocketClosedLocal):
            sock.send(b"x")
    assert srv.close() is True
    assert srv.close() is True  # a listener's close is always True (spec 3.2)
    with pytest.raises(errors.SocketClosedLocal):
        srv.getconnection()


def test_send_eventually_blocks_below_512_kib(connection):
    _srv, client, _accepted = connection
    total = 0
    chunk = b"\0" * 65536
    while True:
        try:
            total += client.send(chunk)
        except errors.SocketWouldBlockError:
            break
        assert total <= 512 * 1024, "a connection must not take more than 512 KiB (D22)"
    assert total > 64 * 1024


def test_sixteen_mebibytes_arrive_in_order(pair):
    client, accepted = pair
    payload = bytes(range(256)) * (16 * 4096)
    received = bytearray()
    sent = 0
    deadline = time.monotonic() + 60
    while len(received) < len(payload) and time.monotonic() < deadline:
        if sent < len(payload):
            try:
                sent += client.send(memoryview(payload)[sent:sent + 262144])
            except errors.SocketWouldBlockError:
                pass
        try:
            received += accepted.recv(1 << 20)
        except errors.SocketWouldBlockError:
            pass
    assert bytes(received) == payload


# --- text mode (D1, D2) ----------------------------------------------------------


def test_text_mode_round_trip_and_inheritance():
    text_api = repynet.NetworkAPI(text=True)
    assert text_api.text is True and repynet.NetworkAPI().text is False
    srv = text_api.listenforconnection(LO, _port(0))
    client = repynet.openconnection(LO, _port(0), LO, _port(1), 5)  # a bytes-mode user
    try:
        _ip, _p, accepted = _accept(srv)
        client.send("caf\xe9 \x00\xff".encode("latin-1"))
        got = ""
        while len(got) < 7:
            try:
                got += accepted.recv(100)
            except errors.SocketWouldBlockError:
                time.sleep(0.01)
        assert got == "caf\xe9 \x00\xff" and type(got) is str
        assert accepted.send("\xff\x01") == 2
        assert accepted.send(b"b") == 1
        assert _recv_all(client, 3) == b"\xff\x01b"
        with pytest.raises(errors.RepyArgumentError):
            accepted.send("\u0100")
        with pytest.raises(errors.RepyArgumentError):
            client.send("text")
        accepted.close()
    finally:
        client.close()
        srv.close()


def test_text_mode_udp(family):
    text_api = repynet.NetworkAPI(text=True)
    with text_api.listenformessage(family, _port(5)) as udp:
        assert text_api.sendmessage(family, _port(5), "\xe9t\xe9", family, _port(6)) == 3
        assert _wait_message(udp) == (family, _port(6), "\xe9t\xe9")
        with pytest.raises(errors.RepyArgumentError):
            text_api.sendmessage(family, _port(5), "\u20ac", family, _port(6))
        # The namespace's _ipv6 names are in its mode too.
        api = repynet.api_namespace(text=True)
        assert api["sendmessage_ipv6"](family, _port(5), "caf\xe9", family, _port(7)) == 4
        assert _wait_message(udp) == (family, _port(7), "caf\xe9")


def test_api_namespace_has_the_twelve_names_in_its_mode():
    names = repynet.api_namespace(text=True)
    assert set(names) == {
        "gethostbyname", "getmyip", "sendmessage", "listenformessage", "openconnection",
        "listenforconnection", "getAddripv6", "getmyip_ipv6", "sendmessage_ipv6",
        "listenformessage_ipv6", "openconnection_ipv6", "listenforconnection_ipv6"}
    assert names["sendmessage"].__self__.text is True


def test_objects_cannot_be_made_directly():
    for cls in (repynet.TCPSocket, repynet.TCPServerSocket, repynet.UDPServerSocket):
        with pytest.raises(TypeError):
            cls()


# --- release: close, with, garbage collection (D16) -----------------------------


def test_dropping_objects_releases_their_counts(family):
    srv = repynet.listenforconnection(family, _port(0))
    client, accepted = _connected_pair(srv, _port(1), family)
    udp = repynet.listenformessage(family, _port(5))
    assert _usage()["insockets"] == 2 and _usage()["outsockets"] == 2
    repynet.sendmessage(family, _port(5), b"x", family, _port(1))  # D11: none kept
    assert _usage()["outsockets"] == 2
    del srv, client, accepted, udp
    gc.collect()
    usage = _usage()
    assert usage["insockets"] == 0 and usage["outsockets"] == 0
    assert {_port(0), _port(1)} <= usage["connport"] and _port(1) in usage["messport"]
    # And the pairs are free again.
    with repynet.listenforconnection(family, _port(0)), \
            repynet.listenformessage(family, _port(5)):
        pass


def test_context_managers_close():
    with repynet.listenforconnection(LO, _port(0)) as srv:
        with repynet.openconnection(LO, _port(0), LO, _port(1), 5) as client:
            pass
        with pytest.raises(errors.SocketClosedLocal):
            client.recv(1)
    with pytest.raises(errors.SocketClosedLocal):
        srv.getconnection()


# --- the Fatal path (D9) ---------------------------------------------------------


def test_unmapped_os_errors_raise_internal_error_with_the_cause():
    # Sending to the loopback broadcast address without SO_BROADCAST: EACCES,
    # which the original treated as fatal.
    with pytest.raises(errors.InternalRepyError) as info:
        repynet.sendmessage("127.255.255.255", _port(5), b"x", LO, _port(6))
    assert not isinstance(info.value, errors.RepyException)
    assert isinstance(info.value.__cause__, PermissionError)


# --- rates (spec 6.2, 6.3) ------------------------------------------------------


def test_a_rate_limit_slows_the_caller_down(restrict):
    restrict(loopsend=20000.0)
    with repynet.listenformessage(LO, _port(5)) as udp:
        start = time.monotonic()
        for _ in range(6):
            repynet.sendmessage(LO, _port(5), b"x" * 9000, LO, _port(6))
        elapsed = time.monotonic() - start
        for _ in range(6):
            _wait_message(udp)
    # 6 * 9064 bytes through a 20000 B/s bucket of 20000: at least 1.7 s.
    assert elapsed >= 1.7


def test_a_rate_of_zero_forbids_the_calls_that_charge_it(restrict):
    restrict(loopsend=0.0)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage(LO, _port(5), b"x", LO, _port(6))


def test_usage_reports_ports_that_passed_the_check_and_rates(family):
    with repynet.listenformessage(family, _port(5)) as udp:
        before = _usage()
        repynet.sendmessage(family, _port(5), b"x" * 5000, family, _port(6))
        _wait_message(udp)
        usage = _usage()
    assert {_port(5), _port(6)} <= usage["messport"]
    assert all(type(port) is int for port in usage["messport"])
    # Loopback traffic is charged to the loop rates (64 bytes of headers a
    # datagram), never to the network rates.
    assert usage["loopsend"] >= 64 + 5000 and usage["looprecv"] >= 64 + 5000
    assert (usage["netsend"], usage["netrecv"]) == (before["netsend"], before["netrecv"])


# --- no Python frame on the hot paths -------------------------------------------


def test_hot_paths_run_no_python_frame(pair, server, restrict):
    client, accepted = pair
    udp = repynet.listenformessage(LO, _port(5))
    calls = []

    def profiler(frame, event, arg):
        # Frames of this test file are the test's own; anything else is not.
        if event == "call" and frame.f_code.co_filename != __file__:
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    def exercise():
        client.send(b"x")
        accepted.recv(10)
        for call, args in ((accepted.recv, (1,)), (server.getconnection, ()),
                           (udp.getmessage, ())):
            try:
                call(*args)
            except errors.SocketWouldBlockError:
                pass
        repynet.sendmessage(LO, _port(5), b"y", LO, _port(6))
        udp.getmessage()
        try:
            client.recv(0)
        except errors.RepyArgumentError:
            pass

    time.sleep(0.05)
    restrict(loopsend=100.0)  # rate sleeps happen inside C too
    try:
        sys.setprofile(profiler)
        exercise()
    finally:
        sys.setprofile(None)
        udp.close()
    assert calls == []


# --- threads ---------------------------------------------------------------------


def test_rate_sleep_releases_the_gil(restrict):
    restrict(loopsend=5000.0)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.01)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        with repynet.listenformessage(LO, _port(5)) as udp:
            repynet.sendmessage(LO, _port(5), b"x" * 9000, LO, _port(6))
            repynet.sendmessage(LO, _port(5), b"x" * 9000, LO, _port(6))
            _wait_message(udp)
            _wait_message(udp)
    finally:
        stop.set()
        thread.join()
    assert len(ticks) >= 10


def test_builtin_names_are_not_shadowed_in_this_module():
    assert builtins.TimeoutError is not errors.TimeoutError
