"""V1 callback dispatch against plain-Python equivalents: ``python bench/v1_dispatch.py``.

Three servers do the same work on 127.0.0.1:

- ``repynet``: repynet.v1 (recvmess / waitforconn callbacks driven by the C
  completion port, each callback on a Python thread holding an ``events``
  item; the restrictions give ``events`` of N + 10 and rates that do not
  throttle);
- ``selector``: plain Python, one ``selectors`` thread accepting and
  reading, each callback run on a worker thread (a thread per connection,
  as V1's handlers block on their socket);
- ``asyncio``: asyncio's protocol API (uvloop's loop when it is installed).

Rows (one fresh process per measurement, implementations interleaved in
each repetition, the median of ``--repeat`` reported):

- ``recvmess``: 64-byte datagrams per second delivered to a callback (the
  client keeps a window of 32 in flight);
- ``waitforconn``: connections per second handed to a callback, which
  closes them (a window of 4 connects in flight);
- ``pingpong_N``: 64-byte request/reply exchanges per second over N
  connections served by callbacks (N = 1, 100, 1000), and the cost of one
  message in microseconds.

Output: one ``name<TAB>value<TAB>unit`` line per row, including the ratio
of repynet to each equivalent (>= 1.0 means repynet is at least as fast).
The client side is the same plain-socket code for every server.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

IMPLS = ("repynet", "selector", "asyncio")
PINGPONG_SIZES = (1, 100, 1000)
MESSAGE = b"m" * 64
UDP_WINDOW = 32
CONNECT_WINDOW = 4
HANG_GUARD = 300.0


# --- the servers ---------------------------------------------------------------


class Counter:
    """Deliveries so far; the client waits on it."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def add(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, target: int) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.count >= target, HANG_GUARD):
                raise RuntimeError(f"only {self.count} of {target} deliveries")


def pingpong_handler(read: Callable[[int], bytes], write: Callable[[bytes], Any],
                     close: Callable[[], Any]) -> None:
    """A blocking echo loop (V1 style) until the client closes."""
    try:
        while True:
            data = read(64)
            if not data:
                break
            write(data)
    except Exception:  # noqa: BLE001 - V1 reports the end of the stream as Exception
        pass
    close()


def serve_repynet(kind: str, port: int, counter: Counter, connections: int) -> Callable[[], None]:
    import repynet
    from repynet import v1

    repynet.set_restrictions(repynet.Restrictions.default().replace(
        events=connections + 10, insockets=10, outsockets=connections + 10,
        loopsend=1e12, looprecv=1e12, connport={port}, messport={port}))
    network = v1.V1Network(text=False)
    if kind == "recvmess":
        network.recvmess("127.0.0.1", port, lambda ip, p, message, handle: counter.add())
    elif kind == "waitforconn":
        def on_connection(ip: str, p: int, sock: Any, handle: str, listener: str) -> None:
            sock.close()
            counter.add()
        network.waitforconn("127.0.0.1", port, on_connection)
    else:
        network.waitforconn("127.0.0.1", port, lambda ip, p, sock, handle, listener:
                            pingpong_handler(sock.recv, sock.send, sock.close))
    return network.close_all


def serve_selector(kind: str, port: int, counter: Counter,
                   connections: int) -> Callable[[], None]:
    """One selector thread; each callback on a worker thread."""
    listener = socket.socket(socket.AF_INET,
                             socket.SOCK_DGRAM if kind == "recvmess" else socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    if kind != "recvmess":
        listener.listen(128)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    stopping = threading.Event()
    # A worker per connection at most (a ping-pong handler holds its worker).
    workers = concurrent.futures.ThreadPoolExecutor(max_workers=connections + 4)

    def run_callback(callback: Callable[..., None], *args: Any) -> None:
        workers.submit(callback, *args)

    def on_message(data: bytes, address: Any) -> None:
        counter.add()

    def on_connection(conn: socket.socket) -> None:
        conn.setblocking(True)
        if kind == "waitforconn":
            conn.close()
            counter.add()
        else:
            pingpong_handler(conn.recv, conn.send, conn.close)

    def select_loop() -> None:
        while not stopping.is_set():
            for _key, _events in selector.select(0.5):
                try:
                    if kind == "recvmess":
                        data, address = listener.recvfrom(65535)
                        run_callback(on_message, data, address)
                    else:
                        conn, _address = listener.accept()
                        run_callback(on_connection, conn)
                except BlockingIOError:
                    pass

    thread = threading.Thread(target=select_loop, daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join()
        workers.shutdown(wait=True)
        selector.close()
        listener.close()

    return stop


def serve_asyncio(kind: str, port: int, counter: Counter,
                  connections: int) -> Callable[[], None]:
    import asyncio

    try:
        import uvloop  # type: ignore[import-not-found]
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()

    class Datagrams(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            counter.add()

    class Stream(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            if kind == "waitforconn":
                transport.close()
                counter.add()

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    ready = threading.Event()
    closers: list[Any] = []

    async def start() -> None:
        if kind == "recvmess":
            transport, _ = await loop.create_datagram_endpoint(
                Datagrams, local_addr=("127.0.0.1", port))
            closers.append(transport)
        else:
            closers.append(await loop.create_server(Stream, "127.0.0.1", port, backlog=128))
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()),
                                              loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(HANG_GUARD)

    def stop() -> None:
        def close_all() -> None:
            for closer in closers:
                closer.close()
            loop.stop()
        loop.call_soon_threadsafe(close_all)
        thread.join()

    return stop


SERVERS = {"repynet": serve_repynet, "selector": serve_selector, "asyncio": serve_asyncio}


# --- the clients (the same for every server) ------------------------------------


def client_recvmess(port: int, counter: Counter, count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for sent in range(1, count + 1):
            if sent > UDP_WINDOW:
                counter.wait_for(sent - UDP_WINDOW)
            sender.sendto(MESSAGE, ("127.0.0.1", port))
    counter.wait_for(count)


def client_waitforconn(port: int, counter: Counter, count: int) -> None:
    for opened in range(1, count + 1):
        if opened > CONNECT_WINDOW:
            counter.wait_for(opened - CONNECT_WINDOW)
        with socket.create_connection(("127.0.0.1", port)):
            pass
    counter.wait_for(count)


def client_pingpong(port: int, connections: int, rounds: int) -> float:
    """Seconds for ``rounds`` exchanges on each connection (after set-up and
    one untimed round)."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    try:
        for sock in socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            selector.register(sock, selectors.EVENT_READ)
        started = 0.0
        for round_number in range(rounds + 1):
            if round_number == 1:
                started = time.perf_counter()
            for sock in socks:
                sock.sendall(MESSAGE)
            pending = {sock: len(MESSAGE) for sock in socks}
            while pending:
                for key, _events in selector.select(HANG_GUARD):
                    sock = key.fileobj  # type: ignore[assignment]
                    left = pending[sock] - len(sock.recv(pending[sock]))
                    if left == 0:
                        del pending[sock]
                    else:
                        pending[sock] = left
        return time.perf_counter() - started
    finally:
        selector.close()
        for sock in socks:
            sock.close()


def measure(kind: str, impl: str, connections: int, count: int) -> float:
    """Deliveries (or exchanges) per second of one run in this process."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    counter = Counter()
    stop = SERVERS[impl](kind, port, counter, connections)
    try:
        if kind == "pingpong":
            rounds = max(1, count // connections)
            return rounds * connections / client_pingpong(port, connections, rounds)
        started = time.perf_counter()
        if kind == "recvmess":
            client_recvmess(port, counter, count)
        else:
            client_waitforconn(port, counter, count)
        return count / (time.perf_counter() - started)
    finally:
        stop()


# --- the harness -----------------------------------------------------------------


def cases(scale: float) -> list[tuple[str, int, int]]:
    """(row name, connections, count) for each row."""
    rows = [("recvmess", 1, int(20000 * scale)), ("waitforconn", 1, int(2000 * scale))]
    rows += [(f"pingpong_{n}", n, int(20000 * scale)) for n in PINGPONG_SIZES]
    return [(name, n, max(count, n, 1)) for name, n, count in rows]


def run_one(name: str, impl: str, connections: int, count: int) -> float:
    kind = name.split("_")[0]
    command = [sys.executable, __file__, "--one", kind, impl, str(connections), str(count)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD)
    if result.returncode != 0:
        raise RuntimeError(f"{name} {impl} failed:\n{result.stderr}")
    return float(json.loads(result.stdout))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every count (0.01 for a smoke run)")
    parser.add_argument("--rows", nargs="*", help="only these rows (e.g. pingpong_100)")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "IMPL", "N", "COUNT"),
                        help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.one:
        kind, impl, connections, count = options.one
        print(json.dumps(measure(kind, impl, int(connections), int(count))))
        return 0
    per_message: dict[int, float] = {}
    for name, connections, count in cases(options.scale):
        if options.rows and name not in options.rows:
            continue
        samples: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        for repetition in range(options.repeat):
            order = IMPLS if repetition % 2 == 0 else tuple(reversed(IMPLS))
            for impl in order:
                samples[impl].append(run_one(name, impl, connections, count))
        medians = {impl: statistics.median(values) for impl, values in samples.items()}
        unit = "msg/s" if name != "waitforconn" else "conn/s"
        for impl in IMPLS:
            print(f"v1.{name}.{impl}\t{medians[impl]:.0f}\t{unit}", flush=True)
        for impl in IMPLS[1:]:
            print(f"v1.{name}.repynet_vs_{impl}\t{medians['repynet'] / medians[impl]:.2f}\tratio",
                  flush=True)
        if name.startswith("pingpong_"):
            per_message[connections] = 1e6 / medians["repynet"]
            print(f"v1.{name}.repynet_cost\t{per_message[connections]:.1f}\tus/msg", flush=True)
    if 100 in per_message and 1000 in per_message:
        print(f"v1.pingpong.cost_1000_vs_100\t{per_message[1000] / per_message[100]:.2f}\tratio")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
