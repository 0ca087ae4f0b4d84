"""Build and run the fuzz targets; print and save their figures.

    python fuzz/run.py [--time SECONDS] [--merge] [TARGET ...]

C targets (libFuzzer, linked with the pure-C core): addr, table, rate.
Python targets (atheris, against the extension built with clang and
-fsanitize=address,undefined,float-cast-overflow,fuzzer-no-link so that
libFuzzer sees the C code's coverage): restrictions, runner, api.

Each target runs for --time seconds from its corpus in fuzz/corpus/TARGET
(new inputs go to a scratch directory under build/fuzz, so a run leaves the
tree unchanged); --merge then folds the inputs that add coverage back into
fuzz/corpus/TARGET, minimised.  A crash, sanitizer report, leak of an
oracle or per-input hang (over 20 s) fails the run; the input is saved as
build/fuzz/crashes/TARGET-*.  The figures go to build/fuzz/summary.json,
which tools/reliability_report.py reads.  See fuzz/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
BUILD = ROOT / "build" / "fuzz"
CORPUS = FUZZ / "corpus"
C_TARGETS = ("addr", "table", "rate")
PY_TARGETS = ("restrictions", "runner", "api")
SANITIZERS = "address,undefined,float-cast-overflow"
# A per-input hang guard, not a speed bound: an input that runs longer is
# reported as a hang.
INPUT_TIMEOUT = 20
# Python with ASan maps a lot of shadow memory; libFuzzer's default 2 GB
# RSS limit would stop the atheris targets early.
RSS_LIMIT_MB = 4096
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}

sys.path.insert(0, str(ROOT / "tools"))
import build_flags  # noqa: E402

sys.path.remove(str(ROOT / "tools"))


class FuzzSetupError(Exception):
    """What the fuzzers need is missing; the message says what and why."""


def run_checked(cmd: list[str], **kwargs: object) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise FuzzSetupError(f"{' '.join(map(str, cmd))} failed:\n{result.stdout}{result.stderr}")


def build_c_target(name: str) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        raise FuzzSetupError("clang is not installed (Debian: apt-get install clang "
                             "libclang-rt-14-dev)")
    out = BUILD / "bin" / f"fuzz_{name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_checked([clang, "-std=c11", "-D_GNU_SOURCE", *build_flags.WARNINGS, "-Werror",
                 "-g", "-O1", f"-fsanitize=fuzzer,{SANITIZERS}", "-fno-omit-frame-pointer",
                 f"-I{ROOT / 'csrc'}", str(FUZZ / f"fuzz_{name}.c"),
                 *map(str, sorted((ROOT / "csrc").glob("rn_*.c"))),
                 "-o", str(out), "-lpthread", "-lm"])
    return out


def build_instrumented_extension() -> Path:
    """A copy of the package whose extension libFuzzer can see into."""
    copy = BUILD / "ext"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    for part in ("csrc", "repynet", "tools"):
        shutil.copytree(ROOT / part, copy / part,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for part in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / part, copy / part)
    env = dict(os.environ, CC="clang", LDSHARED="clang -shared -pthread",
               REPYNET_WERROR="1", REPYNET_SANITIZE=f"{SANITIZERS},fuzzer-no-link")
    run_checked([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=copy, env=env)
    return copy


def atheris_runtime() -> Path:
    """The ASan runtime with libFuzzer linked in, built by atheris's installer."""
    try:
        import atheris
    except ImportError as err:
        raise FuzzSetupError("atheris is not installed: pip install --no-binary atheris "
                             "atheris (needs clang)") from err
    runtime = Path(atheris.path()) / "asan_with_fuzzer.so"
    if not runtime.exists():
        # The binary wheels ship no sanitizer runtime: without it the
        # extension's coverage callbacks bind to plain ASan and libFuzzer
        # sees no C coverage at all.
        raise FuzzSetupError(f"{runtime} is missing: atheris was installed from a binary "
                             "wheel; reinstall it from source: pip install --force-reinstall "
                             "--no-binary atheris atheris")
    return runtime


def network_namespace_prefix() -> list[str]:
    """A command prefix running in a new network namespace, where allowed."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return []
    probe = subprocess.run([unshare, "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        return []
    # The new namespace's loopback starts down.
    return [unshare, "-n", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh"]


def fuzz_command(name: str, binaries: dict[str, Path]) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, **SANITIZER_ENV)
    if name in C_TARGETS:
        return [str(binaries[name])], env
    wrapper = BUILD / "bin" / f"atheris_{name}"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FUZZ / f"atheris_{name}.py"}" "$@"\n')
    wrapper.chmod(0o755)
    env.update(PYTHONPATH=os.pathsep.join([str(binaries["ext"]), str(FUZZ)]),
               LD_PRELOAD=str(binaries["runtime"]), PYTHONMALLOC="malloc",
               REPYNET_FUZZ_SELF=str(wrapper))
    prefix = network_namespace_prefix() if name == "api" else []
    return [*prefix, str(wrapper)], env


STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)


def fuzz_one(name: str, seconds: int, merge: bool,
             binaries: dict[str, Path]) -> dict[str, Any]:
    corpus = CORPUS / name
    corpus.mkdir(parents=True, exist_ok=True)
    scratch = BUILD / "scratch" / name
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    crashes = BUILD / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    for old in crashes.glob(f"{name}-*"):
        old.unlink()
    cmd, env = fuzz_command(name, binaries)
    started = time.monotonic()
    result = subprocess.run(
        [*cmd, str(scratch), str(corpus), f"-max_total_time={seconds}",
         "-print_final_stats=1", f"-timeout={INPUT_TIMEOUT}", f"-rss_limit_mb={RSS_LIMIT_MB}",
         f"-artifact_prefix={crashes}/{name}-"],
        capture_output=True, text=True, env=env, cwd=BUILD,
        # A hang guard for the whole run.
        timeout=seconds + 600)
    elapsed = time.monotonic() - started
    log = BUILD / f"{name}.log"
    log.write_text(result.stdout + result.stderr)
    stats = {key: int(value) for key, value in STAT.findall(result.stderr)}
    found = sorted(path.name for path in crashes.glob(f"{name}-*"))
    if merge and result.returncode == 0:
        merge_corpus(cmd, env, corpus, scratch)
    return {
        "target": name,
        "engine": "libFuzzer" if name in C_TARGETS else "atheris",
        "seconds": round(elapsed, 1),
        "executions": stats.get("number_of_executed_units", 0),
        "new_units": stats.get("new_units_added", 0),
        "corpus_files": sum(1 for _ in corpus.iterdir()),
        "crashes": found,
        "exit_status": result.returncode,
        "log": str(log.relative_to(ROOT)),
    }


def merge_corpus(cmd: list[str], env: dict[str, str], corpus: Path, scratch: Path) -> None:
    merged = corpus.with_name(corpus.name + ".merged")
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir()
    run_checked([*cmd, "-merge=1", str(merged), str(corpus), str(scratch)], env=env, cwd=BUILD)
    shutil.rmtree(corpus)
    merged.rename(corpus)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"targets to run (default: all): {' '.join(C_TARGETS + PY_TARGETS)}")
    parser.add_argument("--time", type=int, default=30, help="seconds per target")
    parser.add_argument("--merge", action="store_true",
                        help="fold new coverage into fuzz/corpus (minimised)")
    options = parser.parse_args(argv)
    targets = options.targets or [*C_TARGETS, *PY_TARGETS]
    unknown = sorted(set(targets) - set(C_TARGETS + PY_TARGETS))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    binaries: dict[str, Path] = {}
    try:
        for name in targets:
            if name in C_TARGETS:
                binaries[name] = build_c_target(name)
        if any(name in PY_TARGETS for name in targets):
            binaries["runtime"] = atheris_runtime()
            binaries["ext"] = build_instrumented_extension()
    except FuzzSetupError as err:
        print(f"fuzz: {err}", file=sys.stderr)
        return 2
    results: list[dict[str, Any]] = []
    for name in targets:
        outcome = fuzz_one(name, options.time, options.merge, binaries)
        results.append(outcome)
        verdict = "ok" if outcome["exit_status"] == 0 else \
            f"FAILED (exit {outcome['exit_status']}; see {outcome['log']})"
        print(f"fuzz {name:13} {outcome['engine']:9} {outcome['executions']:>11,} executions "
              f"in {outcome['seconds']:6.1f} s, corpus {outcome['corpus_files']:4}, "
              f"crashes {len(outcome['crashes'])}: {verdict}", flush=True)
    (BUILD / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(outcome["exit_status"] == 0 for outcome in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
