"""One Repy V2 program's run: its namespace functions, threads and exit.

The runner (``runner.py``) reads the command line; this module is what the
program sees.  Every function put into the namespace checks its arguments
the Repy way (spec 1.1): keyword arguments, a wrong number of arguments or
a wrong type raise RepyArgumentError, never TypeError.

Exit rules (issue 6):
- the main code and every thread it started have finished: status 0;
- ``exitall()`` in any thread: status 0 at once;
- an uncaught exception in any thread: a traceback on stderr whose last
  line is ``ClassName: message``, status 1 at once.
Stopping "at once" is ``os._exit`` after flushing stdout and stderr, because
Python cannot stop other threads, and Repy's threads cannot be joined.
"""

import builtins
import itertools
import math
import os
import sys
import threading
import time
import traceback
from types import CodeType
from typing import Any, Callable, Iterable, NoReturn, Optional, TextIO, cast

from . import _repynet, errors
from .restrictions import current_restrictions

# The program's main code runs in a thread of this name (the real main
# thread only supervises and receives SIGINT).
MAIN_THREAD_NAME = "MainThread"
# time.sleep() rejects very long intervals; longer sleeps loop.
_LONGEST_SINGLE_SLEEP = 86400.0
# randombytes() returns this many bytes, as Repy's does.
RANDOM_BYTES_PER_CALL = 1024
# The code that runs a program named after `run dylink.r2py` (dylink.py).
DISPATCH_FILENAME = "<dylink>"
# Frames of these runner files are left out of a program's tracebacks (the
# module loader and the translator stand between a program and its modules).
_HIDDEN_FRAME_FILES = (DISPATCH_FILENAME, *(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    for name in ("dylink.py", "py2compat.py")))


def _check_arguments(function_name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                     count: int) -> None:
    """Repy's wrapper rules 1 and 2: no keywords, exactly ``count`` positionals."""
    if kwargs:
        raise errors.RepyArgumentError(
            f"{function_name}() takes no keyword arguments")
    if len(args) != count:
        raise errors.RepyArgumentError(
            f"{function_name}() takes exactly {count} argument{'s' if count != 1 else ''} "
            f"({len(args)} given)")


def _seconds(value: object) -> Optional[float]:
    """A sleep duration: int or float (not bool), finite, >= 0; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # float.__float__ / int.__int__ read the exact value, never a subclass's
    # override, so the value checked is the value used.
    try:
        seconds = float.__float__(value) if isinstance(value, float) \
            else float(int.__int__(value))
    except OverflowError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class RepyLock:
    """The object ``createlock()`` returns: ``acquire(blocking)`` and ``release()``.

    Like Repy's lock it has no owner: any thread may release it.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        _check_arguments("acquire", args, kwargs, 1)
        blocking = args[0]
        if type(blocking) is not bool:
            raise errors.RepyArgumentError(
                f"acquire() needs a bool, got {type(blocking).__name__}")
        return self._lock.acquire(blocking)

    def release(self, *args: Any, **kwargs: Any) -> None:
        _check_arguments("release", args, kwargs, 0)
        try:
            self._lock.release()
        except builtins.RuntimeError:
            raise errors.LockDoubleReleaseError(
                "Releasing an un-locked lock!") from None


class RateBucket:
    """Repy's nanny rule for a renewable resource such as ``random``.

    A charge first waits until what was used has drained to at most one
    second's worth at the rate in force, then adds its amount: the first
    call never waits, and the average stays at the rate.  The rate is read
    at each charge, so set_restrictions() applies at once.
    """

    def __init__(self, resource: str) -> None:
        self.resource = resource
        self._lock = threading.Lock()
        self._used = 0.0
        self._drained_at = time.monotonic()

    def charge(self, amount: float) -> None:
        """Waits for the rate, then records ``amount``.

        A rate of 0 is what a restrictions file that leaves the resource
        out gives (repynet reads the resources it does not enforce as 0),
        so it means no limit.
        """
        with self._lock:
            while True:
                restrictions = current_restrictions()
                assert restrictions is not None, "import repynet puts the default in force"
                rate = float(cast(float, restrictions[self.resource]))
                if rate <= 0:
                    self._used = 0.0
                    return
                now = time.monotonic()
                self._used = max(0.0, self._used - (now - self._drained_at) * rate)
                self._drained_at = now
                if self._used <= rate:
                    break
                time.sleep(min((self._used - rate) / rate, _LONGEST_SINGLE_SLEEP))
            self._used += amount


class Program:
    """The state one program's namespace functions share with the runner."""

    def __init__(self, path: str, callargs: Iterable[str], stdout: Optional[TextIO] = None,
                 stderr: Optional[TextIO] = None) -> None:
        self.path = path
        self.callargs = list(callargs)
        self._stdout = stdout if stdout is not None else sys.stdout
        self._stderr = stderr if stderr is not None else sys.stderr
        self._started_at = time.monotonic()
        # log(): one soft-space state for all threads, behind one lock.
        self._log_lock = threading.Lock()
        self._softspace = False
        # Program threads still running, the main code included.
        self._live_lock = threading.Lock()
        self._live = 0
        self._all_finished = threading.Event()
        self._thread_numbers = itertools.count(1)
        # Taken once, by the first thread that ends the process.
        self._exit_lock = threading.Lock()
        self._random_bucket = RateBucket("random")
        # Called just before the process ends early (the runner's --summary).
        self.on_exit: Optional[Callable[[], None]] = None

    # --- the namespace ----------------------------------------------------

    def namespace(self, network_api: dict[str, Any]) -> dict[str, Any]:
        """The program's globals: Repy built-ins, exceptions and the network API."""
        names: dict[str, Any] = {"__name__": "__main__", "__file__": self.path}
        names.update(self.api(network_api))
        names.update(
            callargs=list(self.callargs),
            # What repy.py sets: most V2 programs start with
            # `if callfunc == 'initialize':` and keep state in mycontext.
            callfunc="initialize",
            mycontext={},
        )
        # Repy's introspection: the program's own globals.
        names["_context"] = names
        return names

    def api(self, network_api: dict[str, Any]) -> dict[str, Any]:
        """The Repy API names (what dylink hands on to a module it imports)."""
        names: dict[str, Any] = {name: getattr(errors, name) for name in errors.__all__}
        names.update(
            log=self.log,
            sleep=self.sleep,
            createthread=self.createthread,
            createlock=self.createlock,
            getruntime=self.getruntime,
            getthreadname=self.getthreadname,
            exitall=self.exitall,
            randombytes=self.randombytes,
            getlasterror=self.getlasterror,
        )
        names.update(network_api)
        return names

    def log(self, *args: Any, **kwargs: Any) -> None:
        """Write each argument str()-ed, like Python 2's ``print x,``."""
        if kwargs:
            raise errors.RepyArgumentError("log() takes no keyword arguments")
        self._write_items([str(arg) for arg in args], newline=False)

    def print_statement(self, *args: Any, sep: str = " ", end: str = "\n",
                        file: Any = None, flush: bool = False) -> None:
        """``print`` for translated Python 2 code: the print statement's output.

        ``print a, b`` writes like ``log(a, b)`` and then a newline with no
        space before it; ``print a,`` (``end=" "``) leaves the space pending,
        so the next item is separated as in Python 2.  Any other use is
        Python 3's print.
        """
        if file is not None or sep != " " or end not in ("\n", " "):
            builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        self._write_items([str(arg) for arg in args], newline=end == "\n")

    def _write_items(self, texts: list[str], newline: bool) -> None:
        with self._log_lock:
            for text in texts:
                if self._softspace:
                    self._stdout.write(" ")
                self._stdout.write(text)
                # Python 2's rule: a string ending in whitespace other than a
                # space (a newline, a tab) leaves no pending space.
                last = text[-1:]
                self._softspace = not (last.isspace() and last != " ")
            if newline:
                self._stdout.write("\n")
                self._softspace = False
            # Written at once, so output interleaves as the threads ran and
            # is not lost when another thread ends the process.
            self._stdout.flush()

    def randombytes(self, *args: Any, **kwargs: Any) -> str:
        """1024 random bytes, one character each (text mode), charged to ``random``."""
        _check_arguments("randombytes", args, kwargs, 0)
        self._random_bucket.charge(RANDOM_BYTES_PER_CALL)
        return os.urandom(RANDOM_BYTES_PER_CALL).decode("latin-1")

    def getlasterror(self, *args: Any, **kwargs: Any) -> Optional[str]:
        """The traceback of the exception this thread is handling, or None."""
        _check_arguments("getlasterror", args, kwargs, 0)
        exc = sys.exc_info()[1]
        if exc is None:
            return None
        return format_uncaught(exc)

    def sleep(self, *args: Any, **kwargs: Any) -> None:
        """Sleep at least the given seconds (int or float, >= 0)."""
        _check_arguments("sleep", args, kwargs, 1)
        seconds = _seconds(args[0])
        if seconds is None:
            raise errors.RepyArgumentError(
                f"sleep() needs a finite non-negative int or float, got {args[0]!r}")
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, _LONGEST_SINGLE_SLEEP))

    def createthread(self, *args: Any, **kwargs: Any) -> None:
        """Run a function in a new thread; one ``events`` item while it runs."""
        _check_arguments("createthread", args, kwargs, 1)
        function = args[0]
        if not callable(function):
            raise errors.RepyArgumentError("Provided function is not callable!")
        _repynet._event_acquire()
        self._thread_started()
        name = f"_EventThread{next(self._thread_numbers)}"
        thread = threading.Thread(target=self._run_thread, args=(function,),
                                  name=name, daemon=True)
        try:
            thread.start()
        except builtins.RuntimeError as err:
            self._thread_finished()
            _repynet._event_release()
            raise errors.ResourceExhaustedError(f"cannot start a thread: {err}") from None

    def createlock(self, *args: Any, **kwargs: Any) -> RepyLock:
        _check_arguments("createlock", args, kwargs, 0)
        return RepyLock()

    def getruntime(self, *args: Any, **kwargs: Any) -> float:
        """Seconds since the program started (a float)."""
        _check_arguments("getruntime", args, kwargs, 0)
        return time.monotonic() - self._started_at

    def getthreadname(self, *args: Any, **kwargs: Any) -> str:
        _check_arguments("getthreadname", args, kwargs, 0)
        return threading.current_thread().name

    def exitall(self, *args: Any, **kwargs: Any) -> NoReturn:
        """End the whole program now, with status 0."""
        _check_arguments("exitall", args, kwargs, 0)
        self.terminate(0)

    # --- running ----------------------------------------------------------

    def start(self, code: CodeType, namespace: dict[str, Any]) -> None:
        """Run compiled program code with ``namespace`` as its globals.

        The main code runs in its own thread and holds one ``events`` item
        while it runs, as Repy's main thread does.
        """
        _repynet._event_acquire()
        self._thread_started()
        thread = threading.Thread(target=self._run_main, args=(code, namespace),
                                  name=MAIN_THREAD_NAME, daemon=True)
        try:
            thread.start()
        except builtins.RuntimeError:
            self._thread_finished()
            _repynet._event_release()
            raise

    def wait(self, poll_seconds: float = 0.2) -> int:
        """Block until every program thread has finished; returns 0.

        The wait wakes up every ``poll_seconds`` so that the process's main
        thread runs Python's SIGINT handler promptly even when the signal
        was delivered to another thread.
        """
        while not self._all_finished.wait(poll_seconds):
            pass
        return 0

    def _run_main(self, code: CodeType, namespace: dict[str, Any]) -> None:
        # The program's own code runs like any of its threads.  exec is
        # called directly: a wrapper would add a frame to its tracebacks.
        self._run_thread(exec, code, namespace)

    def _run_thread(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            function(*args)
        except builtins.SystemExit as exit_request:
            self._exit_from(exit_request)
        except BaseException as exc:  # noqa: B036 - any uncaught exception ends the program
            self.fail(exc)
        finally:
            _repynet._event_release()
            self._thread_finished()

    def _thread_started(self) -> None:
        with self._live_lock:
            self._live += 1

    def _thread_finished(self) -> None:
        with self._live_lock:
            self._live -= 1
            if self._live == 0:
                self._all_finished.set()

    # --- ending the process -----------------------------------------------

    def fail(self, exc: BaseException) -> NoReturn:
        """Report an uncaught exception and end the process with status 1."""
        self._exit_lock.acquire()
        # The first frame is this module's own (exec or the thread wrapper).
        report = format_uncaught(exc, skip_frames=1)
        self._flush_stdout()
        try:
            self._stderr.write(report)
        finally:
            self._exit_now(1)

    def terminate(self, status: int) -> NoReturn:
        """Flush the output and end the process with ``status`` now."""
        self._exit_lock.acquire()
        self._flush_stdout()
        self._exit_now(status)

    def _exit_from(self, exit_request: SystemExit) -> NoReturn:
        # sys.exit() in a program behaves as in Python: None is 0, an int is
        # the status, anything else is printed and gives 1.
        code = exit_request.code
        if code is None:
            self.terminate(0)
        if isinstance(code, int):
            self.terminate(code)
        self._exit_lock.acquire()
        self._flush_stdout()
        try:
            self._stderr.write(f"{code}\n")
        finally:
            self._exit_now(1)

    def _flush_stdout(self) -> None:
        # Wait briefly for a log() call in progress so that its output is
        # whole; never forever, since exiting must not depend on a writer.
        locked = self._log_lock.acquire(timeout=2.0)
        try:
            self._stdout.flush()
        except (OSError, ValueError):
            pass
        finally:
            if locked:
                self._log_lock.release()

    def _exit_now(self, status: int) -> NoReturn:
        if self.on_exit is not None:
            self.on_exit()
        try:
            self._stderr.flush()
        except (OSError, ValueError):
            pass
        os._exit(status)


def format_uncaught(exc: BaseException, skip_frames: int = 0) -> str:
    """A traceback whose exception line names the class without its module.

    Python would print ``repynet.errors.ResourceForbiddenError: ...``; Repy
    programs know the class as ``ResourceForbiddenError``.
    """
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb)
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if frame.filename not in _HIDDEN_FRAME_FILES])
    lines = list(report.format())
    only = list(report.format_exception_only())
    if lines[-len(only):] == only:
        lines = lines[:-len(only)]
    exc_type = type(exc)
    qualified = exc_type.__qualname__
    if exc_type.__module__ not in ("__main__", "builtins"):
        qualified = f"{exc_type.__module__}.{qualified}"
    for line in only:
        if line.startswith(qualified) and line[len(qualified):len(qualified) + 1] in (":", "\n"):
            line = exc_type.__name__ + line[len(qualified):]
        lines.append(line)
    return "".join(lines)
