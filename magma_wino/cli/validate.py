"""``magma-wino validate``: every kernel over a shape sweep against float64 ground truth.

The sweep and the check of one case are :mod:`magma_wino.validate` (``cases``, ``run_case``);
this module runs the sweep with a progress bar, prints the table and the failing cases, and
writes ``--json``.  ``--sanitize`` runs :mod:`magma_wino.sanitize` instead.  Exit status: 0
every case passed, 1 a case failed, 2 the backend cannot run or ``--filter`` matches no case.
Tables fit the terminal (80 columns in a log; ``--wide``: full width).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

# The library through its module attributes (validate.run_case, _backend.cuda_unavailable_reason):
# the tests monkeypatch them there.
from .. import _backend, validate
from ._common import add_wide_option, standalone_main, usage_error
from ._common import console as _console

__all__ = ["HELP", "add_arguments", "run", "main"]

HELP = "run every kernel over a shape sweep against float64 ground truth"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``magma-wino validate`` to ``parser``."""
    parser.add_argument("--backend", choices=["emulator", "cuda", "numpy"], default=None,
                        help="kernel backend to validate (default: cuda if a GPU is usable, else emulator)")
    parser.add_argument("--quick", action="store_true", help="a reduced sweep (CI: under 2 minutes on the emulator)")
    parser.add_argument("--filter", default=None, help="only cases whose group contains this text")
    parser.add_argument("--precision", choices=validate.PRECISION_CHOICES, default="auto",
                        help="run every plan in this precision mode, without the cases it does not apply to "
                             "(default auto: each case's own mode; the 'precision' group covers the modes)")
    parser.add_argument("--json", default=None, help="write the results as JSON to this file")
    add_wide_option(parser)
    parser.add_argument("--sanitize", action="store_true",
                        help="instead of the sweep: build (if needed) and run the kernels under AddressSanitizer + "
                             "UBSan (magma_wino.sanitize; needs a source checkout, cmake and g++, else exit status 2)")
    return parser


def _print_failures(console: Any, failed: list, shown: int = 3) -> None:
    """Each failing case with its error and bound (enough to replay it); cases that crashed
    with the same exception message are grouped: the message once, with a count, and the
    first ``shown`` cases (``--json`` lists them all)."""
    by_detail: dict[str, list] = {}
    for r in failed:
        by_detail.setdefault(r.detail, []).append(r)
    for r in failed:
        group = by_detail[r.detail] if r.detail else [r]
        if len(group) == 1:
            console.print(f"[red]FAILED[/] {r.case} error={r.error:.3e} bound={r.bound:.3e} {r.detail}")
        elif r is group[0]:
            console.print(f"[red]FAILED[/] {len(group)} cases with the same error: {r.detail}")
            for g in group[:shown]:
                console.print(f"    {g.case}")
            if len(group) > shown:
                console.print(f"    … and {len(group) - shown} more (--json lists every case)")


def run(args: argparse.Namespace) -> int:
    """Run ``magma-wino validate`` with parsed ``args``; the exit status."""
    if getattr(args, "sanitize", False):
        from .. import sanitize

        return sanitize.run(args)
    from rich import box
    from rich.progress import Progress
    from rich.table import Table

    backend = args.backend or ("cuda" if _backend.cuda_available() else "emulator")
    if backend == "cuda" and (why := _backend.cuda_unavailable_reason()) is not None:
        # Once, up front: otherwise every case fails with the same CUDA error.
        print(f"magma-wino validate --backend cuda: the cuda backend is not usable here: {why}. "
              "Use --backend emulator (the same kernel source on the CPU) or --backend numpy.", file=sys.stderr)
        return 2
    mode = getattr(args, "precision", "auto")
    every = validate.cases(args.quick, backend, mode)
    sweep = [c for c in every if not args.filter or args.filter in c.group]
    if not sweep:  # an empty sweep must not pass silently, nor print an empty table
        if not every:
            return usage_error("validate", f"--precision {mode} applies to no case of this sweep")
        groups = ", ".join(dict.fromkeys(c.group for c in every))
        return usage_error("validate", f"--filter {args.filter!r} matches no case"
                           + ("" if mode == "auto" else f" of precision {mode}") + f"; the groups are: {groups}")
    console = _console(args)
    results: list = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"validating on {backend}", total=len(sweep))
        for c in sweep:
            try:
                results.append(validate.run_case(c, backend))
            except Exception as exc:  # a crash in a case is a failure of that case, reported
                results.append(validate.Result(c, math.inf, 0.0, 0.0, False, detail=f"{type(exc).__name__}: {exc}"))
            progress.advance(task)
    title = f"magma_wino validate — backend {backend}" + ("" if mode == "auto" else f", precision {mode}")
    # Fitted to 80 columns by default: the columns that say what failed and by how much (dtype,
    # variant and density are in the group's name or the shape's line; --wide shows them all).
    wide = getattr(args, "wide", False)
    cols = (("group", "shape", "F(m,r)", "dtype", "precision", "variant", "density", "max rel err", "bound", "ms",
             "ok") if wide else ("group", "shape", "F(m,r)", "precision", "max rel err", "bound", "ok"))
    table = Table(title=title, show_lines=False, box=None if not wide else box.HEAVY_HEAD)
    for col in cols:
        table.add_column(col, justify="right" if col not in ("group", "shape", "variant") else "left",
                         no_wrap=col not in ("group", "shape"))
    for res in results:
        c = res.case
        r = "x".join(map(str, c.kernel)) if c.kernel else c.r  # a rectangular filter: its sizes
        fm = f"F({c.m},{r})" + ("" if c.ndim == 2 else " 3D")
        cells = {"group": c.group, "shape": c.describe(), "F(m,r)": fm, "dtype": c.dtype,
                 "precision": res.precision or "-", "variant": c.variant, "density": f"{c.density:g}",
                 "max rel err": f"{res.error:.2e}", "bound": f"{res.bound:.2e}", "ms": f"{1e3 * res.seconds:.1f}",
                 "ok": "n/a" if res.extra.get("skipped") else "ok" if res.ok else "[bold red]FAILED[/]"}
        table.add_row(*(cells[col] for col in cols))
    console.print(table)
    failed = [r for r in results if not r.ok]
    skipped = [r for r in results if r.extra.get("skipped")]
    _print_failures(console, failed)
    for why in dict.fromkeys(r.detail for r in skipped):
        console.print(f"[yellow]n/a[/] {sum(r.detail == why for r in skipped)} case(s): {why}")
    total = sum(r.seconds for r in results)
    console.print(f"{len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed"
                  + (f", {len(skipped)} n/a" if skipped else "") + f" ({total:.1f} s in kernels+refs)")
    if args.json:
        import json
        from dataclasses import asdict

        # "precision": the plan's resolved mode (None if the plan was not built); the case's: requested
        rows = [dict(asdict(r.case), precision_requested=r.case.precision, precision=r.precision or None,
                     error=r.error, bound=r.bound, seconds=r.seconds, ok=r.ok, detail=r.detail, **r.extra)
                for r in results]
        with open(args.json, "w") as fh:
            json.dump({"backend": backend, "precision": mode, "results": rows}, fh, indent=1, default=str)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m magma_wino.cli.validate [options]``; the exit status."""
    return standalone_main("validate", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
