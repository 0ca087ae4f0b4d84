"""Restrictions: the file format, the limits in force, and ``getresources()``.

A restrictions file has one directive per line, in the original Repy format
(spec 6.1, decisions D20 and D28)::

    resource insockets 500      # counts are non-negative integers
    resource netsend 300000000  # rates are non-negative decimals, bytes/s
    resource connport 63100     # each connport/messport line adds one port
    call sendmess arg 0 is 127.0.0.1 allow   # Repy V1 call rule: parsed, not enforced

Every fact about a resource (its name, the kind of value it takes, whether
the C core enforces it, Seattle's default) is written once, in
:data:`SCHEMA`; the parser, the builder, the defaults, the values handed to
C and the table in docs/restrictions.md are derived from it.

This module owns the format, and values are checked here, once.  The C core
owns enforcement: :func:`set_restrictions` hands it the enforced limits as
typed values (port sets as one 8 KiB bitmap each), and :func:`getresources`
reads usage back from it, so no count is kept twice.  Restrictions are
process-wide: every caller of the network API in the process shares one set
of limits and one set of counters.
"""

from __future__ import annotations

import enum
import math
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any, NamedTuple, NoReturn, TypeVar, Union

from . import _repynet

__all__ = [
    "Restrictions",
    "RestrictionsError",
    "load_restrictions",
    "set_restrictions",
    "current_restrictions",
    "getresources",
]


# --- the schema ----------------------------------------------------------------


class Kind(enum.Enum):
    """The kind of value a resource takes (D20, D28)."""

    COUNT = "count"        # a non-negative integer, at most MAX_INTEGER
    DECIMAL = "decimal"    # a non-negative finite decimal, held as float
    PORTSET = "port set"   # ports 1-65535; each file line adds one


class Resource(NamedTuple):
    """One row of :data:`SCHEMA`."""

    name: str
    kind: Kind
    enforced: bool             # whether the C core enforces it
    default: Union[int, float, range]  # in Seattle's restrictions.default
    limits: str                # what it limits, for the docs table


_SEATTLE_PORTS = range(63100, 63200)

# The 17 resources of Repy, in the order of spec 6.1 (getresources()'s keys).
SCHEMA: tuple[Resource, ...] = (
    Resource("cpu", Kind.DECIMAL, False, 1.0, "share of one CPU"),
    Resource("memory", Kind.COUNT, False, 100000000, "bytes of memory"),
    Resource("diskused", Kind.COUNT, False, 100000000, "bytes on disk"),
    Resource("events", Kind.COUNT, True, 1000,
             "threads: the runner's main program holds one, each `createthread` one more"),
    Resource("filewrite", Kind.DECIMAL, False, 10000000.0, "file bytes written per second"),
    Resource("fileread", Kind.DECIMAL, False, 10000000.0, "file bytes read per second"),
    Resource("filesopened", Kind.COUNT, False, 5, "files open at once"),
    Resource("insockets", Kind.COUNT, True, 500, "listeners (TCP and UDP) held at once"),
    Resource("outsockets", Kind.COUNT, True, 500,
             "connections and UDP send sockets held at once; also the TCP listen backlog "
             "(capped at `SOMAXCONN`)"),
    Resource("netsend", Kind.DECIMAL, True, 300000000.0,
             "bytes per second sent, non-loopback"),
    Resource("netrecv", Kind.DECIMAL, True, 300000000.0,
             "bytes per second received, non-loopback"),
    Resource("loopsend", Kind.DECIMAL, True, 10000000.0, "bytes per second sent, loopback"),
    Resource("looprecv", Kind.DECIMAL, True, 10000000.0,
             "bytes per second received, loopback"),
    Resource("lograte", Kind.DECIMAL, False, 30000.0, "log bytes per second"),
    Resource("random", Kind.DECIMAL, False, 100.0,
             "random bytes per second; charged by the runner's `randombytes()`, not by the C core"),
    Resource("messport", Kind.PORTSET, True, _SEATTLE_PORTS,
             "local UDP ports (`sendmessage`, `listenformessage`)"),
    Resource("connport", Kind.PORTSET, True, _SEATTLE_PORTS,
             "local TCP ports (`openconnection`, `listenforconnection`)"),
)

LIMIT_NAMES: tuple[str, ...] = tuple(resource.name for resource in SCHEMA)
_RESOURCES: dict[str, Resource] = {resource.name: resource for resource in SCHEMA}
# A file must give every enforced number.  An absent port set is meaningful
# (no port of that kind allowed), so port sets may be left out.
_REQUIRED: tuple[str, ...] = tuple(
    resource.name for resource in SCHEMA
    if resource.enforced and resource.kind is not Kind.PORTSET)

# The C core keeps counts in a C long.
MAX_INTEGER = 2**63 - 1
LOWEST_PORT, HIGHEST_PORT = 1, 65535
_BITMAP_BYTES = (HIGHEST_PORT + 1) // 8
_NONZERO_BYTE = re.compile(rb"[^\x00]")
_CALL_ACTIONS = ("allow", "deny", "prompt")

# ASCII only, so that '1_000', non-ASCII digits, 'nan' and 'inf' never reach
# int() or float(), which would accept them (D20).
_INTEGER_TOKEN = re.compile(r"[0-9]+")
_DECIMAL_TOKEN = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Longer tokens are cut in messages: a 1 MB token makes no useful message.
_SHOWN_TOKEN_CHARS = 40

Value = Union[int, float, "PortSet"]
_Self = TypeVar("_Self", bound="_Frozen")


class RestrictionsError(ValueError):
    """A restrictions file or value that cannot be used.

    ``str()`` is ``FILE:LINE: reason`` for an error on a line, and
    ``FILE: reason`` for one that concerns the whole file (a missing resource,
    an unreadable file), where :attr:`line` is ``None``.
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


# --- immutable values ----------------------------------------------------------


class _Frozen:
    """Immutable after construction: a copy is the object itself.

    Constructors set the slots with object.__setattr__; pickling goes
    through each class's __reduce__.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __copy__(self: _Self) -> _Self:
        return self

    def __deepcopy__(self: _Self, memo: dict[int, object]) -> _Self:
        return self


# --- port sets -----------------------------------------------------------------


class PortSet(_Frozen, Set[int]):
    """An immutable set of ports (1-65535) held as an 8 KiB bitmap.

    It behaves as a ``frozenset`` of ``int``: it compares equal to a set of
    the same ports, hashes like the equal ``frozenset``, and copies and
    pickles as itself.  Set operators such as ``|`` return a ``frozenset``.
    Restrictions hold their ``connport`` and ``messport`` as ``PortSet``; the
    C core receives the bitmap as it is.
    """

    __slots__ = ("_bitmap", "_count", "_hash_cache")

    _bitmap: bytes   # bit (port % 8) of byte (port // 8) is set for each port
    _count: int
    _hash_cache: int | None

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("PortSet is built by the restrictions parser and builder")

    @classmethod
    def _from_bitmap(cls, bitmap: bytes) -> PortSet:
        # Also the pickle path: a bitmap of another size or with port 0 set
        # would make a set the C core refuses.
        if len(bitmap) != _BITMAP_BYTES or bitmap[0] & 1:
            raise ValueError(f"a port bitmap is {_BITMAP_BYTES} bytes without port 0")
        self = object.__new__(cls)
        object.__setattr__(self, "_bitmap", bytes(bitmap))
        object.__setattr__(self, "_count", bin(int.from_bytes(bitmap, "little")).count("1"))
        object.__setattr__(self, "_hash_cache", None)
        return self

    def __contains__(self, port: object) -> bool:
        # Set semantics by value, as frozenset: 80 and 80.0 are the same member.
        if isinstance(port, float) and port.is_integer():
            number = int(port)
        elif isinstance(port, int):
            number = int.__int__(port)
        else:
            return False
        if not LOWEST_PORT <= number <= HIGHEST_PORT:
            return False
        return bool(self._bitmap[number >> 3] >> (number & 7) & 1)

    def __iter__(self) -> Iterator[int]:
        # The regular expression skips the zero bytes at C speed: a set of a
        # hundred ports visits a dozen bytes, not 8,192.
        bitmap = self._bitmap
        for match in _NONZERO_BYTE.finditer(bitmap):
            index = match.start()
            byte, base = bitmap[index], index << 3
            for bit in range(8):
                if byte >> bit & 1:
                    yield base + bit

    def __len__(self) -> int:
        return self._count

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PortSet):
            return self._bitmap == other._bitmap
        return Set.__eq__(self, other)

    def __hash__(self) -> int:
        # Set._hash is frozenset's algorithm, so equal sets hash alike.
        if self._hash_cache is None:
            object.__setattr__(self, "_hash_cache", self._hash())
        assert self._hash_cache is not None
        return self._hash_cache

    @classmethod
    def _from_iterable(cls, iterable: Iterable[Any]) -> frozenset[Any]:
        return frozenset(iterable)

    def __repr__(self) -> str:
        return f"PortSet({{{', '.join(_port_ranges(self))}}})"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (PortSet._from_bitmap, (self._bitmap,))


def _port_ranges(ports: Iterable[int]) -> Iterator[str]:
    """``'63100..63199'``-style runs of consecutive ports, for repr()."""
    start = previous = -2
    for port in ports:
        if port != previous + 1:
            if start >= 0:
                yield str(start) if start == previous else f"{start}..{previous}"
            start = port
        previous = port
    if start >= 0:
        yield str(start) if start == previous else f"{start}..{previous}"


class _PortSetBuilder:
    """Collects ports into a bitmap: 8 KiB however many ports are added."""

    __slots__ = ("_bitmap",)

    def __init__(self) -> None:
        self._bitmap = bytearray(_BITMAP_BYTES)

    def add(self, port: int) -> None:
        self._bitmap[port >> 3] |= 1 << (port & 7)

    def build(self) -> PortSet:
        return PortSet._from_bitmap(bytes(self._bitmap))


def _port_set(ports: Iterable[int]) -> PortSet:
    builder = _PortSetBuilder()
    for port in ports:
        builder.add(port)
    return builder.build()


# --- call rules (Repy V1) ------------------------------------------------------


class CallRule(NamedTuple):
    """A V1 ``call`` line, parsed; repynet does not enforce call rules.

    ``conditions`` holds ``("arg", N, VALUE)`` for ``arg N is VALUE`` and
    ``("noargs", N)`` for ``noargs is N``, in the order written.
    """

    call: str
    conditions: tuple[tuple[Any, ...], ...]
    action: str


# --- the Restrictions object ---------------------------------------------------


class Restrictions(_Frozen, Mapping[str, Value]):
    """An immutable set of the 17 limits, read as a mapping from name to value.

    Decimals are ``float``, counts ``int`` and port sets :class:`PortSet`.
    Build one with :meth:`from_file`, :meth:`parse`, :meth:`build`,
    :meth:`default` or :meth:`replace`; put it in force with
    :func:`set_restrictions`.  Restrictions are hashable, and equal when
    their 17 values are; the source and V1 call rules do not count.
    """

    __slots__ = ("_values", "_source", "_call_rules")

    _values: dict[str, Value]
    _source: str
    _call_rules: tuple[CallRule, ...]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("use Restrictions.from_file(), .parse(), .build() or .default()")

    @classmethod
    def _create(cls, values: Mapping[str, Value], source: str,
                call_rules: tuple[CallRule, ...] = ()) -> Restrictions:
        self = object.__new__(cls)
        object.__setattr__(self, "_values", {name: values[name] for name in LIMIT_NAMES})
        object.__setattr__(self, "_source", source)
        object.__setattr__(self, "_call_rules", tuple(call_rules))
        return self

    # --- Mapping ----------------------------------------------------------

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(LIMIT_NAMES)

    def __len__(self) -> int:
        return len(LIMIT_NAMES)

    def __hash__(self) -> int:
        return hash(tuple(self._values.values()))

    def __repr__(self) -> str:
        return f"<Restrictions from {self._source}>"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Restrictions._create, (self._values, self._source, self._call_rules))

    @property
    def source(self) -> str:
        """Where these came from: a file path, ``<string>``, ``<build>`` or ``<default>``."""
        return self._source

    @property
    def call_rules(self) -> tuple[CallRule, ...]:
        """The V1 ``call`` lines, parsed, in file order (never enforced)."""
        return self._call_rules

    # --- constructors -----------------------------------------------------

    @classmethod
    def default(cls) -> Restrictions:
        """Seattle's ``restrictions.default``, the limits in force after import."""
        return _DEFAULT

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike[str]]) -> Restrictions:
        """Read and parse a restrictions file; raises :class:`RestrictionsError`."""
        name = _path_name(path)
        parser = _Parser(name)
        try:
            # Binary, one line at a time: lines end at b"\n" only, and a file
            # of any length costs one line of memory.
            with open(name, "rb") as stream:
                for number, raw_line in enumerate(stream, start=1):
                    try:
                        line = raw_line.decode("utf-8")
                    except UnicodeDecodeError:
                        raise RestrictionsError(name, number, "not valid UTF-8") from None
                    if number == 1 and line.startswith("\ufeff"):
                        line = line[1:]  # a byte-order mark some editors write
                    parser.feed(number, line)
        except OSError as err:
            raise RestrictionsError(
                name, None, f"cannot read the file: {err.strerror or err}") from err
        return parser.finish()

    @classmethod
    def parse(cls, text: str, path: str = "<string>") -> Restrictions:
        """Parse the text of a restrictions file; ``path`` names it in errors."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        parser = _Parser(path)
        for number, line in enumerate(_lines(text), start=1):
            parser.feed(number, line)
        return parser.finish()

    @classmethod
    def build(cls, **values: Any) -> Restrictions:
        """Build restrictions in code, checked by the same rules as a file.

        Keyword names are the resource names.  The enforced counts and rates
        are required; other resources default to 0 and connport/messport to
        no port.  Counts take an ``int`` (not ``bool``), decimals an ``int``
        or ``float``, and port sets any iterable of ``int`` such as
        ``range(63100, 63200)``.  Errors raise :class:`RestrictionsError` with
        path ``<build>`` and no line.
        """
        return cls._built(values, ())

    @classmethod
    def _built(cls, values: Mapping[str, Any],
               call_rules: tuple[CallRule, ...]) -> Restrictions:
        checked = {}
        for name, value in values.items():
            if name not in _RESOURCES:
                raise RestrictionsError("<build>", None, f"unknown resource {name!r}")
            checked[name] = _check_value(_RESOURCES[name], value)
        _check_complete("<build>", checked)
        return cls._create(_with_zeros(checked), "<build>", call_rules)

    def replace(self, **changes: Any) -> Restrictions:
        """A copy with some values changed, checked like :meth:`build`."""
        return self._built({**self._values, **changes}, self._call_rules)

    # --- views ------------------------------------------------------------

    def limits(self) -> dict[str, Union[int, float, set[int]]]:
        """A fresh dict of the 17 limits; port sets are fresh ``set`` objects."""
        return {name: set(value) if isinstance(value, PortSet) else value
                for name, value in self._values.items()}

    def _native_limits(self) -> dict[str, Union[int, float, bytes]]:
        # What _repynet._apply_restrictions takes: the enforced limits, typed
        # (int counts, float rates, port sets as their bitmap).
        return {resource.name: _native_value(self._values[resource.name])
                for resource in SCHEMA if resource.enforced}


def _native_value(value: Value) -> Union[int, float, bytes]:
    return value._bitmap if isinstance(value, PortSet) else value


# --- parsing -------------------------------------------------------------------


def _path_name(path: object) -> str:
    """The str path of ``path``, or a RestrictionsError for what open() would refuse."""
    if not isinstance(path, (str, os.PathLike)):
        raise RestrictionsError(
            "<path>", None, f"a path must be a str or os.PathLike, got {type(path).__name__}")
    name = os.fspath(path)
    if not isinstance(name, str):
        raise RestrictionsError(
            "<path>", None, f"a path must be a str or os.PathLike, got {type(name).__name__}")
    if "\0" in name:
        raise RestrictionsError(name.replace("\0", "\\0"), None,
                                "a path cannot contain a NUL character")
    return name


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text``, split at "\\n" only, as an editor numbers them.

    str.splitlines() would also break at \\x0b, \\x1c and more, shifting line
    numbers.  A generator keeps a second copy of the text out of memory.
    """
    start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


class _Parser:
    """Reads lines one by one; nothing but the values is kept."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._values: dict[str, Value] = {}
        self._first_seen: dict[str, int] = {}
        self._ports = {resource.name: _PortSetBuilder()
                       for resource in SCHEMA if resource.kind is Kind.PORTSET}
        self._call_rules: list[CallRule] = []

    def _error(self, line: int, reason: str) -> NoReturn:
        raise RestrictionsError(self._path, line, reason)

    def feed(self, number: int, line: str) -> None:
        # Whitespace is Python's: CR, tab and form feed separate tokens too.
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            return
        if tokens[0] == "resource":
            self._resource(number, tokens)
        elif tokens[0] == "call":
            self._call_rules.append(self._call(number, tokens))
        else:
            self._error(number, f"unknown directive {_shown(tokens[0])} "
                                "(expected 'resource' or 'call')")

    def _resource(self, number: int, tokens: list[str]) -> None:
        if len(tokens) != 3:
            self._error(number, "expected 'resource NAME VALUE' (3 tokens), "
                                f"got {len(tokens)} tokens")
        _, name, token = tokens
        resource = _RESOURCES.get(name)
        if resource is None:
            self._error(number, f"unknown resource {_shown(name)}")
        if resource.kind is Kind.PORTSET:
            port = _read_integer(token, HIGHEST_PORT)
            if port is None or not LOWEST_PORT <= port <= HIGHEST_PORT:
                self._error(number, f"{name} must be a port number from {LOWEST_PORT} "
                                    f"to {HIGHEST_PORT}, got {_shown(token)}")
            self._ports[name].add(port)
            return
        if name in self._first_seen:
            self._error(number, f"resource {name!r} is given twice "
                                f"(first on line {self._first_seen[name]})")
        self._first_seen[name] = number
        self._values[name] = self._number(number, resource, token)

    def _number(self, number: int, resource: Resource, token: str) -> Union[int, float]:
        name = resource.name
        if resource.kind is Kind.COUNT:
            value = _read_integer(token, MAX_INTEGER)
            if value is None:
                self._error(number, f"{name} must be a non-negative integer, "
                                    f"got {_shown(token)}")
            if value > MAX_INTEGER:
                self._error(number, f"{name} is too large (at most {MAX_INTEGER}), "
                                    f"got {_shown(token)}")
            return value
        if not _DECIMAL_TOKEN.fullmatch(token):
            self._error(number, f"{name} must be a non-negative decimal number, "
                                f"got {_shown(token)}")
        # float() has no digit limit (unlike int()), and the grammar above
        # leaves it nothing but plain decimals.
        decimal = float(token)
        if not math.isfinite(decimal):
            self._error(number, f"{name} is too large, got {_shown(token)}")
        return decimal

    def _call(self, number: int, tokens: list[str]) -> CallRule:
        """``call NAME [arg N is VALUE | noargs is N]... ACTION`` (Repy V1)."""
        if len(tokens) < 3:
            self._error(number, "expected 'call NAME [RULE]... ACTION', "
                                f"got {len(tokens)} tokens")
        if tokens[-1] not in _CALL_ACTIONS:
            self._error(number, f"unknown call action {_shown(tokens[-1])} "
                                "(expected 'allow', 'deny' or 'prompt')")
        conditions: list[tuple[Any, ...]] = []
        rest = tokens[2:-1]
        while rest:
            if rest[0] == "arg":
                if len(rest) < 4:
                    self._error(number, "expected 'arg N is VALUE'")
                position = self._rule_number(number, rest[1])
                self._expect_is(number, rest[2])
                conditions.append(("arg", position, rest[3]))
                rest = rest[4:]
            elif rest[0] == "noargs":
                if len(rest) < 3:
                    self._error(number, "expected 'noargs is N'")
                self._expect_is(number, rest[1])
                conditions.append(("noargs", self._rule_number(number, rest[2])))
                rest = rest[3:]
            else:
                self._error(number, f"unknown call rule {_shown(rest[0])} "
                                    "(expected 'arg' or 'noargs')")
        return CallRule(tokens[1], tuple(conditions), tokens[-1])

    def _rule_number(self, number: int, token: str) -> int:
        value = _read_integer(token, MAX_INTEGER)
        if value is None or value > MAX_INTEGER:
            self._error(number, f"a call rule needs a non-negative integer, got {_shown(token)}")
        return value

    def _expect_is(self, number: int, token: str) -> None:
        if token != "is":
            self._error(number, f"expected 'is' in a call rule, got {_shown(token)}")

    def finish(self) -> Restrictions:
        _check_complete(self._path, self._values)
        values: dict[str, Value] = dict(self._values)
        for name, builder in self._ports.items():
            values[name] = builder.build()
        return Restrictions._create(_with_zeros(values), self._path, tuple(self._call_rules))


def _read_integer(token: str, maximum: int) -> int | None:
    """A plain ASCII integer token's value, capped at ``maximum + 1``; else None.

    A token of any length is judged first and converted only when short, so
    Python's limit on int() of long strings is never reached.
    """
    if not _INTEGER_TOKEN.fullmatch(token):
        return None
    digits = token.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return maximum + 1
    return min(int(digits), maximum + 1)


def _shown(token: str) -> str:
    """A token as a message shows it: repr(), cut when it is long."""
    if len(token) <= _SHOWN_TOKEN_CHARS:
        return repr(token)
    return f"{token[:_SHOWN_TOKEN_CHARS]!r}... ({len(token)} characters)"


def _check_complete(path: str, values: Mapping[str, object]) -> None:
    missing = [name for name in _REQUIRED if name not in values]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        plural = "s" if len(missing) > 1 else ""
        raise RestrictionsError(
            path, None, f"missing resource{plural} {names}, which repynet enforces")


# --- values given in code ------------------------------------------------------


def _check_value(resource: Resource, value: object) -> Value:
    """Checks one value given in code; returns it as the type the limits hold."""
    name = resource.name
    if resource.kind is Kind.PORTSET:
        if isinstance(value, PortSet):
            return value
        if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
            raise RestrictionsError(
                "<build>", None,
                f"{name} must be an iterable of port numbers, got {type(value).__name__}")
        return _port_set(_check_port(name, port) for port in value)
    if resource.kind is Kind.COUNT:
        number = _exact_int(value)
        if number is None or not 0 <= number <= MAX_INTEGER:
            raise RestrictionsError(
                "<build>", None,
                f"{name} must be a non-negative integer (at most {MAX_INTEGER}), "
                f"got {_shown_value(value)}")
        return number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RestrictionsError(
            "<build>", None,
            f"{name} must be a non-negative decimal number, got {_shown_value(value)}")
    decimal = exact_non_negative_float(value)
    if decimal is None:
        raise RestrictionsError(
            "<build>", None,
            f"{name} must be a finite non-negative number, got {_shown_value(value)}")
    return decimal


def exact_non_negative_float(value: object) -> float | None:
    """An int or float (not bool) as a finite float >= 0, else None.

    float.__float__ and int.__int__ read the exact value, never a subclass's
    override, so the value checked is the value used.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float.__float__(value) if isinstance(value, float) \
            else float(int.__int__(value))
    except OverflowError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _check_port(name: str, port: object) -> int:
    number = _exact_int(port)
    if number is None or not LOWEST_PORT <= number <= HIGHEST_PORT:
        raise RestrictionsError(
            "<build>", None,
            f"{name} must hold port numbers from {LOWEST_PORT} to {HIGHEST_PORT}, "
            f"got {_shown_value(port)}")
    return number


def _exact_int(value: object) -> int | None:
    """The plain int value of an int (subclasses too, not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return int.__int__(value)


def _shown_value(value: object) -> str:
    """A value as a message shows it, short, without running a subclass's __repr__."""
    if isinstance(value, bool):
        return repr(bool(value))
    if isinstance(value, int):
        bits = int.bit_length(value)
        return int.__repr__(value) if bits <= 128 else f"an int of {bits} bits"
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, str):
        return _shown(str.__str__(value))
    return f"a {type(value).__name__}"


def _with_zeros(values: Mapping[str, Value]) -> dict[str, Value]:
    """The given values, with 0, 0.0 or an empty set for every other resource."""
    zeros: dict[Kind, Value] = {Kind.COUNT: 0, Kind.DECIMAL: 0.0, Kind.PORTSET: _EMPTY_PORTS}
    return {resource.name: values[resource.name] if resource.name in values
            else zeros[resource.kind] for resource in SCHEMA}


def _default_value(resource: Resource) -> Value:
    default = resource.default
    return _port_set(default) if isinstance(default, range) else default


_EMPTY_PORTS = _port_set(())
_DEFAULT = Restrictions._create(
    {resource.name: _default_value(resource) for resource in SCHEMA}, "<default>")


# --- the restrictions in force (process-wide) ---------------------------------

_state_lock = threading.Lock()
_current: Restrictions | None = None


def set_restrictions(restrictions: Restrictions) -> None:
    """Put ``restrictions`` in force for the whole process, replacing the old ones."""
    global _current
    if not isinstance(restrictions, Restrictions):
        raise TypeError(f"expected Restrictions, got {type(restrictions).__name__}")
    with _state_lock:
        _repynet._apply_restrictions(restrictions._native_limits())
        _current = restrictions


def load_restrictions(path: Union[str, os.PathLike[str]]) -> Restrictions:
    """Read a restrictions file and put it in force; returns the Restrictions."""
    restrictions = Restrictions.from_file(path)
    set_restrictions(restrictions)
    return restrictions


def current_restrictions() -> Restrictions | None:
    """The Restrictions in force (immutable, so safe to share)."""
    return _current


def apply_default() -> None:
    """Put Seattle's default in force; ``import repynet`` calls this once."""
    set_restrictions(_DEFAULT)


def getresources() -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    """``(limits, usage, stoptimes)`` as Repy's getresources() (spec 6.4).

    limits has the 17 keys of the restrictions in force, port sets as fresh
    ``set`` objects; usage has the same keys plus ``threadcpu``: the enforced
    values come from the C core, the others read 0.  stoptimes is always
    empty (repynet does not throttle CPU).  Everything returned is a fresh
    copy: changing it changes nothing.
    """
    assert _current is not None, "import repynet puts the default in force"
    limits = _current.limits()
    native = _repynet._usage()
    usage: dict[str, Any] = {}
    for resource in SCHEMA:
        if resource.kind is Kind.PORTSET:
            usage[resource.name] = {int(port) for port in native[resource.name]} \
                if resource.enforced else set()
        elif resource.kind is Kind.COUNT:
            usage[resource.name] = int(native[resource.name]) if resource.enforced else 0
        else:
            usage[resource.name] = float(native[resource.name]) if resource.enforced else 0.0
    usage["threadcpu"] = 0.0
    return limits, usage, []
