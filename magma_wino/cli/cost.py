"""``magma-wino cost``: exact multiplication / addition counts of VGG-16, ResNet-18/50 or C3D
layers (:mod:`magma_wino.cost`), per layer or as network totals, as text, markdown or JSON.

The text table fits 80 columns (the count columns that matter most; ``--wide``: all of them);
an F(m, r) the library cannot build (α = m + r − 1 > 16) is a message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import bench, cost
from ..transforms import winograd
from ._common import add_wide_option, standalone_main, usage_error

__all__ = ["HELP", "NARROW_COLUMNS", "add_arguments", "run", "main"]

HELP = "exact multiplication/addition counts (docs/cost.md)"

#: The columns of the default (80-column) table; ``--wide`` shows every column of
#: :func:`magma_wino.cost.cost_table`.
NARROW_COLUMNS = ("layer", "F", "variant", "w_dens", "mults/out", "mult_ratio")


def _layers(network: str) -> tuple[tuple[int, ...], ...]:
    """(C, K, *spatial) of the network's layers (ResNet: the 3×3 layers of magma_wino.bench,
    the stage entries at their stride-1 shapes)."""
    if network == "vgg16":
        return cost.VGG16_LAYERS
    if network == "c3d":
        return cost.C3D_LAYERS
    table = bench.RESNET18 if network == "resnet18" else bench.RESNET50
    return tuple((C, K, H, H) for _, C, K, H in table)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``magma-wino cost`` to ``parser``."""
    parser.add_argument("--network", choices=("vgg16", "resnet18", "resnet50", "c3d"), default="vgg16")
    parser.add_argument("--m", type=int, nargs="+", default=None, help="output tile sizes (default 2 4 6; C3D: 2 4)")
    parser.add_argument("--r", type=int, default=3,
                        help="filter size r of every layer (default 3; padding (r - 1) // 2, 'same' for odd r)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--totals-only", action="store_true", help="only the network totals")
    parser.add_argument("--dense-only", action="store_true", help="only the dense configuration")
    parser.add_argument("--markdown", action="store_true", help="a markdown table (every column)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help="write the rows as JSON to FILE (no FILE or '-': to stdout, instead of the table)")
    add_wide_option(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print (or write) the cost table of ``args``; 0, or 2 for an F(m, r) that cannot be built."""
    layers = _layers(args.network)
    ms = args.m or ((2, 4, 6) if args.network != "c3d" else (2, 4))
    if args.r < 1 or args.batch < 1:
        return usage_error("cost", f"--r and --batch must be >= 1, got --r {args.r} --batch {args.batch}")
    for m in ms:
        try:
            winograd(m, args.r)
        except ValueError as exc:
            return usage_error("cost", f"--m {m} --r {args.r}: {exc}")
    configs = cost.DEFAULT_CONFIGS[:1] if args.dense_only else cost.DEFAULT_CONFIGS
    rows = cost.cost_table(layers, ms, configs, N=args.batch, r=args.r, padding=(args.r - 1) // 2,
                           per_layer=not args.totals_only)
    if args.json is not None:
        doc = {"network": args.network, "r": args.r, "batch": args.batch, "m": list(ms), "rows": rows}
        text = json.dumps(doc, indent=1, default=str) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
            return 0
        with open(args.json, "w") as fh:
            fh.write(text)
    columns = None if args.markdown or args.wide else list(NARROW_COLUMNS)
    print(cost.format_table(rows, columns, markdown=args.markdown))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.cost [options]``; the exit status."""
    return standalone_main("cost", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
