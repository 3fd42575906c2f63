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

__all__ = ["PROG", "record_command", "standalone_main"]

#: The console script's name (pyproject.toml), the head of every recorded command line.
PROG = "magma-wino"


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
