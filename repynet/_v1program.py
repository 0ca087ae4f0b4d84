"""One Repy V1 program's run (``python -m repynet run --api v1``).

The V1 program model over the V2 runner's machinery (``_program.Program``):

- the code runs with ``callfunc == 'initialize'``; once everything it
  started has ended (no listener, timer or callback left), it runs a second
  time, in the same namespace, with ``callfunc == 'exit'``; then the
  program ends with status 0;
- ``exitall()`` ends it at once with status 0, and an uncaught exception in
  any phase, callback or timer with a traceback and status 1;
- each phase holds one ``events`` item, as does each running callback and
  each pending timer, and one more is held while any listener exists.

The namespace holds the V1 network calls (:mod:`repynet.v1`, text mode),
``print``, ``sleep``, ``settimer``/``canceltimer``, ``getlock``,
``exitall``, ``getruntime``, ``get_thread_name``, ``mycontext`` and
``callargs``.
"""

from __future__ import annotations

import builtins
import itertools
import sys
import threading
from types import CodeType
from typing import Any, Callable

from . import _program, errors, v1
from ._program import _check_arguments, _seconds

TIMER_PREFIX = "_EVENT:"


class V1Program(_program.Program):
    """The state a V1 program's namespace shares with the runner."""

    def __init__(self, path: str, callargs: list[str], stdout: Any = None,
                 stderr: Any = None) -> None:
        super().__init__(path, callargs, stdout, stderr)
        self.gate = v1.EventGate()
        self.network = v1.V1Network(text=True, host=self, gate=self.gate)
        self._timers: dict[str, threading.Timer] = {}
        self._timers_lock = threading.Lock()
        self._timer_numbers = itertools.count(1)

    # --- what repynet.v1 reports (v1.V1Host) -------------------------------

    def work_started(self) -> None:
        self._thread_started()

    def work_finished(self) -> None:
        self._thread_finished()

    def uncaught(self, exc: BaseException) -> None:
        if isinstance(exc, builtins.SystemExit):
            self._exit_from(exc)
        self.fail(exc)

    # --- the namespace ------------------------------------------------------

    def v1_namespace(self) -> dict[str, Any]:
        names: dict[str, Any] = {"__name__": "__main__", "__file__": self.path}
        names.update(self.network.names())
        names.update(
            print=self.print,
            sleep=self.sleep,
            settimer=self.settimer,
            canceltimer=self.canceltimer,
            getlock=self.getlock,
            exitall=self.exitall,
            getruntime=self.getruntime,
            get_thread_name=self.get_thread_name,
            callargs=list(self.callargs),
            callfunc="initialize",
            mycontext={},
        )
        return names

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Python's print, written at once to the program's output."""
        kwargs.setdefault("file", self._stdout)
        with self._log_lock:
            builtins.print(*args, **kwargs)
            self._stdout.flush()

    def getlock(self, *args: Any, **kwargs: Any) -> Any:
        """A lock with V1's ``acquire(blocking=True)`` and ``release()``."""
        _check_arguments("getlock", args, kwargs, 0)
        return threading.Lock()

    def get_thread_name(self, *args: Any, **kwargs: Any) -> str:
        _check_arguments("get_thread_name", args, kwargs, 0)
        return threading.current_thread().name

    def settimer(self, waittime: float, function: Callable[..., Any],
                 args: Any) -> str:
        """Calls function(*args) after at least waittime seconds; a handle.

        The timer holds one ``events`` item from now until its function
        returns or it is cancelled (V1 raises when none is free).
        """
        seconds = _seconds(waittime)
        if seconds is None:
            raise builtins.TypeError(
                f"waittime must be a finite non-negative number, got {waittime!r}")
        if not callable(function):
            raise builtins.TypeError("function must be callable")
        arguments = tuple(args)
        self.gate.take()
        handle = f"{TIMER_PREFIX}{next(self._timer_numbers)}"
        timer = threading.Timer(seconds, self._fire, (handle, function, arguments))
        timer.name = f"_Timer{handle[len(TIMER_PREFIX):]}"
        timer.daemon = True
        with self._timers_lock:
            self._timers[handle] = timer
        self._thread_started()
        try:
            timer.start()
        except builtins.RuntimeError as err:
            self._forget_timer(handle)
            raise Exception(f"cannot start a timer thread: {err}") from None
        return handle

    def canceltimer(self, timerhandle: str) -> bool:
        """True if the timer was pending and will not fire; else False."""
        if not isinstance(timerhandle, str) or not timerhandle.startswith(TIMER_PREFIX):
            raise Exception("Invalid timer handle specified!")
        return self._forget_timer(timerhandle)

    def _forget_timer(self, handle: str) -> bool:
        with self._timers_lock:
            timer = self._timers.pop(handle, None)
        if timer is None:
            return False
        timer.cancel()
        self.gate.give()
        self._thread_finished()
        return True

    def _fire(self, handle: str, function: Callable[..., Any],
              arguments: tuple[Any, ...]) -> None:
        with self._timers_lock:
            if self._timers.pop(handle, None) is None:
                return  # cancelled: canceltimer gave the item back
        try:
            function(*arguments)
        except builtins.SystemExit as exit_request:
            self._exit_from(exit_request)
        except BaseException as exc:  # noqa: B036 - any uncaught exception ends the program
            self.fail(exc)
        finally:
            self.gate.give()
            self._thread_finished()

    # --- running ------------------------------------------------------------

    def _run_thread(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            super()._run_thread(function, *args)
        finally:
            # The phase's events item came back without the gate's knowledge.
            self.gate.notify()

    def run(self, code: CodeType, builtins_namespace: Any = None) -> int:
        """Runs the initialize phase, waits for everything, runs the exit phase."""
        namespace = self.v1_namespace()
        if builtins_namespace is not None:
            namespace["__builtins__"] = builtins_namespace
        for callfunc in ("initialize", "exit"):
            namespace["callfunc"] = callfunc
            self._all_finished.clear()
            self.start(code, namespace)
            self.wait()
        return 0


def run(path: str, code: CodeType, callargs: list[str], builtins: Any = None,
        on_exit: Callable[[], None] | None = None) -> int:
    """``python -m repynet run --api v1``: the exit status.

    ``builtins`` is the ``__builtins__`` the program was compiled for (the
    Python 2 names a translated program relies on), or None for Python's;
    ``on_exit`` runs when the program ends, however it ends (``--summary``).
    """
    program = V1Program(path, callargs)
    program.on_exit = on_exit
    try:
        status = program.run(code, builtins)
        if on_exit is not None:
            on_exit()
        return status
    except errors.ResourceExhaustedError as err:
        sys.stderr.write("repynet run: the program's main thread needs one 'events' item\n"
                         f"{type(err).__name__}: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("repynet run: interrupted\n")
        program.terminate(130)
        return 130
