"""The ``pdeop`` command line: one entry point, one module per subcommand.

Each subcommand lives in ``operators/commands/<name>.py`` and defines ``add_arguments(parser)`` and
``run(args) -> int``; its module docstring's first line is the help text. User mistakes raise
:class:`~solvers.errors.ConfigError` and are printed here as one line with exit code 2; other
:class:`~solvers.errors.PdeopError`\\ s (unstable time step, failed solve) exit with code 1. Bugs keep
their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from solvers.errors import PdeopError
from solvers.version import __version__

COMMANDS = ("generate", "info", "train", "evaluate", "plot", "export", "bench")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand's arguments attached."""
    parser = _Parser(prog="pdeop", description="Neural-operator PDE toolkit.")
    parser.add_argument("--version", action="version", version=f"pdeop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"operators.commands.{name}")
        summary = (module.__doc__ or name).strip().splitlines()[0]
        command = sub.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pdeop`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    A closed output pipe (``pdeop info FILE | head``) ends the command quietly, as CPython's
    documentation of SIGPIPE recommends: stdout is pointed at ``/dev/null`` so the interpreter's
    final flush cannot fail again. Ctrl-C prints "interrupted" and exits with 130.
    """
    try:
        args = build_parser().parse_args(argv)
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here rather than at interpreter exit
        return code
    except PdeopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
