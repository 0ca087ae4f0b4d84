"""Restrictions: the file format, the limits in force, and ``getresources()``.

A restrictions file has one directive per line, in the original Repy format
(spec 6.1, decisions D20 and D28)::

    resource insockets 500      # counts are non-negative integers
    resource netsend 300000000  # rates are non-negative decimals, bytes/s
    resource connport 63100     # each connport/messport line adds one port
    call gethostbyname allow    # legacy V1 call rules: accepted, ignored

This module owns only the format and the Python view of the limits.  The C
core owns enforcement: :func:`set_restrictions` hands it the network limits
once, and :func:`getresources` reads usage back from it, so no count is kept
twice.  Restrictions are process-wide: every caller of the network API in
the process shares one set of limits and one set of counters.
"""

import math
import re
import threading
from collections.abc import Iterable, Mapping

from . import _repynet

__all__ = [
    "Restrictions",
    "RestrictionsError",
    "load_restrictions",
    "set_restrictions",
    "current_restrictions",
    "getresources",
]

# The 17 keys of getresources()'s limits, in the order of spec 6.1.
LIMIT_NAMES = (
    "cpu", "memory", "diskused", "events", "filewrite", "fileread", "filesopened",
    "insockets", "outsockets", "netsend", "netrecv", "loopsend", "looprecv",
    "lograte", "random", "messport", "connport",
)
# Renewable resources and cpu: non-negative decimals (a float).
DECIMAL_RESOURCES = frozenset({
    "cpu", "filewrite", "fileread", "netsend", "netrecv", "loopsend", "looprecv",
    "lograte", "random",
})
# Counts, memory and disk: non-negative integers (D28).
INTEGER_RESOURCES = frozenset({
    "memory", "diskused", "events", "filesopened", "insockets", "outsockets",
})
# Port sets: each line adds one port.
PORT_RESOURCES = frozenset({"connport", "messport"})
# What the C core enforces and therefore needs a value for.  connport and
# messport are enforced too, but an absent set is meaningful: no port allowed.
REQUIRED_RESOURCES = (
    "insockets", "outsockets", "netsend", "netrecv", "loopsend", "looprecv", "events",
)
ENFORCED_RESOURCES = REQUIRED_RESOURCES + ("connport", "messport")

# The C core keeps counts in a C long.
MAX_INTEGER = 2**63 - 1
LOWEST_PORT, HIGHEST_PORT = 1, 65535

# ASCII only, so that '1_000', non-ASCII digits, 'nan' and 'inf' never reach
# int() or float(), which would accept them (D20).
_INTEGER_TOKEN = re.compile(r"[0-9]+")
_DECIMAL_TOKEN = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# Seattle's restrictions.default.  The network values are enforced; the rest
# are parsed and reported by getresources() but not enforced.
_DEFAULT_PORTS = range(63100, 63200)
_DEFAULT_VALUES = {
    "cpu": 1.0,
    "memory": 100000000,
    "diskused": 100000000,
    "events": 1000,
    "filewrite": 10000000.0,
    "fileread": 10000000.0,
    "filesopened": 5,
    "insockets": 500,
    "outsockets": 500,
    "netsend": 300000000.0,
    "netrecv": 300000000.0,
    "loopsend": 10000000.0,
    "looprecv": 10000000.0,
    "lograte": 30000.0,
    "random": 100.0,
    "messport": frozenset(_DEFAULT_PORTS),
    "connport": frozenset(_DEFAULT_PORTS),
}


class RestrictionsError(ValueError):
    """A restrictions file or value that cannot be used.

    ``str()`` is ``FILE:LINE: reason`` for an error on a line, and
    ``FILE: reason`` for one that concerns the whole file (a missing resource,
    an unreadable file), where :attr:`line` is ``None``.
    """

    def __init__(self, path, line, reason):
        super().__init__(path, line, reason)
        self.path = path
        self.line = line
        self.reason = reason

    def __str__(self):
        if self.line is None:
            return f"{self.path}: {self.reason}"
        return f"{self.path}:{self.line}: {self.reason}"


class Restrictions(Mapping):
    """An immutable set of the 17 limits, read as a mapping from name to value.

    Decimals are ``float``, counts ``int`` and port sets ``frozenset`` of
    ``int``.  Build one with :meth:`from_file`, :meth:`parse`, :meth:`build`,
    :meth:`default` or :meth:`replace`; put it in force with
    :func:`set_restrictions`.
    """

    __slots__ = ("_values", "_source")

    def __init__(self, *args, **kwargs):
        raise TypeError("use Restrictions.from_file(), .parse(), .build() or .default()")

    @classmethod
    def _create(cls, values, source):
        self = object.__new__(cls)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_source", source)
        return self

    def __setattr__(self, name, value):
        raise AttributeError("Restrictions are immutable; use .replace() for a changed copy")

    def __delattr__(self, name):
        raise AttributeError("Restrictions are immutable")

    # --- Mapping ----------------------------------------------------------

    def __getitem__(self, name):
        return self._values[name]

    def __iter__(self):
        return iter(LIMIT_NAMES)

    def __len__(self):
        return len(LIMIT_NAMES)

    def __repr__(self):
        return f"<Restrictions from {self._source}>"

    # Immutable: a copy is the object itself, and pickling rebuilds it.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (_restore, (self._values, self._source))

    @property
    def source(self):
        """Where these came from: a file path, ``<string>``, ``<build>`` or ``<default>``."""
        return self._source

    # --- constructors -----------------------------------------------------

    @classmethod
    def default(cls):
        """Seattle's ``restrictions.default``, the limits in force after import."""
        return cls._create(_DEFAULT_VALUES, "<default>")

    @classmethod
    def from_file(cls, path):
        """Read and parse a restrictions file; raises :class:`RestrictionsError`."""
        path = str(path)
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as err:
            raise RestrictionsError(path, None,
                                    f"cannot read the file: {err.strerror}") from err
        try:
            # utf-8-sig: a byte-order mark some editors write is not a token.
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = data[:err.start].count(b"\n") + 1
            raise RestrictionsError(path, line, "not valid UTF-8") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text, path="<string>"):
        """Parse the text of a restrictions file; ``path`` names it in errors."""
        values = {}
        first_seen = {}
        ports = {name: set() for name in PORT_RESOURCES}
        # split("\n"), not splitlines(): line numbers must match what an
        # editor shows, and splitlines() also breaks at \x0b, \x1c and more.
        for number, raw_line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
            tokens = raw_line.split("#", 1)[0].split()
            if not tokens or tokens[0] == "call":
                continue
            if tokens[0] != "resource":
                raise RestrictionsError(
                    path, number,
                    f"unknown directive {tokens[0]!r} (expected 'resource' or 'call')")
            if len(tokens) != 3:
                raise RestrictionsError(
                    path, number,
                    f"expected 'resource NAME VALUE' (3 tokens), got {len(tokens)} tokens")
            _, name, token = tokens
            if name not in _DEFAULT_VALUES:
                raise RestrictionsError(path, number, f"unknown resource {name!r}")
            if name in PORT_RESOURCES:
                ports[name].add(_parse_port(name, token, path, number))
                continue
            if name in first_seen:
                raise RestrictionsError(
                    path, number,
                    f"resource {name!r} is given twice (first on line {first_seen[name]})")
            first_seen[name] = number
            values[name] = _parse_number(name, token, path, number)
        missing = [name for name in REQUIRED_RESOURCES if name not in values]
        if missing:
            raise RestrictionsError(path, None, _missing_reason(missing))
        for name, port_set in ports.items():
            values[name] = frozenset(port_set)
        return cls._create(_with_zeros(values), path)

    @classmethod
    def build(cls, **values):
        """Build restrictions in code, checked by the same rules as a file.

        Keyword names are the resource names.  insockets, outsockets, events
        and the four rates are required; other resources default to 0 and
        connport/messport to no port.  Counts, memory and diskused take an
        ``int`` (not ``bool``), decimals an ``int`` or ``float``, and port sets
        any iterable of ``int`` such as ``range(63100, 63200)``.  Errors
        raise :class:`RestrictionsError` with path ``<build>`` and no line.
        """
        checked = {}
        for name, value in values.items():
            if name not in _DEFAULT_VALUES:
                raise RestrictionsError("<build>", None, f"unknown resource {name!r}")
            checked[name] = _check_value(name, value)
        missing = [name for name in REQUIRED_RESOURCES if name not in checked]
        if missing:
            raise RestrictionsError("<build>", None, _missing_reason(missing))
        return cls._create(_with_zeros(checked), "<build>")

    def replace(self, **changes):
        """A copy with some values changed, checked like :meth:`build`."""
        return type(self).build(**{**self._values, **changes})

    # --- views ------------------------------------------------------------

    def limits(self):
        """A fresh dict of the 17 limits; port sets are fresh ``set`` objects."""
        return {name: set(value) if name in PORT_RESOURCES else value
                for name, value in self._values.items()}

    def _native_limits(self):
        # Exactly the keys _repynet._apply_restrictions expects.
        return {
            "connport": self._values["connport"],
            "messport": self._values["messport"],
            "insockets": self._values["insockets"],
            "outsockets": self._values["outsockets"],
            "events": self._values["events"],
            "netsend": self._values["netsend"],
            "netrecv": self._values["netrecv"],
            "loopsend": self._values["loopsend"],
            "looprecv": self._values["looprecv"],
        }


def _restore(values, source):
    return Restrictions._create(values, source)


# --- parsing and checking helpers ---------------------------------------------


def _parse_number(name, token, path, line):
    if name in INTEGER_RESOURCES:
        if not _INTEGER_TOKEN.fullmatch(token):
            raise RestrictionsError(
                path, line, f"{name} must be a non-negative integer, got {token!r}")
        value = int(token)
        if value > MAX_INTEGER:
            raise RestrictionsError(
                path, line, f"{name} is too large (at most {MAX_INTEGER}), got {token!r}")
        return value
    if not _DECIMAL_TOKEN.fullmatch(token):
        raise RestrictionsError(
            path, line, f"{name} must be a non-negative decimal number, got {token!r}")
    value = float(token)
    if not math.isfinite(value):
        raise RestrictionsError(path, line, f"{name} is too large, got {token!r}")
    return value


def _parse_port(name, token, path, line):
    if not _INTEGER_TOKEN.fullmatch(token) or \
            not LOWEST_PORT <= int(token) <= HIGHEST_PORT:
        raise RestrictionsError(
            path, line,
            f"{name} must be a port number from {LOWEST_PORT} to {HIGHEST_PORT}, got {token!r}")
    return int(token)


def _check_value(name, value):
    """Checks one value given in code; returns it as the type the limits hold."""
    if name in PORT_RESOURCES:
        if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
            raise RestrictionsError(
                "<build>", None,
                f"{name} must be an iterable of port numbers, got {type(value).__name__}")
        return frozenset(_check_port(name, port) for port in value)
    if name in INTEGER_RESOURCES:
        # int.__int__ reads the exact value, never a subclass's override, so
        # the value checked is the value used.
        number = _exact_int(value)
        if number is None or not 0 <= number <= MAX_INTEGER:
            raise RestrictionsError(
                "<build>", None,
                f"{name} must be a non-negative integer (at most {MAX_INTEGER}), got {value!r}")
        return number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RestrictionsError(
            "<build>", None, f"{name} must be a non-negative decimal number, got {value!r}")
    try:
        number = float.__float__(value) if isinstance(value, float) \
            else float(int.__int__(value))
    except OverflowError:
        number = math.inf
    if not (math.isfinite(number) and number >= 0):
        raise RestrictionsError(
            "<build>", None, f"{name} must be a finite non-negative number, got {value!r}")
    return number


def _check_port(name, port):
    number = _exact_int(port)
    if number is None or not LOWEST_PORT <= number <= HIGHEST_PORT:
        raise RestrictionsError(
            "<build>", None,
            f"{name} must hold port numbers from {LOWEST_PORT} to {HIGHEST_PORT}, got {port!r}")
    return number


def _exact_int(value):
    """The plain int value of an int (subclasses too, not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return int.__int__(value)


def _missing_reason(missing):
    names = ", ".join(repr(name) for name in missing)
    plural = "s" if len(missing) > 1 else ""
    return f"missing resource{plural} {names}, which repynet enforces"


def _with_zeros(values):
    """The given values, with 0, 0.0 or an empty set for every other resource."""
    complete = {}
    for name in LIMIT_NAMES:
        if name in values:
            complete[name] = values[name]
        elif name in PORT_RESOURCES:
            complete[name] = frozenset()
        elif name in INTEGER_RESOURCES:
            complete[name] = 0
        else:
            complete[name] = 0.0
    return complete


# --- the restrictions in force (process-wide) ---------------------------------

_state_lock = threading.Lock()
_current = None


def set_restrictions(restrictions):
    """Put ``restrictions`` in force for the whole process, replacing the old ones."""
    global _current
    if not isinstance(restrictions, Restrictions):
        raise TypeError(f"expected Restrictions, got {type(restrictions).__name__}")
    with _state_lock:
        _repynet._apply_restrictions(restrictions._native_limits())
        _current = restrictions


def load_restrictions(path):
    """Read a restrictions file and put it in force; returns the Restrictions."""
    restrictions = Restrictions.from_file(path)
    set_restrictions(restrictions)
    return restrictions


def current_restrictions():
    """The Restrictions in force (immutable, so safe to share)."""
    return _current


def apply_default():
    """Put Seattle's default in force; ``import repynet`` calls this once."""
    set_restrictions(Restrictions.default())


_NETWORK_USAGE_NUMBERS = {
    "insockets": int, "outsockets": int, "events": int,
    "netsend": float, "netrecv": float, "loopsend": float, "looprecv": float,
}


def getresources():
    """``(limits, usage, stoptimes)`` as Repy's getresources() (spec 6.4).

    limits has the 17 keys of the restrictions in force; usage has the same
    keys plus ``threadcpu``: the network values come from the C core, the
    resources repynet does not enforce read 0.  stoptimes is always empty
    (repynet does not throttle CPU).  Everything returned is a fresh copy:
    changing it changes nothing.
    """
    limits = _current.limits()
    native = _repynet._usage()
    usage = {name: set() if name in PORT_RESOURCES else zero
             for name, zero in _with_zeros({}).items()}
    for name, kind in _NETWORK_USAGE_NUMBERS.items():
        usage[name] = kind(native[name])
    for name in PORT_RESOURCES:
        usage[name] = {int(port) for port in native[name]}
    usage["threadcpu"] = 0.0
    return limits, usage, []
