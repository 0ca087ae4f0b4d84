"""Rerun the reliability evidence and rewrite the figures in docs/reliability.md.

    python tools/reliability_report.py [--fuzz-time SECONDS] [--no-fuzz] [--no-slow]

Runs, with modest budgets: the fault, escape and property tests and the C
fd-exhaustion test (default suite), the load and soak tests (`-m slow`) and
every fuzz target (fuzz/run.py, 15 s each by default), then replaces the
part of docs/reliability.md between the two `figures` markers with what came
out.  The rest of the page is prose and stays as written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reliability.md"
OUT = ROOT / "build" / "reliability"
BEGIN = "<!-- figures:begin (tools/reliability_report.py rewrites this part) -->"
END = "<!-- figures:end -->"
FAULT_TESTS = ["tests/test_faults.py", "tests/test_properties.py",
               "tests/c/test_fd_exhaustion.c"]
LOAD_TESTS = ["tests/test_load.py"]


def run_pytest(name: str, paths: list[str], *extra: str) -> list[dict[str, Any]]:
    """Runs pytest; returns one dict per test case from its JUnit report."""
    report = OUT / f"{name}.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={report}", *extra, *paths], cwd=ROOT)
    cases = []
    for case in ElementTree.parse(report).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "FAILED"
            elif child.tag == "skipped":
                outcome = "xfailed (known bug)" if child.get("type") == "pytest.xfail" \
                    else "skipped"
        cases.append({"name": case.get("name"), "seconds": float(case.get("time", 0)),
                      "outcome": outcome, "message": _message(case)})
    return cases


def _message(case: ElementTree.Element) -> str:
    for child in case:
        if child.tag == "skipped":
            return (child.get("message") or "").removeprefix("reason: ")
    return ""


def run_fuzz(seconds: int) -> tuple[list[dict[str, Any]], str]:
    result = subprocess.run([sys.executable, "fuzz/run.py", "--time", str(seconds)],
                            cwd=ROOT, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    if result.returncode == 2:
        return [], result.stderr.strip()
    summary = ROOT / "build" / "fuzz" / "summary.json"
    return json.loads(summary.read_text()), ""


def load_figures() -> dict[str, str]:
    """What each load test holds, from the constants the tests use."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_load  # noqa: E402  (the tests' constants are the one source)

    return {
        "test_ten_thousand_connections_held_with_every_byte_checked":
            f"{test_load.HELD_CONNECTIONS:,} TCP connections held at once (peers in a child "
            f"process), {test_load.RECORD} bytes each way on each, every byte checked",
        "test_sixty_four_threads_stream_without_loss_duplication_or_reordering":
            f"{2 * test_load.STREAMS} threads: {test_load.STREAMS} connections with a sender "
            f"and a receiver each, {test_load.STREAM_BYTES // 1024:,} KiB per stream, "
            "compared byte for byte",
        "test_threads_racing_close_accept_listen_neither_deadlock_nor_miscount":
            f"{test_load.RACERS} threads x {test_load.RACE_OPS} random listen/connect/accept/"
            "close/send/recv on shared sockets: no deadlock, exact insocket/outsocket counts",
        "test_threads_racing_listener_close_never_takes_the_fatal_path":
            "the same race: no InternalRepyError when a listener closes mid-handshake (D29)",
        "test_soak_open_send_recv_close_keeps_fds_and_memory_flat":
            f"{test_load.SOAK_CYCLES:,} open/send/recv/close cycles: fds back to the start, "
            f"RSS growth under {test_load.MAX_RSS_GROWTH_KIB} KiB",
    }


def render(faults: list[dict[str, Any]], load: list[dict[str, Any]],
           fuzz: list[dict[str, Any]], fuzz_note: str, fuzz_time: int) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "?"
    today = datetime.date.today().isoformat()
    lines = [BEGIN, "",
             f"Last run: {today}, commit `{commit}`, {os.cpu_count()} CPUs, "
             f"Python {sys.version.split()[0]}.", ""]

    lines += ["### Load held", "", "| test | what | result | seconds |", "|---|---|---|---|"]
    figures = load_figures() if load else {}
    for case in load:
        lines.append(f"| `{case['name']}` | {figures.get(case['name'], '')} | "
                     f"{_outcome(case)} | {case['seconds']:.1f} |")
    if not load:
        lines.append("| (not run: --no-slow) | | | |")

    escapes = [case for case in faults if case["name"].startswith("test_escape_attempt")]
    others = [case for case in faults if case not in escapes]
    lines += ["", "### Faults survived", "", "| test | result |", "|---|---|"]
    lines += [f"| `{case['name']}` | {_outcome(case)} |" for case in others]

    refused = sum(case["outcome"] == "passed" for case in escapes)
    lines += ["", "### Escapes refused", "",
              f"{refused} of {len(escapes)} attempts refused with the documented exception "
              "and no count changed:", ""]
    lines += [f"- {_escape_name(case['name'])}: {_outcome(case)}" for case in escapes]

    lines += ["", "### Fuzzing", ""]
    if fuzz_note:
        lines += [f"Not run: {fuzz_note}", ""]
    else:
        total = sum(target["executions"] for target in fuzz)
        crashes = sum(len(target["crashes"]) for target in fuzz)
        lines += [f"{fuzz_time} s per target: {total:,} executions, {crashes} crash(es) "
                  "(CI runs 30 s per target; `make fuzz-long` 30 min).", "",
                  "| target | engine | executions | corpus files | result |",
                  "|---|---|---|---|---|"]
        for target in fuzz:
            result = "clean" if target["exit_status"] == 0 else \
                f"**stopped**: {_first_finding(ROOT / target['log'])}"
            lines.append(f"| `{target['target']}` | {target['engine']} | "
                         f"{target['executions']:,} | {target['corpus_files']} | {result} |")
    lines += ["", END]
    return "\n".join(lines)


FINDING_MARKS = ("AssertionError:", "runtime error:", "ERROR: AddressSanitizer",
                 "ERROR: libFuzzer")


def _first_finding(log: Path) -> str:
    """The line of a fuzz log that says what stopped the run."""
    for line in log.read_text(errors="replace").splitlines():
        for mark in FINDING_MARKS:
            if mark in line:
                return "`" + line[line.index(mark):].strip().replace("`", "'")[:200] + "`"
    return f"see {log.relative_to(ROOT)}"


def _outcome(case: dict[str, Any]) -> str:
    if case["outcome"] == "xfailed (known bug)":
        return f"xfailed (known bug: {case['message']})"
    return str(case["outcome"])


def _escape_name(test_name: str) -> str:
    return test_name.removeprefix("test_escape_attempt_is_refused[").removesuffix("]")


def rewrite_page(section: str) -> None:
    text = PAGE.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    PAGE.write_text(text[:start] + section + text[end:])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-time", type=int, default=15, help="seconds per fuzz target")
    parser.add_argument("--no-fuzz", action="store_true", help="leave the fuzzers out")
    parser.add_argument("--no-slow", action="store_true", help="leave the load tests out")
    options = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    faults = run_pytest("faults", FAULT_TESTS)
    load = [] if options.no_slow else run_pytest("load", LOAD_TESTS, "-m", "slow")
    fuzz, fuzz_note = ([], "left out (--no-fuzz)") if options.no_fuzz \
        else run_fuzz(options.fuzz_time)
    rewrite_page(render(faults, load, fuzz, fuzz_note, options.fuzz_time))
    print(f"rewrote the figures in {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
