"""Regression tests for the hardening audit (issue 11): set-up calls under
churn and races (D29, D30), long and odd timeouts, argument errors that run
no user code, and dropped or forked async sockets.

Loopback only.  The TCP tests take their ports from the OS (bound to port 0
and released) and allow just those through the restrictions, so they do not
share ports with the other test files.  Waits and counts are bounded; no
test asserts how fast anything happened.
"""

import math
import signal
import socket
import threading
import time

import pytest

import repynet
from repynet import _repynet, errors

LO = "127.0.0.1"
# A hang guard, not a performance bound.
HANG_GUARD_S = 60.0


def _free_ports(count):
    """count distinct TCP ports of 127.0.0.1 that nothing holds right now."""
    holders = []
    try:
        for _ in range(count):
            holder = socket.socket()
            holder.bind((LO, 0))
            holders.append(holder)
        return [holder.getsockname()[1] for holder in holders]
    finally:
        for holder in holders:
            holder.close()


@pytest.fixture
def ports(restrict):
    """Three OS-chosen ports, the only ones the restrictions allow."""
    chosen = _free_ports(3)
    restrict(connport=set(chosen), messport=set(chosen))
    return chosen


def _unanswering_listener(port):
    """(listener, fillers): a listener on port whose full accept queue drops
    every further SYN, so a connect to it waits in SYN_SENT."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LO, port))
    listener.listen(0)
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex((LO, port))
        fillers.append(filler)
    return listener, fillers


def _accept(listener):
    end = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < end:
        try:
            return listener.getconnection()[2]
        except errors.SocketWouldBlockError:
            time.sleep(0.001)
    raise AssertionError("the connection never reached the listener")


# --- D30: a closing 4-tuple is CleanupInProgressError ------------------------------


TCP_STATE_FIN_WAIT2 = 5  # tcpi_state, the first byte of TCP_INFO


def _wait_for_tcp_state(sock, state):
    end = time.monotonic() + HANG_GUARD_S
    while sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != state:
        if time.monotonic() > end:
            raise AssertionError(f"the socket never reached TCP state {state}")
        time.sleep(0.001)


def test_reconnect_while_the_old_client_side_is_in_fin_wait2_is_cleanup_in_progress(ports):
    """The old client end has sent its FIN and the server has not: it sits in
    FIN_WAIT2 and the kernel refuses the same 4-tuple (EADDRNOTAVAIL).

    The old end is a plain socket kept open after shutdown(SHUT_WR), so it
    stays a full FIN_WAIT2 socket.  (Once a closed socket's FIN_WAIT2 is
    handed to the kernel's time-wait table, Linux may reuse the 4-tuple for a
    new connect; then the reconnect succeeds, which the churn test allows.)"""
    server_port, client_port = ports[0], ports[1]
    listener = repynet.listenforconnection(LO, server_port)
    old_client = socket.socket()
    try:
        old_client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        old_client.bind((LO, client_port))
        old_client.connect((LO, server_port))
        accepted = _accept(listener)
        try:
            old_client.shutdown(socket.SHUT_WR)
            _wait_for_tcp_state(old_client, TCP_STATE_FIN_WAIT2)
            with pytest.raises(errors.CleanupInProgressError):
                repynet.openconnection(LO, server_port, LO, client_port, 10)
        finally:
            accepted.close()
    finally:
        old_client.close()
        listener.close()


def test_reconnect_churn_on_one_tuple_never_says_not_an_address_of_this_host(ports):
    """Many reconnects of one 4-tuple, closed in both orders (FIN_WAIT1/2,
    CLOSING, LAST_ACK and TIME_WAIT all occur): every failure is
    CleanupInProgressError, never AddressBindingError or InternalRepyError."""
    server_port, client_port = ports[0], ports[1]
    listener = repynet.listenforconnection(LO, server_port)
    made = refused = 0
    try:
        for attempt in range(300):
            try:
                client = repynet.openconnection(LO, server_port, LO, client_port, 10)
            except errors.CleanupInProgressError:
                refused += 1
                time.sleep(0.01)
                continue
            made += 1
            accepted = _accept(listener)
            first, second = (client, accepted) if attempt % 2 else (accepted, client)
            first.close()
            second.close()
    finally:
        listener.close()
    assert made > 0
    assert made + refused == 300


# --- D29: the listener going away during the handshake --------------------------------


def test_listener_closed_during_the_handshake_is_connection_refused(ports):
    """A full backlog keeps the SYN unanswered; closing the listener then
    ends the handshake with a reset, which is ConnectionRefusedError."""
    server_port, client_port = ports[0], ports[1]
    listener, fillers = _unanswering_listener(server_port)
    closer = threading.Timer(0.5, listener.close)
    closer.start()
    try:
        with pytest.raises(errors.ConnectionRefusedError):
            repynet.openconnection(LO, server_port, LO, client_port, 30)
    finally:
        closer.join()
        listener.close()
        for filler in fillers:
            filler.close()


def test_listener_resetting_every_connection_never_gives_internal_error(ports):
    """A listener that accepts and resets (SO_LINGER 0) at once, racing the
    handshake: each openconnection either works or raises a Repy
    exception; ConnectionRefusedError covers a reset seen by connect (D29)."""
    server_port = ports[0]
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LO, server_port))
    listener.listen(64)
    stop = threading.Event()

    def reset_everything():
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()

    resetter = threading.Thread(target=reset_everything)
    resetter.start()
    outcomes = set()
    try:
        for attempt in range(200):
            local_port = ports[1 + attempt % 2]
            try:
                repynet.openconnection(LO, server_port, LO, local_port, 10).close()
                outcomes.add("connected")
            except errors.RepyException as exc:
                outcomes.add(type(exc).__name__)
    finally:
        stop.set()
        resetter.join()
        listener.close()
    assert outcomes <= {"connected", "ConnectionRefusedError", "CleanupInProgressError"}, \
        outcomes


# --- timeouts beyond an int of milliseconds, NaN and friends ---------------------------


def test_openconnection_timeout_of_thirty_days_waits_and_can_be_interrupted(ports):
    """30 days is 2.6e9 ms, past an int: the wait runs in slices (UBSan's
    float-cast-overflow check flags the unclamped conversion) and a signal
    still ends it."""
    server_port, client_port = ports[0], ports[1]
    listener, fillers = _unanswering_listener(server_port)

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(Interrupted):
            repynet.openconnection(LO, server_port, LO, client_port, 30 * 86400.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        listener.close()
        for filler in fillers:
            filler.close()
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize("timeout", [math.nan, -math.nan])
def test_completion_queue_wait_nan_raises(timeout):
    queue = _repynet.CompletionQueue()
    with pytest.raises(ValueError, match="NaN"):
        queue.wait(timeout)


def test_completion_queue_wait_negative_polls_and_inf_waits_like_none():
    queue = _repynet.CompletionQueue()
    assert queue.wait(-1.0) is False
    assert queue.wait(-math.inf) is False
    assert queue.wait(0) is False
    client, server = socket.socketpair()
    sock = _repynet.AsyncSocket(client.detach(), queue)
    try:
        sock.receive_async(4, "r")
        threading.Timer(0.2, server.send, args=(b"ping",)).start()
        assert queue.wait(math.inf) is True
        assert queue.drain() == [("r", _repynet.ASYNC_RESULT_OK, 4)]
    finally:
        sock.close()
        server.close()
        queue.drain()


# --- argument errors run no user code and stay short (item 6) -----------------------


class UserCodeRan(Exception):
    pass


# Every call of a hostile method, even one whose exception C swallowed.
USER_CODE_CALLS = []


def _forbidden(*args, **kwargs):
    USER_CODE_CALLS.append(args[0].__class__.__name__)
    raise UserCodeRan("a method of the argument ran")


@pytest.fixture
def no_user_code():
    USER_CODE_CALLS.clear()
    yield
    assert USER_CODE_CALLS == []


# Every method a formatter or a codec could reach on the argument.
HOSTILE_METHODS = {name: _forbidden for name in (
    "__repr__", "__str__", "__format__", "__index__", "__int__", "__float__",
    "__eq__", "__ne__", "__hash__", "__len__", "__iter__", "__getitem__",
    "encode", "split", "lower", "strip", "__bool__", "__abs__", "__trunc__",
    "__round__", "__lt__", "__le__", "__gt__", "__ge__", "__mul__")}
HostileStr = type("HostileStr", (str,), dict(HOSTILE_METHODS))
HostileInt = type("HostileInt", (int,), dict(HOSTILE_METHODS))
HostileFloat = type("HostileFloat", (float,), dict(HOSTILE_METHODS))
HUGE = "1" * (50 * 1024 * 1024)
# No message needs more than this, whatever the argument (64 characters
# of it, quoted and escaped, plus the call's own words).
MESSAGE_MAX = 400

P = 63100  # never bound: every call below fails its checks first


def _bad_calls():
    api, text_api = repynet.NetworkAPI(), repynet.NetworkAPI(text=True)
    calls = []
    for net in (api, text_api):
        calls += [
            ("listenforconnection bad ip", net.listenforconnection,
             (HostileStr("127.0.0.999"), P)),
            ("listenforconnection huge ip", net.listenforconnection, (HUGE, P)),
            ("listenforconnection port 0", net.listenforconnection, (LO, HostileInt(0))),
            ("listenforconnection port 2**70", net.listenforconnection,
             (LO, HostileInt(2**70))),
            ("listenformessage bad ip", net.listenformessage, (HostileStr("::zz"), P)),
            ("listenformessage huge ip", net.listenformessage, (HUGE, P)),
            ("listenformessage port -1", net.listenformessage, (LO, HostileInt(-1))),
            ("openconnection bad destip", net.openconnection,
             (HostileStr("1.2.3"), P, LO, P + 1, 5)),
            ("openconnection huge localip", net.openconnection, (LO, P, HUGE, P + 1, 5)),
            ("openconnection destport", net.openconnection,
             (LO, HostileInt(65536), LO, P + 1, 5)),
            ("openconnection timeout nan", net.openconnection,
             (LO, P, LO, P + 1, HostileFloat("nan"))),
            ("openconnection timeout -1", net.openconnection,
             (LO, P, LO, P + 1, HostileFloat(-1.0))),
            ("openconnection timeout 0", net.openconnection, (LO, P, LO, P + 1, HostileInt(0))),
            ("openconnection timeout -2**80", net.openconnection,
             (LO, P, LO, P + 1, HostileInt(-2**80))),
            ("sendmessage bad destip", net.sendmessage,
             (HostileStr("1.2.3.4.5"), P, b"x", LO, P + 1)),
            ("sendmessage huge localip", net.sendmessage, (LO, P, b"x", HUGE, P + 1)),
            ("sendmessage localport", net.sendmessage,
             (LO, P, b"x", LO, HostileInt(10**30))),
            ("sendmessage hostile text", net.sendmessage,
             (LO, P, HostileStr("\u0100"), LO, P + 1)),
            ("sendmessage huge text", net.sendmessage, (LO, P, HUGE, LO, P + 1)),
        ]
    return calls


def test_argument_errors_run_no_user_code_and_stay_short(no_user_code):
    # One test for all (pytest would hash and repr parametrized hostile values).
    for what, call, args in _bad_calls():
        with pytest.raises(errors.RepyArgumentError) as caught:
            call(*args)
        message = str(caught.value)
        assert len(message) <= MESSAGE_MAX, (what, message[:200])
        assert caught.value.__context__ is None, what
        assert caught.value.__cause__ is None, what


def test_a_cut_argument_shows_its_first_64_characters_and_its_length():
    with pytest.raises(errors.RepyArgumentError) as caught:
        repynet.listenforconnection("9" * 100, P)
    message = str(caught.value)
    assert "'" + "9" * 64 + "'... (100 characters)" in message
    assert "9" * 65 not in message


def test_a_hostile_int_is_shown_by_its_exact_value(no_user_code):
    with pytest.raises(errors.RepyArgumentError, match=r"Value: 70000$"):
        repynet.listenforconnection(LO, HostileInt(70000))
    with pytest.raises(errors.RepyArgumentError, match=r"an int above 2\*\*63$"):
        repynet.listenforconnection(LO, HostileInt(2**200))
    with pytest.raises(errors.RepyArgumentError, match=r"Timeout: -0\.5$"):
        repynet.openconnection(LO, P, LO, P + 1, HostileFloat(-0.5))


@pytest.mark.parametrize("lookup", ["gethostbyname", "getAddripv6"])
def test_lookups_of_hostile_or_huge_names_run_no_user_code(lookup, no_user_code):
    """The resolver step (the idna codec is Python) sees an exact str.  The
    names are refused before any query (digits and dots, a colon, a lone
    surrogate, a label over 63 characters): nothing leaves the machine."""
    for name in (HostileStr("1.2.3.4.5"), HostileStr("::zz"),
                 HostileStr("bad\udcff"), HostileStr("x" * 70 + ".invalid"), HUGE):
        with pytest.raises(errors.NetworkAddressError) as caught:
            getattr(repynet, lookup)(name)
        assert len(str(caught.value)) <= MESSAGE_MAX
        assert caught.value.__context__ is None


def test_recv_with_a_hostile_count_runs_no_user_code(ports, no_user_code):
    server_port, client_port = ports[0], ports[1]
    listener = repynet.listenforconnection(LO, server_port)
    try:
        client = repynet.openconnection(LO, server_port, LO, client_port, 10)
        accepted = _accept(listener)
        try:
            for count in (HostileInt(0), HostileInt(-3)):
                with pytest.raises(errors.RepyArgumentError) as caught:
                    client.recv(count)
                assert caught.value.__context__ is None
        finally:
            client.close()
            accepted.close()
    finally:
        listener.close()
