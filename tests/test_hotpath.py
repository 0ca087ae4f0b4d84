"""Hot-path hardening: signals during rate waits, recv's clamp, tiny rates,
D31's per-send cap, forked children, and the observability hooks."""

import itertools
import os
import signal
import socket
import sys
import threading
import time

import pytest

import repynet
from repynet import _repynet, errors

LO = "127.0.0.1"
PORTS = set(range(63400, 63450))
WOULD_BLOCK = errors.SocketWouldBlockError


def _port(n):
    return 63400 + n


@pytest.fixture
def allow(restrict):
    """restrict(), with this file's ports (63400-63449) allowed too."""
    default = repynet.Restrictions.default()

    def apply(**changes):
        restrict(connport=set(default["connport"]) | PORTS,
                 messport=set(default["messport"]) | PORTS, **changes)

    apply()
    return apply


@pytest.fixture
def pair(allow, connect_pair):
    return connect_pair(_port(0), _port(1))


def _wait_readable(call, *args):
    for _ in range(5000):
        try:
            return call(*args)
        except WOULD_BLOCK:
            time.sleep(0.001)
    raise AssertionError("nothing arrived")


# --- a signal during the wait after the work (style.md's signal rule) ----------


class Interrupted(Exception):
    pass


@pytest.fixture
def alarm():
    """alarm(seconds): SIGALRM to the main thread, whose handler raises."""
    def handler(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    timers = []

    def arm(seconds):
        timer = threading.Timer(seconds, signal.pthread_kill,
                                (threading.main_thread().ident, signal.SIGALRM))
        timers.append(timer)
        timer.start()

    yield arm
    for timer in timers:
        timer.cancel()
        timer.join()
    signal.signal(signal.SIGALRM, previous)


def _call_keeping_result(method, *args):
    """Calls method from C (list.extend over starmap), so that its result is
    stored before the pending signal handler runs; returns (results, the
    handler's exception or None)."""
    results = []
    try:
        results.extend(itertools.starmap(method, [args]))
    except Interrupted as exc:
        return results, exc
    return results, None


def test_signal_during_recv_charge_keeps_the_data(pair, allow, alarm):
    client, accepted, _server = pair
    client.send(b"d" * 2000)
    time.sleep(0.05)
    allow(looprecv=1000.0)  # 2064 units: about a second of waiting
    alarm(0.2)
    results, interrupted = _call_keeping_result(accepted.recv, 5000)
    assert isinstance(interrupted, Interrupted)
    assert results == [b"d" * 2000]
    # The unpaid part stays in the bucket for the next call.
    assert repynet.getresources()[1]["looprecv"] > 1000.0
    allow()


def test_signal_during_send_charge_reports_what_was_sent(pair, allow, alarm):
    client, accepted, _server = pair
    allow(loopsend=100.0)  # D31: 100 bytes pass, 164 units: 0.64 s of waiting
    alarm(0.2)
    results, interrupted = _call_keeping_result(client.send, b"s" * 900)
    assert isinstance(interrupted, Interrupted)
    assert results == [100]
    # The unpaid part is paid before the next call's work, and a signal
    # there still ends the call with nothing done.
    alarm(0.1)
    results, interrupted = _call_keeping_result(client.send, b"t")
    assert isinstance(interrupted, Interrupted)
    assert results == []
    allow()
    assert _wait_readable(accepted.recv, 5000) == b"s" * 100


def test_signal_during_getmessage_charge_keeps_the_message(allow, alarm):
    with repynet.listenformessage(LO, _port(2)) as listener:
        repynet.sendmessage(LO, _port(2), b"m" * 2000, LO, _port(3))
        time.sleep(0.05)
        allow(looprecv=1000.0)
        alarm(0.2)
        results, interrupted = _call_keeping_result(listener.getmessage)
        assert isinstance(interrupted, Interrupted)
        assert results == [(LO, _port(3), b"m" * 2000)]


def test_signal_during_getconnection_charge_keeps_the_connection(allow, alarm):
    with repynet.listenforconnection(LO, _port(4)) as server:
        client = repynet.openconnection(LO, _port(4), LO, _port(5), 5)
        time.sleep(0.05)
        allow(looprecv=100.0)  # 128 units: about a quarter of a second
        alarm(0.1)
        results, interrupted = _call_keeping_result(server.getconnection)
        assert isinstance(interrupted, Interrupted)
        assert len(results) == 1
        remote_ip, remote_port, accepted = results[0]
        assert (remote_ip, remote_port) == (LO, _port(5))
        allow()
        client.send(b"hello")
        assert _wait_readable(accepted.recv, 10) == b"hello"
        accepted.close()
        client.close()


def test_signal_during_openconnection_charge_keeps_the_connection(allow, alarm, accept):
    with repynet.listenforconnection(LO, _port(6)) as server:
        allow(loopsend=50.0)  # 128 units: about 1.6 s of waiting
        alarm(0.2)
        results, interrupted = _call_keeping_result(
            repynet.openconnection, LO, _port(6), LO, _port(7), 5)
        assert isinstance(interrupted, Interrupted)
        assert len(results) == 1
        client = results[0]
        allow()
        accepted = accept(server)
        accepted.send(b"back")
        assert _wait_readable(client.recv, 10) == b"back"
        accepted.close()
        client.close()


# --- arguments and rates ------------------------------------------------------------


def test_recv_of_a_huge_size_clamps_to_one_mebibyte(pair):
    client, accepted, _server = pair
    client.send(b"abc")
    assert _wait_readable(accepted.recv, 2**63) == b"abc"
    client.send(b"def")
    assert _wait_readable(accepted.recv, 10**100) == b"def"
    with pytest.raises(errors.RepyArgumentError):
        accepted.recv(0)
    with pytest.raises(errors.RepyArgumentError):
        accepted.recv(-(2**70))


def test_a_rate_too_small_for_time_t_sleeps_instead_of_spinning(pair, allow):
    client, accepted, _server = pair
    client.send(b"t")
    time.sleep(0.05)
    allow(looprecv=1e-20)
    received = []
    thread = threading.Thread(target=lambda: received.append(accepted.recv(10)))
    cpu_before = time.process_time()
    thread.start()
    time.sleep(0.5)
    cpu_used = time.process_time() - cpu_before
    allow()  # a new limit ends the wait within one capped sleep
    thread.join()
    assert received == [b"t"]
    # A spinning wait would use about as much CPU as wall time.
    assert cpu_used < 0.25


@pytest.mark.parametrize("rate", [100.0, 5000.0])
def test_one_send_passes_at_most_one_second_of_its_rate(pair, allow, rate):
    client, accepted, _server = pair
    allow(loopsend=rate)
    sent = client.send(b"r" * 20000)
    assert 1 <= sent <= max(1, rate)
    allow()
    assert _wait_readable(accepted.recv, 20000) == b"r" * sent


# --- processes ------------------------------------------------------------------------


def test_a_forked_child_does_not_half_close_the_parents_connection(pair):
    client, accepted, _server = pair
    pid = os.fork()
    if pid == 0:  # the child closes explicitly, then lets the rest go
        try:
            client.close()
            accepted.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    time.sleep(0.05)
    # The peer saw no EOF and the connection still carries data both ways.
    with pytest.raises(WOULD_BLOCK):
        accepted.recv(10)
    client.send(b"after")
    assert _wait_readable(accepted.recv, 10) == b"after"
    accepted.send(b"back")
    assert _wait_readable(client.recv, 10) == b"back"


def test_deallocation_does_not_shut_a_shared_socket_down(allow, accept):
    server = repynet.listenforconnection(LO, _port(30))
    client = repynet.openconnection(LO, _port(30), LO, _port(31), 5)
    accepted = accept(server)
    pid = os.fork()
    if pid == 0:  # the child drops its last reference to its copy
        try:
            del client
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.05)
    try:
        with pytest.raises(WOULD_BLOCK):
            accepted.recv(10)
    finally:
        client.close()
        accepted.close()
        server.close()


# --- send after the peer's FIN (spec 3.1) ----------------------------------------------


def test_send_right_after_the_peers_close_raises_closed_remote(allow, accept):
    with repynet.listenforconnection(LO, _port(8)) as server:
        for i in range(20):
            client = repynet.openconnection(LO, _port(8), LO, _port(10 + i), 5)
            accepted = accept(server)
            client.close()  # over loopback the FIN is queued before this returns
            with pytest.raises(errors.SocketClosedRemote):
                accepted.send(b"late")
            accepted.close()


# --- send without the peek: the peer a linked socket of this process -------------------


def test_both_ends_in_this_process_are_linked_until_either_closes(pair):
    client, accepted, _server = pair
    assert _repynet._peer_in_process(client) is True
    assert _repynet._peer_in_process(accepted) is True
    accepted.close()
    assert _repynet._peer_in_process(client) is False
    with pytest.raises(errors.SocketClosedRemote):
        client.send(b"late")


def test_send_right_after_the_accepted_end_closes_raises_closed_remote(allow, accept):
    # The other direction of the test above: the client sends.
    with repynet.listenforconnection(LO, _port(41)) as server:
        for i in range(3):
            client = repynet.openconnection(LO, _port(41), LO, _port(42 + i), 5)
            accepted = accept(server)
            assert _repynet._peer_in_process(client)
            accepted.close()
            with pytest.raises(errors.SocketClosedRemote):
                client.send(b"late")
            client.close()


def _check_unlinked_send_sees_the_fin(accepted, raw):
    """accepted's peer is the plain socket raw: not linked, so send peeks
    and sees raw's FIN."""
    assert _repynet._peer_in_process(accepted) is False
    raw.close()
    with pytest.raises(errors.SocketClosedRemote):
        accepted.send(b"late")


def test_a_peer_outside_repynet_is_not_linked_and_its_fin_is_seen(allow, accept):
    with repynet.listenforconnection(LO, _port(45)) as server:
        raw = socket.create_connection((LO, _port(45)))
        accepted = accept(server)
        try:
            _check_unlinked_send_sees_the_fin(accepted, raw)
        finally:
            accepted.close()


def test_an_entry_whose_connection_was_reset_is_not_taken_for_the_peer(allow, accept):
    """A reset client stays in the table until it is closed; a new
    connection on its 4-tuple from outside repynet must not be linked to it,
    or the new peer's FIN would go unseen."""
    with repynet.listenforconnection(LO, _port(46)) as server:
        old_client = repynet.openconnection(LO, _port(46), LO, _port(47), 5)
        old_accepted = accept(server)
        old_client.send(b"unread")
        time.sleep(0.05)
        old_accepted.close()  # with unread data: a reset, not a FIN
        raw = socket.socket()
        accepted = None
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            raw.bind((LO, _port(47)))
            raw.connect((LO, _port(46)))
            accepted = accept(server)
            _check_unlinked_send_sees_the_fin(accepted, raw)
        finally:
            raw.close()
            if accepted is not None:
                accepted.close()
            old_client.close()


def test_a_forked_child_does_not_trust_the_parents_link(pair):
    """The parent's explicit close shuts the connection down (a FIN) while
    the child still holds its copy of the linked end."""
    client, accepted, _server = pair
    assert _repynet._peer_in_process(client)
    ready_r, ready_w = os.pipe()
    closed_r, closed_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            linked = _repynet._peer_in_process(client)
            os.write(ready_w, b"r")
            os.read(closed_r, 1)
            try:
                client.send(b"late")
            except errors.SocketClosedRemote:
                code = 2 if linked else 0
        finally:
            os._exit(code)
    try:
        os.read(ready_r, 1)
        accepted.close()
        os.write(closed_w, b"c")
        _, status = os.waitpid(pid, 0)
    finally:
        for fd in (ready_r, ready_w, closed_r, closed_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


# --- observability hooks ------------------------------------------------------------


_audited = []
_auditing = False


def _audit(event, args):
    # The limits code's events only: the set-up calls raise events of their own.
    if _auditing and event in ("repynet.denied", "repynet.ratewait"):
        _audited.append((event, args))


sys.addaudithook(_audit)


@pytest.fixture
def audited():
    global _auditing
    _audited.clear()
    _auditing = True
    yield _audited
    _auditing = False


def test_a_rate_wait_is_audited_and_counted(pair, allow, audited):
    client, _accepted, _server = pair
    before = _repynet._rate_waits()
    assert set(before) == {"netsend", "netrecv", "loopsend", "looprecv"}
    allow(loopsend=2000.0)
    client.send(b"w" * 2000)  # 2064 units: a short wait after the send
    events = [args for event, args in audited if event == "repynet.ratewait"]
    assert len(events) == 1
    name, seconds = events[0]
    assert name == "loopsend" and seconds > 0.0
    after = _repynet._rate_waits()
    assert after["loopsend"] > before["loopsend"]
    assert after["looprecv"] == before["looprecv"]


def test_calls_that_do_not_wait_are_not_audited(pair, audited):
    client, accepted, _server = pair
    client.send(b"q")
    _wait_readable(accepted.recv, 10)
    assert audited == []


def test_refusals_are_audited(allow, audited):
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.listenforconnection(LO, 1)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage(LO, _port(20), b"x", LO, 2)
    allow(insockets=0)
    with pytest.raises(errors.ResourceExhaustedError):
        repynet.listenformessage(LO, _port(21))
    allow(loopsend=0.0)
    with pytest.raises(errors.ResourceForbiddenError):
        repynet.sendmessage(LO, _port(20), b"x", LO, _port(22))
    assert audited == [
        ("repynet.denied", ("connport", "1")),
        ("repynet.denied", ("messport", "2")),
        ("repynet.denied", ("insockets", "limit exceeded")),
        ("repynet.denied", ("loopsend", "restricted to 0")),
    ]


def test_send_after_our_recv_saw_the_fin_raises_closed_remote(allow, accept):
    with repynet.listenforconnection(LO, _port(9)) as server:
        client = repynet.openconnection(LO, _port(9), LO, _port(40), 5)
        accepted = accept(server)
        client.send(b"last")
        client.close()
        assert _wait_readable(accepted.recv, 10) == b"last"
        for _ in range(2):
            with pytest.raises(errors.SocketClosedRemote):
                accepted.recv(10)
            with pytest.raises(errors.SocketClosedRemote):
                accepted.send(b"late")
        accepted.close()
