"""Memory per held TCP connection: ``python bench/memory.py IMPL --connections N``.

IMPL is ``repynet`` (``openconnection``, bytes mode) or ``raw`` (the
``socket`` module the Repy way: ``bench/cases.py``'s ``raw_connect``).  The
process opens N connections on 127.0.0.1 to a listener in a child process
(which accepts and holds the other ends, so that they cost this process
nothing), keeps every socket object in a list, and reports the growth of its
resident set size (``/proc/self/statm``) divided by N: the socket objects,
repynet's table entries and whatever else a held connection costs in user
memory.  Kernel socket memory is not in RSS and is the same for both.

Before the baseline reading, a warm-up opens and closes a few hundred
connections, so that allocator arenas, caches and the table's first growth
are not charged to the measured ones.  RLIMIT_NOFILE is raised (within the
hard limit) to what N needs, here and in the child.  Local ports come from
LOCAL_PORTS; a port the kernel refuses (in use elsewhere) is skipped and
counted.  The result is one JSON object on stdout, in the shape of
``bench/cases.py``'s.
"""

import argparse
import gc
import json
import os
import resource
import socket
import subprocess
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

from cases import allow_ports, raw_connect

IP = "127.0.0.1"
CONNECT_TIMEOUT = 10.0
# Below Linux's default ephemeral range (32768-60999), so that the
# connections' ports do not collide with other programs' automatic ones,
# and below the programs' 24000-24999 (bench/unthrottled.restrictions), so
# that a four-tuple this row leaves in TIME_WAIT never meets a program.
LOCAL_PORTS = range(10000, 24000)
WARMUP_CONNECTIONS = 300
# Descriptors beyond the connections: stdio, the child's pipe, the
# completion port's epoll and eventfd, Python's own.
SPARE_DESCRIPTORS = 64
PEER_BACKLOG = 4096


def raise_descriptor_limit(needed: int) -> int:
    """Raises the soft RLIMIT_NOFILE towards ``needed``; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        soft = wanted
    return soft


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_peer() -> int:
    """The child: accepts on a port it prints, holding every connection until stdin closes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((IP, 0))
    listener.listen(PEER_BACKLOG)
    print(listener.getsockname()[1], flush=True)
    held = []
    listener.setblocking(False)
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                return 0
            while True:
                try:
                    held.append(listener.accept()[0])
                except BlockingIOError:
                    break


class Connector:
    """openconnection for one implementation, over the local ports that work."""

    def __init__(self, impl: str, server_port: int, count: int) -> None:
        self.server_port = server_port
        self.ports = iter(port for port in LOCAL_PORTS if port != server_port)
        self.skipped = 0
        if impl == "repynet":
            repynet = allow_ports(LOCAL_PORTS, sockets=count + WARMUP_CONNECTIONS)
            self.errors: Tuple[Type[Exception], ...] = (repynet.NetworkError,)
            self.connect: Callable[[int], Any] = lambda port: repynet.openconnection(
                IP, server_port, IP, port, CONNECT_TIMEOUT)
        else:
            self.errors = (OSError,)
            self.connect = lambda port: raw_connect(socket.AF_INET, IP, port, IP, server_port,
                                                    CONNECT_TIMEOUT)

    def open(self, count: int) -> List[Any]:
        connections: List[Any] = []
        while len(connections) < count:
            port = next(self.ports)
            try:
                connections.append(self.connect(port))
            except self.errors:
                self.skipped += 1
        return connections


def measure(impl: str, count: int) -> Dict[str, Any]:
    needed = count + WARMUP_CONNECTIONS + SPARE_DESCRIPTORS
    limit = raise_descriptor_limit(needed)
    if limit < needed:
        raise SystemExit(f"RLIMIT_NOFILE allows {limit} descriptors; {needed} are needed")
    peer = subprocess.Popen([sys.executable, __file__, "--peer"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout is not None
        server_port = int(peer.stdout.readline())
        connector = Connector(impl, server_port, count)
        for connection in connector.open(WARMUP_CONNECTIONS):
            connection.close()
        gc.collect()
        before = resident_bytes()
        connections = connector.open(count)
        gc.collect()
        after = resident_bytes()
        for connection in connections:
            connection.close()
    finally:
        if peer.stdin is not None:
            peer.stdin.close()
        peer.wait()
    return {
        "case": "rss_per_connection", "impl": impl, "family": "ipv4", "kind": "cost",
        "unit": "bytes/connection", "value": (after - before) / count, "iterations": count,
        "rss_before": before, "rss_after": after, "ports_skipped": connector.skipped,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", nargs="?", choices=("repynet", "raw"))
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer:
        return run_peer()
    if args.impl is None:
        parser.error("IMPL is required")
    if not 1 <= args.connections <= len(LOCAL_PORTS) - WARMUP_CONNECTIONS - 1:
        parser.error("--connections must be from 1 to "
                     f"{len(LOCAL_PORTS) - WARMUP_CONNECTIONS - 1}")
    json.dump(measure(args.impl, args.connections), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
