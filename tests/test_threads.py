"""Threads and the GIL (D32): hand-over at would-block, fairness, fd lifetime.

These tests run with a switch interval of 100 s, so CPython never forces a
thread switch on its own: every hand-over they see is one repynet made.
"""

import os
import platform
import subprocess
import sys
import threading
import time

import pytest

import repynet
from repynet import errors

LO = "127.0.0.1"
PORTS = set(range(63300, 63400))
WOULD_BLOCK = errors.SocketWouldBlockError


def _port(n):
    return 63300 + n


@pytest.fixture(autouse=True)
def ports(restrict):
    """Allow this file's ports (63300-63399) on top of the defaults."""
    default = repynet.Restrictions.default()
    restrict(connport=set(default["connport"]) | PORTS,
             messport=set(default["messport"]) | PORTS)


@pytest.fixture
def no_forced_switches():
    previous = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def pair(connect_pair):
    return connect_pair(_port(0), _port(1))


def _run(target):
    errors_seen = []

    def guarded():
        try:
            target()
        except BaseException as exc:  # reported by the test thread
            errors_seen.append(exc)

    thread = threading.Thread(target=guarded)
    thread.start()
    return thread, errors_seen


# --- hand-over (spec D32) --------------------------------------------------------


def test_busy_retry_ping_pong_hands_the_gil_over_at_would_block(pair, no_forced_switches):
    client, accepted, _server = pair
    rounds = 200
    # Without a hand-over the spinning thread keeps the GIL for good: bound
    # the spins so that such a failure ends instead of hanging.
    spin_limit = 2_000_000

    def echo():
        spins = 0
        for _ in range(rounds):
            while True:
                try:
                    data = accepted.recv(64)
                    break
                except WOULD_BLOCK:
                    spins += 1
                    if spins > spin_limit:
                        return
            accepted.send(data)

    thread, failures = _run(echo)
    done = 0
    spins = 0
    for i in range(rounds):
        client.send(b"%05d" % i)
        reply = None
        while reply is None and spins <= spin_limit:
            try:
                reply = client.recv(64)
            except WOULD_BLOCK:
                spins += 1
        if reply != b"%05d" % i:
            break
        done += 1
    thread.join()
    assert not failures
    assert done == rounds


def test_a_read_after_one_that_waited_returns_data_already_there(pair):
    # With another thread alive, a recv that found nothing makes the next
    # one's first attempt with the GIL released (while a CPU is free):
    # data that is already there must come back from it, whole and once.
    client, accepted, _server = pair
    idle = threading.Event()
    thread = threading.Thread(target=idle.wait)
    thread.start()
    try:
        for round_number in range(20):
            with pytest.raises(WOULD_BLOCK):
                accepted.recv(64)
            message = b"round %02d" % round_number
            # Loopback queues the data on the peer within the send.
            assert client.send(message) == len(message)
            assert accepted.recv(64) == message
    finally:
        idle.set()
        thread.join()


@pytest.fixture
def busy_machine():
    """More busy processes than CPUs, each running (or waiting for a CPU)
    from the moment this fixture returns until the test ends."""
    cpus = os.cpu_count() or 1
    code = "print('busy', flush=True)\nwhile True: pass"
    busy = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
            for _ in range(cpus + 1)]
    try:
        for process in busy:
            assert process.stdout.readline() == b"busy\n"
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()
            process.stdout.close()


def test_waits_do_not_spin_while_other_processes_keep_every_cpu_busy(busy_machine):
    # A spinner would take a CPU that another process wants.
    assert repynet._repynet._spin_judgement() is False


@pytest.mark.parametrize("machine", ["idle", "busy"])
def test_a_sender_that_never_blocks_does_not_starve_the_receiver(machine, request,
                                                                  no_forced_switches):
    if machine == "busy":
        # The hand-over then sleeps until the receiver has taken the GIL,
        # rather than yielding the CPU to the busy processes.
        request.getfixturevalue("busy_machine")
        assert repynet._repynet._spin_judgement() is False
    listener = repynet.listenformessage(LO, _port(2))
    received = []
    stop = threading.Event()

    def receive():
        while not stop.is_set():
            try:
                received.append(listener.getmessage()[2])
            except WOULD_BLOCK:
                pass

    thread, failures = _run(receive)
    sent = 5000
    try:
        for i in range(sent):
            repynet.sendmessage(LO, _port(2), b"%06d" % i, LO, _port(3))
    finally:
        time.sleep(0.1)
        stop.set()
        thread.join()
        listener.close()
    assert not failures
    # The receiver runs only when the sender hands it the GIL; the
    # benchmark reports the real share (docs/design-core.md).
    assert len(received) >= sent // 2
    assert received == sorted(received)


# --- fd lifetime (spec D32) ----------------------------------------------------------

_PPOLL = {"x86_64": 271, "aarch64": 73}.get(platform.machine())


def _in_ppoll(native_id):
    try:
        with open(f"/proc/self/task/{native_id}/syscall") as f:
            return f.read().split()[0] == str(_PPOLL)
    except (OSError, IndexError):
        return False


def _close_during_call(setup, expected, accept, attempts=20):
    """Calls a method in a thread until it raises and closes its socket from
    this thread, aiming at the moment the call waits in the kernel.  setup()
    gives (call, close, cleanup) for a fresh socket; the call must raise
    expected every time, and at least one close must hit a waiting call."""
    hits = 0
    for _ in range(attempts):
        call, close, cleanup = setup()
        outcome = []
        started = threading.Event()

        def caller(call=call, outcome=outcome, started=started):
            started.set()
            while True:
                try:
                    call()
                except WOULD_BLOCK:
                    continue
                except BaseException as exc:
                    outcome.append(exc)
                    return

        thread = threading.Thread(target=caller)
        thread.start()
        started.wait()
        # An idle socket stops waiting after a few milliseconds.
        deadline = time.monotonic() + 0.005
        hit = False
        while not hit and time.monotonic() < deadline:
            hit = _in_ppoll(thread.native_id)
        close()
        # The fd of the closed socket must stay open until the call is out
        # of the kernel: a socket made now must not get its number.
        _check_untouched(accept)
        thread.join()
        cleanup()
        assert len(outcome) == 1
        assert isinstance(outcome[0], expected), repr(outcome[0])
        hits += hit
        if hits >= 3:
            break
    assert hits > 0


def _check_untouched(accept):
    """Opens a new connection (its fds would take the numbers of any fd
    closed too early) and checks that data through it arrives intact."""
    server = repynet.listenforconnection(LO, _port(10))
    client = repynet.openconnection(LO, _port(10), LO, _port(11), 5)
    accepted = accept(server)
    try:
        client.send(b"untouched")
        data = b""
        for _ in range(2000):
            try:
                data += accepted.recv(100)
            except WOULD_BLOCK:
                time.sleep(0.001)
            if len(data) >= 9:
                break
        assert data == b"untouched"
    finally:
        client.close()
        accepted.close()
        server.close()


def _tcp_setup(accept, fill=False):
    server = repynet.listenforconnection(LO, _port(0))
    client = repynet.openconnection(LO, _port(0), LO, _port(1), 5)
    accepted = accept(server)
    chunk = b"x" * 65536
    if fill:
        while True:
            try:
                client.send(chunk)
            except WOULD_BLOCK:
                break

    def cleanup():
        accepted.close()
        server.close()

    if fill:
        return (lambda: client.send(chunk)), client.close, cleanup
    return (lambda: client.recv(10)), client.close, cleanup


needs_ppoll = pytest.mark.skipif(_PPOLL is None, reason="ppoll's syscall number unknown here")


@needs_ppoll
@pytest.mark.parametrize("fill", [False, True], ids=["recv", "send"])
def test_close_during_recv_or_send_raises_closed_local_and_keeps_the_fd(accept, fill):
    _close_during_call(lambda: _tcp_setup(accept, fill), errors.SocketClosedLocal, accept)


@needs_ppoll
@pytest.mark.parametrize("method", ["getconnection", "getmessage"])
def test_close_during_a_listener_call_raises_closed_local_and_keeps_the_fd(accept, method):
    def setup():
        listener = (repynet.listenforconnection(LO, _port(4)) if method == "getconnection"
                    else repynet.listenformessage(LO, _port(5)))
        return getattr(listener, method), listener.close, lambda: None

    _close_during_call(setup, errors.SocketClosedLocal, accept)


def test_close_of_the_listener_during_sendmessage_from_its_pair(accept):
    listener = repynet.listenformessage(LO, _port(6))
    target = repynet.listenformessage(LO, _port(7))
    sent = []
    stop = threading.Event()

    def sender():
        while not stop.is_set():
            sent.append(repynet.sendmessage(LO, _port(7), b"ping", LO, _port(6)))

    def receiver():
        # Often waits to take the GIL back from the sender, which then
        # sends with the GIL released (while CPUs are free).
        while not stop.is_set():
            try:
                target.getmessage()
            except WOULD_BLOCK:
                pass

    thread, failures = _run(sender)
    receiving, receive_failures = _run(receiver)
    time.sleep(0.05)
    listener.close()
    _check_untouched(accept)
    time.sleep(0.05)
    stop.set()
    thread.join()
    receiving.join()
    target.close()
    # Sends before the close went through the listener, later ones through
    # a socket of their own on the same pair: all succeed.
    assert not failures and not receive_failures
    assert sent and set(sent) == {4}


# --- stacks ---------------------------------------------------------------------------


def test_recv_and_getmessage_work_in_a_thread_with_a_small_stack():
    # A crash would end the interpreter: run it in a child process.
    script = f"""
import threading, time
import repynet
from repynet import errors
LO = {LO!r}
r = repynet.Restrictions.default()
repynet.set_restrictions(r.replace(connport=set(r["connport"]) | {{{_port(20)}, {_port(21)}}},
                                   messport=set(r["messport"]) | {{{_port(22)}, {_port(23)}}}))
results = []
def work():
    srv = repynet.listenforconnection(LO, {_port(20)})
    cli = repynet.openconnection(LO, {_port(20)}, LO, {_port(21)}, 5)
    while True:
        try:
            acc = srv.getconnection()[2]; break
        except errors.SocketWouldBlockError:
            time.sleep(0.001)
    cli.send(b"z" * 5000)
    data = b""
    while len(data) < 5000:
        try:
            data += acc.recv(100 if data else 100000)
        except errors.SocketWouldBlockError:
            time.sleep(0.001)
    udp = repynet.listenformessage(LO, {_port(22)})
    repynet.sendmessage(LO, {_port(22)}, b"m" * 9000, LO, {_port(23)})
    while True:
        try:
            message = udp.getmessage()[2]; break
        except errors.SocketWouldBlockError:
            time.sleep(0.001)
    results.append((len(data), len(message)))
    for s in (cli, acc, srv, udp):
        s.close()
for size in (65536, 32768):  # 32 KiB is the smallest Python allows
    threading.stack_size(size)
    t = threading.Thread(target=work)
    t.start()
    t.join()
print(results)
"""
    root = os.path.dirname(os.path.dirname(repynet.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *sys.path]))
    done = subprocess.run([sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(5000, 9000), (5000, 9000)]"
