"""repynet.v1: the Repy V1 network calls (spec section 8, seed 000).

``openconn``, ``waitforconn``, ``recvmess``, ``sendmess``, ``stopcomm``,
``gethostbyname_ex`` and ``getmyip`` with V1's keyword arguments, handles
(``'_COMMH:...'`` strings), blocking sockets and errors (a plain
``Exception`` with the original text; ``TypeError`` for a wrong type).
Everything runs over the same C core as the V2 calls: the same tables,
allowed ports, socket counts and rates.

Callbacks: a listener's fd is watched by the C completion port
(``_repynet.ReadyQueue``).  Its worker puts the listener's key in a queue;
a Python thread waiting on that queue (GIL released, in the kernel) takes
one ``events`` item (waiting, again in the kernel, while none is free),
accepts the connection or reads the message, re-arms the listener and runs
the callback, holding the item until the callback returns.  One more
``events`` item is held while any listener exists, as V1's selector thread
held one.  An uncaught exception in a callback ends the program.
"""

from __future__ import annotations

import builtins
import errno
import gc
import itertools
import math
import os
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol, Union

from . import _repynet, errors
from ._repynet import NetworkAPI, ReadyQueue, TCPServerSocket, TCPSocket, UDPServerSocket

__all__ = [
    "V1_NAMES",
    "V1Network",
    "V1Socket",
    "EventGate",
    "openconn",
    "waitforconn",
    "recvmess",
    "sendmess",
    "stopcomm",
    "gethostbyname_ex",
    "getmyip",
]

V1_NAMES = ("openconn", "waitforconn", "recvmess", "sendmess", "stopcomm",
            "gethostbyname_ex", "getmyip")

COMM_PREFIX = "_COMMH:"
# V1's default connect timeout (seconds) and its step while a closing
# 4-tuple is cleaned up by the kernel (spec 8, openconn step 2).
DEFAULT_TIMEOUT = 5.0
CLEANUP_RETRY_INTERVAL = 0.2
# Worker threads beyond this many idle ones end when their callback returns.
_MAX_IDLE_WORKERS = 4

Callback = Callable[..., Any]
Listener = Union[TCPServerSocket, UDPServerSocket]


class V1Host(Protocol):
    """What a V1 program's runner lets the calls report (the library default
    counts nothing and ends the process on an uncaught callback exception)."""

    def work_started(self) -> None: ...
    def work_finished(self) -> None: ...
    def uncaught(self, exc: BaseException) -> None: ...


class _LibraryHost:
    def work_started(self) -> None:
        pass

    def work_finished(self) -> None:
        pass

    def uncaught(self, exc: BaseException) -> None:
        # V1: an uncaught exception in a callback ends the whole program
        # (os._exit: Python cannot stop the other threads).
        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        sys.stderr.flush()
        os._exit(1)


class EventGate:
    """``events`` items, taken without waiting or waiting in the kernel.

    The count itself is the C counter (``_event_acquire``); the condition
    only wakes waiters when an item comes back through :meth:`give` or
    :meth:`notify`.
    """

    def __init__(self) -> None:
        self._returned = threading.Condition(threading.Lock())
        self._waiting = 0  # threads in wait_take's slow path

    def take(self) -> None:
        """One item now, or V1's Exception."""
        try:
            _repynet._event_acquire()
        except errors.ResourceExhaustedError:
            raise Exception("Resource 'events' limit exceeded!!") from None

    def wait_take(self) -> None:
        """One item, waiting (GIL released) until one is free."""
        try:
            _repynet._event_acquire()
            return
        except errors.ResourceExhaustedError:
            pass
        with self._returned:
            self._waiting += 1
            try:
                while True:
                    # Retried after _waiting is raised: an item given back
                    # before then is seen here, one given after is notified.
                    try:
                        _repynet._event_acquire()
                        return
                    except errors.ResourceExhaustedError:
                        self._returned.wait()
            finally:
                self._waiting -= 1

    def give(self) -> None:
        _repynet._event_release()
        if self._waiting:
            self.notify()

    def notify(self) -> None:
        """An item came back (also some other way: the runner's threads)."""
        with self._returned:
            self._returned.notify()


_process_gate = EventGate()


def _is_port(value: object, allow_zero: bool = False) -> bool:
    if type(value) is not int:  # V1 compared exact types: no bool
        return False
    return (allow_zero and value == 0) or 1 <= value <= 65535


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise builtins.TypeError(f"{what} must be a str, not {type(value).__name__}")
    return value


def _forbidden(err: errors.ResourceForbiddenError, tcp: bool, port: int,
               localip: str | None) -> Exception:
    """V1's text for a refused local port or IP (spec 8)."""
    if "localip" in str(err):
        return Exception(f"IP '{localip}' is not allowed.")
    return Exception(f"Resource '{'connport' if tcp else 'messport'} {port}' not allowed!!!")


def _plain(err: BaseException) -> Exception:
    """Any other Repy error as V1 shows it: an Exception with its text."""
    new = Exception(str(err))
    new.__cause__ = err
    return new


class _Connection:
    """One open V1 TCP socket: its handle, the C socket and a wake-up fd.

    A blocking recv/send polls the socket's fd together with ``wake_fd``
    (``_repynet._v1_recv``/``_v1_send``); close() writes ``wake_fd``, which
    stays readable, so every waiter, now or later, wakes at once and reports
    the socket closed.  ``wake_fd`` is made by the first blocking call (a
    callback that only closes its socket costs no eventfd) and lives as long
    as this record: a waiter holds the record, so the fd is never closed
    under a poll.
    """

    __slots__ = ("handle", "sock", "tuple", "wake_fd", "closed", "lock")

    def __init__(self, handle: str, sock: TCPSocket, four_tuple: tuple[Any, ...]) -> None:
        self.handle = handle
        self.sock = sock
        self.tuple = four_tuple
        self.closed = False
        self.lock = threading.Lock()
        self.wake_fd = -1

    def wake_fd_for_a_wait(self) -> int:
        with self.lock:
            if self.closed:
                raise Exception("Socket closed")
            if self.wake_fd < 0:
                self.wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            return self.wake_fd

    def close(self) -> bool:
        with self.lock:
            if self.closed:
                return False
            self.closed = True
            if self.wake_fd >= 0:
                os.eventfd_write(self.wake_fd, 1)
        self.sock.close()
        return True

    def __del__(self) -> None:
        wake_fd = getattr(self, "wake_fd", -1)
        if wake_fd >= 0:
            os.close(wake_fd)


class V1Socket:
    """The socket-like object of openconn and waitforconn callbacks.

    ``recv`` and ``send`` block until they can do something; both raise
    ``Exception("Socket closed")`` once the socket is closed here (also
    from another thread during the wait), at end of stream or on a reset.
    Not hashable, as in V1.  Dropping the last reference closes it and
    gives its outsocket back.
    """

    __slots__ = ("_conn", "_network")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, network: V1Network, conn: _Connection) -> None:
        self._conn = conn
        self._network = network

    def __del__(self) -> None:
        # Dropped by the program: close it and give its outsocket back.
        self._network._drop(self._conn.handle)

    def recv(self, bytes: int) -> Any:  # noqa: A002 - V1's keyword name
        if type(bytes) is not int:
            raise builtins.TypeError(f"bytes must be an int, not {type(bytes).__name__}")
        # A bad count (below 1) is a value error: V1's Exception.
        return self._blocking(_repynet._v1_recv, bytes, Exception)

    def send(self, message: Any) -> int:
        # A message of a type text mode cannot send is a TypeError.
        result: int = self._blocking(_repynet._v1_send, message, builtins.TypeError)
        return result

    def _blocking(self, call: Callable[[TCPSocket, Any, int], Any], argument: Any,
                  argument_error: type[Exception]) -> Any:
        conn = self._conn
        wake_fd = conn.wake_fd if conn.wake_fd >= 0 else conn.wake_fd_for_a_wait()
        if conn.closed:
            raise Exception("Socket closed")
        try:
            return call(conn.sock, argument, wake_fd)
        except (errors.SocketClosedLocal, errors.SocketClosedRemote):
            raise Exception("Socket closed") from None
        except errors.RepyArgumentError as err:
            raise argument_error(str(err)) from None

    def willblock(self) -> tuple[bool, bool]:
        """(recv would block, send would block), from a zero-timeout poll."""
        conn = self._conn
        with conn.lock:
            if conn.closed:
                raise Exception("Socket closed")
            poller = select.poll()
            poller.register(_repynet._v1_fileno(conn.sock), select.POLLIN | select.POLLOUT)
            ready = dict(poller.poll(0))
        revents = next(iter(ready.values()), 0)
        if revents & (select.POLLERR | select.POLLNVAL):
            return (False, False)
        return (not revents & select.POLLIN, not revents & select.POLLOUT)

    def close(self) -> bool:
        """stopcomm(this socket's handle): True the first time."""
        return self._network.stopcomm(self._conn.handle)

    def __repr__(self) -> str:
        return f"<V1Socket {self._conn.handle}{' closed' if self._conn.closed else ''}>"


class _Listener:
    __slots__ = ("handle", "tcp", "local", "server", "function", "key", "closed")

    def __init__(self, handle: str, tcp: bool, local: tuple[str, int], server: Listener,
                 function: Callback, key: int) -> None:
        self.handle = handle
        self.tcp = tcp
        self.local = local
        self.server = server
        self.function = function
        self.key = key
        self.closed = False


class V1Network:
    """The V1 calls over one C ``NetworkAPI`` (bytes or text mode)."""

    def __init__(self, text: bool = False, host: V1Host | None = None,
                 gate: EventGate | None = None) -> None:
        self._api = NetworkAPI(text=text)
        self._text = text
        self._host: V1Host = host if host is not None else _LibraryHost()
        self._gate = gate if gate is not None else _process_gate
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._handles: dict[str, Union[_Connection, _Listener]] = {}
        self._listeners: dict[tuple[bool, str, int], _Listener] = {}
        self._by_key: dict[int, _Listener] = {}
        self._ready: ReadyQueue | None = None
        self._idle_workers = 0

    def names(self) -> dict[str, Callable[..., Any]]:
        """The V1 network names bound to this object (a program's namespace)."""
        return {name: getattr(self, name) for name in V1_NAMES}

    def _new_handle(self) -> str:
        return f"{COMM_PREFIX}{next(self._ids)}"

    # --- lookups ------------------------------------------------------------

    def gethostbyname_ex(self, name: str) -> tuple[str, list[str], list[str]]:
        """(name, aliases, addresses): the IPv4 address the resolver gives."""
        _require_str(name, "name")
        try:
            address = self._api.gethostbyname(name)
        except errors.RepyException as err:
            raise _plain(err) from None
        return (name, [], [address])

    def getmyip(self) -> str:
        """This host's outward IPv4 address, without sending a packet (D19)."""
        try:
            return self._api.getmyip()
        except errors.InternetConnectivityError:
            raise Exception("Cannot detect a connection to the Internet.") from None

    def _destination(self, desthost: str) -> str:
        """An IP literal for desthost (a name goes through the resolver)."""
        try:
            _repynet._parse_address(desthost)
            return desthost
        except (errors.RepyArgumentError, ValueError):
            pass
        try:
            return self._api.gethostbyname(desthost)
        except errors.RepyException as err:
            raise _plain(err) from None

    # --- UDP ----------------------------------------------------------------

    def sendmess(self, desthost: str, destport: int, message: Any,
                 localip: str | None = None, localport: int | None = None) -> int:
        """Sends one datagram; the number of bytes sent."""
        _require_str(desthost, "desthost")
        if (localip is None) != (localport is None):
            raise Exception("Localip and localport must be specified simultaneously.")
        if localport is None:
            localport = 0
        if not localip or localip == "0.0.0.0":
            localip = None
        if not _is_port(destport):
            raise Exception("Destination port number must be an integer, between 1 and 65535.")
        if not _is_port(localport, allow_zero=True):
            raise Exception("Local port number must be an integer, between 1 and 65535.")
        if localip is not None:
            _require_str(localip, "localip")
        destip = self._destination(desthost)
        try:
            if localip is not None and localport:
                return self._api.sendmessage(destip, destport, message, localip, localport)
            return _repynet._v1_sendmess(self._text, destip, destport, message, localip)
        except errors.ResourceForbiddenError as err:
            raise _forbidden(err, False, localport, localip) from None
        except errors.RepyArgumentError as err:
            raise builtins.TypeError(str(err)) from None
        except errors.RepyException as err:
            raise _plain(err) from None

    def recvmess(self, localip: str, localport: int, function: Callback) -> str:
        """Calls function(remoteip, remoteport, message, handle) per datagram."""
        return self._listen(False, localip, localport, function)

    # --- TCP ----------------------------------------------------------------

    def waitforconn(self, localip: str, localport: int, function: Callback) -> str:
        """Calls function(remoteip, remoteport, socket, thishandle, listenhandle)
        per connection."""
        return self._listen(True, localip, localport, function)

    def openconn(self, desthost: str, destport: int, localip: str | None = None,
                 localport: int | None = None,
                 timeout: float | None = None) -> V1Socket:
        """A connected V1Socket, within timeout seconds (default 5)."""
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if (localip is None) != (localport is None):
            raise Exception("Localip and localport must be specified simultaneously.")
        if not localip or localip == "0.0.0.0":
            localip = None
        if localport is None:
            localport = 0
        _require_str(desthost, "desthost")
        if localip is not None:
            _require_str(localip, "localip")
        if not _is_port(destport):
            raise Exception("Destination port number must be an integer, between 1 and 65535.")
        if not _is_port(localport, allow_zero=True):
            raise Exception("Local port number must be an integer, between 1 and 65535.")
        if (type(timeout) not in (int, float) or not math.isfinite(timeout)
                or timeout <= 0.0):
            raise Exception("Timeout parameter must be a numeric value greater than 0.")
        started = time.monotonic()
        destip = self._destination(desthost)
        sock = self._connect(destip, destport, localip, localport, float(timeout), started)
        with self._lock:
            handle = self._new_handle()
            conn = _Connection(handle, sock, (localip, localport, destip, destport))
            self._handles[handle] = conn
        return V1Socket(self, conn)

    def _connect(self, destip: str, destport: int, localip: str | None, localport: int,
                 timeout: float, started: float) -> TCPSocket:
        collected = False
        while True:
            remaining = timeout - (time.monotonic() - started)
            if remaining <= 0.0:
                # Spent (by the resolver or a cleanup wait) before any connect.
                raise Exception("Connection timed out!")
            try:
                return _repynet._v1_openconn(self._text, destip, destport, localip,
                                             localport, remaining)
            except errors.CleanupInProgressError:
                # The kernel still holds the 4-tuple in a closing state.
                pause = min(CLEANUP_RETRY_INTERVAL, timeout - (time.monotonic() - started))
                if pause <= 0.0:
                    raise Exception("Timed out checking for socket cleanup!") from None
                time.sleep(pause)
            except errors.DuplicateTupleError:
                raise self._duplicate(destip, destport, localip, localport) from None
            except errors.ResourceExhaustedError as err:
                # V1 collects garbage once: dropped sockets give theirs back.
                if collected:
                    raise Exception("Resource 'outsockets' limit exceeded!!") from err
                collected = True
                gc.collect()
            except errors.ResourceForbiddenError as err:
                raise _forbidden(err, True, localport, localip) from None
            except errors.TimeoutError:
                raise Exception("Connection timed out!") from None
            except errors.ConnectionRefusedError:
                raise Exception(f"[Errno {errno.ECONNREFUSED}] Connection refused") from None
            except errors.RepyArgumentError as err:
                raise builtins.TypeError(str(err)) from None
            except errors.RepyException as err:
                raise _plain(err) from None

    def _duplicate(self, destip: str, destport: int, localip: str | None,
                   localport: int) -> Exception:
        with self._lock:
            for handle, entry in self._handles.items():
                if isinstance(entry, _Connection) and \
                        entry.tuple == (localip, localport, destip, destport):
                    return Exception(f" Duplicate handle exists with name: {handle}")
        return Exception("Network socket is in use by an external process!")

    # --- listeners ----------------------------------------------------------

    def _listen(self, tcp: bool, localip: str, localport: int, function: Callback) -> str:
        if not localip or localip == "0.0.0.0":
            raise Exception("Must specify a local IP address")
        _require_str(localip, "localip")
        if not _is_port(localport):
            raise Exception("Local port number must be an integer, between 1 and 65535.")
        if not callable(function):
            raise builtins.TypeError("function must be callable")
        while True:
            # V1's selector took an event before its thread started, waiting
            # for one (spec 8); taken outside the lock, which callbacks need.
            needs_event = not self._listeners
            if needs_event:
                self._gate.wait_take()
            with self._lock:
                if needs_event == (not self._listeners):
                    try:
                        return self._listen_locked(tcp, localip, localport, function,
                                                   needs_event)
                    except BaseException:
                        if needs_event:
                            self._gate.give()
                        raise
            if needs_event:  # another thread added or removed a listener meanwhile
                self._gate.give()

    def _listen_locked(self, tcp: bool, localip: str, localport: int, function: Callback,
                       first: bool) -> str:
        handle = self._new_handle()
        old = self._listeners.get((tcp, localip, localport))
        if old is not None:
            # Seed 000: the same (ip, port) replaces the callback; the old
            # handle goes dead and the insocket moves to the new one.
            del self._handles[old.handle]
            old.handle = handle
            old.function = function
            self._handles[handle] = old
            return handle
        try:
            server: Listener = (self._api.listenforconnection(localip, localport) if tcp
                                else self._api.listenformessage(localip, localport))
        except errors.ResourceForbiddenError as err:
            raise _forbidden(err, tcp, localport, localip) from None
        except errors.ResourceExhaustedError:
            raise Exception("Resource 'insockets' limit exceeded!!") from None
        except errors.RepyArgumentError as err:
            raise builtins.TypeError(str(err)) from None
        except errors.RepyException as err:
            raise _plain(err) from None
        try:
            if first:
                self._ready = ReadyQueue()
            ready = self._ready
            assert ready is not None
            key = next(self._ids)
            ready.watch(_repynet._v1_fileno(server), key)
        except BaseException:
            server.close()
            raise
        listener = _Listener(handle, tcp, (localip, localport), server, function, key)
        self._listeners[(tcp, localip, localport)] = listener
        self._by_key[key] = listener
        self._handles[handle] = listener
        if first:
            self._host.work_started()
        ready.arm(key)
        self._ensure_idle_worker()
        return handle

    def _stop_dispatch(self) -> None:
        """The last listener is gone: workers end, the event comes back."""
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.close()
        self._idle_workers = 0
        self._gate.give()
        self._host.work_finished()

    def stopcomm(self, commhandle: str) -> bool:
        """Stops a listener or closes a socket: True, or False if already done."""
        if not isinstance(commhandle, str) or not commhandle.startswith(COMM_PREFIX):
            raise Exception("Invalid commhandle specified!")
        with self._lock:
            entry = self._handles.pop(commhandle, None)
            if entry is None:
                return False
            if isinstance(entry, _Connection):
                conn = entry
            else:
                self._close_listener(entry)
                return True
        return conn.close()

    def _close_listener(self, listener: _Listener) -> None:
        listener.closed = True
        key = (listener.tcp, *listener.local)
        del self._listeners[key]
        del self._by_key[listener.key]
        if self._ready is not None:
            self._ready.unwatch(listener.key)  # before the fd is closed
        listener.server.close()
        if not self._listeners:
            self._stop_dispatch()

    def _drop(self, handle: str) -> None:
        """A V1Socket was garbage-collected: close it if still open."""
        with self._lock:
            entry = self._handles.pop(handle, None)
        if isinstance(entry, _Connection):
            entry.close()

    def close_all(self) -> None:
        """Stops every listener and closes every socket (tests, shutdown)."""
        with self._lock:
            handles = list(self._handles)
        for handle in handles:
            self.stopcomm(handle)

    # --- the workers --------------------------------------------------------

    def _ensure_idle_worker(self) -> None:
        """Keeps one worker waiting on the queue (called with the lock)."""
        if self._idle_workers > 0 or self._ready is None:
            return
        self._idle_workers += 1
        thread = threading.Thread(target=self._work, args=(self._ready,),
                                  name="_V1CallbackThread", daemon=True)
        try:
            thread.start()
        except BaseException:
            self._idle_workers -= 1
            raise

    def _work(self, ready: ReadyQueue) -> None:
        """A worker: counted idle while it waits in ready.get()."""
        listener: _Listener | None
        while True:
            key = ready.get()  # GIL released; None once the queue is closed
            with self._lock:
                if key is None or self._ready is not ready:
                    return
                listener = self._by_key.get(key)
                if listener is None:
                    continue
                self._idle_workers -= 1
                # Live work from here, before the listener could go away.
                self._host.work_started()
            arguments = self._take(ready, listener)
            with self._lock:
                if arguments is None:
                    if self._ready is ready:
                        self._idle_workers += 1
                elif self._ready is ready:
                    self._ensure_idle_worker()
            if arguments is None:
                listener = None
                self._host.work_finished()
                continue
            function = listener.function
            # Nothing of this connection may outlive the callback in this
            # frame: the worker waits on for the next one.
            listener = None
            try:
                function(*arguments)
            except BaseException as exc:  # noqa: B036 - V1 ends the program
                self._host.uncaught(exc)
            finally:
                del function, arguments
                self._gate.give()
                self._host.work_finished()
            with self._lock:
                if self._ready is not ready or self._idle_workers >= _MAX_IDLE_WORKERS:
                    return
                self._idle_workers += 1

    def _take(self, ready: ReadyQueue, listener: _Listener) -> tuple[Any, ...] | None:
        """With an events item: the callback's arguments, or None (and the
        item given back) when there was nothing to take."""
        self._gate.wait_take()
        arguments: tuple[Any, ...] | None = None
        try:
            if listener.tcp:
                remoteip, remoteport, sock = listener.server.getconnection()  # type: ignore[union-attr]
                with self._lock:
                    handle = self._new_handle()
                    conn = _Connection(handle, sock, (listener.local[0], listener.local[1],
                                                      remoteip, remoteport))
                    self._handles[handle] = conn
                arguments = (remoteip, remoteport, V1Socket(self, conn), handle,
                             listener.handle)
            else:
                remoteip, remoteport, message = listener.server.getmessage()  # type: ignore[union-attr]
                arguments = (remoteip, remoteport, message, listener.handle)
        except errors.RepyException:
            pass  # nothing pending (another worker took it), or it was closed
        finally:
            with self._lock:
                if not listener.closed and self._ready is ready:
                    ready.arm(listener.key)
            if arguments is None:
                self._gate.give()
        return arguments


# The library API: bytes in, bytes out.
_bytes_network = V1Network(text=False)
openconn = _bytes_network.openconn
waitforconn = _bytes_network.waitforconn
recvmess = _bytes_network.recvmess
sendmess = _bytes_network.sendmess
stopcomm = _bytes_network.stopcomm
gethostbyname_ex = _bytes_network.gethostbyname_ex
getmyip = _bytes_network.getmyip
