"""`python -m repynet run`: run a Repy V2 program on repynet.

Command line (issue 6)::

    python -m repynet run [OPTIONS] PROGRAM [OPTIONS] [--] [ARG ...]

Options are read before PROGRAM and in the unbroken run of known options
right after it; the first other token, or ``--``, starts the program's
arguments (``callargs``), which are passed verbatim.  Before PROGRAM, ``--``
ends the options and the next token is PROGRAM.

Exit status: 0 when the program and its threads finish or it calls
``exitall()``; 1 for an uncaught exception; 2 for a usage error, an
unreadable program or a bad restrictions file; 130 on SIGINT.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from . import __version__, _program, _repynet, _v1program, api_namespace, dylink, errors
from . import _observe as observe
from .py2compat import SOURCE_LANGUAGES, CompileOverflowError, TranslationCache
from .restrictions import Restrictions, RestrictionsError, getresources, set_restrictions

USAGE = "usage: python -m repynet run [OPTIONS] PROGRAM [OPTIONS] [--] [ARG ...]"

HELP = f"""{USAGE}

Run a Repy V2 program (Python 2 or 3 source) with the Repy network API, log,
sleep, createthread, createlock, getruntime, getthreadname, exitall,
getresources, randombytes, getlasterror, dylink's dy_* calls and callargs in
its namespace.

options:
  --restrictions FILE  the restrictions file to enforce (default: Seattle's
                       restrictions.default, ports 63100-63199)
  --api v2|v1          the Repy API the program is written for (default v2;
                       v1: openconn, waitforconn, settimer... see docs/v1.md)
  --ip ADDR            a preferred local IP for getmyip and binding
                       (repeatable; order gives preference)
  --iface NAME         prefer the IPv4 addresses of an interface (repeatable)
  --nootherips         allow binding only to the --ip/--iface addresses
                       (127.0.0.1 stays allowed)
  --source py2|py3|auto
                       the program's Python (default auto: source that
                       parses as Python 2 runs with its Python 2 meaning)
  --lib DIR            look for dylink modules in DIR after the program's
                       directory (repeatable; then $REPY_PATH)
  --trace              log every denied call and every rate wait to stderr
  --summary            at the end, print the final getresources() figures
                       and the seconds waited for each rate to stderr
  -h, --help           show this help and exit
  --version            show the version and exit

Exit status: 0 done or exitall(); 1 uncaught exception; 2 usage, unreadable
program or bad restrictions file; 130 interrupted (SIGINT).

Not a sandbox: the runner restricts the Repy network calls but does NOT
confine Python code (`import socket` gets around it).  Confine untrusted
programs by operating-system means: a separate user, a network namespace
(unshare -n), seccomp, a container.
"""

_VALUE_OPTIONS: tuple[str, ...] = ("--restrictions", "--api", "--ip", "--iface")
_VALUE_OPTIONS += ("--source", "--lib")
_FLAG_OPTIONS = ("--nootherips", "--trace", "--summary", "--help", "-h", "--version")
_API_VERSIONS = ("v2", "v1")
STATUS_USAGE = 2
STATUS_INTERRUPTED = 130


class UsageError(Exception):
    """A command line that cannot be run."""


@dataclass
class Options:
    program: str | None = None
    callargs: list[str] = field(default_factory=list)
    restrictions: str | None = None
    api: str | None = None
    # ("ip", ADDR) and ("iface", NAME) in command-line order.
    local_addresses: list[tuple[str, str]] = field(default_factory=list)
    nootherips: bool = False
    source: str | None = None
    lib_dirs: list[str] = field(default_factory=list)
    trace: bool = False
    summary: bool = False
    show_help: bool = False
    show_version: bool = False


def parse_command_line(argv: list[str]) -> Options:
    """The Options of ``run``'s arguments; raises UsageError."""
    options = Options()
    index = 0
    while index < len(argv) and options.program is None:
        token = argv[index]
        if token == "--":
            if index + 1 < len(argv):
                options.program = argv[index + 1]
            index += 2
            break
        next_index = _take_option(argv, index, options)
        if next_index is not None:
            index = next_index
        elif token.startswith("-") and token != "-":
            raise UsageError(f"unknown option {token!r}")
        else:
            options.program = token
            index += 1
    # After PROGRAM: known options until the first other token or "--".
    while options.program is not None and index < len(argv):
        if argv[index] == "--":
            index += 1
            break
        next_index = _take_option(argv, index, options)
        if next_index is None:
            break
        index = next_index
    options.callargs = list(argv[index:])
    if options.program is None and not (options.show_help or options.show_version):
        raise UsageError("no PROGRAM given")
    return options


def _take_option(argv: list[str], index: int, options: Options) -> int | None:
    """Applies the known option at argv[index]; the next index, or None."""
    token = argv[index]
    name, has_value, inline_value = token.partition("=") if token.startswith("--") \
        else (token, "", "")
    if name in _VALUE_OPTIONS:
        if has_value:
            value, next_index = inline_value, index + 1
        elif index + 1 < len(argv):
            value, next_index = argv[index + 1], index + 2
        else:
            raise UsageError(f"{name} needs a value")
        _set_value_option(options, name, value)
        return next_index
    if name in _FLAG_OPTIONS and not has_value:
        if name == "--nootherips":
            options.nootherips = True
        elif name == "--trace":
            options.trace = True
        elif name == "--summary":
            options.summary = True
        elif name == "--version":
            options.show_version = True
        else:
            options.show_help = True
        return index + 1
    return None


def _set_value_option(options: Options, name: str, value: str) -> None:
    if name == "--restrictions":
        if options.restrictions is not None:
            raise UsageError("--restrictions given twice")
        options.restrictions = value
    elif name == "--api":
        if options.api is not None:
            raise UsageError("--api given twice")
        if value not in _API_VERSIONS:
            raise UsageError(f"--api must be v2 or v1, got {value!r}")
        options.api = value
    elif name == "--source":
        if value not in SOURCE_LANGUAGES:
            raise UsageError(f"--source must be py2, py3 or auto, got {value!r}")
        options.source = value
    elif name == "--lib":
        options.lib_dirs.append(value)
    elif name == "--ip":
        options.local_addresses.append(("ip", value))
    else:
        options.local_addresses.append(("iface", value))


def main(argv: list[str], prog: str = "python -m repynet") -> int:
    """Runs ``PROG run ARGV``; returns the exit status.

    prog is how the user called repynet (``repynet`` for the console
    script), so that usage lines show a command that works.
    """
    # A parent that ignores SIGINT (a shell's background job) must not make
    # the program immune to Ctrl-C: 130 is part of the contract.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run(argv, prog)
    except KeyboardInterrupt:
        # Interrupted before the program started: no thread to stop.
        sys.stderr.write("repynet run: interrupted\n")
        return STATUS_INTERRUPTED


def _run(argv: list[str], prog: str) -> int:
    try:
        options = parse_command_line(argv)
    except UsageError as err:
        usage = _as_called(USAGE, prog)
        sys.stderr.write(f"repynet run: {err}\n{usage}\n({prog} run --help for the options)\n")
        return STATUS_USAGE
    if options.show_help:
        sys.stdout.write(_as_called(HELP, prog))
        return 0
    if options.show_version:
        sys.stdout.write(f"repynet {__version__}\n")
        return 0
    # parse_command_line leaves PROGRAM unset only for --help or --version.
    assert options.program is not None
    if options.restrictions is not None:
        try:
            restrictions = Restrictions.from_file(options.restrictions)
        except RestrictionsError as err:
            sys.stderr.write(f"{err}\n")
            return STATUS_USAGE
        set_restrictions(restrictions)
    if options.local_addresses or options.nootherips:
        try:
            _repynet._set_ip_preferences(options.local_addresses, options.nootherips)
        except (errors.RepyException, ValueError) as err:
            sys.stderr.write(f"repynet run: bad --ip/--iface: {err}\n")
            return STATUS_USAGE

    # `run dylink.r2py PROGRAM ...` (repy.py's command line): dylink is native.
    source = None
    try:
        if not dylink.names_dylink(options.program):
            with open(options.program, "rb") as stream:
                source = stream.read()
    except OSError as err:
        sys.stderr.write(f"repynet run: cannot read {options.program}: {err.strerror}\n")
        return STATUS_USAGE

    _make_stdout_faithful()
    program = _program.Program(options.program, options.callargs)
    linker = dylink.Linker(program, options.program, options.source or "auto",
                           options.lib_dirs, TranslationCache.for_user(_warn))
    namespace = program.namespace(_network_namespace())
    try:
        code = linker.prepare_main(source, namespace)
    except (SyntaxError, ValueError) as err:
        if source is not None and _looks_like_restrictions(source):
            sys.stderr.write(_restrictions_hint(options.program, prog))
            return STATUS_USAGE
        # A program that does not compile is the program's error (status 1),
        # reported as Python would, without the runner's frames.
        sys.stderr.write(_program.format_uncaught(err, skip_frames=1))
        return 1
    except CompileOverflowError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    if options.trace:
        observe.install_trace(sys.stderr)
    on_exit = (lambda: observe.write_summary(sys.stderr)) if options.summary else None
    if options.api == "v1":
        # Python 2 source needs the builtins its translation relies on.
        return _v1program.run(options.program, code, options.callargs,
                              builtins=namespace["__builtins__"], on_exit=on_exit)
    program.on_exit = on_exit

    try:
        program.start(code, namespace)
    except errors.ResourceExhaustedError as err:
        sys.stderr.write("repynet run: the program's main thread needs one 'events' item\n"
                         f"{type(err).__name__}: {err}\n")
        return 1
    try:
        status: int = program.wait()
    except KeyboardInterrupt:
        sys.stderr.write("repynet run: interrupted\n")
        program.terminate(STATUS_INTERRUPTED)
    sys.stdout.flush()
    if options.summary:
        observe.write_summary(sys.stderr)
    return status


def _looks_like_restrictions(source: bytes) -> bool:
    """Whether a file that does not compile is a restrictions file.

    The original runner took ``repy.py RESTRICTIONS PROGRAM``; given in that
    order here, the restrictions file lands where PROGRAM goes.
    """
    lines = [line.strip() for line in source.decode("utf-8", "replace").splitlines()]
    statements = [line for line in lines if line and not line.startswith("#")]
    return bool(statements) and all(line.startswith(("resource ", "call "))
                                    for line in statements)


def _restrictions_hint(path: str, prog: str) -> str:
    return (f"repynet run: {path} is a restrictions file, not a program.\n"
            f"The original's order 'repy.py RESTRICTIONS PROGRAM [ARG ...]' is\n"
            f"  {prog} run --restrictions RESTRICTIONS PROGRAM [ARG ...]\n"
            f"here.\n")


def _as_called(text: str, prog: str) -> str:
    """text with the command written as the user called it."""
    return text.replace("python -m repynet", prog)


def _network_namespace() -> dict[str, Any]:
    """The V2 network API in text mode, as the program sees it."""
    names = dict(api_namespace(text=True))
    names.setdefault("getresources", _checked_getresources)
    return names


def _warn(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def _checked_getresources(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    _program._check_arguments("getresources", args, kwargs, 0)
    return tuple(getresources())


def _make_stdout_faithful() -> None:
    # Text the program logs is written as UTF-8 whatever the locale says, and
    # a string the encoding cannot take is escaped, never an exception.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(encoding="utf-8", errors="backslashreplace")
