"""The benchmark harness works: every row runs once, with tiny counts, end to end.

This proves that bench/run.py, its programs under both repynet and the shim,
bench/cases.py, bench/memory.py and the extra-script protocol run and report;
it says nothing about speed, so nothing here compares a time or a ratio with
a bound.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
FAMILY_OF_ADDRESS = {"127.0.0.1": "ipv4", "::1": "ipv6"}
# A program's window is PROGRAM_SECONDS[quick] * this: long enough for every
# program to finish some work even on a busy machine.
PROGRAM_SCALE = 0.4
# Single-thread cases run a few dozen iterations at this scale.
CASE_SCALE = 0.01

pytestmark = pytest.mark.skipif(not (BENCH / "run.py").exists(),
                                reason="bench/ is not beside the tests (run from a source tree)")


def run_harness(*arguments: str) -> "subprocess.CompletedProcess[str]":
    command = [sys.executable, str(BENCH / "run.py"), "--quick", "--repeat", "1", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def load_run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("repynet_bench_run", BENCH / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_report(path: Path) -> Dict[str, Any]:
    report: Dict[str, Any] = json.loads(path.read_text())
    return report


def test_every_program_runs_under_repynet_and_the_shim_and_prints_its_figures(
        tmp_path: Path) -> None:
    output = tmp_path / "bench.json"

    finished = run_harness("--groups", "programs", "--scale", str(PROGRAM_SCALE),
                           "--output", str(output), "--docs", str(tmp_path))

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = read_report(output)
    run = load_run_module()
    figures_per_row = {"repy_udp_persistent": 3, "repy_udp_fresh": 3}
    expected_rows = [row + suffix for row in run.PROGRAM_ROWS
                     for suffix in (["", " sent", " fraction"][:figures_per_row.get(row, 1)])]
    assert sorted(row["case"] for row in report["rows"]) == sorted(expected_rows)
    for row in report["rows"]:
        assert row["errors"] == [], row
        assert row["baseline"] == "shim"
        assert row["repynet_samples"] and row["baseline_value_samples"], row
        assert row["repynet"] >= 0 and row["baseline_value"] >= 0, row
        # Many threads taking turns may finish no round trip in so short a
        # window; every other program does some work in it.
        if row["unit"] != "received/sent" and not row["case"].startswith("repy_pairs_"):
            assert row["repynet"] > 0 and row["baseline_value"] > 0, row
        assert row["case"] in finished.stdout
    by_case = {row["case"]: row for row in report["rows"]}
    for row in report["rows"]:
        if row["unit"] == "received/sent":
            # A fraction, computed with Python 3's division: strictly between
            # 0 and 1 unless nothing or everything arrived.
            received = by_case[row["case"].replace(" fraction", "")]
            sent = by_case[row["case"].replace(" fraction", " sent")]
            for impl, label in (("repynet", "repynet"), ("shim", "baseline_value")):
                expected = received[label] / sent[label]
                assert row[label] == pytest.approx(expected, rel=0.5, abs=0.01), (impl, row)
    assert "quoted from issue 10" in finished.stdout
    table = (tmp_path / run.DOCS_TABLE).read_text()
    assert "| repy_pingpong_busy |" in table and "750-948" in table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / run.DOCS_CHART).read_bytes().startswith(b"\x89PNG")


def test_every_case_runs_for_both_implementations(family: str, tmp_path: Path) -> None:
    family_name = FAMILY_OF_ADDRESS[family]
    output = tmp_path / "bench.json"

    finished = run_harness("--groups", "single", "memory", "--scale", str(CASE_SCALE),
                           "--families", family_name, "--output", str(output))

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = read_report(output)
    run = load_run_module()
    assert [row["case"] for row in report["rows"]] == list(run.COUNTS) + ["rss_per_connection"]
    for row in report["rows"]:
        assert row["errors"] == []
        assert row["baseline"] == "raw"
        assert row["case"] in finished.stdout
        if row["group"] == "single":
            assert row["family"] == family_name
            assert row["repynet"] > 0 and row["baseline_value"] > 0, row
            assert row["ratio"] is not None and row["met"] in (True, False)
        else:
            # A few dozen connections may not move RSS by a page: only the
            # presence of a reading is checked.
            assert row["repynet"] is not None and row["baseline_value"] is not None
    for sample in report["samples"]:
        assert sample["iterations"] > 0, sample


EXTRA_SCRIPT = """
import json, sys
quick = "--quick" in sys.argv
for impl, value in (("repynet", 2.0), ("original", 4.0)):
    row = {"case": "demo_dispatch", "impl": impl, "value": value, "unit": "calls/s",
           "kind": "rate", "quick": quick}
    print("BENCH-ROW " + json.dumps(row))
"""


def test_an_extra_script_adds_its_rows_runs_under_load_and_its_report_is_shown_again(
        tmp_path: Path) -> None:
    script = tmp_path / "demo_extra.py"
    script.write_text(EXTRA_SCRIPT)
    output = tmp_path / "bench.json"

    finished = run_harness("--groups", "extra", "--extra", str(script), "--no-default-extras",
                           "--load", "--output", str(output))

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = read_report(output)
    rows: List[Dict[str, Any]] = report["rows"]
    assert [(row["case"], row["load"]) for row in rows] == [("demo_dispatch", False),
                                                            ("demo_dispatch", True)]
    for row in rows:
        assert row["baseline"] == "original"
        assert row["ratio"] == pytest.approx(0.5)
        assert row["met"] is False
    assert all(sample["quick"] for sample in report["samples"])
    shown = subprocess.run([sys.executable, str(BENCH / "run.py"), "--report", str(output),
                            "--docs", str(tmp_path / "docs")],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "demo_dispatch" in shown.stdout and "under load" in shown.stdout
    assert "| demo_dispatch |" in (tmp_path / "docs" / "bench-results.md").read_text()
    assert len(report["load_pids"]) == (os.cpu_count() or 1)
    for pid in report["load_pids"]:
        # The harness stopped and reaped its busy processes before exiting.
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/cmdline").read_bytes().find(b"getppid") < 0


def test_a_program_result_line_becomes_one_sample_per_figure() -> None:
    run = load_run_module()
    parse = run.parse_program_output("repy_udp_fresh")

    samples = parse("noise\nRESULT received_per_s=10 sent_per_s=20 received_fraction=0.5\n")

    assert [(sample["case"], sample["unit"], sample["value"]) for sample in samples] == [
        ("repy_udp_fresh", "received/s", 10.0),
        ("repy_udp_fresh sent", "sent/s", 20.0),
        ("repy_udp_fresh fraction", "received/sent", 0.5)]
    with pytest.raises(ValueError):
        parse("a program that printed no result\n")


def test_a_case_prints_one_json_result() -> None:
    command = [sys.executable, str(BENCH / "cases.py"), "recv_wouldblock", "repynet", "ipv4",
               "--count", "10"]

    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["case"] == "recv_wouldblock" and result["impl"] == "repynet"
    assert result["kind"] == "cost" and result["unit"] == "ns/call"
    assert result["iterations"] >= 10
