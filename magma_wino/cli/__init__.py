"""The ``magma-wino`` command line: validate, bench, accuracy, cost, experiment, info.

One module per subcommand, ``magma_wino/cli/<name>.py``, each with ``HELP`` (its line in
``magma-wino --help``), ``add_arguments(parser)``, ``run(args) -> int`` and ``main(argv)``
(``python -m magma_wino.cli.<name>``).  :data:`SUBCOMMANDS` is the one ordered table the
parser is assembled from (:func:`build_parser`).  The library modules they drive
(:mod:`magma_wino.validate`, :mod:`magma_wino.bench`, …) never import this package.

Subcommand modules are imported lazily: ``magma-wino info`` imports ``info`` alone (no
torch, no matplotlib), and only ``--help`` or an unknown command imports every one, for the
listing.  A module whose import fails with ImportError (an optional dependency missing) is
still listed; calling it prints ``magma-wino <name> unavailable: <reason>`` on stderr and
returns 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from ._common import PROG, record_command

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

#: The subcommands, in the order ``magma-wino --help`` lists them: ``magma_wino.cli.<name>``.
SUBCOMMANDS: tuple[str, ...] = ("validate", "bench", "accuracy", "cost", "experiment", "info")


def _import_subcommand(name: str) -> ModuleType:
    """``magma_wino.cli.<name>`` (the one place a subcommand module is imported)."""
    return importlib.import_module(f"{__name__}.{name}")


def _load(name: str) -> ModuleType | ImportError:
    """The subcommand's module, or the ImportError that stopped it (listed as unavailable)."""
    try:
        return _import_subcommand(name)
    except ImportError as exc:
        return exc


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``magma-wino`` parser, one subparser per entry of :data:`SUBCOMMANDS`.

    ``only``: import and fully define that subcommand alone (the others are listed by name,
    not imported); None imports every one, for ``--help``.  Each subparser's default ``func``
    is the subcommand's ``run``.
    """
    if only is not None and only not in SUBCOMMANDS:
        raise ValueError(f"only must be one of {SUBCOMMANDS} or None, got {only!r}")
    from .. import __version__

    ap = argparse.ArgumentParser(prog=PROG, description="Winograd convolution kernels: validation, "
                                 "benchmarks, accuracy, cost, experiments and build info.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)  # never parsed in this run: listed without importing its module
            continue
        mod = _load(name)
        if isinstance(mod, ImportError):  # listed; main() answers a call before parsing
            sub.add_parser(name, help=f"(unavailable: {mod})", add_help=False)
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``magma-wino [--version] COMMAND [options]``; returns the exit status (usage errors
    exit with status 2, argparse's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The first word names the subcommand (the top level has options only, no values): that
    # module alone is imported.  Anything else (--help, --version, a typo) builds the full list.
    only = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    if only is not None and isinstance(exc := _load(only), ImportError):
        # Before parsing: its options are unknown, and whatever they are (--help too) the
        # answer is this message.
        print(f"{PROG} {only} unavailable: {exc}", file=sys.stderr)
        return 2
    args = build_parser(only).parse_args(argv)
    record_command(args, args.command, argv[1:])
    return int(args.func(args) or 0)
