"""repynet against its yardsticks, side by side: ``python bench/run.py``.

One entry command for every benchmark of the project.  Each measurement is a
fresh process; each is repeated (``--repeat``, default 5) and the median is
reported, for repynet and for its yardstick, with the ratio repynet/yardstick.
Within a repetition the two implementations of a row run back to back, in an
order that alternates between repetitions, so load from other users of the
machine falls on both; the judged ratio is the median of the per-repetition
ratios.  Everything is addressed to 127.0.0.1 or ::1 only, and every process
stops by itself after a bounded count or time.

The groups of rows (``--groups``):

``programs``
    Repy V2 programs (``bench/programs/*.repy``) run by ``python -m repynet
    run --restrictions bench/unthrottled.restrictions`` and by the socket shim
    ``bench/shim.py``; the yardstick is the shim.  A program prints its
    figures on its last line, ``RESULT NAME=VALUE [NAME=VALUE ...]``.
``single``
    One-thread loops of ``bench/cases.py`` (repynet against raw ``socket``),
    on IPv4 and, where the host has it, IPv6.
``memory``
    ``bench/memory.py``: resident memory per held connection, against raw
    ``socket`` objects.
``extra``
    Stand-alone scripts (``EXTRA_SCRIPTS`` when present, and ``--extra``) that
    print rows in the harness's row format, described in bench/README.md: a
    line ``BENCH-ROW {json}`` per figure.

``--load`` runs every row a second time with one busy process per CPU beside
it (started and stopped here) and reports the spread (max/min) of the runs.
``--docs`` writes the markdown table and the PNG chart into docs/.  Every
sample goes to a JSON file under bench/results/.  See docs/performance.md.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CASES_SCRIPT = BENCH / "cases.py"
MEMORY_SCRIPT = BENCH / "memory.py"
SHIM_SCRIPT = BENCH / "shim.py"
PROGRAMS = BENCH / "programs"
RESTRICTIONS = BENCH / "unthrottled.restrictions"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs"
# Where --docs writes, under its directory (docs/ by default).
DOCS_TABLE = "bench-results.md"
DOCS_CHART = "_static/bench-ratios.png"

Sample = Dict[str, Any]
Row = Dict[str, Any]

GROUPS = ("programs", "single", "memory", "extra")
# The yardstick each group's repynet figures are divided by.
BASELINES = {"programs": "shim", "single": "raw", "memory": "raw"}
# Groups whose rows have only absolute targets: the ratio is shown, not judged.
UNJUDGED_RATIOS = {"memory"}

# --- programs -------------------------------------------------------------------

# row: (program file, arguments after PORT SECONDS).
PROGRAM_ROWS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "repy_pingpong_busy": ("pingpong.repy", ("busy",)),
    "repy_pingpong_sleep": ("pingpong.repy", ("sleep",)),
    "repy_bulk_64k": ("bulk.repy", ()),
    "repy_udp_persistent": ("udp_stream.repy", ("persistent",)),
    "repy_udp_fresh": ("udp_stream.repy", ("fresh",)),
    "repy_accept_loop": ("accept_loop.repy", ("4",)),
    "repy_pairs_1": ("pairs.repy", ("1",)),
    "repy_pairs_10": ("pairs.repy", ("10",)),
    "repy_pairs_100": ("pairs.repy", ("100",)),
}
# A RESULT figure: (suffix of its row's name, unit, kind).  The first figure a
# program prints names the row itself; the others get a row each.  A kind
# "info" is reported beside the yardstick's but judged against no target.
FIGURES: Dict[str, Tuple[str, str, str]] = {
    "round_trips_per_s": ("", "round trips/s", "rate"),
    "megabytes_per_s": ("", "MB/s", "rate"),
    "connections_per_s": ("", "connections/s", "rate"),
    "received_per_s": ("", "received/s", "rate"),
    "sent_per_s": (" sent", "sent/s", "info"),
    "received_fraction": (" fraction", "received/sent", "fraction"),
}
# Program seconds (full, --quick) before --scale; the time window a program
# measures, after its set-up.
PROGRAM_SECONDS = (2.0, 0.5)
MIN_PROGRAM_SECONDS = 0.05
# The programs' ports: the range bench/unthrottled.restrictions allows,
# split into slots that successive runs rotate over, so that a four-tuple
# still in TIME_WAIT from the previous run is seldom met.
PORT_RANGE = (24000, 25000)
PORT_SLOT = 200

# The original Repy V2 on Python 2.7, quoted from issue 10's measurement
# (not measured here).
QUOTED_ORIGINAL = {
    "repy_pingpong_busy": "750-948",
    "repy_bulk_64k": "17.6",
    "repy_udp_persistent": "1,964",
    "repy_udp_persistent sent": "1,976",
    "repy_udp_fresh": "1,964",
    "repy_udp_fresh sent": "1,976",
}
# Absolute targets of issue 10: (comparison, bound, applies under load).
ABSOLUTE_TARGETS: Dict[str, Tuple[str, float, bool]] = {
    "repy_pingpong_busy": (">=", 15_000, False),
    "repy_bulk_64k": (">=", 350, False),
    "repy_udp_persistent": (">=", 20 * 1_964, False),
    "repy_udp_fresh": (">=", 20 * 1_964, False),
    "repy_udp_persistent fraction": (">=", 0.9, True),
    "repy_udp_fresh fraction": (">=", 0.9, True),
    "rss_per_connection": ("<=", 300, True),
}

# --- single-thread cases (bench/cases.py) and memory ---------------------------

# case: (iterations of a full run, iterations of a --quick run).  Chosen so
# that one timed loop takes a few tenths of a second on a 2-core VM.
COUNTS = {
    "recv_wouldblock": (200_000, 20_000),
    "recv_wouldblock_1": (200_000, 20_000),
    "recv_wouldblock_1024": (200_000, 20_000),
    "poll_100_idle": (200_000, 20_000),
    "getconnection_wouldblock": (100_000, 10_000),
    "getmessage_wouldblock": (200_000, 20_000),
    "send_1byte": (100_000, 10_000),
    "send_1byte_peer_outside": (100_000, 10_000),
    "pingpong_64": (40_000, 4_000),
    "bulk_64k": (8_192, 1_024),  # 64 KiB chunks: 512 MiB, 64 MiB
    "udp_reuse_64": (80_000, 8_000),
    "udp_fresh_64": (20_000, 2_000),
    "connect_accept_close": (4_000, 500),
}
FAMILY_ADDRESSES = {"ipv4": (socket.AF_INET, "127.0.0.1"), "ipv6": (socket.AF_INET6, "::1")}
WARMUP_FRACTION = 10  # an untimed warm-up of count / this many iterations
# Held connections of the memory row (full, --quick) before --scale.
MEMORY_CONNECTIONS = (10_000, 1_000)
MIN_MEMORY_CONNECTIONS = 20

# --- extra scripts ---------------------------------------------------------------

# Run when present in bench/; each prints BENCH-ROW lines (bench/README.md).
EXTRA_SCRIPTS = ("v1_dispatch.py", "startup.py")
ROW_PREFIX = "BENCH-ROW "

QUICK_REPEAT = 3


def loopback_available(family_name: str) -> bool:
    family, address = FAMILY_ADDRESSES[family_name]
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


# --- jobs: one fresh process per implementation ----------------------------------


@dataclass
class Job:
    """One row's measurement: a command per implementation and a reader of its output.

    ``parse`` turns a finished process's stdout into samples; each sample
    names its case, unit, kind and value (and its impl when the process
    measures several, as an extra script may).
    """

    group: str
    case: str
    family: str
    commands: Dict[str, List[str]]
    parse: Callable[[str], List[Sample]]
    timeout: float


def parse_json_result(stdout: str) -> List[Sample]:
    result: Sample = json.loads(stdout)
    return [result]


def parse_program_output(row: str) -> Callable[[str], List[Sample]]:
    def parse(stdout: str) -> List[Sample]:
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise ValueError("no RESULT line in the program's output")
        samples = []
        extra: Dict[str, str] = {}
        for item in lines[-1].split()[1:]:
            name, _, text = item.partition("=")
            if name not in FIGURES:
                extra[name] = text
                continue
            suffix, unit, kind = FIGURES[name]
            samples.append({"case": row + suffix, "unit": unit, "kind": kind,
                            "value": float(text)})
        if not samples:
            raise ValueError(f"no known figure in {lines[-1]!r}")
        for sample in samples:
            sample.update(extra)
        return samples
    return parse


def parse_row_lines(stdout: str) -> List[Sample]:
    samples = []
    for line in stdout.splitlines():
        if line.startswith(ROW_PREFIX):
            sample: Sample = json.loads(line[len(ROW_PREFIX):])
            missing = {"case", "impl", "value", "unit", "kind"} - set(sample)
            if missing:
                raise ValueError(f"a row without {sorted(missing)}: {line!r}")
            samples.append(sample)
    if not samples:
        raise ValueError(f"no {ROW_PREFIX.strip()} line in the output")
    return samples


def program_jobs(quick: bool, scale: float) -> List[Job]:
    seconds = max(MIN_PROGRAM_SECONDS, PROGRAM_SECONDS[quick] * scale)
    jobs = []
    for row, (program, arguments) in PROGRAM_ROWS.items():
        path = str(PROGRAMS / program)
        tail = [f"{seconds:g}", *arguments]
        # PORT is filled in per run (see run_job); "{port}" marks its place.
        commands = {
            # --source py3: the programs are Python 3; left to "auto", the
            # runner would read them with Python 2's meaning (3 / 4 == 0).
            "repynet": [sys.executable, "-m", "repynet", "run", "--source", "py3",
                        "--restrictions", str(RESTRICTIONS), path, "{port}", *tail],
            "shim": [sys.executable, str(SHIM_SCRIPT), path, "{port}", *tail],
        }
        jobs.append(Job("programs", row, "ipv4", commands, parse_program_output(row),
                        timeout=10 * seconds + 60))
    return jobs


def single_jobs(quick: bool, scale: float, cases: Sequence[str], families: Sequence[str],
                max_seconds: float) -> List[Job]:
    jobs = []
    for case in cases:
        count = max(1, round(COUNTS[case][quick] * scale))
        for family in families:
            commands = {
                impl: [sys.executable, str(CASES_SCRIPT), case, impl, family,
                       "--count", str(count), "--warmup", str(max(1, count // WARMUP_FRACTION)),
                       "--max-seconds", str(max_seconds)]
                for impl in ("repynet", "raw")
            }
            jobs.append(Job("single", case, family, commands, parse_json_result,
                            timeout=3 * max_seconds + 60))
    return jobs


def memory_jobs(quick: bool, scale: float) -> List[Job]:
    count = max(MIN_MEMORY_CONNECTIONS, round(MEMORY_CONNECTIONS[quick] * scale))
    commands = {impl: [sys.executable, str(MEMORY_SCRIPT), impl, "--connections", str(count)]
                for impl in ("repynet", "raw")}
    return [Job("memory", "rss_per_connection", "ipv4", commands, parse_json_result,
                timeout=300)]


def extra_jobs(quick: bool, scripts: Sequence[Path]) -> List[Job]:
    jobs = []
    for script in scripts:
        # The harness repeats the script itself, so the script measures once.
        command = [sys.executable, str(script), "--repeat", "1"] + (["--quick"] if quick else [])
        jobs.append(Job("extra", script.stem, "-", {"script": command}, parse_row_lines,
                        timeout=900))
    return jobs


class PortSlots:
    """Hands each program run the next slot of PORT_RANGE."""

    def __init__(self) -> None:
        self.next_slot = 0

    def take(self) -> int:
        slots = (PORT_RANGE[1] - PORT_RANGE[0]) // PORT_SLOT
        port = PORT_RANGE[0] + (self.next_slot % slots) * PORT_SLOT
        self.next_slot += 1
        return port


def run_job(job: Job, impl: str, ports: PortSlots) -> List[Sample]:
    """One fresh process of ``job`` for ``impl``: its samples, or one with an error.

    A program that fails is run once more on the next port slot (a port
    another process holds is the usual cause); the sample records that it
    was retried and the first error.
    """
    samples = run_process(job, impl, ports)
    if job.group == "programs" and "error" in samples[0]:
        first_error = samples[0]["error"]
        samples = run_process(job, impl, ports)
        for sample in samples:
            sample["retried_after"] = first_error
    return samples


def run_process(job: Job, impl: str, ports: PortSlots) -> List[Sample]:
    port = str(ports.take())
    command = [port if argument == "{port}" else argument for argument in job.commands[impl]]
    base: Sample = {"group": job.group, "case": job.case, "family": job.family}
    if impl != "script":
        base["impl"] = impl
    try:
        # The current directory is inherited, not the source tree's root:
        # `python -m repynet` must import the repynet installed for this
        # Python (a wheel under test), not the tree's copy beside it.
        finished = subprocess.run(command, capture_output=True, text=True, timeout=job.timeout)
    except subprocess.TimeoutExpired:
        return [{**base, "error": f"timed out after {job.timeout:g} s"}]
    if finished.returncode != 0:
        lines = finished.stderr.strip().splitlines() or [f"exit {finished.returncode}"]
        return [{**base, "error": lines[-1]}]
    try:
        samples = job.parse(finished.stdout)
    except ValueError as error:
        return [{**base, "error": str(error)}]
    return [{**base, **sample} for sample in samples]


# --- load --------------------------------------------------------------------------

# A busy loop that ends by itself once the harness that started it is gone.
BUSY_LOOP = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[List[int]]:
    """``count`` CPU-bound processes for the duration of the block; their pids."""
    started: List[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            started.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())]))
        yield [process.pid for process in started]
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait()


# --- summary -----------------------------------------------------------------------


def row_key(sample: Sample) -> Tuple[bool, str, str, str]:
    return (sample["load"], sample["group"], sample["case"], sample["family"])


def spread(values: Sequence[float]) -> Optional[float]:
    return max(values) / min(values) if values and min(values) > 0 else None


def absolute_target(case: str, load: bool) -> Optional[Tuple[str, float]]:
    target = ABSOLUTE_TARGETS.get(case)
    if target is None or (load and not target[2]):
        return None
    return target[0], target[1]


def judge(row: Row) -> None:
    """Sets the row's targets (text) and whether all of them are met (None: no data)."""
    texts, verdicts = [], []
    if row["kind"] in ("rate", "cost") and row["baseline"] is not None and \
            row["group"] not in UNJUDGED_RATIOS:
        comparison = ">=" if row["kind"] == "rate" else "<="
        texts.append(f"{comparison} 1x {row['baseline']}")
        ratio = row["ratio"]
        verdicts.append(None if ratio is None else
                        ratio >= 1.0 if comparison == ">=" else ratio <= 1.0)
    absolute = absolute_target(row["case"], row["load"])
    if absolute is not None:
        comparison, bound = absolute
        texts.append(f"{comparison} {format_number(bound)}")
        value = row["repynet"]
        verdicts.append(None if value is None else
                        value >= bound if comparison == ">=" else value <= bound)
    row["targets"] = texts
    row["met"] = None if not verdicts or None in verdicts else all(verdicts)


def summarise(samples: Sequence[Sample]) -> List[Row]:
    """One row per (load, group, case, family): medians, paired ratio, spread, verdict."""
    grouped: Dict[Tuple[bool, str, str, str], List[Sample]] = {}
    for sample in samples:
        grouped.setdefault(row_key(sample), []).append(sample)
    rows = []
    for (load, group, case, family), members in grouped.items():
        good = [sample for sample in members if "error" not in sample]
        impls = list(dict.fromkeys(sample["impl"] for sample in good if "impl" in sample))
        baseline = BASELINES.get(group) or next(
            (impl for impl in impls if impl != "repynet"), None)
        row: Row = {"load": load, "group": group, "case": case, "family": family,
                    "baseline": baseline if "repynet" in impls or group in BASELINES else None,
                    "errors": [f"{sample.get('impl', 'script')}: {sample['error']}"
                               for sample in members if "error" in sample]}
        if good:
            row["unit"], row["kind"] = good[0]["unit"], good[0]["kind"]
        else:
            row["unit"], row["kind"] = "-", "-"
        by_impl: Dict[str, List[float]] = {}
        by_repetition: Dict[int, Dict[str, float]] = {}
        for sample in good:
            by_impl.setdefault(sample["impl"], []).append(sample["value"])
            by_repetition.setdefault(sample["repetition"], {})[sample["impl"]] = sample["value"]
        for name, label in (("repynet", "repynet"), (baseline, "baseline_value")):
            values = by_impl.get(name, []) if name else []
            row[label] = statistics.median(values) if values else None
            row[label + "_samples"] = values
            row[label + "_spread"] = spread(values)
        paired = [pair["repynet"] / pair[baseline] for pair in by_repetition.values()
                  if baseline and "repynet" in pair and pair.get(baseline)]
        row["paired_ratios"] = paired
        if row["repynet"] is not None and row["baseline_value"]:
            row["ratio_of_medians"] = row["repynet"] / row["baseline_value"]
            row["ratio"] = statistics.median(paired) if paired else row["ratio_of_medians"]
        else:
            row["ratio_of_medians"] = row["ratio"] = None
        row["original"] = QUOTED_ORIGINAL.get(case) if group == "programs" else None
        judge(row)
        rows.append(row)
    return rows


def format_number(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def format_ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


TABLE_HEADER = ("case", "family", "unit", "repynet", "yardstick", "ratio", "paired",
                "spread", "original*", "target", "met")


def table_cells(row: Row) -> Tuple[str, ...]:
    baseline = "-" if row["baseline"] is None else \
        f"{format_number(row['baseline_value'])} ({row['baseline']})"
    spreads = "/".join(format_ratio(row[key]) for key in ("repynet_spread",
                                                            "baseline_value_spread"))
    met = ("error" if row["errors"] else "n/a") if row["met"] is None else \
        "yes" if row["met"] else "NO"
    return (row["case"], row["family"], row["unit"], format_number(row["repynet"]), baseline,
            format_ratio(row["ratio_of_medians"]), format_ratio(row["ratio"]), spreads,
            row["original"] or "", "; ".join(row["targets"]) or "-", met)


def targets_summary(rows: Sequence[Row]) -> str:
    """How many judged rows meet their targets, per pass."""
    parts = []
    for load, name in ((False, "quiet"), (True, "under load")):
        judged = [row for row in rows if row["load"] == load and row["met"] is not None]
        if judged:
            met = sum(1 for row in judged if row["met"])
            parts.append(f"{name}: {met} of {len(judged)} rows meet their targets")
    return "; ".join(parts) + "." if parts else "No row here has a target."


def format_table(rows: Sequence[Row]) -> str:
    """Plain-text tables, one per pass (quiet, under load), and the errors."""
    text = []
    for load in (False, True):
        chosen = [row for row in rows if row["load"] == load]
        if not chosen:
            continue
        text.append("under load (one busy process per CPU):" if load else "quiet:")
        lines = [TABLE_HEADER] + [table_cells(row) for row in chosen]
        widths = [max(len(line[i]) for line in lines) for i in range(len(TABLE_HEADER))]
        for index, line in enumerate(lines):
            text.append("  ".join(cell.ljust(widths[i]) if i < 3 or i >= 8 else
                                  cell.rjust(widths[i])
                                  for i, cell in enumerate(line)).rstrip())
            if index == 0:
                text.append("  ".join("-" * width for width in widths))
        text.append("")
    text.append(targets_summary(rows))
    text.append("* original: Repy V2 on Python 2.7, quoted from issue 10's measurement, "
                "not measured here")
    for row in rows:
        for error in row["errors"]:
            pass_name = "load" if row["load"] else "quiet"
            text.append(f"error in {row['case']} {row['family']} ({pass_name}): {error}")
    return "\n".join(text)


def markdown_table(rows: Sequence[Row], report: Dict[str, Any]) -> str:
    """docs/bench-results.md: the tables and the chart, with the run's facts."""
    settings = report["settings"]
    lines = [
        "<!-- Generated by `python bench/run.py --docs`; do not edit by hand. -->",
        "",
        f"Run of {report['started'][:16].replace('T', ' ')} UTC, commit "
        f"`{(report['commit'] or 'unknown')[:12]}`, Python {report['python'].split()[0]}, "
        f"{report['cpus']} CPUs, load average {report['load_average_before'][0]:.2f} before "
        f"and {report['load_average_after'][0]:.2f} after; {settings['repeat']} repetitions"
        f"{', quick' if settings['quick'] else ''}"
        f"{'' if settings['scale'] == 1 else ', scale ' + str(settings['scale'])}.",
        "",
        "`ratio` is repynet / yardstick of the medians, `paired` the median of the "
        "per-repetition ratios (what `met` judges), `spread` the max/min of the runs of "
        "repynet / of the yardstick.  `original` is the original Repy V2 on Python 2.7, "
        "**quoted from issue 10's measurement, not measured here**.",
        "",
        targets_summary(rows),
        "",
        "![repynet against its yardsticks](_static/bench-ratios.png)",
    ]
    for load in (False, True):
        chosen = [row for row in rows if row["load"] == load]
        if not chosen:
            continue
        lines += ["", "Under load (one busy process per CPU):" if load else "Quiet:", "",
                  "| " + " | ".join(TABLE_HEADER).replace("original*", "original") + " |",
                  "|" + "---|" * len(TABLE_HEADER)]
        for row in chosen:
            cells = [cell.replace("|", "/") for cell in table_cells(row)]
            lines.append("| " + " | ".join(cells) + " |")
    errors = [f"- {row['case']} {row['family']} ({'load' if row['load'] else 'quiet'}): {error}"
              for row in rows for error in row["errors"]]
    if errors:
        lines += ["", "Errors:", ""] + errors
    return "\n".join(lines) + "\n"


def advantage(row: Row) -> Optional[float]:
    """How far repynet is ahead of its yardstick: >1 ahead, for costs and rates alike.

    None for a row without a ratio to chart: a fraction, an "info" row (whose
    direction the harness does not know), or a row judged by an absolute
    target only (memory), where a bar left of 1 would mislead.
    """
    ratio = row["ratio"]
    if ratio is None or ratio <= 0 or row["kind"] not in ("rate", "cost") or \
            row["group"] in UNJUDGED_RATIOS:
        return None
    return float(ratio if row["kind"] == "rate" else 1.0 / ratio)


def chart_label(row: Row) -> str:
    case: str = row["case"]
    family: str = row["family"]
    return case + ("" if family in ("ipv4", "-") else f" ({family})")


def write_chart(rows: Sequence[Row], path: Path) -> bool:
    """The PNG of every row's advantage, quiet and under load; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
        import matplotlib.ticker as ticker
    except ImportError:
        return False
    labels: List[str] = []
    for row in rows:
        if advantage(row) is not None and chart_label(row) not in labels:
            labels.append(chart_label(row))
    figure, axes = pyplot.subplots(figsize=(9, 0.3 * len(labels) + 1.6))
    height = 0.4
    for offset, load, colour, name in ((-height / 2, False, "tab:blue", "quiet"),
                                       (height / 2, True, "tab:orange", "under load")):
        values: Dict[str, float] = {}
        for row in rows:
            row_advantage = advantage(row)
            if row["load"] == load and row_advantage is not None:
                values[chart_label(row)] = row_advantage
        if values:
            positions = [index + offset for index, label in enumerate(labels)
                         if label in values]
            axes.barh(positions, [values[label] for label in labels if label in values],
                      height=height, color=colour, label=name)
    axes.axvline(1.0, color="black", linewidth=1)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.set_title("repynet against the shim (repy_*), raw socket (the rest)", fontsize=9)
    axes.set_yticks(range(len(labels)))
    axes.set_yticklabels(labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("repynet's advantage over its yardstick (rate ratio, or 1 / cost ratio); "
                    "right of 1 = ahead", fontsize=8)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return True


def git_commit() -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=BENCH, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"fresh processes per measurement (default 5, {QUICK_REPEAT} "
                             "with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: shorter programs, a tenth of the iterations, "
                             "fewer repeats")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every iteration count and program time (tiny runs "
                             "for tests)")
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS),
                        metavar="GROUP", help=f"groups to run: {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--programs", nargs="+", choices=list(PROGRAM_ROWS),
                        default=list(PROGRAM_ROWS), metavar="ROW",
                        help="program rows to run (default: all)")
    parser.add_argument("--cases", nargs="+", choices=list(COUNTS), default=list(COUNTS),
                        metavar="CASE", help="single-thread cases to run (default: all)")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILY_ADDRESSES),
                        default=list(FAMILY_ADDRESSES), metavar="FAMILY",
                        help="ipv4 (127.0.0.1) and/or ipv6 (::1) for the single-thread "
                             "cases; default: both")
    parser.add_argument("--extra", action="append", type=Path, default=[], metavar="SCRIPT",
                        help="one more script printing BENCH-ROW lines (repeatable)")
    parser.add_argument("--no-default-extras", action="store_true",
                        help=f"run only the --extra scripts, not {', '.join(EXTRA_SCRIPTS)}")
    parser.add_argument("--load", action="store_true",
                        help="run everything again with one busy process per CPU")
    parser.add_argument("--docs", nargs="?", type=Path, const=DOCS, default=None,
                        metavar="DIR",
                        help=f"write DIR/{DOCS_TABLE} and DIR/{DOCS_CHART} (DIR: docs/)")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="a single-thread loop stops by itself after this long")
    parser.add_argument("--output", type=Path, default=None,
                        help="the JSON file (default: bench/results/bench-TIMESTAMP.json)")
    parser.add_argument("--report", type=Path, default=None, metavar="JSON",
                        help="measure nothing: show (and with --docs write) the results of "
                             "a saved run")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else 5
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale positive")
    return args


def build_jobs(args: argparse.Namespace, families: Sequence[str]) -> List[Job]:
    jobs: List[Job] = []
    if "programs" in args.groups:
        jobs += [job for job in program_jobs(args.quick, args.scale)
                 if job.case in args.programs]
    if "single" in args.groups:
        jobs += single_jobs(args.quick, args.scale, args.cases, families, args.max_seconds)
    if "memory" in args.groups:
        jobs += memory_jobs(args.quick, args.scale)
    if "extra" in args.groups:
        scripts = [] if args.no_default_extras else \
            [BENCH / name for name in EXTRA_SCRIPTS if (BENCH / name).exists()]
        jobs += extra_jobs(args.quick, scripts + list(args.extra))
    return jobs


def run_pass(jobs: Sequence[Job], repeat: int, load: bool, ports: PortSlots) -> List[Sample]:
    samples = []
    for repetition in range(repeat):
        for job in jobs:
            # Alternate which implementation goes first, so neither always
            # runs on a machine the other has just warmed up or loaded.
            impls = list(job.commands)
            order = impls if repetition % 2 == 0 else impls[::-1]
            for impl in order:
                for sample in run_job(job, impl, ports):
                    sample.update(repetition=repetition, load=load)
                    samples.append(sample)
        print(f"{'load' if load else 'quiet'}: repetition {repetition + 1}/{repeat} done",
              file=sys.stderr)
    return samples


def measure_all(args: argparse.Namespace) -> Dict[str, Any]:
    """Runs every job (quiet, then under load if asked); the report of the run."""
    families = [family for family in args.families if loopback_available(family)]
    skipped = sorted(set(args.families) - set(families))
    for family in skipped:
        print(f"{family}: no loopback address on this host, skipped", file=sys.stderr)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    jobs = build_jobs(args, families)
    ports = PortSlots()
    samples = run_pass(jobs, args.repeat, False, ports)
    load_pids: List[int] = []
    if args.load:
        with busy_processes(os.cpu_count() or 1) as load_pids:
            samples += run_pass(jobs, args.repeat, True, ports)
    report = {
        "started": started.isoformat(),
        "commit": git_commit(),
        "python": sys.version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "settings": {"repeat": args.repeat, "quick": args.quick, "scale": args.scale,
                     "load": args.load, "max_seconds": args.max_seconds,
                     "families_skipped": skipped},
        "load_pids": load_pids,
        "rows": summarise(samples),
        "samples": samples,
    }
    output = args.output or RESULTS / f"bench-{started:%Y%m%dT%H%M%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {output}", file=sys.stderr)
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_arguments(argv)
    if args.report is not None:
        report: Dict[str, Any] = json.loads(args.report.read_text())
        # Summarised again, so that a report shows the targets of this code.
        report["rows"] = summarise(report["samples"])
    else:
        report = measure_all(args)
    rows = report["rows"]
    print(format_table(rows))
    if args.docs:
        table, chart = args.docs / DOCS_TABLE, args.docs / DOCS_CHART
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(markdown_table(rows, report))
        if write_chart(rows, chart):
            print(f"docs: {table} and {chart}", file=sys.stderr)
        else:
            print(f"docs: {table}; no chart: matplotlib is not installed "
                  "(pip install -e '.[bench]')", file=sys.stderr)
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
