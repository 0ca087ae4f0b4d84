"""What the atheris targets share."""

import os
import sys


def fuzz_argv() -> list[str]:
    """sys.argv, with argv[0] the command that reruns this target.

    libFuzzer's -merge=1 reruns argv[0] in child processes; for a Python
    script that must be an executable, so fuzz/run.py writes a wrapper and
    names it in REPYNET_FUZZ_SELF.
    """
    return [os.environ.get("REPYNET_FUZZ_SELF", sys.argv[0]), *sys.argv[1:]]
