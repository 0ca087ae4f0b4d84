"""Atheris target: the restrictions file parser (Restrictions.parse).

Oracle: any text either parses into limits that are all in range (ports
1-65535, counts and decimals finite and non-negative) or raises
RestrictionsError with the path and a line number; never another exception.
Run through fuzz/run.py (see fuzz/README.md).
"""

import math

import atheris
from atheris_common import fuzz_argv

with atheris.instrument_imports():
    from repynet.restrictions import SCHEMA, Kind, Restrictions, RestrictionsError

PORT_RESOURCES = frozenset(r.name for r in SCHEMA if r.kind is Kind.PORTSET)


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    text = provider.ConsumeUnicodeNoSurrogates(len(data))
    try:
        parsed = Restrictions.parse(text, "fuzz.restrictions")
    except RestrictionsError as err:
        assert str(err).startswith("fuzz.restrictions"), str(err)
        return
    for name, value in parsed.limits().items():
        if name in PORT_RESOURCES:
            assert all(type(port) is int and 1 <= port <= 65535 for port in value), name
        else:
            assert value >= 0 and math.isfinite(value), (name, value)


if __name__ == "__main__":
    atheris.Setup(fuzz_argv(), test_one_input)
    atheris.Fuzz()
