"""What every ``magma-wino`` subcommand module shares: its standalone entry point.

A subcommand module (``magma_wino/cli/<name>.py``) defines ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``; :func:`standalone_main` is its ``main(argv)``, the entry of
``python -m magma_wino.cli.<name>``, and :func:`record_command` is what both that entry and
``magma-wino <name>`` (:func:`magma_wino.cli.main`) put on the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["PROG", "WIDE", "WIDTH", "add_wide_option", "console", "record_command", "standalone_main", "usage_error"]

#: The console script's name (pyproject.toml), the head of every recorded command line.
PROG = "magma-wino"
#: The width tables are fitted to when stdout is not a terminal (a log, a pipe): 80 columns;
#: ``--wide`` lifts it to :data:`WIDE` (every column at its natural width).
WIDTH = 80
WIDE = 240


def add_wide_option(parser: argparse.ArgumentParser) -> None:
    """``--wide``: tables at their natural width instead of fitted to the terminal (80 columns
    when stdout is not one)."""
    parser.add_argument("--wide", action="store_true",
                        help=f"tables at full width (default: fitted to the terminal, {WIDTH} columns in a log)")


def console(args: argparse.Namespace | None = None) -> Any:
    """A rich Console whose tables fit: the terminal's width (at most its own), :data:`WIDTH`
    columns when stdout is not a terminal, :data:`WIDE` with ``--wide``.  Rich wraps cells to
    fit the width."""
    from rich.console import Console

    if args is not None and getattr(args, "wide", False):
        return Console(width=WIDE)
    return Console() if sys.stdout.isatty() else Console(width=WIDTH)


def usage_error(name: str, message: str) -> int:
    """Print ``magma-wino <name>: <message>`` to stderr and return 2, the usage-error status
    (as argparse's), for arguments that parse but select nothing or name something unsupported."""
    print(f"{PROG} {name}: {message}", file=sys.stderr)
    return 2


def record_command(args: argparse.Namespace, name: str, argv: Sequence[str]) -> argparse.Namespace:
    """Put the command line on ``args``: ``args._argv`` (the subcommand's own arguments) and
    ``args.command_line`` (``"magma-wino <name> ..."``, recorded in the results of bench and
    accuracy), whichever entry point parsed them."""
    args._argv = list(argv)
    args.command_line = " ".join([PROG, name, *args._argv])
    return args


def standalone_main(name: str, help_line: str, add_arguments: Callable[[argparse.ArgumentParser], object],
                    run: Callable[[argparse.Namespace], int | None],
                    argv: Sequence[str] | None = None) -> int:
    """``python -m magma_wino.cli.<name> [options]``: the same options and the same run as
    ``magma-wino <name> [options]``; returns the exit status.

    ``argv`` defaults to ``sys.argv[1:]``; a usage error exits with status 2 (argparse).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be the subcommand's name (a non-empty str), got {name!r}")
    parser = argparse.ArgumentParser(prog=f"{PROG} {name}", description=help_line)
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = record_command(parser.parse_args(argv), name, argv)
    return int(run(args) or 0)
