"""One benchmark measurement, in this process: ``python bench/cases.py CASE IMPL FAMILY``.

IMPL is ``repynet`` (the V2 API, bytes mode) or ``raw`` (the Python ``socket``
module used the Repy way: non-blocking sockets, a retry on BlockingIOError).
FAMILY is ``ipv4`` (127.0.0.1) or ``ipv6`` (::1); nothing else is ever
addressed.  The result is one JSON object on stdout.  ``bench/run.py`` runs
each measurement in a fresh process of this script; see
``docs/performance.md`` for what each case measures and why.

Both sides run the same loop shape, with the would-block exception the only
difference, so a ratio compares the calls and not the loops around them.
Both ends of a connection live in this one thread: on loopback the kernel
delivers data before ``send`` returns, so the loops measure the per-call
overhead of the API rather than scheduler wake-ups.
"""

import argparse
import builtins
import errno
import gc
import importlib
import json
import select
import socket
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type

IMPLS = ("repynet", "raw")
FAMILIES = {"ipv4": (socket.AF_INET, "127.0.0.1"), "ipv6": (socket.AF_INET6, "::1")}

# Socket options repynet sets (csrc/rn_sock.c, rn_sock.h); the raw side sets
# the same ones, so that both ask the kernel for the same work.
TCP_BUFFER_SIZE = 128 * 1024
UDP_BUFFER_SIZE = 66000
# repynet's rates are checked to be finite; this one would need a petabyte
# a second before any caller waited.
UNTHROTTLED_RATE = 1e15

TCP_MESSAGE = b"x" * 64
UDP_MESSAGE = b"u" * 64
BULK_CHUNK = bytes(64 * 1024)
RECV_SIZE = 1024
DATAGRAM_MAX = 65535
CONNECT_TIMEOUT = 5.0
# How many local ports the connect case rotates through, so that a tuple
# still held by the kernel after a close never stops the loop.
CLIENT_PORTS = 8
# The time cap is checked every this many iterations, off the hot path.
CHECK_EVERY = 64
# How many idle connections one thread sweeps in poll_100_idle.
IDLE_SOCKETS = 100

# (iterations done, seconds timed, extra facts for the JSON result)
CaseResult = Tuple[float, float, Dict[str, Any]]


# --- set-up shared by the cases -----------------------------------------------


def free_ports(family: int, ip: str, kind: int, count: int) -> List[int]:
    """Ports the kernel says are free on ip right now, for both TCP and UDP use."""
    holders: List[socket.socket] = []
    ports: List[int] = []
    try:
        while len(ports) < count:
            holder = socket.socket(family, kind)
            holders.append(holder)
            holder.bind((ip, 0))
            port = holder.getsockname()[1]
            if port not in ports:
                ports.append(port)
    finally:
        for holder in holders:
            holder.close()
    return ports


def allow_ports(ports: Iterable[int], sockets: int = 500) -> Any:
    """Puts unthrottled restrictions in force that allow exactly ``ports``.

    ``sockets`` is both the insockets and the outsockets limit.  Returns the
    repynet module, imported here so that raw runs never load it.
    """
    repynet: Any = importlib.import_module("repynet")

    limits = {
        "insockets": sockets, "outsockets": sockets, "events": 1000,
        "netsend": UNTHROTTLED_RATE, "netrecv": UNTHROTTLED_RATE,
        "loopsend": UNTHROTTLED_RATE, "looprecv": UNTHROTTLED_RATE,
        "connport": frozenset(ports), "messport": frozenset(ports),
    }
    if hasattr(repynet, "set_restrictions") and hasattr(repynet.Restrictions, "build"):
        repynet.set_restrictions(repynet.Restrictions.build(**limits))
    else:  # before the restrictions module existed
        repynet._repynet._apply_restrictions(limits)
    return repynet


def raw_socket(family: int, kind: int, ip: str, port: int) -> socket.socket:
    """A bound non-blocking socket with the options repynet would set."""
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        size = TCP_BUFFER_SIZE if kind == socket.SOCK_STREAM else UDP_BUFFER_SIZE
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def raw_connect(family: int, local_ip: str, local_port: int, server_ip: str, server_port: int,
                timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """openconnection the raw way: bind, non-blocking connect, wait, check."""
    sock = raw_socket(family, socket.SOCK_STREAM, local_ip, local_port)
    try:
        err = sock.connect_ex((server_ip, server_port))
        if err == errno.EINPROGRESS:
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            if not poller.poll(timeout * 1000):
                raise builtins.TimeoutError(errno.ETIMEDOUT, "connect timed out")
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, errno.errorcode.get(err, "connect failed"))
    except BaseException:
        sock.close()
        raise
    return sock


class Endpoints:
    """The calls one implementation offers, under one set of names."""

    def __init__(self, impl: str, family_name: str, port_count: int) -> None:
        self.impl = impl
        self.family, self.ip = FAMILIES[family_name]
        self.ports = free_ports(self.family, self.ip, socket.SOCK_STREAM, port_count)
        self.closers: List[Callable[[], Any]] = []
        if impl == "repynet":
            self.repynet = allow_ports(self.ports)
            self.would_block = self.repynet.SocketWouldBlockError
        else:
            self.repynet = None
            self.would_block = BlockingIOError

    def keep(self, closable: Any) -> Any:
        self.closers.append(closable.close)
        return closable

    def close_all(self) -> None:
        for close in reversed(self.closers):
            close()

    def tcp_listener(self, port: int) -> Any:
        if self.repynet:
            return self.keep(self.repynet.listenforconnection(self.ip, port))
        sock = self.keep(raw_socket(self.family, socket.SOCK_STREAM, self.ip, port))
        sock.listen(500)
        return sock

    def accept_function(self, listener: Any) -> Callable[[], Any]:
        """A function that raises would_block or returns the accepted socket."""
        if self.repynet:
            getconnection = listener.getconnection
            return lambda: getconnection()[2]
        accept = listener.accept

        def accept_nonblocking() -> socket.socket:
            # accept() hands back a blocking socket; the Repy way needs
            # every socket non-blocking, so this is part of the raw call.
            sock: socket.socket = accept()[0]
            sock.setblocking(False)
            return sock
        return accept_nonblocking

    def connect(self, local_port: int, server_port: int) -> Any:
        if self.repynet:
            return self.repynet.openconnection(self.ip, server_port, self.ip, local_port,
                                               CONNECT_TIMEOUT)
        return raw_connect(self.family, self.ip, local_port, self.ip, server_port)

    def tcp_pair(self) -> Tuple[Any, Any]:
        """(client, server side) of one connected TCP connection."""
        listener = self.tcp_listener(self.ports[0])
        client = self.keep(self.connect(self.ports[1], self.ports[0]))
        accept = self.accept_function(listener)
        server = self.keep(retry(accept, self.would_block))
        return client, server

    def tcp_pair_peer_outside(self) -> Tuple[Any, Any]:
        """(client, server side) where the server side is a plain socket
        whatever the implementation: repynet's client cannot know its peer
        is open without asking the kernel, as with a peer in another
        process."""
        if not self.repynet:
            return self.tcp_pair()
        listener = self.keep(raw_socket(self.family, socket.SOCK_STREAM, self.ip,
                                        self.ports[0]))
        listener.listen(500)
        client = self.keep(self.connect(self.ports[1], self.ports[0]))
        server: socket.socket = self.keep(retry(lambda: listener.accept()[0],
                                                BlockingIOError))
        server.setblocking(False)
        return client, server

    def udp_listener(self, port: int) -> Any:
        if self.repynet:
            return self.keep(self.repynet.listenformessage(self.ip, port))
        return self.keep(raw_socket(self.family, socket.SOCK_DGRAM, self.ip, port))


def retry(call: Callable[[], Any], would_block: Type[BaseException]) -> Any:
    """The Repy way to wait: call again until it does not raise would_block."""
    while True:
        try:
            return call()
        except would_block:
            pass


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def passed(self) -> bool:
        return time.perf_counter() > self.end


# --- the cases ----------------------------------------------------------------
# Each takes (endpoints, count, deadline) and returns (iterations done,
# seconds, extra facts).  Only the loop between the two clock reads is timed.


def _time_would_block(call: Callable[[], Any], would_block: Type[BaseException], count: int,
                      deadline: "Deadline") -> CaseResult:
    """Times `call()` raising would_block, `count` times (or to the deadline)."""
    done = 0
    start = time.perf_counter()
    while done < count:
        for _ in range(CHECK_EVERY):
            try:
                call()
            except would_block:
                pass
        done += CHECK_EVERY
        if deadline.passed():
            break
    return done, time.perf_counter() - start, {}


def case_recv_wouldblock(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    client, _ = ends.tcp_pair()
    recv = client.recv
    return _time_would_block(lambda: recv(RECV_SIZE), ends.would_block, count, deadline)


def _time_recv_sweep(receivers: Sequence[Callable[[int], object]], size: int,
                     would_block: Type[BaseException], count: int,
                     deadline: "Deadline") -> CaseResult:
    """Times ``recv(size)`` raising would_block for each of ``receivers`` in turn.

    Each recv is called directly in the loop (no wrapper), ``count`` calls
    in all (or to the deadline).  A single socket's loop passes its recv
    CHECK_EVERY times over.
    """
    done = 0
    start = time.perf_counter()
    while done < count:
        for recv in receivers:
            try:
                recv(size)
            except would_block:
                pass
        done += len(receivers)
        if deadline.passed():
            break
    return done, time.perf_counter() - start, {}


def case_recv_wouldblock_1(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    client, _ = ends.tcp_pair()
    return _time_recv_sweep([client.recv] * CHECK_EVERY, 1, ends.would_block, count, deadline)


def case_recv_wouldblock_1024(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    client, _ = ends.tcp_pair()
    return _time_recv_sweep([client.recv] * CHECK_EVERY, RECV_SIZE, ends.would_block, count,
                            deadline)


def case_poll_idle_sockets(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    """One thread sweeping IDLE_SOCKETS idle connections with recv(1); count is calls."""
    listener = ends.tcp_listener(ends.ports[0])
    accept = ends.accept_function(listener)
    receivers = []
    for local_port in ends.ports[1:]:
        receivers.append(ends.keep(ends.connect(local_port, ends.ports[0])).recv)
        ends.keep(retry(accept, ends.would_block))
    return _time_recv_sweep(receivers, 1, ends.would_block, count, deadline)


def case_getconnection_wouldblock(ends: "Endpoints", count: int,
                                  deadline: "Deadline") -> CaseResult:
    accept = ends.accept_function(ends.tcp_listener(ends.ports[0]))
    return _time_would_block(accept, ends.would_block, count, deadline)


def case_getmessage_wouldblock(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    listener = ends.udp_listener(ends.ports[0])
    # getmessage() reads whole datagrams of up to 64 KiB, and so does this.
    if ends.repynet:
        receive = listener.getmessage
    else:
        recvfrom = listener.recvfrom

        def receive() -> Any:
            return recvfrom(DATAGRAM_MAX)
    return _time_would_block(receive, ends.would_block, count, deadline)


def case_send_1byte(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    return _time_sends(*ends.tcp_pair(), ends.would_block, count, deadline)


def case_send_1byte_peer_outside(ends: "Endpoints", count: int,
                                 deadline: "Deadline") -> CaseResult:
    return _time_sends(*ends.tcp_pair_peer_outside(), (ends.would_block, BlockingIOError),
                       count, deadline)


def _time_sends(client: Any, server: Any, would_block: Any, count: int,
                deadline: "Deadline") -> CaseResult:
    send = client.send
    byte = b"s"
    done = 0
    timed = 0.0
    # Each batch stays far below repynet's 512 KiB send limit (D22) and the
    # socket buffers; the peer is drained between batches, off the clock.
    while done < count:
        start = time.perf_counter()
        for _ in range(CHECK_EVERY):
            send(byte)
        timed += time.perf_counter() - start
        done += CHECK_EVERY
        drained = 0
        while drained < CHECK_EVERY:
            try:
                drained += len(server.recv(65536))
            except would_block:
                pass
        if deadline.passed():
            break
    return done, timed, {}


def case_pingpong(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    client, server = ends.tcp_pair()
    client_send, client_recv = client.send, client.recv
    server_send, server_recv = server.send, server.recv
    would_block = ends.would_block
    size = len(TCP_MESSAGE)
    done = 0
    start = time.perf_counter()
    while done < count:
        for _ in range(CHECK_EVERY):
            for send, recv in ((client_send, server_recv), (server_send, client_recv)):
                sent = 0
                while sent < size:
                    try:
                        sent += send(TCP_MESSAGE[sent:] if sent else TCP_MESSAGE)
                    except would_block:
                        pass
                got = 0
                while got < size:
                    try:
                        got += len(recv(size - got))
                    except would_block:
                        pass
        done += CHECK_EVERY
        if deadline.passed():
            break
    return done, time.perf_counter() - start, {}


def case_bulk(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    """count is the number of 64 KiB chunks; the rate is reported in MB/s."""
    client, server = ends.tcp_pair()
    send, recv, would_block = client.send, server.recv, ends.would_block
    chunk = memoryview(BULK_CHUNK)
    chunk_size = len(BULK_CHUNK)
    total = count * chunk_size
    sent = received = 0
    start = time.perf_counter()
    while received < total:
        if sent < total:
            left = total - sent
            try:
                sent += send(chunk if left >= chunk_size else chunk[:left])
            except would_block:
                pass
        while True:
            try:
                received += len(recv(chunk_size))
            except would_block:
                break
        if deadline.passed() and received >= sent:
            break
    return received / chunk_size, time.perf_counter() - start, {"bytes": received}


def udp_loop(ends: "Endpoints", count: int, deadline: "Deadline",
             from_listener: bool) -> CaseResult:
    receiver = ends.udp_listener(ends.ports[0])
    sender_port = ends.ports[1]
    would_block = ends.would_block
    ip, receiver_port = ends.ip, ends.ports[0]
    if ends.repynet:
        if from_listener:
            ends.udp_listener(sender_port)
        sendmessage, getmessage = ends.repynet.sendmessage, receiver.getmessage

        def exchange() -> Any:
            sendmessage(ip, receiver_port, UDP_MESSAGE, ip, sender_port)
            while True:
                try:
                    return getmessage()
                except would_block:
                    pass
    else:
        recvfrom, family, destination = receiver.recvfrom, ends.family, (ip, receiver_port)
        if from_listener:
            # The raw side reuses its one bound socket for every message.
            sendto = ends.udp_listener(sender_port).sendto

            def exchange() -> Any:
                sendto(UDP_MESSAGE, destination)
                while True:
                    try:
                        return recvfrom(DATAGRAM_MAX)
                    except would_block:
                        pass
        else:
            # What sendmessage must do without a listener on the pair:
            # a new socket, bound to the pair, for each message.
            def exchange() -> Any:
                sock = raw_socket(family, socket.SOCK_DGRAM, ip, sender_port)
                try:
                    sock.sendto(UDP_MESSAGE, destination)
                finally:
                    sock.close()
                while True:
                    try:
                        return recvfrom(DATAGRAM_MAX)
                    except would_block:
                        pass
    done = 0
    start = time.perf_counter()
    while done < count:
        for _ in range(CHECK_EVERY):
            exchange()
        done += CHECK_EVERY
        if deadline.passed():
            break
    return done, time.perf_counter() - start, {}


def case_udp_reuse(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    return udp_loop(ends, count, deadline, from_listener=True)


def case_udp_fresh(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    return udp_loop(ends, count, deadline, from_listener=False)


def case_connect_accept_close(ends: "Endpoints", count: int, deadline: "Deadline") -> CaseResult:
    server_port, client_ports = ends.ports[0], ends.ports[1:]
    accept = ends.accept_function(ends.tcp_listener(server_port))
    connect, would_block = ends.connect, ends.would_block
    # A tuple the kernel still holds refuses a new connection; both sides
    # then move on to the next port.  Counted, never expected on loopback.
    conflicts = (OSError, ends.repynet.NetworkError) if ends.repynet else OSError
    refused = done = attempt = 0
    start = time.perf_counter()
    while done < count:
        local_port = client_ports[attempt % len(client_ports)]
        attempt += 1
        try:
            client = connect(local_port, server_port)
        except conflicts:
            refused += 1
            if refused > count:
                raise
            continue
        server = retry(accept, would_block)
        # The server side closes first, so TIME_WAIT stays on the server's
        # side of the tuple and the client's port is free again at once.
        server.close()
        client.close()
        done += 1
        if done % CHECK_EVERY == 0 and deadline.passed():
            break
    return done, time.perf_counter() - start, {"refused": refused}


# name: (function, kind, unit, scale, ports needed).  A "cost" is seconds
# per call scaled to the unit; a "rate" is iterations per second scaled.
CASES = {
    "recv_wouldblock": (case_recv_wouldblock, "cost", "ns/call", 1e9, 2),
    "recv_wouldblock_1": (case_recv_wouldblock_1, "cost", "ns/call", 1e9, 2),
    "recv_wouldblock_1024": (case_recv_wouldblock_1024, "cost", "ns/call", 1e9, 2),
    "poll_100_idle": (case_poll_idle_sockets, "cost", "ns/call", 1e9, 1 + IDLE_SOCKETS),
    "getconnection_wouldblock": (case_getconnection_wouldblock, "cost", "ns/call", 1e9, 1),
    "getmessage_wouldblock": (case_getmessage_wouldblock, "cost", "ns/call", 1e9, 1),
    "send_1byte": (case_send_1byte, "cost", "ns/call", 1e9, 2),
    "send_1byte_peer_outside": (case_send_1byte_peer_outside, "cost", "ns/call", 1e9, 2),
    "pingpong_64": (case_pingpong, "rate", "round trips/s", 1.0, 2),
    "bulk_64k": (case_bulk, "rate", "MB/s", len(BULK_CHUNK) / 1e6, 2),
    "udp_reuse_64": (case_udp_reuse, "rate", "messages/s", 1.0, 2),
    "udp_fresh_64": (case_udp_fresh, "rate", "messages/s", 1.0, 2),
    "connect_accept_close": (case_connect_accept_close, "rate", "connections/s", 1.0,
                             1 + CLIENT_PORTS),
}


def measure(case: str, impl: str, family_name: str, count: int, seconds: float,
            warmup: int) -> Dict[str, Any]:
    function, kind, unit, scale, port_count = CASES[case]
    ends = Endpoints(impl, family_name, port_count)
    try:
        if warmup:
            function(ends, warmup, Deadline(seconds))
            ends.close_all()
            ends.closers.clear()
        gc.collect()
        done, elapsed, extra = function(ends, count, Deadline(seconds))
    finally:
        ends.close_all()
    if kind == "cost":
        value = elapsed / done * scale
    else:
        value = done / elapsed * scale
    return {
        "case": case, "impl": impl, "family": family_name, "kind": kind, "unit": unit,
        "value": value, "iterations": done, "seconds": elapsed, **extra,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("impl", choices=IMPLS)
    parser.add_argument("family", choices=sorted(FAMILIES))
    parser.add_argument("--count", type=int, required=True,
                        help="iterations to time (64 KiB chunks for bulk_64k)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="iterations run first, untimed, on their own sockets")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="stop a loop early after this long (the rate stays valid)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 0:
        parser.error("--count must be at least 1 and --warmup at least 0")
    result = measure(args.case, args.impl, args.family, args.count, args.max_seconds,
                     args.warmup)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
