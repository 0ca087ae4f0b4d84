"""`python -m repynet COMMAND`: the command line.

Commands:
  demo   a loopback self-check that prints one line and exits 0
  run    run a Repy V2 program: python -m repynet run [OPTIONS] PROGRAM [ARG ...]
         (run --help for its options)
"""

import sys


def _demo(argv):
    from . import demo

    return demo.main(argv)


def _run(argv):
    from . import runner

    return runner.main(argv)


COMMANDS = {
    "demo": _demo,
    "run": _run,
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"repynet: unknown command {argv[0]!r}; try --help", file=sys.stderr)
        return 2
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
