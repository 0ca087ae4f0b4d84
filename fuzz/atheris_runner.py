"""Atheris target: the runner's command line (repynet.runner.parse_command_line).

Oracle: any argument list either gives Options or raises UsageError, never
another exception; PROGRAM is one of the arguments, the program's arguments
are exactly the tail of the list, and every --ip/--iface value given is
kept in order.  Run through fuzz/run.py (see fuzz/README.md).
"""


import atheris
from atheris_common import fuzz_argv

with atheris.instrument_imports():
    from repynet.runner import UsageError, parse_command_line

# Tokens the parser knows, so the fuzzer reaches its branches quickly.
KNOWN_TOKENS = ("--restrictions", "--api", "--ip", "--iface", "--nootherips", "--help",
                "-h", "--version", "--", "-", "v1", "v2", "--ip=", "--api=v2",
                "--restrictions=", "prog.repy", "127.0.0.1", "lo")


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    argv = []
    for _ in range(provider.ConsumeIntInRange(0, 12)):
        if provider.ConsumeBool():
            argv.append(KNOWN_TOKENS[provider.ConsumeIntInRange(0, len(KNOWN_TOKENS) - 1)])
        else:
            argv.append(provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 24)))
    try:
        options = parse_command_line(list(argv))
    except UsageError:
        return
    if options.program is not None:
        assert options.program in argv
    if options.callargs:
        assert argv[len(argv) - len(options.callargs):] == options.callargs
    for kind, value in options.local_addresses:
        assert kind in ("ip", "iface") and isinstance(value, str)
    assert options.program is not None or options.show_help or options.show_version


if __name__ == "__main__":
    atheris.Setup(fuzz_argv(), test_one_input)
    atheris.Fuzz()
