"""Running the programs of this directory through `python -m repynet run`.

Shared by tests/test_py2.py and tests/test_dylink.py, which load it by path
(the suite also runs with --import-mode=importlib, where test modules
cannot import each other).  Each run gets its own translation cache
(XDG_CACHE_HOME under the test's tmp_path) and no REPY_PATH of the caller.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAMS = Path(__file__).resolve().parent
HANG_GUARD = 300


def run(tmp_path, *argv, env=None):
    """``python -m repynet run ARGV`` in this directory; the CompletedProcess."""
    environment = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    environment.pop("REPY_PATH", None)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "repynet", "run", *map(str, argv)],
                          capture_output=True, timeout=HANG_GUARD, cwd=PROGRAMS,
                          env=environment)


def run_source(tmp_path, source, *argv, name="prog.r2py"):
    """Writes ``source`` (dedented) to tmp_path/NAME and runs it after ARGV."""
    program = tmp_path / name
    program.write_text(textwrap.dedent(source), encoding="utf-8")
    return run(tmp_path, *argv, program)


def stderr_lines(result):
    return result.stderr.decode().splitlines()


def failed_run(tmp_path, program, stdout):
    """Runs a program that must fail with status 1 after writing ``stdout``; its stderr."""
    result = run(tmp_path, program)
    assert result.returncode == 1
    assert result.stdout == stdout
    return result.stderr.decode()
