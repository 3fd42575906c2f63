"""``magma-wino accuracy``: error against tile size, interpolation points and precision mode.

The study, its rows, summaries, markdown and plot are :mod:`magma_wino.accuracy`
(``collect``, ``markdown``, ``plot``; docs/accuracy.md); this module defines the options,
prints the summary tables and writes ``--out DIR`` (accuracy.json, accuracy.md,
accuracy.png).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import accuracy
from ._common import add_wide_option, standalone_main
from ._common import console as _console

__all__ = ["HELP", "add_arguments", "print_summary", "run", "main"]

HELP = "accuracy study: error against tile size, points and precision mode"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``magma-wino accuracy`` to ``parser``."""
    parser.add_argument("--out", metavar="DIR", help="write accuracy.json, accuracy.md, accuracy.png here")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE ('-': stdout, no tables)")
    add_wide_option(parser)
    parser.add_argument("--spatial", type=int, default=28,
                        help="cap of the VGG-16 spatial size H = W (default 28: 224/112/56 → 28)")
    parser.add_argument("--layers", nargs="+", metavar="NAME",
                        help="VGG-16 layer names (conv1_1 … conv5_3); default all 13")
    parser.add_argument("--tiles", nargs="+", metavar="M,R", default=[f"{m},{r}" for m, r in accuracy.TILES],
                        help="F(m,r) as m,r (default: 2,3 4,3 6,3 8,3 2,5 4,5)")
    parser.add_argument("--points", nargs="+", choices=accuracy.POINT_SETS, default=list(accuracy.POINT_SETS),
                        help="point sets (default: all)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--no-emulator", action="store_true", help="skip the emulator-backend check")
    parser.add_argument("--no-nnpack", action="store_true", help="skip the NNPACK-style comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="small: conv1_2, conv3_1, conv5_1 at 14×14, F(2,3) F(4,3) F(6,3) F(2,5); "
                             "precision study at 3D 4×4×4")
    g = parser.add_argument_group("precision modes (every concrete mode of magma_wino.precision × F(m,r) × layer)")
    g.add_argument("--modes", nargs="+", metavar="MODE",
                   help="precision modes (default: every concrete mode precision.MODES has: "
                        + " ".join(accuracy.concrete_modes()) + ")")
    g.add_argument("--precision-tiles", nargs="+", metavar="M,R[,ND]",
                   default=[f"{m},{r}" + (",3" if nd == 3 else "") for m, r, nd in accuracy.PRECISION_TILES],
                   help="F(m,r) of the mode study as m,r (2D) or m,r,3 (3D) (default: 2,3 4,3 6,3 2,5 2,3,3 4,3,3)")
    g.add_argument("--backend", choices=("numpy", "emulator"), default="numpy",
                   help="numpy (tensor-core operand rounding emulated, default) or emulator (the CUDA kernels "
                        "on the CPU: slow, cap the shapes with --spatial / --layers / --max-channels)")
    g.add_argument("--spatial-3d", type=int, default=8, help="3D layers: D = H = W (default 8)")
    g.add_argument("--max-channels", type=int, default=None, metavar="N",
                   help="cap C and K of the mode study's layers at N (for --backend emulator)")
    g.add_argument("--max-channels-3d", type=int, default=128, metavar="N",
                   help="cap C and K of the 3D layers at N (default 128)")
    g.add_argument("--no-precision", action="store_true", help="skip the precision-mode study")
    return parser


def print_summary(result: dict[str, Any], console: Any = None) -> None:
    """Print the summary tables of a study result (rich), in the cell formats of
    :func:`magma_wino.accuracy.markdown` (its ``_e`` / ``_ok_str`` / … helpers); ``console``:
    where (default: fitted to the terminal, 80 columns in a log)."""
    from rich.table import Table

    console = console or _console()
    table = Table(title=f"Winograd {result['meta']['dtype']} error vs float64 direct (max over layers)")
    for col in ("F(m,r)", "points", "max rel", "mean rel", "err/bound", "usable limit", "ok"):
        table.add_column(col, justify="right")
    for s in sorted(result["summary"], key=lambda s: (s["r"], s["m"], s["points"])):
        table.add_row(s["F"], s["points"], accuracy._e(s["max_rel"]), accuracy._e(s["mean_rel"]),
                      f"{s['max_tolerance_ratio']:.3f}", f"{s['usable_limit']:.0e}", accuracy._ok_str(s))
    console.print(table)
    console.print("ok = within the a-priori bound (as accurate as the algorithm can be) and within the usable limit")
    prec = result.get("precision") or {}
    if prec.get("summary"):
        table = Table(title=f"Precision modes ({prec['backend']} backend): error vs float64 direct (max over layers)")
        for col in ("F(m,r)", "mode", "data", "max rel", "mean rel", "err/bound", "usable limit", "ok"):
            table.add_column(col, justify="right")
        for s in accuracy._sorted_precision(prec["summary"]):
            table.add_row(s["F"], s["mode"], s["dtype"], accuracy._e_or(s["max_rel"]), accuracy._e_or(s["mean_rel"]),
                          "-" if s["max_tolerance_ratio"] is None else f"{s['max_tolerance_ratio']:.3f}",
                          f"{s['usable_limit']:.0e}", accuracy._precision_ok_str(s))
        console.print(table)
        for c in prec["checks"]:
            console.print(f"{c['F']}: {c['check']}: ratio {c['ratio']:.2f} -> {'yes' if c['passed'] else 'NO'}")


def run(args: argparse.Namespace) -> int:
    """Run ``magma-wino accuracy`` with parsed ``args``; exit status 1 if a default-points row
    or a precision-mode row exceeds its a-priori bound (an implementation error; rows that are
    merely not usable — e.g. F(8,3) in float32, tf32 on F(4,3) — are reported as such, not as a
    failure)."""
    command = getattr(args, "command_line", None) or "magma-wino accuracy " + " ".join(getattr(args, "_argv", []))
    result = accuracy.collect(args, command.strip())
    text = json.dumps(result, indent=1, default=str) + "\n"
    if getattr(args, "json", None) == "-":
        sys.stdout.write(text)
    else:
        print_summary(result, _console(args))
        if getattr(args, "json", None):
            Path(args.json).write_text(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "accuracy.json").write_text(text)
        (out / "accuracy.md").write_text(accuracy.markdown(result))
        png = accuracy.plot(result["summary"], out / "accuracy.png")
        print(f"wrote {out / 'accuracy.json'}, {out / 'accuracy.md'}" + (f", {png}" if png else ""),
              file=sys.stderr if getattr(args, "json", None) == "-" else sys.stdout)
    bad = [s for s in result["summary"] if not s["within_bound"] and s["points"] == "default"]
    bad += [s for s in (result.get("precision") or {}).get("summary", []) if s["within_bound"] is False]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.accuracy [options]``; the exit status."""
    return standalone_main("accuracy", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
