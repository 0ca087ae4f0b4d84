"""Start-up time of a Repy program that loads ten dylink modules: ``python bench/startup.py``.

Builds, in a temporary directory, a Python 2 program and ten Python 2
modules (each ~120 lines, Seattle-library style) and times ``python -m
repynet run`` on it, as fresh processes:

- ``cold``: a new, empty translation cache each run (every file translated
  with fissix and compiled);
- ``warm``: the cache filled by an earlier run (code objects loaded);
- ``py3``: the same program written as Python 3 and run with
  ``--source py3`` (compiled, never translated): the floor;
- ``empty``: a program of one line, warm: the runner's own start.

The kinds run interleaved (cold, warm, py3, empty, cold, ...) so that load
from other users of the machine falls on all; the median of ``--repeat``
runs is printed as ``name<TAB>value<TAB>unit`` rows, with the ratios
cold/warm and warm/py3.  Nothing touches the network.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULES = 10
FUNCTIONS_PER_MODULE = 12

PY2_FUNCTION = '''
def {name}(values, limit=10):
  """Counts, sorts and divides the Python 2 way."""
  counts = {{}}
  for value in values:
    if counts.has_key(value):
      counts[value] += 1L
    else:
      counts[value] = 1
  keys = counts.keys()
  keys.sort()
  try:
    ratio = len(keys) / limit
  except ZeroDivisionError, e:
    raise ValueError, "no limit: " + str(e)
  for index in xrange(len(keys)):
    if keys[index] <> index:
      break
  return [`key` for key in keys], ratio
'''

PY3_FUNCTION = '''
def {name}(values, limit=10):
  """Counts, sorts and divides."""
  counts = {{}}
  for value in values:
    if value in counts:
      counts[value] += 1
    else:
      counts[value] = 1
  keys = sorted(counts)
  try:
    ratio = len(keys) // limit
  except ZeroDivisionError as e:
    raise ValueError("no limit: " + str(e))
  for index in range(len(keys)):
    if keys[index] != index:
      break
  return [repr(key) for key in keys], ratio
'''


def write_program(directory, function_template, printer):
    directory.mkdir(parents=True)
    for number in range(MODULES):
        body = "".join(function_template.format(name=f"m{number}_f{index}")
                       for index in range(FUNCTIONS_PER_MODULE))
        (directory / f"module{number}.r2py").write_text(body)
    imports = "".join(f'dy_import_module_symbols("module{number}.r2py")\n'
                      for number in range(MODULES))
    (directory / "main.r2py").write_text(imports + printer + "\n")
    (directory / "empty.r2py").write_text('log("ok\\n")\n')


def run_once(program, cache_home, *options):
    environment = dict(os.environ, XDG_CACHE_HOME=str(cache_home))
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "repynet", "run", *options, str(program)],
                            capture_output=True, env=environment)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or result.stdout != b"ok\n":
        raise SystemExit(f"{program} failed: {result.stderr.decode()}")
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each kind (median)")
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="repynet-startup-") as scratch:
        root = Path(scratch)
        py2 = root / "py2"
        py3 = root / "py3"
        write_program(py2, PY2_FUNCTION, 'print "ok"')
        write_program(py3, PY3_FUNCTION, 'log("ok\\n")')
        warm_cache = root / "warm-cache"
        run_once(py2 / "main.r2py", warm_cache)
        run_once(py3 / "main.r2py", warm_cache, "--source", "py3")
        run_once(py2 / "empty.r2py", warm_cache)

        samples = {"cold": [], "warm": [], "py3": [], "empty": []}
        for repetition in range(options.repeat):
            cold_cache = root / f"cold-cache-{repetition}"
            samples["cold"].append(run_once(py2 / "main.r2py", cold_cache))
            samples["warm"].append(run_once(py2 / "main.r2py", warm_cache))
            samples["py3"].append(run_once(py3 / "main.r2py", warm_cache, "--source", "py3"))
            samples["empty"].append(run_once(py2 / "empty.r2py", warm_cache))

    medians = {kind: statistics.median(values) for kind, values in samples.items()}
    for kind in ("cold", "warm", "py3", "empty"):
        print(f"startup_ten_modules_{kind}\t{medians[kind] * 1000:.1f}\tms"
              if kind != "empty" else f"startup_empty_program\t{medians[kind] * 1000:.1f}\tms")
    print(f"startup_cold_over_warm\t{medians['cold'] / medians['warm']:.2f}\tratio")
    print(f"startup_warm_over_py3\t{medians['warm'] / medians['py3']:.2f}\tratio")


if __name__ == "__main__":
    main()
