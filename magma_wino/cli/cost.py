"""``magma-wino cost``: exact multiplication / addition counts of VGG-16 or C3D layers
(:mod:`magma_wino.cost`), per layer or as network totals, as text or markdown."""

from __future__ import annotations

import argparse
import sys

from .. import cost
from ._common import standalone_main

__all__ = ["HELP", "add_arguments", "run", "main"]

HELP = "exact multiplication/addition counts (docs/cost.md)"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``magma-wino cost`` to ``parser``."""
    parser.add_argument("--network", choices=("vgg16", "c3d"), default="vgg16")
    parser.add_argument("--m", type=int, nargs="+", default=None, help="output tile sizes (default 2 4 6; C3D: 2 4)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--totals-only", action="store_true", help="only the network totals")
    parser.add_argument("--dense-only", action="store_true", help="only the dense configuration")
    parser.add_argument("--markdown", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the cost table of ``args``; 0."""
    layers = cost.VGG16_LAYERS if args.network == "vgg16" else cost.C3D_LAYERS
    ms = args.m or ((2, 4, 6) if args.network == "vgg16" else (2, 4))
    configs = cost.DEFAULT_CONFIGS[:1] if args.dense_only else cost.DEFAULT_CONFIGS
    rows = cost.cost_table(layers, ms, configs, N=args.batch, per_layer=not args.totals_only)
    print(cost.format_table(rows, markdown=args.markdown))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.cost [options]``; the exit status."""
    return standalone_main("cost", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
