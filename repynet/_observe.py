"""What the sandbox did, for the runner's --trace and --summary.

Both read what the C core publishes: the audit events ``repynet.denied``
(resource, detail), raised before every ResourceForbiddenError and
ResourceExhaustedError of the limits code, and ``repynet.ratewait``
(rate_name, seconds), raised before every rate sleep; and the counter
``_repynet._rate_waits()``, the seconds slept so far for each rate.  They
cost nothing on a hot path: no Python runs unless a hook is installed.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from . import _repynet
from .restrictions import getresources

TRACE_PREFIX = "repynet trace:"
RATE_NAMES = ("netsend", "netrecv", "loopsend", "looprecv")


def install_trace(stream: TextIO) -> None:
    """Log every denied call and every rate wait to stream, from now on.

    An audit hook cannot be removed: this is for a process that runs one
    program, as the runner does.
    """

    def trace(event: str, args: tuple[Any, ...]) -> None:
        if event == "repynet.denied":
            resource, detail = args
            line = f"{TRACE_PREFIX} denied {resource}: {detail}\n"
        elif event == "repynet.ratewait":
            rate_name, seconds = args
            line = f"{TRACE_PREFIX} waiting {seconds:.6f} s for {rate_name}\n"
        else:
            return
        try:
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken stderr must not turn into an exception from
            # the program's network call.
            pass

    sys.addaudithook(trace)


def rate_waits() -> dict[str, float]:
    """Seconds slept so far waiting for each rate (the C core's counter)."""
    return dict(_repynet._rate_waits())


def format_summary() -> str:
    """The final getresources() figures and the rate waits, as text."""
    limits, usage, _stoptimes = getresources()
    lines = ["repynet summary: resources (used / limit)"]
    for name in sorted(limits):
        lines.append(f"  {name:<14} {_figure(usage.get(name))} / {_figure(limits[name])}")
    waits = rate_waits()
    lines.append("repynet summary: seconds waited for each rate")
    for name in RATE_NAMES:
        lines.append(f"  {name:<14} {waits[name]:.6f}")
    return "\n".join(lines) + "\n"


def write_summary(stream: TextIO) -> None:
    """Writes the summary; never raises, since it runs while the process ends."""
    try:
        text = format_summary()
    except Exception as err:  # noqa: BLE001 - the process must still end
        text = f"repynet summary: unavailable: {type(err).__name__}: {err}\n"
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def _figure(value: object) -> str:
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(str(port) for port in sorted(value)) + "}" if value else "{}"
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)
