"""repynet.v1: the Repy V1 calls (spec section 8, seed 000) on 127.0.0.1.

Every test allows its own free ports (restrict fixture) rather than the
default range, and closes what it opens: the leak check holds here too.
Time bounds are lower bounds only.
"""

import gc
import runpy
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from repynet import _repynet, errors, v1

# Loaded by path: the suite also runs with --import-mode=importlib.
free_udp_ports = runpy.run_path(
    str(Path(__file__).resolve().parent / "test_runner.py"))["free_ports"]

HANG_GUARD = 30  # seconds: only stops a broken test from hanging the run


def free_ports(count):
    return free_udp_ports(count, kind=socket.SOCK_STREAM)


def free_port_not_allowed(allowed, kind=socket.SOCK_STREAM):
    """A free port outside `allowed`: the kernel may hand out a port that
    was free a moment ago, and so one the restrictions allow."""
    while True:
        port = free_udp_ports(1, kind=kind)[0]
        if port not in allowed:
            return port


@pytest.fixture
def ports(restrict):
    """Six free ports, allowed as connport and messport for this test."""
    chosen = free_ports(6)
    restrict(connport=set(chosen), messport=set(chosen))
    return chosen


class RecordingHost:
    """Records uncaught callback exceptions instead of ending pytest."""

    def __init__(self):
        self.uncaught_exceptions = []
        self.live = 0  # listeners (as one) and running callbacks
        self._changed = threading.Condition()

    def work_started(self):
        with self._changed:
            self.live += 1

    def work_finished(self):
        with self._changed:
            self.live -= 1
            self._changed.notify_all()

    def wait_idle(self):
        with self._changed:
            assert self._changed.wait_for(lambda: self.live == 0, HANG_GUARD)

    def uncaught(self, exc):
        self.uncaught_exceptions.append(exc)


@pytest.fixture
def network():
    """A bytes-mode V1Network whose handles are all closed after the test;
    the test fails if a callback raised."""
    host = RecordingHost()
    net = v1.V1Network(text=False, host=host)
    yield net
    net.close_all()
    host.wait_idle()  # callbacks still running hold sockets
    net.close_all()
    assert not host.uncaught_exceptions


def usage(name):
    return _repynet._usage()[name]


def wait_until(predicate):
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def echo_server(network, port):
    """waitforconn on port: echoes one message upper-cased, then closes."""
    seen = []

    def on_connection(remoteip, remoteport, sock, thishandle, listenhandle):
        seen.append((remoteip, remoteport, thishandle, listenhandle))
        try:
            sock.send(sock.recv(100).upper())
        except Exception as err:  # the client closed without a message
            assert str(err) == "Socket closed"
        sock.close()

    return network.waitforconn("127.0.0.1", port, on_connection), seen


# --- TCP ------------------------------------------------------------------------


def test_waitforconn_calls_back_with_v1_arguments_and_openconn_talks(network, ports):
    handle, seen = echo_server(network, ports[0])
    assert handle.startswith("_COMMH:")
    sock = network.openconn("127.0.0.1", ports[0], "127.0.0.1", ports[1])
    assert sock.send(b"hello") == 5
    assert sock.recv(100) == b"HELLO"
    sock.close()
    wait_until(lambda: seen)
    remoteip, remoteport, thishandle, listenhandle = seen[0]
    assert (remoteip, remoteport) == ("127.0.0.1", ports[1])
    assert thishandle.startswith("_COMMH:") and thishandle != handle
    assert listenhandle == handle


def test_openconn_without_a_local_port_uses_any_port_and_no_connport(network, ports, restrict):
    handle, seen = echo_server(network, ports[0])
    sock = network.openconn("127.0.0.1", ports[0])  # keyword defaults: V1's
    sock.send(b"x")
    assert sock.recv(10) == b"X"
    sock.close()
    wait_until(lambda: seen)
    assert seen[0][1] not in ports


def test_keyword_arguments_work_as_in_v1(network, ports):
    echo_server(network, ports[0])
    sock = network.openconn(desthost="127.0.0.1", destport=ports[0], localip="127.0.0.1",
                            localport=ports[2], timeout=2.5)
    sock.send(message=b"kw")
    assert sock.recv(bytes=10) == b"KW"
    sock.close()


def test_a_second_waitforconn_replaces_the_callback_and_kills_the_old_handle(network, ports):
    calls = []
    first = network.waitforconn("127.0.0.1", ports[0], lambda *a: calls.append("first"))
    insockets = usage("insockets")

    def second(remoteip, remoteport, sock, thishandle, listenhandle):
        calls.append(("second", listenhandle))
        sock.close()

    replacement = network.waitforconn("127.0.0.1", ports[0], second)
    assert replacement != first
    assert usage("insockets") == insockets  # the insocket moved to the new handle
    assert network.stopcomm(first) is False
    sock = network.openconn("127.0.0.1", ports[0])
    wait_until(lambda: calls)
    assert calls == [("second", replacement)]
    sock.close()
    assert network.stopcomm(replacement) is True
    assert network.stopcomm(replacement) is False


def test_stopcomm_frees_the_insocket_and_the_port(network, ports):
    before = usage("insockets")
    handle = network.waitforconn("127.0.0.1", ports[0], lambda *a: None)
    assert usage("insockets") == before + 1
    assert network.stopcomm(handle) is True
    assert usage("insockets") == before
    with pytest.raises(Exception, match="Connection refused"):
        network.openconn("127.0.0.1", ports[0], timeout=1)
    again = network.waitforconn("127.0.0.1", ports[0], lambda *a: None)
    assert network.stopcomm(again) is True


@pytest.mark.parametrize("bad", [None, 5, "COMMH:1", b"_COMMH:1"])
def test_stopcomm_of_a_non_handle_raises_the_v1_text(network, bad):
    with pytest.raises(Exception, match="^Invalid commhandle specified!$"):
        network.stopcomm(bad)


def test_stopcomm_of_an_unknown_handle_is_false(network):
    assert network.stopcomm("_COMMH:999999") is False


def test_openconn_fails_on_a_4_tuple_already_in_the_table(network, ports):
    echo_server(network, ports[0])
    sock = network.openconn("127.0.0.1", ports[0], "127.0.0.1", ports[1])
    handle = sock._conn.handle
    with pytest.raises(Exception, match=f"Duplicate handle exists with name: {handle}$"):
        network.openconn("127.0.0.1", ports[0], "127.0.0.1", ports[1])
    sock.close()


def test_after_close_the_peer_still_reads_what_was_delivered(network, ports):
    received = []
    done = threading.Event()

    def reader(remoteip, remoteport, sock, thishandle, listenhandle):
        time.sleep(0.2)  # the sender has closed by now
        try:
            while True:
                received.append(sock.recv(100))
        except Exception as err:
            received.append(str(err))
        sock.close()
        done.set()

    network.waitforconn("127.0.0.1", ports[0], reader)
    sock = network.openconn("127.0.0.1", ports[0])
    sock.send(b"delivered")
    assert sock.close() is True
    assert sock.close() is False
    assert done.wait(HANG_GUARD)
    assert b"".join(r for r in received if isinstance(r, bytes)) == b"delivered"
    assert received[-1] == "Socket closed"  # then the end of the stream


def test_a_closed_socket_raises_socket_closed_on_every_call(network, ports):
    echo_server(network, ports[0])
    sock = network.openconn("127.0.0.1", ports[0])
    sock.close()
    for call in (lambda: sock.recv(1), lambda: sock.send(b"x"), sock.willblock):
        with pytest.raises(Exception, match="^Socket closed$"):
            call()


def test_recv_blocked_in_another_thread_wakes_when_the_socket_is_closed(network, ports):
    kept = []  # the server end stays open and never answers
    network.waitforconn("127.0.0.1", ports[0], lambda ip, port, s, handle, listener: kept.append(s))
    sock = network.openconn("127.0.0.1", ports[0])
    outcome = []

    def blocked_reader():
        try:
            sock.recv(10)
        except Exception as err:
            outcome.append((str(err), time.monotonic()))

    reader = threading.Thread(target=blocked_reader)
    reader.start()
    time.sleep(0.3)
    assert not outcome  # still waiting: no data came
    closed_at = time.monotonic()
    sock.close()
    reader.join(HANG_GUARD)
    assert outcome and outcome[0][0] == "Socket closed"
    assert outcome[0][1] >= closed_at


def test_send_blocks_until_the_peer_reads(network, ports):
    release = threading.Event()
    total = []

    def slow_reader(remoteip, remoteport, sock, thishandle, listenhandle):
        release.wait(HANG_GUARD)
        got = 0
        try:
            while True:
                got += len(sock.recv(65536))
        except Exception:
            total.append(got)
        sock.close()

    network.waitforconn("127.0.0.1", ports[0], slow_reader)
    sock = network.openconn("127.0.0.1", ports[0])
    payload = b"x" * 65536
    sent = 0
    timer = threading.Timer(0.3, release.set)
    timer.start()
    started = time.monotonic()
    while sent < 4 * 1024 * 1024:  # far above what the buffers hold
        sent += sock.send(payload)
    assert time.monotonic() - started >= 0.25  # it waited for the reader
    sock.close()
    wait_until(lambda: total)
    assert total == [sent]
    timer.join()


def test_willblock_reports_what_would_block(network, ports):
    kept = []
    network.waitforconn("127.0.0.1", ports[0],
                        lambda ip, port, s, handle, listener: (kept.append(s), s.send(b"data")))
    sock = network.openconn("127.0.0.1", ports[0])
    wait_until(lambda: sock.willblock() == (False, False))
    assert sock.recv(10) == b"data"
    assert sock.willblock() == (True, False)
    sock.close()


def test_sockets_are_not_hashable(network, ports):
    echo_server(network, ports[0])
    sock = network.openconn("127.0.0.1", ports[0])
    with pytest.raises(TypeError):
        hash(sock)
    sock.close()


def test_a_dropped_socket_gives_its_outsocket_back(network, ports):
    echo_server(network, ports[0])
    before = usage("outsockets")
    sock = network.openconn("127.0.0.1", ports[0])
    assert usage("outsockets") > before
    del sock
    gc.collect()
    wait_until(lambda: usage("outsockets") == before)


# --- openconn errors --------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"destport": 0}, "Destination port number must be an integer, between 1 and 65535."),
    ({"destport": True}, "Destination port number must be an integer, between 1 and 65535."),
    ({"localip": "127.0.0.1"}, "Localip and localport must be specified simultaneously."),
    ({"localport": 5}, "Localip and localport must be specified simultaneously."),
    ({"localip": "127.0.0.1", "localport": 70000},
     "Local port number must be an integer, between 1 and 65535."),
    ({"timeout": 0}, "Timeout parameter must be a numeric value greater than 0."),
    ({"timeout": -1.0}, "Timeout parameter must be a numeric value greater than 0."),
    ({"timeout": "5"}, "Timeout parameter must be a numeric value greater than 0."),
    ({"timeout": float("nan")}, "Timeout parameter must be a numeric value greater than 0."),
])
def test_openconn_argument_errors_have_v1_texts(network, ports, kwargs, message):
    arguments = {"desthost": "127.0.0.1", "destport": ports[0], **kwargs}
    with pytest.raises(Exception) as raised:
        network.openconn(**arguments)
    assert type(raised.value) is Exception
    assert str(raised.value) == message
    assert usage("outsockets") == 0


def test_openconn_to_a_refused_port_raises_and_leaks_nothing(network, ports):
    with pytest.raises(Exception, match="Connection refused"):
        network.openconn("127.0.0.1", ports[0], timeout=1)
    assert usage("outsockets") == 0


def test_openconn_from_a_port_not_allowed_names_the_resource(network, ports):
    forbidden = free_port_not_allowed(ports)
    with pytest.raises(Exception, match=f"^Resource 'connport {forbidden}' not allowed!!!$"):
        network.openconn("127.0.0.1", ports[0], "127.0.0.1", forbidden)


def test_a_spent_timeout_raises_timed_out_before_connecting(network, ports, restrict):
    listener = _repynet.NetworkAPI().listenforconnection("127.0.0.1", ports[0])
    try:
        with pytest.raises(Exception, match="timed out"):
            network.openconn("127.0.0.1", ports[0], timeout=1e-12)
        with pytest.raises(errors.SocketWouldBlockError):
            listener.getconnection()  # no connection was ever attempted
    finally:
        listener.close()


def test_openconn_waits_for_the_kernel_to_clean_up_a_closing_tuple(network, ports,
                                                                    monkeypatch):
    # The kernel refuses the 4-tuple (a closing state, D30) twice, then takes it.
    echo_server(network, ports[0])
    real = _repynet._v1_openconn
    refusals = []

    def refusing(*args):
        if len(refusals) < 2:
            refusals.append(time.monotonic())
            raise errors.CleanupInProgressError("closing")
        return real(*args)

    monkeypatch.setattr(_repynet, "_v1_openconn", refusing)
    started = time.monotonic()
    sock = network.openconn("127.0.0.1", ports[0], "127.0.0.1", ports[1], timeout=5)
    assert time.monotonic() - started >= 2 * v1.CLEANUP_RETRY_INTERVAL
    sock.close()


def test_openconn_gives_up_on_cleanup_at_its_timeout(network, ports, monkeypatch):
    def always_closing(*args):
        raise errors.CleanupInProgressError("closing")

    monkeypatch.setattr(_repynet, "_v1_openconn", always_closing)
    started = time.monotonic()
    with pytest.raises(Exception, match="^(Timed out checking for socket cleanup!|"
                                        "Connection timed out!)$"):
        network.openconn("127.0.0.1", ports[0], timeout=0.5)
    assert time.monotonic() - started >= 0.5


def test_gc_runs_once_when_outsockets_are_exhausted(network, ports, restrict):
    echo_server(network, ports[0])
    restrict(outsockets=1, connport=set(ports), messport=set(ports))
    sock = network.openconn("127.0.0.1", ports[0])
    del sock  # unreachable but maybe not yet collected: V1 collects, then retries
    again = network.openconn("127.0.0.1", ports[0])
    with pytest.raises(Exception, match="^Resource 'outsockets' limit exceeded!!$"):
        network.openconn("127.0.0.1", ports[0])
    again.close()


# --- UDP --------------------------------------------------------------------------


def test_recvmess_calls_back_with_v1_arguments(network, ports):
    got = []
    handle = network.recvmess("127.0.0.1", ports[0], lambda *args: got.append(args))
    assert network.sendmess("127.0.0.1", ports[0], b"ping") == 4
    assert network.sendmess("127.0.0.1", ports[0], b"pong", "127.0.0.1", ports[1]) == 4
    wait_until(lambda: len(got) == 2)
    by_message = {message: (ip, port, h) for ip, port, message, h in got}
    assert by_message[b"ping"][0] == "127.0.0.1" and by_message[b"ping"][2] == handle
    assert by_message[b"pong"] == ("127.0.0.1", ports[1], handle)


def test_sendmess_from_a_listening_pair_sends_from_the_listener(network, ports):
    got = []
    network.recvmess("127.0.0.1", ports[0], lambda *args: got.append(args))
    network.recvmess("127.0.0.1", ports[1], lambda *args: got.append(args))
    network.sendmess("127.0.0.1", ports[1], b"reply", "127.0.0.1", ports[0])
    wait_until(lambda: got)
    assert got[0][:3] == ("127.0.0.1", ports[0], b"reply")


def test_a_second_recvmess_replaces_the_callback(network, ports):
    got = []
    first = network.recvmess("127.0.0.1", ports[0], lambda *a: got.append("first"))
    second = network.recvmess("127.0.0.1", ports[0], lambda *a: got.append("second"))
    assert network.stopcomm(first) is False
    network.sendmess("127.0.0.1", ports[0], b"x")
    wait_until(lambda: got)
    assert got == ["second"]
    assert network.stopcomm(second) is True


@pytest.mark.parametrize("args, message", [
    (("127.0.0.1", 0, b"x"), "Destination port number must be an integer, between 1 and 65535."),
    (("127.0.0.1", 1, b"x", "127.0.0.1"),
     "Localip and localport must be specified simultaneously."),
    (("127.0.0.1", 1, b"x", "127.0.0.1", -1),
     "Local port number must be an integer, between 1 and 65535."),
])
def test_sendmess_argument_errors_have_v1_texts(network, args, message):
    with pytest.raises(Exception) as raised:
        network.sendmess(*args)
    assert str(raised.value) == message


def test_sendmess_from_a_port_not_allowed_names_the_resource(network, ports):
    forbidden = free_port_not_allowed(ports, kind=socket.SOCK_DGRAM)
    with pytest.raises(Exception, match=f"^Resource 'messport {forbidden}' not allowed!!!$"):
        network.sendmess("127.0.0.1", ports[0], b"x", "127.0.0.1", forbidden)


# --- listener errors --------------------------------------------------------------


@pytest.mark.parametrize("listen", ["waitforconn", "recvmess"])
@pytest.mark.parametrize("localip", ["", "0.0.0.0"])
def test_a_listener_needs_a_local_ip(network, ports, listen, localip):
    with pytest.raises(Exception, match="^Must specify a local IP address$"):
        getattr(network, listen)(localip, ports[0], lambda *a: None)


@pytest.mark.parametrize("listen", ["waitforconn", "recvmess"])
@pytest.mark.parametrize("port", [0, 65536, "1", 1.0])
def test_a_listener_port_must_be_valid(network, listen, port):
    with pytest.raises(Exception, match="^Local port number must be an integer"):
        getattr(network, listen)("127.0.0.1", port, lambda *a: None)


@pytest.mark.parametrize("listen, kind", [("waitforconn", "connport"), ("recvmess", "messport")])
def test_a_listener_port_not_allowed_names_the_resource(network, ports, listen, kind):
    forbidden = free_port_not_allowed(ports)
    with pytest.raises(Exception, match=f"^Resource '{kind} {forbidden}' not allowed!!!$"):
        getattr(network, listen)("127.0.0.1", forbidden, lambda *a: None)
    assert usage("insockets") == 0 and usage("events") == 0


def test_more_listeners_than_insockets_raise_and_leak_nothing(network, ports, restrict):
    restrict(insockets=1, connport=set(ports), messport=set(ports))
    network.waitforconn("127.0.0.1", ports[0], lambda *a: None)
    with pytest.raises(Exception, match="^Resource 'insockets' limit exceeded!!$"):
        network.recvmess("127.0.0.1", ports[1], lambda *a: None)
    assert usage("insockets") == 1 and usage("events") == 1


@pytest.mark.parametrize("bad", [None, 5, "not callable"])
def test_a_listener_function_must_be_callable(network, ports, bad):
    with pytest.raises(TypeError):
        network.waitforconn("127.0.0.1", ports[0], bad)
    assert usage("insockets") == 0


# --- events -----------------------------------------------------------------------


def test_one_event_is_held_while_any_listener_exists(network, ports):
    before = usage("events")
    tcp = network.waitforconn("127.0.0.1", ports[0], lambda *a: None)
    assert usage("events") == before + 1
    udp = network.recvmess("127.0.0.1", ports[1], lambda *a: None)
    assert usage("events") == before + 1
    network.stopcomm(tcp)
    assert usage("events") == before + 1
    network.stopcomm(udp)
    assert usage("events") == before


def test_a_callback_holds_an_event_and_work_waits_when_none_is_free(network, ports, restrict):
    # events 2: the listener holds one, so callbacks run one at a time.
    restrict(events=2, connport=set(ports), messport=set(ports))
    release = threading.Event()
    order = []

    def callback(remoteip, remoteport, sock, thishandle, listenhandle):
        order.append(("start", remoteport, usage("events")))
        if len(order) == 1:
            release.wait(HANG_GUARD)
        order.append(("end", remoteport))
        sock.close()

    network.waitforconn("127.0.0.1", ports[0], callback)
    first = network.openconn("127.0.0.1", ports[0], "127.0.0.1", ports[1])
    wait_until(lambda: order)
    second = network.openconn("127.0.0.1", ports[0], "127.0.0.1", ports[2])
    time.sleep(0.3)
    assert order == [("start", ports[1], 2)]  # the second waits in the kernel
    release.set()
    wait_until(lambda: len(order) == 4)
    assert order[1:] == [("end", ports[1]), ("start", ports[2], 2), ("end", ports[2])]
    first.close()
    second.close()


def test_callbacks_run_concurrently_when_events_allow(network, ports):
    inside = []
    both = threading.Event()

    def callback(remoteip, remoteport, sock, thishandle, listenhandle):
        inside.append(remoteport)
        if len(inside) == 2:
            both.set()
        both.wait(HANG_GUARD)
        sock.close()

    network.waitforconn("127.0.0.1", ports[0], callback)
    socks = [network.openconn("127.0.0.1", ports[0]) for _ in range(2)]
    assert both.wait(HANG_GUARD)
    for sock in socks:
        sock.close()


def test_idle_callback_threads_wait_inside_the_ready_queue(network, ports):
    # No selector thread and no sleep loop: while nothing arrives, every
    # callback thread is parked in ReadyQueue.get() (C, GIL released).
    network.waitforconn("127.0.0.1", ports[0], lambda *a: None)
    network.recvmess("127.0.0.1", ports[1], lambda *a: None)
    workers = [t for t in threading.enumerate() if t.name == "_V1CallbackThread"]
    assert workers
    for _ in range(5):
        time.sleep(0.1)
        frames = sys._current_frames()
        for worker in workers:
            frame = frames[worker.ident]
            assert frame.f_code.co_name == "_work"
            assert frame.f_lineno == frame.f_code.co_firstlineno + 4  # ready.get()


# --- rates ------------------------------------------------------------------------


def test_a_low_send_rate_blocks_the_sender(network, ports, restrict):
    restrict(loopsend=2000.0, connport=set(ports), messport=set(ports))
    drained = []

    def reader(remoteip, remoteport, sock, thishandle, listenhandle):
        try:
            while True:
                drained.append(len(sock.recv(10000)))
        except Exception:
            sock.close()

    network.waitforconn("127.0.0.1", ports[0], reader)
    sock = network.openconn("127.0.0.1", ports[0])
    started = time.monotonic()
    sent = 0
    while sent < 6000:
        sent += sock.send(b"y" * 1000)
    # 6000 bytes (plus overheads) at 2000 B/s with a one-second bucket.
    assert time.monotonic() - started >= 1.5
    sock.close()


def test_a_low_receive_rate_delays_delivery_to_callbacks(network, ports, restrict):
    restrict(looprecv=500.0, connport=set(ports), messport=set(ports))
    arrivals = []
    network.recvmess("127.0.0.1", ports[0], lambda *a: arrivals.append(time.monotonic()))
    started = time.monotonic()
    for _ in range(4):
        network.sendmess("127.0.0.1", ports[0], b"z" * 400)
    wait_until(lambda: len(arrivals) == 4)
    # (4 x (400 + 64) - 500) / 500 seconds at least.
    assert arrivals[-1] - started >= 2.5


# --- lookups ----------------------------------------------------------------------


def test_gethostbyname_ex_of_a_literal(network):
    assert network.gethostbyname_ex("127.0.0.1") == ("127.0.0.1", [], ["127.0.0.1"])


def test_gethostbyname_ex_needs_a_str(network):
    with pytest.raises(TypeError):
        network.gethostbyname_ex(b"127.0.0.1")


def test_getmyip_is_v2s_address_without_a_packet(network):
    try:
        expected = _repynet.NetworkAPI().getmyip()
    except errors.InternetConnectivityError:
        with pytest.raises(Exception, match="^Cannot detect a connection to the Internet.$"):
            network.getmyip()
    else:
        assert network.getmyip() == expected


def test_the_module_level_calls_are_a_bytes_network():
    assert v1.openconn.__self__ is v1.stopcomm.__self__
    assert set(v1.V1_NAMES) <= set(v1.__all__)


def test_an_uncaught_exception_in_a_callback_ends_the_process_with_1(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text(textwrap.dedent("""\
        import socket, time
        import repynet
        from repynet import v1
        def callback(*args):
            raise ValueError("boom in a callback")
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        repynet.set_restrictions(repynet.Restrictions.default().replace(messport={port}))
        v1.recvmess("127.0.0.1", port, callback)
        v1.sendmess("127.0.0.1", port, b"x")
        time.sleep(30)
        print("not reached")
        """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True,
                            timeout=HANG_GUARD)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().rstrip().splitlines()[-1] == "ValueError: boom in a callback"


@pytest.mark.parametrize("call", [
    lambda net, port: net.openconn(5, port),
    lambda net, port: net.openconn("127.0.0.1", port, 5, 0),
    lambda net, port: net.sendmess("127.0.0.1", port, 5),
    lambda net, port: net.sendmess(b"127.0.0.1", port, b"x"),
    lambda net, port: net.waitforconn(b"127.0.0.1", port, print),
    lambda net, port: net.gethostbyname_ex(None),
])
def test_wrong_argument_types_raise_type_error_and_leak_nothing(network, ports, call):
    with pytest.raises(TypeError):
        call(network, ports[0])
    assert usage("outsockets") == 0 and usage("insockets") == 0 and usage("events") == 0


def test_recv_of_a_non_int_raises_type_error(network, ports):
    echo_server(network, ports[0])
    sock = network.openconn("127.0.0.1", ports[0])
    with pytest.raises(TypeError):
        sock.recv("10")
    sock.close()


def test_recv_raises_socket_closed_on_a_reset(network, ports):
    server = socket.socket()
    server.bind(("127.0.0.1", ports[0]))
    server.listen()
    try:
        sock = network.openconn("127.0.0.1", ports[0])
        peer, _ = server.accept()
        # SO_LINGER 0: the close sends a reset.
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        threading.Timer(0.2, peer.close).start()
        with pytest.raises(Exception, match="^Socket closed$"):
            sock.recv(10)
        sock.close()
    finally:
        server.close()


def test_send_blocked_in_another_thread_wakes_when_the_socket_is_closed(network, ports):
    kept = []  # the server end stays open and never reads
    network.waitforconn("127.0.0.1", ports[0], lambda ip, port, s, handle, listener:
                        kept.append(s))
    sock = network.openconn("127.0.0.1", ports[0])
    outcome = []

    def blocked_writer():
        try:
            while True:
                sock.send(b"w" * 65536)
        except Exception as err:
            outcome.append(str(err))

    writer = threading.Thread(target=blocked_writer)
    writer.start()
    time.sleep(0.5)
    assert not outcome  # blocked: the peer reads nothing
    sock.close()
    writer.join(HANG_GUARD)
    assert outcome == ["Socket closed"]


def test_the_first_listener_waits_for_a_free_event(network, ports, restrict):
    # V1's selector took an event before it started: with none free, the
    # first waitforconn waits (in the kernel) until one comes back.
    restrict(events=1, connport=set(ports), messport=set(ports))
    gate = v1._process_gate
    gate.take()  # the only event, held elsewhere
    returned = []
    caller = threading.Thread(target=lambda: returned.append(
        (network.waitforconn("127.0.0.1", ports[0], lambda *a: None), time.monotonic())))
    caller.start()
    time.sleep(0.3)
    assert not returned
    given_back = time.monotonic()
    gate.give()
    caller.join(HANG_GUARD)
    handle, returned_at = returned[0]
    assert handle.startswith("_COMMH:") and returned_at >= given_back
    assert usage("events") == 1


@pytest.mark.slow
def test_a_thousand_callback_connections_echo_byte_exact(network, ports, restrict):
    # Load: 1,000 connections, each served by its own blocking callback,
    # 20 exchanges each, the client side a V1 socket too.
    count, rounds = 1000, 20
    restrict(events=count + 10, outsockets=2 * count + 10, connport=set(ports),
             messport=set(ports))

    def echo_until_closed(remoteip, remoteport, sock, thishandle, listenhandle):
        try:
            while True:
                sock.send(sock.recv(64))
        except Exception as err:
            assert str(err) == "Socket closed"
        sock.close()

    network.waitforconn("127.0.0.1", ports[0], echo_until_closed)
    clients = [network.openconn("127.0.0.1", ports[0]) for _ in range(count)]
    try:
        for round_number in range(rounds):
            for index, client in enumerate(clients):
                client.send(b"%04d:%04d" % (index, round_number))
            for index, client in enumerate(clients):
                expected = b"%04d:%04d" % (index, round_number)
                received = b""
                while len(received) < len(expected):
                    received += client.recv(len(expected) - len(received))
                assert received == expected
    finally:
        for client in clients:
            client.close()
