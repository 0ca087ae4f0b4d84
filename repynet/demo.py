"""A loopback self-check: the C core loads, parses, and classifies as specified."""

import errno

from . import _repynet, errors


def main(argv):
    family, text = _repynet._parse_address("127.0.0.1")
    refused = _repynet._errno_class("connect", errno.ECONNREFUSED)
    assert refused is errors.ConnectionRefusedError
    print(f"repynet core ok: parsed {text} (family {family}), "
          f"ECONNREFUSED -> {refused.__name__}")
    return 0
