"""repynet against the raw ``socket`` module, side by side: ``python bench/run.py``.

Each measurement is one fresh process of ``bench/cases.py``; each is repeated
(``--repeat``, default 5) and the median is reported, for repynet and for raw
``socket`` used the Repy way, with the ratio repynet/raw.  The two
implementations run back to back inside each repetition, in alternating
order, so that load from other users of the machine falls on both.  Runs on
127.0.0.1 and, when the host has it, on ::1; nothing else is addressed.

The table goes to stdout, every sample to a JSON file under bench/results/.
See docs/performance.md for what the cases measure and for the targets.
"""

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CASES_SCRIPT = BENCH / "cases.py"
RESULTS = BENCH / "results"

# case: (iterations of a full run, iterations of a --quick run).  Chosen so
# that one timed loop takes a few tenths of a second on a 2-core VM.
COUNTS = {
    "recv_wouldblock": (200_000, 20_000),
    "getconnection_wouldblock": (100_000, 10_000),
    "getmessage_wouldblock": (200_000, 20_000),
    "send_1byte": (100_000, 10_000),
    "pingpong_64": (40_000, 4_000),
    "bulk_64k": (8_192, 1_024),  # 64 KiB chunks: 512 MiB, 64 MiB
    "udp_reuse_64": (80_000, 8_000),
    "udp_fresh_64": (20_000, 2_000),
    "connect_accept_close": (4_000, 500),
}
IMPLS = ("repynet", "raw")
FAMILY_ADDRESSES = {"ipv4": (socket.AF_INET, "127.0.0.1"), "ipv6": (socket.AF_INET6, "::1")}
QUICK_REPEAT = 3
WARMUP_FRACTION = 10  # an untimed warm-up of count / this many iterations


def loopback_available(family_name):
    family, address = FAMILY_ADDRESSES[family_name]
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def run_one(case, impl, family, count, max_seconds):
    """One fresh process of cases.py: its result dict, or one with an error."""
    command = [
        sys.executable, str(CASES_SCRIPT), case, impl, family,
        "--count", str(count), "--warmup", str(max(1, count // WARMUP_FRACTION)),
        "--max-seconds", str(max_seconds),
    ]
    try:
        finished = subprocess.run(command, capture_output=True, text=True,
                                  timeout=3 * max_seconds + 60)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if finished.returncode != 0:
        lines = finished.stderr.strip().splitlines() or [f"exit {finished.returncode}"]
        return {"error": lines[-1]}
    return json.loads(finished.stdout)


def ratio_meets_target(kind, ratio):
    # A cost (time per call) must not exceed raw's; a rate must match it.
    return ratio <= 1.0 if kind == "cost" else ratio >= 1.0


def paired_ratios(samples, case, family):
    """repynet/raw within each repetition, where the two ran back to back.

    Load from other users of the machine changes from one repetition to the
    next far more than within one, so the median of these paired ratios is
    steadier than the ratio of the two medians.
    """
    by_repetition = {}
    for sample in samples:
        if (sample["case"], sample["family"]) == (case, family) and "error" not in sample:
            by_repetition.setdefault(sample["repetition"], {})[sample["impl"]] = sample["value"]
    return [pair["repynet"] / pair["raw"] for pair in by_repetition.values()
            if len(pair) == 2 and pair["raw"]]


def summarise(samples):
    """Median per (case, family, impl) and the ratio: one row per case and family."""
    rows = []
    keys = []
    for sample in samples:
        key = (sample["case"], sample["family"])
        if key not in keys:
            keys.append(key)
    for case, family in keys:
        row = {"case": case, "family": family, "errors": []}
        for impl in IMPLS:
            values = []
            for sample in samples:
                if (sample["case"], sample["family"], sample["impl"]) != (case, family, impl):
                    continue
                if "error" in sample:
                    row["errors"].append(f"{impl}: {sample['error']}")
                else:
                    values.append(sample["value"])
                    row["kind"], row["unit"] = sample["kind"], sample["unit"]
            row[impl] = statistics.median(values) if values else None
            row[impl + "_samples"] = values
        paired = paired_ratios(samples, case, family)
        if row["repynet"] is not None and row["raw"]:
            row["ratio_of_medians"] = row["repynet"] / row["raw"]
            row["ratio"] = statistics.median(paired) if paired else row["ratio_of_medians"]
            row["target"] = "<= 1" if row["kind"] == "cost" else ">= 1"
            row["met"] = ratio_meets_target(row["kind"], row["ratio"])
        else:
            row["ratio_of_medians"] = row["ratio"] = row["target"] = row["met"] = None
        row["paired_ratios"] = paired
        rows.append(row)
    return rows


def format_table(rows):
    header = ("case", "family", "unit", "repynet", "raw", "ratio", "paired", "target", "met")
    lines = [header]
    for row in rows:
        def number(value):
            return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
        lines.append((
            row["case"], row["family"], row.get("unit", "-"),
            number(row["repynet"]), number(row["raw"]),
            "-" if row["ratio_of_medians"] is None else f"{row['ratio_of_medians']:.2f}",
            "-" if row["ratio"] is None else f"{row['ratio']:.2f}",
            row["target"] or "-",
            "error" if row["met"] is None else "yes" if row["met"] else "NO",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for number_of_line, line in enumerate(lines):
        text.append("  ".join(cell.ljust(widths[i]) if i < 3 else cell.rjust(widths[i])
                              for i, cell in enumerate(line)).rstrip())
        if number_of_line == 0:
            text.append("  ".join("-" * width for width in widths))
    for row in rows:
        for error in row["errors"]:
            text.append(f"error in {row['case']} {row['family']}: {error}")
    return "\n".join(text)


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=BENCH, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=None,
                        help=f"fresh processes per measurement (default 5, {QUICK_REPEAT} "
                             "with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: a tenth of the iterations, fewer repeats")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every iteration count (tiny runs for tests)")
    parser.add_argument("--cases", nargs="+", choices=sorted(COUNTS), default=list(COUNTS),
                        metavar="CASE", help="cases to run (default: all)")
    parser.add_argument("--families", nargs="+", choices=sorted(FAMILY_ADDRESSES),
                        default=list(FAMILY_ADDRESSES), metavar="FAMILY",
                        help="ipv4 (127.0.0.1) and/or ipv6 (::1); default: both")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="a timed loop stops by itself after this long")
    parser.add_argument("--output", type=Path, default=None,
                        help="the JSON file (default: bench/results/bench-TIMESTAMP.json)")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else 5
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale positive")
    return args


def main(argv=None):
    args = parse_arguments(argv)
    families = [family for family in args.families if loopback_available(family)]
    skipped = sorted(set(args.families) - set(families))
    for family in skipped:
        print(f"{family}: no loopback address on this host, skipped", file=sys.stderr)
    started = datetime.datetime.now(datetime.timezone.utc)
    samples = []
    for repetition in range(args.repeat):
        # Alternate which implementation goes first, so neither always
        # runs on a machine the other has just warmed up or loaded.
        order = IMPLS if repetition % 2 == 0 else IMPLS[::-1]
        for case in args.cases:
            full, quick = COUNTS[case]
            count = max(1, round((quick if args.quick else full) * args.scale))
            for family in families:
                for impl in order:
                    result = run_one(case, impl, family, count, args.max_seconds)
                    result.update(case=case, impl=impl, family=family, repetition=repetition)
                    samples.append(result)
        print(f"repetition {repetition + 1}/{args.repeat} done", file=sys.stderr)
    rows = summarise(samples)
    print(format_table(rows))

    output = args.output or RESULTS / f"bench-{started:%Y%m%dT%H%M%SZ}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "started": started.isoformat(),
        "commit": git_commit(),
        "python": sys.version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_after": os.getloadavg(),
        "settings": {"repeat": args.repeat, "quick": args.quick, "scale": args.scale,
                     "max_seconds": args.max_seconds, "families_skipped": skipped},
        "rows": rows,
        "samples": samples,
    }
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {output}", file=sys.stderr)
    return 1 if any(row["met"] is None for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
