"""A thin Python 3 shim that runs a Repy V2 program over the ``socket`` module.

``python bench/shim.py PROGRAM [ARG ...]`` executes PROGRAM (the same files
``python -m repynet run`` runs) in a namespace where each V2 network call
maps straight onto a non-blocking ``socket`` object: no argument checks, no
restrictions, no accounting, no tables.  It is the yardstick of the
benchmark's program rows: what the same program costs when the API adds
nothing but the calls themselves.

What the shim provides, and nothing more: ``openconnection``,
``listenforconnection``, ``listenformessage``, ``sendmessage``, the socket
objects they return (``send``, ``recv``, ``getconnection``, ``getmessage``,
``close``), ``createthread``, ``createlock``, ``sleep``, ``getruntime``,
``log``, ``exitall``, ``callargs``, ``callfunc``, ``mycontext`` and the Repy
exception classes as plain classes.  Data is ``str``, one character per
byte (latin-1), as in repynet's text mode.  Sockets get the options repynet
sets (``bench/cases.py``'s ``raw_socket``), so both ask the kernel for the
same work.  ``sendmessage`` leaves from the program's UDP listener on the
local pair when there is one, and otherwise from a socket bound for the
call, as repynet does.

An uncaught exception in any thread prints its traceback and ends the
program with status 1, as the runner does; ``exitall()`` ends it with 0.
"""

import os
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

from cases import raw_connect, raw_socket

# listenforconnection's backlog: repynet uses the outsockets limit, which
# bench/unthrottled.restrictions sets to 1000.
LISTEN_BACKLOG = 1000
DATAGRAM_MAX = 65535
EXIT_UNCAUGHT = 1


class RepyException(Exception):
    pass


class RepyArgumentError(RepyException):
    pass


class NetworkError(RepyException):
    pass


class SocketWouldBlockError(NetworkError):
    pass


class SocketClosedLocal(NetworkError):
    pass


class SocketClosedRemote(NetworkError):
    pass


class RepyTimeoutError(NetworkError):
    pass


class RepyConnectionRefusedError(NetworkError):
    pass


class DuplicateTupleError(NetworkError):
    pass


class AddressBindingError(NetworkError):
    pass


class AlreadyListeningError(NetworkError):
    pass


class CleanupInProgressError(NetworkError):
    pass


class ResourceExhaustedError(RepyException):
    pass


# The names a program sees; Repy's TimeoutError and ConnectionRefusedError
# shadow the builtins, as under the runner.
EXCEPTIONS: Dict[str, type] = {
    "RepyException": RepyException,
    "RepyArgumentError": RepyArgumentError,
    "NetworkError": NetworkError,
    "SocketWouldBlockError": SocketWouldBlockError,
    "SocketClosedLocal": SocketClosedLocal,
    "SocketClosedRemote": SocketClosedRemote,
    "TimeoutError": RepyTimeoutError,
    "ConnectionRefusedError": RepyConnectionRefusedError,
    "DuplicateTupleError": DuplicateTupleError,
    "AddressBindingError": AddressBindingError,
    "AlreadyListeningError": AlreadyListeningError,
    "CleanupInProgressError": CleanupInProgressError,
    "ResourceExhaustedError": ResourceExhaustedError,
}


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def network_error(error: OSError) -> NetworkError:
    """The Repy class a set-up call's OSError maps to (coarsely: no checks)."""
    if isinstance(error, ConnectionRefusedError):
        return RepyConnectionRefusedError(str(error))
    if isinstance(error, (TimeoutError, socket.timeout)):
        return RepyTimeoutError(str(error))
    return DuplicateTupleError(str(error))


class TCPSocket:
    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: str) -> int:
        try:
            return self._sock.send(data.encode("latin-1"))
        except BlockingIOError:
            raise SocketWouldBlockError() from None
        except (BrokenPipeError, ConnectionResetError):
            raise SocketClosedRemote() from None
        except OSError:
            if self._sock.fileno() < 0:
                raise SocketClosedLocal() from None
            raise

    def recv(self, size: int) -> str:
        try:
            data = self._sock.recv(size)
        except BlockingIOError:
            raise SocketWouldBlockError() from None
        except ConnectionResetError:
            raise SocketClosedRemote() from None
        except OSError:
            if self._sock.fileno() < 0:
                raise SocketClosedLocal() from None
            raise
        if not data:
            raise SocketClosedRemote()
        return data.decode("latin-1")

    def close(self) -> bool:
        closed_now = self._sock.fileno() >= 0
        self._sock.close()
        return closed_now


class TCPServerSocket:
    __slots__ = ("_sock",)

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def getconnection(self) -> Tuple[str, int, TCPSocket]:
        try:
            sock, address = self._sock.accept()
        except BlockingIOError:
            raise SocketWouldBlockError() from None
        sock.setblocking(False)
        return address[0], address[1], TCPSocket(sock)

    def close(self) -> bool:
        self._sock.close()
        return True


# The UDP listeners by local pair: sendmessage leaves from one when it can.
udp_listeners: Dict[Tuple[str, int], socket.socket] = {}


class UDPServerSocket:
    __slots__ = ("_sock", "_pair")

    def __init__(self, sock: socket.socket, pair: Tuple[str, int]) -> None:
        self._sock = sock
        self._pair = pair

    def getmessage(self) -> Tuple[str, int, str]:
        try:
            data, address = self._sock.recvfrom(DATAGRAM_MAX)
        except BlockingIOError:
            raise SocketWouldBlockError() from None
        return address[0], address[1], data.decode("latin-1")

    def close(self) -> bool:
        udp_listeners.pop(self._pair, None)
        self._sock.close()
        return True


def openconnection(destip: str, destport: int, localip: str, localport: int,
                   timeout: float) -> TCPSocket:
    try:
        return TCPSocket(raw_connect(family_of(destip), localip, localport, destip, destport,
                                     timeout))
    except OSError as error:
        raise network_error(error) from None


def listenforconnection(localip: str, localport: int) -> TCPServerSocket:
    try:
        sock = raw_socket(family_of(localip), socket.SOCK_STREAM, localip, localport)
    except OSError as error:
        raise AlreadyListeningError(str(error)) from None
    sock.listen(LISTEN_BACKLOG)
    return TCPServerSocket(sock)


def listenformessage(localip: str, localport: int) -> UDPServerSocket:
    try:
        sock = raw_socket(family_of(localip), socket.SOCK_DGRAM, localip, localport)
    except OSError as error:
        raise AlreadyListeningError(str(error)) from None
    udp_listeners[(localip, localport)] = sock
    return UDPServerSocket(sock, (localip, localport))


def sendmessage(destip: str, destport: int, message: str, localip: str, localport: int) -> int:
    data = message.encode("latin-1")
    listener = udp_listeners.get((localip, localport))
    try:
        if listener is not None:
            return listener.sendto(data, (destip, destport))
        sock = raw_socket(family_of(destip), socket.SOCK_DGRAM, localip, localport)
        try:
            return sock.sendto(data, (destip, destport))
        finally:
            sock.close()
    except BlockingIOError:
        raise SocketWouldBlockError() from None
    except OSError as error:
        raise network_error(error) from None


def exitall() -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def end_on_uncaught(function: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            function()
        except BaseException:
            traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_UNCAUGHT)
    return run


def createthread(function: Callable[[], Any]) -> None:
    threading.Thread(target=end_on_uncaught(function)).start()


def log(*args: Any) -> None:
    sys.stdout.write(" ".join(str(arg) for arg in args))
    sys.stdout.flush()


def namespace(program_arguments: List[str]) -> Dict[str, Any]:
    started = time.monotonic()

    def getruntime() -> float:
        return time.monotonic() - started

    names: Dict[str, Any] = {
        "openconnection": openconnection,
        "listenforconnection": listenforconnection,
        "listenformessage": listenformessage,
        "sendmessage": sendmessage,
        "createthread": createthread,
        "createlock": threading.Lock,
        "sleep": time.sleep,
        "getruntime": getruntime,
        "log": log,
        "exitall": exitall,
        "callargs": program_arguments,
        "callfunc": "initialize",
        "mycontext": {},
    }
    names.update(EXCEPTIONS)
    return names


def main(argv: Optional[List[str]] = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments:
        print("usage: python bench/shim.py PROGRAM [ARG ...]", file=sys.stderr)
        return 2
    path = arguments[0]
    with open(path, encoding="utf-8") as program_file:
        code = compile(program_file.read(), path, "exec")
    end_on_uncaught(lambda: exec(code, namespace(arguments[1:])))()
    return 0


if __name__ == "__main__":
    sys.exit(main())
