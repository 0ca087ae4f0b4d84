"""The one place the C compile and link flags are decided.

setup.py builds the extension with them and tests/conftest.py builds the
pure-C unit tests with them, so both see the same warnings and sanitizers.
Environment: REPYNET_WERROR=1 adds -Werror; REPYNET_SANITIZE=address,undefined
builds with those sanitizers (-O1 -g); REPYNET_RELEASE=1 builds a release
wheel: no debug information and a stripped shared object (the development
build keeps Python's default -g, which debuggers and valgrind want).
"""

from __future__ import annotations

import os

WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wstrict-prototypes",
    "-Wshadow",
]


def sanitizers() -> list[str]:
    value = os.environ.get("REPYNET_SANITIZE", "").strip()
    return [name for name in value.split(",") if name]


def release() -> bool:
    return os.environ.get("REPYNET_RELEASE") == "1"


def compile_args() -> list[str]:
    args = ["-std=c11", "-D_GNU_SOURCE", *WARNINGS]
    if os.environ.get("REPYNET_WERROR") == "1":
        args.append("-Werror")
    wanted = sanitizers()
    if wanted:
        args += [f"-fsanitize={','.join(wanted)}", "-fno-omit-frame-pointer", "-O1", "-g"]
    elif release():
        # Last on the command line, so it overrides the -g Python's own flags add.
        args.append("-g0")
    return args


def link_args() -> list[str]:
    wanted = sanitizers()
    args = ["-lpthread"]
    if wanted:
        args.insert(0, f"-fsanitize={','.join(wanted)}")
    elif release():
        args.append("-s")
    return args
