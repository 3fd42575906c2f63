"""The sparse products in the speed-of-light model: per-layer ESTIMATES of the product phase
(M[b] = U[b] · V[b]) of VGG-16 and ResNet-50 for the dense tensor-core kernel and every sparse
one, against the goals of issue 16 (docs/performance.md, "Sparse products").

Every figure is an estimate of :func:`magma_wino.perfmodel.estimate_product`, never a
measurement: a GPU run of ``magma-wino bench`` is what checks them.  Run as::

    python -m magma_wino.perfmodel_sparse --network vgg16 resnet50 --batch 32 --tile 4 \\
        --precision tf32x3 --markdown docs/results/sparse_h200_b32.md

Columns: the dense product in the mode; the block-sparse tensor-core product at block densities
0.5 / 0.3 / 0.1, in 16 x 8 blocks ("block d") and in 32 x 8 blocks ("block32 d"); the 2:4 product (modes with ``mma.sp``); the CSR kernel (SIMT, float32) at
0.3 / 0.1 / 0.05 (SIMT in float32; float64 for fp64), and at 0.1 the CSR kernel as it was before
issue 16's rewrite.  Each cell is "ms (binding limit)".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import perfmodel as pm

__all__ = ["BLOCK_COLUMNS", "BLOCK_DENSITIES", "CSR_DENSITIES", "SPMM_BEFORE_ISSUE_16", "goals", "main", "markdown", "rows"]

BLOCK_DENSITIES = (0.5, 0.3, 0.1)
#: The block-sparse columns by the kernel's block heights: "block d" (16 x 8), "block32 d" (32 x 8).
BLOCK_COLUMNS = {"block": 16, "block32": 32}
CSR_DENSITIES = (0.3, 0.1, 0.05)
#: The CSR kernel before issue 16's rewrite (sm_90 SASS of its per-nonzero loop, kernel report of
#: commit 98359a5's predecessor: one nonzero, one column per lane, branch per entry) and its
#: occupancy (3 blocks of 256 threads per SM): what "today's" CSR kernel of the issue was.
SPMM_BEFORE_ISSUE_16 = {"mix": {"float32": {"FFMA": 16, "LDS.32": 8, "LDG.32": 16, "other": 88},
                                "float64": {"DFMA": 8, "LDS.32": 4, "LDS.64": 4, "LDG.64": 8, "other": 88}},
                        "blocks_per_sm": 3}


def _cell(e: pm.PhaseEstimate) -> dict[str, Any]:
    return {"ms": e.seconds * 1e3, "binding": e.binding, "source": e.mix_source, "hypothetical": e.hypothetical}


def rows(networks: Sequence[str] = ("vgg16", "resnet50"), batch: int = 32, m: int = 4,
         precision: str = "tf32x3", gpu_key: str = "h200", sass: dict | None = None) -> list[dict[str, Any]]:
    """One row per 2D layer shape: the product phase by every product (see the module doc)."""
    from .bench import network_layers  # noqa: PLC0415

    prec = pm.mode(precision)
    before = {("spmm", dt): mix for dt, mix in SPMM_BEFORE_ISSUE_16["mix"].items()}
    simt = "fp64" if prec == "fp64" else "fp32"  # the CSR kernel: SIMT in the compute dtype
    out = []
    for lay in network_layers(list(networks)):
        if lay.ndim != 2:
            continue
        H, W = lay.spatial
        pos = (m + lay.r - 1) ** 2
        P = batch * math.ceil(H / m) * math.ceil(W / m)

        def est(d: float, product: str, p: str = prec, shape: tuple = (pos, lay.K, lay.C, P),
                **kw: Any) -> dict[str, Any]:
            return _cell(pm.estimate_product(*shape, p, d, product, gpu_key, kw.pop("s", sass), **kw))

        row = {"network": lay.network, "layer": lay.name, "count": lay.name.count("/") + 1, "C": lay.C,
               "K": lay.K, "H": H, "W": W, "N": batch, "m": m, "r": lay.r, "precision": prec,
               "dense": est(1.0, "dense"),
               **{col: ({str(d): est(d, "block", block_rows=bm) for d in BLOCK_DENSITIES}
                        if prec in pm.TC_PEAK else {}) for col, bm in BLOCK_COLUMNS.items()},
               "2:4": est(0.5, "2:4") if prec in pm.SP24_MODES else None,
               "csr": {str(d): est(d, "csr", simt) for d in CSR_DENSITIES},
               "csr_before": est(0.1, "csr", simt, s=before, csr_blocks_per_sm=SPMM_BEFORE_ISSUE_16["blocks_per_sm"])}
        out.append(row)
    return out


def _total(rs: Sequence[dict[str, Any]], pick) -> float | None:
    vals = [pick(r) for r in rs]
    if any(v is None for v in vals):
        return None
    return sum(v["ms"] * r["count"] for v, r in zip(vals, rs))


def totals(rs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per network: the products' summed ms (a repeated shape counted as often as it occurs)."""
    out: dict[str, dict[str, float | None]] = {}
    for net in dict.fromkeys(r["network"] for r in rs):
        sel = [r for r in rs if r["network"] == net]
        t: dict[str, float | None] = {"dense": _total(sel, lambda r: r["dense"])}
        for col in BLOCK_COLUMNS:
            for d in BLOCK_DENSITIES:
                t[f"{col} {d}"] = _total(sel, lambda r, d=d, col=col: r[col].get(str(d)))
        t["2:4"] = _total(sel, lambda r: r["2:4"])
        for d in CSR_DENSITIES:
            t[f"csr {d}"] = _total(sel, lambda r, d=d: r["csr"][str(d)])
        t["csr 0.1 before"] = _total(sel, lambda r: r["csr_before"])
        out[net] = t
    return out


#: The goals of issue 16 (estimated, H200): (name, numerator column, denominator column, ratio); the
#: block-sparse goal twice, for the kernel's two block shapes.
GOALS = (("block-sparse at density 0.3 >= 2x faster than dense (same precision)", "dense", "block 0.3", 2.0),
         ("2:4 >= 1.6x faster than dense (same precision)", "dense", "2:4", 1.6),
         ("rewritten CSR >= 2.5x faster than the CSR kernel before issue 16, density 0.1", "csr 0.1 before",
          "csr 0.1", 2.5),
         ("block-sparse goal in 32 x 8 blocks (density 0.3 >= 2x faster than dense, same precision)", "dense",
          "block32 0.3", 2.0))


def goals(rs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal per network: the estimated speed-up and whether it meets the goal."""
    out = []
    for net, t in totals(rs).items():
        for name, num, den, want in GOALS:
            a, b = t.get(num), t.get(den)
            ratio = a / b if a and b else None
            out.append({"network": net, "goal": name, "speedup": ratio, "target": want,
                        "met": ratio is not None and ratio >= want})
    return out


def _fmt(c: dict[str, Any] | None) -> str:
    if c is None:
        return "—"
    return f"{c['ms']:.3f} ({c['binding']}){'*' if c['hypothetical'] else ''}"


def markdown(rs: Sequence[dict[str, Any]], gpu_key: str = "h200", command: str | None = None) -> str:
    """The per-layer table, the network totals and the goals, as GitHub markdown."""
    p = rs[0]["precision"] if rs else "?"
    lines = [f"ESTIMATE on {pm.gpu(gpu_key).name} ({pm.LABEL}); product phase only, ms (binding limit); "
             f"precision {p}, CSR columns SIMT {'float64' if p == 'fp64' else 'float32'}; * = a projected mix (no SASS of that kernel in the model)."]
    if command:
        lines += ["", f"Generated by `{command}`."]
    head = (["layer", "N", "F(m,r)", "dense"] + [f"{col} {d}" for col in BLOCK_COLUMNS for d in BLOCK_DENSITIES]
            + ["2:4"]
            + [f"CSR {d}" for d in CSR_DENSITIES] + ["CSR 0.1 before #16"])
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rs:
        cells = [f"{r['network']}/{r['layer']}", str(r["N"]), f"F({r['m']},{r['r']})", _fmt(r["dense"])]
        cells += [_fmt(r[col].get(str(d))) for col in BLOCK_COLUMNS for d in BLOCK_DENSITIES] + [_fmt(r["2:4"])]
        cells += [_fmt(r["csr"][str(d)]) for d in CSR_DENSITIES] + [_fmt(r["csr_before"])]
        lines.append("| " + " | ".join(cells) + " |")
    tot = totals(rs)
    cols = list(next(iter(tot.values())).keys()) if tot else []
    lines += ["", "Network totals (ms, estimate):", "", "| network | " + " | ".join(cols) + " |",
              "|" + "---|" * (len(cols) + 1)]
    for net, t in tot.items():
        lines.append(f"| {net} | " + " | ".join("—" if v is None else f"{v:.2f}" for v in t.values()) + " |")
    lines += ["", "Goals (estimate):", "", "| network | goal | estimated speed-up | met |", "|---|---|---|---|"]
    for g in goals(rs):
        sp = "—" if g["speedup"] is None else f"{g['speedup']:.2f}x"
        lines.append(f"| {g['network']} | {g['goal']} | {sp} | {'yes' if g['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m magma_wino.perfmodel_sparse",
                                 description="ESTIMATED product-phase times of the dense and sparse products "
                                             "(speed-of-light model, not measured)")
    ap.add_argument("--network", nargs="+", default=["vgg16", "resnet50"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tile", type=int, default=4, help="m of F(m, 3)")
    ap.add_argument("--precision", default="tf32x3", choices=[p for p in pm.PRECISIONS if p in pm.TC_PEAK])
    ap.add_argument("--gpu", default="h200", choices=sorted(pm.GPUS))
    ap.add_argument("--sass-json", help="a tools/kernel_report.py --json file instead of the built-in mixes")
    ap.add_argument("--markdown", help="write the tables to this file")
    ap.add_argument("--json", help="write rows, totals and goals to this file")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sass = pm.load_sass(args.sass_json, arch="80" if args.gpu == "a100" else "90")
    rs = rows(args.network, args.batch, args.tile, args.precision, args.gpu, sass)
    cmd = "python -m magma_wino.perfmodel_sparse " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(rs, args.gpu, cmd)
    print(text, end="")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"label": pm.LABEL, "rows": rs, "totals": totals(rs),
                                               "goals": goals(rs)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
