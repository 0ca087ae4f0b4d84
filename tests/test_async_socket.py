"""Integration tests of the async socket layer over real loopback sockets.

The private types ``CompletionQueue`` and ``AsyncSocket`` of
``repynet._repynet`` drive the C completion port (csrc/rn_port.c) and async
socket (csrc/rn_asock.c).  Every socket is on 127.0.0.1 or ::1 with an
ephemeral port.  Waits only guard against hangs ("no progress for a long
time"); no test asserts how fast anything happened.
"""

import asyncio
import errno
import gc
import inspect
import os
import resource
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from repynet import _repynet as native

OK = native.ASYNC_RESULT_OK
ERROR = native.ASYNC_RESULT_ERROR
ABANDONED = native.ASYNC_RESULT_ABANDONED
# A hang guard, not a performance bound: fail only after this long with no
# progress at all.
NO_PROGRESS_S = 60.0


def tcp_pair(host="127.0.0.1", sndbuf=None, rcvbuf=None):
    """(client, server): a connected TCP pair on loopback, port 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        client = socket.socket(family, socket.SOCK_STREAM)
        if sndbuf:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        client.connect(listener.getsockname()[:2])
        server, _ = listener.accept()
    if rcvbuf:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def collect(queue, count):
    """Drains until count completions arrived; returns them in order."""
    got = []
    last_progress = time.monotonic()
    while len(got) < count:
        if queue.wait(1.0):
            batch = queue.drain()
            if batch:
                got += batch
                last_progress = time.monotonic()
        if time.monotonic() - last_progress > NO_PROGRESS_S:
            pytest.fail(f"hang: {len(got)} of {count} completions, then nothing")
    return got


@pytest.fixture
def queue():
    q = native.CompletionQueue()
    yield q
    q.drain()


def wrap(sock, queue):
    """An AsyncSocket owning sock's fd (detached, so Python cannot close it)."""
    return native.AsyncSocket(sock.detach(), queue)


@pytest.fixture
def async_pair(queue):
    """async_pair(host, sndbuf, rcvbuf) -> (s, server): tcp_pair's client end
    wrapped on ``queue``, and its server end; both closed after the test
    (closing twice is harmless, so a test may close them itself)."""
    made = []

    def connect(host="127.0.0.1", sndbuf=None, rcvbuf=None):
        client, server = tcp_pair(host, sndbuf, rcvbuf)
        made.append(server)
        s = wrap(client, queue)
        made.append(s)
        return s, server

    yield connect
    for sock in reversed(made):
        sock.close()


# --- basics ------------------------------------------------------------------


def test_send_and_receive_round_trip(family, queue, async_pair):
    s, server = async_pair(family)
    buf = s.receive_async(16, "r")
    s.send_async(b"ping", "s")
    assert server.recv(4) == b"ping"
    server.sendall(b"pong")
    done = dict((tok, (res, n)) for tok, res, n in collect(queue, 2))
    assert done == {"s": (OK, 4), "r": (OK, 4)}
    assert bytes(buf[:4]) == b"pong"


def test_queue_fileno_is_an_eventfd_readable_while_completions_wait(queue, async_pair):
    s, server = async_pair()
    assert not queue.wait(0)
    s.send_async(b"x", 1)  # completes inline
    assert queue.wait(0)
    assert "eventfd" in os.readlink(f"/proc/self/fd/{queue.fileno()}")
    assert queue.drain() == [(1, OK, 1)]
    assert not queue.wait(0)


def test_receive_into_caller_buffer_keeps_export_until_drained(queue, async_pair):
    """The Python buffer stays exported (cannot be resized) until the
    completion was delivered by drain()."""
    s, server = async_pair()
    target = bytearray(8)
    assert s.receive_async(target, "r") is target
    with pytest.raises(BufferError):
        target.extend(b"more")
    server.sendall(b"abc")
    assert collect(queue, 1) == [("r", OK, 3)]
    target.extend(b"more")  # released by drain
    assert bytes(target[:3]) == b"abc"


def test_errors_raise_synchronously(queue, async_pair):
    s, server = async_pair()
    with pytest.raises(ValueError):
        s.send_async(b"", 1)
    with pytest.raises(TypeError):
        s.send_async("text", 1)
    with pytest.raises(BufferError):
        s.receive_async(b"read-only", 1)
    s.close()
    with pytest.raises(ConnectionAbortedError):
        s.send_async(b"late", 1)
    with pytest.raises(OSError):
        s.receive_async(4, 1)
    assert s.fileno() == -1
    assert queue.drain() == []


# --- the scenarios of issue 4 ---------------------------------------------------


def test_16_mib_through_a_slow_reader_is_byte_exact_and_ordered(queue, async_pair):
    """P5, P6, P8: backpressure (small buffers, slow reader) makes most sends
    wait for EPOLLOUT; the stream still arrives complete and in order and the
    completions come back in call order."""
    total = 16 * 1024 * 1024
    chunk = 64 * 1024
    data = os.urandom(total)
    s, server = async_pair(sndbuf=32 * 1024, rcvbuf=32 * 1024)
    received = bytearray()

    def slow_reader():
        reads = 0
        while len(received) < total:
            part = server.recv(65536)
            if not part:
                break
            received.extend(part)
            reads += 1
            if reads % 32 == 0:
                time.sleep(0.001)

    reader = threading.Thread(target=slow_reader)
    view = memoryview(data)
    for i in range(total // chunk):
        s.send_async(view[i * chunk:(i + 1) * chunk], i)
    reader.start()
    done = collect(queue, total // chunk)
    reader.join()
    assert [tok for tok, _, _ in done] == list(range(total // chunk))
    assert all(res == OK and n == chunk for _, res, n in done)
    assert len(received) == total
    assert received == data
    view.release()


def test_send_and_receive_outstanding_at_once(queue, async_pair):
    """P3: a receive waits while a large send waits for EPOLLOUT; neither
    replaces the other (full duplex)."""
    s, server = async_pair(sndbuf=16 * 1024, rcvbuf=16 * 1024)
    buf = s.receive_async(64, "recv")
    big = os.urandom(4 * 1024 * 1024)
    s.send_async(big, "send")
    assert not queue.wait(0.05)  # the send is stuck behind a full socket
    server.sendall(b"meanwhile")
    assert collect(queue, 1) == [("recv", OK, 9)]
    assert bytes(buf[:9]) == b"meanwhile"
    got = bytearray()
    while len(got) < len(big):
        got += server.recv(1 << 20)
    assert collect(queue, 1) == [("send", OK, len(big))]
    assert got == big


def test_data_and_fin_are_delivered_before_abandoned(family, queue):
    """P9: bytes followed by FIN arrive OK; only the next receive is
    ABANDONED (end of stream)."""
    client, server = tcp_pair(family)
    server.sendall(b"last words")
    server.close()
    time.sleep(0.05)  # let data and FIN both be queued before we arm
    s = wrap(client, queue)
    buf = s.receive_async(64, 1)
    assert collect(queue, 1) == [(1, OK, 10)]
    assert bytes(buf[:10]) == b"last words"
    s.receive_async(64, 2)
    assert collect(queue, 1) == [(2, ABANDONED, 0)]
    s.close()


def test_refusals_carry_their_errno(queue, async_pair):
    """A refused operation's OSError names why in its errno: a send to a
    closed async socket is abandoned (ConnectionAbortedError) and both
    calls say the socket is not connected."""
    s, _server = async_pair()
    s.close()
    with pytest.raises(ConnectionAbortedError) as refused_send:
        s.send_async(b"late", 1)
    assert refused_send.value.errno == errno.ENOTCONN
    with pytest.raises(OSError) as refused_receive:
        s.receive_async(4, 1)
    assert refused_receive.value.errno == errno.ENOTCONN
    assert queue.drain() == []


def test_peer_reset_abandons_receive_and_send(queue, async_pair):
    s, server = async_pair()
    s.receive_async(64, "r")
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # RST
    assert collect(queue, 1) == [("r", ABANDONED, 0)]
    # Writing to a reset connection is abandoned too (and raises no SIGPIPE).
    with pytest.raises(ConnectionAbortedError):
        for _ in range(100):
            s.send_async(b"x" * 1024, "s")
            time.sleep(0.001)
    for tok, res, _ in queue.drain():
        assert tok == "s" and res == OK


def test_close_from_another_thread_with_operations_pending(queue, async_pair):
    """Pending receives and a send stuck on backpressure all complete
    ABANDONED when another thread closes the socket (the GIL is released
    while close waits)."""
    s, server = async_pair(sndbuf=16 * 1024, rcvbuf=16 * 1024)
    for i in range(5):
        s.receive_async(16, ("recv", i))
    s.send_async(os.urandom(8 * 1024 * 1024), ("send", 0))
    s.send_async(b"queued behind", ("send", 1))
    assert not queue.wait(0.05)
    closer = threading.Thread(target=s.close)
    closer.start()
    done = collect(queue, 7)
    closer.join()
    assert sorted(tok for tok, _, _ in done) == sorted(
        [("recv", i) for i in range(5)] + [("send", 0), ("send", 1)])
    assert all(res == ABANDONED for _, res, _ in done)
    # Per kind, in the order they were started (P13).
    assert [t for t, _, _ in done if t[0] == "recv"] == [("recv", i) for i in range(5)]
    assert [t for t, _, _ in done if t[0] == "send"] == [("send", 0), ("send", 1)]


def test_one_thousand_sockets(queue):
    """1,000 connections on the one completion port: each async socket sends
    and receives once."""
    n = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * n + 100
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} fds, the limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    pairs = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            for _ in range(n):
                client = socket.create_connection(listener.getsockname())
                server, _ = listener.accept()
                pairs.append((wrap(client, queue), server))
        bufs = []
        for i, (s, _server) in enumerate(pairs):
            bufs.append(s.receive_async(8, ("r", i)))
            s.send_async(struct.pack("!I", i), ("s", i))
        for i, (_, server) in enumerate(pairs):
            assert server.recv(4) == struct.pack("!I", i)
            server.sendall(struct.pack("!I", n - i))
        done = collect(queue, 2 * n)
        assert all(res == OK for _, res, _ in done)
        assert {tok for tok, _, _ in done} == {(k, i) for k in "rs" for i in range(n)}
        for i, buf in enumerate(bufs):
            assert bytes(buf[:4]) == struct.pack("!I", n - i)
    finally:
        for s, server in pairs:
            s.close()
            server.close()
        queue.drain()
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_asyncio_loop_drains_through_add_reader(queue, async_pair):
    """fileno() plugs into asyncio: the loop thread drains and resolves."""
    s, server = async_pair()

    async def main():
        loop = asyncio.get_running_loop()
        futures = {}

        def on_ready():
            for token, result, nbytes in queue.drain():
                futures.pop(token).set_result((result, nbytes))

        loop.add_reader(queue.fileno(), on_ready)
        try:
            future = futures["r"] = loop.create_future()
            buf = s.receive_async(16, "r")
            await loop.run_in_executor(None, server.sendall, b"via asyncio")
            assert await future == (OK, 11)
            assert bytes(buf[:11]) == b"via asyncio"
        finally:
            loop.remove_reader(queue.fileno())

    asyncio.run(main())


def test_send_async_does_not_leak_on_churn(queue):
    """P12 at the Python level: objects and buffers go away after drain."""
    for _ in range(200):
        client, server = tcp_pair()
        s = wrap(client, queue)
        s.receive_async(4, "r")
        s.send_async(b"abcd", "s")
        s.close()
        collect(queue, 2)
        del s
        server.close()
    assert native._live_objects()["async_socket"] == 0


def _fd_target(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        return None


def test_dropped_socket_with_pending_operations_is_closed_and_completes_abandoned(queue):
    """No reference left and the peer silent: the socket is closed at once,
    its fd freed, and the pending receives (and a stuck send) complete
    ABANDONED into the queue, which keeps their buffers until drained."""
    client, server = tcp_pair(sndbuf=16384)
    s = wrap(client, queue)
    fd = s.fileno()
    target = _fd_target(fd)
    bufs = [s.receive_async(16, ("r", i)) for i in range(2)]
    s.send_async(os.urandom(8 << 20), "stuck")  # nobody reads: stays pending
    del s
    gc.collect()
    assert native._live_objects()["async_socket"] == 0
    assert _fd_target(fd) != target  # closed (the number may be reused)
    done = collect(queue, 3)
    assert {tok for tok, _, _ in done} == {("r", 0), ("r", 1), "stuck"}
    assert all(res == ABANDONED and n == 0 for _, res, n in done)
    assert [len(b) for b in bufs] == [16, 16]
    server.close()


def test_dropped_queue_and_socket_in_a_cycle_are_collected():
    """A token that refers back to the queue makes a cycle through a
    completed record; the GC reclaims it, and the socket's fd is freed."""
    q = native.CompletionQueue()
    client, server = tcp_pair()
    s = wrap(client, q)
    s.receive_async(16, q)  # the token is the queue itself
    del s
    del q
    gc.collect()
    assert native._live_objects()["async_socket"] == 0
    assert native._live_objects()["completion_queue"] == 0
    server.close()


# --- process lifetime --------------------------------------------------------


def run_script(body):
    script = textwrap.dedent(body)
    # The child inherits PYTHONPATH from conftest's children_import_this_repynet.
    # A hang guard for the child process, not a bound on its speed.
    return subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120)


def test_child_processes_import_the_repynet_this_process_imported():
    """Run from an installed wheel, a child must not pick up the source tree."""
    import repynet

    result = run_script("import repynet, repynet._repynet as n; "
                        "print(repynet.__file__); print(n.__file__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [repynet.__file__, native.__file__]


# The child scripts use this module's tcp_pair, by its source.
PRELUDE = """
import os, socket, threading, time
from repynet import _repynet as native

""" + inspect.getsource(tcp_pair)


def test_interpreter_exit_with_sockets_open_does_not_hang():
    result = run_script(PRELUDE + """
q = native.CompletionQueue()
client, server = tcp_pair()
client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
s = native.AsyncSocket(client.detach(), q)
for i in range(3):
    s.receive_async(16, i)
s.send_async(os.urandom(8 << 20), "big")   # stuck: nobody reads
waiter = threading.Thread(target=q.wait, args=(None,), daemon=True)
waiter.start()
print("exiting", flush=True)
""")
    assert result.returncode == 0, result.stderr
    assert "exiting" in result.stdout


# GCC 12's ASan allocator is not fork-safe: a child can inherit one of its
# mutexes held by another thread's free() and hang on its first malloc
# (google/sanitizers#836).  The plain build runs this test.
@pytest.mark.skipif(bool(os.environ.get("REPYNET_SANITIZE")),
                    reason="the sanitizer allocator deadlocks after fork in threaded "
                           "processes (google/sanitizers#836)")
def test_fork_in_a_process_that_used_the_port():
    result = run_script(PRELUDE + """
q = native.CompletionQueue()
client, server = tcp_pair()
s = native.AsyncSocket(client.detach(), q)
s.send_async(b"before", 0)
assert q.drain() == [(0, native.ASYNC_RESULT_OK, 6)]
parent_fds = native._port_fds()
assert len(parent_fds) == 2
pid = os.fork()
if pid == 0:
    try:
        # The inherited socket cannot wait on the parent's port.
        try:
            s.receive_async(4, "old")
            os._exit(3)
        except OSError:
            pass
        # A new port for the child; sockets made here work normally.
        q2 = native.CompletionQueue()
        c2, s2 = tcp_pair()
        a2 = native.AsyncSocket(c2.detach(), q2)
        buf = a2.receive_async(8, "r")
        a2.send_async(b"child", "s")
        assert s2.recv(5) == b"child"
        s2.sendall(b"hello")
        got = []
        while len(got) < 2:
            q2.wait(5)
            got += q2.drain()
        assert sorted(got) == [("r", 0, 5), ("s", 0, 5)], got
        assert bytes(buf[:5]) == b"hello"
        assert len(native._port_fds()) == 2
        a2.close()
        s.close()
        os._exit(0)
    except BaseException as exc:
        print("child failed:", repr(exc), flush=True)
        os._exit(1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
# The parent's port still works after the child is gone.
assert native._port_fds() == parent_fds
buf = s.receive_async(8, "after")
server.sendall(b"parent")
assert q.wait(30)
assert q.drain() == [("after", native.ASYNC_RESULT_OK, 6)]
assert bytes(buf[:6]) == b"parent"
s.close()
print("ok", flush=True)
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout


# The sanitizer allocator is not fork-safe either (see above).
@pytest.mark.skipif(bool(os.environ.get("REPYNET_SANITIZE")),
                    reason="the sanitizer allocator deadlocks after fork in threaded "
                           "processes (google/sanitizers#836)")
def test_children_forked_during_traffic_exit():
    """Forks while the port's worker is inside socket and queue mutexes:
    every child touches the inherited queue and sockets, then exits
    normally (the atexit handler closes them); none may hang."""
    result = run_script(PRELUDE + """
import sys
q = native.CompletionQueue()
pairs = []
for i in range(8):
    client, server = tcp_pair()
    server.setblocking(False)
    pairs.append((native.AsyncSocket(client.detach(), q), server))
stop = threading.Event()
# Big transfers keep the worker inside the socket mutexes (recvmsg and
# sendmsg copy under them) for much of the time.
CHUNK = b"x" * (1 << 20)

def peer():
    while not stop.is_set():
        for _, server in pairs:
            try:
                server.send(CHUNK)
                server.recv(1 << 20)
            except BlockingIOError:
                pass

def driver():
    for i, (a, _) in enumerate(pairs):
        a.receive_async(1 << 20, ("r", i))
        a.send_async(CHUNK, ("s", i))
    while not stop.is_set():
        if q.wait(0.1):
            for (kind, i), result, _ in q.drain():
                if result != native.ASYNC_RESULT_OK:
                    continue
                a = pairs[i][0]
                if kind == "r":
                    a.receive_async(1 << 20, (kind, i))
                else:
                    a.send_async(CHUNK, (kind, i))

threads = [threading.Thread(target=peer, daemon=True),
           threading.Thread(target=driver, daemon=True)]
for t in threads:
    t.start()
children = []
for k in range(40):
    time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        q.drain()
        q.wait(0)
        pairs[k % 8][0].close()
        sys.exit(0)
    children.append(pid)
hung = 0
# A hang guard for all the children together, not a bound on speed.
deadline = time.monotonic() + 60
for pid in children:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, status
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            hung += 1
            break
        time.sleep(0.05)
stop.set()
for t in threads:
    t.join()
for a, server in pairs:
    a.close()
    server.close()
q.drain()
print("hung", hung, flush=True)
""")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hung 0" in result.stdout, result.stdout
