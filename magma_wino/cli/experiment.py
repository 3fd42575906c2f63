"""``magma-wino experiment prune``: the pruning experiments (docs/experiments.md).

Trains a small VGG-style network of Winograd layers on a data set read offline, prunes it by
each method to each density, fine-tunes with the mask fixed, and reports accuracy, density
reached and the exact multiplications per image (:mod:`magma_wino.experiments`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# optional dependencies imported here, so that a missing one makes the subcommand "unavailable"
import torch  # noqa: F401

from .. import experiments
from ..experiments import report
from ..experiments.prune import METHODS, SCHEDULES, PruneConfig, config_with
from ._common import standalone_main

__all__ = ["HELP", "add_arguments", "run", "main"]

HELP = "experiments: pruning methods vs accuracy and multiplications (docs/experiments.md)"


def _density(text: str) -> float:
    try:
        d = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a density must be a number in (0, 1], got {text!r}") from None
    if not 0.0 < d <= 1.0:
        raise argparse.ArgumentTypeError(f"a density must be in (0, 1], got {text!r}")
    return d


def _int_at_least(minimum: int):
    """An argparse type: an int >= ``minimum``, else a usage error saying so."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = minimum - 1
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {text!r}")
        return v
    return parse


_positive, _nonnegative = _int_at_least(1), _int_at_least(0)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``prune`` and its options to ``parser``."""
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    p = sub.add_parser("prune", help="which pruning keeps accuracy at which density, and what it saves",
                       description="Train, prune by each method to each density, fine-tune with the mask "
                                   "fixed; report accuracy, density reached and multiplications per image.")
    p.add_argument("--quick", action="store_true", help="F(2,3), densities 1 0.3 0.1, short training (minutes)")
    p.add_argument("--data", choices=("digits", "cifar10"), default="digits",
                   help="digits: scikit-learn's, offline (default); cifar10: the python pickles in --path")
    p.add_argument("--path", default=None, help="directory of the CIFAR-10 python batches (--data cifar10)")
    p.add_argument("--tiles", type=_positive, nargs="+", default=None, help="output tile sizes m (default 2 4)")
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=None, help="default: all")
    p.add_argument("--densities", type=_density, nargs="+", default=None,
                   help="target densities (default 1 0.5 0.3 0.2 0.1 0.05)")
    p.add_argument("--epochs", type=_positive, default=None, help="training epochs of the dense networks")
    p.add_argument("--finetune-epochs", type=int, default=None, help="fine-tuning epochs after each pruning")
    p.add_argument("--schedule", choices=SCHEDULES, default=None, help="oneshot (default) or iterative")
    p.add_argument("--steps", type=_positive, default=None, help="pruning steps of --schedule iterative")
    p.add_argument("--prune-first", action="store_true", help="prune the first convolution too")
    p.add_argument("--filter-keep", type=_density, default=None,
                   help="filter+winograd: fraction of filters kept before pruning U (default 0.75)")
    p.add_argument("--block", type=_positive, nargs=2, default=None, metavar=("BK", "BC"),
                   help="winograd_block: output × input channels per block of U[b] (default 16 8)")
    p.add_argument("--train-images", type=_positive, default=None, help="use only the first N training images")
    p.add_argument("--test-images", type=_positive, default=None, help="use only the first N test images")
    p.add_argument("--seed", type=_nonnegative, default=None, help="the run's seed (default 0)")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--markdown", type=Path, default=None, help="write the table as markdown")
    p.add_argument("--plots", type=Path, default=None, help="directory for the two PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return parser


def config(args: argparse.Namespace) -> PruneConfig:
    """The :class:`PruneConfig` of the parsed options (``--quick`` first, options over it)."""
    base = PruneConfig.quick() if args.quick else PruneConfig()
    return config_with(
        base, data=args.data, path=args.path, tiles=tuple(args.tiles) if args.tiles else None,
        methods=tuple(args.methods) if args.methods else None,
        densities=tuple(args.densities) if args.densities else None, epochs=args.epochs,
        finetune_epochs=args.finetune_epochs, schedule=args.schedule, steps=args.steps,
        prune_first=True if args.prune_first else None, filter_keep=args.filter_keep,
        block=tuple(args.block) if args.block else None,
        train_images=args.train_images, test_images=args.test_images, seed=args.seed).check()


def run(args: argparse.Namespace) -> int:
    """Run the experiment of ``args``, print the table, write what was asked for; 0."""
    from rich.console import Console  # noqa: PLC0415

    # the outputs' directories are checked before hours of training, not after
    for opt, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path is not None and not path.parent.is_dir():
            print(f"magma-wino experiment prune: {opt} {path}: the directory {path.parent} does not exist",
                  file=sys.stderr)
            return 2
    try:
        cfg = config(args)
        data = experiments.load(cfg.data, cfg.path, seed=cfg.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"magma-wino experiment prune: {exc}", file=sys.stderr)
        return 2
    err = Console(stderr=True)
    try:
        result = experiments.run(cfg, data, progress=None if args.no_progress else err.print)
    except ValueError as exc:  # a config the data or the methods cannot serve (checked before training)
        print(f"magma-wino experiment prune: {exc}", file=sys.stderr)
        return 2
    Console(width=120).print(report.table(result.rows))
    print(f"{len(result.rows)} rows in {result.seconds:.0f} s; data {data.name} ({len(data.y_train)} training, "
          f"{len(data.y_test)} test images)")
    if args.json:
        doc = result.to_json()
        doc["command_line"] = getattr(args, "command_line", None)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(report.markdown(result.rows))
    if args.plots:
        for path in report.plot(result.rows, args.plots):
            print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.experiment prune [options]``; the exit status."""
    return standalone_main("experiment", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
