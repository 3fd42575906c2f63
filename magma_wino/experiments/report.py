"""The pruning experiment's report: a rich table, markdown, and two PNG plots (matplotlib).

* :func:`table` — one row per tile size, method and density: accuracy (and its change from the
  dense network), weight density reached, activation density (Winograd-ReLU), multiplications
  per image and how many times fewer than the dense direct convolution;
* :func:`markdown` — the same as a markdown table (docs/experiments.md);
* :func:`plot` — ``accuracy_vs_density.png`` and ``accuracy_vs_mults.png``, one panel per tile
  size, one line per method.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .prune import FIXED_DENSITY

__all__ = ["COLUMNS", "cells", "markdown", "plot", "table"]

COLUMNS = ("F(m,3)", "method", "target", "accuracy", "Δ acc", "w density", "act. density", "mults/image",
           "× fewer")


def _dense_accuracy(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str], float]:
    """Accuracy at density 1 per (m, method): what the change in accuracy is measured from."""
    return {(r["m"], r["method"]): r["accuracy"] for r in rows if r["target_density"] >= 1.0}


def cells(row: dict[str, Any], dense: dict[tuple[int, str], float]) -> list[str]:
    """One row of the table as text."""
    ref = dense.get((row["m"], row["method"]))
    if ref is None and row["method"] in FIXED_DENSITY:  # no d = 1 row of its own: the same unpruned network's
        ref = dense.get((row["m"], "winograd"))
    delta = "" if ref is None else f"{100 * (row['accuracy'] - ref):+.1f}"
    act = "" if row["activation_density"] is None else f"{row['activation_density']:.3f}"
    return [f"F({row['m']},3)", row["method"], f"{row['target_density']:g}", f"{100 * row['accuracy']:.1f}%",
            delta, f"{row['weight_density']:.3f}", act, f"{row['mults_per_image']:,.0f}",
            f"{row['mult_reduction']:.1f}"]


def table(rows: Sequence[dict[str, Any]], title: str = "magma-wino experiment prune") -> Any:
    """A :class:`rich.table.Table` of ``rows``."""
    from rich.table import Table  # noqa: PLC0415

    t = Table(title=title)
    for i, name in enumerate(COLUMNS):
        t.add_column(name, justify="left" if i < 2 else "right")
    dense = _dense_accuracy(rows)
    for r in rows:
        t.add_row(*cells(r, dense))
    return t


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """``rows`` as a markdown table."""
    dense = _dense_accuracy(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r, dense)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]], directory: str | Path) -> list[Path]:
    """Write ``accuracy_vs_density.png`` and ``accuracy_vs_mults.png`` into ``directory``
    (created); returns their paths.  Needs matplotlib (the Agg backend: no display)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tiles = sorted({r["m"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    paths = []
    for key, xlabel, name, logx in (("weight_density", "weight density reached", "accuracy_vs_density.png", True),
                                    ("mults_per_image", "multiplications per image (convolutions)",
                                     "accuracy_vs_mults.png", True)):
        fig, axes = plt.subplots(1, len(tiles), figsize=(5.5 * len(tiles), 4.2), squeeze=False, sharey=True)
        for ax, m in zip(axes[0], tiles):
            for meth in methods:
                pts = sorted((r[key], 100 * r["accuracy"]) for r in rows if r["m"] == m and r["method"] == meth)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=meth)
            if key == "mults_per_image":
                direct = next(r["direct_mults_per_image"] for r in rows if r["m"] == m)
                ax.axvline(direct, color="grey", linestyle=":", label="dense direct conv.")
            ax.set_xscale("log" if logx else "linear")
            ax.set_title(f"F({m}×{m}, 3×3)")
            ax.set_xlabel(xlabel)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][0].set_ylabel("test accuracy (%)")
        axes[0][-1].legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
