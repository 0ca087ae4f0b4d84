"""`python -m repynet COMMAND`: the command line.

Commands:
  demo   a loopback self-check that prints one line and exits 0
"""

import sys


def _demo(argv):
    from . import demo

    return demo.main(argv)


COMMANDS = {
    "demo": _demo,
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
