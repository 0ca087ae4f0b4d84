"""The benchmark harness works: every case runs once, with tiny counts, end to end.

This proves bench/run.py and bench/cases.py run and report; it says nothing
about speed, so nothing here looks at a time or a ratio.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
FAMILY_OF_ADDRESS = {"127.0.0.1": "ipv4", "::1": "ipv6"}

pytestmark = pytest.mark.skipif(not (BENCH / "run.py").exists(),
                                reason="bench/ is not beside the tests (run from a source tree)")


def run_harness(family, output):
    # --scale shrinks each case to a few dozen iterations; --repeat 1 runs
    # each (case, implementation) in one fresh process.
    command = [sys.executable, str(BENCH / "run.py"), "--repeat", "1", "--scale", "0.001",
               "--families", family, "--output", str(output)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def load_run_module():
    spec = importlib.util.spec_from_file_location("repynet_bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_case_runs_for_both_implementations(loopback, tmp_path):
    family = FAMILY_OF_ADDRESS[loopback]
    output = tmp_path / "bench.json"

    finished = run_harness(family, output)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(output.read_text())
    run = load_run_module()
    assert [row["case"] for row in report["rows"]] == list(run.COUNTS)
    for row in report["rows"]:
        assert row["family"] == family
        assert row["errors"] == []
        assert row["repynet"] > 0 and row["raw"] > 0, row
        assert row["ratio"] is not None and row["met"] in (True, False)
        assert row["case"] in finished.stdout
    for sample in report["samples"]:
        assert sample["iterations"] > 0, sample
    assert {(sample["case"], sample["impl"]) for sample in report["samples"]} == {
        (case, impl) for case in run.COUNTS for impl in ("repynet", "raw")}


def test_a_case_prints_one_json_result(tmp_path):
    command = [sys.executable, str(BENCH / "cases.py"), "recv_wouldblock", "repynet", "ipv4",
               "--count", "10"]

    finished = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)
    assert result["case"] == "recv_wouldblock" and result["impl"] == "repynet"
    assert result["kind"] == "cost" and result["unit"] == "ns/call"
    assert result["iterations"] >= 10
