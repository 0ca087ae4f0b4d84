"""A loopback self-check: the C core loads, parses, and classifies as specified."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Sequence

from . import _repynet, errors


def main(argv: Sequence[str], prog: str = "repynet demo") -> int:
    """Runs the self-check; returns the exit status (0: the core works)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Check that repynet's C core loads and works: parse a "
        "loopback address and classify an errno as the spec says, print one line.")
    try:
        parser.parse_args(list(argv))
    except SystemExit as done:  # --help, or a usage error (status 2)
        return int(done.code or 0)
    family, text = _repynet._parse_address("127.0.0.1")
    refused = _repynet._errno_class("connect", errno.ECONNREFUSED)
    assert refused is errors.ConnectionRefusedError
    assert isinstance(refused, type)
    print(f"repynet core ok: parsed {text} (family {family}), "
          f"ECONNREFUSED -> {refused.__name__}")
    return 0
