#!/usr/bin/env python3
"""Requirements traceability check (stdlib only).

Reads the requirement definitions in docs/srs/*.md (bold
``**SRS_<MODULE>_<nn>_<nnn>: [**`` entries), the ``Tests_SRS_...`` tags in
tests/ (C comments and Python comments right above a test, or
``@pytest.mark.srs("SRS_...")``), and optionally the JUnit XML of a test run
(``--junit FILE``, repeatable).  It fails (exit 1) when:

- a requirement id is defined twice;
- a tag names an id no document defines (a typo, an upstream-only id);
- a tag is not followed by a test definition within a few lines;
- a defined id has no tagged test (or, with --junit, no tagged test that
  ran and passed: a skipped, failed or missing test does not count), unless
  docs/srs/waivers.md waives it with a reason and an issue number.

``Codes_SRS_...`` tags in csrc/ are checked too, as warnings only.
It prints one summary line, e.g. ``srs: 84/84 tested, 0 unknown tags``.

Usage: python tools/srs_trace.py [--root DIR] [--junit FILE]... [--matrix OUT]
"""

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DEF_RE = re.compile(r"\*\*(SRS_[A-Z0-9_]+?_\d+_\d{3}):\s*\[\*\*")
TAG_RE = re.compile(r"Tests_(SRS_[A-Z0-9_]+?_\d+_\d{3})\b")
MARK_RE = re.compile(r"pytest\.mark\.srs\(([^)]*)\)")
ID_RE = re.compile(r"SRS_[A-Z0-9_]+?_\d+_\d{3}")
CODES_RE = re.compile(r"Codes_(SRS_[A-Z0-9_]+?_\d+_\d{3})\b")
WAIVER_RE = re.compile(r"^\s*[-*]\s*(SRS_[A-Z0-9_]+?_\d+_\d{3})\s*:\s*(.+)$")
C_TEST_RE = re.compile(r"^\s*RN_TEST\(\s*(\w+)\s*\)")
PY_TEST_RE = re.compile(r"^\s*(?:async\s+)?def\s+(test\w*)\s*\(")
# How far below its tag a test definition may start (tags stack up, and a
# docstring comment may sit between them and the test).
TAG_REACH = 25


class Report:
    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, message):
        self.errors.append(message)

    def warn(self, message):
        self.warnings.append(message)


def parse_definitions(srs_dir, report):
    """{id: document name} of every requirement defined under srs_dir."""
    defined = {}
    for doc in sorted(Path(srs_dir).glob("*.md")):
        for line_no, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for req in DEF_RE.findall(line):
                if req in defined:
                    report.error(f"{doc.name}:{line_no}: {req} is defined twice "
                                 f"(also in {defined[req]})")
                else:
                    defined[req] = doc.name
    return defined


def parse_waivers(srs_dir, report):
    """Ids waived in waivers.md; an entry needs a reason and an issue."""
    waived = {}
    path = Path(srs_dir) / "waivers.md"
    if not path.exists():
        return waived
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = WAIVER_RE.match(line)
        if not match:
            continue
        req, reason = match.groups()
        if not re.search(r"(issue\s*#?\d+|#\d+)", reason, re.IGNORECASE):
            report.error(f"waivers.md:{line_no}: waiver of {req} names no issue")
            continue
        waived[req] = reason.strip()
    return waived


def module_key(path, root):
    """The JUnit classname prefix pytest gives tests of this file."""
    rel = path.relative_to(root).as_posix()
    if rel.endswith(".py"):
        rel = rel[:-3]
    return rel.replace("/", ".")


def parse_tags(tests_dir, root, report):
    """[(id, test key, file:line)] for every Tests_ tag and srs marker.

    A test key is (module key, test name)."""
    tags = []
    for path in sorted(Path(tests_dir).rglob("*")):
        if path.suffix not in (".c", ".py") or not path.is_file():
            continue
        if path.name == "test_srs_trace.py":
            continue  # its fixtures are made-up requirement documents
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        test_re = C_TEST_RE if path.suffix == ".c" else PY_TEST_RE
        for index, line in enumerate(lines):
            found = TAG_RE.findall(line)
            for mark in MARK_RE.findall(line):
                found += ID_RE.findall(mark)
            if not found:
                continue
            where = f"{path.relative_to(root).as_posix()}:{index + 1}"
            name = None
            for follow in lines[index + 1:index + 1 + TAG_REACH]:
                match = test_re.match(follow)
                if match:
                    name = match.group(1)
                    break
            if name is None:
                report.error(f"{where}: tag {found[0]} is not followed by a test "
                             f"within {TAG_REACH} lines")
                continue
            for req in found:
                tags.append((req, (module_key(path, root), name), where))
    return tags


def parse_codes(src_dir):
    codes = set()
    for path in sorted(Path(src_dir).glob("*.[ch]")):
        codes.update(CODES_RE.findall(path.read_text(encoding="utf-8", errors="replace")))
    return codes


def parse_junit(paths):
    """{(classname, name): outcome} with outcome in passed/failed/skipped."""
    results = {}
    for junit in paths:
        tree = ET.parse(junit)
        for case in tree.iter("testcase"):
            classname = case.get("classname", "")
            name = case.get("name", "")
            if case.find("failure") is not None or case.find("error") is not None:
                outcome = "failed"
            elif case.find("skipped") is not None:
                outcome = "skipped"
            else:
                outcome = "passed"
            previous = results.get((classname, name))
            # A test reported twice (reruns) counts as passed only if no
            # report failed.
            if previous == "failed":
                continue
            results[(classname, name)] = outcome
    return results


def test_passed(key, junit):
    """True when some run of the tagged test (any parametrization) passed."""
    module, name = key
    passed = False
    for (classname, case_name), outcome in junit.items():
        base = case_name.split("[", 1)[0]
        if base != name:
            continue
        if classname != module and not classname.startswith(module + "."):
            continue
        if outcome == "failed":
            return False
        if outcome == "passed":
            passed = True
    return passed


def family(req):
    return req.rsplit("_", 2)[0]


def check(root, junit_files=(), matrix=None):
    root = Path(root).resolve()
    report = Report()
    srs_dir = root / "docs" / "srs"
    defined = parse_definitions(srs_dir, report)
    waived = parse_waivers(srs_dir, report)
    tags = parse_tags(root / "tests", root, report)
    junit = parse_junit(junit_files) if junit_files else None

    unknown = sorted({(req, where) for req, _, where in tags if req not in defined})
    for req, where in unknown:
        report.error(f"{where}: tag names unknown requirement {req}")
    for req in waived:
        if req not in defined:
            report.error(f"waivers.md: waiver names unknown requirement {req}")

    tests_of = {}
    for req, key, _ in tags:
        tests_of.setdefault(req, set()).add(key)

    covered = {}
    for req in defined:
        keys = tests_of.get(req, set())
        if junit is None:
            ok = bool(keys)
        else:
            ok = any(test_passed(key, junit) for key in keys)
        covered[req] = ok
        if ok:
            continue
        if req in waived:
            continue
        if not keys:
            report.error(f"{req} ({defined[req]}) has no tagged test")
        else:
            names = ", ".join(sorted(f"{m}::{n}" for m, n in keys))
            report.error(f"{req} ({defined[req]}): no tagged test ran and passed "
                         f"({names})")

    src = root / "csrc"
    if src.is_dir():
        codes = parse_codes(src)
        for req in sorted(set(codes) - set(defined)):
            report.error(f"csrc: Codes_ tag names unknown requirement {req}")
        for req in sorted(set(defined) - set(codes)):
            report.warn(f"{req} has no Codes_ tag in csrc/")

    if matrix:
        write_matrix(matrix, defined, tests_of, covered, waived)

    families = {}
    for req, ok in covered.items():
        done, total = families.get(family(req), (0, 0))
        families[family(req)] = (done + (ok or req in waived), total + 1)
    done = sum(d for d, _ in families.values())
    total = sum(t for _, t in families.values())
    parts = ", ".join(f"{name} {d}/{t}" for name, (d, t) in sorted(families.items()))
    mode = "ran and passed" if junit is not None else "tagged (no --junit: not run)"
    summary = (f"srs: {done}/{total} {mode} [{parts}], {len(unknown)} unknown tags"
               + (f", {len(waived)} waived" if waived else ""))
    return report, summary


def write_matrix(path, defined, tests_of, covered, waived):
    lines = ["# Requirements coverage", "", "| id | status | tests |", "|---|---|---|"]
    for req in sorted(defined):
        status = "ok" if covered[req] else ("waived" if req in waived else "MISSING")
        tests = "<br>".join(sorted(f"`{m}::{n}`" for m, n in tests_of.get(req, ())))
        lines.append(f"| {req} | {status} | {tests} |")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=Path(__file__).resolve().parent.parent,
                        help="repository root (default: this checkout)")
    parser.add_argument("--junit", action="append", default=[],
                        help="JUnit XML of a test run; only tests that passed count")
    parser.add_argument("--matrix", help="write an id -> tests Markdown table here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no warnings")
    args = parser.parse_args(argv)
    report, summary = check(args.root, args.junit, args.matrix)
    if not args.quiet:
        for message in report.warnings:
            print(f"warning: {message}", file=sys.stderr)
    for message in report.errors:
        print(f"error: {message}", file=sys.stderr)
    print(summary)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
