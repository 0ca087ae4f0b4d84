"""Atheris target: every public call's argument checks, on loopback only.

Each input is a short program of V2 calls (both the bytes API and a text-mode
namespace) with arguments drawn from exact values, wrong types, out-of-range
numbers and subclasses of str/int/float/bytes whose __repr__, __str__,
__index__, __eq__, __hash__ (and more) raise.  Oracles, after every call:

- a hostile dunder never runs: subclasses are read by value (D3, D5) and
  error messages format the value already read, never the object;
- only Repy exceptions come out: no TypeError, OverflowError, SystemError,
  and no InternalRepyError (the Fatal path) from a loopback call;
- recv(n) with an int n >= 1 is never an argument error (D18 clamps it);
- after everything is closed, no C object is left and the insocket and
  outsocket counts are back to zero.

Loopback only: a destination is one of 127.0.0.0/8 and ::1 or a form the
parser refuses (anything ipaddress reads as another address is replaced by
127.0.0.1), ports are the default restrictions' 63100-63199 or invalid, and
gethostbyname/getAddripv6 only see literals (returned as given, no
resolver).  fuzz/run.py also runs this target inside a new network
namespace (`unshare -n`) when it can, so nothing could leave the machine
even through a bug.
"""

import gc
import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

import atheris
from atheris_common import fuzz_argv

with atheris.instrument_imports():
    import repynet
    from repynet import _repynet, errors, restrictions

LOOPBACK = ("127.0.0.1", "::1", "127.0.0.2", "127.255.255.254")
LOCAL_FORMS = ("127.0.0.1", "::1", "0.0.0.0", "::", "127.0.0.3", "fe80::1%lo", "fe80::1",
               "1.2.3.4", "localhost", "", "127.0.0.1\x00", " 127.0.0.1", "::ffff:127.0.0.1")
FIRST_PORT, LAST_PORT = 63100, 63199
BAD_PORTS = (0, -1, 65536, 2**16 + FIRST_PORT, 2**63, -(2**63), 2**64 + FIRST_PORT, 10**30)
BAD_VALUES: tuple[Any, ...] = (None, True, False, 1.5, b"127.0.0.1", [], object(), "63100")
MAX_ACTIONS = 10


class HostileDunderCalled(Exception):
    """Raised by every overridden method of the hostile subclasses."""


hostile_calls: list[str] = []


def _hostile(name: str) -> Callable[..., Any]:
    def method(self: object, *args: object, **kwargs: object) -> Any:
        hostile_calls.append(name)
        raise HostileDunderCalled(name)
    method.__name__ = name
    return method


_DUNDERS = ("__repr__", "__str__", "__format__", "__eq__", "__ne__", "__lt__", "__hash__",
            "__len__", "__bool__", "__iter__", "__getitem__", "__contains__", "__add__",
            "__mod__", "__reduce__", "__copy__", "__deepcopy__")


def _hostile_type(base: type, *extra: str) -> type:
    return type(f"Hostile{base.__name__.title()}", (base,),
                {name: _hostile(name) for name in _DUNDERS + extra})


HostileStr = _hostile_type(str, "encode", "__getattr__")
HostileInt = _hostile_type(int, "__index__", "__int__", "__float__", "__abs__", "__neg__")
HostileFloat = _hostile_type(float, "__float__", "__int__", "__index__", "__trunc__")
HostileBytes = _hostile_type(bytes, "decode", "__buffer__")
HOSTILE_TYPES = (HostileStr, HostileInt, HostileFloat, HostileBytes)


class Draw:
    """Arguments from the fuzzer's bytes."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def pick(self, choices: Sequence[Any]) -> Any:
        return choices[self.provider.ConsumeIntInRange(0, len(choices) - 1)]

    def form(self, count: int) -> int:
        return int(self.provider.ConsumeIntInRange(0, count - 1))

    def _hostile_of(self, kind: type, value: Any) -> Any:
        return kind(value)

    def destination_ip(self) -> Any:
        form = self.form(5)
        if form == 0:
            return self.pick(LOOPBACK)
        if form == 1:
            return self._hostile_of(HostileStr, self.pick(LOOPBACK))
        if form == 2:
            return self.pick(BAD_VALUES)
        text = self.provider.ConsumeUnicodeNoSurrogates(self.form(48))
        return text if refused_or_loopback(text) else "127.0.0.1"

    def local_ip(self) -> Any:
        form = self.form(5)
        if form <= 1:
            return self.pick(LOCAL_FORMS)
        if form == 2:
            return self._hostile_of(HostileStr, self.pick(LOCAL_FORMS))
        if form == 3:
            return self.pick(BAD_VALUES)
        return self.provider.ConsumeUnicodeNoSurrogates(self.form(48))

    def port(self) -> Any:
        form = self.form(8)
        if form <= 4:
            return self.provider.ConsumeIntInRange(FIRST_PORT, LAST_PORT)
        if form == 5:
            return self.pick(BAD_PORTS)
        if form == 6:
            return self._hostile_of(HostileInt, self.provider.ConsumeIntInRange(
                FIRST_PORT, LAST_PORT))
        return self.pick(BAD_VALUES)

    def timeout(self) -> Any:
        form = self.form(5)
        if form <= 1:
            return self.pick((0.001, 0.05, 0.5, 1, 2**31, 1e300))
        if form == 2:
            return self.provider.ConsumeFloat()
        if form == 3:
            return self._hostile_of(HostileFloat, 0.5)
        return self.pick(BAD_VALUES + (-1, 0, float("nan"), float("inf"), 2**1100))

    def message(self, text_mode: bool) -> Any:
        form = self.form(6)
        payload = self.provider.ConsumeBytes(self.form(1500))
        if form <= 2:
            return payload.decode("latin-1") if text_mode else payload
        if form == 3:
            return self.pick((bytearray(payload), memoryview(payload), payload.decode("latin-1")
                              if not text_mode else payload))
        if form == 4:
            kind = HostileStr if text_mode else HostileBytes
            return self._hostile_of(kind, payload.decode("latin-1") if text_mode else payload)
        return self.pick(BAD_VALUES)

    def recv_size(self) -> Any:
        form = self.form(5)
        if form <= 1:
            return self.provider.ConsumeIntInRange(1, 4096)
        if form == 2:
            return self.pick((2**63, 2**63 - 1, 2**64, 10**40, 1 << 20, (1 << 20) + 1))
        if form == 3:
            return self._hostile_of(HostileInt, 16)
        return self.pick(BAD_VALUES + (0, -1, -(2**63)))

    def literal_name(self) -> Any:
        # Literals only: a name would ask the resolver.
        form = self.form(4)
        if form == 0:
            return str(ipaddress.IPv4Address(self.provider.ConsumeIntInRange(0, 2**32 - 1)))
        if form == 1:
            return str(ipaddress.IPv6Address(self.provider.ConsumeIntInRange(0, 2**128 - 1)))
        if form == 2:
            return self._hostile_of(HostileStr, self.pick(LOOPBACK))
        return self.pick(BAD_VALUES)


def refused_or_loopback(text: str) -> bool:
    """Whether a destination is safe: a loopback literal or not an address."""
    address_text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(address_text)
    except ValueError:
        return True
    return address.is_loopback


class Session:
    """The objects one input opened; all closed at the end."""

    def __init__(self) -> None:
        self.tcp: list[Any] = []
        self.servers: list[Any] = []
        self.udp: list[Any] = []

    def keep(self, result: Any) -> None:
        if isinstance(result, tuple) and len(result) == 3 and isinstance(
                result[2], _repynet.TCPSocket):
            result = result[2]
        if isinstance(result, _repynet.TCPSocket):
            self.tcp.append(result)
        elif isinstance(result, _repynet.TCPServerSocket):
            self.servers.append(result)
        elif isinstance(result, _repynet.UDPServerSocket):
            self.udp.append(result)

    def close_all(self) -> None:
        for obj in self.tcp + self.servers + self.udp:
            obj.close()
        self.tcp, self.servers, self.udp = [], [], []


def call(session: Session, function: Callable[..., Any], *args: Any,
         recv_size: Any = None) -> None:
    try:
        result = function(*args)
    except HostileDunderCalled as err:
        raise AssertionError(f"{function.__name__}: a hostile {err} ran") from err
    except errors.RepyArgumentError:
        result = None
        assert recv_size is None or type(recv_size) is not int or recv_size < 1, \
            f"recv({recv_size}) is an argument error, not clamped (D18)"
    except errors.RepyException:
        result = None
    assert not hostile_calls, f"{function.__name__}: hostile dunders ran: {hostile_calls}"
    session.keep(result)


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    draw = Draw(provider)
    session = Session()
    live_before = _repynet._live_objects()
    try:
        for _ in range(provider.ConsumeIntInRange(1, MAX_ACTIONS)):
            text_mode = provider.ConsumeBool()
            api = TEXT_API if text_mode else BYTES_API
            run_action(draw.form(12), api, text_mode, draw, session)
    finally:
        session.close_all()
    if _repynet._live_objects() != live_before:
        # Only a cycle (a traceback holding a frame) may keep one alive.
        gc.collect()
        assert _repynet._live_objects() == live_before, _repynet._live_objects()
    usage = restrictions.getresources()[1]
    assert usage["insockets"] == 0 and usage["outsockets"] == 0, usage


def run_action(action: int, api: dict[str, Any], text_mode: bool, draw: Draw,
               session: Session) -> None:
    if action == 0:
        call(session, api["gethostbyname"], draw.literal_name())
    elif action == 1:
        call(session, api["getAddripv6"], draw.literal_name())
    elif action == 2:
        call(session, api["sendmessage"], draw.destination_ip(), draw.port(),
             draw.message(text_mode), draw.local_ip(), draw.port())
    elif action == 3:
        call(session, api["listenformessage"], draw.local_ip(), draw.port())
    elif action == 4:
        call(session, api["openconnection"], draw.destination_ip(), draw.port(),
             draw.local_ip(), draw.port(), draw.timeout())
    elif action == 5:
        call(session, api["listenforconnection"], draw.local_ip(), draw.port())
    elif action == 6 and session.tcp:
        call(session, draw.pick(session.tcp).send, draw.message(text_mode))
    elif action == 7 and session.tcp:
        size = draw.recv_size()
        call(session, draw.pick(session.tcp).recv, size, recv_size=size)
    elif action == 8 and session.servers:
        call(session, draw.pick(session.servers).getconnection)
    elif action == 9 and session.udp:
        call(session, draw.pick(session.udp).getmessage)
    elif action == 10:
        objects = session.tcp + session.servers + session.udp
        if objects:
            call(session, draw.pick(objects).close)
    else:
        call(session, api["getmyip"])


BYTES_API: dict[str, Any] = {
    name: getattr(repynet, name) for name in repynet.V2_NAMES + ("getAddripv6",)}
TEXT_API = repynet.api_namespace(text=True)


if __name__ == "__main__":
    # Loopback rates high enough that the fuzzer never waits for a bucket.
    fast = {name: 1e12 for name in ("netsend", "netrecv", "loopsend", "looprecv")}
    restrictions.set_restrictions(restrictions.Restrictions.default().replace(**fast))
    atheris.Setup(fuzz_argv(), test_one_input)
    atheris.Fuzz()
