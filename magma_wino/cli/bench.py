"""``magma-wino bench``: Winograd layers of VGG-16, ResNet-18/50 and C3D, timed per phase.

The measurement, its rows and its tables are :mod:`magma_wino.bench` (``collect``,
``markdown_table``, …; the columns are described there and in docs/benchmarks.md); this
module defines the options, prints the result (rich tables) and writes ``--json`` /
``--markdown``.  Exit status 1 if a row's error is out of tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import bench, precision
from ._common import add_wide_option, standalone_main, usage_error
from ._common import console as _console

__all__ = ["HELP", "add_arguments", "print_result", "run", "main"]

HELP = "benchmarks: per-phase times, GFLOP/s, workspace, error"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``magma-wino bench`` to ``parser``."""
    parser.add_argument("--backend", nargs="+", choices=("numpy", "emulator", "cuda", "all"),
                        help="default: cuda when a GPU is usable, else numpy and emulator")
    parser.add_argument("--network", nargs="+", choices=(*bench.NETWORKS, "all"), default=["all"])
    parser.add_argument("--layers", nargs="+", metavar="NAME", help="only layers whose name contains one of these")
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8, 32], help="batch sizes N")
    parser.add_argument("--tile", nargs="+", type=int, default=[2, 4, 6], help="output tile sizes m of F(m,3)")
    parser.add_argument("--density", nargs="+", type=float, default=list(bench.DENSITIES),
                        help="Winograd-domain weight densities of the sparse rows (emulator, cuda)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--precision", nargs="+", choices=precision.MODES, default=["auto"], metavar="MODE",
                        help="precision modes of the Winograd rows, one set of rows each: "
                             f"{', '.join(precision.MODES)} (default auto); the column shows the resolved mode, "
                             "modes a layer refuses are skipped with the reason")
    parser.add_argument("--repeat", type=int, default=None, help="timed calls per measurement (median; default 5 CPU, 20 GPU)")
    parser.add_argument("--scale", default="8x4", metavar="CxS",
                        help="emulator layers: channels / C and spatial / S, e.g. 8x4 (default), 1x1 = full")
    parser.add_argument("--emulator-batch", type=int, nargs="+", default=[1],
                        help="batch sizes for the (scaled) emulator rows (default 1)")
    parser.add_argument("--max-workspace-mib", type=float, default=2048.0,
                        help="skip configurations whose x + V + M + im2col columns exceed this (default 2048)")
    parser.add_argument("--check-window", type=int, default=24,
                        help="error checked on image 0 and an output window of this many per axis (default 24)")
    parser.add_argument("--no-baselines", action="store_true", help="skip im2col / cuDNN rows")
    parser.add_argument("--backward", action="store_true",
                        help="add a 'backward' row (plan.backward: dx and dw) after each dense row")
    parser.add_argument("--model", choices=("a100", "h100", "h200"), metavar="GPU",
                        help="add speed-of-light ESTIMATED rows for this GPU (a100, h100, h200; "
                             "magma_wino.perfmodel): per precision mode, per layer and network totals, beside "
                             "a cuDNN estimate; for measured cuda rows, measured/estimated ratios per phase")
    parser.add_argument("--model-only", action="store_true",
                        help="with --model: print the ESTIMATED tables only, measure nothing")
    parser.add_argument("--kernels", action="store_true",
                        help="add static kernel facts (nvcc -Xptxas -v via tools/kernel_report.py) to the JSON")
    parser.add_argument("--quick", action="store_true",
                        help="a small subset (< 1 min on a 2-core CPU): 3 layers, N=1, densities 1 0.25 0")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--seed", type=int, default=0)
    add_wide_option(parser)
    return parser


def print_result(result: dict[str, Any], console: Any = None) -> None:
    """Print the rows (rich Table), the crossover summary and skipped configurations."""
    from rich.table import Table

    console = console or _console()  # fitted to the terminal, 80 columns in a log
    if result["rows"] or not result.get("model"):  # --model-only measures nothing
        console.print(bench.format_table(result["rows"], wide=console.width >= 160))
    if result["crossover"]:
        t = Table(title="sparse/dense crossover (product phase; measured)")
        for c in ("layer", "backend", "N", "F(m,r)", "dense prod ms", "crossover density", "model crossover"):
            t.add_column(c, justify="right")
        for c in result["crossover"]:
            t.add_row(c["layer"], c["backend"], str(c["N"]), c["F"], f"{c['dense_product_ms']:.3g}",
                      str(c["crossover_density"]), str(c["model_crossover_density"]))
        console.print(t)
    for s in result["skipped"]:
        console.print(f"[yellow]skipped[/] {s['network']}/{s['layer']} {s['backend']} N={s['N']}: {s['reason']}")
    for s in result.get("refused_precision", ()):
        console.print(f"[yellow]skipped[/] {s['rows']} row(s), the layer refuses the mode: {s['reason']}")
    mod = result.get("model")
    if mod:
        from .. import perfmodel  # only --model results need it

        name = perfmodel.gpu(mod["gpu"]).name
        if mod["rows"]:
            console.print(perfmodel.format_totals(mod["rows"], f"ESTIMATE on {name}: network totals "
                                                              "(speed-of-light model, not measured)"))
        for prec, sel in perfmodel.by_precision(mod["rows"]).items():
            console.print(perfmodel.format_estimates(sel, f"ESTIMATE on {name}, {prec}: per layer "
                                                          "(speed-of-light model, not measured)"))
        console.print(mod["legend"] + ".")
        if mod["ratios"]:
            t = Table(title=f"measured / estimated ({mod['gpu']} model)")
            for c in ("layer", "N", "F(m,r)", "precision", "density", "measured ms", "estimated ms", "ratio",
                      "in", "prod", "out", "estimated limits in/prod/out"):
                t.add_column(c, justify="right")
            for q in mod["ratios"]:
                pr = q["phase_ratio"]
                t.add_row(q["layer"], str(q["N"]), q["F"], str(q["precision"]), f"{q['density']:g}",
                          f"{q['measured_ms']:.3g}", f"{q['estimated_ms']:.3g}", f"{q['ratio']:.2f}",
                          *(f"{pr[k]:.2f}" if k in pr else "-" for k in ("input", "product", "output")),
                          "/".join(q["binding"].get(k, "-") for k in ("input", "product", "output")))
            console.print(t)
    k = result.get("kernels")
    if k:
        if "skipped" in k:
            console.print(f"kernel facts: {k['skipped']}")
        else:
            console.print(f"kernel facts: {k['instantiations']} instantiations, {k['with_spills']} with spills")
    ok = [r["ok"] for r in result["rows"] if r["ok"] is not None]
    console.print(f"{len(result['rows'])} rows, {sum(ok)}/{len(ok)} within tolerance, "
                  f"{result['meta']['seconds']:.1f} s")


def run(args: argparse.Namespace) -> int:
    """Run ``magma-wino bench`` with parsed ``args``; exit status 1 if a row's error is out of tolerance."""
    # Both entry points record it (_common.record_command); a Namespace built otherwise has neither.
    command = getattr(args, "command_line", None) or ("magma-wino bench " + " ".join(getattr(args, "_argv", []))).strip()
    if not bench.selected_layers(args):  # nothing to measure: say so rather than print empty tables
        names = ", ".join(lay.name for lay in bench.network_layers(args.network))
        return usage_error("bench", f"--layers {' '.join(args.layers or [])!r} selects no layer of --network "
                           f"{' '.join(args.network)}" + (" with --quick" if args.quick else "")
                           + f"; the layers are: {names}")
    result = bench.collect(args, command)
    print_result(result, _console(args))
    if args.json:
        p = Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(result, indent=1, default=str) + "\n")
    if args.markdown:
        p = Path(args.markdown)
        p.parent.mkdir(parents=True, exist_ok=True)
        text = f"Command: `{command}`\n\n" + bench.markdown_table(result["rows"])
        if result["crossover"]:
            text += "\n### Sparse/dense crossover (measured)\n\n" + bench.crossover_markdown(result["crossover"])
        if result.get("model"):
            text += bench.model_markdown(result["model"])
        if result.get("refused_precision"):
            text += "\nSkipped (precision refused): " + "; ".join(
                f"{s['rows']} row(s): {s['reason']}" for s in result["refused_precision"]) + "\n"
        if result["skipped"]:
            text += "\nSkipped: " + "; ".join(f"{s['layer']} {s['backend']} N={s['N']} ({s['reason']})"
                                              for s in result["skipped"]) + "\n"
        p.write_text(text)
    return 1 if any(r["ok"] is False for r in result["rows"]) else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.bench [options]``; the exit status."""
    return standalone_main("bench", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
