"""The one place the C compile and link flags are decided.

setup.py builds the extension with them and tests/conftest.py builds the
pure-C unit tests with them, so both see the same warnings and sanitizers.
Environment: REPYNET_WERROR=1 adds -Werror; REPYNET_SANITIZE=address,undefined
builds with those sanitizers (-O1 -g).
"""

import os

WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wstrict-prototypes",
    "-Wshadow",
]


def sanitizers():
    value = os.environ.get("REPYNET_SANITIZE", "").strip()
    return [name for name in value.split(",") if name]


def compile_args():
    args = ["-std=c11", "-D_GNU_SOURCE", *WARNINGS]
    if os.environ.get("REPYNET_WERROR") == "1":
        args.append("-Werror")
    wanted = sanitizers()
    if wanted:
        args += [f"-fsanitize={','.join(wanted)}", "-fno-omit-frame-pointer", "-O1", "-g"]
    return args


def link_args():
    wanted = sanitizers()
    args = ["-lpthread"]
    if wanted:
        args.insert(0, f"-fsanitize={','.join(wanted)}")
    return args
