"""The ``repynet`` command line: ``repynet COMMAND ...`` or ``python -m repynet``.

argparse reads the top level (``--version``, ``-h``, the command) and the
``demo`` command; ``run`` keeps its own parser (repynet/runner.py), because
its option-placement rules (issue 6: options also right after PROGRAM, the
first other token starts the program's arguments) are not argparse's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, NoReturn, Sequence

from . import __version__

PROG = "repynet"

DESCRIPTION = "The Repy V2 sandbox network API on Python 3, with a C core."

EPILOG = "'PROG COMMAND --help' shows a command's options."


def _run(argv: Sequence[str], prog: str) -> int:
    from . import runner

    return runner.main(list(argv), prog=prog)


def _demo(argv: Sequence[str], prog: str) -> int:
    from . import demo

    return demo.main(list(argv), prog=f"{prog} demo")


COMMANDS: dict[str, tuple[Callable[[Sequence[str], str], int], str]] = {
    "run": (_run, "run a Repy V2 program with the network API under restrictions"),
    "demo": (_demo, "a loopback self-check that prints one line"),
}


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The top-level parser; each command's own options are its parser's."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                     epilog=EPILOG.replace("PROG", prog),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"repynet {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for name, (_, summary) in COMMANDS.items():
        # Help only: the command's own parser reads its arguments.
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        command, _ = COMMANDS[args[0]]
        return command(args[1:], prog)
    parser = build_parser(prog)
    if not args:
        parser.print_help(sys.stderr)
        return 2
    try:
        parser.parse_args(args)
    except SystemExit as done:  # --help, --version, or a usage error (status 2)
        return int(done.code or 0)
    parser.print_usage(sys.stderr)  # only reached for an argument list argparse accepts
    return 2


def console_main() -> NoReturn:
    """The ``repynet`` console script."""
    sys.exit(main())
